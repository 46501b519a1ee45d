use cache_runtime::cache_evict;

#[cache_evict(pattern = ["products:list:*"])]
async fn reprice() -> Result<(), String> {
    Ok(())
}

fn main() {
    let _ = reprice();
}
