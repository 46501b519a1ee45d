//! The error type of the direct API.

use std::fmt;
use std::time::Duration;

/// The operation a [`CacheError`] or a log line refers to.
///
/// ```
/// use cache_runtime::Operation;
/// assert_eq!(Operation::ClearPattern.to_string(), "clear_pattern");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// Reading one key.
    Get,
    /// Writing one key with a TTL.
    Set,
    /// Removing one key.
    Delete,
    /// Checking whether one key is present.
    Exists,
    /// Removing every key that matches a pattern.
    ClearPattern,
    /// Removing every entry recorded under some tags.
    InvalidateTags,
    /// A write-behind write, or a check of what its flusher has delivered.
    WriteBehind,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Get => "get",
            Operation::Set => "set",
            Operation::Delete => "delete",
            Operation::Exists => "exists",
            Operation::ClearPattern => "clear_pattern",
            Operation::InvalidateTags => "invalidate_tags",
            Operation::WriteBehind => "write_behind",
        })
    }
}

/// What went wrong inside a [`Backend`](crate::Backend).
///
/// The Redis backend, the memory store and the test mock all report failures
/// with these kinds, so the runtime's fail-open and deadline paths treat them
/// alike.
///
/// ```
/// use cache_runtime::BackendError;
/// use std::time::Duration;
/// let e = BackendError::Timeout(Duration::from_millis(100));
/// assert_eq!(e.to_string(), "no reply within 100ms");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The command got no reply before the deadline.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// An error reported by the Redis client (connection refused, dropped
    /// connection, an error reply, ...).
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    /// The circuit breaker is open: the backend failed several times in a
    /// row, so commands skip it without a round trip until a probe, at most
    /// this long from now, finds it answering again.
    #[error("circuit breaker open after repeated backend failures; the next probe is in at most {0:?}")]
    CircuitOpen(Duration),
    /// The backend does not implement this feature (`"tags"`, ...).
    #[error("this backend does not support {0}")]
    Unsupported(&'static str),
    /// Any other failure of a user-supplied backend.
    #[error("{0}")]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

/// The error of the direct API ([`Cache::get`](crate::Cache::get),
/// [`Cache::set`](crate::Cache::set), ...) and of building a [`Cache`](crate::Cache).
///
/// Functions annotated with `#[cached]` never see it: they fail open and run
/// their body instead. Messages name the operation and the key, and never
/// contain a password.
///
/// ```
/// use cache_runtime::{Cache, CacheError};
/// let err = Cache::builder().prefix("").build().unwrap_err();
/// assert!(matches!(err, CacheError::Config { setting: "prefix", .. }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// A setting is invalid. `setting` names it (a builder method or an
    /// environment variable); `reason` says what is wrong and never echoes a
    /// credential.
    #[error("invalid setting `{setting}`: {reason}")]
    Config {
        /// The builder method or environment variable at fault.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The backend failed or timed out.
    #[error("cache {op} of `{key}` failed: {source}")]
    Backend {
        /// The operation that failed.
        op: Operation,
        /// The full key (with the prefix) or pattern.
        key: String,
        /// The underlying failure.
        #[source]
        source: BackendError,
    },
    /// The value could not be encoded with the cache's codec, or is larger
    /// than the configured maximum value size.
    #[error("cannot encode the value for `{key}`: {reason}")]
    Encode {
        /// The full key.
        key: String,
        /// What went wrong.
        reason: String,
    },
    /// [`Cache::install`](crate::Cache::install) was called a second time.
    #[error("a process-wide cache is already installed")]
    AlreadyInstalled,
    /// A [`WriteBehind`](crate::write_behind::WriteBehind) handle was used
    /// after its flusher stopped ([`shutdown`](crate::write_behind::WriteBehind::shutdown)).
    #[error("write-behind `{name}` has been shut down")]
    WriteBehindStopped {
        /// The write-behind's name.
        name: String,
    },
    /// A [`WriteBehind`](crate::write_behind::WriteBehind)'s flusher stopped
    /// ([`shutdown`](crate::write_behind::WriteBehind::shutdown)) without
    /// delivering everything written: the sink still failed at the shutdown
    /// timeout, or Redis failed while draining. On Redis what is left stays
    /// in the stream for the next start.
    #[error("write-behind `{name}` stopped without delivering everything: {reason}")]
    WriteBehindNotDrained {
        /// The write-behind's name.
        name: String,
        /// What went wrong.
        reason: String,
    },
}

impl CacheError {
    pub(crate) fn config(setting: &'static str, reason: impl Into<String>) -> Self {
        CacheError::Config {
            setting,
            reason: reason.into(),
        }
    }

    /// Whether the backend was skipped because the circuit breaker is open
    /// (see [`CacheBuilder::breaker_threshold`](crate::CacheBuilder::breaker_threshold)).
    ///
    /// ```
    /// use cache_runtime::{BackendError, CacheError, Operation};
    /// use std::time::Duration;
    /// let e = CacheError::Backend {
    ///     op: Operation::Get,
    ///     key: "cache:k".into(),
    ///     source: BackendError::CircuitOpen(Duration::from_millis(300)),
    /// };
    /// assert!(e.is_circuit_open() && !e.is_timeout());
    /// ```
    pub fn is_circuit_open(&self) -> bool {
        matches!(
            self,
            CacheError::Backend {
                source: BackendError::CircuitOpen(_),
                ..
            }
        )
    }

    /// Whether the error is a timeout of the backend.
    ///
    /// ```
    /// use cache_runtime::{BackendError, CacheError, Operation};
    /// use std::time::Duration;
    /// let e = CacheError::Backend {
    ///     op: Operation::Get,
    ///     key: "cache:k".into(),
    ///     source: BackendError::Timeout(Duration::from_millis(5)),
    /// };
    /// assert!(e.is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        match self {
            CacheError::Backend { source, .. } => match source {
                BackendError::Timeout(_) => true,
                BackendError::Redis(e) => e.is_timeout(),
                BackendError::Other(_)
                | BackendError::Unsupported(_)
                | BackendError::CircuitOpen(_) => false,
            },
            _ => false,
        }
    }
}
