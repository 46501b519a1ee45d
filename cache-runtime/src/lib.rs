//! Declarative caching of async functions, backed by Redis.
//!
//! Annotate an `async fn` with [`#[cached]`](macro@cached): a call first looks
//! its key up in the cache, and runs the body only on a miss, storing the
//! result with its TTL.
//!
//! ```
//! use cache_runtime::{cached, Cache};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
//! struct Product { id: u64, name: String }
//!
//! #[cached(ttl = 600, key = "product:{id}")]
//! async fn get_product(id: u64) -> Result<Product, String> {
//!     Ok(Product { id, name: format!("product {id}") }) // the database query
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cache = Cache::builder().memory().prefix("shop").build()?; // or .redis(url)
//! cache.scope(async {
//!     let first = get_product(42).await;  // miss: runs the body
//!     let second = get_product(42).await; // hit
//!     assert_eq!(first, second);
//! }).await;
//! assert_eq!((cache.stats().misses, cache.stats().hits), (1, 1));
//! assert!(cache.exists("product:42").await?);
//! # Ok(())
//! # }
//! ```
//!
//! - Keys: `{prefix}:{template}` with a `key` template, else
//!   `{prefix}:{name}:{sha256 of the arguments}` (see [`KEY_ENCODING_VERSION`]).
//! - `Result` caches only `Ok`, `Option` only `Some` (unless `cache_none`).
//! - Failures of the cache never reach callers of `#[cached]` functions: the
//!   body runs instead (fail-open), and the error is logged and counted.
//! - Concurrent callers of one key share one lookup and one body run.
//! - The direct API ([`Cache::get`], [`Cache::set`], ...) returns
//!   [`CacheError`] so code can tell a miss from a failure.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

// Lets the crate's own tests use `#[cached]`, whose expansion names `::cache_runtime`.
#[cfg(test)]
extern crate self as cache_runtime;

mod backend;
mod builder;
mod cache;
mod call;
mod codec;
mod envelope;
mod error;
mod flight;
mod stats;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
#[cfg(test)]
mod tests;
pub mod write_behind;

mod key;

pub use backend::{Backend, BoxFuture, TaggedLookup, TAG_VERSION_WINDOW};
pub use builder::CacheBuilder;
pub use cache::Cache;
pub use call::{SetItems, UnorderedSet};
#[cfg(feature = "bincode")]
pub use codec::BincodeCodec;
pub use codec::{Codec, CodecError, JsonCodec};
pub use error::{BackendError, CacheError, Operation};
pub use key::{KeyEncodeError, KEY_ENCODING_VERSION};
pub use stats::Stats;

/// Caches the result of an `async fn`: a call looks its key up first and
/// runs the body only on a miss.
///
/// ```
/// use cache_runtime::{cached, Cache};
///
/// #[cached(ttl = 600, key = "user:{id}:name")]
/// async fn user_name(id: u64) -> Option<String> {
///     Some(format!("user {id}")) // the database query
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = Cache::builder().memory().build().unwrap();
/// assert_eq!(cache.scope(user_name(7)).await.as_deref(), Some("user 7"));
/// assert!(cache.exists("user:7:name").await.unwrap());
/// # }
/// ```
///
/// # Options
///
/// - `ttl = 600` (seconds), `ttl = "90s" | "10m" | "1h30m" | "2d"`, or a preset
///   of the cache: `ttl = "short" | "default" | "long"`. Omitted: `"default"`.
/// - `key = "product:{id}"`: the key is `{prefix}:product:42`. Placeholders
///   name parameters or their fields: `{user.id}`, `{pair.0}`,
///   `{self.tenant}`; `{{`/`}}` are literal braces. Values are rendered with
///   `Display`.
/// - Without `key`: `{prefix}:{name}:{hash}`, the hash covering every argument
///   but `self` and those in `skip(...)` (see [`Cache::hashed_key`]).
/// - `name = "..."`: the `{name}` of hashed keys (default: module path and
///   function name). Two functions sharing a name (methods of one name in
///   two impls of one module) would read each other's values: the second to
///   run is left uncached and an error is logged; give each its own `name`.
/// - `skip(a, b)`: arguments left out of the hashed key (connections, pools).
/// - `cache = expr`: the [`Cache`] to use; otherwise the one of the enclosing
///   [`Cache::scope`], else the [installed](Cache::install) one, else none: the
///   body runs uncached and a warning is logged once per function.
/// - `cache_none`: also store `None`.
/// - `crate = path`: where to find this crate if the dependency is renamed.
///
/// `Result<T, E>` stores only `Ok`, `Option<T>` only `Some` (unless
/// `cache_none`), any other type always. The stored type must implement
/// `Serialize` and `DeserializeOwned`.
///
/// # Behaviour
///
/// - Concurrent calls with one key share one lookup and one body run; if that
///   run produces nothing to store (an `Err`), each waiting caller runs the
///   body itself.
/// - A backend failure or a missed deadline never reaches the caller: the body
///   runs and its result is returned (fail-open); the failure is logged and
///   counted in [`Stats::errors`].
/// - A stored value that does not decode is a miss and is overwritten.
///
/// # What it expands to
///
/// The function keeps its signature; the key is computed from the
/// arguments, then the body moves into an `async move` block handed to the
/// runtime with the policy for its result (`SomeOnly`: store `Some` only).
/// `probe(..).typed()` picks, at compile time, whether the memory store may
/// keep a decoded copy (the stored type is `Clone`). Written by hand, the
/// example above is:
///
/// ```
/// async fn user_name(id: u64) -> Option<String> {
///     use cache_runtime::__private::{self as __cache_rt, ViaBytes as _, ViaClone as _};
///     static __CACHE_SITE: __cache_rt::Site =
///         __cache_rt::Site::new(concat!(module_path!(), "::user_name"), __cache_rt::Ttl::Secs(600));
///     let __cache_call = __cache_rt::Call::new(&__CACHE_SITE, None).key_fmt(format_args!("user:{}:name", id));
///     {
///         let __cache_body = async move {
///             let __cache_ret: Option<String> = { Some(format!("user {id}")) };
///             return __cache_ret;
///         };
///         let __cache_typed = (&&__cache_rt::probe(&__cache_rt::SomeOnly, &__cache_body)).typed();
///         __cache_call.run(__cache_rt::SomeOnly, __cache_typed, __cache_body)
///     }
///     .await
/// }
/// ```
///
/// (`__private` is not public API; the expansion may change between releases.)
pub use cache_macros::cached;

/// Object-safe serde, used by the [`Codec`] trait.
pub use erased_serde;

#[doc(hidden)]
pub mod __private;
