//! The call path behind `#[cached]`: one [`Call`] per invocation.

use crate::backend::memory::TypedValue;
use crate::engine::{Tagging, Target};
use crate::{key, Cache, CacheError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The TTL a `#[cached]` function asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// A fixed number of seconds (never zero; the macro checks).
    Secs(u64),
    /// The cache's short preset.
    Short,
    /// The cache's default preset (also used when no `ttl` is given).
    Default,
    /// The cache's long preset.
    Long,
}

/// Whether a function's values are kept in the in-process L1 in front of
/// Redis (`#[cached(l1 = false)]`, `#[cached(l1_ttl = "5s")]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L1 {
    /// Kept, for as long as the entry lives in Redis (the default).
    On,
    /// Never kept: every call reads Redis.
    Off,
    /// Kept for at most this many seconds (never zero; the macro checks).
    MaxSecs(u64),
}

/// A site's options beside its name and TTL.
#[derive(Debug, Clone, Copy)]
struct Options {
    l1: L1,
    /// How long a stored `None` lives (`none_ttl`); `None`: as long as a value.
    none_ttl: Option<Duration>,
    /// Whether a miss takes the cross-process fill lock (`lock = false`
    /// opts out).
    lock: bool,
    /// How long a value is served stale after its TTL while one refresh
    /// runs in the background (`stale = "1h"`).
    stale: Option<Duration>,
    /// Refresh before expiry, with XFetch's β (`early_refresh`, `beta`).
    early: Option<f64>,
}

/// What the macro knows about one `#[cached]` function, in a `static`.
#[derive(Debug)]
pub struct Site {
    name: &'static str,
    ttl: Ttl,
    options: Options,
    warned: AtomicBool,
    /// 0: not checked yet; 1: the only site hashing under `name`; 2: another
    /// site got there first (see [`Site::owns_name`]).
    name_state: AtomicU8,
    /// A companion (`_invalidate`) shares its function's name on purpose.
    claims: bool,
    schema: crate::schema::SiteSchema,
    /// Its metrics' handles, registered on first use.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    metrics: crate::observe::SiteMetrics,
}

impl Options {
    const DEFAULT: Options = Options {
        l1: L1::On,
        none_ttl: None,
        lock: true,
        stale: None,
        early: None,
    };
}

impl Site {
    /// `name` is the stable name in hashed keys.
    pub const fn new(name: &'static str, ttl: Ttl) -> Self {
        Site::with(name, ttl, Options::DEFAULT, true)
    }

    const fn with(name: &'static str, ttl: Ttl, options: Options, claims: bool) -> Self {
        Site {
            name,
            ttl,
            options,
            warned: AtomicBool::new(false),
            name_state: AtomicU8::new(0),
            claims,
            schema: crate::schema::SiteSchema::new(),
            metrics: crate::observe::SiteMetrics::new(),
        }
    }

    /// The same site with other options. Built anew: a site is only ever
    /// made in a `static`'s initializer, where nothing has touched its
    /// cells yet.
    const fn rebuilt(self, options: Options) -> Self {
        let (name, ttl, claims) = (self.name, self.ttl, self.claims);
        std::mem::forget(self);
        Site::with(name, ttl, options, claims)
    }

    /// A site that computes the keys of the function named `name` without
    /// claiming the name: for the `_invalidate` companion.
    pub const fn companion(name: &'static str, ttl: Ttl) -> Self {
        Site::with(name, ttl, Options::DEFAULT, false)
    }

    /// The site with its L1 setting (`l1 = false`, `l1_ttl = ...`).
    pub const fn l1(self, l1: L1) -> Self {
        let options = Options { l1, ..self.options };
        self.rebuilt(options)
    }

    /// The site with a TTL of its own for a stored `None`, in seconds
    /// (`#[cached(none_ttl = "30s")]`, never zero; the macro checks): the
    /// store step writes a value for which [`Policy::absent`] is true with
    /// it instead of the site's TTL.
    ///
    /// ```
    /// use cache_runtime::__private::{Site, Ttl};
    /// static SITE: Site = Site::new("users::find", Ttl::Secs(3600)).none_ttl(30);
    /// # let _ = &SITE;
    /// ```
    pub const fn none_ttl(self, secs: u64) -> Self {
        let options = Options {
            none_ttl: Some(Duration::from_secs(secs)),
            ..self.options
        };
        self.rebuilt(options)
    }

