//! Expansion of `#[node]`.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{
    parse2, Attribute, Expr, FnArg, ImplItem, ImplItemFn, ItemImpl, Lit, LitStr, Meta, Type,
};

struct Method {
    id: LitStr,
    concurrency: Option<syn::LitInt>,
    description: String,
    ident: syn::Ident,
    mutable: bool,
    params: Option<Type>,
    takes_context: bool,
    context_first: bool,
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    if !attr.is_empty() {
        return Err(syn::Error::new_spanned(attr, "#[node] takes no arguments"));
    }
    let mut imp: ItemImpl = parse2(item)?;
    if let Some((_, path, _)) = &imp.trait_ {
        return Err(syn::Error::new_spanned(
            path,
            "#[node] goes on an inherent impl block, not a trait impl",
        ));
    }
    let mut methods: Vec<Method> = Vec::new();
    // Every mistake is reported, each once, at its token.
    let mut errors: Option<syn::Error> = None;
    let mut report = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };
    for item in &mut imp.items {
        let ImplItem::Fn(f) = item else { continue };
        let Some(pos) = f.attrs.iter().position(|a| a.path().is_ident("capability")) else {
            continue;
        };
        let attr = f.attrs.remove(pos);
        let m = match method(&attr, f) {
            Ok(m) => m,
            Err(e) => {
                report(e);
                continue;
            }
        };
        if let Some(prev) = methods.iter().find(|p| p.id.value() == m.id.value()) {
            let mut err = syn::Error::new(
                m.id.span(),
                format!("capability id `{}` is registered twice", m.id.value()),
            );
            err.combine(syn::Error::new(prev.id.span(), "first registered here"));
            report(err);
            continue;
        }
        methods.push(m);
    }
    let self_ty = &imp.self_ty;
    let (impl_generics, _, where_clause) = imp.generics.split_for_impl();
    // With errors, the methods stay and the node still registers (with no capabilities),
    // so the errors are the only ones: no missing trait, no unused imports.
    let errors = errors.map(syn::Error::into_compile_error);
    if errors.is_some() {
        methods.clear();
    }
    let registrations = methods.iter().map(registration);
    Ok(quote! {
        #errors
        #imp

        impl #impl_generics ::mqttcal_core::__private::Capabilities for #self_ty #where_clause {
            fn register(
                builder: ::mqttcal_core::NodeBuilder,
                this: ::mqttcal_core::__private::Arc<::mqttcal_core::__private::RwLock<Self>>,
            ) -> ::mqttcal_core::NodeBuilder {
                #( let builder = #registrations; )*
                let _ = this;
                builder
            }
        }
    })
}

fn method(attr: &Attribute, f: &ImplItemFn) -> syn::Result<Method> {
    let sig = &f.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span(),
            "a #[capability] method must be async",
        ));
    }
    let mut id = LitStr::new(&sig.ident.to_string(), sig.ident.span());
    let mut concurrency: Option<syn::LitInt> = None;
    if let Meta::List(list) = &attr.meta {
        list.parse_nested_meta(|meta| {
            if meta.path.is_ident("id") {
                id = meta.value()?.parse()?;
                Ok(())
            } else if meta.path.is_ident("concurrency") {
                let n: syn::LitInt = meta.value()?.parse()?;
                if n.base10_parse::<usize>()? == 0 {
                    return Err(syn::Error::new(n.span(), "`concurrency` is at least 1"));
                }
                concurrency = Some(n);
                Ok(())
            } else {
                Err(meta.error("expected `id = \"...\"` or `concurrency = N`"))
            }
        })?;
    }
    let description = doc_text(&f.attrs);
    if description.is_empty() {
        return Err(syn::Error::new(
            sig.ident.span(),
            "document the capability: its doc comment becomes the description that `map` lists",
        ));
    }
    returns_result(sig)?;
    let mut inputs = sig.inputs.iter();
    let mutable = match inputs.next() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() => r.mutability.is_some(),
        other => {
            let span = other.map_or(sig.ident.span(), |a| a.span());
            return Err(syn::Error::new(
                span,
                "a #[capability] method takes `&self` or `&mut self`",
            ));
        }
    };
    let mut params = None;
    let mut takes_context = false;
    let mut context_first = false;
    for arg in inputs {
        let FnArg::Typed(pt) = arg else { continue };
        if is_context_ref(&pt.ty) {
            if takes_context {
                return Err(syn::Error::new_spanned(
                    &pt.ty,
                    "the context is passed once",
                ));
            }
            takes_context = true;
            context_first = params.is_none();
        } else if params.is_some() {
            return Err(syn::Error::new_spanned(
                &pt.ty,
                "a capability takes one parameter struct (and optionally `&Context`)",
            ));
        } else {
            params = Some((*pt.ty).clone());
        }
    }
    Ok(Method {
        id,
        concurrency,
        description,
        ident: sig.ident.clone(),
        mutable,
        params,
        takes_context,
        context_first,
    })
}

