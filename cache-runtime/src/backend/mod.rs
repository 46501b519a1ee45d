//! Where encoded values live: the [`Backend`] trait and its implementations.

use crate::BackendError;
use bytes::Bytes;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub(crate) mod glob;
pub(crate) mod memory;
pub(crate) mod redis;

/// A boxed, sendable future, as returned by [`Backend`] methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Storage for encoded values under full keys (prefix included).
///
/// The runtime applies the command deadline, the envelope, the codec, the
/// statistics and fail-open around these methods; a backend only moves bytes.
/// Patterns use Redis glob syntax (`*`, `?`, `[a-z]`, `\` escapes).
///
/// ```
/// use cache_runtime::{Backend, BackendError, BoxFuture, Cache};
/// use bytes::Bytes;
/// use std::time::Duration;
///
/// /// A backend that never stores anything.
/// #[derive(Debug)]
/// struct Nothing;
///
/// impl Backend for Nothing {
///     fn get<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, BackendError>> {
///         Box::pin(async { Ok(None) })
///     }
///     fn set<'a>(&'a self, _key: &'a str, _value: Bytes, _ttl: Duration) -> BoxFuture<'a, Result<(), BackendError>> {
///         Box::pin(async { Ok(()) })
///     }
///     fn delete<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<bool, BackendError>> {
///         Box::pin(async { Ok(false) })
///     }
///     fn exists<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<bool, BackendError>> {
///         Box::pin(async { Ok(false) })
///     }
///     fn clear_pattern<'a>(&'a self, _pattern: &'a str) -> BoxFuture<'a, Result<u64, BackendError>> {
///         Box::pin(async { Ok(0) })
///     }
///     fn kind(&self) -> &'static str { "nothing" }
/// }
///
/// let cache = Cache::builder().backend(Nothing).build().unwrap();
/// # drop(cache);
/// ```
pub trait Backend: fmt::Debug + Send + Sync + 'static {
    /// The bytes stored at `key`, or `None`.
    ///
    /// # Errors
    ///
    /// When the store cannot be reached or answers with an error.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, BackendError>>;
    /// Stores `value` at `key` for `ttl` (never zero).
    ///
    /// # Errors
    ///
    /// When the store cannot be reached or answers with an error.
    fn set<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), BackendError>>;
    /// Removes `key`; `true` if it was present.
    ///
    /// # Errors
    ///
    /// When the store cannot be reached or answers with an error.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, BackendError>>;
    /// Whether `key` is present.
    ///
    /// # Errors
    ///
    /// When the store cannot be reached or answers with an error.
    fn exists<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, BackendError>>;
    /// Removes every key matching the glob `pattern`, incrementally (never
    /// blocking the store on a large keyspace); returns how many were removed.
    ///
    /// # Errors
    ///
    /// When the store cannot be reached or answers with an error; keys removed
    /// before the failure stay removed.
    fn clear_pattern<'a>(&'a self, pattern: &'a str) -> BoxFuture<'a, Result<u64, BackendError>>;
    /// A short name: `"redis"`, `"memory"`, ...
    fn kind(&self) -> &'static str;
    /// Whether every operation completes in-process without I/O, so the
    /// runtime need not arm a deadline timer around it.
    fn is_local(&self) -> bool {
        false
    }
}
