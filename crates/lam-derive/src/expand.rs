//! The generated code: `Visit::visit` (parameters, then buffers, then
//! children, as PyTorch's `state_dict` orders them), `Visit::children` (the
//! tree `Display` and `summary` print) and `Display`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Member, Type};

use crate::attrs::{self, Role};
use crate::types::{is_plain_data, mentions_tensor};

/// One visited field.
struct Planned<'a> {
    member: Member,
    key: String,
    ty: &'a Type,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Param,
    Buffer,
    Child,
}

/// The derive's output for `input`, or every error found in it.
pub fn derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    let fields =
        match &input.data {
            Data::Struct(s) => &s.fields,
            Data::Enum(e) => return Err(syn::Error::new(
                e.enum_token.span,
                "#[derive(Module)] needs a struct: a module's tensors must be the same whatever \
                 its value; for alternative layers, give the struct one `Option<Layer>` field \
                 per alternative",
            )),
            Data::Union(u) => {
                return Err(syn::Error::new(
                    u.union_token.span,
                    "#[derive(Module)] needs a struct, not a union",
                ))
            }
        };
    let (container, planned) = match (attrs::container(&input.attrs), plan(fields)) {
        (Ok(c), Ok(p)) => (c, p),
        (Err(mut a), Err(b)) => {
            a.combine(b);
            return Err(a);
        }
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    let root = &container.krate;
    let ident = &input.ident;

    let mut generics = input.generics.clone();
    if generics.type_params().next().is_some() {
        // Bounds for generic fields, so `struct Net<B> { body: B }` gets
        // `impl<B> Visit for Net<B> where B: Submodule`.
        let clause = generics.make_where_clause();
        for p in &planned {
            let ty = p.ty;
            clause.predicates.push(match p.kind {
                Kind::Child => syn::parse_quote!(#ty: #root::nn::Submodule),
                Kind::Param | Kind::Buffer => syn::parse_quote!(#ty: #root::nn::TensorField),
            });
        }
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();

    let visits = [Kind::Param, Kind::Buffer, Kind::Child].into_iter().flat_map(|kind| {
        planned.iter().filter(move |p| p.kind == kind).map(|p| {
            let (member, key) = (&p.member, &p.key);
            // Spanned at the field's type, so an unsatisfied bound points there.
            match p.kind {
                Kind::Param => quote_spanned! {p.ty.span()=>
                    #root::nn::TensorField::visit_tensors(
                        &self.#member, &#root::nn::join(prefix, #key), #root::nn::TensorRole::Parameter, f);
                },
                Kind::Buffer => quote_spanned! {p.ty.span()=>
                    #root::nn::TensorField::visit_tensors(
                        &self.#member, &#root::nn::join(prefix, #key), #root::nn::TensorRole::Buffer, f);
                },
                Kind::Child => quote_spanned! {p.ty.span()=>
                    #root::nn::Submodule::visit_submodule(&self.#member, prefix, #key, f);
                },
            }
        })
    });
    let children = planned.iter().filter(|p| p.kind == Kind::Child).map(|p| {
        let (member, key) = (&p.member, &p.key);
        quote_spanned! {p.ty.span()=>
            #root::nn::Submodule::child(&self.#member, #key, f);
        }
    });

    let visit_impl = quote! {
        #[automatically_derived]
        impl #impl_generics #root::nn::Visit for #ident #ty_generics #where_clause {
            #[allow(unused_variables)]
            fn visit(&self, prefix: &str, f: &mut dyn ::core::ops::FnMut(&str, #root::nn::Entry<'_>)) {
                #(#visits)*
            }

            #[allow(unused_variables)]
            fn children(&self, f: &mut dyn ::core::ops::FnMut(&str, &dyn #root::nn::Module)) {
                #(#children)*
            }
        }
    };
    if !container.display {
        return Ok(visit_impl);
    }
    let mut display_generics = generics.clone();
    if display_generics.type_params().next().is_some() {
        display_generics
            .make_where_clause()
            .predicates
            .push(syn::parse_quote!(#ident #ty_generics: #root::nn::Module));
    }
    let (_, _, display_where) = display_generics.split_for_impl();
    Ok(quote! {
        #visit_impl

        #[automatically_derived]
        impl #impl_generics ::core::fmt::Display for #ident #ty_generics #display_where {
            /// PyTorch's `print(model)`: the module tree with each layer's options.
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                #root::nn::fmt_module(self, f)
            }
        }
    })
}

/// An empty `Visit` for a type the derive rejected.
pub fn placeholder(input: &DeriveInput) -> TokenStream {
    let root = attrs::container(&input.attrs)
        .map(|c| c.krate)
        .unwrap_or_else(|_| syn::parse_quote!(::lam));
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    quote! {
        impl #impl_generics #root::nn::Visit for #ident #ty_generics #where_clause {
            fn visit(&self, _: &str, _: &mut dyn ::core::ops::FnMut(&str, #root::nn::Entry<'_>)) {}
        }
    }
}

/// Each field's role and key, or every error found among them.
fn plan(fields: &Fields) -> syn::Result<Vec<Planned<'_>>> {
    let mut planned = Vec::new();
    let mut errors: Option<syn::Error> = None;
    let mut push_error = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };
    for (index, field) in fields.iter().enumerate() {
        let attrs = match attrs::field(&field.attrs) {
            Ok(a) => a,
            Err(e) => {
                push_error(e);
                continue;
            }
        };
        let member = match &field.ident {
            Some(ident) => Member::Named(ident.clone()),
            None => Member::Unnamed(index.into()),
        };
        let default_key = match &field.ident {
            Some(ident) => ident.to_string().trim_start_matches("r#").to_string(),
            None => index.to_string(),
        };
        let what = match &field.ident {
            Some(ident) => format!("field `{ident}`"),
            None => format!("field {index}"),
        };
        let ty = &field.ty;
        let kind = match attrs.role {
            Role::Skip => continue,
            Role::Param | Role::Buffer if is_plain_data(ty) => {
                push_error(syn::Error::new(
                    attrs.role_span,
                    format!(
                        "{what} holds no tensor, so it cannot be a parameter or buffer; \
                         `param` and `buffer` are for `Tensor`, `Option<Tensor>`, \
                         `Vec<Tensor>` and maps of tensors"
                    ),
                ));
                continue;
            }
            Role::Param => Kind::Param,
            Role::Buffer => Kind::Buffer,
            Role::Auto if mentions_tensor(ty) => {
                push_error(syn::Error::new(
                    ty.span(),
                    format!(
                        "{what} holds a Tensor, so say what it is: #[module(param)] (trained \
                         and saved: PyTorch's nn.Parameter), #[module(buffer)] (saved, not \
                         trained: register_buffer) or #[module(skip)] (neither)"
                    ),
                ));
                continue;
            }
            Role::Auto if is_plain_data(ty) => {
                if let Some((_, span)) = attrs.name {
                    push_error(syn::Error::new(
                        span,
                        format!("{what} holds no tensor, so it has no key to rename"),
                    ));
                }
                continue;
            }
            Role::Auto => Kind::Child,
        };
        let (key, key_span) = match attrs.name {
            Some((name, span)) => (name, span),
            None => (default_key, field.span()),
        };
        if key.is_empty() || key.contains('.') {
            push_error(syn::Error::new(
                key_span,
                format!(
                    "key {key:?} of {what} must be non-empty and contain no `.` (PyTorch's rule)"
                ),
            ));
            continue;
        }
        if planned.iter().any(|p: &Planned| p.key == key) {
            push_error(syn::Error::new(
                key_span,
                format!("two fields have the key {key:?}; give one another `name = \"...\"`"),
            ));
            continue;
        }
        planned.push(Planned {
            member,
            key,
            ty,
            kind,
        });
    }
    match errors {
        Some(e) => Err(e),
        None => Ok(planned),
    }
}
