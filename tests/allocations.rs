//! Key derivation allocates only the key string: counted with a global
//! allocator that tallies allocations made on the measuring thread.

use cache_runtime::__private::{key_arg, Call, Site, Ttl};
use cache_runtime::Cache;
use serde::Serialize;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread, and its result.
fn count<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let before = ALLOCATIONS.with(Cell::get);
    let out = f();
    (ALLOCATIONS.with(Cell::get) - before, out)
}

#[derive(Serialize)]
struct Filter {
    id: u64,
    active: bool,
    score: Option<f64>,
    range: (u32, u32),
    kind: Kind,
}

#[derive(Serialize)]
enum Kind {
    Paged { page: u16, size: u16 },
}

static SITE: Site = Site::new("tests::allocations", Ttl::Secs(60));

#[test]
fn key_derivation_allocates_the_key_string_only() {
    let cache = Cache::builder().prefix("shop").build().unwrap();
    let filter = Filter {
        id: 7,
        active: true,
        score: Some(0.5),
        range: (1, 9),
        kind: Kind::Paged { page: 2, size: 50 },
    };
    let region = String::from("eu-west");

    // The public API and the path `#[cached]` expands to.
    let (n, key) = count(|| {
        cache
            .hashed_key("products::search", &(42u64, &filter))
            .unwrap()
    });
    assert_eq!(n, 1, "hashed_key: {n} allocations for {key}");
    // The first call of a function registers its name (once per process).
    drop(Call::new(&SITE, Some(&cache)).key_args(&(key_arg(&0u64),)));
    let (n, call) =
        count(|| Call::new(&SITE, Some(&cache)).key_args(&(key_arg(&42u64), key_arg(&filter))));
    assert_eq!(n, 1, "a #[cached] key of plain data: {n} allocations");
    drop(call);

    // Strings are fed to the hasher directly: still one allocation.
    let (n, _) = count(|| {
        cache
            .hashed_key("users::by_region", &(&region, 10u32))
            .unwrap()
    });
    assert_eq!(n, 1, "a string argument: {n} allocations");

    // A template renders straight into the key.
    let id = 42u64;
    let (n, call) = count(|| Call::new(&SITE, Some(&cache)).key_fmt(format_args!("product:{id}")));
    assert_eq!(n, 1, "a template key: {n} allocations");
    drop(call);

    // Maps sort their entry digests, which takes one more.
    let map: HashMap<String, u32> = (0..20).map(|i| (format!("k{i}"), i)).collect();
    let (n, _) = count(|| cache.hashed_key("m", &(&map,)).unwrap());
    assert!(n <= 3, "a map argument: {n} allocations");
}
