//! Every form of `#[cached]`, its `_uncached` and `_invalidate` companions,
//! `#[cache_put]` and `#[cache_evict]`, compiled under strict lints: the generated code
//! must not add a single warning to a crate that denies them. CI's
//! `cargo clippy --workspace --all-targets -- -D warnings` builds this crate,
//! so compiling cleanly is the test; the test at the bottom runs a few of the
//! functions so that they are exercised, not only compiled.
//!
//! A lint that fires here on generated code is fixed in the expansion
//! (`cache-macros/src/expand.rs`), never allowed here.

#![forbid(unsafe_code)]
#![deny(
    warnings,
    missing_docs,
    unreachable_pub,
    unused_qualifications,
    unused_results,
    unused_lifetimes,
    unused_import_braces,
    rust_2018_idioms,
    trivial_casts,
    trivial_numeric_casts,
    unit_bindings,
    single_use_lifetimes,
    redundant_lifetimes,
    let_underscore_drop,
    missing_debug_implementations,
    unused_macro_rules,
    non_ascii_idents,
    keyword_idents,
    rust_2024_compatibility,
    clippy::all,
    clippy::pedantic
)]

use cache_runtime::{cache_evict, cache_put, cached, Cache};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A stored value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
}

/// Stands in for a connection pool: not `Serialize`, so it is skipped.
#[derive(Debug, Default)]
pub struct Db {
    queries: std::sync::atomic::AtomicUsize,
}

impl Db {
    /// How many queries ran.
    #[must_use]
    pub fn queries(&self) -> usize {
        self.queries.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn query(&self) {
        let _ = self
            .queries
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A failed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError;

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("query failed")
    }
}

impl std::error::Error for DbError {}

/// A request with nested fields, keyed by `{req.user.id}` and `{req.page.0}`.
#[derive(Debug)]
pub struct Request {
    /// Who asks.
    pub user: UserRef,
    /// Which page, and its size.
    pub page: (u32, u32),
}

/// A user reference.
#[derive(Debug)]
pub struct UserRef {
    /// Its id.
    pub id: u64,
}

// ---- free functions: template and hashed keys, every result kind ----

/// Template key, plain return type.
#[cached(ttl = 60, key = "product:{id}")]
pub async fn product(id: u64) -> Product {
    Product {
        id,
        name: format!("Lamp #{id}"),
    }
}

/// Hashed key, `Result` (only `Ok` is stored), a skipped pool.
///
/// # Errors
///
/// `DbError` for id 0.
#[cached(ttl = "10m", skip(db))]
pub async fn checked(db: &Db, id: u64) -> Result<Product, DbError> {
    db.query();
    if id == 0 {
        Err(DbError)
    } else {
        Ok(Product {
            id,
            name: format!("Lamp #{id}"),
        })
    }
}

/// `Option`: only `Some` is stored.
#[cached(ttl = "short", key = "name:{id}")]
pub async fn name(id: u64) -> Option<String> {
    (id != 0).then(|| format!("user {id}"))
}

/// `Option` with `cache_none`: `None` is stored too.
#[cached(ttl = "long", key = "maybe:{id}", cache_none)]
pub async fn maybe(id: u64) -> Option<u64> {
    id.checked_sub(1)
}

/// No return type.
#[cached(ttl = "default", skip(db))]
pub async fn warm(db: &Db) {
    db.query();
}

/// An explicit `()` return type.
#[cached(ttl = 5, key = "touch")]
pub async fn touch() -> () {}

/// No parameters, no options.
#[cached]
pub async fn constant() -> u64 {
    42
}

/// Kept out of the in-process L1.
#[cached(ttl = 60, key = "rate:{id}", l1 = false)]
pub async fn rate(id: u64) -> u32 {
    u32::try_from(id % 100).unwrap_or_default()
}

/// A copy in the L1 for at most five seconds.
#[cached(ttl = "10m", key = "price:{id}", l1_ttl = "5s", l1 = true)]
pub async fn price_of(id: u64) -> u64 {
    id * 100
}

/// `crate = ...` naming the usual path.
#[cached(crate = cache_runtime, ttl = "1h30m")]
pub async fn crate_path(x: u32) -> u32 {
    x + 1
}

/// `crate = ...` with a leading `::`.
#[cached(crate = ::cache_runtime, key = "abs:{x}")]
pub async fn crate_absolute_path(x: u32) -> u32 {
    x + 2
}

/// A body that ends in `return x;`.
#[cached]
pub async fn ends_in_return(x: u64) -> u64 {
    let doubled = x * 2;
    return doubled;
}

/// A body that is a single `return`: no lint that the written function
/// would not have.
#[cached(key = "single:{x}")]
pub async fn single_return(x: u64) -> u64 {
    return x * 2;
}

/// A body that is a single diverging call.
#[cached]
pub async fn not_yet(x: u64) -> Option<u64> {
    unimplemented!("{x}")
}

/// An empty body.
#[cached(key = "noop")]
pub async fn noop() {}

/// A raw identifier as the name.
#[cached]
pub async fn r#match(x: u64) -> bool {
    x.is_multiple_of(2)
}