fn is_context_ref(ty: &Type) -> bool {
    let Type::Reference(r) = ty else { return false };
    let Type::Path(p) = &*r.elem else {
        return false;
    };
    p.path.segments.last().is_some_and(|s| s.ident == "Context")
}

/// A capability returns `Result<T, E>` (or an alias whose name ends in `Result`).
fn returns_result(sig: &syn::Signature) -> syn::Result<()> {
    const HOW: &str = "a #[capability] method returns `Result<T, E>`, with E convertible into `NodeError` (e.g. `Result<f64, NodeError>`), so a failure reaches the caller as an error reply";
    let syn::ReturnType::Type(_, ty) = &sig.output else {
        return Err(syn::Error::new(
            sig.paren_token.span.close(),
            format!("{HOW}; this one returns nothing"),
        ));
    };
    let named_result = match &**ty {
        Type::Path(p) => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident.to_string().ends_with("Result")),
        _ => false,
    };
    if named_result {
        Ok(())
    } else {
        Err(syn::Error::new_spanned(ty, HOW))
    }
}

fn doc_text(attrs: &[Attribute]) -> String {
    let mut lines = Vec::new();
    for a in attrs {
        if !a.path().is_ident("doc") {
            continue;
        }
        if let Meta::NameValue(nv) = &a.meta {
            if let Expr::Lit(l) = &nv.value {
                if let Lit::Str(s) = &l.lit {
                    lines.push(s.value().trim().to_owned());
                }
            }
        }
    }
    // A wrapped line continues its sentence; a blank line starts a paragraph.
    let mut text = String::new();
    for line in lines {
        if line.is_empty() {
            text.push_str("\n\n");
        } else {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push(' ');
            }
            text.push_str(&line);
        }
    }
    text.trim().to_owned()
}

fn registration(m: &Method) -> TokenStream {
    let id = &m.id;
    let description = LitStr::new(&m.description, Span::call_site());
    let ident = &m.ident;
    let lock = if m.mutable {
        quote!(write)
    } else {
        quote!(read)
    };
    let guard = if m.mutable {
        quote!(mut guard)
    } else {
        quote!(guard)
    };
    // A parameter type that cannot be deserialized is reported at the type itself.
    let (p_ty, span) = match &m.params {
        Some(ty) => (quote!(#ty), ty.span()),
        None => (quote!(::mqttcal_core::NoParams), Span::call_site()),
    };
    let args = match (m.params.is_some(), m.takes_context, m.context_first) {
        (true, true, false) => quote!(p, &ctx),
        (true, true, true) => quote!(&ctx, p),
        (true, false, _) => quote!(p),
        (false, true, _) => quote!(&ctx),
        (false, false, _) => quote!(),
    };
    let bind_p = if m.params.is_some() {
        quote!(p)
    } else {
        quote!(_p)
    };
    let register = quote_spanned!(span=> ::mqttcal_core::__private::capability::<#p_ty, _, _, _>);
    let limit = m
        .concurrency
        .as_ref()
        .map(|n| quote!(.concurrency(#id, #n)));
    quote! {{
        let this = this.clone();
        #register(
            builder,
            #id,
            #description,
            move |#bind_p: #p_ty, ctx: ::mqttcal_core::Context| {
                let this = this.clone();
                async move {
                    let #guard = this.#lock().await;
                    let _ = &ctx;
                    guard.#ident(#args).await.map_err(::core::convert::Into::<::mqttcal_core::NodeError>::into)
                }
            },
        )#limit
    }}
}
