//! Padding: [`pad`] and [`pad_constant`] (PyTorch's `F.pad` in its four
//! modes) and [`Padding`], a convolution's `padding` argument (sizes, or
//! `"same"`).
//!
//! A padded dim is one gather: output position `i` reads input position
//! `source(i − left)` (`index_select`), where `source` reflects, clamps or
//! wraps an index that falls outside `0..n`. The gradient of a gather adds
//! each output's gradient into the position it read, which is exactly the
//! gradient of padding (a border pixel copied twice receives both
//! gradients), with nothing written by hand. Constant padding joins filled
//! blocks to each side (`cat`).

use super::window::Size2;
use crate::{Error, Result, Tensor};

/// How a convolution fills the border it pads (PyTorch's `padding_mode`),
/// and [`pad`]'s mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PaddingMode {
    /// Zeros (PyTorch's `"zeros"`, and `F.pad`'s `"constant"` with 0).
    #[default]
    Zeros,
    /// The input mirrored at its edge, the edge itself not repeated:
    /// `[a b c]` padded by 2 is `c b [a b c] b a`. Each pad must be smaller
    /// than the dim.
    Reflect,
    /// The edge element repeated: `a a [a b c] c c`.
    Replicate,
    /// The input wrapped around: `b c [a b c] a b`. Each pad must be at
    /// most the dim.
    Circular,
}

impl PaddingMode {
    /// PyTorch's name of the mode (`padding_mode='reflect'`).
    pub fn py_name(self) -> &'static str {
        match self {
            PaddingMode::Zeros => "zeros",
            PaddingMode::Reflect => "reflect",
            PaddingMode::Replicate => "replicate",
            PaddingMode::Circular => "circular",
        }
    }
}

/// A convolution's `padding`: the same amount on both sides of each spatial
/// dim (`S` is `usize` for 1-d, [`Size2`] for 2-d), or PyTorch's
/// `padding="same"`: whatever keeps the output the input's size (stride 1
/// only), `dilation·(k − 1)` in all, half on each side and the odd one
/// after (PyTorch's split). `padding="valid"` is `0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding<S> {
    /// The same count on both sides.
    Explicit(S),
    /// PyTorch's `"same"`.
    Same,
}

impl From<usize> for Padding<usize> {
    fn from(p: usize) -> Self {
        Padding::Explicit(p)
    }
}

impl From<usize> for Padding<Size2> {
    fn from(p: usize) -> Self {
        Padding::Explicit(p.into())
    }
}

impl From<(usize, usize)> for Padding<Size2> {
    fn from(p: (usize, usize)) -> Self {
        Padding::Explicit(p.into())
    }
}

impl From<[usize; 2]> for Padding<Size2> {
    fn from(p: [usize; 2]) -> Self {
        Padding::Explicit(p.into())
    }
}

impl From<Size2> for Padding<Size2> {
    fn from(p: Size2) -> Self {
        Padding::Explicit(p)
    }
}

/// `torch.nn.functional.pad(input, pad, mode)`: `pad` holds
/// `(before, after)` pairs for the last dim first, then the one before it,
/// and so on (`[left, right, top, bottom]` pads width and height). Modes
/// other than [`PaddingMode::Zeros`] need each dim padded to be non-empty;
/// `Reflect` needs each pad below the dim's size, `Circular` at most it.
pub fn pad(input: &Tensor, pad: &[usize], mode: PaddingMode) -> Result<Tensor> {
    let dims = padded_dims("pad", input, pad)?;
    let empty = dims.iter().any(|&(d, b, a)| input.dims()[d] + b + a == 0)
        || (0..input.rank()).any(|d| input.dims()[d] == 0 && !dims.iter().any(|p| p.0 == d));
    if mode == PaddingMode::Zeros || (empty && mode == PaddingMode::Replicate) {
        // (An output with no elements has no values to choose.)
        return pad_constant(input, pad, 0.0);
    }
    let mut x = input.clone();
    for (dim, before, after) in dims {
        if before == 0 && after == 0 {
            continue;
        }
        let index = source_index(mode, x.dims()[dim], before, after, dim)?;
        let index = Tensor::from_vec_i32(index, &[x.dims()[dim] + before + after], &x.device())?;
        x = x.index_select(dim as isize, &index)?;
    }
    Ok(x)
}

