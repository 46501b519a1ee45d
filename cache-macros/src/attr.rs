//! Parsing `#[cached(...)]`, `#[cache_put(...)]` and `#[cache_evict(...)]`
//! into a plain [`Options`] struct.

use crate::errors::{did_you_mean, Errors};
use crate::key::RESERVED;
use proc_macro2::Span;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ExprUnary, Ident, Lit, LitStr, Path, Token, UnOp};

/// Which macro is being expanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Cached,
    Put,
    Evict,
}

impl Kind {
    /// `#[cached]`, as messages write it.
    pub(crate) fn attr(self) -> &'static str {
        match self {
            Kind::Cached => "#[cached]",
            Kind::Put => "#[cache_put]",
            Kind::Evict => "#[cache_evict]",
        }
    }

    /// The attribute's name, to recognise it applied twice.
    pub(crate) fn ident(self) -> &'static str {
        match self {
            Kind::Cached => "cached",
            Kind::Put => "cache_put",
            Kind::Evict => "cache_evict",
        }
    }

    /// Every option the macro accepts, in the order its docs list them.
    pub(crate) fn options(self) -> &'static [Opt] {
        use Opt::*;
        match self {
            Kind::Cached => &[
                Ttl,
                L1,
                L1Ttl,
                Lock,
                Stale,
                EarlyRefresh,
                Beta,
                Key,
                Name,
                Skip,
                Tags,
                Cache,
                Crate,
                CacheNone,
                NoneTtl,
                NoCompanions,
            ],
            Kind::Put => &[
                Key, Ttl, L1, L1Ttl, Tags, Name, Cache, Crate, CacheNone, NoneTtl,
            ],
            Kind::Evict => &[Key, Keys, Tags, Pattern, Before, Name, Cache, Crate],
        }
    }
}

/// Every option of the three macros. Each is named once, in [`Opt::name`]:
/// parsing, duplicate and unknown-option messages, near-miss suggestions
/// and the test that holds the README's option table to this list all read
/// it from there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opt {
    Ttl,
    L1,
    L1Ttl,
    Lock,
    Stale,
    EarlyRefresh,
    Beta,
    Key,
    Keys,
    Name,
    Skip,
    Tags,
    Pattern,
    Before,
    Cache,
    Crate,
    CacheNone,
    NoneTtl,
    NoCompanions,
}

impl Opt {
    /// The option as written in the attribute.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Opt::Ttl => "ttl",
            Opt::L1 => "l1",
            Opt::L1Ttl => "l1_ttl",
            Opt::Lock => "lock",
            Opt::Stale => "stale",
            Opt::EarlyRefresh => "early_refresh",
            Opt::Beta => "beta",
            Opt::Key => "key",
            Opt::Keys => "keys",
            Opt::Name => "name",
            Opt::Skip => "skip",
            Opt::Tags => "tags",
            Opt::Pattern => "pattern",
            Opt::Before => "before",
            Opt::Cache => "cache",
            Opt::Crate => "crate",
            Opt::CacheNone => "cache_none",
            Opt::NoneTtl => "none_ttl",
            Opt::NoCompanions => "no_companions",
        }
    }

    /// What to say when the option is written in a form it does not take:
    /// `ttl` without a value, `cache_none = true`, `skip = db`.
    fn misuse(self) -> String {
        let name = self.name();
        let example = match self {
            Opt::Ttl => "600",
            Opt::L1Ttl => "\"5s\"",
            Opt::NoneTtl => "\"30s\"",
            Opt::Stale => "\"1h\"",
            Opt::Beta => "1.0",
            Opt::Key => "\"product:{id}\"",
            Opt::Name => "\"products::get\"",
            Opt::Cache => "self.cache",
            Opt::Crate => "my_cache",
            Opt::Tags => "[\"products\"]",
            Opt::Keys => "[\"product:{id}\"]",
            Opt::Pattern => "\"products:list:*\"",
            Opt::L1 => return format!("`l1` takes a value: {L1_HELP}"),
            Opt::Lock => return format!("`lock` takes a value: {LOCK_HELP}"),
            Opt::Skip => return "`skip` takes a list of parameters: `skip(db, pool)`".into(),
            Opt::EarlyRefresh => {
                return "`early_refresh` takes no value: write `early_refresh` to refresh a value \
                        before it expires, and `beta = 2.0` beside it to refresh earlier"
                    .into()
            }
            Opt::CacheNone => {
                return "`cache_none` takes no value: write `cache_none` to also cache `None`, or \
                        leave it out"
                    .into()
            }
            Opt::NoCompanions => {
                return "`no_companions` takes no value: write `no_companions` to generate no \
                        `_uncached` and `_invalidate` functions, or leave it out"
                    .into()
            }
            Opt::Before => {
                return "`before` takes no value: write `before` to evict before the body runs, or \
                        leave it out to evict after the body succeeds"
                    .into()
            }
        };
        format!("`{name}` takes a value, e.g. `{name} = {example}`")
    }
}

/// Longest TTL accepted, in seconds: 100 years, so that milliseconds fit
/// comfortably in Redis's signed 64-bit expiry.
const MAX_TTL_SECS: u64 = 100 * 365 * 24 * 3600;

/// A TTL as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ttl {
    Secs(u64),
    Short,
    Default,
    Long,
}

