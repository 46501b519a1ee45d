//! Checking the options against the function, producing a [`Plan`].

use crate::ast::{Function, Output, Param, Shape};
use crate::attr::{Kind, Options, Ttl};
use crate::errors::{did_you_mean, Errors};
use crate::key::{Part, Template};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Ident, LitStr, Path, Type};

/// Everything the expansion needs, already checked.
pub(crate) struct Plan {
    pub(crate) krate: Path,
    /// An expression of type `&'static str`.
    pub(crate) name: TokenStream,
    pub(crate) cache: Option<syn::Expr>,
    /// The tags the entry is recorded under (`#[cached]`, `#[cache_put]`),
    /// or whose entries are removed (`#[cache_evict]`).
    pub(crate) tags: Vec<Rendered>,
    pub(crate) op: Op,
}

/// What the function does with the cache.
pub(crate) enum Op {
    /// `#[cached]`: looks the key up, runs the body on a miss and stores.
    Read {
        store: Store,
        key: Key,
        /// The `_uncached` and `_invalidate` companions (not `no_companions`).
        companions: bool,
    },
    /// `#[cache_put]`: runs the body and stores under a template key.
    Put { store: Store, key: Rendered },
    /// `#[cache_evict]`: runs the body and removes entries.
    Evict(Evict),
}

/// How a result is stored (`#[cached]`, `#[cache_put]`).
pub(crate) struct Store {
    pub(crate) ttl: Option<Ttl>,
    /// `none_ttl`, in seconds: how long a stored `None` lives.
    pub(crate) none_ttl: Option<u64>,
    pub(crate) l1: L1,
    /// Whether a miss takes the fill lock (`lock = false`: not).
    pub(crate) lock: bool,
    /// `stale`, in seconds: how long a value is served past its TTL while
    /// it is refreshed in the background (`#[cached]` only).
    pub(crate) stale: Option<u64>,
    /// `early_refresh`, with XFetch's β (1.0 unless `beta` says).
    pub(crate) early: Option<f64>,
    /// The `Policy` for what is stored: `SomeOnly`, `SomeOrNone`, `OkOnly`,
    /// `Always`.
    pub(crate) policy: Ident,
}

/// Whether the values are kept in the in-process L1, as the runtime's
/// `L1` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum L1 {
    /// Nothing written, or `l1 = true`: the expansion sets nothing.
    On,
    Off,
    MaxSecs(u64),
}

/// A template checked against the parameters: `format_args!(fmt, args...)`.
pub(crate) struct Rendered {
    pub(crate) fmt: LitStr,
    pub(crate) args: Vec<TokenStream>,
    /// The template, parsed once.
    pub(crate) template: Template,
    /// What a placeholder's value has percent-encoded besides `%`
    /// ([`Template::escaped`]): `":"` for most templates.
    pub(crate) escaped: String,
}

/// What `#[cache_evict]` removes, and when.
pub(crate) struct Evict {
    pub(crate) keys: Vec<Rendered>,
    /// Its arguments are wrapped in `glob_literal` by the expansion.
    pub(crate) pattern: Option<Rendered>,
    pub(crate) before: bool,
    /// `OkOnly` (an `Err` is a failure) or `Always`, an `Outcome`.
    pub(crate) outcome: Ident,
}

/// The key of `#[cached]`.
pub(crate) enum Key {
    /// `format_args!(fmt, args...)`.
    Template(Rendered),
    /// The named parameters, hashed in order; `true` marks a `HashSet` or
    /// `BTreeSet` parameter, hashed as an unordered set.
    Hashed {
        args: Vec<(Ident, bool)>,
        /// A generic function's type parameters, whose names are hashed
        /// with the arguments, and its const parameters, hashed before them:
        /// `fetch::<User>(1)` and `fetch::<Order>(1)` get different keys.
        generics: Generics,
    },
}

/// The generic parameters a hashed key depends on.
pub(crate) struct Generics {
    /// `Self`'s name is hashed first: a method of `impl<T> Repo<T>` gets
    /// one key per `T`, and two types' methods never share a key.
    pub(crate) self_type: bool,
    pub(crate) types: Vec<Ident>,
    pub(crate) consts: Vec<Ident>,
}

impl Generics {
    pub(crate) fn is_empty(&self) -> bool {
        !self.self_type && self.types.is_empty() && self.consts.is_empty()
    }
}

impl Key {
    /// The names the key reads: the hashed parameters, or the first segment
    /// of each placeholder.
    pub(crate) fn names(&self) -> Vec<String> {
        match self {
            Key::Hashed { args, .. } => args.iter().map(|(a, _)| a.to_string()).collect(),
            Key::Template(rendered) => rendered
                .template
                .placeholders()
                .map(|p| p[0].clone())
                .collect(),
        }
    }
}

