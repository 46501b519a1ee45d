//! Attribute macros for `cache-runtime`. Depend on `cache-runtime` and use
//! them from there (`use cache_runtime::cached;`): the generated code names
//! `::cache_runtime`.

mod attr;
mod errors;
mod expand;
mod key;
#[cfg(test)]
mod snapshots;
mod validate;

use proc_macro::TokenStream;

/// Caches the result of an `async fn`; documented in `cache_runtime`, which
/// re-exports it.
#[proc_macro_attribute]
pub fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::cached(attr.into(), item.into()).into()
}