/// An `l1_ttl` or `none_ttl` as written: at most this many seconds, never
/// zero.
#[derive(Debug, Clone, Copy)]
pub(crate) struct L1Ttl {
    pub(crate) secs: u64,
    /// The value's span (the slot keeps the option name's).
    pub(crate) span: Span,
}

/// One option's value, set at most once; remembers where it was written.
pub(crate) struct Slot<T> {
    opt: Opt,
    value: Option<(Span, T)>,
}

impl<T> Slot<T> {
    fn new(opt: Opt) -> Self {
        Slot { opt, value: None }
    }

    /// Stores `value`, or reports a duplicate on `span` (the second writing).
    fn set(&mut self, span: Span, value: T, errors: &mut Errors) {
        if self.value.is_some() {
            errors.push(syn::Error::new(
                span,
                format!("`{}` is given twice; keep one", self.opt.name()),
            ));
        } else {
            self.value = Some((span, value));
        }
    }

    pub(crate) fn get(&self) -> Option<&T> {
        self.value.as_ref().map(|(_, v)| v)
    }

    /// Whether the option was written, even with a value that was rejected.
    pub(crate) fn is_written(&self, opts: &Options) -> bool {
        opts.written.contains(&self.opt)
    }

    pub(crate) fn span(&self) -> Option<Span> {
        self.value.as_ref().map(|(s, _)| *s)
    }
}

/// The parsed attribute.
pub(crate) struct Options {
    pub(crate) ttl: Slot<Ttl>,
    /// `l1 = false` (`l1 = true` is the default).
    pub(crate) l1: Slot<bool>,
    pub(crate) l1_ttl: Slot<L1Ttl>,
    /// `lock = false` (`lock = true` is the default).
    pub(crate) lock: Slot<bool>,
    /// How long a value is served stale past its TTL while it is refreshed.
    pub(crate) stale: Slot<L1Ttl>,
    /// Refresh before expiry (XFetch).
    pub(crate) early_refresh: Slot<()>,
    /// XFetch's β, with its span.
    pub(crate) beta: Slot<(f64, Span)>,
    pub(crate) key: Slot<LitStr>,
    pub(crate) name: Slot<LitStr>,
    pub(crate) skip: Slot<Vec<Ident>>,
    pub(crate) cache: Slot<Expr>,
    pub(crate) krate: Slot<Path>,
    pub(crate) cache_none: Slot<()>,
    /// How long a stored `None` lives; implies `cache_none`.
    pub(crate) none_ttl: Slot<L1Ttl>,
    pub(crate) tags: Slot<Vec<LitStr>>,
    pub(crate) no_companions: Slot<()>,
    pub(crate) keys: Slot<Vec<LitStr>>,
    pub(crate) pattern: Slot<LitStr>,
    pub(crate) before: Slot<()>,
    /// Every option of this macro written, valid or not: a required option
    /// is not reported missing when the user wrote it wrongly.
    written: Vec<Opt>,
    /// Whether an option was written that this macro does not know.
    unknown: bool,
}

impl Options {
    /// Whether an option was written that this macro does not know (it is
    /// reported already: what it might have meant is not reported missing).
    pub(crate) fn has_unknown(&self) -> bool {
        self.unknown
    }

