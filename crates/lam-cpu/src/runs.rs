//! Folds over contiguous runs of `f32`, compiled for the widest vectors the
//! processor has (AVX-512, AVX2, or the baseline), chosen at run time: the
//! inner loops of the reductions (`reduce.rs`), of batch norm
//! (`batch_norm.rs`) and of layer norm (`layer_norm.rs`).
//!
//! A sum in one accumulator waits on every add (~1 ns per element); these
//! fold a run into [`LANES`] independent partial results, which vectorise.
//! Sums accumulate in `f64`, where the changed order of additions changes
//! nothing an `f32` result can show; maxima and minima are the same in any
//! order. Each public function is one kernel written once (an
//! `#[inline(always)]` body) and [`widest!`] compiles it per instruction
//! set: a closure handed to a `#[target_feature]` function is not always
//! inlined into it, and then runs without the wide vectors.

/// Independent partial results per run: enough operations in flight to
/// hide their latency, and whole vectors (two AVX-512 registers of `f64`).
const LANES: usize = 16;

/// `fn $name(args) -> ret` running `$body` (an `#[inline(always)]` function
/// of the same arguments) compiled for AVX-512 or AVX2 when the processor
/// has them.
macro_rules! widest {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? = $body:ident;) => {
        $(#[$doc])*
        pub(crate) fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the processor has AVX-512F, checked just above.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the processor has AVX2, checked just above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

widest! {
    /// `Σ run`, in `f64`.
    fn sum(run: &[f32]) -> f64 = sum_body;
}

widest! {
    /// `Σ (v − mean)²` over `run`, in `f64`.
    fn sum_squared_deviation(run: &[f32], mean: f64) -> f64 = sum_squared_deviation_body;
}

widest! {
    /// `(Σ a, Σ a·(b − mean))` over two runs of one length, in `f64`.
    fn sum_and_product(a: &[f32], b: &[f32], mean: f64) -> (f64, f64) = sum_and_product_body;
}

widest! {
    /// The maximum of `run` and `init`; a NaN wins (as in PyTorch).
    fn max(run: &[f32], init: f32) -> f32 = max_body;
}

widest! {
    /// The minimum of `run` and `init`; a NaN wins.
    fn min(run: &[f32], init: f32) -> f32 = min_body;
}

widest! {
    /// `acc[i] += run[i]` in `f64`, for two slices of one length.
    fn add_into(acc: &mut [f64], run: &[f32]) = add_into_body;
}

widest! {
    /// `acc[i] = max(acc[i], run[i])`, a NaN winning.
    fn max_into(acc: &mut [f32], run: &[f32]) = max_into_body;
}

widest! {
    /// `acc[i] = min(acc[i], run[i])`, a NaN winning.
    fn min_into(acc: &mut [f32], run: &[f32]) = min_into_body;
}

widest! {
    /// `out[i] = (x[i] − mean) · scale + shift` (batch norm's output).
    fn normalize(out: &mut [f32], x: &[f32], mean: f32, scale: f32, shift: f32) = normalize_body;
}

widest! {
    /// `out[i] = (g[i] − a − (x[i] − mean) · k) · scale` (batch norm's
    /// input gradient).
    fn normalize_grad(
        out: &mut [f32],
        g: &[f32],
        x: &[f32],
        coef: [f32; 4]
    ) = normalize_grad_body;
}

widest! {
    /// `out[i] = (x[i] − mean) · scale · w[i] + b[i]` (layer norm's output).
    fn affine(out: &mut [f32], x: &[f32], mean: f32, scale: f32, w: &[f32], b: &[f32]) = affine_body;
}

widest! {
    /// One row of layer norm's gradient (see `layer_norm.rs`): `dx` from
    /// the row's gradient `g`, input `x`, mean `m` and `rstd` `s` (`gy =
    /// g ⊙ w` held in `scratch` when there is a weight), and `g ⊙ x̂` and
    /// `g` added into the column sums `pw` and `pb`. One call per row, so
    /// that its five loops share one dispatch.
    fn layer_norm_grad_row(
        dx: &mut [f32],
        g: &[f32],
        x: &[f32],
        w: Option<&[f32]>,
        scratch: &mut [f32],
        stats: (f32, f32),
        sums: (&mut [f64], &mut [f64])
    ) = layer_norm_grad_row_body;
}

/// The larger of `m` and `v`; a NaN wins, and stays.
#[inline(always)]
pub(crate) fn pick_max(m: f32, v: f32) -> f32 {
    if v > m || v.is_nan() {
        v
    } else {
        m
    }
}

/// The smaller of `m` and `v`; a NaN wins, and stays.
#[inline(always)]
pub(crate) fn pick_min(m: f32, v: f32) -> f32 {
    if v < m || v.is_nan() {
        v
    } else {
        m
    }
}

#[inline(always)]
fn sum_body(run: &[f32]) -> f64 {
    fold(run, |v| v as f64)
}

#[inline(always)]
fn sum_squared_deviation_body(run: &[f32], mean: f64) -> f64 {
    fold(run, |v| {
        let d = v as f64 - mean;
        d * d
    })
}

#[inline(always)]
fn sum_and_product_body(a: &[f32], b: &[f32], mean: f64) -> (f64, f64) {
    // Two folds, each vectorised across its lanes; the run is in L1 for
    // the second. Folding both sums in one loop, the vectoriser paired each
    // lane's two sums into two-wide vectors instead (~6× batch norm's
    // other passes).
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let sum = fold(a, |v| v as f64);
    let product = fold_pairs(a, b, |u, v| u as f64 * (v as f64 - mean));
    (sum, product)
}

/// `Σ term(a[i], b[i])` over two runs of one length, in [`LANES`] partial
/// sums.
#[inline(always)]
fn fold_pairs(a: &[f32], b: &[f32], term: impl Fn(f32, f32) -> f64) -> f64 {
    let mut acc = [0.0f64; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (xa, xb) in ca.zip(cb) {
        for (s, (&u, &v)) in acc.iter_mut().zip(xa.iter().zip(xb)) {
            *s += term(u, v);
        }
    }
    for (s, (&u, &v)) in acc.iter_mut().zip(ta.iter().zip(tb)) {
        *s += term(u, v);
    }
    acc.iter().sum()
}

/// `Σ term(v)` over `run` in [`LANES`] partial sums.
#[inline(always)]
fn fold(run: &[f32], term: impl Fn(f32) -> f64) -> f64 {
    let mut acc = [0.0f64; LANES];
    let chunks = run.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (s, &v) in acc.iter_mut().zip(chunk) {
            *s += term(v);
        }
    }
    for (s, &v) in acc.iter_mut().zip(tail) {
        *s += term(v);
    }
    acc.iter().sum()
}

/// `pick` folded over `run` from `init` in [`LANES`] partial results.
#[inline(always)]
fn extremum(run: &[f32], init: f32, pick: impl Fn(f32, f32) -> f32 + Copy) -> f32 {
    let mut acc = [init; LANES];
    let chunks = run.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (m, &v) in acc.iter_mut().zip(chunk) {
            *m = pick(*m, v);
        }
    }
    for (m, &v) in acc.iter_mut().zip(tail) {
        *m = pick(*m, v);
    }
    acc.into_iter().fold(init, pick)
}

#[inline(always)]
fn max_body(run: &[f32], init: f32) -> f32 {
    extremum(run, init, pick_max)
}

#[inline(always)]
fn min_body(run: &[f32], init: f32) -> f32 {
    extremum(run, init, pick_min)
}

#[inline(always)]
fn add_into_body(acc: &mut [f64], run: &[f32]) {
    for (a, &v) in acc.iter_mut().zip(run) {
        *a += v as f64;
    }
}

#[inline(always)]
fn max_into_body(acc: &mut [f32], run: &[f32]) {
    for (a, &v) in acc.iter_mut().zip(run) {
        *a = pick_max(*a, v);
    }
}

#[inline(always)]
fn min_into_body(acc: &mut [f32], run: &[f32]) {
    for (a, &v) in acc.iter_mut().zip(run) {
        *a = pick_min(*a, v);
    }
}

#[inline(always)]
fn normalize_body(out: &mut [f32], x: &[f32], mean: f32, scale: f32, shift: f32) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = (v - mean) * scale + shift;
    }
}

