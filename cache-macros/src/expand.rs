//! Writing the tokens: the function with its body handed to the runtime.

use crate::attr::{Options, Ttl};
use crate::errors::Errors;
use crate::validate::{self, KeyPlan, Plan};
use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemFn, ReturnType};

/// `#[cached(attr)] item`.
pub(crate) fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(e) => {
            let err = syn::Error::new(
                e.span(),
                format!("#[cached] applies to an `async fn` with a body: {e}"),
            );
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

fn expand(func: ItemFn, plan: &Plan) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    let krate = &plan.krate;
    let name = &plan.name;
    let ttl = match plan.ttl {
        None | Some(Ttl::Default) => quote!(#krate::__private::Ttl::Default),
        Some(Ttl::Short) => quote!(#krate::__private::Ttl::Short),
        Some(Ttl::Long) => quote!(#krate::__private::Ttl::Long),
        Some(Ttl::Secs(s)) => quote!(#krate::__private::Ttl::Secs(#s)),
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
            let checked = args.iter().map(|a| {
                let span = a.span();
                let key_arg = relocate(quote!(#krate::__private::key_arg), span);
                quote_spanned!(span=> #key_arg(&#a))
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
    let policy = &plan.policy;
    let policy = relocate(quote!(#krate::__private::#policy), span);
    let body = quote! {
        async move {
            let __cache_ret: #ret = #block;
            #[allow(unreachable_code, clippy::needless_return)]
            return __cache_ret;
        }
    };
    let mut body = Group::new(Delimiter::Parenthesis, body);
    body.set_span(span);
    let run = quote_spanned!(span=> __cache_call.run::<#policy, _, _>#body.await);
    quote! {
        #(#attrs)*
        #vis #sig {
            static __CACHE_SITE: #krate::__private::Site = #krate::__private::Site::new(#name, #ttl);
            let __cache_call = #krate::__private::Call::new(&__CACHE_SITE, #cache).#key;
            #run
        }
    }
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