/// A body that returns early.
#[cached(key = "early:{x}")]
pub async fn early_return(x: u64) -> u64 {
    if x == 0 {
        return 1;
    }
    x * 3
}

/// A body that is `todo!()`: no "unreachable code" from the expansion.
#[cached]
pub async fn unfinished(x: u64) -> u64 {
    todo!()
}

/// A body that always panics, typed `!` in a unit function.
///
/// # Panics
///
/// Always.
#[cached]
pub async fn panics(x: u64) {
    panic!("{x}")
}

/// An inner attribute in the body stays on the function.
#[cached(key = "inner:{x}")]
pub async fn inner_attribute(x: u64) -> u64 {
    #![allow(clippy::identity_op)]
    x + 0
}

/// A generic function; `T` is stored and hashed.
#[cached(ttl = 60)]
pub async fn generic<T>(value: T) -> T
where
    T: Serialize + DeserializeOwned + Send,
{
    value
}

/// A type parameter in the body and the key only: each instantiation has
/// its own entries.
#[cached(ttl = 60)]
pub async fn type_of<T>(id: u64) -> String {
    format!("{}:{id}", std::any::type_name::<T>())
}

/// Const parameters are hashed too.
#[cached(ttl = 60)]
pub async fn times<const N: u64>(id: u64) -> u64 {
    id * N
}

/// A method of a generic impl: the macro cannot see `T`, so it hashes
/// `Self`'s name, and each `Table<T>` has its own entries.
#[derive(Debug)]
pub struct Table<T>(std::marker::PhantomData<T>);

impl<T: Send + Sync> Table<T> {
    /// A new handle.
    #[must_use]
    pub fn new() -> Self {
        Table(std::marker::PhantomData)
    }

    /// The type's name with the id; hashed under `Self`'s name.
    #[cached(ttl = 60, skip(self))]
    pub async fn row(&self, id: u64) -> String {
        format!("{}:{id}", std::any::type_name::<T>())
    }

    /// An associated function whose signature names `Self` (here in its
    /// where clause; `-> Option<Self>` is the common case).
    #[cached(ttl = 60)]
    pub async fn named(id: u64) -> Option<String>
    where
        Self: Sized,
    {
        Some(format!("{}:{id}", std::any::type_name::<Self>()))
    }
}

impl<T: Send + Sync> Default for Table<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// A generic parameter that is skipped.
#[cached(skip(db))]
pub async fn generic_skipped<D: fmt::Debug + Sync>(db: &D, id: u64) -> String {
    format!("{db:?}:{id}")
}

/// An `impl Serialize` argument.
#[cached]
pub async fn impl_argument(value: impl Serialize + Send) -> u64 {
    encoded_len(&value)
}

fn encoded_len<T: Serialize>(value: &T) -> u64 {
    let _ = value;
    7
}

/// `&str` in a template key.
#[cached(key = "greet:{who}")]
pub async fn greet(who: &str) -> String {
    format!("hello {who}")
}

/// `&[T]` hashed.
#[cached(ttl = 30)]
pub async fn total(values: &[u64]) -> u64 {
    values.iter().sum()
}

/// Named lifetimes and a `'static` argument.
#[cached(skip(label))]
pub async fn longest<'a>(a: &'a str, b: &'a str, label: &'static str) -> String {
    let _ = label;
    if a.len() >= b.len() { a } else { b }.to_owned()
}

/// Nested fields and a tuple index in the template; `{{` is a literal brace.
#[cached(key = "orders:{req.user.id}:{req.page.0}:{{all}}")]
pub async fn orders(req: &Request) -> Vec<u64> {
    vec![req.user.id; req.page.1 as usize]
}