    /// Parses the attribute's tokens. A syntax error stops parsing; every
    /// other problem goes to `errors` and that option is left unset.
    pub(crate) fn parse(
        kind: Kind,
        tokens: proc_macro2::TokenStream,
        errors: &mut Errors,
    ) -> Result<Options, syn::Error> {
        let items =
            syn::parse::Parser::parse2(Punctuated::<Item, Token![,]>::parse_terminated, tokens)?;
        let mut opts = Options {
            ttl: Slot::new(Opt::Ttl),
            l1: Slot::new(Opt::L1),
            l1_ttl: Slot::new(Opt::L1Ttl),
            lock: Slot::new(Opt::Lock),
            stale: Slot::new(Opt::Stale),
            early_refresh: Slot::new(Opt::EarlyRefresh),
            beta: Slot::new(Opt::Beta),
            key: Slot::new(Opt::Key),
            name: Slot::new(Opt::Name),
            skip: Slot::new(Opt::Skip),
            cache: Slot::new(Opt::Cache),
            krate: Slot::new(Opt::Crate),
            cache_none: Slot::new(Opt::CacheNone),
            none_ttl: Slot::new(Opt::NoneTtl),
            tags: Slot::new(Opt::Tags),
            no_companions: Slot::new(Opt::NoCompanions),
            keys: Slot::new(Opt::Keys),
            pattern: Slot::new(Opt::Pattern),
            before: Slot::new(Opt::Before),
            written: Vec::new(),
            unknown: false,
        };
        let options = kind.options();
        for item in items {
            let span = item.ident.span();
            let written = item.ident.to_string();
            let Some(&opt) = options.iter().find(|o| o.name() == written) else {
                opts.unknown = true;
                if kind == Kind::Evict && written == Opt::NoneTtl.name() {
                    errors.push(syn::Error::new(
                        span,
                        "`none_ttl` does not apply to #[cache_evict], which stores nothing; put it \
                         on the #[cached] function that stores the `None`s, e.g. \
                         `#[cached(ttl = \"1h\", none_ttl = \"30s\")]`",
                    ));
                    continue;
                }
                if kind == Kind::Put && written == Opt::Lock.name() {
                    errors.push(syn::Error::new(
                        span,
                        "`lock` does not apply to #[cache_put], which runs its body on every call: \
                         there is no miss for callers to share; put it on the #[cached] function \
                         that reads the key, e.g. `#[cached(lock = false)]`",
                    ));
                    continue;
                }
                let names = || options.iter().map(|o| o.name());
                let hint = did_you_mean(&written, names())
                    .map_or(String::new(), |s| format!("did you mean `{s}`? "));
                errors.push(syn::Error::new(
                    span,
                    format!(
                        "unknown option `{written}` for {}; {hint}valid options are: {}",
                        kind.attr(),
                        names().collect::<Vec<_>>().join(", ")
                    ),
                ));
                continue;
            };
            opts.written.push(opt);
            match (opt, item.value) {
                (Opt::Ttl, Value::Expr(e)) => match parse_ttl(&e) {
                    Ok(ttl) => opts.ttl.set(span, ttl, errors),
                    Err(err) => errors.push(err),
                },
                (Opt::L1, Value::Expr(e)) => match parse_bool(&e, "l1", L1_HELP) {
                    Ok(on) => opts.l1.set(span, on, errors),
                    Err(err) => errors.push(err),
                },
                (Opt::Lock, Value::Expr(e)) => match parse_bool(&e, "lock", LOCK_HELP) {
                    Ok(on) => opts.lock.set(span, on, errors),
                    Err(err) => errors.push(err),
                },
                (Opt::L1Ttl, Value::Expr(e)) => match unpreset_seconds(&e, &L1_TTL) {
                    Ok(limit) => opts.l1_ttl.set(span, limit, errors),
                    Err(err) => errors.push(err),
                },
                (Opt::Stale, Value::Expr(e)) => match unpreset_seconds(&e, &STALE) {
                    Ok(window) => opts.stale.set(span, window, errors),
                    Err(err) => errors.push(err),
                },
                (Opt::NoneTtl, Value::Expr(e)) => match unpreset_seconds(&e, &NONE_TTL) {
                    Ok(ttl) => opts.none_ttl.set(span, ttl, errors),
                    Err(err) => errors.push(err),
                },
                (Opt::Key, Value::Expr(e)) => match string(&e, "key", "\"product:{id}\"") {
                    Ok(s) => opts.key.set(span, s, errors),
                    Err(err) => errors.push(err),
                },
                (Opt::Name, Value::Expr(e)) => match string(&e, "name", "\"products::get\"") {
                    Ok(s) if s.value().is_empty() => errors.push(syn::Error::new(s.span(), "`name` must not be empty; give a stable name, e.g. `name = \"products::get\"`, or leave it out to use the function's path")),
                    Ok(s) if s.value().starts_with(RESERVED) => errors.push(reserved_name(&s)),
                    Ok(s) => opts.name.set(span, s, errors),
                    Err(err) => errors.push(err),
                },
                (Opt::Skip, Value::List(idents)) => opts.skip.set(span, idents, errors),
                (Opt::Cache, Value::Expr(e)) => opts.cache.set(span, e, errors),
                (Opt::Crate, Value::Expr(e)) => match e {
                    Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => opts.krate.set(span, p.path, errors),
                    other => errors.push(syn::Error::new_spanned(
                        other,
                        "`crate` takes a path, e.g. `crate = my_cache` for a renamed dependency",
                    )),
                },
                (Opt::CacheNone, Value::Flag) => opts.cache_none.set(span, (), errors),
                (Opt::EarlyRefresh, Value::Flag) => opts.early_refresh.set(span, (), errors),
                (Opt::Beta, Value::Expr(e)) => match parse_beta(&e) {
                    Ok(beta) => opts.beta.set(span, (beta, ungroup(&e).span()), errors),
                    Err(err) => errors.push(err),
                },
                (Opt::NoCompanions, Value::Flag) => opts.no_companions.set(span, (), errors),
                (Opt::Before, Value::Flag) => opts.before.set(span, (), errors),
                (Opt::Tags, Value::Expr(e)) => match strings(&e, "tags", "[\"products\", \"category:{cat}\"]") {
                    Ok(list) => opts.tags.set(span, list, errors),
                    Err(err) => errors.push(err),
                },
                (Opt::Keys, Value::Expr(e)) => match strings(&e, "keys", "[\"product:{id}\", \"product:slug:{slug}\"]") {
                    Ok(list) => opts.keys.set(span, list, errors),
                    Err(err) => errors.push(err),
                },
                (Opt::Pattern, Value::Expr(e)) => match string(&e, "pattern", "\"products:list:*\"") {
                    Ok(s) => opts.pattern.set(span, s, errors),
                    Err(err) => errors.push(err),
                },
                (opt, _) => errors.push(syn::Error::new(span, opt.misuse())),
            }
        }
        Ok(opts)
    }
}

/// One `name`, `name = expr` or `name(a, b)`.
struct Item {
    ident: Ident,
    value: Value,
}

enum Value {
    Flag,
    Expr(Expr),
    List(Vec<Ident>),
}

