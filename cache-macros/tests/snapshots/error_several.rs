// #[cached(tll = 60, key = "p:{idd}", skip(id, id))]
// async fn get(id: u64) -> u64 {
//     id
// }
// ----- expands to -----
async fn get(id: u64) -> u64 {
    id
}
::core::compile_error! {
    "unknown option `tll` for #[cached]; did you mean `ttl`? valid options are: ttl, l1, l1_ttl, key, name, skip, tags, cache, crate, cache_none, no_companions"
}
::core::compile_error! {
    "`id` is listed twice in `skip`; remove this one"
}
::core::compile_error! {
    "unknown placeholder `{idd}`; did you mean `{id}`? parameters are: id"
}