/// A destructured parameter used in a template, and an ignored one.
#[cached(key = "pair:{a}:{b}")]
pub async fn pair((a, b): (u32, u32), _: bool) -> u32 {
    a * b
}

/// A `mut` parameter.
#[cached]
pub async fn countdown(mut n: u32) -> u32 {
    let mut steps = 0;
    while n > 0 {
        n /= 2;
        steps += 1;
    }
    steps
}

/// A pinned name.
#[cached(name = "lints::renamed", ttl = 1)]
pub async fn renamed(id: u64) -> u64 {
    id
}

/// A body that awaits another cached function.
#[cached(key = "chain:{id}")]
pub async fn chained(id: u64) -> Option<String> {
    name(id).await.map(|n| n.to_uppercase())
}

// ---- methods ----

/// A service holding its own cache.
#[derive(Debug, Clone)]
pub struct Service {
    cache: Cache,
    tenant: String,
}

impl Service {
    /// A service over `cache`.
    #[must_use]
    pub fn new(cache: Cache, tenant: &str) -> Self {
        Service {
            cache,
            tenant: tenant.to_owned(),
        }
    }

    /// `cache = self.cache`, `{self.tenant}` in the key.
    ///
    /// # Errors
    ///
    /// `DbError` for id 0.
    #[cached(cache = self.cache, ttl = 60, key = "t:{self.tenant}:product:{id}")]
    pub async fn product(&self, id: u64) -> Result<Product, DbError> {
        if id == 0 {
            return Err(DbError);
        }
        Ok(product(id).await)
    }

    /// Hashed method: `self` is never hashed.
    #[cached(cache = self.cache, skip(self))]
    pub async fn count(&self, kind: &str) -> usize {
        self.tenant.len() + kind.len()
    }

    /// `Self` as the return type.
    #[cached(cache = self.cache, key = "clone:{self.tenant}")]
    pub async fn snapshot(&self) -> Snapshot {
        Snapshot {
            tenant: self.tenant.clone(),
        }
    }

    /// An `Arc<Self>` receiver.
    #[cached(key = "arc:{self.tenant}:{id}")]
    pub async fn shared(self: std::sync::Arc<Self>, id: u64) -> u64 {
        id + self.tenant.len() as u64
    }

    /// A `&mut self` method.
    #[cached(key = "bump:{n}")]
    pub async fn bump(&mut self, n: u32) -> u32 {
        self.tenant.push('!');
        n
    }

    /// A consuming method.
    #[cached(key = "into:{id}")]
    pub async fn into_tenant(self, id: u64) -> String {
        format!("{}:{id}", self.tenant)
    }
}

/// What [`Service::snapshot`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The tenant.
    pub tenant: String,
}

impl Snapshot {
    /// `-> Self` in an impl.
    #[cached(key = "snapshot:{tenant}")]
    pub async fn of(tenant: &str) -> Self {
        Snapshot {
            tenant: tenant.to_owned(),
        }
    }
}

// ---- native async fn in traits ----

/// A trait whose default method is cached.
#[allow(async_fn_in_trait)] // the trait is the test, not an API
pub trait Catalog {
    /// The tenant, for keys.
    fn tenant(&self) -> &str;

    /// Cached default method.
    #[cached(key = "catalog:{id}")]
    async fn title(&self, id: u64) -> String {
        format!("{}:{id}", self.tenant())
    }

    /// Overridden by the impl.
    async fn price(&self, id: u64) -> u64;
}

impl Catalog for Service {
    fn tenant(&self) -> &str {
        &self.tenant
    }

    // An impl may define only the trait's methods: no companions.
    #[cached(cache = self.cache, key = "price:{self.tenant}:{id}", no_companions)]
    async fn price(&self, id: u64) -> u64 {
        id * 100
    }
}

// ---- tags, write-through and eviction ----

/// Tags with placeholders.
#[cached(ttl = 60, key = "tagged:{id}", tags = ["products", "category:{category}"])]
pub async fn tagged(id: u64, category: &str) -> Option<Product> {
    (id != 0).then(|| Product {
        id,
        name: category.to_owned(),
    })
}

/// Write-through of a `Result`.
///
/// # Errors
///
/// `DbError` for id 0.
#[cache_put(key = "product:{product.id}", ttl = 60, tags = ["products"])]
pub async fn save(db: &Db, product: Product) -> Result<Product, DbError> {
    db.query();
    if product.id == 0 {
        return Err(DbError);
    }
    Ok(product)
}

