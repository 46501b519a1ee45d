use cache_runtime::cached;

struct Report {
    total: u64,
}

#[cached(ttl = 60)]
async fn get(id: u64) -> Result<Report, String> {
    Ok(Report { total: id })
}

fn main() {
    let _ = get(1);
}
