use cache_runtime::cached;

#[cached(ttl = 60)]
async unsafe fn get(ptr: *const u64) -> u64 {
    *ptr
}

fn main() {
    let _ = unsafe { get(&1) };
}
