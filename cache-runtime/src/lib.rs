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

mod backend;
mod builder;
mod cache;
mod call;
mod codec;
mod envelope;
mod error;
mod flight;
mod stats;

mod key;

pub use backend::{Backend, BoxFuture};
pub use builder::CacheBuilder;
pub use cache::Cache;
#[cfg(feature = "bincode")]
pub use codec::BincodeCodec;
pub use codec::{Codec, CodecError, JsonCodec};
pub use error::{BackendError, CacheError, Op};
pub use key::{KeyEncodeError, KEY_ENCODING_VERSION};
pub use stats::Stats;

/// Caches an async function's result; see the crate docs.
pub use cache_macros::cached;

/// Object-safe serde, used by the [`Codec`] trait.
pub use erased_serde;

#[doc(hidden)]
pub mod __private;
