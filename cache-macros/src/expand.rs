//! Writing the tokens: the function with its body handed to the runtime.

use crate::attr::{Options, Ttl};
use crate::errors::Errors;
use crate::validate::{self, KeyPlan, Plan};
use proc_macro2::{Delimiter, Group, Literal, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{AttrStyle, Block, ItemFn, ReturnType, Stmt, TraitItemFn};

/// `#[cached(attr)] item`.
pub(crate) fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
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
                    "#[cached] needs a body to wrap, and this trait method has none: put #[cached] \
                     on the method in each `impl`, or give the method a default body here",
                ),
                _ => syn::Error::new(
                    e.span(),
                    format!("#[cached] applies to an `async fn` with a body: {e}"),
                ),
            };
            return fallback(item, err);
        }
    };
    let mut errors = Errors::default();
    let plan = match Options::parse(attr, &mut errors) {
        Ok(opts) => validate::plan(&opts, &func, &mut errors),
        Err(syntax) => {
            errors.push(syntax);
            None
        }
    };
    match (errors.finish(), plan) {
        (Ok(()), Some(plan)) => expand(func, &plan),
        (Err(e), _) => fallback(quote!(#func), e),
        (Ok(()), None) => unreachable!("validation failed without an error"),
    }
}

/// The user's item unchanged, so the rest of the crate and the IDE keep
/// working, plus the errors.
fn fallback(item: TokenStream, error: syn::Error) -> TokenStream {
    let errors = error.to_compile_error();
    quote!(#item #errors)
}

/// The function with the same signature and a new body: a `static` site, a
/// `Call` with its key, the original body as an `async move` block, and one
/// call to the runtime's `run`. `tests/snapshots/*.rs` show the result.
fn expand(func: ItemFn, plan: &Plan) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    let krate = &plan.krate;
    let name = &plan.name;
    // Everything generated code names lives in `__private`; one alias keeps
    // the expansion short. It is an item of the function's body, so a
    // `crate = path` resolves exactly as in the user's own code.
    let rt = quote!(__cache_rt);
    let ttl = match plan.ttl {
        None | Some(Ttl::Default) => quote!(#rt::Ttl::Default),
        Some(Ttl::Short) => quote!(#rt::Ttl::Short),
        Some(Ttl::Long) => quote!(#rt::Ttl::Long),
        Some(Ttl::Secs(s)) => {
            let s = Literal::u64_unsuffixed(s);
            quote!(#rt::Ttl::Secs(#s))
        }
    };
    let cache = match &plan.cache {
        Some(expr) => quote_spanned!(expr.span()=> ::core::option::Option::Some(&(#expr))),
        None => quote!(::core::option::Option::None),
    };
    let key = match &plan.key {
        KeyPlan::Template { fmt, args } => quote!(key_fmt(::core::format_args!(#fmt #(, #args)*))),
        KeyPlan::Hashed { args } => {
            // One check per argument, spanned on it, so a non-Serialize
            // argument is reported on the parameter itself.
            // Sets are hashed as unordered collections (`key_set`).
            let checked = args.iter().map(|(a, set)| {
                let span = a.span();
                let wrap = if *set {
                    quote!(#rt::key_set)
                } else {
                    quote!(#rt::key_arg)
                };
                let wrap = relocate(wrap, span);
                quote_spanned!(span=> #wrap(&#a))
            });
            quote!(key_args(&(#(#checked,)*)))
        }
    };
    let ret = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    // `run`'s bound `Policy<Out>` fails when the value cannot be stored;
    // rustc reports it on the turbofish argument, on the method call and on
    // the `.await`. All three are located on the stored type's name in the
    // signature, so the error is reported there, once. Only the location
    // moves: names keep resolving as written by the macro.
    let span = Span::call_site().located_at(plan.stored_span);
    let policy_name = &plan.policy;
    let policy = relocate(quote!(#rt::#policy_name), span);
    // The typed `let` anchors the declared return type, so that a body of
    // another type is reported on the body's own tail. clippy's
    // `diverging_sub_expression` looks through a `let` initializer that
    // holds one statement, and would report a body such as `{ panic!(..) }`
    // or `{ return x; }`, which the function as written does not have: the
    // allow is emitted for those bodies only, and other bodies keep the lint.
    let allow =
        single_statement(&block).then(|| quote!(#[allow(clippy::diverging_sub_expression)]));
    // `probe(..).typed()` picks, at compile time, whether the memory store
    // may keep a decoded copy of the value (it must be `Clone`); the probe
    // has no bounds, so only `run` reports a value that cannot be stored.
    let run = quote_spanned!(span=> __cache_call.run(#policy, __cache_typed, __cache_body));
    let await_run = relocate(quote!(.await), span);
    // The body lives in a block of its own so that its storage ends before
    // the `.await` (the future then holds one copy of it). The block's braces
    // are located like `run`, since rustc reports `.await` errors on the
    // whole `{ .. }.await` expression.
    let mut run_block = Group::new(
        Delimiter::Brace,
        quote! {
            let __cache_body = async move {
                #allow
                let __cache_ret: #ret = #block;
                #[allow(unreachable_code, clippy::needless_return)]
                return __cache_ret;
            };
            let __cache_typed = (&&#rt::probe(&#rt::#policy_name, &__cache_body)).typed();
            #run
        },
    );
    run_block.set_span(Span::call_site().located_at(span));
    // Inner attributes (`#![allow(..)]` at the top of the body) stay inside.
    let (outer, inner): (Vec<_>, Vec<_>) = attrs
        .iter()
        .partition(|a| matches!(a.style, AttrStyle::Outer));
    quote! {
        #(#outer)*
        #vis #sig {
            #(#inner)*
            use #krate::__private::{self as #rt, ViaBytes as _, ViaClone as _};
            static __CACHE_SITE: #rt::Site = #rt::Site::new(#name, #ttl);
            let __cache_call = #rt::Call::new(&__CACHE_SITE, #cache).#key;
            #run_block
            #await_run
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
