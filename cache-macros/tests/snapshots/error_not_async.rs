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
::core::compile_error! {
    "#[cached] works on `async fn` only: the lookup awaits the cache; write `async fn`"
}