/// Write-through of a plain value, a preset TTL, a pinned name.
#[cache_put(key = "name:{id}", ttl = "short", name = "lints::put_name")]
pub async fn put_name(id: u64) -> Option<String> {
    Some(format!("user {id}"))
}

/// Write-through with a short-lived L1 copy.
#[cache_put(key = "price:{id}", ttl = 60, l1_ttl = 5)]
pub async fn put_price(id: u64) -> u64 {
    id * 100
}

/// Write-through kept out of the L1.
#[cache_put(key = "rate:{id}", l1 = false)]
pub async fn put_rate(id: u64) -> u32 {
    u32::try_from(id % 100).unwrap_or_default()
}

/// Write-through storing `None` too.
#[cache_put(key = "maybe:{id}", cache_none, crate = cache_runtime)]
pub async fn put_maybe(id: u64) -> Option<u64> {
    id.checked_sub(1)
}

/// Eviction of keys, tags and a pattern after success.
///
/// # Errors
///
/// `DbError` for id 0.
#[cache_evict(
    key = "product:{id}",
    keys = ["tagged:{id}", "name:{id}"],
    tags = ["category:{category}"],
    pattern = "orders:{id}:*"
)]
pub async fn delete(db: &Db, id: u64, category: &str) -> Result<(), DbError> {
    db.query();
    if id == 0 {
        Err(DbError)
    } else {
        Ok(())
    }
}

/// Eviction before the body, of a unit function.
#[cache_evict(tags = ["products"], before)]
pub async fn reset(db: &Db) {
    db.query();
}

/// Eviction around a body that is a single diverging call.
///
/// # Panics
///
/// Always.
#[cache_evict(key = "product:{id}")]
pub async fn delete_later(id: u64) -> u64 {
    todo!("{id}")
}

impl Service {
    /// Write-through on a method with `cache = self.cache`.
    #[cache_put(cache = self.cache, key = "t:{self.tenant}:snapshot")]
    pub async fn refresh(&self) -> Snapshot {
        Snapshot {
            tenant: self.tenant.clone(),
        }
    }

