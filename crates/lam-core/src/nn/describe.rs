//! PyTorch's `print(model)`: [`fmt_module`] writes the module tree from
//! [`super::Visit::children`], [`Module::type_name`] and [`Module::extra_repr`],
//! line for line as `nn.Module.__repr__` does:
//!
//! ```text
//! Mlp(
//!   (fc1): Linear(in_features=3, out_features=4, bias=True)
//!   (fc2): Linear(in_features=4, out_features=2, bias=True)
//! )
//! ```
//!
//! A `ModuleList` prints runs of equal items once, as `(0-2): 3 x
//! Block(...)`. `#[derive(Module)]` implements `Display` with it; `dyn
//! Module` and [`super::Sequential`] have it too. The helpers [`py_float`],
//! [`py_bool`] and [`py_tuple`] write values as Python's `repr` does, so
//! layers' `extra_repr` match PyTorch's text.

use std::fmt;

use super::Module;

/// Writes `module` as PyTorch's `repr(module)`.
pub fn fmt_module(module: &dyn Module, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str(&repr(module))
}

impl fmt::Display for dyn Module + '_ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_module(self, f)
    }
}

/// `nn.Module.__repr__`, or `nn.ModuleList.__repr__` for a list.
fn repr(module: &dyn Module) -> String {
    let mut children = Vec::new();
    module.children(&mut |name, child| children.push((name.to_string(), repr(child))));
    let name = module.type_name();
    if name == "ModuleList" && !children.is_empty() {
        return list_repr(&name, &children);
    }
    let extra = module.extra_repr();
    let mut lines: Vec<String> = if extra.is_empty() {
        Vec::new()
    } else {
        extra.split('\n').map(str::to_string).collect()
    };
    let one_line = lines.len() == 1 && children.is_empty();
    lines.extend(
        children
            .iter()
            .map(|(key, text)| add_indent(&format!("({key}): {text}"), 2)),
    );
    if lines.is_empty() {
        format!("{name}()")
    } else if one_line {
        format!("{name}({})", lines[0])
    } else {
        format!("{name}(\n  {}\n)", lines.join("\n  "))
    }
}

/// A list's items, with runs of equal text collapsed to `(i-j): n x text`.
fn list_repr(name: &str, items: &[(String, String)]) -> String {
    let mut runs: Vec<(usize, usize, &str)> = Vec::new();
    for (i, (_, text)) in items.iter().enumerate() {
        match runs.last_mut() {
            Some((_, end, last)) if *last == text => *end = i,
            _ => runs.push((i, i, text)),
        }
    }
    let lines: Vec<String> = runs
        .iter()
        .map(|&(start, end, text)| {
            let line = if start == end {
                format!("({start}): {text}")
            } else {
                format!("({start}-{end}): {} x {text}", end - start + 1)
            };
            add_indent(&line, 2)
        })
        .collect();
    format!("{name}(\n  {}\n)", lines.join("\n  "))
}

/// PyTorch's `_addindent`: every line but the first indented by `spaces`.
fn add_indent(text: &str, spaces: usize) -> String {
    let pad = " ".repeat(spaces);
    let mut lines = text.split('\n');
    let mut out = lines.next().unwrap_or_default().to_string();
    for line in lines {
        out.push('\n');
        out.push_str(&pad);
        out.push_str(line);
    }
    out
}

/// `path::to::Name<T>` → `Name`: what `type_name` shows by default.
pub(crate) fn short_type_name(full: &str) -> String {
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base).to_string()
}

/// A float as Python's `repr` writes it: the shortest text that reads back
/// as the same `f32`, `1.0` for integers, and exponents (`1e-05`) below
/// 1e-4 or from 1e16.
pub fn py_float(x: f32) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "nan".into()
        } else if x > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let sci = format!("{x:e}"); // shortest digits: "1e-5", "2.5e-1"
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if x != 0.0 && !(-4..16).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let plain = format!("{x}");
    if plain.contains('.') {
        plain
    } else {
        format!("{plain}.0")
    }
}

/// `True` / `False`.
pub fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// A Python tuple: `(3, 3)`, `(4,)`.
pub fn py_tuple(items: &[usize]) -> String {
    match items {
        [one] => format!("({one},)"),
        _ => {
            let parts: Vec<String> = items.iter().map(|v| v.to_string()).collect();
            format!("({})", parts.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_read_as_python_writes_them() {
        assert_eq!(py_float(1e-5), "1e-05");
        assert_eq!(py_float(0.1), "0.1");
        assert_eq!(py_float(0.25), "0.25");
        assert_eq!(py_float(1.0), "1.0");
        assert_eq!(py_float(0.0), "0.0");
        assert_eq!(py_float(-2.0), "-2.0");
        assert_eq!(py_float(1e-4), "0.0001");
        assert_eq!(py_float(3e20), "3e+20");
        assert_eq!(py_tuple(&[4]), "(4,)");
        assert_eq!(py_tuple(&[3, 3]), "(3, 3)");
        assert_eq!(
            short_type_name("lam_core::nn::norm::BatchNorm<1>"),
            "BatchNorm"
        );
    }

    #[test]
    fn indentation_is_pytorch_addindent() {
        assert_eq!(add_indent("a\nb\nc", 2), "a\n  b\n  c");
        assert_eq!(add_indent("one", 2), "one");
    }
}
