//! PyTorch-like printing: nested brackets, four decimals, at most three
//! leading and trailing entries per dim when a tensor has over 1000
//! elements, then shape, dtype and device.

use std::fmt;

use crate::{DType, Tensor};

const SUMMARIZE_ABOVE: usize = 1000;
const EDGE_ITEMS: usize = 3;

impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values = match self.to_vec() {
            Ok(v) => v,
            Err(e) => return write!(f, "tensor(<unreadable: {e}>)"),
        };
        let summarize = values.len() > SUMMARIZE_ABOVE;
        let int = self.dtype() == DType::I32;
        let mut body = String::new();
        write_nested(
            &mut body,
            &values,
            self.dims(),
            0,
            0,
            summarize,
            int,
            "tensor(".len(),
        );
        write!(
            f,
            "tensor({body}, shape={:?}, dtype={}, device={}{})",
            self.dims(),
            self.dtype(),
            self.device(),
            if self.requires_grad() {
                ", requires_grad=true"
            } else {
                ""
            }
        )
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[allow(clippy::too_many_arguments)]
fn write_nested(
    out: &mut String,
    values: &[f32],
    shape: &[usize],
    depth: usize,
    start: usize,
    summarize: bool,
    int: bool,
    indent: usize,
) {
    if shape.is_empty() {
        out.push_str(&format_value(values[start], int));
        return;
    }
    let n = shape[0];
    let inner: usize = shape[1..].iter().product();
    out.push('[');
    let shown: Vec<Option<usize>> = if summarize && n > 2 * EDGE_ITEMS {
        (0..EDGE_ITEMS)
            .map(Some)
            .chain([None])
            .chain((n - EDGE_ITEMS..n).map(Some))
            .collect()
    } else {
        (0..n).map(Some).collect()
    };
    for (k, item) in shown.iter().enumerate() {
        if k > 0 {
            if shape.len() > 1 {
                out.push(',');
                out.push_str(&"\n".repeat(shape.len() - 1));
                out.push_str(&" ".repeat(indent + depth + 1));
            } else {
                out.push_str(", ");
            }
        }
        match item {
            Some(i) => write_nested(
                out,
                values,
                &shape[1..],
                depth + 1,
                start + i * inner,
                summarize,
                int,
                indent,
            ),
            None => out.push_str("..."),
        }
    }
    out.push(']');
}

fn format_value(v: f32, int: bool) -> String {
    if int {
        format!("{}", v as i64)
    } else {
        format!("{v:.4}")
    }
}