    /// The site without the cross-process fill lock
    /// (`#[cached(lock = false)]`): a miss runs the body in every process
    /// that misses at once (still once per process).
    ///
    /// ```
    /// use cache_runtime::__private::{Site, Ttl};
    /// static SITE: Site = Site::new("feed::latest", Ttl::Secs(5)).without_lock();
    /// # let _ = &SITE;
    /// ```
    pub const fn without_lock(self) -> Self {
        let options = Options {
            lock: false,
            ..self.options
        };
        self.rebuilt(options)
    }

    /// The site with a stale window, in seconds (`#[cached(stale = "1h")]`,
    /// never zero; the macro checks): a value is kept `stale` longer than
    /// its TTL, and a hit after the TTL returns it while one refresh runs
    /// in the background. Only with [`Call::run_refreshing`].
    ///
    /// ```
    /// use cache_runtime::__private::{Site, Ttl};
    /// static SITE: Site = Site::new("rates::today", Ttl::Secs(300)).stale(3600);
    /// # let _ = &SITE;
    /// ```
    pub const fn stale(self, secs: u64) -> Self {
        let options = Options {
            stale: Some(Duration::from_secs(secs)),
            ..self.options
        };
        self.rebuilt(options)
    }

    /// The site with early refresh (`#[cached(early_refresh, beta = 1.0)]`;
    /// `beta` positive and finite, the macro checks): a hit refreshes the
    /// value in the background, before it expires, with the probability of
    /// the XFetch rule (see [`Call::run_refreshing`]).
    ///
    /// ```
    /// use cache_runtime::__private::{Site, Ttl};
    /// static SITE: Site = Site::new("feed::top", Ttl::Secs(60)).early_refresh(1.0);
    /// # let _ = &SITE;
    /// ```
    pub const fn early_refresh(self, beta: f64) -> Self {
        let options = Options {
            early: Some(beta),
            ..self.options
        };
        self.rebuilt(options)
    }

    /// The function's stable name: the `function` label of its metrics
    /// and the `function` field of its `cache.call` span.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    #[cfg(feature = "metrics")]
    pub(crate) fn metrics_cell(&self) -> &crate::observe::SiteMetrics {
        &self.metrics
    }

    /// Whether this site may hash keys under its name: two functions with
    /// the same name (two impls in one module with a method of the same
    /// name, say) would otherwise read each other's values. The first site
    /// to use a name owns it; a later one runs uncached and logs an error
    /// once, naming the fix. One atomic load per call after the first.
    fn owns_name(&self) -> bool {
        if !self.claims {
            return true;
        }
        match self.name_state.load(Ordering::Relaxed) {
            1 => true,
            2 => false,
            _ => self.claim_name(),
        }
    }

    fn claim_name(&self) -> bool {
        static OWNERS: OnceLock<Mutex<HashMap<&'static str, usize>>> = OnceLock::new();
        // Sites live in statics, so an address identifies one for good.
        let me = self as *const Site as usize;
        let owner = *OWNERS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(self.name)
            .or_insert(me);
        let owns = owner == me;
        self.name_state
            .store(if owns { 1 } else { 2 }, Ordering::Relaxed);
        if !owns {
            tracing::error!(
                name = self.name,
                "two #[cached] functions hash their keys under the same name and would read \
                 each other's values; give each its own `name = \"...\"` (this one runs uncached)"
            );
        }
        owns
    }

    fn warn_uncached(&self) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                function = self.name,
                "no cache for this #[cached] function: install one with Cache::install, \
                 run it inside Cache::scope, or pass `cache = ...`; running it uncached"
            );
        }
    }
}

/// Which results are stored, and as what.
pub trait Policy<Out> {
    /// What is stored.
    type Value: Serialize + DeserializeOwned;
    /// The part of `out` to store, if any.
    fn cacheable(out: &Out) -> Option<&Self::Value>;
    /// Rebuilds the function's output from a stored value.
    fn from_cached(value: Self::Value) -> Out;
    /// Whether `out` is a failure (an `Err`): the callers waiting for it then
    /// take turns running the body rather than all running it at once.
    fn failed(out: &Out) -> bool {
        let _ = out;
        false
    }
    /// Whether `out` is a stored absence (a `None` of [`SomeOrNone`]): it is
    /// written with the site's `none_ttl` if it has one, and a hit that
    /// finds it counts in [`Stats::none_hits`](crate::Stats::none_hits).
    ///
    /// ```
    /// use cache_runtime::__private::{Policy, SomeOnly, SomeOrNone};
    /// assert!(<SomeOrNone as Policy<Option<u8>>>::absent(&None));
    /// assert!(!<SomeOrNone as Policy<Option<u8>>>::absent(&Some(1)));
    /// assert!(!<SomeOnly as Policy<Option<u8>>>::absent(&None)); // not stored at all
    /// ```
    fn absent(out: &Out) -> bool {
        let _ = out;
        false
    }
}