impl Parse for Item {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        // `crate` is a keyword; accept any identifier-like token.
        let ident = input.call(Ident::parse_any)?;
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Value::Expr(input.parse()?)
        } else if input.peek(syn::token::Paren) {
            let content;
            syn::parenthesized!(content in input);
            let list =
                Punctuated::<Ident, Token![,]>::parse_terminated_with(&content, Ident::parse_any)?;
            Value::List(list.into_iter().collect())
        } else {
            Value::Flag
        };
        Ok(Item { ident, value })
    }
}

/// `e` without the invisible group a `macro_rules!` fragment (`$k:literal`,
/// `$e:expr`) arrives in.
fn ungroup(e: &Expr) -> &Expr {
    match e {
        Expr::Group(g) => ungroup(&g.expr),
        other => other,
    }
}

/// A `name` that starts with `__`: its hashed keys, `{prefix}:{name}:{hash}`,
/// would land in the runtime's own namespace.
fn reserved_name(name: &LitStr) -> syn::Error {
    let value = name.value();
    let trimmed = value.trim_start_matches('_');
    let fixed = if trimmed.is_empty() {
        "products::get"
    } else {
        trimmed
    };
    syn::Error::new(
        name.span(),
        format!(
            "`name` must not start with `__`: hashed keys are `{{prefix}}:{{name}}:{{hash}}`, and keys \
             starting with `__` are reserved for the library's own bookkeeping (`__tag:`, `__wb:`, ...); \
             write e.g. `name = \"{fixed}\"`"
        ),
    )
}

fn string(e: &Expr, option: &str, example: &str) -> syn::Result<LitStr> {
    match ungroup(e) {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s.clone()),
        other => Err(syn::Error::new_spanned(
            other,
            format!("`{option}` takes a string literal, e.g. `{option} = {example}`"),
        )),
    }
}

/// A list of string literals: `["a", "b:{id}"]`.
fn strings(e: &Expr, option: &str, example: &str) -> syn::Result<Vec<LitStr>> {
    let help =
        || format!("`{option}` takes a list of string literals, e.g. `{option} = {example}`");
    match ungroup(e) {
        Expr::Array(array) => {
            let mut out = Vec::new();
            let mut errors = Errors::default();
            for elem in &array.elems {
                match ungroup(elem) {
                    Expr::Lit(ExprLit {
                        lit: Lit::Str(s), ..
                    }) => out.push(s.clone()),
                    other => errors.push(syn::Error::new_spanned(other, help())),
                }
            }
            if array.elems.is_empty() {
                errors.push(syn::Error::new_spanned(
                    array,
                    format!("`{option}` is empty; list at least one, e.g. `{option} = {example}`, or leave it out"),
                ));
            }
            errors.finish().map(|()| out)
        }
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Err(syn::Error::new(
            s.span(),
            format!(
                "`{option}` takes a list: write `{option} = [{}]`",
                s.to_token_stream()
            ),
        )),
        other => Err(syn::Error::new_spanned(other, help())),
    }
}

/// How a seconds option (`ttl`, `l1_ttl`, `none_ttl`) is written, for its
/// messages: all are parsed by [`seconds`], and differ only in their presets.
struct SecondsOption {
    name: &'static str,
    /// The forms it takes, as the end of a message.
    help: &'static str,
    /// What to write instead of zero or a negative number.
    not_zero: &'static str,
    /// What to write instead of more than 100 years.
    not_too_large: &'static str,
}

const TTL: SecondsOption = SecondsOption {
    name: "ttl",
    help: "write seconds (`ttl = 600`), a duration (`ttl = \"90s\"`, `\"10m\"`, `\"1h30m\"`, `\"2d\"`) or a preset (`ttl = \"short\"`, `\"default\"`, `\"long\"`)",
    not_zero: "write at least one second (`ttl = 1`), or leave `ttl` out for the cache's default",
    not_too_large: "write a shorter one, or `ttl = \"long\"` for the cache's long preset",
};

const L1_TTL: SecondsOption = SecondsOption {
    name: "l1_ttl",
    help: "write seconds (`l1_ttl = 5`) or a duration (`l1_ttl = \"5s\"`, `\"10m\"`, `\"1h30m\"`)",
    not_zero: "write at least one second (`l1_ttl = 1`), or `l1 = false` to keep this function's values out of the L1",
    not_too_large: "write a shorter one, or leave `l1_ttl` out to keep the L1 copy as long as the entry",
};

const NONE_TTL: SecondsOption = SecondsOption {
    name: "none_ttl",
    help: "write seconds (`none_ttl = 30`) or a duration (`none_ttl = \"30s\"`, `\"10m\"`, `\"1h30m\"`)",
    not_zero: "write at least one second (`none_ttl = 1`), or leave `none_ttl` out to store no `None`",
    not_too_large: "write a shorter one, at most `ttl`",
};

const STALE: SecondsOption = SecondsOption {
    name: "stale",
    help: "write seconds (`stale = 3600`) or a duration (`stale = \"1h\"`, `\"10m\"`, `\"1h30m\"`)",
    not_zero:
        "write at least one second (`stale = 1`), or leave `stale` out to serve no stale value",
    not_too_large: "write a shorter one",
};

const L1_HELP: &str = "write `l1 = false` to keep this function's values out of the in-process L1, or leave `l1` out to keep them there";

