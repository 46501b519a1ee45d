// #[cached(ttl = 60)]
// struct Product {
//     id: u64,
// }
// ----- expands to -----
struct Product {
    id: u64,
}
::core::compile_error! {
    "#[cached] applies to an `async fn` with a body: expected `fn`"
}