/// Any `T`: always stored.
#[derive(Debug, Clone, Copy)]
pub struct Always;
/// `Result<T, E>`: only `Ok` is stored.
#[derive(Debug, Clone, Copy)]
pub struct OkOnly;
/// `Option<T>`: only `Some` is stored.
#[derive(Debug, Clone, Copy)]
pub struct SomeOnly;
/// `Option<T>` with `cache_none`: `None` is stored too.
#[derive(Debug, Clone, Copy)]
pub struct SomeOrNone;

impl<T: Serialize + DeserializeOwned> Policy<T> for Always {
    type Value = T;
    fn cacheable(out: &T) -> Option<&T> {
        Some(out)
    }
    fn from_cached(value: T) -> T {
        value
    }
}

impl<T: Serialize + DeserializeOwned, E> Policy<Result<T, E>> for OkOnly {
    type Value = T;
    fn cacheable(out: &Result<T, E>) -> Option<&T> {
        out.as_ref().ok()
    }
    fn from_cached(value: T) -> Result<T, E> {
        Ok(value)
    }
    fn failed(out: &Result<T, E>) -> bool {
        out.is_err()
    }
}

impl<T: Serialize + DeserializeOwned> Policy<Option<T>> for SomeOnly {
    type Value = T;
    fn cacheable(out: &Option<T>) -> Option<&T> {
        out.as_ref()
    }
    fn from_cached(value: T) -> Option<T> {
        Some(value)
    }
}

impl<T: Serialize + DeserializeOwned> Policy<Option<T>> for SomeOrNone {
    type Value = Option<T>;
    fn cacheable(out: &Option<T>) -> Option<&Option<T>> {
        Some(out)
    }
    fn from_cached(value: Option<T>) -> Option<T> {
        value
    }
    fn absent(out: &Option<T>) -> bool {
        out.is_none()
    }
}

