use cache_runtime::cache_evict;

#[cache_evict(pattern = "products:list:{categroy}:*")]
async fn reprice(category: &str) -> Result<(), String> {
    let _ = category;
    Ok(())
}

fn main() {
    let _ = reprice("lamps");
}
