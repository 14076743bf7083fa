//! What a field's type says before the compiler has resolved it: whether it
//! mentions `Tensor` (then its role must be written), and whether it is
//! plain data that cannot hold a tensor (then it is not visited).
//!
//! Both are read from the spelling of the type. A type that hides a tensor
//! behind another name is neither, so it is treated as a child module, and
//! the compiler rejects it unless it is one: the derive can fail to give a
//! better message, never silently drop a tensor.

use syn::{GenericArgument, PathArguments, Type};

/// True when `Tensor` appears anywhere in `ty` (`Tensor`, `Option<Tensor>`,
/// `Vec<(String, Tensor)>`, `lam::Tensor`, ...).
pub fn mentions_tensor(ty: &Type) -> bool {
    any_path_segment(ty, &mut |ident| ident == "Tensor")
}

/// True for types that hold no tensor by construction: numbers, `bool`,
/// `char`, strings, paths, durations, `PhantomData`, and options, vectors,
/// boxes, arrays, slices, tuples and references of those.
pub fn is_plain_data(ty: &Type) -> bool {
    match ty {
        Type::Paren(t) => is_plain_data(&t.elem),
        Type::Group(t) => is_plain_data(&t.elem),
        Type::Reference(t) => is_plain_data(&t.elem),
        Type::Array(t) => is_plain_data(&t.elem),
        Type::Slice(t) => is_plain_data(&t.elem),
        Type::Tuple(t) => t.elems.iter().all(is_plain_data),
        Type::Path(p) if p.qself.is_none() => {
            let Some(last) = p.path.segments.last() else {
                return false;
            };
            let name = last.ident.to_string();
            if name == "PhantomData" {
                return true;
            }
            const SCALARS: &[&str] = &[
                "bool", "char", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32",
                "i64", "i128", "isize", "f32", "f64", "String", "str", "PathBuf", "Path",
                "Duration",
            ];
            const WRAPPERS: &[&str] = &["Option", "Vec", "Box"];
            match &last.arguments {
                PathArguments::None => SCALARS.contains(&name.as_str()),
                PathArguments::AngleBracketed(args) if WRAPPERS.contains(&name.as_str()) => {
                    args.args.iter().all(|a| match a {
                        GenericArgument::Type(t) => is_plain_data(t),
                        GenericArgument::Lifetime(_) => true,
                        _ => false,
                    })
                }
                _ => false,
            }
        }
        _ => false,
    }
}

/// Calls `hit` on every path segment's identifier in `ty`, recursively
/// through generic arguments; true as soon as one call is.
fn any_path_segment(ty: &Type, hit: &mut dyn FnMut(&syn::Ident) -> bool) -> bool {
    match ty {
        Type::Paren(t) => any_path_segment(&t.elem, hit),
        Type::Group(t) => any_path_segment(&t.elem, hit),
        Type::Reference(t) => any_path_segment(&t.elem, hit),
        Type::Ptr(t) => any_path_segment(&t.elem, hit),
        Type::Array(t) => any_path_segment(&t.elem, hit),
        Type::Slice(t) => any_path_segment(&t.elem, hit),
        Type::Tuple(t) => t.elems.iter().any(|e| any_path_segment(e, hit)),
        Type::Path(p) => {
            if let Some(q) = &p.qself {
                if any_path_segment(&q.ty, hit) {
                    return true;
                }
            }
            p.path.segments.iter().any(|seg| {
                if hit(&seg.ident) {
                    return true;
                }
                match &seg.arguments {
                    PathArguments::AngleBracketed(args) => args.args.iter().any(|a| match a {
                        GenericArgument::Type(t) => any_path_segment(t, hit),
                        _ => false,
                    }),
                    _ => false,
                }
            })
        }
        _ => false,
    }
}
