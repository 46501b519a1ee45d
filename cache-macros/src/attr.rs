//! Parsing `#[cached(...)]`, `#[cache_put(...)]` and `#[cache_evict(...)]`
//! into a plain [`Options`] struct.

use crate::errors::{did_you_mean, Errors};
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
    pub(crate) fn options(self) -> &'static [&'static str] {
        match self {
            Kind::Cached => &[
                "ttl",
                "key",
                "name",
                "skip",
                "tags",
                "cache",
                "crate",
                "cache_none",
                "no_companions",
            ],
            Kind::Put => &["key", "ttl", "tags", "name", "cache", "crate", "cache_none"],
            Kind::Evict => &[
                "key", "keys", "tags", "pattern", "before", "name", "cache", "crate",
            ],
        }
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

/// One option's value, set at most once; remembers where it was written.
pub(crate) struct Slot<T> {
    name: &'static str,
    value: Option<(Span, T)>,
}

impl<T> Slot<T> {
    fn new(name: &'static str) -> Self {
        Slot { name, value: None }
    }

    /// Stores `value`, or reports a duplicate on `span` (the second writing).
    fn set(&mut self, span: Span, value: T, errors: &mut Errors) {
        if self.value.is_some() {
            errors.push(syn::Error::new(
                span,
                format!("`{}` is given twice; keep one", self.name),
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
        opts.written.iter().any(|w| w == self.name)
    }

    pub(crate) fn span(&self) -> Option<Span> {
        self.value.as_ref().map(|(s, _)| *s)
    }
}

/// The parsed attribute.
pub(crate) struct Options {
    pub(crate) ttl: Slot<Ttl>,
    pub(crate) key: Slot<LitStr>,
    pub(crate) name: Slot<LitStr>,
    pub(crate) skip: Slot<Vec<Ident>>,
    pub(crate) cache: Slot<Expr>,
    pub(crate) krate: Slot<Path>,
    pub(crate) cache_none: Slot<()>,
    pub(crate) tags: Slot<Vec<LitStr>>,
    pub(crate) no_companions: Slot<()>,
    pub(crate) keys: Slot<Vec<LitStr>>,
    pub(crate) pattern: Slot<LitStr>,
    pub(crate) before: Slot<()>,
    /// Every option written, valid or not: a required option is not
    /// reported missing when the user wrote it wrongly.
    pub(crate) written: Vec<String>,
}

impl Options {
    /// Whether an option was written that this macro does not know.
    pub(crate) fn has_unknown(&self, kind: Kind) -> bool {
        self.written
            .iter()
            .any(|w| !kind.options().contains(&w.as_str()))
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
            ttl: Slot::new("ttl"),
            key: Slot::new("key"),
            name: Slot::new("name"),
            skip: Slot::new("skip"),
            cache: Slot::new("cache"),
            krate: Slot::new("crate"),
            cache_none: Slot::new("cache_none"),
            tags: Slot::new("tags"),
            no_companions: Slot::new("no_companions"),
            keys: Slot::new("keys"),
            pattern: Slot::new("pattern"),
            before: Slot::new("before"),
            written: Vec::new(),
        };
        let options = kind.options();
        for item in items {
            let span = item.ident.span();
            let written = item.ident.to_string();
            opts.written.push(written.clone());
            if !options.contains(&written.as_str()) {
                let hint = did_you_mean(&written, options.iter().copied())
                    .map_or(String::new(), |s| format!("did you mean `{s}`? "));
                errors.push(syn::Error::new(
                    span,
                    format!(
                        "unknown option `{written}` for {}; {hint}valid options are: {}",
                        kind.attr(),
                        options.join(", ")
                    ),
                ));
                continue;
            }
            match (written.as_str(), item.value) {
                ("ttl", Value::Expr(e)) => match parse_ttl(&e) {
                    Ok(ttl) => opts.ttl.set(span, ttl, errors),
                    Err(err) => errors.push(err),
                },
                ("key", Value::Expr(e)) => match string(&e, "key", "\"product:{id}\"") {
                    Ok(s) => opts.key.set(span, s, errors),
                    Err(err) => errors.push(err),
                },
                ("name", Value::Expr(e)) => match string(&e, "name", "\"products::get\"") {
                    Ok(s) if s.value().is_empty() => errors.push(syn::Error::new(s.span(), "`name` must not be empty; give a stable name, e.g. `name = \"products::get\"`, or leave it out to use the function's path")),
                    Ok(s) => opts.name.set(span, s, errors),
                    Err(err) => errors.push(err),
                },
                ("skip", Value::List(idents)) => opts.skip.set(span, idents, errors),
                ("cache", Value::Expr(e)) => opts.cache.set(span, e, errors),
                ("crate", Value::Expr(e)) => match e {
                    Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => opts.krate.set(span, p.path, errors),
                    other => errors.push(syn::Error::new_spanned(
                        other,
                        "`crate` takes a path, e.g. `crate = my_cache` for a renamed dependency",
                    )),
                },
                ("cache_none", Value::Flag) => opts.cache_none.set(span, (), errors),
                ("no_companions", Value::Flag) => opts.no_companions.set(span, (), errors),
                ("before", Value::Flag) => opts.before.set(span, (), errors),
                ("tags", Value::Expr(e)) => match strings(&e, "tags", "[\"products\", \"category:{cat}\"]") {
                    Ok(list) => opts.tags.set(span, list, errors),
                    Err(err) => errors.push(err),
                },
                ("keys", Value::Expr(e)) => match strings(&e, "keys", "[\"product:{id}\", \"product:slug:{slug}\"]") {
                    Ok(list) => opts.keys.set(span, list, errors),
                    Err(err) => errors.push(err),
                },
                ("pattern", Value::Expr(e)) => match string(&e, "pattern", "\"products:list:*\"") {
                    Ok(s) => opts.pattern.set(span, s, errors),
                    Err(err) => errors.push(err),
                },
                (name @ ("ttl" | "key" | "name" | "cache" | "crate" | "tags" | "keys" | "pattern"), _) => errors.push(syn::Error::new(
                    span,
                    format!("`{name}` takes a value, e.g. `{name} = {}`", example(name)),
                )),
                ("skip", _) => errors.push(syn::Error::new(
                    span,
                    "`skip` takes a list of parameters: `skip(db, pool)`",
                )),
                ("cache_none", _) => errors.push(syn::Error::new(
                    span,
                    "`cache_none` takes no value: write `cache_none` to also cache `None`, or leave it out",
                )),
                ("no_companions", _) => errors.push(syn::Error::new(
                    span,
                    "`no_companions` takes no value: write `no_companions` to generate no `_uncached` and \
                     `_invalidate` functions, or leave it out",
                )),
                ("before", _) => errors.push(syn::Error::new(
                    span,
                    "`before` takes no value: write `before` to evict before the body runs, or leave it out \
                     to evict after the body succeeds",
                )),
                (other, _) => unreachable!("`{other}` is in the list of options"),
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

/// A value to show in "`name` takes a value, e.g. ..." messages.
fn example(option: &str) -> &'static str {
    match option {
        "ttl" => "600",
        "key" => "\"product:{id}\"",
        "name" => "\"products::get\"",
        "cache" => "self.cache",
        "tags" => "[\"products\"]",
        "keys" => "[\"product:{id}\"]",
        "pattern" => "\"products:list:*\"",
        _ => "my_cache",
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

const TTL_HELP: &str = "write seconds (`ttl = 600`), a duration (`ttl = \"90s\"`, `\"10m\"`, `\"1h30m\"`, `\"2d\"`) or a preset (`ttl = \"short\"`, `\"default\"`, `\"long\"`)";

fn parse_ttl(e: &Expr) -> syn::Result<Ttl> {
    let e = ungroup(e);
    let secs = match e {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => {
            if !i.suffix().is_empty() {
                return Err(syn::Error::new(
                    i.span(),
                    format!("`ttl` takes plain seconds without a type suffix; {TTL_HELP}"),
                ));
            }
            i.base10_parse::<u64>()
                .map_err(|_| syn::Error::new(i.span(), too_large()))?
        }
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => match s.value().trim() {
            "short" => return Ok(Ttl::Short),
            "default" => return Ok(Ttl::Default),
            "long" => return Ok(Ttl::Long),
            text => parse_duration(text).map_err(|why| {
                let fix = match respell_duration(text) {
                    Some(fixed) => format!("write `ttl = \"{fixed}\"`"),
                    None => TTL_HELP.to_owned(),
                };
                syn::Error::new(s.span(), format!("invalid `ttl`: {why}; {fix}"))
            })?,
        },
        Expr::Lit(ExprLit {
            lit: Lit::Float(f), ..
        }) => {
            let rounded = f.base10_parse::<f64>().map_or(1.0, |x| x.ceil().max(1.0));
            return Err(syn::Error::new(
                f.span(),
                format!(
                    "`ttl` takes whole seconds, not `{f}`: round it (`ttl = {rounded}`), or write a \
                     duration in whole units (`ttl = \"90s\"`)"
                ),
            ));
        }
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_), ..
        }) => {
            return Err(syn::Error::new_spanned(
                e,
                "`ttl` must be positive; write at least one second (`ttl = 1`), or leave `ttl` out for the cache's default",
            ));
        }
        other => {
            return Err(syn::Error::new_spanned(
                other,
                format!("`ttl` must be a literal; {TTL_HELP}"),
            ))
        }
    };
    if secs == 0 {
        return Err(syn::Error::new_spanned(
            e,
            "`ttl` must be greater than zero; write at least one second (`ttl = 1`), or leave `ttl` out for the cache's default",
        ));
    }
    if secs > MAX_TTL_SECS {
        return Err(syn::Error::new(e.span(), too_large()));
    }
    Ok(Ttl::Secs(secs))
}

fn too_large() -> String {
    format!(
        "`ttl` is too large; the longest is {MAX_TTL_SECS} seconds (100 years): write a shorter one, \
         or `ttl = \"long\"` for the cache's long preset"
    )
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
        assert!(o.has_unknown(Kind::Evict));
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
}
