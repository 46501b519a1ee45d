//! Writing the tokens: the function with its body handed to the runtime.

use crate::ast::Function;
use crate::attr::{Kind, Options, Ttl};
use crate::errors::Errors;
use crate::validate::{self, Key, Op, Plan, Rendered, Store, L1};
use proc_macro2::{Delimiter, Group, Literal, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{AttrStyle, Block, FnArg, ItemFn, Stmt, TraitItemFn};

/// `#[cached(attr)] item`.
pub(crate) fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    entry(Kind::Cached, attr, item)
}

/// `#[cache_put(attr)] item`.
pub(crate) fn cache_put(attr: TokenStream, item: TokenStream) -> TokenStream {
    entry(Kind::Put, attr, item)
}

/// `#[cache_evict(attr)] item`.
pub(crate) fn cache_evict(attr: TokenStream, item: TokenStream) -> TokenStream {
    entry(Kind::Evict, attr, item)
}

fn entry(kind: Kind, attr: TokenStream, item: TokenStream) -> TokenStream {
    let macro_name = kind.attr();
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(e) => {
            let err = match syn::parse2::<TraitItemFn>(item.clone()) {
                // A method declared in a trait without a default body.
                Ok(TraitItemFn {
                    default: None,
                    semi_token: Some(semi),
                    ..
                }) => syn::Error::new(
                    semi.span,
                    format!(
                        "{macro_name} needs a body to wrap, and this trait method has none: put \
                         {macro_name} on the method in each `impl`, or give the method a default body here"
                    ),
                ),
                _ => syn::Error::new(
                    e.span(),
                    format!("{macro_name} applies to an `async fn` with a body: {e}"),
                ),
            };
            return fallback(item, err);
        }
    };
    let model = Function::new(&func);
    let mut errors = Errors::default();
    let opts = Options::parse(kind, attr.clone(), &mut errors);
    let plan = match &opts {
        Ok(opts) => validate::plan(kind, opts, &model, &mut errors),
        Err(syntax) => {
            errors.push(syntax.clone());
            None
        }
    };
    match (errors.finish(), plan) {
        (Ok(()), Some(plan)) => expand(&model, &plan),
        (Err(e), _) => {
            let stubs = match kind {
                Kind::Cached => stubs(&model, opts.as_ref().ok(), &attr),
                Kind::Put | Kind::Evict => None,
            };
            fallback(quote!(#func #stubs), e)
        }
        (Ok(()), None) => unreachable!("validation failed without an error"),
    }
}

/// On an error, stand-ins for the `_uncached` and `_invalidate` companions
/// of a `#[cached]` function, with their signatures and a body that never
/// runs, so that one mistake in the attribute is one error, not one more at
/// every caller of a companion (thiserror's `fallback.rs` does the same for
/// its impls). None when there would be no companions: `no_companions`, the
/// attribute applied twice (the other one writes them), or inside
/// `#[async_trait]`. `_uncached` is left out when the return type names an
/// `impl Trait`, which a body that never returns cannot give a type.
fn stubs(func: &Function<'_>, opts: Option<&Options>, attr: &TokenStream) -> Option<TokenStream> {
    let no_companions = match opts {
        Some(opts) => opts.no_companions.is_written(opts),
        // A syntax error stopped parsing: look for the flag among the tokens.
        None => attr
            .clone()
            .into_iter()
            .any(|tt| matches!(&tt, TokenTree::Ident(i) if i == "no_companions")),
    };
    let twice = func.item.attrs.iter().any(|a| {
        a.path()
            .segments
            .last()
            .is_some_and(|s| s.ident == Kind::Cached.ident())
    });
    if no_companions || twice || func.rewritten_by_async_trait() {
        return None;
    }
    let krate = opts
        .and_then(|o| o.krate.get().cloned())
        .unwrap_or_else(|| syn::parse_quote!(::cache_runtime));
    let ItemFn {
        attrs, vis, sig, ..
    } = func.item;
    let shown = sig.ident.unraw().to_string();
    let doc = format!(
        " Stands in for a companion of `{shown}` while its `#[cached]` attribute has an error."
    );
    let cfgs: Vec<_> = attrs.iter().filter(|a| a.path().is_ident("cfg")).collect();
    // The signatures the companions have once the attribute is fixed:
    // `async`, without the qualifiers the error may be about.
    let mut base = sig.clone();
    base.constness = None;
    base.unsafety = None;
    base.abi = None;
    base.asyncness = Some(Default::default());
    let uncached = func.output.impl_trait.is_none().then(|| {
        let mut uncached = base.clone();
        uncached.ident = format_ident!("{}_uncached", sig.ident, span = sig.ident.span());
        quote! {
            #[doc = #doc]
            #(#cfgs)*
            #[allow(dead_code, unused_variables, unused_mut)]
            #vis #uncached {
                ::core::unreachable!()
            }
        }
    });
    let mut invalidate = base;
    invalidate.ident = format_ident!("{}_invalidate", sig.ident, span = sig.ident.span());
    invalidate.output = syn::parse_quote!(-> ::core::result::Result<bool, #krate::CacheError>);
    Some(quote! {
        #uncached

        #[doc = #doc]
        #(#cfgs)*
        #[allow(dead_code, unused_variables, unused_mut)]
        #vis #invalidate {
            ::core::unreachable!()
        }
    })
}