fn parse_ttl(e: &Expr) -> syn::Result<Ttl> {
    match preset(e) {
        Some((ttl, _)) => Ok(ttl),
        None => seconds(e, &TTL).map(Ttl::Secs),
    }
}

/// Seconds as for `ttl`, but no preset: those are the cache's TTLs for
/// entries in Redis, configured at run time (`l1_ttl`, `none_ttl`).
fn unpreset_seconds(e: &Expr, option: &SecondsOption) -> syn::Result<L1Ttl> {
    if let Some((_, lit)) = preset(e) {
        return Err(syn::Error::new(
            lit.span(),
            format!(
                "`{}` takes no preset: `{}` is one of the cache's TTLs for entries in Redis, \
                 set when the cache is built; {}",
                option.name,
                lit.to_token_stream(),
                option.help
            ),
        ));
    }
    let secs = seconds(e, option)?;
    Ok(L1Ttl {
        secs,
        span: ungroup(e).span(),
    })
}

/// `beta = 1.0`: a positive, finite number (an integer is accepted).
fn parse_beta(e: &Expr) -> syn::Result<f64> {
    let value = match ungroup(e) {
        Expr::Lit(ExprLit {
            lit: Lit::Float(f), ..
        }) => f.base10_parse::<f64>().ok(),
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse::<u32>().ok().map(f64::from),
        _ => None,
    };
    match value {
        Some(beta) if beta.is_finite() && beta > 0.0 => Ok(beta),
        _ => Err(syn::Error::new_spanned(
            ungroup(e),
            "`beta` takes a positive number, e.g. `beta = 1.0` (the default; larger refreshes earlier)",
        )),
    }
}

/// `lock = false` or `lock = true`.
const LOCK_HELP: &str = "write `lock = false` to let each process that misses run the body (no lock across processes), or leave `lock` out to keep the fill lock";

/// `l1 = false` or `l1 = true` (`option`, with `help` for a wrong value).
fn parse_bool(e: &Expr, option: &str, help: &str) -> syn::Result<bool> {
    match ungroup(e) {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => Ok(b.value),
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) if matches!(s.value().trim(), "true" | "false") => Err(syn::Error::new(
            s.span(),
            format!(
                "`{option}` takes a bool, not a string: write `{option} = {}`",
                s.value().trim()
            ),
        )),
        other => Err(syn::Error::new_spanned(
            other,
            format!("`{option}` takes `true` or `false`; {help}"),
        )),
    }
}

/// A TTL preset, `"short"`, `"default"` or `"long"`, with its literal.
fn preset(e: &Expr) -> Option<(Ttl, &LitStr)> {
    let Expr::Lit(ExprLit {
        lit: Lit::Str(s), ..
    }) = ungroup(e)
    else {
        return None;
    };
    let ttl = match s.value().trim() {
        "short" => Ttl::Short,
        "default" => Ttl::Default,
        "long" => Ttl::Long,
        _ => return None,
    };
    Some((ttl, s))
}

/// Whole seconds, written as a number or a duration string: more than zero
/// and at most 100 years. Presets are left to the caller.
fn seconds(e: &Expr, option: &SecondsOption) -> syn::Result<u64> {
    let SecondsOption {
        name,
        help,
        not_zero,
        not_too_large,
    } = option;
    let too_large = || {
        format!(
            "`{name}` is too large; the longest is {MAX_TTL_SECS} seconds (100 years): {not_too_large}"
        )
    };
    let e = ungroup(e);
    let secs = match e {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => {
            if !i.suffix().is_empty() {
                return Err(syn::Error::new(
                    i.span(),
                    format!("`{name}` takes plain seconds without a type suffix; {help}"),
                ));
            }
            i.base10_parse::<u64>()
                .map_err(|_| syn::Error::new(i.span(), too_large()))?
        }
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => {
            let text = s.value();
            let text = text.trim();
            parse_duration(text).map_err(|why| {
                let fix = match respell_duration(text) {
                    Some(fixed) => format!("write `{name} = \"{fixed}\"`"),
                    None => (*help).to_owned(),
                };
                syn::Error::new(s.span(), format!("invalid `{name}`: {why}; {fix}"))
            })?
        }
        Expr::Lit(ExprLit {
            lit: Lit::Float(f), ..
        }) => {
            let rounded = f.base10_parse::<f64>().map_or(1.0, |x| x.ceil().max(1.0));
            return Err(syn::Error::new(
                f.span(),
                format!(
                    "`{name}` takes whole seconds, not `{f}`: round it (`{name} = {rounded}`), or write a \
                     duration in whole units (`{name} = \"90s\"`)"
                ),
            ));
        }
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_), ..
        }) => {
            return Err(syn::Error::new_spanned(
                e,
                format!("`{name}` must be positive; {not_zero}"),
            ));
        }
        other => {
            return Err(syn::Error::new_spanned(
                other,
                format!("`{name}` must be a literal; {help}"),
            ))
        }
    };
    if secs == 0 {
        return Err(syn::Error::new_spanned(
            e,
            format!("`{name}` must be greater than zero; {not_zero}"),
        ));
    }
    if secs > MAX_TTL_SECS {
        return Err(syn::Error::new(e.span(), too_large()));
    }
    Ok(secs)
}

