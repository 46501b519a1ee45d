//! Checking the options against the function, producing a [`Plan`].

use crate::attr::{Kind, Options, Ttl};
use crate::errors::{did_you_mean, Errors};
use crate::key::{Part, Template};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{
    FnArg, GenericArgument, Ident, ItemFn, LitStr, Pat, Path, PathArguments, ReturnType, Signature,
    Type,
};

/// Everything the expansion needs, already checked.
pub(crate) struct Plan {
    pub(crate) kind: Kind,
    pub(crate) krate: Path,
    /// An expression of type `&'static str`.
    pub(crate) name: TokenStream,
    pub(crate) ttl: Option<Ttl>,
    pub(crate) l1: L1,
    /// `None` for `#[cache_evict]`, which has `evict` instead.
    pub(crate) key: Option<KeyPlan>,
    /// Tags the entry is recorded under (`#[cached]`, `#[cache_put]`).
    pub(crate) tags: Vec<Rendered>,
    /// For `#[cache_evict]`: `OkOnly` or `Always`, an `Outcome`. Otherwise
    /// the `Policy` for what is stored.
    pub(crate) policy: Ident,
    /// Where a return value that cannot be stored is reported.
    pub(crate) stored_span: Span,
    pub(crate) cache: Option<syn::Expr>,
    /// What `#[cache_evict]` removes.
    pub(crate) evict: Option<EvictPlan>,
    /// For `#[cached]` unless `no_companions`: the names the `_invalidate`
    /// companion uses (the others are renamed `_name` there).
    pub(crate) companions: Option<Vec<String>>,
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
}

/// What `#[cache_evict]` removes, and when.
pub(crate) struct EvictPlan {
    pub(crate) keys: Vec<Rendered>,
    pub(crate) tags: Vec<Rendered>,
    /// Its arguments are wrapped in `glob_literal` by the expansion.
    pub(crate) pattern: Option<Rendered>,
    pub(crate) before: bool,
}

pub(crate) enum KeyPlan {
    /// `format_args!(fmt, args...)`.
    Template(Rendered),
    /// The named parameters, hashed in order; `true` marks a `HashSet` or
    /// `BTreeSet` parameter, hashed as an unordered set.
    Hashed { args: Vec<(Ident, bool)> },
}

/// A parameter as the key sees it.
struct Param {
    /// `id` in `id: u64`; `None` for `_` and for patterns.
    name: Option<Ident>,
    /// Every name a pattern parameter binds, usable in templates.
    bindings: Vec<Ident>,
    wildcard: bool,
    pat: Box<Pat>,
    /// Its type is a `HashSet` or `BTreeSet` (behind references).
    set: bool,
}

