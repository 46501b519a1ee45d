//! The function as the macros see it, read once from the item: its receiver,
//! its parameters, its generics and the shape of its return type. Validation
//! and expansion both read this model; neither walks the signature again.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{
    FnArg, GenericArgument, Ident, ItemFn, Pat, PathArguments, Receiver, ReturnType, Signature,
    Type,
};

/// An `async fn` under one of the macros.
pub(crate) struct Function<'a> {
    pub(crate) item: &'a ItemFn,
    /// `self`, `&self`, `&mut self`, `self: Arc<Self>`.
    pub(crate) receiver: Option<&'a Receiver>,
    /// The typed parameters, in order.
    pub(crate) params: Vec<Param>,
    /// Type parameters, in order (lifetimes are erased at run time).
    pub(crate) type_params: Vec<Ident>,
    /// Const parameters, in order.
    pub(crate) const_params: Vec<Ident>,
    /// The function is known to sit in an `impl` or a trait: it has a
    /// receiver, or its signature names `Self`. Its key then depends on
    /// `Self`, whose parameters (`impl<T> Repo<T>`) the macro cannot see.
    pub(crate) in_impl: bool,
    pub(crate) output: Output<'a>,
}

/// A typed parameter as the key sees it.
pub(crate) struct Param {
    /// `id` in `id: u64`; `None` for `_` and for patterns.
    pub(crate) name: Option<Ident>,
    /// Every name the parameter binds, usable in templates.
    pub(crate) bindings: Vec<Ident>,
    pub(crate) wildcard: bool,
    pub(crate) pat: Box<Pat>,
    /// Its type is a `HashSet` or `BTreeSet` (behind references).
    pub(crate) set: bool,
}

/// What the declared return type is, for what is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Any other type, `()` included: always stored.
    Plain,
    /// `Option<T>` (by its last path segment).
    Option,
    /// `Result<T, E>`, `io::Result<T>`, `anyhow::Result<T>`.
    Result,
}

/// The declared return type, read once.
pub(crate) struct Output<'a> {
    /// As written; `None` without one (`()`).
    pub(crate) ty: Option<&'a Type>,
    pub(crate) shape: Shape,
    /// The first `impl Trait` in the declared type, itself included.
    pub(crate) impl_trait: Option<&'a Type>,
    /// The first reference in the stored part (`T` of `Option<T>` and
    /// `Result<T, E>`, else the whole type): a value that cannot be stored.
    pub(crate) borrowed: Option<&'a Type>,
    /// The name of the stored type: `Report` in `-> Report`,
    /// `-> Result<Report, E>` and `-> Option<model::Report>`. One token, so
    /// that rustc's several reports of an unsatisfied `Serialize` bound on the
    /// stored value all land on it and are shown once.
    pub(crate) stored_span: Span,
    /// `-> Pin<Box<dyn Future<..> + ..>>`, with any path prefixes.
    pub(crate) boxed_future: bool,
}

impl<'a> Function<'a> {
    pub(crate) fn new(item: &'a ItemFn) -> Self {
        let sig = &item.sig;
        let receiver = sig.inputs.iter().find_map(|a| match a {
            FnArg::Receiver(r) => Some(r),
            FnArg::Typed(_) => None,
        });
        let params = sig
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
        let type_params = sig
            .generics
            .type_params()
            .map(|t| t.ident.clone())
            .collect();
        let const_params = sig
            .generics
            .const_params()
            .map(|c| c.ident.clone())
            .collect();
        Function {
            item,
            receiver,
            params,
            type_params,
            const_params,
            in_impl: receiver.is_some() || names_self(sig),
            output: Output::new(sig),
        }
    }

    pub(crate) fn sig(&self) -> &'a Signature {
        &self.item.sig
    }

    /// Whether `#[async_trait]` has already rewritten this `async fn`:
    /// async-trait 0.1 adds an `'async_trait` lifetime and returns
    /// `Pin<Box<dyn Future<Output = T> + ...>>`. Should a release drop the
    /// lifetime, the boxed future alone still gets a message that names
    /// native `async fn` in traits.
    pub(crate) fn rewritten_by_async_trait(&self) -> bool {
        self.sig()
            .generics
            .lifetimes()
            .any(|l| l.lifetime.ident == "async_trait")
            && self.output.boxed_future
    }
}

/// Whether the signature (parameters, return type, where clause) names
/// `Self`, as a type or a path prefix (`Self::Id`).
fn names_self(sig: &Signature) -> bool {
    struct Finder(bool);
    impl Visit<'_> for Finder {
        fn visit_ident(&mut self, ident: &Ident) {
            self.0 |= ident == "Self";
        }
    }
    let mut finder = Finder(false);
    finder.visit_signature(sig);
    finder.0
}

