use cache_runtime::cache_put;

struct Report {
    id: u64,
}

#[cache_put(key = "report:{id}")]
async fn save(id: u64) -> Result<Report, String> {
    Ok(Report { id })
}

fn main() {
    let _ = save(1);
}
