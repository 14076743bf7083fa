//! Sliding windows over images: their geometry ([`Size2`], [`Window`]) and
//! im2col, the gathering of every window's elements into columns, shared by
//! convolution and max pooling.
//!
//! im2col is built from two primitives so it runs on every backend and
//! differentiates for free: the input is flattened to `[N, C·H·W]`, one
//! extra *sentinel* column holding the padding value is appended when any
//! window reaches into the padding, and a single `index_select` with a
//! precomputed `I32` index (out-of-image positions point at the sentinel)
//! gathers `[N, C, kh·kw, OH·OW]`. The gradient of `index_select`
//! (a scatter-add) sums overlapping windows back into the input; the
//! sentinel's gradient is dropped by the `cat` it came from.

use std::sync::Mutex;

use crate::{Device, Error, Result, Tensor};

/// A height and width. `3.into()` is `(3, 3)`; `(1, 2).into()` is `h = 1, w = 2`.
/// The default is `(0, 0)` (no padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Size2 {
    /// Height (rows).
    pub h: usize,
    /// Width (columns).
    pub w: usize,
}

impl Size2 {
    /// `(h, w)`.
    pub const fn new(h: usize, w: usize) -> Size2 {
        Size2 { h, w }
    }
}

impl From<usize> for Size2 {
    fn from(v: usize) -> Size2 {
        Size2 { h: v, w: v }
    }
}

impl From<(usize, usize)> for Size2 {
    fn from((h, w): (usize, usize)) -> Size2 {
        Size2 { h, w }
    }
}

impl From<[usize; 2]> for Size2 {
    fn from([h, w]: [usize; 2]) -> Size2 {
        Size2 { h, w }
    }
}

/// The geometry of a 2-d sliding window: kernel, stride, zero padding on
/// each side, and dilation (the spacing of kernel taps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub kernel: Size2,
    pub stride: Size2,
    pub padding: Size2,
    pub dilation: Size2,
}

impl Window {
    /// A window, or an error naming `op` if a kernel, stride or dilation is 0.
    pub fn new(
        op: &'static str,
        kernel: Size2,
        stride: Size2,
        padding: Size2,
        dilation: Size2,
    ) -> Result<Window> {
        for (name, s) in [
            ("kernel size", kernel),
            ("stride", stride),
            ("dilation", dilation),
        ] {
            if s.h == 0 || s.w == 0 {
                return Err(Error::invalid(
                    op,
                    format!("{name} must be positive, found ({}, {})", s.h, s.w),
                ));
            }
        }
        Ok(Window {
            kernel,
            stride,
            padding,
            dilation,
        })
    }

    /// The output size for an `h × w` input:
    /// `⌊(h + 2p − d(k − 1) − 1) / s⌋ + 1` per axis (PyTorch's formula).
    pub fn output_size(&self, op: &'static str, h: usize, w: usize) -> Result<Size2> {
        let axis = |len: usize, k: usize, s: usize, p: usize, d: usize| -> Result<usize> {
            let span = d * (k - 1) + 1;
            let padded = len + 2 * p;
            if padded < span {
                return Err(Error::invalid(
                    op,
                    format!(
                        "input of size ({h}, {w}) padded by ({}, {}) is smaller than the \
                         (dilated) kernel ({}, {})",
                        self.padding.h,
                        self.padding.w,
                        self.dilation.h * (self.kernel.h - 1) + 1,
                        self.dilation.w * (self.kernel.w - 1) + 1
                    ),
                ));
            }
            Ok((padded - span) / s + 1)
        };
        Ok(Size2 {
            h: axis(
                h,
                self.kernel.h,
                self.stride.h,
                self.padding.h,
                self.dilation.h,
            )?,
            w: axis(
                w,
                self.kernel.w,
                self.stride.w,
                self.padding.w,
                self.dilation.w,
            )?,
        })
    }
}

/// A layer's last im2col index, reused while the input size and device stay
/// the same (building and uploading it every step would be wasted work).
#[derive(Default)]
pub struct PatchIndexCache(Mutex<Option<CachedIndex>>);

struct CachedIndex {
    key: [usize; 3],
    device: Device,
    index: Tensor,
    padded: bool,
}

