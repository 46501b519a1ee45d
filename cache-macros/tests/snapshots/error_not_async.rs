// #[cached(ttl = 60)]
// /// Kept, with its docs.
// fn get(id: u64) -> u64 {
//     id
// }
// ----- expands to -----
/// Kept, with its docs.
fn get(id: u64) -> u64 {
    id
}
/// Stands in for a companion of `get` while its `#[cached]` attribute has an error.
#[allow(dead_code, unused_variables, unused_mut)]
async fn get_uncached(id: u64) -> u64 {
    ::core::unreachable!()
}
/// Stands in for a companion of `get` while its `#[cached]` attribute has an error.
#[allow(dead_code, unused_variables, unused_mut)]
async fn get_invalidate(
    id: u64,
) -> ::core::result::Result<bool, ::cache_runtime::CacheError> {
    ::core::unreachable!()
}
::core::compile_error! {
    "#[cached] works on `async fn` only: the lookup awaits the cache; write `async fn`"
}