#[inline(always)]
fn affine_body(out: &mut [f32], x: &[f32], mean: f32, scale: f32, w: &[f32], b: &[f32]) {
    for (((o, &v), &wv), &bv) in out.iter_mut().zip(x).zip(w).zip(b) {
        *o = (v - mean) * scale * wv + bv;
    }
}

/// `out[i] = a[i] · b[i]`.
#[inline(always)]
fn mul_body(out: &mut [f32], a: &[f32], b: &[f32]) {
    for ((o, &u), &v) in out.iter_mut().zip(a).zip(b) {
        *o = u * v;
    }
}

/// `acc[i] += g[i] · (x[i] − mean) · scale` in `f64`.
#[inline(always)]
fn add_scaled_product_into_body(acc: &mut [f64], g: &[f32], x: &[f32], mean: f32, scale: f32) {
    for ((a, &gv), &xv) in acc.iter_mut().zip(g).zip(x) {
        *a += (gv * ((xv - mean) * scale)) as f64;
    }
}

#[inline(always)]
fn layer_norm_grad_row_body(
    dx: &mut [f32],
    g: &[f32],
    x: &[f32],
    w: Option<&[f32]>,
    scratch: &mut [f32],
    (m, s): (f32, f32),
    (pw, pb): (&mut [f64], &mut [f64]),
) {
    let cols = x.len();
    let gy = match w {
        Some(w) => {
            mul_body(scratch, g, w);
            &scratch[..]
        }
        None => g,
    };
    // Σ gy and Σ gy·x̂ = rstd · Σ gy·(x − mean).
    let (sum, dot) = sum_and_product_body(gy, x, m as f64);
    let mean_gy = (sum / cols as f64) as f32;
    let mean_dot = (dot * s as f64 / cols as f64) as f32;
    // dx = rstd · (gy − mean(gy) − x̂ · mean(gy·x̂)).
    normalize_grad_body(dx, gy, x, [mean_gy, m, s * mean_dot, s]);
    add_scaled_product_into_body(pw, g, x, m, s);
    add_into_body(pb, g);
}

