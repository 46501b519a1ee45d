// #[cached(tll = 60, key = "p:{idd}", skip(id, id))]
// async fn get(id: u64) -> u64 {
//     id
// }
// ----- expands to -----
async fn get(id: u64) -> u64 {
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
    "unknown option `tll` for #[cached]; did you mean `ttl`? valid options are: ttl, l1, l1_ttl, lock, stale, early_refresh, beta, key, name, skip, tags, cache, crate, cache_none, none_ttl, no_companions"
}
::core::compile_error! {
    "`id` is listed twice in `skip`; remove this one"
}
::core::compile_error! {
    "unknown placeholder `{idd}`; did you mean `{id}`? parameters are: id"
}
