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
//! - Two levels on Redis: with [`CacheBuilder::l1_capacity`], an in-process
//!   L1 answers hits without a round trip and stays coherent with Redis
//!   through its client tracking.
//! - The direct API ([`Cache::get`], [`Cache::set`], ...) returns
//!   [`CacheError`] so code can tell a miss from a failure.
//! - Each cached call runs in a `cache.call` span (DEBUG, target
//!   `cache_runtime::call`: `function`, `outcome`, the key at TRACE); with the
//!   `metrics` feature the cache reports counters, gauges and histograms to
//!   the application's [`metrics`](https://docs.rs/metrics/0.24) recorder;
//!   [`Cache::server_info`] reads Redis's own figures. The README lists them.

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
mod engine;
mod envelope;
mod error;
mod flight;
mod observe;
mod schema;
mod server_info;
mod stats;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
#[cfg(test)]
mod tests;
pub mod write_behind;

mod key;

pub use backend::{Backend, BoxFuture, Capabilities, Condition, TaggedLookup, TAG_VERSION_WINDOW};
pub use builder::CacheBuilder;
pub use cache::Cache;
pub use call::{SetItems, UnorderedSet};
#[cfg(feature = "bincode")]
pub use codec::BincodeCodec;
pub use codec::{Codec, CodecError, JsonCodec};
pub use error::{BackendError, CacheError, Operation};
pub use key::{KeyEncodeError, KEY_ENCODING_VERSION};
pub use server_info::{NodeInfo, ServerInfo};
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
/// - `l1 = false`: this function's values are never kept in the cache's
///   in-process L1 ([`CacheBuilder::l1_capacity`]); every call reads Redis.
///   By default (`l1 = true`) a value is kept there, for no longer than its
///   entry's remaining lifetime in Redis.
/// - `l1_ttl = 5` (seconds) or `l1_ttl = "5s" | "10m" | "1h30m"`: the L1 copy
///   lives at most that long (and never past the entry). No presets; at most
///   `ttl` when `ttl` is given in seconds; not together with `l1 = false`.
///   Without an L1 configured, `l1` and `l1_ttl` have no effect.
/// - `key = "product:{id}"`: the key is `{prefix}:product:42`. Placeholders
///   name parameters or their fields: `{user.id}`, `{pair.0}`,
///   `{self.tenant}`; `{{`/`}}` are literal braces. Values are rendered with
///   `Display`, `%` written `%25` and `:` written `%3A`, and so is every
///   other ASCII character but a letter or digit that the template's own
///   text contains (`%` and its hex code: `-` is `%2D`): a value then never
///   contains a separator of its template, so distinct values give distinct
///   keys (`"pair:{a}:{b}"` renders `("1:2", "3")` as `pair:1%3A2:3` and
///   `("1", "2:3")` as `pair:1:2%3A3`; `"pair:{a}-{b}"` renders `("1", "2-3")`
///   as `pair:1-2%2D3`). Ids and slugs without such characters are
///   unchanged, as is the template's own text. Two placeholders with
///   nothing between them but letters, digits or non-ASCII characters
///   (`"{a}{b}"`, `"{a}x{b}"`) are a compile error: no escaping could keep
///   their values apart. No template (`key`, `tags`, and `keys` / `pattern`
///   of [`#[cache_evict]`](macro@cache_evict)) may start with `__`, the
///   library's own namespace (`__tag:`, `__wb:`, ...): that is a compile
///   error. A key that starts with `__` because of a value has its first `_`
///   written `%5F`. A value whose `Display` fails gives no key: the call runs
///   uncached.
/// - Without `key`: `{prefix}:{name}:{hash}`, the hash covering every argument
///   but those in `skip(...)` (see [`Cache::hashed_key`]). `self` is never
///   hashed, so a method says `skip(self)` when its result does not depend
///   on the instance; without it, a hashed key on a method is a compile
///   error, since every instance (every tenant) would share its entries.
///   Otherwise give a template naming what it depends on: `key =
///   "t:{self.tenant}:{id}"`. A generic function's type arguments (their
///   `core::any::type_name`) and const arguments are hashed too, so
///   `fetch::<User>(1)` and `fetch::<Order>(1)` are different entries;
///   `type_name` is not guaranteed stable between compiler versions, so after
///   a toolchain upgrade generic functions may start new entries. With a
///   `key` template the key is what the template renders, whatever the type
///   arguments (the stored value's schema fingerprint then keeps one type's
///   value from being read as another's: it is a miss).
/// - `name = "..."`: the `{name}` of hashed keys (default: module path and
///   function name). Two functions sharing a name (methods of one name in
///   two impls of one module) would read each other's values: the second to
///   run is left uncached and an error is logged; give each its own `name`.
/// - `skip(a, b)`: arguments left out of the hashed key (connections, pools);
///   `skip(self)` on a method whose result does not depend on the instance.
/// - `cache = expr`: the [`Cache`] to use; otherwise the one of the enclosing
///   [`Cache::scope`], else the [installed](Cache::install) one, else none: the
///   body runs uncached and a warning is logged once per function.
/// - `tags = ["products", "category:{cat}"]`: records the entry under these
///   tags, templates like `key`, so that [`Cache::invalidate_tags`] or a
///   [`#[cache_evict(tags = [...])]`](macro@cache_evict) removes it with the
///   rest of its group.
/// - `cache_none`: also store `None`.
/// - `no_companions`: generate no `_uncached` and `_invalidate` functions
///   (below). Required on a method in a trait `impl`, where methods the trait
///   does not declare are not allowed.
/// - `crate = path`: where to find this crate if the dependency is renamed.
///
/// `Result<T, E>` stores only `Ok`, `Option<T>` only `Some` (unless
/// `cache_none`), any other type always. The stored type must implement
/// `Serialize` and `DeserializeOwned`.
///
/// # Behaviour
///
/// - With an L1 in front of Redis ([`CacheBuilder::l1_capacity`]), a call
///   first looks in this process's L1: a hit returns a clone of the decoded
///   value (a decode of its bytes when the type is not `Clone`) without a
///   round trip. An L2 hit fills the L1; any change to the key in Redis
///   removes the copy (see [`CacheBuilder::l1_capacity`]).
/// - Concurrent calls with one key share one lookup and one body run; if that
///   run fails (an `Err`, or the call is cancelled), the waiting callers
///   take turns: one of them runs the body while the others wait for it, so
///   a failing body runs one call at a time, each caller getting its own
///   result (a `None` that is not stored lets each run the body at once).
///   A tagged value is handed to the waiting callers only once
///   its write went in: if a tag was invalidated while the body ran, they
///   run the body themselves.
/// - A backend failure or a missed deadline never reaches the caller: the body
///   runs and its result is returned (fail-open); the failure is logged and
///   counted in [`Stats::errors`].
/// - A stored value that does not decode is a miss and is overwritten.
///
/// # Companions
///
/// Next to each `#[cached]` function `f`, with its visibility and generics,
/// the macro writes two functions:
///
/// - `f_uncached(..)`: the same signature and the body as written, without
///   the cache (no lookup, nothing stored): for tests, and for callers that
///   must see fresh data.
/// - `f_invalidate(..)`: the same parameters (the receiver and skipped ones
///   included, though only the key's are read), `async`, returning
///   `Result<bool, CacheError>`: removes the entry those arguments map to,
///   `Ok(true)` if there was one. It works for hashed keys too, which no
///   template could name.
///
/// ```
/// use cache_runtime::{cached, Cache};
///
/// #[cached(name = "search")]
/// async fn search(query: String, page: u32) -> Vec<String> {
///     vec![format!("{query}:{page}")]
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_runtime::CacheError> {
/// let cache = Cache::builder().build()?;
/// cache.scope(async {
///     search("lamp".into(), 1).await;
///     assert!(search_invalidate("lamp".into(), 1).await.unwrap());
///     assert!(!search_invalidate("lamp".into(), 1).await.unwrap(), "already gone");
///     assert_eq!(search_uncached("desk".into(), 2).await, ["desk:2"]);
/// }).await;
/// assert_eq!(cache.stats().misses, 1, "the uncached call did not look up");
/// # Ok(())
/// # }
/// ```
///
/// In a trait `impl`, write `#[cached(no_companions, ...)]`: an `impl` may
/// define only the trait's methods. Without it, rustc reports "method
/// `f_uncached` is not a member of trait". A default method in the trait
/// itself gets its companions as further default methods.
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
///     let __cache_call = __cache_rt::Call::new(&__CACHE_SITE, None).key_fmt(format_args!("user:{}:name", __cache_rt::key_part::<dyn core::fmt::Display>(&id)));
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
/// With `tags`, one `.tag(format_args!(..))` per tag follows the key. The
/// companions are, by hand:
///
/// ```
/// # async fn user_name(id: u64) -> Option<String> { None }
/// /// `user_name` without the cache: runs the body every time, and reads or stores nothing.
/// async fn user_name_uncached(id: u64) -> Option<String> {
///     // The body in the same block as in `user_name`, so that an error in
///     // it is reported once.
///     let __cache_body = async move {
///         let __cache_ret: Option<String> = { Some(format!("user {id}")) };
///         return __cache_ret;
///     };
///     __cache_body.await
/// }
///
/// /// Removes the entry that `user_name` caches for these arguments: `Ok(true)` if there was one.
/// async fn user_name_invalidate(id: u64) -> Result<bool, cache_runtime::CacheError> {
///     use cache_runtime::__private as __cache_rt;
///     static __CACHE_SITE: __cache_rt::Site =
///         __cache_rt::Site::companion(concat!(module_path!(), "::user_name"), __cache_rt::Ttl::Secs(600));
///     let __cache_invalidate = __cache_rt::Call::new(&__CACHE_SITE, None)
///         .key_fmt(format_args!("user:{}:name", __cache_rt::key_part::<dyn core::fmt::Display>(&id)))
///         .invalidate();
///     __cache_invalidate.await
/// }
/// ```
///
/// (`__private` is not public API; the expansion may change between releases.)
pub use cache_macros::cached;

/// Write-through: runs an `async fn`, then stores what it returned under a
/// key, replacing the value there, so that the `#[cached]` function reading
/// that key sees the new value without running its body.
///
/// ```
/// use cache_runtime::{cache_put, cached, Cache};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
/// struct Product { id: u64, name: String }
///
/// #[cached(ttl = 3600, key = "product:{id}")]
/// async fn product(id: u64) -> Option<Product> {
///     None // the database query
/// }
///
/// #[cache_put(ttl = 3600, key = "product:{product.id}")]
/// async fn save_product(product: Product) -> Result<Product, String> {
///     Ok(product) // the database update
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cache = Cache::builder().build()?;
/// let lamp = Product { id: 7, name: "lamp".into() };
/// cache.scope(async {
///     save_product(lamp.clone()).await.unwrap();
///     assert_eq!(product(7).await, Some(lamp)); // a hit: the body did not run
/// }).await;
/// assert_eq!(cache.stats().hits, 1);
/// # Ok(())
/// # }
/// ```
///
/// # Options
///
/// - `key = "product:{product.id}"` (required): a template, as in
///   [`#[cached]`](macro@cached); it must render the same key as the
///   function that reads the value.
/// - `ttl`, `l1`, `l1_ttl`, `tags`, `name`, `cache`, `crate`, `cache_none`:
///   as in [`#[cached]`](macro@cached).
///
/// What is stored follows the same rules: `Result<T, E>` stores `Ok` only,
/// `Option<T>` `Some` only (unless `cache_none`), any other type always;
/// nothing else is touched when nothing is stored. The function's result
/// is returned in every case: a failing cache is logged and counted, never
/// reported to the caller.
///
/// # What it expands to
///
/// The key and tags are rendered before the body runs (the body may move
/// the arguments); the body moves into an `async move` block, and `put`
/// runs it, then stores. By hand, `save_product` above is:
///
/// ```
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Product { id: u64 }
/// async fn save_product(product: Product) -> Result<Product, String> {
///     use cache_runtime::__private as __cache_rt;
///     static __CACHE_SITE: __cache_rt::Site =
///         __cache_rt::Site::new(concat!(module_path!(), "::save_product"), __cache_rt::Ttl::Secs(3600));
///     let __cache_call = __cache_rt::Call::new(&__CACHE_SITE, None)
///         .key_fmt(format_args!("product:{}", __cache_rt::key_part::<dyn core::fmt::Display>(&product.id)));
///     {
///         let __cache_body = async move {
///             let __cache_ret: Result<Product, String> = { Ok(product) };
///             return __cache_ret;
///         };
///         __cache_call.put(__cache_rt::OkOnly, __cache_body)
///     }
///     .await
/// }
/// ```
pub use cache_macros::cache_put;

/// Evicts entries when an `async fn` succeeds: keys, tags and a pattern,
/// rendered from its arguments.
///
/// ```
/// use cache_runtime::{cache_evict, cached, Cache};
///
/// #[cached(ttl = 600, key = "product:{id}", tags = ["products"])]
/// async fn product(id: u64) -> String {
///     format!("product {id}")
/// }
///
/// #[cache_evict(key = "product:{id}")]
/// async fn delete_product(id: u64) -> Result<(), String> {
///     Ok(()) // the database delete
/// }
///
/// #[cache_evict(tags = ["products"], pattern = "products:list:*")]
/// async fn reprice_all() -> Result<(), String> {
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cache = Cache::builder().build()?;
/// cache.scope(async {
///     product(1).await;
///     product(2).await;
///     delete_product(1).await.unwrap();
/// }).await;
/// assert!(!cache.exists("product:1").await?);
/// assert!(cache.exists("product:2").await?);
/// cache.scope(reprice_all()).await?;
/// assert!(!cache.exists("product:2").await?);
/// # Ok(())
/// # }
/// ```
///
/// # Options
///
/// At least one of `key`, `keys`, `tags` and `pattern`; they combine.
///
/// - `key = "product:{id}"`, `keys = ["product:{id}", "product:slug:{slug}"]`:
///   keys to remove, templates as in [`#[cached]`](macro@cached). A template
///   renders the same key here as in the `#[cached]` function with the same
///   template and arguments. Hashed keys have no template: remove them with
///   the `_invalidate` companion of the `#[cached]` function.
/// - `tags = ["products", "category:{cat}"]`: removes every entry recorded
///   under these tags (see [`Cache::invalidate_tags`]).
/// - `pattern = "products:list:{category}:*"`: removes the keys under the
///   cache's prefix matching the Redis glob pattern, in batches (see
///   [`Cache::clear_pattern`]). A placeholder's value matches literally: it
///   is escaped as in a key template with the pattern's text (its glob
///   syntax, `*`, `?` and `[...]`, left out: `"pair:{a}-*"` escapes as
///   `"pair:{a}-{b}"` does), then its `*`, `?`, `[`, `]` and `\` are
///   escaped for the glob.
/// - `before`: evict before the body runs, whatever it returns; without it,
///   eviction follows a body that succeeded: anything but an `Err`.
/// - `name`, `cache`, `crate`: as in [`#[cached]`](macro@cached).
///
/// A failing cache is logged and counted, never reported to the caller: the
/// function's result is returned as the body produced it. A placeholder
/// whose `Display` fails leaves out the key, tag or pattern it is in (never
/// a truncated one, which could match more), with an error logged; the
/// others are evicted.
///
/// # What it expands to
///
/// By hand, `delete_product` above is:
///
/// ```
/// async fn delete_product(id: u64) -> Result<(), String> {
///     use cache_runtime::__private as __cache_rt;
///     static __CACHE_SITE: __cache_rt::Site =
///         __cache_rt::Site::new(concat!(module_path!(), "::delete_product"), __cache_rt::Ttl::Default);
///     let __cache_evict = __cache_rt::Call::new(&__CACHE_SITE, None)
///         .evict()
///         .key(format_args!("product:{}", __cache_rt::key_part::<dyn core::fmt::Display>(&id)));
///     {
///         let __cache_body = async move {
///             let __cache_ret: Result<(), String> = { Ok(()) };
///             return __cache_ret;
///         };
///         // `OkOnly`: an `Err` evicts nothing; `false`: not `before`.
///         __cache_evict.run(__cache_rt::OkOnly, false, __cache_body)
///     }
///     .await
/// }
/// ```
///
/// A pattern's placeholders are wrapped: `.pattern(format_args!("products:list:{}:*",
/// __cache_rt::glob_literal(&__cache_rt::key_part::<dyn core::fmt::Display>(&category))))`:
/// escaped as a key template's are, then as a glob, so the pattern matches what
/// a key template rendered for the same value.
pub use cache_macros::cache_evict;

/// Object-safe serde, used by the [`Codec`] trait.
pub use erased_serde;

#[doc(hidden)]
pub mod __private;