/// The user's item unchanged, so the rest of the crate and the IDE keep
/// working, plus the errors.
fn fallback(item: TokenStream, error: syn::Error) -> TokenStream {
    let errors = error.to_compile_error();
    quote!(#item #errors)
}

/// The function with the same signature and a new body: a `static` site, a
/// `Call` with its key, the original body as an `async move` block, and one
/// call to the runtime's `run` (`put` for `#[cache_put]`; an `Evict` and its
/// `run` for `#[cache_evict]`); the companions after a `#[cached]` function.
/// `tests/snapshots/*.rs` show the result.
fn expand(func: &Function<'_>, plan: &Plan) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func.item;
    let krate = &plan.krate;
    // Everything generated code names lives in `__private`; one alias keeps
    // the expansion short. It is an item of the function's body, so a
    // `crate = path` resolves exactly as in the user's own code.
    let rt = quote!(__cache_rt);
    let site = site(plan);
    let cache = cache(plan);
    // `run`'s bound `Policy<Out>` fails when the value cannot be stored;
    // rustc reports it on the turbofish argument, on the method call and on
    // the `.await`. All three are located on the stored type's name in the
    // signature, so the error is reported there, once. Only the location
    // moves: names keep resolving as written by the macro.
    let span = Span::call_site().located_at(func.output.stored_span);
    let body = body(func, block);
    let tags = plan.tags.iter().map(|t| {
        let t = format_args_of(t, false);
        quote!(.tag(#t))
    });
    let (import, setup, run) = match &plan.op {
        Op::Read { store, key, .. } => {
            let key = key_call(key);
            let policy_name = &store.policy;
            let policy = relocate(quote!(#rt::#policy_name), span);
            let setup = quote! {
                let __cache_call = #rt::Call::new(&__CACHE_SITE, #cache).#key #(#tags)*;
            };
            // `probe(..).typed()` picks, at compile time, whether the
            // memory store may keep a decoded copy of the value (it must
            // be `Clone`); the probe has no bounds, so only `run` reports
            // a value that cannot be stored.
            let run = match (store.stale, store.early) {
                (None, None) => {
                    let run = quote_spanned!(span=> __cache_call.run(#policy, __cache_typed, __cache_body));
                    quote! {
                        #body
                        let __cache_typed = (&&#rt::probe(&#rt::#policy_name, &__cache_body)).typed();
                        #run
                    }
                }
                // The body and the refresh are made by one closure, called
                // once: on a miss for the body, after a stale hit (or one
                // due for an early refresh) for an owned future of the
                // same result.
                _ => {
                    let refresh = refresh(func, block);
                    let run = quote_spanned!(span=> __cache_call.run_refreshing(#policy, __cache_typed, __cache_make));
                    quote! {
                        let __cache_make = move |__cache_want: #rt::Want| match __cache_want {
                            #rt::Want::Body => {
                                #body
                                #rt::Made::Body(__cache_body)
                            }
                            #rt::Want::Refresh => #rt::Made::Refresh(#refresh),
                        };
                        let __cache_typed = (&&#rt::probe_make(&#rt::#policy_name, &__cache_make)).typed();
                        #run
                    }
                }
            };
            (
                quote!(::{self as #rt, ViaBytes as _, ViaClone as _}),
                setup,
                run,
            )
        }
        Op::Put { store, key } => {
            let key = format_args_of(key, false);
            let policy_name = &store.policy;
            let policy = relocate(quote!(#rt::#policy_name), span);
            let setup = quote! {
                let __cache_call = #rt::Call::new(&__CACHE_SITE, #cache).key_fmt(#key) #(#tags)*;
            };
            let run = quote_spanned!(span=> __cache_call.put(#policy, __cache_body));
            (quote!(as #rt), setup, quote!(#body #run))
        }
        Op::Evict(evict) => {
            let keys = evict.keys.iter().map(|k| {
                let k = format_args_of(k, false);
                quote!(.key(#k))
            });
            let pattern = evict.pattern.iter().map(|p| {
                let p = format_args_of(p, true);
                quote!(.pattern(#p))
            });
            let before = evict.before;
            let outcome = &evict.outcome;
            let setup = quote! {
                let __cache_evict = #rt::Call::new(&__CACHE_SITE, #cache)
                    .evict() #(#keys)* #(#tags)* #(#pattern)*;
            };
            let run = quote! {
                #body
                __cache_evict.run(#rt::#outcome, #before, __cache_body)
            };
            (quote!(as #rt), setup, run)
        }
    };
    let await_run = relocate(quote!(.await), span);
    // The body lives in a block of its own so that its storage ends before
    // the `.await` (the future then holds one copy of it). The block's braces
    // are located like `run`, since rustc reports `.await` errors on the
    // whole `{ .. }.await` expression.
    let mut run_block = Group::new(Delimiter::Brace, run);
    run_block.set_span(Span::call_site().located_at(span));
    // Inner attributes (`#![allow(..)]` at the top of the body) stay inside.
    let (outer, inner): (Vec<_>, Vec<_>) = attrs
        .iter()
        .partition(|a| matches!(a.style, AttrStyle::Outer));
    let companions = match &plan.op {
        Op::Read {
            store,
            key,
            companions: true,
        } => Some(companions(func, plan, store, key)),
        _ => None,
    };
    quote! {
        #(#outer)*
        #vis #sig {
            #(#inner)*
            use #krate::__private #import;
            static __CACHE_SITE: #rt::Site = #site;
            #setup
            #run_block
            #await_run
        }
        #companions
    }
}

/// The refresh of a `stale` function: a `'static` future of the body's
/// result, owning copies of the arguments (an argument by reference is
/// copied with `ToOwned`, the receiver `&self` with `Clone`). A method
/// calls its `_uncached` companion (its body names `self`); a function
/// runs its body, each borrowed argument lent from its copy.
fn refresh(func: &Function<'_>, block: &Block) -> TokenStream {
    let sig = func.sig();
    let mut copies = Vec::new();
    let mut args = Vec::new();
    let mut lends = Vec::new();
    for input in &sig.inputs {
        let FnArg::Typed(t) = input else { continue };
        let syn::Pat::Ident(p) = &*t.pat else {
            continue;
        };
        let name = &p.ident;
        let mutability = &p.mutability;
        match &*t.ty {
            syn::Type::Reference(r) => {
                let elem = &r.elem;
                copies.push(quote!(let #name = ::std::borrow::ToOwned::to_owned(#name);));
                args.push(quote!(::core::borrow::Borrow::borrow(&#name)));
                // Unused when only the key or the cache expression reads it.
                lends.push(quote! {
                    #[allow(unused_variables, unused_mut)]
                    let #mutability #name: &#elem = ::core::borrow::Borrow::borrow(&#name);
                });
            }
            _ => args.push(quote!(#name)),
        }
    }
    match func.receiver {
        Some(receiver) => {
            let uncached = format_ident!("{}_uncached", sig.ident, span = sig.ident.span());
            let generics: Vec<_> = func.type_params.iter().chain(&func.const_params).collect();
            let turbofish = (!generics.is_empty()).then(|| quote!(::<#(#generics),*>));
            // `&self` or `self: &Self` is cloned; `self`, `self: Arc<Self>`
            // moves into the refresh.
            let (this, first) = if matches!(&*receiver.ty, syn::Type::Reference(_)) {
                // Spanned on the receiver: a `Self` that is not `Clone` is
                // reported there.
                let clone = quote_spanned!(receiver.span()=> ::core::clone::Clone::clone(self));
                (quote!(let __cache_this = #clone;), quote!(&__cache_this))
            } else {
                (quote!(), quote!(self))
            };
            quote!({
                #this
                #(#copies)*
                async move { Self::#uncached #turbofish(#first, #(#args),*).await }
            })
        }
        None => {
            let body = body(func, block);
            quote!({
                #(#copies)*
                async move {
                    #(#lends)*
                    #body
                    __cache_body.await
                }
            })
        }
    }
}

/// The body as an `async move` block, in `__cache_body`.
fn body(func: &Function<'_>, block: &Block) -> TokenStream {
    let ret = match func.output.ty {
        None => quote!(()),
        Some(ty) => quote!(#ty),
    };
    // The typed `let` anchors the declared return type, so that a body of
    // another type is reported on the body's own tail. clippy's
    // `diverging_sub_expression` looks through a `let` initializer that
    // holds one statement, and would report a body such as `{ panic!(..) }`
    // or `{ return x; }`, which the function as written does not have: the
    // allow is emitted for those bodies only, and other bodies keep the lint.
    // `let` cannot name an `impl Trait`, which only `#[cache_evict]` accepts.
    let allow = single_statement(block).then(|| quote!(#[allow(clippy::diverging_sub_expression)]));
    let anchor = func.output.impl_trait.is_none().then(|| quote!(: #ret));
    quote! {
        let __cache_body = async move {
            #allow
            let __cache_ret #anchor = #block;
            #[allow(unreachable_code, clippy::needless_return)]
            return __cache_ret;
        };
    }
}

/// The `static` site: `Site::new(name, ttl)`, with `.l1(..)` when not the
/// default, `.none_ttl(secs)` with `none_ttl` and `.without_lock()` with
/// `lock = false`.
fn site(plan: &Plan) -> TokenStream {
    let name = &plan.name;
    match &plan.op {
        Op::Read { store, .. } | Op::Put { store, .. } => {
            let ttl = ttl(store);
            let l1 = l1(store);
            let none_ttl = store.none_ttl.map(|s| {
                let s = Literal::u64_unsuffixed(s);
                quote!(.none_ttl(#s))
            });
            let lock = (!store.lock).then(|| quote!(.without_lock()));
            let stale = store.stale.map(|s| {
                let s = Literal::u64_unsuffixed(s);
                quote!(.stale(#s))
            });
            let early = store.early.map(|beta| {
                let beta = Literal::f64_suffixed(beta);
                quote!(.early_refresh(#beta))
            });
            quote!(__cache_rt::Site::new(#name, #ttl) #l1 #none_ttl #lock #stale #early)
        }
        Op::Evict(_) => quote!(__cache_rt::Site::new(#name, __cache_rt::Ttl::Default)),
    }
}

/// The site's TTL.
fn ttl(store: &Store) -> TokenStream {
    match store.ttl {
        None | Some(Ttl::Default) => quote!(__cache_rt::Ttl::Default),
        Some(Ttl::Short) => quote!(__cache_rt::Ttl::Short),
        Some(Ttl::Long) => quote!(__cache_rt::Ttl::Long),
        Some(Ttl::Secs(s)) => {
            let s = Literal::u64_unsuffixed(s);
            quote!(__cache_rt::Ttl::Secs(#s))
        }
    }
}

/// The site's L1 setting, if not the default: `.l1(L1::Off)` or
/// `.l1(L1::MaxSecs(5))`.
fn l1(store: &Store) -> Option<TokenStream> {
    let l1 = match store.l1 {
        L1::On => return None,
        L1::Off => quote!(__cache_rt::L1::Off),
        L1::MaxSecs(s) => {
            let s = Literal::u64_unsuffixed(s);
            quote!(__cache_rt::L1::MaxSecs(#s))
        }
    };
    Some(quote!(.l1(#l1)))
}

/// The `cache = ...` expression as `Option<&Cache>`.
fn cache(plan: &Plan) -> TokenStream {
    match &plan.cache {
        Some(expr) => quote_spanned!(expr.span()=> ::core::option::Option::Some(&(#expr))),
        None => quote!(::core::option::Option::None),
    }
}

/// `format_args!` for a template, each placeholder's value wrapped in
/// `key_part`, which escapes its `%` and `:`, so that distinct values give
/// distinct keys; in a template whose literal text has other ASCII
/// punctuation, `.escaping(..)` those too, with the set computed here and
/// made a mask at compile time. With `glob` (a pattern), wrapped in
/// `glob_literal` too, so that the value matches literally what a key
/// template rendered for it. The wrappers are located on the template,
/// where a value that is not `Display` is reported. `key_part` takes the
/// value as `&dyn Display`: a value that is not `Display` is then one
/// error, on the coercion, rather than one for `key_part`'s bound and a
/// second for `format_args!`'s.
fn format_args_of(rendered: &Rendered, glob: bool) -> TokenStream {
    let Rendered {
        fmt, args, escaped, ..
    } = rendered;
    let span = fmt.span();
    let part = relocate(
        quote!(__cache_rt::key_part::<dyn ::core::fmt::Display>),
        span,
    );
    let escaping = (escaped != ":").then(|| {
        let set = syn::LitStr::new(escaped, span);
        quote!(.escaping(const { __cache_rt::KeyPart::mask(#set) }))
    });
    let args = args.iter().map(|arg| {
        let value = quote_spanned!(span=> #part(&#arg) #escaping);
        if glob {
            let literal = relocate(quote!(__cache_rt::glob_literal), span);
            quote_spanned!(span=> #literal(&#value))
        } else {
            value
        }
    });
    quote!(::core::format_args!(#fmt #(, #args)*))
}

/// The `Call` method that sets the key of `#[cached]`: `key_fmt` for a
/// template, `key_args` for the hashed arguments, `key_args_generic` when
/// the function is generic (its type arguments' names and its const
/// arguments are hashed too).
fn key_call(key: &Key) -> TokenStream {
    match key {
        Key::Template(rendered) => {
            let args = format_args_of(rendered, false);
            quote!(key_fmt(#args))
        }
        Key::Hashed { args, generics } => {
            // One check per argument, spanned on it, so a non-Serialize
            // argument is reported on the parameter itself.
            // Sets are hashed as unordered collections (`key_set`).
            let checked = args.iter().map(|(a, set)| {
                let span = a.span();
                let wrap = if *set {
                    quote!(__cache_rt::key_set)
                } else {
                    quote!(__cache_rt::key_arg)
                };
                let wrap = relocate(wrap, span);
                quote_spanned!(span=> #wrap(&#a))
            });
            if generics.is_empty() {
                return quote!(key_args(&(#(#checked,)*)));
            }
            let self_type = generics.self_type.then(|| quote!(Self));
            let types = self_type
                .into_iter()
                .chain(generics.types.iter().map(ToTokens::to_token_stream));
            let consts = generics
                .consts
                .iter()
                .map(|c| quote!(__cache_rt::key_arg(&#c)));
            quote! {
                key_args_generic(
                    &[#(::core::any::type_name::<#types>()),*],
                    &(#(#consts,)* #(#checked,)*),
                )
            }
        }
    }
}

/// `{name}_uncached` and `{name}_invalidate`, next to a `#[cached]`
/// function.
fn companions(func: &Function<'_>, plan: &Plan, store: &Store, key: &Key) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func.item;
    let krate = &plan.krate;
    let shown = sig.ident.unraw().to_string();
    let (outer, inner): (Vec<_>, Vec<_>) = attrs
        .iter()
        .partition(|a| matches!(a.style, AttrStyle::Outer));

    // The function as written, under another name; the user's own
    // attributes (docs with their `# Errors`, lint levels, `cfg`) follow ours.
    // The body sits in the same `async move` block as in the cached
    // function, so that an error in it is reported once, not once per copy
    // (rustc drops a diagnostic identical to one already emitted). A
    // parameter that only the key reads is unused here, hence the allow;
    // anything else unused in the body is reported on the cached function.
    let mut uncached = sig.clone();
    uncached.ident = format_ident!("{}_uncached", sig.ident, span = sig.ident.span());
    let uncached_doc = format!(
        " `{shown}` without the cache: runs the body every time, and reads or stores nothing."
    );
    let body = body(func, block);
    let has_docs = outer.iter().any(|a| a.path().is_ident("doc"));
    let separator = has_docs.then(|| quote!(#[doc = ""]));

    // Same parameters; the ones the key and the cache expression do not use
    // are renamed `_name`, and `mut` goes, as the companion neither reads nor
    // changes them.
    let mut used = key.names();
    if let Some(cache) = &plan.cache {
        idents(cache.to_token_stream(), &mut used);
    }
    let used = &used;
    let mut invalidate = sig.clone();
    invalidate.ident = format_ident!("{}_invalidate", sig.ident, span = sig.ident.span());
    invalidate.output = syn::parse_quote!(-> ::core::result::Result<bool, #krate::CacheError>);
    for input in &mut invalidate.inputs {
        match input {
            FnArg::Receiver(r) if r.reference.is_none() => r.mutability = None,
            FnArg::Receiver(_) => {}
            FnArg::Typed(t) => Unused(used).visit_pat_mut(&mut t.pat),
        }
    }
    let invalidate_doc = format!(
        " Removes the entry that `{shown}` caches for these arguments: `Ok(true)` if there was \
         one."
    );
    let cfgs = outer.iter().filter(|a| a.path().is_ident("cfg"));
    // A template names no type parameter; a hashed key names them all.
    let unused_types = !func.type_params.is_empty() && matches!(key, Key::Template(_));
    let generic = unused_types.then(|| quote!(, clippy::extra_unused_type_parameters));
    let name = &plan.name;
    let ttl = ttl(store);
    let cache = cache(plan);
    let key = key_call(key);
    quote! {
        #[doc = #uncached_doc]
        #separator
        #(#outer)*
        #[allow(dead_code, unused_variables)]
        #vis #uncached {
            #(#inner)*
            #body
            __cache_body.await
        }

        #[doc = #invalidate_doc]
        #[doc = ""]
        #[doc = " # Errors"]
        #[doc = ""]
        #[doc = " `CacheError::Backend` when the cache fails or misses its deadline."]
        #(#cfgs)*
        #[allow(dead_code, clippy::unused_self, clippy::needless_pass_by_value #generic)]
        #vis #invalidate {
            use #krate::__private as __cache_rt;
            static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::companion(#name, #ttl);
            // Bound first: the key's temporaries (`format_args!`'s) are
            // dropped here, not held across the await, so the future is `Send`.
            let __cache_invalidate = __cache_rt::Call::new(&__CACHE_SITE, #cache).#key.invalidate();
            __cache_invalidate.await
        }
    }
}

/// Renames the bindings not in `.0` to `_name` and drops `mut`.
struct Unused<'a>(&'a [String]);

impl Unused<'_> {
    fn renames(&self, ident: &syn::Ident) -> bool {
        let name = ident.unraw().to_string();
        !name.starts_with('_') && !self.0.contains(&name)
    }
}

impl VisitMut for Unused<'_> {
    fn visit_pat_ident_mut(&mut self, p: &mut syn::PatIdent) {
        if p.by_ref.is_none() {
            p.mutability = None;
        }
        if self.renames(&p.ident) {
            p.ident = format_ident!("_{}", p.ident.unraw(), span = p.ident.span());
        }
        syn::visit_mut::visit_pat_ident_mut(self, p);
    }

    fn visit_field_pat_mut(&mut self, f: &mut syn::FieldPat) {
        // `Point { x }` renamed must read `Point { x: _x }`.
        if let syn::Pat::Ident(p) = &*f.pat {
            if f.colon_token.is_none() && self.renames(&p.ident) {
                f.colon_token = Some(Default::default());
            }
        }
        syn::visit_mut::visit_field_pat_mut(self, f);
    }
}

/// Every identifier in `tokens`, into `out`.
fn idents(tokens: TokenStream, out: &mut Vec<String>) {
    for tt in tokens {
        match tt {
            TokenTree::Ident(i) => out.push(i.to_string()),
            TokenTree::Group(g) => idents(g.stream(), out),
            _ => {}
        }
    }
}

/// Whether `block` has at most one statement besides items: clippy treats
/// such a block like its single statement. A macro statement may expand to
/// an item, so it does not count.
fn single_statement(block: &Block) -> bool {
    block
        .stmts
        .iter()
        .filter(|s| matches!(s, Stmt::Local(_) | Stmt::Expr(..)))
        .count()
        <= 1
}

/// `tokens` moved to the location of `span`, keeping their hygiene.
fn relocate(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let TokenTree::Group(g) = &tt {
                let mut group = Group::new(g.delimiter(), relocate(g.stream(), span));
                group.set_span(g.span().located_at(span));
                tt = TokenTree::Group(group);
            } else {
                tt.set_span(tt.span().located_at(span));
            }
            tt
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The functions `#[cached(attr)] item` expands to, by name.
    fn fns(attr: TokenStream, item: TokenStream) -> Vec<String> {
        let file: syn::File = syn::parse2(cached(attr, item)).unwrap();
        file.items
            .iter()
            .filter_map(|i| match i {
                syn::Item::Fn(f) => Some(f.sig.ident.to_string()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn stubs_stand_in_for_the_companions_on_an_error() {
        let get = quote!(
            async fn get(id: u64) -> u64 {
                id
            }
        );
        let all = ["get", "get_uncached", "get_invalidate"];
        assert_eq!(fns(quote!(ttl = 0), get.clone()), all);
        assert_eq!(fns(quote!(ttl = 60 key = "k"), get.clone()), all);
        assert_eq!(fns(quote!(ttl = 0, no_companions), get.clone()), ["get"]);
        // A syntax error: `no_companions` is still seen.
        assert_eq!(fns(quote!(ttl = 0 no_companions), get.clone()), ["get"]);
        // Applied twice: the inner attribute writes the companions.
        let twice = quote!(
            #[cached]
            async fn get(id: u64) -> u64 {
                id
            }
        );
        assert_eq!(fns(quote!(), twice), ["get"]);
        // A body that never returns cannot give an `impl Trait` a type.
        let opaque = quote!(
            async fn get() -> impl Display {
                1
            }
        );
        assert_eq!(fns(quote!(), opaque), ["get", "get_invalidate"]);
    }
}