pub(crate) fn plan(kind: Kind, opts: &Options, func: &ItemFn, errors: &mut Errors) -> Option<Plan> {
    let sig = &func.sig;
    let macro_name = kind.attr();
    // A second `#[cached]` below this one is still in the attributes.
    for attr in &func.attrs {
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
        let message = if from_async_trait(sig) {
            // async-trait expands first (it is on the enclosing trait or
            // impl): it leaves an `'async_trait` lifetime and a boxed future,
            // and gives `fn` the span of the `async` it removed.
            format!(
                "{macro_name} cannot be used inside `#[async_trait]`: async-trait has already turned this \
                 `async fn` into a `fn` returning `Pin<Box<dyn Future>>`, whose body {macro_name} cannot wrap; \
                 use native `async fn` in the trait instead (remove `#[async_trait]`; stable since Rust 1.75), \
                 or put {macro_name} on an inherent `async fn` that this method calls"
            )
        } else if returns_boxed_future(&sig.output) {
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

    let has_self = sig.inputs.iter().any(|a| matches!(a, FnArg::Receiver(_)));
    let params: Vec<Param> = sig
        .inputs
        .iter()
        .filter_map(|a| match a {
            FnArg::Typed(t) => Some(Param {
                set: is_set(&t.ty),
                ..param(&t.pat)
            }),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let names: Vec<String> = params
        .iter()
        .filter_map(|p| p.name.as_ref())
        .map(Ident::to_string)
        .collect();
    let listing = if names.is_empty() {
        "the function has no named parameters".to_owned()
    } else {
        format!("parameters are: {}", names.join(", "))
    };

    // skip(...) names parameters that exist, once each.
    let mut skipped: Vec<String> = Vec::new();
    for ident in opts.skip.get().into_iter().flatten() {
        let name = ident.to_string();
        if name == "self" {
            continue; // `self` is never hashed; accept it as written.
        }
        if skipped.contains(&name) {
            errors.push(syn::Error::new(
                ident.span(),
                format!("`{name}` is listed twice in `skip`; remove this one"),
            ));
        } else if !names.contains(&name) {
            let hint = did_you_mean(&name, names.iter().map(String::as_str))
                .map_or(String::new(), |n| format!("did you mean `{n}`? "));
            errors.push(syn::Error::new(
                ident.span(),
                format!("`skip({name})` names no parameter of this function; {hint}{listing}"),
            ));
        }
        skipped.push(name);
    }

    let ctx = Context {
        has_self,
        params: &params,
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
    let key_template = |lit: &LitStr, errors: &mut Errors| {
        template_plan(lit, What::Key, &ctx, &skipped, errors).map(KeyPlan::Template)
    };

    let (key, evict) = match kind {
        Kind::Cached => {
            let key = match opts.key.get() {
                Some(lit) => key_template(lit, errors),
                None => hashed(&params, &skipped, errors),
            };
            (key, None::<EvictPlan>)
        }
        Kind::Put => {
            let key = match opts.key.get() {
                Some(lit) => key_template(lit, errors),
                // Written wrongly, or misspelt: reported already.
                None if opts.key.is_written(opts) || opts.has_unknown(kind) => None,
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
            (key, None)
        }
        Kind::Evict => {
            let lits = opts.key.get().into_iter();
            let keys = templates(
                lits.chain(opts.keys.get().into_iter().flatten()),
                What::Key,
                &ctx,
                errors,
            );
            let mut ok = keys.is_some();
            let keys = keys.unwrap_or_default();
            let pattern = match opts.pattern.get() {
                Some(lit) => {
                    let rendered = template_plan(lit, What::Pattern, &ctx, &[], errors);
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
                || opts.has_unknown(kind);
            if !written {
                errors.push(syn::Error::new(
                    Span::call_site(),
                    "#[cache_evict] has nothing to evict: give `key = \"product:{id}\"`, \
                     `keys = [\"product:{id}\", \"product:slug:{slug}\"]`, `tags = [\"products\"]` \
                     or `pattern = \"products:list:*\"` (they may be combined)",
                ));
                ok = false;
            }
            let evict = ok.then(|| EvictPlan {
                keys,
                tags: Vec::new(), // filled below
                pattern,
                before: opts.before.get().is_some(),
            });
            (None, evict)
        }
    };

    let policy = match kind {
        Kind::Evict => Some(outcome(&sig.output)),
        Kind::Cached | Kind::Put => policy(kind, &sig.output, opts, errors),
    };

    let l1 = l1(opts, errors);

    let krate = opts
        .krate
        .get()
        .cloned()
        .unwrap_or_else(|| syn::parse_quote!(::cache_runtime));
    let name = match opts.name.get() {
        Some(lit) => lit.to_token_stream(),
        None => {
            let suffix = LitStr::new(&format!("::{}", sig.ident), Span::call_site());
            quote!(::core::concat!(::core::module_path!(), #suffix))
        }
    };

    let tags = tags?;
    let (key, tags, evict) = match kind {
        Kind::Evict => (None, Vec::new(), Some(EvictPlan { tags, ..evict? })),
        Kind::Cached | Kind::Put => (Some(key?), tags, None),
    };
    let companions = (kind == Kind::Cached && opts.no_companions.get().is_none()).then(|| {
        // The names the `_invalidate` companion uses: the key's and the
        // cache expression's.
        let mut used: Vec<String> = match &key {
            Some(KeyPlan::Hashed { args }) => args.iter().map(|(a, _)| a.to_string()).collect(),
            _ => opts
                .key
                .get()
                .and_then(|lit| Template::parse(&lit.value()).ok())
                .map(|t| t.placeholders().map(|p| p[0].clone()).collect())
                .unwrap_or_default(),
        };
        if let Some(cache) = opts.cache.get() {
            idents(cache.to_token_stream(), &mut used);
        }
        used
    });

    Some(Plan {
        kind,
        krate,
        name,
        ttl: opts.ttl.get().copied(),
        l1,
        key,
        tags,
        policy: policy?,
        stored_span: stored_span(sig),
        cache: opts.cache.get().cloned(),
        evict,
        companions,
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

/// Every identifier in `tokens`, into `out`.
fn idents(tokens: TokenStream, out: &mut Vec<String>) {
    for tt in tokens {
        match tt {
            proc_macro2::TokenTree::Ident(i) => out.push(i.to_string()),
            proc_macro2::TokenTree::Group(g) => idents(g.stream(), out),
            _ => {}
        }
    }
}

/// The hashed key of `#[cached]` without a template: every named parameter
/// but the skipped ones.
fn hashed(params: &[Param], skipped: &[String], errors: &mut Errors) -> Option<KeyPlan> {
    let mut args = Vec::new();
    for p in params {
        match &p.name {
            Some(name) if !skipped.contains(&name.to_string()) => args.push((name.clone(), p.set)),
            Some(_) => {}
            None if p.wildcard => {}
            None => errors.push(syn::Error::new_spanned(
                &p.pat,
                "a destructuring pattern cannot be hashed into the key: bind the parameter to a name \
                 and destructure it in the body, or give a `key = \"...\"` template",
            )),
        }
    }
    Some(KeyPlan::Hashed { args })
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

fn param(pat: &Pat) -> Param {
    match pat {
        Pat::Ident(p) if p.subpat.is_none() => Param {
            name: Some(p.ident.clone()),
            bindings: vec![p.ident.clone()],
            wildcard: false,
            pat: Box::new(pat.clone()),
            set: false,
        },
        Pat::Wild(_) => Param {
            name: None,
            bindings: Vec::new(),
            wildcard: true,
            pat: Box::new(pat.clone()),
            set: false,
        },
        other => {
            struct Bindings(Vec<Ident>);
            impl Visit<'_> for Bindings {
                fn visit_pat_ident(&mut self, p: &syn::PatIdent) {
                    self.0.push(p.ident.clone());
                    syn::visit::visit_pat_ident(self, p);
                }
            }
            let mut b = Bindings(Vec::new());
            b.visit_pat(other);
            Param {
                name: None,
                bindings: b.0,
                wildcard: false,
                pat: Box::new(other.clone()),
                set: false,
            }
        }
    }
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
    })
}

/// Which results are stored, from the declared return type's last segment.
fn policy(kind: Kind, output: &ReturnType, opts: &Options, errors: &mut Errors) -> Option<Ident> {
    let macro_name = kind.attr();
    let ty = match output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => Some(&**ty),
    };
    if let Some(Type::ImplTrait(t)) = ty {
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
    if let Some(nested) = ty.and_then(|t| find_type(t, |t| matches!(t, Type::ImplTrait(_)))) {
        errors.push(syn::Error::new_spanned(
            nested,
            format!(
                "{macro_name} cannot store a value whose type contains `impl Trait`: name a concrete \
                 type here that implements `Serialize` and `DeserializeOwned`"
            ),
        ));
        return None;
    }
    // rustc would say "implementation of `Deserialize` is not general enough".
    let borrowed = ty.and_then(|t| find_type(stored_type(t), |t| matches!(t, Type::Reference(_))));
    if let Some(reference) = borrowed {
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
    let last = ty.map(unwrap_group).and_then(|ty| match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    });
    let name = match (last.as_deref(), opts.cache_none.get().is_some()) {
        (Some("Option"), true) => "SomeOrNone",
        (Some("Option"), false) => "SomeOnly",
        (_, true) => {
            errors.push(syn::Error::new(
                opts.cache_none.span().unwrap_or_else(Span::call_site),
                "`cache_none` applies only to functions returning `Option<T>`; remove it",
            ));
            return None;
        }
        (Some("Result"), false) => "OkOnly",
        _ => "Always",
    };
    Some(Ident::new(name, Span::call_site()))
}

/// For `#[cache_evict]`: `OkOnly` (an `Err` is a failure) for a `Result`,
/// else `Always`.
fn outcome(output: &ReturnType) -> Ident {
    let is_result = match output {
        ReturnType::Type(_, ty) => match unwrap_group(ty) {
            Type::Path(p) if p.qself.is_none() => {
                p.path.segments.last().is_some_and(|s| s.ident == "Result")
            }
            _ => false,
        },
        ReturnType::Default => false,
    };
    Ident::new(
        if is_result { "OkOnly" } else { "Always" },
        Span::call_site(),
    )
}

/// The name of the stored type in the declared return type: `Report` in
/// `-> Report`, `-> Result<Report, E>` and `-> Option<model::Report>`. One
/// token, so that rustc's several reports of an unsatisfied `Serialize` bound
/// on the stored value all land on it and are shown once.
fn stored_span(sig: &Signature) -> Span {
    match &sig.output {
        ReturnType::Default => sig.ident.span(),
        ReturnType::Type(_, ty) => name_span(ty, true),
    }
}

/// `unwrap`: look inside `Option<T>` and `Result<T, E>`, as the policy does.
fn name_span(ty: &Type, unwrap: bool) -> Span {
    match ty {
        Type::Paren(t) => name_span(&t.elem, unwrap),
        Type::Group(t) => name_span(&t.elem, unwrap),
        Type::Path(t) if t.qself.is_none() => match t.path.segments.last() {
            Some(seg) => {
                let inner = match &seg.arguments {
                    PathArguments::AngleBracketed(a)
                        if unwrap && (seg.ident == "Option" || seg.ident == "Result") =>
                    {
                        a.args.iter().find_map(|arg| match arg {
                            GenericArgument::Type(t) => Some(t),
                            _ => None,
                        })
                    }
                    _ => None,
                };
                inner.map_or_else(|| seg.ident.span(), |t| name_span(t, false))
            }
            None => ty.span(),
        },
        _ => ty.span(),
    }
}

/// Whether `sig` is an `async fn` that `#[async_trait]` has already
/// rewritten: async-trait 0.1 adds an `'async_trait` lifetime and returns
/// `Pin<Box<dyn Future<Output = T> + ...>>`. Should a release drop the
/// lifetime, the boxed future alone still gets a message that names native
/// `async fn` in traits.
fn from_async_trait(sig: &Signature) -> bool {
    sig.generics
        .lifetimes()
        .any(|l| l.lifetime.ident == "async_trait")
        && returns_boxed_future(&sig.output)
}

/// `-> Pin<Box<dyn Future<..> + ..>>`, with any path prefixes.
fn returns_boxed_future(output: &ReturnType) -> bool {
    fn single_arg<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
        let Type::Path(p) = ty else { return None };
        let seg = p.path.segments.last()?;
        if seg.ident != name {
            return None;
        }
        let PathArguments::AngleBracketed(args) = &seg.arguments else {
            return None;
        };
        args.args.iter().find_map(|a| match a {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        })
    }
    let ReturnType::Type(_, ty) = output else {
        return false;
    };
    let Some(Type::TraitObject(object)) = single_arg(ty, "Pin").and_then(|b| single_arg(b, "Box"))
    else {
        return false;
    };
    object.bounds.iter().any(|b| match b {
        syn::TypeParamBound::Trait(t) => {
            t.path.segments.last().is_some_and(|s| s.ident == "Future")
        }
        _ => false,
    })
}

/// The first type in `ty`, itself included, that `pred` accepts.
fn find_type(ty: &Type, pred: fn(&Type) -> bool) -> Option<&Type> {
    struct Find<'a> {
        pred: fn(&Type) -> bool,
        found: Option<&'a Type>,
    }
    impl<'a> Visit<'a> for Find<'a> {
        fn visit_type(&mut self, t: &'a Type) {
            if self.found.is_none() {
                if (self.pred)(t) {
                    self.found = Some(t);
                } else {
                    syn::visit::visit_type(self, t);
                }
            }
        }
    }
    let mut find = Find { pred, found: None };
    find.visit_type(ty);
    find.found
}

/// The stored part of a declared return type: `T` in `Option<T>` and
/// `Result<T, E>` (the error is never stored), else the whole type.
fn stored_type(ty: &Type) -> &Type {
    match ty {
        Type::Paren(t) => stored_type(&t.elem),
        Type::Group(t) => stored_type(&t.elem),
        Type::Path(p) if p.qself.is_none() => match p.path.segments.last() {
            Some(seg) if seg.ident == "Option" || seg.ident == "Result" => match &seg.arguments {
                PathArguments::AngleBracketed(a) => a
                    .args
                    .iter()
                    .find_map(|arg| match arg {
                        GenericArgument::Type(t) => Some(t),
                        _ => None,
                    })
                    .unwrap_or(ty),
                _ => ty,
            },
            _ => ty,
        },
        _ => ty,
    }
}

/// Whether `ty` is a `HashSet` or `BTreeSet`, possibly behind references:
/// their elements are hashed in no particular order, so that a `HashSet`
/// (whose iteration order differs between processes) gives one key.
fn is_set(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => is_set(&r.elem),
        Type::Paren(p) => is_set(&p.elem),
        Type::Group(g) => is_set(&g.elem),
        Type::Path(p) if p.qself.is_none() => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "HashSet" || s.ident == "BTreeSet"),
        _ => false,
    }
}

/// `ty` without invisible groups (a `$t:ty` from `macro_rules!`) and
/// parentheses, so `Result` and `Option` are recognised however they arrive.
fn unwrap_group(ty: &Type) -> &Type {
    match ty {
        Type::Paren(t) => unwrap_group(&t.elem),
        Type::Group(t) => unwrap_group(&t.elem),
        other => other,
    }
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