pub(crate) fn plan(
    kind: Kind,
    opts: &Options,
    func: &Function<'_>,
    errors: &mut Errors,
) -> Option<Plan> {
    signature(kind, func, errors);

    let names: Vec<String> = func
        .params
        .iter()
        .filter_map(|p| p.name.as_ref())
        .map(Ident::to_string)
        .collect();
    let listing = if names.is_empty() {
        "the function has no named parameters".to_owned()
    } else {
        format!("parameters are: {}", names.join(", "))
    };
    let skipped = skipped(opts, func, &names, &listing, errors);

    let ctx = Context {
        has_self: func.receiver.is_some(),
        params: &func.params,
        listing: &listing,
    };
    // Tags are rendered like the key, but `skip` leaves arguments out of a
    // hashed key only: a tag may name a skipped parameter.
    let tags = templates(
        opts.tags.get().into_iter().flatten(),
        What::Tag,
        &ctx,
        errors,
    );

    let op = match kind {
        Kind::Cached => {
            let key = match opts.key.get() {
                Some(lit) => {
                    template_plan(lit, What::Key, &ctx, &skipped.names, errors).map(Key::Template)
                }
                None => hashed(func, &skipped, errors),
            };
            let mut store = store(kind, opts, &func.output, errors);
            if let Some(store) = &mut store {
                (store.stale, store.early) = refreshing(opts, func, errors);
            }
            match (key, store) {
                (Some(key), Some(store)) => Some(Op::Read {
                    store,
                    key,
                    companions: opts.no_companions.get().is_none(),
                }),
                _ => None,
            }
        }
        Kind::Put => {
            let key = match opts.key.get() {
                Some(lit) => template_plan(lit, What::Key, &ctx, &skipped.names, errors),
                // Written wrongly, or misspelt: reported already.
                None if opts.key.is_written(opts) || opts.has_unknown() => None,
                None => {
                    errors.push(syn::Error::new(
                        Span::call_site(),
                        "#[cache_put] needs a `key` template, the key it writes: e.g. \
                         `#[cache_put(key = \"product:{product.id}\")]`, rendering the same key as the \
                         `#[cached]` function that reads it",
                    ));
                    None
                }
            };
            let store = store(kind, opts, &func.output, errors);
            match (key, store) {
                (Some(key), Some(store)) => Some(Op::Put { store, key }),
                _ => None,
            }
        }
        Kind::Evict => evict(opts, func, &ctx, errors).map(Op::Evict),
    };

    let krate = opts
        .krate
        .get()
        .cloned()
        .unwrap_or_else(|| syn::parse_quote!(::cache_runtime));
    let name = match opts.name.get() {
        Some(lit) => lit.to_token_stream(),
        None => {
            let suffix = LitStr::new(&format!("::{}", func.sig().ident), Span::call_site());
            quote!(::core::concat!(::core::module_path!(), #suffix))
        }
    };

    Some(Plan {
        krate,
        name,
        cache: opts.cache.get().cloned(),
        tags: tags?,
        op: op?,
    })
}

/// What the signature itself rules out: the macro applied twice, `const`,
/// `unsafe`, a foreign ABI, a `fn` that is not `async`.
fn signature(kind: Kind, func: &Function<'_>, errors: &mut Errors) {
    let sig = func.sig();
    let macro_name = kind.attr();
    // A second `#[cached]` below this one is still in the attributes.
    for attr in &func.item.attrs {
        if attr
            .path()
            .segments
            .last()
            .is_some_and(|s| s.ident == kind.ident())
        {
            let why = match kind {
                Kind::Cached => {
                    "each would look up and store on its own, with its own options; keep one"
                }
                Kind::Put => "each would store on its own, with its own options; keep one",
                Kind::Evict => {
                    "each would evict on its own; keep one and list everything it removes there"
                }
            };
            errors.push(syn::Error::new_spanned(
                attr,
                format!("{macro_name} is applied twice to this function: {why}"),
            ));
        }
    }

    // Qualifiers that cannot be cached, each reported on its own token.
    let write_async = if sig.asyncness.is_none() {
        " and write `async fn`"
    } else {
        ""
    };
    let rust_abi = |abi: &syn::Abi| abi.name.as_ref().is_some_and(|n| n.value() == "Rust");
    let qualifiers = [
        sig.constness.map(|c| {
            (
                c.span,
                format!(
                    "{macro_name} cannot be used on a `const fn`: the cache is looked up at run time, \
                     never in const evaluation; remove `const`{write_async}"
                ),
            )
        }),
        sig.unsafety.map(|u| {
            (
                u.span,
                format!(
                    "{macro_name} cannot be used on an `unsafe fn`: the key sees only the arguments' values, \
                     while an unsafe function's result usually depends on memory they point to; \
                     keep the `unsafe` call in a plain `unsafe fn` and put {macro_name} on a safe \
                     `async fn` that calls it"
                ),
            )
        }),
        sig.abi.as_ref().filter(|abi| !rust_abi(abi)).map(|abi| {
            (
                abi.extern_token.span,
                format!(
                    "{macro_name} cannot be used on an `extern` fn: a function with a foreign ABI cannot \
                     return a future; remove the `extern` ABI{write_async}, or put {macro_name} on a Rust \
                     `async fn` that the `extern` fn calls"
                ),
            )
        }),
    ];
    let mut qualified = false;
    for (span, message) in qualifiers.into_iter().flatten() {
        errors.push(syn::Error::new(span, message));
        qualified = true;
    }
    if sig.asyncness.is_none() && !qualified {
        let message = if func.rewritten_by_async_trait() {
            // async-trait expands first (it is on the enclosing trait or
            // impl): it leaves an `'async_trait` lifetime and a boxed future,
            // and gives `fn` the span of the `async` it removed.
            format!(
                "{macro_name} cannot be used inside `#[async_trait]`: async-trait has already turned this \
                 `async fn` into a `fn` returning `Pin<Box<dyn Future>>`, whose body {macro_name} cannot wrap; \
                 use native `async fn` in the trait instead (remove `#[async_trait]`; stable since Rust 1.75), \
                 or put {macro_name} on an inherent `async fn` that this method calls"
            )
        } else if func.output.boxed_future {
            format!(
                "{macro_name} works on `async fn` only: this `fn` returns a boxed future, whose body \
                 {macro_name} cannot wrap; write it as an `async fn` (in a trait, a native `async fn`)"
            )
        } else {
            let why = match kind {
                Kind::Cached => "the lookup awaits the cache",
                Kind::Put => "storing the result awaits the cache",
                Kind::Evict => "evicting awaits the cache",
            };
            format!("{macro_name} works on `async fn` only: {why}; write `async fn`")
        };
        errors.push(syn::Error::new(sig.fn_token.span(), message));
    }
}

/// `skip(...)`: the parameters left out of a hashed key.
struct Skipped {
    /// The named parameters, each checked to be one, once.
    names: Vec<String>,
    /// `skip(self)`: the receiver is left out on purpose.
    receiver: bool,
}

/// `skip(...)`, each name checked to be a parameter (or `self` of a method),
/// once.
fn skipped(
    opts: &Options,
    func: &Function<'_>,
    names: &[String],
    listing: &str,
    errors: &mut Errors,
) -> Skipped {
    let mut skipped = Skipped {
        names: Vec::new(),
        receiver: false,
    };
    for ident in opts.skip.get().into_iter().flatten() {
        let name = ident.to_string();
        let listed = if name == "self" {
            std::mem::replace(&mut skipped.receiver, true)
        } else {
            skipped.names.contains(&name)
        };
        if listed {
            errors.push(syn::Error::new(
                ident.span(),
                format!("`{name}` is listed twice in `skip`; remove this one"),
            ));
        } else if name == "self" && func.receiver.is_none() {
            errors.push(syn::Error::new(
                ident.span(),
                format!(
                    "`skip(self)` names no parameter: this function has no `self`; remove it ({listing})"
                ),
            ));
        } else if name != "self" && !names.contains(&name) {
            let hint = did_you_mean(&name, names.iter().map(String::as_str))
                .map_or(String::new(), |n| format!("did you mean `{n}`? "));
            errors.push(syn::Error::new(
                ident.span(),
                format!("`skip({name})` names no parameter of this function; {hint}{listing}"),
            ));
        }
        if name != "self" {
            skipped.names.push(name);
        }
    }
    skipped
}

/// What `#[cache_evict]` removes: `key` and `keys`, a pattern, at least one
/// of them or `tags`.
fn evict(
    opts: &Options,
    func: &Function<'_>,
    ctx: &Context<'_>,
    errors: &mut Errors,
) -> Option<Evict> {
    let lits = opts.key.get().into_iter();
    let keys = templates(
        lits.chain(opts.keys.get().into_iter().flatten()),
        What::Key,
        ctx,
        errors,
    );
    let mut ok = keys.is_some();
    let pattern = match opts.pattern.get() {
        Some(lit) => {
            let rendered = template_plan(lit, What::Pattern, ctx, &[], errors);
            ok &= rendered.is_some();
            rendered
        }
        None => None,
    };
    // Written wrongly, or misspelt, one is reported already.
    let written = opts.key.is_written(opts)
        || opts.keys.is_written(opts)
        || opts.tags.is_written(opts)
        || opts.pattern.is_written(opts)
        || opts.has_unknown();
    if !written {
        errors.push(syn::Error::new(
            Span::call_site(),
            "#[cache_evict] has nothing to evict: give `key = \"product:{id}\"`, \
             `keys = [\"product:{id}\", \"product:slug:{slug}\"]`, `tags = [\"products\"]` \
             or `pattern = \"products:list:*\"` (they may be combined)",
        ));
        ok = false;
    }
    let outcome = match func.output.shape {
        Shape::Result => "OkOnly",
        Shape::Option | Shape::Plain => "Always",
    };
    ok.then(|| Evict {
        keys: keys.unwrap_or_default(),
        pattern,
        before: opts.before.get().is_some(),
        outcome: Ident::new(outcome, Span::call_site()),
    })
}

/// How `#[cached]` and `#[cache_put]` store the result.
fn store(kind: Kind, opts: &Options, output: &Output<'_>, errors: &mut Errors) -> Option<Store> {
    let policy = policy(kind, output, opts, errors);
    let l1 = l1(opts, errors);
    let none_ttl = none_ttl(opts, errors);
    Some(Store {
        ttl: opts.ttl.get().copied(),
        none_ttl,
        l1,
        lock: opts.lock.get().copied().unwrap_or(true),
        stale: None,
        early: None,
        policy: policy?,
    })
}

/// `l1` and `l1_ttl` together, `l1_ttl` checked against `l1 = false` and
/// against a `ttl` in seconds (a preset is known only at run time, where
/// the L1 copy is kept no longer than the entry anyway).
fn l1(opts: &Options, errors: &mut Errors) -> L1 {
    match (opts.l1.get(), opts.l1_ttl.get()) {
        (Some(false), limit) => {
            if let (Some(_), Some(span)) = (limit, opts.l1_ttl.span()) {
                errors.push(syn::Error::new(
                    span,
                    "`l1_ttl` and `l1 = false` contradict each other: `l1 = false` keeps no L1 copy, \
                     `l1_ttl` limits how long it lives; remove `l1_ttl` to keep the values out of the L1, \
                     or `l1 = false` to keep them there for at most `l1_ttl`",
                ));
            }
            L1::Off
        }
        (_, Some(limit)) => {
            if let Some(&Ttl::Secs(ttl)) = opts.ttl.get() {
                if limit.secs > ttl {
                    errors.push(syn::Error::new(
                        limit.span,
                        format!(
                            "`l1_ttl` is {} seconds, longer than the `ttl` of {ttl} seconds: the L1 copy \
                             cannot outlive the entry; drop `l1_ttl`, or make it at most `ttl`",
                            limit.secs
                        ),
                    ));
                }
            }
            L1::MaxSecs(limit.secs)
        }
        (_, None) => L1::On,
    }
}

/// `none_ttl`, checked against a `ttl` in seconds: a `None` is kept at most
/// as long as a value (a preset is known only at run time). That it is on an
/// `Option` function is checked with the policy.
fn none_ttl(opts: &Options, errors: &mut Errors) -> Option<u64> {
    let limit = opts.none_ttl.get()?;
    if let Some(&Ttl::Secs(ttl)) = opts.ttl.get() {
        if limit.secs > ttl {
            errors.push(syn::Error::new(
                limit.span,
                format!(
                    "`none_ttl` is {} seconds, longer than the `ttl` of {ttl} seconds: a `None` is \
                     kept for a shorter time than a value, not a longer one; make it at most `ttl`, \
                     or drop `none_ttl` and write `cache_none` to keep a `None` for `ttl`",
                    limit.secs
                ),
            ));
        }
    }
    Some(limit.secs)
}

/// `stale`, checked against what a background refresh needs: it runs the
/// body (a method: its `_uncached` companion) from owned copies of the
/// arguments, after the
/// caller has its value, so each parameter must have a name and must not
/// be `&mut`, and the receiver must not be `&mut self`.
fn refreshing(
    opts: &Options,
    func: &Function<'_>,
    errors: &mut Errors,
) -> (Option<u64>, Option<f64>) {
    let beta = opts.beta.get().map(|&(beta, _)| beta);
    if let (None, Some(&(_, span))) = (opts.early_refresh.get(), opts.beta.get()) {
        errors.push(syn::Error::new(
            span,
            "`beta` tunes `early_refresh`, which is not on: write `early_refresh` beside it, or drop `beta`",
        ));
    }
    let early = opts.early_refresh.get().map(|()| beta.unwrap_or(1.0));
    let window = opts.stale.get();
    let span = match (window, opts.early_refresh.span()) {
        (Some(w), _) => w.span,
        (None, Some(span)) => span,
        (None, None) => return (None, None),
    };
    let before = errors.len();
    let (article, option) = if window.is_some() {
        ("a", "stale")
    } else {
        ("an", "early_refresh")
    };
    let why = format!(
        "{article} `{option}` function's refresh runs in the background, after its caller has the value, \
         from copies of the arguments"
    );
    if func.receiver.is_some() && opts.no_companions.get().is_some() {
        errors.push(syn::Error::new(
            span,
            format!("{why}: it calls the `_uncached` companion, which `no_companions` leaves out; drop one of the two"),
        ));
    }
    if let Some(r) = func.receiver {
        // `&mut self`, or `self: &mut Self`.
        if matches!(&*r.ty, Type::Reference(t) if t.mutability.is_some()) {
            errors.push(syn::Error::new_spanned(
                r,
                format!("{why}: `&mut self` cannot be copied; take `&self`, or drop `{option}`"),
            ));
        }
    }
    for input in &func.sig().inputs {
        let syn::FnArg::Typed(t) = input else {
            continue;
        };
        let named = matches!(&*t.pat, syn::Pat::Ident(p) if p.subpat.is_none());
        if !named {
            errors.push(syn::Error::new_spanned(
                &t.pat,
                format!(
                    "{why}: bind this parameter to a name (`_flag: bool` for one the body ignores)"
                ),
            ));
        }
        match &*t.ty {
            Type::Reference(r) if r.mutability.is_some() => errors.push(syn::Error::new_spanned(
                &t.ty,
                format!("{why}: a `&mut` argument cannot be copied; take it by value or by `&`"),
            )),
            ty if names_impl_trait(ty) => errors.push(syn::Error::new_spanned(
                &t.ty,
                format!("{why}: an `impl Trait` argument cannot be named in the call; use a type parameter"),
            )),
            _ => {}
        }
    }
    if errors.len() == before {
        (window.map(|w| w.secs), early)
    } else {
        (None, None)
    }
}

/// Whether `ty` is or holds an `impl Trait` (`impl Display`, `&impl Display`).
fn names_impl_trait(ty: &Type) -> bool {
    fn walk(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|t| match t {
            proc_macro2::TokenTree::Ident(i) => i == "impl",
            proc_macro2::TokenTree::Group(g) => walk(g.stream()),
            _ => false,
        })
    }
    walk(ty.to_token_stream())
}

/// The hashed key of `#[cached]` without a template: every named parameter
/// but the skipped ones. `self` is never hashed, so a method must say
/// `skip(self)`: without it, every instance (every tenant) would share the
/// method's entries without a word.
fn hashed(func: &Function<'_>, skipped: &Skipped, errors: &mut Errors) -> Option<Key> {
    let mut args = Vec::new();
    for p in &func.params {
        match &p.name {
            Some(name) if !skipped.names.contains(&name.to_string()) => {
                args.push((name.clone(), p.set));
            }
            Some(_) => {}
            None if p.wildcard => {}
            None => errors.push(syn::Error::new_spanned(
                &p.pat,
                "a destructuring pattern cannot be hashed into the key: bind the parameter to a name \
                 and destructure it in the body, or give a `key = \"...\"` template",
            )),
        }
    }
    if let (Some(receiver), false) = (func.receiver, skipped.receiver) {
        let shown = func.sig().ident.unraw();
        let placeholders: String = args
            .iter()
            .map(|(a, _)| format!(":{{{}}}", a.unraw()))
            .collect();
        errors.push(syn::Error::new_spanned(
            receiver,
            format!(
                "a hashed key leaves `self` out, so every instance shares this method's entries (two \
                 tenants would read each other's values); write `skip(self)` if the result does not \
                 depend on `self`, or give a key template that names what it depends on, e.g. \
                 `key = \"{shown}:{{self.tenant}}{placeholders}\"`"
            ),
        ));
    }
    let generics = Generics {
        self_type: func.in_impl,
        types: func.type_params.clone(),
        consts: func.const_params.clone(),
    };
    Some(Key::Hashed { args, generics })
}

/// What a template renders, for messages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum What {
    Key,
    Tag,
    Pattern,
}