/// One invocation of a `#[cached]` function: the resolved cache and the key.
///
/// The expansion of `#[cached(ttl = 60, key = "user:{id}")]` is, in essence:
///
/// ```
/// # use cache_runtime::__private::{probe, Call, OkOnly, Site, Ttl, ViaBytes as _, ViaClone as _};
/// # #[derive(Clone, serde::Serialize, serde::Deserialize)] struct User;
/// # type DbError = ();
/// async fn user(id: u64) -> Result<User, DbError> {
///     static SITE: Site = Site::new(concat!(module_path!(), "::user"), Ttl::Secs(60));
///     let call = Call::new(&SITE, None).key_fmt(format_args!("user:{}", id));
///     let body = async move { Ok(User) };
///     let typed = (&&probe(&OkOnly, &body)).typed();
///     call.run(OkOnly, typed, body).await
/// }
/// ```
#[must_use]
pub struct Call {
    site: &'static Site,
    cache: Option<Cache>,
    key: Option<String>,
    /// Tag keys (`{prefix}:__tag:{tag}`), boxed: most calls have none.
    tagging: Option<Box<Tagging>>,
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("site", &self.site.name)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Call {
    /// Resolves the cache: `explicit`, else the scoped one, else the
    /// installed one.
    pub fn new(site: &'static Site, explicit: Option<&Cache>) -> Self {
        let cache = match explicit {
            Some(cache) => Some(cache.clone()),
            None => Cache::current(),
        };
        Call {
            site,
            cache,
            key: None,
            tagging: None,
        }
    }

    /// Records the entry under a tag, from a rendered template.
    pub fn tag(mut self, rendered: fmt::Arguments<'_>) -> Self {
        if let Some(cache) = &self.cache {
            match key::tag_rendered(cache.prefix(), rendered) {
                Some(tag) => self
                    .tagging
                    .get_or_insert_with(Default::default)
                    .tags
                    .push(tag),
                // Without one of its tags the entry could outlive an
                // invalidation: run uncached.
                None => self.display_failed(),
            }
        }
        self
    }

    /// Sets the key from a rendered template (`{prefix}:{rendered}`).
    pub fn key_fmt(mut self, rendered: fmt::Arguments<'_>) -> Self {
        if let Some(cache) = &self.cache {
            self.key = key::templated(cache.prefix(), rendered);
            if self.key.is_none() {
                self.display_failed();
            }
        }
        self
    }

    /// A placeholder's `Display` failed: no key, so the call runs uncached.
    fn display_failed(&mut self) {
        tracing::warn!(
            function = self.site.name,
            "a key or tag placeholder's Display failed; running uncached"
        );
        self.key = None;
    }

    /// Sets the key from a digest of the arguments (`{prefix}:{name}:{hash}`).
    pub fn key_args<A: Serialize + ?Sized>(mut self, args: &A) -> Self {
        if !self.site.owns_name() {
            return self; // no key: runs uncached
        }
        if let Some(cache) = &self.cache {
            match key::hashed(cache.prefix(), self.site.name, args) {
                Ok(k) => self.key = Some(k),
                Err(error) => {
                    tracing::warn!(function = self.site.name, %error, "cannot hash the arguments; running uncached");
                }
            }
        }
        self
    }

    /// As [`key_args`](Call::key_args), for a generic function: `types` are
    /// the instantiation's type arguments (`core::any::type_name` of each),
    /// hashed with the arguments, so `fetch::<User>(1)` and
    /// `fetch::<Order>(1)` get different keys.
    pub fn key_args_generic<A: Serialize + ?Sized>(self, types: &[&str], args: &A) -> Self {
        self.key_args(&(types, args))
    }

    /// Looks the key up, or runs `body` and stores what the policy `P`
    /// allows; with `typed` (from [`Probe`]), the memory store keeps a
    /// decoded copy and answers hits with a clone of it.
    ///
    /// Not an `async fn`: the returned future is the runtime's one state
    /// machine, holding `body` once, so nesting cached calls does not
    /// multiply future sizes.
    pub fn run<P, F>(
        self,
        _policy: P,
        typed: Option<Typed<F::Output>>,
        body: F,
    ) -> impl Future<Output = F::Output> + use<P, F>
    where
        P: Policy<F::Output>,
        F: Future,
    {
        let schema = self.site.schema.of::<P::Value>();
        let site = self.site;
        crate::engine::get_or_compute::<P, F::Output, F>(site, self.target(schema), typed, body)
    }

    /// [`run`](Call::run) for a function with a stale window: `make` gives
    /// the body ([`Want::Body`], on a miss) or an owned, `'static` future
    /// of the same result ([`Want::Refresh`], to run in the background after
    /// a stale hit). It is called at most once.
    pub fn run_refreshing<P, Out, M, B, R>(
        self,
        _policy: P,
        typed: Option<Typed<Out>>,
        make: M,
    ) -> impl Future<Output = Out> + use<P, Out, M, B, R>
    where
        P: Policy<Out> + Send + 'static,
        Out: Send + 'static,
        M: FnOnce(Want) -> Made<B, R>,
        B: Future<Output = Out>,
        R: Future<Output = Out> + Send + 'static,
    {
        let schema = self.site.schema.of::<P::Value>();
        let site = self.site;
        crate::engine::get_or_refresh::<P, Out, M, B, R>(site, self.target(schema), typed, make)
    }

    /// Write-through (`#[cache_put]`): runs `body`, then stores what the
    /// policy `P` allows under the key (and tags), replacing any value
    /// there. A failing cache is logged and counted; the body's result is
    /// returned all the same.
    pub fn put<P, F>(self, _policy: P, body: F) -> impl Future<Output = F::Output> + use<P, F>
    where
        P: Policy<F::Output>,
        F: Future,
    {
        let schema = self.site.schema.of::<P::Value>();
        let target = self.target(schema);
        async move {
            let out = body.await;
            if let Some(mut target) = target {
                target.ttl = target.ttl_for::<P, _>(&out);
                if let Some(value) = P::cacheable(&out) {
                    if target.cache.engine.put(&target, value).await {
                        crate::observe::put(target.site);
                    }
                }
            }
            out
        }
    }

    /// The `_invalidate` companion: removes the entry for these arguments;
    /// `true` if it was there. With no cache, nothing to remove: `false`.
    ///
    /// # Errors
    ///
    /// [`CacheError::Backend`] when the backend fails or misses the deadline.
    pub fn invalidate(self) -> impl Future<Output = Result<bool, CacheError>> + use<> {
        let target = match (self.cache, self.key) {
            (Some(cache), Some(key)) => Some((cache, key)),
            _ => None,
        };
        async move {
            match target {
                Some((cache, key)) => cache.delete_full(&key).await,
                None => Ok(false),
            }
        }
    }

    /// Starts an eviction (`#[cache_evict]`).
    pub fn evict(self) -> Evict {
        Evict {
            site: self.site,
            cache: self.cache,
            keys: Vec::new(),
            tags: Vec::new(),
            patterns: Vec::new(),
        }
    }

    /// The resolved call; `schema` is the stored type's fingerprint.
    fn target(self, schema: u64) -> Option<Target> {
        match (self.cache, self.key) {
            // Caching off: the body runs, quietly.
            (Some(cache), _) if cache.engine.disabled => None,
            (Some(cache), Some(key)) => {
                let ttl = cache.engine.resolve_ttl(self.site.ttl);
                Some(Target {
                    site: self.site,
                    cache,
                    key,
                    ttl,
                    none_ttl: self.site.options.none_ttl,
                    l1: self.site.options.l1,
                    lock: self.site.options.lock,
                    stale: self.site.options.stale,
                    early: self.site.options.early,
                    schema,
                    tagging: self.tagging,
                    outcome: crate::observe::OutcomeCell::new(),
                })
            }
            (None, _) => {
                self.site.warn_uncached();
                None
            }
            // The arguments could not be hashed (logged): run uncached.
            (Some(_), None) => None,
        }
    }
}

/// What [`Call::run_refreshing`] asks of the function's `make`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// The body, for a miss.
    Body,
    /// An owned future of the body's result, for a background refresh.
    Refresh,
}

