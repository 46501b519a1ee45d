use cache_runtime::cache_put;

// A write-through runs its body on every call: there is no miss to lock.
#[cache_put(key = "item:{id}", lock = false)]
async fn save(id: u64) -> u64 {
    id
}

fn main() {
    let _ = save(1);
}