impl What {
    fn noun(self) -> &'static str {
        match self {
            What::Key => "key",
            What::Tag => "tag",
            What::Pattern => "pattern",
        }
    }
}

/// What templates are checked against.
struct Context<'a> {
    has_self: bool,
    params: &'a [Param],
    listing: &'a str,
}

/// Each of `list`, checked; `None` if any is wrong (each reported).
fn templates<'l>(
    list: impl IntoIterator<Item = &'l LitStr>,
    what: What,
    ctx: &Context<'_>,
    errors: &mut Errors,
) -> Option<Vec<Rendered>> {
    let mut out = Vec::new();
    let mut ok = true;
    for lit in list {
        match template_plan(lit, what, ctx, &[], errors) {
            Some(r) => out.push(r),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn template_plan(
    lit: &LitStr,
    what: What,
    ctx: &Context<'_>,
    skipped: &[String],
    errors: &mut Errors,
) -> Option<Rendered> {
    let Context {
        has_self,
        params,
        listing,
    } = *ctx;
    let noun = what.noun();
    if what != What::Key && lit.value().is_empty() {
        let example = match what {
            What::Pattern => "`pattern = \"products:list:*\"`",
            _ => "`tags = [\"products\"]`",
        };
        errors.push(syn::Error::new(
            lit.span(),
            format!("the {noun} is empty; write one like {example}"),
        ));
        return None;
    }
    let template = match Template::parse(&lit.value()) {
        Ok(t) => t,
        Err(why) => {
            errors.push(syn::Error::new(
                lit.span(),
                format!("invalid {noun} template: {why}"),
            ));
            return None;
        }
    };
    let span = lit.span();
    let mut ok = true;
    if template.reserved() {
        errors.push(syn::Error::new(
            span,
            "keys starting with `__` are reserved for the library's own bookkeeping (`__tag:`, \
             `__wb:`, ...); start the template with something else",
        ));
        ok = false;
    }
    let unseparated = template.unseparated();
    if let Some(&first) = unseparated.first() {
        let names: Vec<String> = template.placeholders().map(|p| p.join(".")).collect();
        let (a, b) = (&names[first], &names[first + 1]);
        errors.push(syn::Error::new(
            span,
            format!(
                "placeholders `{{{a}}}` and `{{{b}}}` have nothing between them but letters, digits or \
                 non-ASCII characters, which a value may contain too, so two different pairs of values \
                 would render one {noun}; separate them with an ASCII character such as `:`, which a \
                 value then has escaped: `{}`",
                template.with_colon_after(&unseparated)
            ),
        ));
        ok = false;
    }
    for path in template.placeholders() {
        let head = &path[0];
        let shown = path.join(".");
        if head == "self" {
            if !has_self {
                errors.push(syn::Error::new(
                    span,
                    format!(
                        "placeholder `{{{shown}}}` uses `self`, but this function has no `self` parameter; \
                         use a parameter instead ({listing})"
                    ),
                ));
                ok = false;
            } else if path.len() == 1 {
                errors.push(syn::Error::new(
                    span,
                    "placeholder `{self}` names the whole receiver; name a field, e.g. `{self.tenant}`",
                ));
                ok = false;
            }
        } else if !params.iter().any(|p| p.bindings.iter().any(|b| b == head)) {
            let bindings = params
                .iter()
                .flat_map(|p| p.bindings.iter().map(Ident::to_string))
                .collect::<Vec<_>>();
            let hint = did_you_mean(head, bindings.iter().map(String::as_str)).map_or(
                String::new(),
                |b| {
                    let fields: String = path[1..].iter().map(|f| format!(".{f}")).collect();
                    format!("did you mean `{{{b}{fields}}}`? ")
                },
            );
            errors.push(syn::Error::new(
                span,
                format!("unknown placeholder `{{{shown}}}`; {hint}{listing}"),
            ));
            ok = false;
        } else if skipped.iter().any(|s| s == head) {
            errors.push(syn::Error::new(
                span,
                format!(
                    "placeholder `{{{shown}}}` uses `{head}`, which `skip(...)` leaves out of the key; \
                     remove `{head}` from `skip` (with a template, `skip` is not needed)"
                ),
            ));
            ok = false;
        }
    }
    if !ok {
        return None;
    }
    let mut fmt = String::new();
    let mut args = Vec::new();
    for part in &template.parts {
        match part {
            Part::Text(text) => fmt.push_str(&text.replace('{', "{{").replace('}', "}}")),
            Part::Placeholder(path) => {
                fmt.push_str("{}");
                let mut expr = if path[0] == "self" {
                    quote_spanned!(span=> self)
                } else {
                    Ident::new(&path[0], span).to_token_stream()
                };
                // Fields are reported on the key string too, but with the
                // macro's hygiene: rustc then does not offer its "similar
                // field" fix, which would replace the whole string literal.
                let field_span = Span::mixed_site().located_at(span);
                for seg in &path[1..] {
                    let member: TokenStream = match seg.parse::<u32>() {
                        Ok(index) => syn::Index {
                            index,
                            span: field_span,
                        }
                        .to_token_stream(),
                        Err(_) => format_ident!("{}", seg, span = field_span).to_token_stream(),
                    };
                    expr = quote_spanned!(span=> #expr.#member);
                }
                args.push(expr);
            }
        }
    }
    Some(Rendered {
        fmt: LitStr::new(&fmt, span),
        args,
        escaped: template.escaped(what == What::Pattern),
        template,
    })
}

/// Which results are stored, from the declared return type's shape.
fn policy(kind: Kind, output: &Output<'_>, opts: &Options, errors: &mut Errors) -> Option<Ident> {
    let macro_name = kind.attr();
    match output.impl_trait {
        Some(t) if matches!(output.ty, Some(Type::ImplTrait(_))) => {
            errors.push(syn::Error::new_spanned(
                t,
                format!(
                    "{macro_name} cannot store an `impl Trait` return value: name a concrete type that \
                     implements `Serialize` and `DeserializeOwned`"
                ),
            ));
            return None;
        }
        // Nested, as in `Result<impl Display, E>`: the stored part must be named too.
        Some(nested) => {
            errors.push(syn::Error::new_spanned(
                nested,
                format!(
                    "{macro_name} cannot store a value whose type contains `impl Trait`: name a concrete \
                     type here that implements `Serialize` and `DeserializeOwned`"
                ),
            ));
            return None;
        }
        None => {}
    }
    // rustc would say "implementation of `Deserialize` is not general enough".
    if let Some(reference) = output.borrowed {
        errors.push(syn::Error::new_spanned(
            reference,
            format!(
                "{macro_name} cannot store a borrowed value: a cached value outlives the call that made \
                 it, so it must own its data; return an owned type here (`String` for `&str`, `Vec<T>` \
                 for `&[T]`, `T` for `&T`)"
            ),
        ));
        return None;
    }
    // `none_ttl` implies `cache_none`; both together are accepted.
    let stores_none = opts.cache_none.get().is_some() || opts.none_ttl.get().is_some();
    let name = match (output.shape, stores_none) {
        (Shape::Option, true) => "SomeOrNone",
        (Shape::Option, false) => "SomeOnly",
        (_, true) => {
            if let Some(span) = opts.cache_none.span() {
                errors.push(syn::Error::new(
                    span,
                    "`cache_none` applies only to functions returning `Option<T>`; remove it",
                ));
            }
            if let Some(span) = opts.none_ttl.span() {
                errors.push(syn::Error::new(
                    span,
                    "`none_ttl` is how long a stored `None` lives, and applies only to functions \
                     returning `Option<T>`; remove it, or return `Option<T>` with `None` for \
                     \"not found\"",
                ));
            }
            return None;
        }
        (Shape::Result, false) => "OkOnly",
        (Shape::Plain, false) => "Always",
    };
    Some(Ident::new(name, Span::call_site()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The L1 setting of `#[cached(tokens)]`, and the messages.
    fn l1_of(tokens: TokenStream) -> (L1, Vec<String>) {
        let mut errors = Errors::default();
        let opts = Options::parse(Kind::Cached, tokens, &mut errors).unwrap();
        let l1 = l1(&opts, &mut errors);
        let messages = match errors.finish() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        };
        (l1, messages)
    }

    /// The messages `#[cached(attr)] item` gives.
    fn messages(attr: TokenStream, item: TokenStream) -> Vec<String> {
        let item: syn::ItemFn = syn::parse2(item).unwrap();
        let func = Function::new(&item);
        let mut errors = Errors::default();
        let opts = Options::parse(Kind::Cached, attr, &mut errors).unwrap();
        let _ = plan(Kind::Cached, &opts, &func, &mut errors);
        match errors.finish() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn a_method_with_a_hashed_key_says_skip_self() {
        let count = quote!(
            async fn count(&self, category: &str, page: u32) -> usize {
                self.n
            }
        );
        let m = messages(quote!(ttl = 60), count.clone());
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(
            m[0].starts_with("a hashed key leaves `self` out, so every instance shares"),
            "{m:?}"
        );
        assert!(
            m[0].ends_with(
                "write `skip(self)` if the result does not depend on `self`, or give a key template \
                 that names what it depends on, e.g. `key = \"count:{self.tenant}:{category}:{page}\"`"
            ),
            "{m:?}"
        );
        assert!(messages(quote!(ttl = 60, skip(self)), count.clone()).is_empty());
        assert!(messages(quote!(skip(page, self)), count.clone()).is_empty());
        assert!(messages(quote!(key = "c:{self.n}:{category}"), count.clone()).is_empty());
        assert_eq!(
            messages(quote!(skip(self, self)), count),
            ["`self` is listed twice in `skip`; remove this one"]
        );
        // Every receiver, `self: Arc<Self>` included.
        for receiver in [quote!(self), quote!(&mut self), quote!(self: Arc<Self>)] {
            let m = messages(
                quote!(),
                quote!(async fn f(#receiver, id: u64) -> u64 { id }),
            );
            assert_eq!(m.len(), 1, "{m:?}");
            assert!(
                m[0].contains("e.g. `key = \"f:{self.tenant}:{id}\"`"),
                "{m:?}"
            );
        }
        // A free function has no `self` to skip.
        assert_eq!(
            messages(quote!(skip(self)), quote!(async fn f(id: u64) -> u64 { id })),
            ["`skip(self)` names no parameter: this function has no `self`; remove it (parameters are: id)"]
        );
    }

    /// The key `#[cached(attr)] item` plans.
    fn key_of(attr: TokenStream, item: TokenStream) -> Key {
        let item: syn::ItemFn = syn::parse2(item).unwrap();
        let func = Function::new(&item);
        let mut errors = Errors::default();
        let opts = Options::parse(Kind::Cached, attr, &mut errors).unwrap();
        match plan(Kind::Cached, &opts, &func, &mut errors).map(|p| p.op) {
            Some(Op::Read { key, .. }) => key,
            _ => panic!("no key: {:?}", errors.finish().err().map(|e| e.to_string())),
        }
    }

    #[test]
    fn a_generic_hashed_key_names_the_generic_parameters() {
        let fetch = quote!(
            async fn fetch<'a, T, const N: usize, U>(db: &'a Db, id: u64) -> T {
                db.get(id)
            }
        );
        let Key::Hashed { args, generics } = key_of(quote!(skip(db)), fetch.clone()) else {
            panic!("not hashed");
        };
        assert_eq!(args.len(), 1);
        assert_eq!(generics.types, ["T", "U"]);
        assert_eq!(generics.consts, ["N"]);
        let Key::Hashed { generics, .. } = key_of(
            quote!(),
            quote!(
                async fn f(id: u64) -> u64 {
                    id
                }
            ),
        ) else {
            panic!("not hashed");
        };
        assert!(generics.is_empty());
        // A method hashes `Self` too (`impl<T> Repo<T>`), even when skipped.
        let Key::Hashed { args, generics } = key_of(
            quote!(skip(self)),
            quote!(
                async fn get(&self, id: u64) -> u64 {
                    id
                }
            ),
        ) else {
            panic!("not hashed");
        };
        assert_eq!(args.len(), 1);
        assert!(generics.self_type && !generics.is_empty());
        // With a template nothing changes: the template is the key.
        assert!(matches!(
            key_of(quote!(key = "f:{id}"), fetch),
            Key::Template(_)
        ));
    }

    #[test]
    fn l1_settings() {
        let ok = |l1| (l1, Vec::<String>::new());
        assert_eq!(l1_of(quote!(ttl = 60)), ok(L1::On));
        assert_eq!(l1_of(quote!(l1 = true)), ok(L1::On));
        assert_eq!(l1_of(quote!(l1 = false)), ok(L1::Off));
        assert_eq!(l1_of(quote!(l1_ttl = "5s")), ok(L1::MaxSecs(5)));
        assert_eq!(l1_of(quote!(l1 = true, l1_ttl = 5)), ok(L1::MaxSecs(5)));
        // At most `ttl`, equal included; a preset is not compared.
        assert_eq!(
            l1_of(quote!(ttl = "10m", l1_ttl = 600)),
            ok(L1::MaxSecs(600))
        );
        assert_eq!(
            l1_of(quote!(ttl = "short", l1_ttl = "1d")),
            ok(L1::MaxSecs(86_400))
        );
    }

    /// The `none_ttl` and policy `#[cached(attr)] item` plans, or the messages.
    fn none_ttl_of(
        attr: TokenStream,
        item: TokenStream,
    ) -> Result<(Option<u64>, String), Vec<String>> {
        let item: syn::ItemFn = syn::parse2(item).unwrap();
        let func = Function::new(&item);
        let mut errors = Errors::default();
        let opts = Options::parse(Kind::Cached, attr, &mut errors).unwrap();
        let plan = plan(Kind::Cached, &opts, &func, &mut errors);
        if let Err(e) = errors.finish() {
            return Err(e.into_iter().map(|e| e.to_string()).collect());
        }
        match plan.map(|p| p.op) {
            Some(Op::Read { store, .. }) => Ok((store.none_ttl, store.policy.to_string())),
            _ => panic!("no plan"),
        }
    }

    #[test]
    fn none_ttl_implies_cache_none_on_option_only() {
        let find = quote!(
            async fn find(id: u64) -> Option<u64> {
                Some(id)
            }
        );
        let ok = |secs| Ok((Some(secs), "SomeOrNone".to_owned()));
        assert_eq!(
            none_ttl_of(quote!(ttl = "1h", none_ttl = "30s"), find.clone()),
            ok(30)
        );
        // Equal to `ttl`, with `cache_none` too, or against a preset: fine.
        assert_eq!(
            none_ttl_of(quote!(ttl = 30, none_ttl = 30, cache_none), find.clone()),
            ok(30)
        );
        assert_eq!(
            none_ttl_of(quote!(ttl = "short", none_ttl = "1d"), find.clone()),
            ok(86_400)
        );
        assert_eq!(
            none_ttl_of(quote!(ttl = "10m"), find.clone()),
            Ok((None, "SomeOnly".to_owned()))
        );
        let m = none_ttl_of(quote!(ttl = "10m", none_ttl = "1h"), find).unwrap_err();
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(
            m[0].starts_with("`none_ttl` is 3600 seconds, longer than the `ttl` of 600 seconds")
        );
        let m = none_ttl_of(
            quote!(none_ttl = 5, cache_none),
            quote!(
                async fn f() -> Result<u8, ()> {
                    Ok(1)
                }
            ),
        )
        .unwrap_err();
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m[1].starts_with("`none_ttl` is how long a stored `None` lives, and applies only"));
    }

    #[test]
    fn l1_ttl_against_l1_and_ttl() {
        let (l1, m) = l1_of(quote!(l1 = false, l1_ttl = "5s"));
        assert_eq!(l1, L1::Off);
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(m[0].starts_with("`l1_ttl` and `l1 = false` contradict each other"));
        // The contradiction alone: how long `l1_ttl` is does not matter.
        let (_, m) = l1_of(quote!(ttl = 5, l1_ttl = 10, l1 = false));
        assert_eq!(m.len(), 1, "{m:?}");
        let (l1, m) = l1_of(quote!(ttl = "10m", l1_ttl = "1h"));
        assert_eq!(l1, L1::MaxSecs(3600));
        assert_eq!(
            m,
            ["`l1_ttl` is 3600 seconds, longer than the `ttl` of 600 seconds: the L1 copy cannot \
              outlive the entry; drop `l1_ttl`, or make it at most `ttl`"]
        );
    }
}
