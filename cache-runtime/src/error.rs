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
    /// Taking, renewing or giving up a fill lock.
    Lock,
    /// Reading the server's own figures ([`Cache::server_info`](crate::Cache::server_info)).
    ServerInfo,
}

impl Operation {
    /// The name in logs, errors and the `operation` label of metrics.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Operation::Get => "get",
            Operation::Set => "set",
            Operation::Delete => "delete",
            Operation::Exists => "exists",
            Operation::ClearPattern => "clear_pattern",
            Operation::InvalidateTags => "invalidate_tags",
            Operation::WriteBehind => "write_behind",
            Operation::Lock => "lock",
            Operation::ServerInfo => "server_info",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
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
    Redis(redis::RedisError),
    /// The server refused this client: authentication failed, a TLS
    /// handshake failed, or its ACL denies a command. `reason` says which
    /// and names the setting to check; neither it nor `source` ever holds
    /// the password.
    #[error("{reason}: {source}")]
    Refused {
        /// What was refused, and the setting to check.
        reason: &'static str,
        /// The client's error.
        #[source]
        source: redis::RedisError,
    },
    /// The circuit breaker is open: the backend failed several times in a
    /// row, so commands skip it without a round trip until a probe, at most
    /// this long from now, finds it answering again.
    #[error(
        "circuit breaker open after repeated backend failures; the next probe is in at most {0:?}"
    )]
    CircuitOpen(Duration),
    /// The backend does not implement this feature (`"tags"`, ...).
    #[error("this backend does not support {0}")]
    Unsupported(&'static str),
    /// Any other failure of a user-supplied backend.
    #[error("{0}")]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

impl From<redis::RedisError> for BackendError {
    fn from(error: redis::RedisError) -> Self {
        match refusal(&error) {
            Some(reason) => BackendError::Refused {
                reason,
                source: error,
            },
            None => BackendError::Redis(error),
        }
    }
}

/// Why the server refused this client, if it did, with the setting to check.
fn refusal(error: &redis::RedisError) -> Option<&'static str> {
    use redis::{ErrorKind, ServerErrorKind};
    match error.kind() {
        ErrorKind::AuthenticationFailed => return Some(AUTH_FAILED),
        ErrorKind::Server(ServerErrorKind::NoPerm) => return Some(NO_PERMISSION),
        _ => {}
    }
    match error.code() {
        Some("WRONGPASS" | "NOAUTH") => return Some(AUTH_FAILED),
        Some("NOPERM") => return Some(NO_PERMISSION),
        _ => {}
    }
    // A TLS failure comes as an I/O error wrapping rustls's; its text is
    // the stable part of it.
    if !error.is_io_error() {
        return None;
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    // A cluster client reports a refused seed inside an I/O error, as
    // text ("Failed to create initial connections - ...").
    let reason = if text.contains("AuthenticationFailed") || text.contains("WRONGPASS") {
        AUTH_FAILED
    } else if text.contains("NOPERM") {
        NO_PERMISSION
    } else if text.contains("UnknownIssuer") || text.contains("BadSignature") {
        "TLS handshake failed: untrusted certificate (no trusted CA signed the server's; \
         check `tls_ca_file`)"
    } else if text.contains("NotValidForName") {
        "TLS handshake failed: the server's certificate does not name this host (check the host \
         in `redis`)"
    } else if text.contains("Expired") || text.contains("NotValidYet") {
        "TLS handshake failed: the server's certificate is expired or not valid yet"
    } else if text.contains("received fatal alert")
        && [
            "CertificateRequired",
            "BadCertificate",
            "UnknownCA",
            "CertificateUnknown",
        ]
        .iter()
        .any(|alert| text.contains(alert))
    {
        "TLS handshake failed: the server refused this client's certificate or wants one \
         (check `tls_client_cert_files`)"
    } else if text.contains("InvalidContentType") || text.contains("CorruptMessage") {
        "TLS handshake failed: the server does not speak TLS on this port (check `redis`)"
    } else {
        return None;
    };
    Some(reason)
}

const AUTH_FAILED: &str = "authentication failed: wrong password or unknown user (check \
                           `password` and `username`, or the URL's credentials)";
const NO_PERMISSION: &str = "permission denied by the server's ACL (check the ACL rules of \
                             `username`: the README lists the commands and keys the cache needs)";

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
    /// Caching is turned off ([`CacheBuilder::disabled`](crate::CacheBuilder::disabled),
    /// `CACHE_DISABLED=1`): nothing is read or written.
    #[error("caching is turned off (CACHE_DISABLED / CacheBuilder::disabled): nothing is read or written")]
    Disabled,
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
                BackendError::Refused { .. } => false,
                BackendError::Other(_)
                | BackendError::Unsupported(_)
                | BackendError::CircuitOpen(_) => false,
            },
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(error: redis::RedisError) -> Option<&'static str> {
        match BackendError::from(error) {
            BackendError::Refused { reason, .. } => Some(reason),
            _ => None,
        }
    }

    #[test]
    fn a_cluster_seed_refusal_inside_an_io_error_is_named() {
        use redis::ErrorKind::Io;
        let wrapped = |detail: &str| {
            redis::RedisError::from((Io, "Failed to create initial connections", detail.into()))
        };
        let auth = "Io: Password authentication failed - AuthenticationFailed";
        assert_eq!(reason(wrapped(auth)), Some(AUTH_FAILED));
        let denied = "NOPERM this user has no permissions to run the 'hello' command";
        assert_eq!(reason(wrapped(denied)), Some(NO_PERMISSION));
        assert_eq!(reason(wrapped("Connection refused (os error 111)")), None);
    }
}
