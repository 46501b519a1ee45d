//! Attribute macros for `cache-runtime`. Depend on `cache-runtime` and use
//! them from there (`use cache_runtime::cached;`): the generated code names
//! `::cache_runtime`.

mod ast;
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

/// Write-through: runs an `async fn` and stores its result under a key;
/// documented in `cache_runtime`, which re-exports it.
#[proc_macro_attribute]
pub fn cache_put(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::cache_put(attr.into(), item.into()).into()
}

/// Evicts keys, tags or a pattern around an `async fn`; documented in
/// `cache_runtime`, which re-exports it.
#[proc_macro_attribute]
pub fn cache_evict(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::cache_evict(attr.into(), item.into()).into()
}