/// What the function's `make` gives: the body, or a refresh.
#[derive(Debug)]
pub enum Made<B, R> {
    /// The body (borrowing the arguments).
    Body(B),
    /// A `'static` future of the same result (owning copies of them).
    Refresh(R),
}

/// What a `#[cache_evict]` function removes, and when.
#[must_use]
pub struct Evict {
    site: &'static Site,
    cache: Option<Cache>,
    keys: Vec<String>,
    tags: Vec<String>,
    patterns: Vec<String>,
}

impl fmt::Debug for Evict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Evict")
            .field("site", &self.site.name)
            .field("keys", &self.keys)
            .field("tags", &self.tags)
            .field("patterns", &self.patterns)
            .finish_non_exhaustive()
    }
}

impl Evict {
    /// Removes the key rendered from a template.
    pub fn key(mut self, rendered: fmt::Arguments<'_>) -> Self {
        if let Some(cache) = &self.cache {
            match key::templated(cache.prefix(), rendered) {
                Some(key) => self.keys.push(key),
                None => tracing::error!(
                    function = self.site.name,
                    "an eviction key's Display failed; that key is not evicted"
                ),
            }
        }
        self
    }

    /// Invalidates the tag rendered from a template.
    pub fn tag(mut self, rendered: fmt::Arguments<'_>) -> Self {
        if let Some(cache) = &self.cache {
            match key::tag_rendered(cache.prefix(), rendered) {
                Some(tag) => self.tags.push(tag),
                None => tracing::error!(
                    function = self.site.name,
                    "an eviction tag's Display failed; that tag is not invalidated"
                ),
            }
        }
        self
    }

    /// Removes the keys matching the pattern rendered from a template (its
    /// placeholders' values wrapped in [`glob_literal`]).
    pub fn pattern(mut self, rendered: fmt::Arguments<'_>) -> Self {
        if let Some(cache) = &self.cache {
            match key::pattern_rendered(cache.prefix(), rendered) {
                Some(pattern) => self.patterns.push(pattern),
                // A truncated pattern could match more than was meant.
                None => tracing::error!(
                    function = self.site.name,
                    "an eviction pattern's Display failed; that pattern is not cleared"
                ),
            }
        }
        self
    }