/// `torch.nn.functional.pad(input, pad, mode="constant", value=value)`:
/// `value` on every padded side, `pad` as in [`pad`].
pub fn pad_constant(input: &Tensor, pad: &[usize], value: f32) -> Result<Tensor> {
    let input = &input.float32("pad")?;
    let mut x = input.clone();
    for (dim, before, after) in padded_dims("pad", input, pad)? {
        let mut parts = Vec::with_capacity(3);
        for (count, main) in [(before, false), (0, true), (after, false)] {
            if main {
                parts.push(x.clone());
            } else if count > 0 {
                let mut shape = x.shape();
                shape[dim] = count;
                parts.push(Tensor::full(&shape, value, &x.device())?);
            }
        }
        if parts.len() > 1 {
            x = Tensor::cat(&parts, dim as isize)?;
        }
    }
    Ok(x)
}

/// `(dim, before, after)` for each dim `pad` names, last dim first.
fn padded_dims(
    op: &'static str,
    input: &Tensor,
    pad: &[usize],
) -> Result<Vec<(usize, usize, usize)>> {
    if !pad.len().is_multiple_of(2) || pad.len() / 2 > input.rank() {
        return Err(Error::invalid(
            op,
            format!(
                "pad needs (before, after) pairs for at most {} dims of an input of shape {:?}, \
                 found {pad:?}",
                input.rank(),
                input.dims()
            ),
        ));
    }
    let dims: Vec<(usize, usize, usize)> = pad
        .chunks(2)
        .enumerate()
        .map(|(i, pair)| (input.rank() - 1 - i, pair[0], pair[1]))
        .collect();
    // The padded shape must be one lam can hold before anything is built.
    let mut shape = input.shape();
    for &(dim, before, after) in &dims {
        shape[dim] = before
            .checked_add(after)
            .and_then(|p| p.checked_add(shape[dim]))
            .ok_or_else(|| Error::invalid(op, format!("pad {pad:?} overflows")))?;
    }
    crate::layout::checked_numel(op, &shape)?;
    Ok(dims)
}

/// The input position each of the `before + n + after` outputs reads.
fn source_index(
    mode: PaddingMode,
    n: usize,
    before: usize,
    after: usize,
    dim: usize,
) -> Result<Vec<i32>> {
    let limit = match mode {
        PaddingMode::Reflect => n.saturating_sub(1),
        PaddingMode::Circular => n,
        PaddingMode::Replicate | PaddingMode::Zeros => usize::MAX,
    };
    if n == 0 || before > limit || after > limit {
        let need = match mode {
            PaddingMode::Reflect => "smaller than",
            PaddingMode::Circular => "at most",
            _ => "of a non-empty",
        };
        return Err(Error::invalid(
            "pad",
            format!(
                "{} padding ({before}, {after}) of dim {dim} needs pads {need} its size {n}",
                mode.py_name()
            ),
        ));
    }
    if n + before + after > i32::MAX as usize {
        return Err(Error::invalid(
            "pad",
            format!("dim {dim} padded to more than {} elements", i32::MAX),
        ));
    }
    let (n, before) = (n as i64, before as i64);
    let total = n + before + after as i64;
    let index = (0..total)
        .map(|o| {
            let i = o - before;
            let j = match mode {
                PaddingMode::Reflect if i < 0 => -i,
                PaddingMode::Reflect if i >= n => 2 * (n - 1) - i,
                PaddingMode::Circular => i.rem_euclid(n),
                _ => i.clamp(0, n - 1),
            };
            j as i32
        })
        .collect();
    Ok(index)
}