impl PatchIndexCache {
    /// An empty cache.
    pub fn new() -> PatchIndexCache {
        PatchIndexCache::default()
    }
}

/// Every window's elements of `x: [N, C, H, W]` as `[N, C, kh·kw, OH·OW]`
/// (element `[n, c, i·kw + j, oy·OW + ox]` is tap `(i, j)` of the window at
/// `(oy, ox)`), with `pad_value` outside the image; also returns `(OH, OW)`.
pub fn patches(
    op: &'static str,
    x: &Tensor,
    window: &Window,
    pad_value: f32,
    cache: Option<&PatchIndexCache>,
) -> Result<(Tensor, Size2)> {
    if x.rank() != 4 {
        return Err(Error::RankMismatch {
            op,
            expected: "4 ([N, C, H, W])".into(),
            found: x.rank(),
            shape: x.shape(),
        });
    }
    x.check_f32(op)?;
    let (n, c, h, w) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
    let out = window.output_size(op, h, w)?;
    let image = c * h * w;
    if image >= i32::MAX as usize {
        return Err(Error::invalid(
            op,
            format!("an image of {image} elements exceeds the i32 index range"),
        ));
    }
    let (index, padded) = cached_index(op, window, [c, h, w], out, &x.device(), cache)?;
    let flat = x.reshape_exact(&[n, image])?;
    let flat = if padded {
        let sentinel = Tensor::full(&[n, 1], pad_value, &x.device())?;
        Tensor::cat(&[flat, sentinel], 1)?
    } else {
        flat
    };
    let taps = window.kernel.h * window.kernel.w;
    let cols = flat
        .index_select(1, &index)?
        .reshape_exact(&[n, c, taps, out.h * out.w])?;
    Ok((cols, out))
}

fn cached_index(
    op: &'static str,
    window: &Window,
    key: [usize; 3],
    out: Size2,
    device: &Device,
    cache: Option<&PatchIndexCache>,
) -> Result<(Tensor, bool)> {
    let Some(cache) = cache else {
        return build_index(op, window, key, out, device);
    };
    let mut slot = cache.0.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(hit) = slot
        .as_ref()
        .filter(|s| s.key == key && s.device == *device)
    {
        return Ok((hit.index.clone(), hit.padded));
    }
    let (index, padded) = build_index(op, window, key, out, device)?;
    *slot = Some(CachedIndex {
        key,
        device: device.clone(),
        index: index.clone(),
        padded,
    });
    Ok((index, padded))
}

/// The im2col index over a flattened `[C·H·W]` image (plus the sentinel at
/// `C·H·W`), in `[C, kh, kw, OH, OW]` order, and whether the sentinel is used.
fn build_index(
    op: &'static str,
    window: &Window,
    [c, h, w]: [usize; 3],
    out: Size2,
    device: &Device,
) -> Result<(Tensor, bool)> {
    let Window {
        kernel: k,
        stride: s,
        padding: p,
        dilation: d,
    } = *window;
    let len = c * k.h * k.w * out.h * out.w;
    if len > i32::MAX as usize {
        return Err(Error::invalid(
            op,
            format!("{len} patch elements exceed the i32 index range"),
        ));
    }
    let sentinel = (c * h * w) as i32;
    // Position along one axis of tap `i` of output `o`, if inside the image.
    let coord = |o: usize, i: usize, s: usize, d: usize, p: usize, size: usize| -> Option<usize> {
        (o * s + i * d).checked_sub(p).filter(|&v| v < size)
    };
    let mut index = Vec::with_capacity(len);
    let mut padded = false;
    for ch in 0..c {
        for i in 0..k.h {
            for j in 0..k.w {
                for oy in 0..out.h {
                    let y = coord(oy, i, s.h, d.h, p.h, h);
                    for ox in 0..out.w {
                        match (y, coord(ox, j, s.w, d.w, p.w, w)) {
                            (Some(y), Some(x)) => index.push(((ch * h + y) * w + x) as i32),
                            _ => {
                                padded = true;
                                index.push(sentinel);
                            }
                        }
                    }
                }
            }
        }
    }
    Ok((Tensor::from_vec_i32(index, &[len], device)?, padded))
}