    /// Runs `body`, evicting before it (`before`) or after it succeeded (as
    /// `O` judges the output). A failing cache is logged and counted; the
    /// body's result is returned all the same.
    pub async fn run<O, F>(self, _outcome: O, before: bool, body: F) -> F::Output
    where
        O: Outcome<F::Output>,
        F: Future,
    {
        if self.cache.is_none() {
            self.site.warn_uncached();
        }
        if before {
            self.apply().await;
            return body.await;
        }
        let out = body.await;
        if O::succeeded(&out) {
            self.apply().await;
        }
        out
    }

    async fn apply(&self) {
        if let Some(cache) = self.cache.as_ref().filter(|c| !c.engine.disabled) {
            use crate::observe::{evicted, Evicted};
            evicted(self.site, Evicted::Key, self.keys.len());
            evicted(self.site, Evicted::Tag, self.tags.len());
            evicted(self.site, Evicted::Pattern, self.patterns.len());
            cache
                .engine
                .evict(&self.keys, &self.tags, &self.patterns)
                .await;
        }
    }
}

/// Whether a function's output counts as success, for `#[cache_evict]`.
pub trait Outcome<Out> {
    /// `true` unless `out` is an error.
    fn succeeded(out: &Out) -> bool;
}

impl<T> Outcome<T> for Always {
    fn succeeded(_: &T) -> bool {
        true
    }
}

impl<T, E> Outcome<Result<T, E>> for OkOnly {
    fn succeeded(out: &Result<T, E>) -> bool {
        out.is_ok()
    }
}

/// Displays a value with the Redis glob characters (`*`, `?`, `[`, `]`,
/// `\`) escaped, so a placeholder in an eviction pattern matches its value
/// literally.
pub fn glob_literal<T: fmt::Display + ?Sized>(value: &T) -> GlobLiteral<'_, T> {
    GlobLiteral(value)
}

/// See [`glob_literal`].
pub struct GlobLiteral<'a, T: ?Sized>(&'a T);

impl<T: fmt::Display + ?Sized> fmt::Display for GlobLiteral<'_, T> {
    /// A failing `Display` of the value fails this one too (no panic).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        write!(
            GlobEscaper {
                out: f,
                piece: String::new()
            },
            "{}",
            self.0
        )
    }
}

/// Writes through to `out` with glob characters escaped, one piece at a time
/// (`piece` is reused).
struct GlobEscaper<'a, 'b> {
    out: &'a mut fmt::Formatter<'b>,
    piece: String,
}

impl fmt::Write for GlobEscaper<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.piece.clear();
        crate::backend::glob::escape_into(s, &mut self.piece);
        self.out.write_str(&self.piece)
    }
}

/// Compile-time check that a key argument can be hashed; the macro emits one
/// call per argument, spanned on the parameter, so the error points there.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of a cache key: it does not implement `serde::Serialize`",
    label = "this argument is hashed into the cache key",
    note = "leave it out of the key with `skip(...)` in the #[cached] attribute, or make it `Serialize` (derive it, or add a `T: Serialize` bound)"
)]
pub trait KeyArg {
    /// `self`, type-erased.
    fn as_key_part(&self) -> &dyn erased_serde::Serialize;
}
impl<T: Serialize> KeyArg for T {
    fn as_key_part(&self) -> &dyn erased_serde::Serialize {
        self
    }
}

/// One hashed argument. Type-erased so that the tuple handed to
/// [`Call::key_args`] is `Serialize` whatever the arguments are: a missing
/// `Serialize` is then reported once, by [`KeyArg`] on the parameter, and not
/// a second time on the whole tuple. Serializes exactly as the argument does.
pub struct KeyPart<'a>(&'a dyn erased_serde::Serialize);

impl Serialize for KeyPart<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        erased_serde::serialize(self.0, serializer)
    }
}

/// Wraps its argument for [`Call::key_args`]; requires [`KeyArg`].
#[inline(always)]
pub fn key_arg<T: KeyArg>(arg: &T) -> KeyPart<'_> {
    KeyPart(arg.as_key_part())
}

