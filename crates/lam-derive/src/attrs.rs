//! The `#[module(...)]` attributes: on the struct (`crate = "path"`,
//! `no_display`) and on fields (`param`, `buffer`, `skip`, `name = "..."`).

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Attribute, LitStr};

/// Options of the whole derive.
pub struct Container {
    /// Where lam's items live (`::lam` unless `crate = "..."`).
    pub krate: syn::Path,
    /// Write `Display` too (unless `no_display`).
    pub display: bool,
}

/// What a field's attribute says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// No role given: decided by the field's type.
    Auto,
    /// `#[module(param)]`: trainable tensors.
    Param,
    /// `#[module(buffer)]`: saved, not trained.
    Buffer,
    /// `#[module(skip)]`: not visited at all.
    Skip,
}

/// A field's attributes.
pub struct Field {
    pub role: Role,
    /// Where the role was written (for errors about it).
    pub role_span: Span,
    /// `name = "..."`, with where it was written.
    pub name: Option<(String, Span)>,
}

/// Reads the struct's `#[module(...)]` attributes.
pub fn container(attrs: &[Attribute]) -> syn::Result<Container> {
    let mut out = Container {
        krate: syn::parse_quote!(::lam),
        display: true,
    };
    for attr in module_attrs(attrs) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                let lit: LitStr = meta.value()?.parse()?;
                out.krate = lit.parse()?;
                Ok(())
            } else if meta.path.is_ident("no_display") {
                out.display = false;
                Ok(())
            } else {
                Err(meta.error(
                    "unknown #[module(...)] option on a struct; expected `crate = \"path\"` or \
                     `no_display` (param, buffer, skip and name go on fields)",
                ))
            }
        })?;
    }
    Ok(out)
}

/// Reads a field's `#[module(...)]` attributes.
pub fn field(attrs: &[Attribute]) -> syn::Result<Field> {
    let mut out = Field {
        role: Role::Auto,
        role_span: Span::call_site(),
        name: None,
    };
    for attr in module_attrs(attrs) {
        attr.parse_nested_meta(|meta| {
            let role = if meta.path.is_ident("param") {
                Role::Param
            } else if meta.path.is_ident("buffer") {
                Role::Buffer
            } else if meta.path.is_ident("skip") {
                Role::Skip
            } else if meta.path.is_ident("name") {
                let lit: LitStr = meta.value()?.parse()?;
                if out.name.is_some() {
                    return Err(meta.error("`name` is given twice"));
                }
                out.name = Some((lit.value(), lit.span()));
                return Ok(());
            } else {
                return Err(meta.error(
                    "unknown #[module(...)] option on a field; expected `param`, `buffer`, \
                     `skip` or `name = \"...\"`",
                ));
            };
            if out.role != Role::Auto {
                return Err(
                    meta.error("a field has one role: choose one of `param`, `buffer` and `skip`")
                );
            }
            out.role = role;
            out.role_span = meta.path.span();
            Ok(())
        })?;
    }
    if let (Role::Skip, Some((_, span))) = (out.role, &out.name) {
        return Err(syn::Error::new(
            *span,
            "a skipped field has no key, so it takes no `name`",
        ));
    }
    Ok(out)
}

fn module_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("module"))
}