impl<'a> Output<'a> {
    fn new(sig: &'a Signature) -> Self {
        let ty = match &sig.output {
            ReturnType::Default => None,
            ReturnType::Type(_, ty) => Some(&**ty),
        };
        let last = ty.map(unwrap_group).and_then(|ty| match ty {
            Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
            _ => None,
        });
        let shape = match last {
            Some(seg) if seg.ident == "Option" => Shape::Option,
            Some(seg) if seg.ident == "Result" => Shape::Result,
            _ => Shape::Plain,
        };
        Output {
            ty,
            shape,
            impl_trait: ty.and_then(|t| find_type(t, |t| matches!(t, Type::ImplTrait(_)))),
            borrowed: ty.and_then(|t| find_type(stored(t), |t| matches!(t, Type::Reference(_)))),
            stored_span: ty.map_or_else(|| sig.ident.span(), |t| name_span(t, true)),
            boxed_future: ty.is_some_and(boxed_future),
        }
    }
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

/// The first type argument of `Option<T>` and `Result<T, E>`, looked for
/// inside the last path segment.
fn first_type_arg(seg: &syn::PathSegment) -> Option<&Type> {
    match &seg.arguments {
        PathArguments::AngleBracketed(a) => a.args.iter().find_map(|arg| match arg {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        }),
        _ => None,
    }
}

/// The stored part of a declared return type: `T` in `Option<T>` and
/// `Result<T, E>` (the error is never stored), else the whole type.
fn stored(ty: &Type) -> &Type {
    match ty {
        Type::Paren(t) => stored(&t.elem),
        Type::Group(t) => stored(&t.elem),
        Type::Path(p) if p.qself.is_none() => match p.path.segments.last() {
            Some(seg) if seg.ident == "Option" || seg.ident == "Result" => {
                first_type_arg(seg).unwrap_or(ty)
            }
            _ => ty,
        },
        _ => ty,
    }
}

/// The span of the type's name; `unwrap`: look inside `Option<T>` and
/// `Result<T, E>`, as the stored part does.
fn name_span(ty: &Type, unwrap: bool) -> Span {
    match ty {
        Type::Paren(t) => name_span(&t.elem, unwrap),
        Type::Group(t) => name_span(&t.elem, unwrap),
        Type::Path(t) if t.qself.is_none() => match t.path.segments.last() {
            Some(seg) => {
                let inner = if unwrap && (seg.ident == "Option" || seg.ident == "Result") {
                    first_type_arg(seg)
                } else {
                    None
                };
                inner.map_or_else(|| seg.ident.span(), |t| name_span(t, false))
            }
            None => ty.span(),
        },
        _ => ty.span(),
    }
}

/// `Pin<Box<dyn Future<..> + ..>>`, with any path prefixes.
fn boxed_future(ty: &Type) -> bool {
    fn single_arg<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
        let Type::Path(p) = ty else { return None };
        let seg = p.path.segments.last()?;
        if seg.ident != name {
            return None;
        }
        first_type_arg(seg)
    }
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
    use syn::parse_quote;

    fn shape_of(item: ItemFn) -> (Shape, Option<String>, Option<String>) {
        let f = Function::new(&item);
        let show = |t: Option<&Type>| t.map(|t| quote::quote!(#t).to_string());
        (
            f.output.shape,
            show(f.output.impl_trait),
            show(f.output.borrowed),
        )
    }

    #[test]
    fn return_shapes() {
        assert_eq!(
            shape_of(parse_quote!(
                async fn f() {}
            )),
            (Shape::Plain, None, None)
        );
        assert_eq!(
            shape_of(parse_quote!(
                async fn f() -> io::Result<u8> {}
            ))
            .0,
            Shape::Result
        );
        assert_eq!(
            shape_of(parse_quote!(
                async fn f() -> (Option<u8>) {}
            ))
            .0,
            Shape::Option
        );
        // The error of a `Result` is never stored: a reference there is fine.
        assert_eq!(
            shape_of(parse_quote!(
                async fn f() -> Result<u8, &'static str> {}
            )),
            (Shape::Result, None, None)
        );
        assert_eq!(
            shape_of(parse_quote!(
                async fn f() -> Option<&str> {}
            )),
            (Shape::Option, None, Some("& str".into()))
        );
        assert_eq!(
            shape_of(parse_quote!(
                async fn f() -> Result<impl Display, E> {}
            )),
            (Shape::Result, Some("impl Display".into()), None)
        );
    }

    #[test]
    fn receiver_params_and_generics() {
        let item: ItemFn = parse_quote! {
            async fn f<'a, T, const N: usize, U>(&self, id: u64, (a, b): (u8, u8), _: T, s: &HashSet<U>) {}
        };
        let f = Function::new(&item);
        assert!(f.receiver.is_some());
        let names: Vec<_> = f
            .params
            .iter()
            .map(|p| p.name.as_ref().map(Ident::to_string))
            .collect();
        assert_eq!(names, [Some("id".into()), None, None, Some("s".into())]);
        assert_eq!(f.params[1].bindings.len(), 2);
        assert!(f.params[2].wildcard && f.params[3].set);
        assert_eq!(f.type_params, ["T", "U"]);
        assert_eq!(f.const_params, ["N"]);
        assert!(f.in_impl);
    }

    #[test]
    fn a_signature_naming_self_sits_in_an_impl() {
        let in_impl = |item: ItemFn| Function::new(&item).in_impl;
        assert!(in_impl(parse_quote!(
            async fn load(id: u64) -> Option<Self> {}
        )));
        assert!(in_impl(parse_quote!(
            async fn load(id: Self::Id) -> u8 {}
        )));
        assert!(in_impl(parse_quote!(
            async fn load<T>(id: T) -> u8
            where
                T: Into<Self>,
            {
            }
        )));
        assert!(!in_impl(parse_quote!(
            async fn load(id: u64) -> Option<User> {}
        )));
    }
}