/// `"10 minutes"` as `"10m"`, if that makes it a valid duration: units
/// spelled out or spaced out.
fn respell_duration(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| -> Option<()> {
        if !word.is_empty() {
            let unit = match word.to_ascii_lowercase().as_str() {
                "s" | "sec" | "secs" | "second" | "seconds" => "s",
                "m" | "min" | "mins" | "minute" | "minutes" => "m",
                "h" | "hr" | "hrs" | "hour" | "hours" => "h",
                "d" | "day" | "days" => "d",
                _ => return None,
            };
            out.push_str(unit);
            word.clear();
        }
        Some(())
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            flush(&mut word, &mut out)?;
            out.push(c);
        } else if c.is_alphabetic() {
            word.push(c);
        } else if !c.is_whitespace() && c != ',' {
            return None;
        }
    }
    flush(&mut word, &mut out)?;
    (out != text && parse_duration(&out).is_ok()).then_some(out)
}

/// `"90s"`, `"10m"`, `"1h30m"`, `"2d"` to seconds, saturating at `u64::MAX`
/// (the caller rejects anything over 100 years).
fn parse_duration(text: &str) -> Result<u64, String> {
    if text.is_empty() {
        return Err("the duration is empty".into());
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("expected a number at `{rest}`"));
        }
        // Only digits: parsing fails on overflow alone, and a duration too
        // large for `u64` is reported like any other over the limit.
        let n: u64 = rest[..digits].parse().unwrap_or(u64::MAX);
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "" => return Err(format!("`{text}` has no unit (s, m, h or d)")),
            unit => return Err(format!("unknown unit `{}` (use s, m, h or d)", unit.trim())),
        };
        rest = &rest[unit_len..];
        total = total.saturating_add(n.saturating_mul(factor));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("10m"), Ok(600));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("2d"), Ok(172_800));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("5w").is_err());
        assert_eq!(parse_duration("99999999999999999999h"), Ok(u64::MAX));
        assert_eq!(parse_duration("18446744073709551615s1s"), Ok(u64::MAX));
    }

    #[test]
    fn respelled_durations() {
        assert_eq!(respell_duration("10 minutes").as_deref(), Some("10m"));
        assert_eq!(respell_duration("1 hour 30 mins").as_deref(), Some("1h30m"));
        assert_eq!(respell_duration("2 Days").as_deref(), Some("2d"));
        assert_eq!(respell_duration("10 fortnights"), None);
        assert_eq!(respell_duration("ten minutes"), None);
        assert_eq!(respell_duration("10m"), None);
    }

    #[test]
    fn options_parse() {
        let mut errors = Errors::default();
        let o = Options::parse(
            Kind::Cached,
            quote!(
                ttl = "short",
                key = "p:{id}",
                skip(db),
                cache = self.cache,
                crate = my::c,
                cache_none
            ),
            &mut errors,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(errors.finish().is_ok());
        assert_eq!(o.ttl.get(), Some(&Ttl::Short));
        assert_eq!(o.key.get().unwrap().value(), "p:{id}");
        assert_eq!(o.skip.get().unwrap().len(), 1);
        assert!(o.cache.get().is_some() && o.krate.get().is_some() && o.cache_none.get().is_some());
    }

    #[test]
    fn eviction_options_parse() {
        let mut errors = Errors::default();
        let o = Options::parse(
            Kind::Evict,
            quote!(
                key = "p:{id}",
                keys = ["a:{id}", "b"],
                tags = ["t"],
                pattern = "l:*",
                before
            ),
            &mut errors,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(errors.finish().is_ok());
        assert_eq!(o.keys.get().unwrap().len(), 2);
        assert_eq!(o.tags.get().unwrap()[0].value(), "t");
        assert_eq!(o.pattern.get().unwrap().value(), "l:*");
        assert!(o.before.get().is_some() && o.key.get().is_some());
    }

    #[test]
    fn options_are_per_macro() {
        let messages = |kind, tokens| {
            let mut errors = Errors::default();
            let o = Options::parse(kind, tokens, &mut errors).unwrap();
            let messages: Vec<String> = match errors.finish() {
                Ok(()) => Vec::new(),
                Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
            };
            (o, messages)
        };
        let (o, m) = messages(Kind::Evict, quote!(keyz = ["a"], ttl = 5, skip(x)));
        assert!(o.has_unknown());
        assert_eq!(m.len(), 3, "{m:?}");
        assert!(m[0].contains("`keyz` for #[cache_evict]; did you mean `keys`?"));
        assert!(m[1].contains("unknown option `ttl`"));
        assert!(m[2].contains("valid options are: key, keys, tags, pattern, before"));
        let (_, m) = messages(Kind::Put, quote!(key = "k", before, no_companions));
        assert_eq!(m.len(), 2, "{m:?}");
        let (o, m) = messages(Kind::Cached, quote!(tags = ["a", "b:{id}"], no_companions));
        assert!(m.is_empty(), "{m:?}");
        assert_eq!(o.tags.get().unwrap().len(), 2);
        assert!(o.no_companions.get().is_some());
        let (o, m) = messages(Kind::Cached, quote!(tags = "a", tags = [1]));
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m[0].contains("write `tags = [\"a\"]`"));
        assert!(o.tags.is_written(&o) && o.tags.get().is_none());
    }

    #[test]
    fn all_errors_are_reported() {
        let mut errors = Errors::default();
        let o = Options::parse(
            Kind::Cached,
            quote!(ttl = 0, tll = 5, key = 3, ttl = "short", ttl = "short"),
            &mut errors,
        )
        .unwrap();
        assert_eq!(o.ttl.get(), Some(&Ttl::Short));
        let err = errors.finish().expect_err("must fail");
        let messages: Vec<String> = err.into_iter().map(|e| e.to_string()).collect();
        assert_eq!(messages.len(), 4, "{messages:?}");
        assert!(messages[0].contains("greater than zero"));
        assert!(messages[1].contains("did you mean `ttl`"));
        assert!(messages[2].contains("string literal"));
        assert!(messages[3].contains("given twice"));
    }

    /// The messages `tokens` gives for `kind`, and the options.
    fn parsed(kind: Kind, tokens: proc_macro2::TokenStream) -> (Options, Vec<String>) {
        let mut errors = Errors::default();
        let o = Options::parse(kind, tokens, &mut errors).unwrap_or_else(|e| panic!("{e}"));
        let messages = match errors.finish() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        };
        (o, messages)
    }

    #[test]
    fn lock_parses_on_cached_only() {
        let (o, m) = parsed(Kind::Cached, quote!(lock = false));
        assert!(m.is_empty(), "{m:?}");
        assert_eq!(o.lock.get(), Some(&false));
        let (_, m) = parsed(Kind::Cached, quote!(lock = "false"));
        assert_eq!(
            m,
            ["`lock` takes a bool, not a string: write `lock = false`"]
        );
        let (_, m) = parsed(Kind::Cached, quote!(lock));
        assert!(
            m[0].starts_with("`lock` takes a value: write `lock = false`"),
            "{m:?}"
        );
        let (_, m) = parsed(Kind::Put, quote!(lock = false));
        assert!(
            m[0].starts_with("`lock` does not apply to #[cache_put]"),
            "{m:?}"
        );
    }

    #[test]
    fn l1_options_parse() {
        for kind in [Kind::Cached, Kind::Put] {
            let (o, m) = parsed(kind, quote!(l1 = false));
            assert!(m.is_empty(), "{m:?}");
            assert_eq!(o.l1.get(), Some(&false));
            let (o, m) = parsed(kind, quote!(l1 = true, ttl = 60));
            assert!(m.is_empty(), "{m:?}");
            assert_eq!(o.l1.get(), Some(&true));
            for (written, secs) in [
                (quote!(l1_ttl = 5), 5),
                (quote!(l1_ttl = "5s"), 5),
                (quote!(l1_ttl = "10m"), 600),
                (quote!(l1_ttl = "1h30m"), 5400),
            ] {
                let (o, m) = parsed(kind, written);
                assert!(m.is_empty(), "{m:?}");
                assert_eq!(o.l1_ttl.get().map(|l| l.secs), Some(secs));
            }
        }
    }

    #[test]
    fn l1_ttl_is_checked_like_ttl_but_takes_no_preset() {
        let message = |tokens| {
            let (o, m) = parsed(Kind::Cached, tokens);
            assert!(o.l1_ttl.get().is_none() && o.l1_ttl.is_written(&o));
            assert_eq!(m.len(), 1, "{m:?}");
            m[0].clone()
        };
        for preset in ["short", "default", "long", " long "] {
            let m = message(quote!(l1_ttl = #preset));
            assert!(
                m.starts_with("`l1_ttl` takes no preset:") && m.contains("`l1_ttl = \"5s\"`"),
                "{m}"
            );
        }
        assert!(message(quote!(l1_ttl = 0)).starts_with("`l1_ttl` must be greater than zero"));
        assert!(message(quote!(l1_ttl = "0s")).starts_with("`l1_ttl` must be greater than zero"));
        assert!(message(quote!(l1_ttl = -5)).starts_with("`l1_ttl` must be positive"));
        assert!(message(quote!(l1_ttl = 1.5)).contains("round it (`l1_ttl = 2`)"));
        assert!(message(quote!(l1_ttl = 5u64)).starts_with("`l1_ttl` takes plain seconds"));
        assert!(message(quote!(l1_ttl = "10 minutes")).ends_with("write `l1_ttl = \"10m\"`"));
        assert!(message(quote!(l1_ttl = "5w")).starts_with("invalid `l1_ttl`: unknown unit `w`"));
        assert!(message(quote!(l1_ttl = "50000d")).starts_with("`l1_ttl` is too large"));
        assert!(message(quote!(l1_ttl = 99999999999999999999)).starts_with("`l1_ttl` is too large"));
        assert!(message(quote!(l1_ttl = SECS)).starts_with("`l1_ttl` must be a literal"));
        assert!(
            message(quote!(l1_ttl)).starts_with("`l1_ttl` takes a value, e.g. `l1_ttl = \"5s\"`")
        );
        assert!(!message(quote!(l1_ttl = 0)).contains("preset"));
        // `ttl` keeps its presets and its own messages.
        let (o, m) = parsed(Kind::Cached, quote!(ttl = "long"));
        assert!(m.is_empty() && o.ttl.get() == Some(&Ttl::Long));
        let (_, m) = parsed(Kind::Cached, quote!(ttl = "50000d"));
        assert!(
            m[0].ends_with("or `ttl = \"long\"` for the cache's long preset"),
            "{m:?}"
        );
    }

    #[test]
    fn none_ttl_is_seconds_without_preset() {
        for kind in [Kind::Cached, Kind::Put] {
            let (o, m) = parsed(kind, quote!(none_ttl = "30s"));
            assert!(m.is_empty(), "{m:?}");
            assert_eq!(o.none_ttl.get().map(|t| t.secs), Some(30));
        }
        let message = |tokens| {
            let (o, m) = parsed(Kind::Cached, tokens);
            assert!(o.none_ttl.get().is_none() && o.none_ttl.is_written(&o));
            assert_eq!(m.len(), 1, "{m:?}");
            m[0].clone()
        };
        assert!(message(quote!(none_ttl = 0)).starts_with("`none_ttl` must be greater than zero"));
        assert!(message(quote!(none_ttl = "short")).starts_with("`none_ttl` takes no preset"));
        assert!(message(quote!(none_ttl)).starts_with("`none_ttl` takes a value"));
        let (o, m) = parsed(Kind::Evict, quote!(key = "k", none_ttl = 5));
        assert!(o.has_unknown());
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(
            m[0].starts_with("`none_ttl` does not apply to #[cache_evict]"),
            "{m:?}"
        );
    }

    #[test]
    fn l1_takes_a_bool() {
        let message = |tokens| {
            let (o, m) = parsed(Kind::Put, tokens);
            assert!(o.l1.get().is_none() && o.l1.is_written(&o));
            assert_eq!(m.len(), 1, "{m:?}");
            m[0].clone()
        };
        for wrong in [quote!(l1 = "no"), quote!(l1 = 0), quote!(l1 = off)] {
            let m = message(wrong);
            assert!(
                m.starts_with("`l1` takes `true` or `false`; write `l1 = false`"),
                "{m}"
            );
        }
        assert_eq!(
            message(quote!(l1 = "false")),
            "`l1` takes a bool, not a string: write `l1 = false`"
        );
        for bare in [quote!(l1), quote!(l1(off))] {
            let m = message(bare);
            assert!(
                m.starts_with("`l1` takes a value: write `l1 = false`"),
                "{m}"
            );
        }
        let (_, m) = parsed(Kind::Cached, quote!(l1 = false, l1 = true));
        assert_eq!(m, ["`l1` is given twice; keep one"]);
    }

    #[test]
    fn l1_options_are_listed_where_they_apply() {
        for (kind, listed) in [
            (
                Kind::Cached,
                "valid options are: ttl, l1, l1_ttl, lock, stale, early_refresh, beta, key,",
            ),
            (Kind::Put, "valid options are: key, ttl, l1, l1_ttl, tags,"),
        ] {
            let (_, m) = parsed(kind, quote!(expiry = 60, l1ttl = 5));
            assert!(m[0].contains(listed), "{m:?}");
            assert!(m[1].contains("did you mean `l1_ttl`?"), "{m:?}");
        }
        let (o, m) = parsed(Kind::Evict, quote!(key = "k", l1 = false, l1_ttl = 5));
        assert!(o.has_unknown());
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m[0].starts_with("unknown option `l1` for #[cache_evict]"));
        assert!(m[1].starts_with("unknown option `l1_ttl` for #[cache_evict]"));
    }

    /// The README's option table for `#[cached]` has one row per option in
    /// [`Kind::options`], and none for an option the macro does not take.
    #[test]
    fn readme_option_table_matches_the_list() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
        let readme = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let rows = readme_option_rows(&readme);
        assert!(
            !rows.is_empty(),
            "no `| option | meaning |` table in the README"
        );
        let listed: Vec<&str> = Kind::Cached.options().iter().map(|o| o.name()).collect();
        let missing: Vec<&&str> = listed.iter().filter(|o| !rows.contains(o)).collect();
        let extra: Vec<&&str> = rows.iter().filter(|r| !listed.contains(r)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "the README's #[cached] option table has no row for {missing:?}, and rows for {extra:?} \
             which #[cached] does not take"
        );
    }

    /// The option each row of the README's `| option | meaning |` table
    /// names: `ttl` for ``| `ttl = 600` |``, `skip` for ``| `skip(db, pool)` |``.
    /// Rows that do not start with code (``| *(no `key`)* |``) name none.
    fn readme_option_rows(readme: &str) -> Vec<&str> {
        readme
            .lines()
            .skip_while(|l| l.trim() != "| option | meaning |")
            .skip(1)
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| l.strip_prefix("| `"))
            .map(|code| {
                let end = code
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(code.len());
                &code[..end]
            })
            .collect()
    }

    #[test]
    fn readme_rows_are_read_by_their_first_word() {
        let table =
            "intro\n| option | meaning |\n|---|---|\n| `ttl = 600` | x |\n| *(no `key`)* | y |\n\
                     | `skip(db)` | z |\n| `cache_none` | w |\n\nafter\n| `other` | no |\n";
        assert_eq!(readme_option_rows(table), ["ttl", "skip", "cache_none"]);
    }
}