/// `coef` is `[a, mean, k, scale]`.
#[inline(always)]
fn normalize_grad_body(out: &mut [f32], g: &[f32], x: &[f32], coef: [f32; 4]) {
    let [a, mean, k, scale] = coef;
    for ((o, &gv), &xv) in out.iter_mut().zip(g).zip(x) {
        *o = (gv - a - (xv - mean) * k) * scale;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_agree_with_plain_loops_on_every_length() {
        for n in [0, 1, 15, 16, 17, 100] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 10.0).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let exact: f64 = a.iter().map(|&v| v as f64).sum();
            assert!((sum(&a) - exact).abs() < 1e-9);
            let sq: f64 = a.iter().map(|&v| (v as f64 - 0.5).powi(2)).sum();
            assert!((sum_squared_deviation(&a, 0.5) - sq).abs() < 1e-9);
            let dot: f64 = a
                .iter()
                .zip(&b)
                .map(|(&u, &v)| u as f64 * (v as f64 - 0.25))
                .sum();
            let (s, p) = sum_and_product(&a, &b, 0.25);
            assert!((s - exact).abs() < 1e-9 && (p - dot).abs() < 1e-9);
            let hi = a.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let lo = a.iter().cloned().fold(f32::INFINITY, f32::min);
            assert_eq!(
                (max(&a, f32::NEG_INFINITY), min(&a, f32::INFINITY)),
                (hi, lo)
            );
            if n > 3 {
                let mut nan = a.clone();
                nan[n - 2] = f32::NAN;
                assert!(max(&nan, 0.0).is_nan() && min(&nan, 0.0).is_nan());
            }
        }
    }
}
