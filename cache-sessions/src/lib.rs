//! A [`tower_sessions`](https://docs.rs/tower-sessions/0.15) session store on a
//! [`cache_runtime::Cache`]: sessions live in Redis (or a Redis Cluster, or
//! the memory store in tests), one key per session, `{prefix}:session:{id}`,
//! expiring with the session.
//!
//! For tower-sessions 0.15 (its core crate, `tower-sessions-core`, is pinned
//! at `=0.15.0`, as a store must be: that crate does not follow semver for
//! store authors).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use cache_sessions::CacheSessionStore;
//! use tower_sessions_core::session::{Id, Record};
//! use tower_sessions_core::SessionStore as _;
//!
//! let cache = cache_runtime::Cache::builder().prefix("shop").build().unwrap(); // or .redis(url)
//! let store = CacheSessionStore::new(cache.clone());
//!
//! let mut record = Record {
//!     id: Id::default(),
//!     data: Default::default(),
//!     expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
//! };
//! store.create(&mut record).await.unwrap();
//! assert!(cache.exists(&format!("session:{}", record.id)).await.unwrap());
//! assert_eq!(store.load(&record.id).await.unwrap(), Some(record.clone()));
//! store.delete(&record.id).await.unwrap();
//! assert_eq!(store.load(&record.id).await.unwrap(), None);
//! # }
//! ```
//!
//! - `create` stores the record only under an id no session holds (`SET
//!   NX`), drawing a new id on a collision, so that two sessions never
//!   share one.
//! - `load` reads the store itself, never the cache's L1: a session deleted
//!   (revoked) by one instance is not served by another a moment later.
//! - Errors keep their cause: an encoding failure is `Encode`, a failing
//!   store `Backend`; a stored value that does not decode is no session.

#![warn(missing_docs)]

use cache_runtime::{Cache, CacheError};
use std::time::Duration;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{Error, Result};
use tower_sessions_core::SessionStore;

/// How many ids `create` draws before it gives up (a collision of 128-bit
/// random ids is not expected once; a second one says the store is wrong).
const CREATE_ATTEMPTS: usize = 8;

/// A [`SessionStore`] on a [`Cache`].
///
/// ```
/// let cache = cache_runtime::Cache::builder().build().unwrap();
/// let store = cache_sessions::CacheSessionStore::new(cache);
/// let layer = tower_sessions::SessionManagerLayer::new(store);
/// # drop(layer);
/// ```
#[derive(Debug, Clone)]
pub struct CacheSessionStore {
    cache: Cache,
}

impl CacheSessionStore {
    /// A store keeping sessions in `cache`, under `{prefix}:session:{id}`.
    ///
    /// ```
    /// let cache = cache_runtime::Cache::builder().prefix("app").build().unwrap();
    /// let store = cache_sessions::CacheSessionStore::new(cache);
    /// # drop(store);
    /// ```
    pub fn new(cache: Cache) -> Self {
        CacheSessionStore { cache }
    }

    fn key(id: &Id) -> String {
        format!("session:{id}")
    }
}

/// How long a record has left, or `None` if it has expired.
fn time_left(record: &Record) -> Option<Duration> {
    let left = record.expiry_date - time::OffsetDateTime::now_utc();
    let left = Duration::try_from(left).ok()?;
    // Redis keeps milliseconds; less than one is gone already.
    (left >= Duration::from_millis(1)).then_some(left)
}

fn error(e: CacheError) -> Error {
    match e {
        CacheError::Encode { .. } => Error::Encode(e.to_string()),
        other => Error::Backend(other.to_string()),
    }
}

#[async_trait::async_trait]
impl SessionStore for CacheSessionStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        let Some(ttl) = time_left(record) else {
            return Ok(()); // expired already: nothing to keep
        };
        for _ in 0..CREATE_ATTEMPTS {
            let key = Self::key(&record.id);
            if self
                .cache
                .set_if_absent(&key, &*record, ttl)
                .await
                .map_err(error)?
            {
                return Ok(());
            }
            tracing::warn!("a new session's id is taken; drawing another");
            record.id = Id::default();
        }
        Err(Error::Backend(format!(
            "no free session id after {CREATE_ATTEMPTS} tries"
        )))
    }

    async fn save(&self, record: &Record) -> Result<()> {
        let key = Self::key(&record.id);
        match time_left(record) {
            Some(ttl) => self.cache.set(&key, record, ttl).await.map_err(error),
            None => self.cache.delete(&key).await.map(drop).map_err(error),
        }
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let record: Option<Record> = self.cache.get_fresh(&Self::key(id)).await.map_err(error)?;
        // Redis expires the key with the session; checked all the same.
        Ok(record.filter(|r| time_left(r).is_some()))
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        self.cache
            .delete(&Self::key(id))
            .await
            .map(drop)
            .map_err(error)
    }
}
