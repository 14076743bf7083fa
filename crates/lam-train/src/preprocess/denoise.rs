//! Denoising filters: [`gaussian_blur`] and [`median_filter`] for images
//! `[N, C, H, W]` or `[N, H, W]` (each `H × W` plane filtered on its own),
//! and [`moving_average`] for series.
//!
//! The image filters match SciPy's `scipy.ndimage.gaussian_filter` (kernel
//! radius `⌊4σ + 0.5⌋`, one pass per axis) and `median_filter` with a
//! `size × size` window, both with SciPy's default border mode `reflect`
//! (`d c b a | a b c d | d c b a`: the edge sample is repeated). They run on
//! the host, in `f64` inside each sum, and return a tensor on the input's
//! device; a fixture test compares them with SciPy.

use lam_core::{Error, Result, Tensor};

/// Gaussian smoothing with standard deviation `sigma` (> 0) pixels over the
/// last two dims of `x: [N, H, W]` or `[N, C, H, W]`.
pub fn gaussian_blur(x: &Tensor, sigma: f32) -> Result<Tensor> {
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(Error::invalid(
            "gaussian_blur",
            format!("sigma must be > 0, found {sigma}"),
        ));
    }
    let kernel = gaussian_kernel(sigma);
    map_planes("gaussian_blur", x, |plane, h, w| {
        let rows = convolve_axis(plane, h, w, &kernel, true);
        convolve_axis(&rows, h, w, &kernel, false)
    })
}

/// The median of each `size × size` window (`size` odd) over the last two
/// dims of `x: [N, H, W]` or `[N, C, H, W]`: removes salt-and-pepper noise.
pub fn median_filter(x: &Tensor, size: usize) -> Result<Tensor> {
    if size.is_multiple_of(2) {
        return Err(Error::invalid(
            "median_filter",
            format!("size must be odd, found {size}"),
        ));
    }
    let r = (size / 2) as isize;
    map_planes("median_filter", x, |plane, h, w| {
        let mut out = vec![0.0; h * w];
        let mut window = Vec::with_capacity(size * size);
        for i in 0..h {
            for j in 0..w {
                window.clear();
                for di in -r..=r {
                    let ii = reflect(i as isize + di, h);
                    for dj in -r..=r {
                        window.push(plane[ii * w + reflect(j as isize + dj, w)]);
                    }
                }
                window.sort_by(f32::total_cmp);
                out[i * w + j] = window[window.len() / 2];
            }
        }
        out
    })
}

/// The mean of each run of `window` consecutive values (NumPy's
/// `convolve(x, ones(w) / w, "valid")`): `len − window + 1` values.
pub fn moving_average(series: &[f32], window: usize) -> Result<Vec<f32>> {
    if window == 0 || window > series.len() {
        return Err(Error::invalid(
            "moving_average",
            format!("window must be in 1..={}, found {window}", series.len()),
        ));
    }
    let mut sum: f64 = series[..window].iter().map(|&v| v as f64).sum();
    let mut out = Vec::with_capacity(series.len() - window + 1);
    out.push((sum / window as f64) as f32);
    for i in window..series.len() {
        sum += series[i] as f64 - series[i - window] as f64;
        out.push((sum / window as f64) as f32);
    }
    Ok(out)
}

/// [`moving_average`] along the last dim of `x: [..., L]` → `[..., L − window + 1]`.
pub fn moving_average_tensor(x: &Tensor, window: usize) -> Result<Tensor> {
    if x.rank() == 0 {
        return Err(Error::shape(
            "moving_average",
            "a tensor of shape [..., L]",
            x.dims(),
        ));
    }
    let len = x.dims()[x.rank() - 1];
    if window == 0 || window > len {
        return Err(Error::invalid(
            "moving_average",
            format!("window must be in 1..={len}, found {window}"),
        ));
    }
    let data = x.to_vec()?;
    let mut out = Vec::new();
    for row in data.chunks(len.max(1)) {
        out.extend(moving_average(row, window)?);
    }
    let mut shape = x.shape();
    let last = shape.len() - 1;
    shape[last] = len + 1 - window;
    Tensor::from_vec(out, &shape, &x.device())
}

/// SciPy's `_gaussian_kernel1d(sigma, order=0, radius=int(4 * sigma + 0.5))`.
pub(crate) fn gaussian_kernel(sigma: f32) -> Vec<f64> {
    let sigma = sigma as f64;
    let radius = (4.0 * sigma + 0.5) as isize;
    let k: Vec<f64> = (-radius..=radius)
        .map(|x| (-0.5 / (sigma * sigma) * (x * x) as f64).exp())
        .collect();
    let total: f64 = k.iter().sum();
    k.into_iter().map(|v| v / total).collect()
}

/// SciPy's `reflect` border: index `i` folded into `0..n`.
pub(crate) fn reflect(i: isize, n: usize) -> usize {
    let n = n as isize;
    let period = 2 * n;
    let m = i.rem_euclid(period);
    (if m < n { m } else { period - 1 - m }) as usize
}

/// One pass of a symmetric 1-d kernel along rows (`along_h`) or columns.
fn convolve_axis(plane: &[f32], h: usize, w: usize, kernel: &[f64], along_h: bool) -> Vec<f32> {
    let r = (kernel.len() / 2) as isize;
    let mut out = vec![0.0; h * w];
    for i in 0..h {
        for j in 0..w {
            let mut acc = 0.0;
            for (k, &kv) in kernel.iter().enumerate() {
                let d = k as isize - r;
                let v = if along_h {
                    plane[reflect(i as isize + d, h) * w + j]
                } else {
                    plane[i * w + reflect(j as isize + d, w)]
                };
                acc += kv * v as f64;
            }
            out[i * w + j] = acc as f32;
        }
    }
    out
}

/// Applies `f(plane, h, w)` to every `H × W` plane of a rank-3 or rank-4 tensor.
pub(crate) fn map_planes(
    op: &'static str,
    x: &Tensor,
    f: impl Fn(&[f32], usize, usize) -> Vec<f32>,
) -> Result<Tensor> {
    let (h, w) = plane_dims(op, x.dims())?;
    let data = x.to_vec()?;
    let mut out = Vec::with_capacity(data.len());
    if h * w > 0 {
        for plane in data.chunks(h * w) {
            out.extend(f(plane, h, w));
        }
    }
    Tensor::from_vec(out, x.dims(), &x.device())
}

/// `(H, W)` of an image batch `[N, H, W]` or `[N, C, H, W]`.
pub(crate) fn plane_dims(op: &'static str, dims: &[usize]) -> Result<(usize, usize)> {
    match dims {
        [_, h, w] | [_, _, h, w] => Ok((*h, *w)),
        _ => Err(Error::RankMismatch {
            op,
            expected: "3 ([N, H, W]) or 4 ([N, C, H, W])".into(),
            found: dims.len(),
            shape: dims.to_vec(),
        }),
    }
}