    /// Eviction on a `&mut self` method.
    #[cache_evict(cache = self.cache, key = "bump:{n}", pattern = "t:{self.tenant}:*")]
    pub async fn forget(&mut self, n: u32) -> Option<u32> {
        self.tenant.push('?');
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cached_functions_run_on_the_memory_store() {
        let cache = Cache::builder().memory().prefix("lints").build().unwrap();
        let db = Db::default();

        // A miss that queries and stores, then a hit; an `Err` is not stored.
        let first = cache.scope(checked(&db, 1)).await;
        assert_eq!(cache.scope(checked(&db, 1)).await, first);
        assert_eq!(cache.scope(checked(&db, 0)).await, Err(DbError));
        assert_eq!(cache.scope(checked(&db, 0)).await, Err(DbError));
        assert_eq!(db.queries(), 3);
        assert_eq!(cache.stats().hits, 1);

        assert_eq!(cache.scope(greet("ann")).await, "hello ann");
        assert!(cache.exists("greet:ann").await.unwrap());
        assert_eq!(cache.scope(maybe(0)).await, None); // stored: `cache_none`
        assert!(cache.exists("maybe:0").await.unwrap());
        assert_eq!(cache.scope(total(&[1, 2, 3])).await, 6);
        assert_eq!(cache.scope(generic(vec![1u8, 2])).await, vec![1, 2]);
        assert_eq!(cache.scope(inner_attribute(4)).await, 4);

        // `cache = self.cache` needs no scope; the trait's default method does.
        let service = Service::new(cache.clone(), "acme");
        assert_eq!(service.product(3).await.unwrap().id, 3);
        assert!(cache.exists("t:acme:product:3").await.unwrap());
        assert_eq!(service.price(2).await, 200);
        assert!(cache.exists("price:acme:2").await.unwrap());
        assert_eq!(cache.scope(service.title(5)).await, "acme:5");
        assert!(cache.exists("catalog:5").await.unwrap());
        assert_eq!(cache.stats().hits, 1);
    }

    #[tokio::test]
    async fn generic_functions_key_by_their_generic_arguments() {
        let cache = Cache::builder().memory().prefix("lints").build().unwrap();
        cache
            .scope(async {
                assert_eq!(type_of::<u8>(1).await, "u8:1");
                assert_eq!(type_of::<String>(1).await, "alloc::string::String:1");
                assert_eq!(type_of::<u8>(1).await, "u8:1");
                assert!(type_of_invalidate::<String>(1).await.unwrap());
                assert!(!type_of_invalidate::<String>(1).await.unwrap());
                assert!(type_of_invalidate::<u8>(1).await.unwrap());
                assert_eq!(times::<2>(5).await, 10);
                assert_eq!(times::<3>(5).await, 15);
                assert_eq!(times::<2>(5).await, 10);
            })
            .await;
        assert_eq!((cache.stats().hits, cache.stats().misses), (2, 4));
    }

    #[tokio::test]
    async fn methods_of_a_generic_impl_key_by_its_arguments() {
        let cache = Cache::builder().memory().prefix("lints").build().unwrap();
        cache
            .scope(async {
                let (bytes, words) = (Table::<u8>::new(), Table::<String>::new());
                assert_eq!(bytes.row(1).await, "u8:1");
                assert_eq!(words.row(1).await, "alloc::string::String:1");
                assert_eq!(bytes.row(1).await, "u8:1");
                assert!(words.row_invalidate(1).await.unwrap());
                assert!(!words.row_invalidate(1).await.unwrap());
                let named = Table::<u8>::named(2).await;
                assert!(
                    named.as_deref().unwrap().ends_with("Table<u8>:2"),
                    "{named:?}"
                );
                let other = Table::<String>::named(2).await;
                assert!(
                    other
                        .as_deref()
                        .unwrap()
                        .ends_with("Table<alloc::string::String>:2"),
                    "{other:?}"
                );
            })
            .await;
        assert_eq!((cache.stats().hits, cache.stats().misses), (1, 4));
    }

    #[tokio::test]
    async fn companions_put_and_evict_run_on_the_memory_store() {
        let cache = Cache::builder().memory().prefix("lints").build().unwrap();
        let db = Db::default();
        let lamp = Product {
            id: 4,
            name: "lamp".to_owned(),
        };

        // The companions of hashed, templated, generic and method functions.
        assert_eq!(
            cache.scope(checked(&db, 1)).await,
            checked_uncached(&db, 1).await
        );
        assert!(cache.scope(checked_invalidate(&db, 1)).await.unwrap());
        assert!(!cache.scope(checked_invalidate(&db, 1)).await.unwrap());
        assert_eq!(cache.scope(countdown(8)).await, 4);
        assert!(cache.scope(countdown_invalidate(8)).await.unwrap());
        assert!(!cache.scope(generic_invalidate(vec![1u8])).await.unwrap());
        assert!(!cache.scope(pair_invalidate((1, 2), true)).await.unwrap());
        let service = Service::new(cache.clone(), "acme");
        assert_eq!(service.product(3).await, service.product_uncached(3).await);
        assert!(service.product_invalidate(3).await.unwrap());
        assert_eq!(cache.scope(service.title_uncached(5)).await, "acme:5");

        // Write-through, then a hit; eviction after success only.
        assert_eq!(cache.scope(save(&db, lamp.clone())).await, Ok(lamp.clone()));
        assert_eq!(cache.scope(product(4)).await, lamp);
        assert_eq!(cache.scope(delete(&db, 0, "lamps")).await, Err(DbError));
        assert!(cache.exists("product:4").await.unwrap());
        assert_eq!(cache.scope(delete(&db, 4, "lamps")).await, Ok(()));
        assert!(!cache.exists("product:4").await.unwrap());
        assert_eq!(cache.scope(tagged(5, "lamps")).await.unwrap().id, 5);
        cache.scope(reset(&db)).await;
        assert!(!cache.exists("tagged:5").await.unwrap());
        assert_eq!(cache.scope(put_maybe(0)).await, None);
        assert!(cache.exists("maybe:0").await.unwrap());
        assert_eq!(cache.scope(put_name(2)).await.as_deref(), Some("user 2"));
        assert_eq!(cache.scope(put_price(3)).await, 300);
        assert_eq!(cache.scope(price_of(3)).await, 300);
        assert_eq!(cache.scope(put_rate(7)).await, 7);
        assert_eq!(cache.scope(rate(7)).await, 7);
        assert_eq!(service.refresh().await.tenant, "acme");
        assert!(cache.exists("t:acme:snapshot").await.unwrap());
        let mut service = service;
        assert_eq!(service.forget(1).await, Some(1));
        assert!(!cache.exists("t:acme:snapshot").await.unwrap());
    }
}