/// A set whose elements go into a hashed key in no particular order; see
/// [`UnorderedSet`].
///
/// ```
/// use cache_runtime::SetItems;
/// let mut seen = 0;
/// std::collections::HashSet::from([1, 2, 3]).for_each_item(&mut |_| seen += 1);
/// assert_eq!(seen, 3);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of a cache key: its elements do not implement `serde::Serialize`",
    label = "this set is hashed into the cache key",
    note = "leave it out of the key with `skip(...)` in the #[cached] attribute, or make its elements `Serialize`"
)]
pub trait SetItems {
    /// Calls `f` with each element, in the set's own order.
    fn for_each_item(&self, f: &mut dyn FnMut(&dyn erased_serde::Serialize));
}

impl<T: Serialize, S> SetItems for std::collections::HashSet<T, S> {
    fn for_each_item(&self, f: &mut dyn FnMut(&dyn erased_serde::Serialize)) {
        self.iter().for_each(|item| f(item));
    }
}

impl<T: Serialize> SetItems for std::collections::BTreeSet<T> {
    fn for_each_item(&self, f: &mut dyn FnMut(&dyn erased_serde::Serialize)) {
        self.iter().for_each(|item| f(item));
    }
}

impl<S: SetItems + ?Sized> SetItems for &S {
    fn for_each_item(&self, f: &mut dyn FnMut(&dyn erased_serde::Serialize)) {
        (**self).for_each_item(f);
    }
}

/// A set as it goes into a hashed key: serialized as a map from each element
/// to `()`, whose entries the key encoding combines order-independently, so a
/// `HashSet` gives the same key in every process, and equals a `BTreeSet` of
/// the same elements.
///
/// `#[cached]` wraps `HashSet` and `BTreeSet` parameters (also behind
/// references) this way; wrap them the same way to compute such a key with
/// [`Cache::hashed_key`] (sets nested inside other arguments are hashed in
/// their iteration order: prefer `BTreeSet` there).
///
/// ```
/// use cache_runtime::{cached, Cache, UnorderedSet};
/// use std::collections::HashSet;
///
/// #[cached(name = "products::by_tags")]
/// async fn by_tags(tags: HashSet<String>) -> usize { tags.len() }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = Cache::builder().build().unwrap();
/// let tags: HashSet<String> = ["a".into(), "b".into()].into();
/// cache.scope(by_tags(tags.clone())).await;
/// let key = cache.hashed_key("products::by_tags", &(UnorderedSet::new(&tags),)).unwrap();
/// assert!(cache.exists(&key["cache:".len()..]).await.unwrap());
/// # }
/// ```
pub struct UnorderedSet<'a>(&'a dyn SetItems);

impl<'a> UnorderedSet<'a> {
    /// Wraps `set`.
    ///
    /// ```
    /// let set = std::collections::BTreeSet::from([1, 2]);
    /// let _ = cache_runtime::UnorderedSet::new(&set);
    /// ```
    pub fn new<S: SetItems>(set: &'a S) -> Self {
        UnorderedSet(set)
    }
}

impl std::fmt::Debug for UnorderedSet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnorderedSet")
    }
}

impl Serialize for UnorderedSet<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        let mut failed = None;
        self.0.for_each_item(&mut |item| {
            if failed.is_none() {
                failed = map.serialize_entry(item, &()).err();
            }
        });
        match failed {
            Some(e) => Err(e),
            None => map.end(),
        }
    }
}

/// Wraps a set argument for [`Call::key_args`]; requires [`SetItems`].
#[inline(always)]
pub fn key_set<S: SetItems>(set: &S) -> UnorderedSet<'_> {
    UnorderedSet(set)
}

/// How the memory store keeps a function's result decoded: exists only when
/// the stored value is `Clone + Send + Sync + 'static` (see [`Probe`]).
/// Expressed in terms of the function's output, so naming it needs no
/// bound: a result that cannot be stored is reported once, by
/// [`Call::run`].
pub struct Typed<Out> {
    /// The decoded copy to keep for `out`, if its policy stores it.
    pub(crate) to_any: fn(&Out) -> Option<TypedValue>,
    /// The output rebuilt from a kept copy, if the copy has the right type.
    pub(crate) from_any: fn(&(dyn Any + Send + Sync)) -> Option<Out>,
}

impl<Out> Clone for Typed<Out> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<Out> Copy for Typed<Out> {}

impl<Out> fmt::Debug for Typed<Out> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Typed")
    }
}

/// Picks [`Typed`] at compile time by autoref specialization:
/// `(&&Probe::<P, Out>::new()).typed()` resolves to [`ViaClone`] when `P`
/// stores a `Clone + Send + Sync + 'static` value from `Out`, and to
/// [`ViaBytes`] otherwise (including when `P` cannot store `Out` at all).
pub struct Probe<P, Out>(PhantomData<fn() -> (P, Out)>);

impl<P, Out> Probe<P, Out> {
    /// A probe for `P` and `Out`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Probe(PhantomData)
    }
}

/// The clonable case of [`Probe`].
pub trait ViaClone<Out> {
    /// `Some`: keep decoded copies.
    fn typed(&self) -> Option<Typed<Out>>;
}

impl<P, Out> ViaClone<Out> for &Probe<P, Out>
where
    P: Policy<Out>,
    P::Value: Clone + Send + Sync + 'static,
{
    fn typed(&self) -> Option<Typed<Out>> {
        Some(Typed {
            to_any: |out| P::cacheable(out).map(|v| Box::new(v.clone()) as TypedValue),
            from_any: |any| any.downcast_ref::<P::Value>().cloned().map(P::from_cached),
        })
    }
}

/// The general case of [`Probe`].
pub trait ViaBytes<Out> {
    /// `None`: decode the bytes on every hit.
    fn typed(&self) -> Option<Typed<Out>>;
}

impl<P, Out> ViaBytes<Out> for Probe<P, Out> {
    fn typed(&self) -> Option<Typed<Out>> {
        None
    }
}

/// A [`Probe`] for the policy `P` and the output of the body `make` gives
/// (see [`Call::run_refreshing`]).
pub fn probe_make<P, M, B, R>(_policy: &P, _make: &M) -> Probe<P, B::Output>
where
    M: FnOnce(Want) -> Made<B, R>,
    B: Future,
{
    Probe::new()
}

/// A [`Probe`] for the policy `P` and `future`'s output.
pub fn probe<P, F: Future>(_policy: &P, _future: &F) -> Probe<P, F::Output> {
    Probe::new()
}

#[cfg(test)]
mod tests {
    use super::{glob_literal, key_arg, Call, Site, Ttl};
    use crate::key::{self, key_part};
    use crate::Cache;
    use std::fmt;

    /// Writes part of itself, then fails.
    struct Broken;

    impl fmt::Display for Broken {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("part")?;
            Err(fmt::Error)
        }
    }

    #[test]
    fn a_failing_display_skips_that_eviction_target() {
        static SITE: Site = Site::new("m::evict", Ttl::Default);
        let cache = Cache::builder().memory().prefix("p").build().unwrap();
        let evict = Call::new(&SITE, Some(&cache))
            .evict()
            .pattern(format_args!("a:{}:*", glob_literal(&key_part(&Broken))))
            .pattern(format_args!("b:{}:*", glob_literal(&key_part(&"x*y"))))
            .key(format_args!("c:{}", key_part(&Broken)))
            .tag(format_args!("d:{}", key_part(&Broken)));
        assert_eq!(evict.patterns, ["p:b:x\\*y:*"], "no truncated `p:a:part`");
        assert!(evict.keys.is_empty() && evict.tags.is_empty());
    }

    #[test]
    fn glob_literal_escapes_every_piece() {
        struct Pieces;
        impl fmt::Display for Pieces {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a*")?;
                f.write_str("[b]?")?;
                f.write_str("\\c")
            }
        }
        assert_eq!(glob_literal(&Pieces).to_string(), "a\\*\\[b\\]\\?\\\\c");
        let mut out = String::new();
        assert!(
            fmt::Write::write_fmt(&mut out, format_args!("{}", glob_literal(&Broken))).is_err()
        );
    }

    #[test]
    fn key_parts_hash_like_the_arguments() {
        #[derive(serde::Serialize)]
        struct User<'a> {
            id: u64,
            tags: Vec<&'a str>,
            kind: Option<char>,
        }
        let (id, name, user, pair) = (
            7u64,
            String::from("x"),
            User {
                id: 1,
                tags: vec!["a", "b"],
                kind: Some('k'),
            },
            (-3i128, 2.5f64),
        );
        let direct = key::hashed("p", "m::f", &(&id, &name, &user, &pair)).unwrap();
        let erased = key::hashed(
            "p",
            "m::f",
            &(key_arg(&id), key_arg(&name), key_arg(&user), key_arg(&pair)),
        )
        .unwrap();
        assert_eq!(direct, erased);
    }
}
