//! Batch normalization in training mode and its gradient, fused (Backend
//! `fused_batch_norm`, `fused_batch_norm_grad`) over a `[N, C, L]` view.
//!
//! Channel `c` of a contiguous `[N, C, L]` tensor is `N` runs of `L`
//! elements. Both ops work a channel at a time (channels in parallel), so
//! that after the first read of a channel its later passes find it in
//! cache; each run is folded in `f64` vectors (`runs.rs`), and short runs
//! are gathered into one first:
//! - forward: the mean (`Σx / m`, `m = N·L`), the biased variance about it
//!   (`Σ(x − mean)² / m`), then `y = (x − mean) · invstd·weight + bias`;
//! - gradient: `Σg` and `Σg·(x − mean)`, then
//!   `dx = invstd·weight · (g − Σg/m − (x − mean) · invstd² · Σg·(x − mean) / m)`.
//!
//! `running` updates the running statistics after a training batch
//! (Backend `fused_batch_norm_running`).
//!
//! A constant channel's `f64` sum is exact, so its mean is its value and
//! it normalizes to exact zeros; a NaN reaches only its own channel. The
//! formulas are lam-core's composite ones (`nn/batch_norm.rs`).

use lam_core::backend::{BatchNormRunning, View};
use lam_core::{Error, Layout, Result};

use crate::parallel::for_items;
use crate::runs;
use crate::storage::ReadLocks;
use crate::strided::gather;

/// Runs shorter than this are gathered per channel first.
const SHORT_RUN: usize = 16;

/// `(y, stats)`: `y` of `input` (`[N, C, L]`) and the `[3, C]` statistics
/// (mean, biased variance, invstd).
pub(crate) fn batch_norm(
    input: View,
    weight: Option<View>,
    bias: Option<View>,
    eps: f32,
) -> Result<(Vec<f32>, Vec<f32>)> {
    const OP: &str = "batch_norm";
    let dims = Dims::of(OP, input.1)?;
    let mut storages = vec![input.0];
    storages.extend(weight.iter().chain(&bias).map(|v| v.0));
    let locks = ReadLocks::new(OP, &storages)?;
    let x = gather(locks.f32(0, input.1)?, input.1)?;
    let mut next = 1;
    let mut affine = |v: Option<View>| -> Result<Option<Vec<f32>>> {
        let Some((_, l)) = v else { return Ok(None) };
        vector(OP, l, dims.c)?;
        let data = gather(locks.f32(next, l)?, l)?.into_owned();
        next += 1;
        Ok(Some(data))
    };
    let (w, b) = (affine(weight)?, affine(bias)?);
    let m = dims.count() as f64;
    // [3, C]: mean, biased variance, invstd.
    let mut stats = crate::pool::take(3 * dims.c)?;
    let mut y = crate::pool::take(dims.numel())?;
    let (mean, rest) = stats.split_at_mut(dims.c);
    let (var, invstd) = rest.split_at_mut(dims.c);
    let mut items: Vec<_> = mean
        .iter_mut()
        .zip(var)
        .zip(invstd)
        .zip(dims.rows_by_channel(&mut y))
        .collect();
    for_items(
        &mut items,
        3 * dims.count(),
        |c, (((mean, var), invstd), rows)| {
            let mut buf = Vec::new();
            let xs = dims.channel(&x, c, &mut buf);
            let mu = xs.iter().map(|run| runs::sum(run)).sum::<f64>() / m;
            let v = xs
                .iter()
                .map(|run| runs::sum_squared_deviation(run, mu))
                .sum::<f64>()
                / m;
            **mean = mu as f32;
            **var = v as f32;
            **invstd = (1.0 / (v + eps as f64).sqrt()) as f32;
            let scale = **invstd * w.as_ref().map_or(1.0, |w| w[c]);
            let shift = b.as_ref().map_or(0.0, |b| b[c]);
            dims.write_rows(rows, &xs, &[], |out, x, _| {
                runs::normalize(out, x, mu as f32, scale, shift)
            });
        },
    );
    Ok((y, stats))
}

/// The gradient of [`batch_norm`]: the input's (`[N, C, L]`) and the
/// per-channel sums of `grad ⊙ x̂` and of `grad` (`[C]` each).
pub(crate) fn batch_norm_grad(
    grad: View,
    input: View,
    mean: View,
    invstd: View,
    weight: Option<View>,
) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    const OP: &str = "batch_norm_grad";
    let dims = Dims::of(OP, input.1)?;
    if grad.1.shape != input.1.shape {
        return Err(Error::shape(
            OP,
            format!("a gradient of the input's shape {:?}", input.1.shape),
            &grad.1.shape,
        ));
    }
    vector(OP, mean.1, dims.c)?;
    vector(OP, invstd.1, dims.c)?;
    let mut storages = vec![grad.0, input.0, mean.0, invstd.0];
    storages.extend(weight.map(|v| v.0));
    let locks = ReadLocks::new(OP, &storages)?;
    let g = gather(locks.f32(0, grad.1)?, grad.1)?;
    let x = gather(locks.f32(1, input.1)?, input.1)?;
    let mean = gather(locks.f32(2, mean.1)?, mean.1)?;
    let invstd = gather(locks.f32(3, invstd.1)?, invstd.1)?;
    let w = match weight {
        Some((_, l)) => {
            vector(OP, l, dims.c)?;
            Some(gather(locks.f32(4, l)?, l)?)
        }
        None => None,
    };
    let m = dims.count() as f64;
    // Per channel: Σg·x̂ (the weight's gradient) and Σg (the bias's).
    let mut dw = crate::pool::take(dims.c)?;
    let mut db = crate::pool::take(dims.c)?;
    let mut dx = crate::pool::take(dims.numel())?;
    let mut items: Vec<_> = dw
        .iter_mut()
        .zip(db.iter_mut())
        .zip(dims.rows_by_channel(&mut dx))
        .collect();
    for_items(&mut items, 3 * dims.count(), |c, ((dw, db), rows)| {
        let (mut gbuf, mut xbuf) = (Vec::new(), Vec::new());
        let gs = dims.channel(&g, c, &mut gbuf);
        let xs = dims.channel(&x, c, &mut xbuf);
        let mu = mean[c] as f64;
        let s = invstd[c] as f64;
        let (sum_g, sum_gc) = gs
            .iter()
            .zip(&xs)
            .map(|(g, x)| runs::sum_and_product(g, x, mu))
            .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
        **dw = (sum_gc * s) as f32;
        **db = sum_g as f32;
        // dx = (g − a − (x − mean)·k) · scale.
        let scale = s * w.as_ref().map_or(1.0, |w| w[c] as f64);
        let coef = [
            (sum_g / m) as f32,
            mean[c],
            (s * s * sum_gc / m) as f32,
            scale as f32,
        ];
        dims.write_rows(rows, &gs, &xs, |out, g, x| {
            runs::normalize_grad(out, g, x, coef)
        });
    });
    Ok((dx, dw, db))
}

/// The sizes of a `[N, C, L]` input.
#[derive(Clone, Copy)]
struct Dims {
    n: usize,
    c: usize,
    l: usize,
}

impl Dims {
    fn of(op: &'static str, layout: &Layout) -> Result<Dims> {
        match layout.shape[..] {
            [n, c, l] => Ok(Dims { n, c, l }),
            _ => Err(Error::shape(op, "an [N, C, L] view", &layout.shape)),
        }
    }

    /// Values per channel.
    fn count(&self) -> usize {
        self.n * self.l
    }

    fn numel(&self) -> usize {
        self.n * self.c * self.l
    }

    /// The `N` runs of channel `c` of a contiguous `[N, C, L]` buffer.
    fn runs<'a>(&self, data: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> + 'a {
        let (cl, l) = (self.c * self.l, self.l);
        (0..self.n).map(move |n| &data[n * cl + c * l..n * cl + (c + 1) * l])
    }

    /// Channel `c` of a contiguous `[N, C, L]` buffer as runs: its `N`
    /// runs in place, or, when runs are short (a call per run would cost
    /// more than the run), one run of its `N·L` values gathered into `buf`.
    fn channel<'a>(&self, data: &'a [f32], c: usize, buf: &'a mut Vec<f32>) -> Vec<&'a [f32]> {
        if self.l >= SHORT_RUN {
            return self.runs(data, c).collect();
        }
        buf.extend(self.runs(data, c).flatten());
        vec![&buf[..]]
    }

    /// The rows of `L` elements of a contiguous `[N, C, L]` output, by
    /// channel: `[C][N]`.
    fn rows_by_channel<'a>(&self, out: &'a mut [f32]) -> Vec<Vec<&'a mut [f32]>> {
        let mut by_channel: Vec<Vec<&mut [f32]>> =
            (0..self.c).map(|_| Vec::with_capacity(self.n)).collect();
        if self.l > 0 {
            for (i, row) in out.chunks_mut(self.l).enumerate() {
                by_channel[i % self.c].push(row);
            }
        }
        by_channel
    }

    /// Fills a channel's output `rows` by `f(out, a, b)` from its inputs as
    /// [`Dims::channel`] gave them (`b` may be empty: then `f` gets an
    /// empty slice): run by run, or, for gathered channels, into one buffer
    /// copied out to the rows.
    fn write_rows(
        &self,
        rows: &mut [&mut [f32]],
        a: &[&[f32]],
        b: &[&[f32]],
        f: impl Fn(&mut [f32], &[f32], &[f32]),
    ) {
        let b_at = |i: usize| b.get(i).copied().unwrap_or_default();
        if self.l >= SHORT_RUN {
            for (i, (row, a)) in rows.iter_mut().zip(a).enumerate() {
                f(row, a, b_at(i));
            }
            return;
        }
        let mut out = vec![0.0; self.count()];
        f(&mut out, a[0], b_at(0));
        for (row, values) in rows.iter_mut().zip(out.chunks(self.l.max(1))) {
            row.copy_from_slice(values);
        }
    }
}

/// An error unless `l` is a vector of `len` elements.
/// The next running mean and variance (`[C]` each) and batch count from
/// the running ones and the batch's mean and biased variance (`[C]`
/// views), as lam-core composes them: `running·(1 − m) + batch·m`, each
/// product rounded, the variance's batch term `var·correction` rounded
/// first; the count plus one where given.
pub(crate) fn running(u: &BatchNormRunning) -> Result<(Vec<f32>, Vec<f32>, Option<i32>)> {
    const OP: &str = "batch_norm_running";
    let (count, momentum, correction) = (u.count, u.momentum, u.correction);
    let c = u.running_mean.1.numel();
    let views = [u.running_mean, u.running_var, u.mean, u.var];
    let mut storages: Vec<_> = views.iter().map(|v| v.0).collect();
    storages.extend(count.map(|v| v.0));
    let locks = ReadLocks::new(OP, &storages)?;
    let mut read = Vec::with_capacity(4);
    for (i, (_, l)) in views.iter().enumerate() {
        vector(OP, l, c)?;
        read.push(gather(locks.f32(i, l)?, l)?);
    }
    let keep = 1.0 - momentum;
    let blend = |running: &[f32], batch: &[f32]| -> Vec<f32> {
        let terms = running.iter().zip(batch);
        terms.map(|(&r, &b)| r * keep + b * momentum).collect()
    };
    let unbiased: Vec<f32> = read[3].iter().map(|&v| v * correction).collect();
    let next_mean = blend(&read[0], &read[2]);
    let next_var = blend(&read[1], &unbiased);
    let next_count = match count {
        Some((_, l)) => {
            if l.numel() != 1 {
                return Err(Error::shape(OP, "a count of one element", &l.shape));
            }
            let n = gather(locks.i32(4, l)?, l)?[0];
            Some(n.wrapping_add(1))
        }
        None => None,
    };
    Ok((next_mean, next_var, next_count))
}

fn vector(op: &'static str, l: &Layout, len: usize) -> Result<()> {
    if l.shape[..] != [len] {
        return Err(Error::shape(op, format!("a vector of {len}"), &l.shape));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use lam_core::{Backend, Layout};

    use crate::test_util::*;

    /// `(y, mean, var, dx, dw, db)` in f64 on the host.
    #[allow(clippy::type_complexity)]
    fn host(
        x: &[f32],
        w: &[f32],
        b: &[f32],
        g: &[f32],
        [n, c, l]: [usize; 3],
        eps: f64,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
        let at = |i: usize, ch: usize, j: usize| i * c * l + ch * l + j;
        let m = (n * l) as f64;
        let (mut y, mut dx) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        let (mut means, mut vars, mut dw, mut db) = (vec![], vec![], vec![], vec![]);
        for ch in 0..c {
            let idx: Vec<usize> = (0..n)
                .flat_map(|i| (0..l).map(move |j| at(i, ch, j)))
                .collect();
            let mean = idx.iter().map(|&k| x[k] as f64).sum::<f64>() / m;
            let var = idx
                .iter()
                .map(|&k| (x[k] as f64 - mean).powi(2))
                .sum::<f64>()
                / m;
            let s = 1.0 / (var + eps).sqrt();
            let xh = |k: usize| (x[k] as f64 - mean) * s;
            let sum_g: f64 = idx.iter().map(|&k| g[k] as f64).sum();
            let sum_gx: f64 = idx.iter().map(|&k| g[k] as f64 * xh(k)).sum();
            for &k in &idx {
                y[k] = (xh(k) * w[ch] as f64 + b[ch] as f64) as f32;
                dx[k] = (w[ch] as f64 * s * (g[k] as f64 - sum_g / m - xh(k) * sum_gx / m)) as f32;
            }
            means.push(mean as f32);
            vars.push(var as f32);
            dw.push(sum_gx as f32);
            db.push(sum_g as f32);
        }
        (y, means, vars, dx, dw, db)
    }

    #[test]
    fn batch_norm_and_its_gradient_match_the_formulas() {
        let be = backend();
        for (k, shape) in [[4, 3, 300], [5, 2, 1], [1, 3, 7], [2, 70, 3]]
            .into_iter()
            .enumerate()
        {
            let [n, c, l] = shape;
            let seed = 10 * k as u64;
            let xv: Vec<f32> = values(n * c * l, seed + 1)
                .iter()
                .map(|v| 20.0 + 4.0 * v)
                .collect();
            let (wv, bv, gv) = (
                values(c, seed + 2),
                values(c, seed + 3),
                values(n * c * l, seed + 4),
            );
            let (x, xl) = f32s(&xv, &shape);
            let (w, wl) = f32s(&wv, &[c]);
            let (b, bl) = f32s(&bv, &[c]);
            let (g, gl) = f32s(&gv, &shape);
            let (y, stats) = be
                .fused_batch_norm((&x, &xl), Some((&w, &wl)), Some((&b, &bl)), 1e-5)
                .unwrap()
                .unwrap();
            let (hy, hm, hv, hdx, hdw, hdb) = host(&xv, &wv, &bv, &gv, shape, 1e-5);
            assert_close(&read(&y, &shape), &hy, 1e-5);
            let stats = read(&stats, &[3, c]);
            assert_close(&stats[..c], &hm, 1e-6);
            assert_close(&stats[c..2 * c], &hv, 1e-5);
            let sl = Layout::contiguous(&[3, c]);
            let row = |r: usize| sl.narrow(0, r, 1).unwrap().squeeze(0);
            let (mean_l, invstd_l) = (row(0), row(2));
            let stats_s = be.from_f32(&stats).unwrap();
            let (dx, dw, db) = be
                .fused_batch_norm_grad(
                    (&g, &gl),
                    (&x, &xl),
                    (&stats_s, &mean_l),
                    (&stats_s, &invstd_l),
                    Some((&w, &wl)),
                )
                .unwrap()
                .unwrap();
            assert_close(&read(&dx, &shape), &hdx, 1e-4);
            assert_close(&read(&dw, &[c]), &hdw, 1e-4);
            assert_close(&read(&db, &[c]), &hdb, 1e-5);
        }
    }

    #[test]
    fn a_constant_channel_normalizes_to_zero_and_nan_stays_in_its_channel() {
        let be = backend();
        // [2, 3, 5]: channel 0 constant 1000.1, channel 1 holds a NaN.
        let mut xv = values(30, 7);
        for i in 0..2 {
            for j in 0..5 {
                xv[i * 15 + j] = 1000.1;
            }
        }
        xv[15 + 5 + 2] = f32::NAN;
        let (x, xl) = f32s(&xv, &[2, 3, 5]);
        let (y, stats) = be
            .fused_batch_norm((&x, &xl), None, None, 1e-5)
            .unwrap()
            .unwrap();
        let y = read(&y, &[30]);
        let stats = read(&stats, &[9]);
        assert_eq!((stats[0], stats[3]), (1000.1, 0.0));
        for i in 0..2 {
            assert!(y[i * 15..i * 15 + 5].iter().all(|&v| v == 0.0), "{y:?}");
            assert!(
                y[i * 15 + 5..i * 15 + 10].iter().all(|v| v.is_nan()),
                "{y:?}"
            );
            assert!(
                y[i * 15 + 10..i * 15 + 15].iter().all(|v| v.is_finite()),
                "{y:?}"
            );
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        let be = backend();
        let (x, xl) = f32s(&[1.0; 6], &[2, 3]);
        assert!(be.fused_batch_norm((&x, &xl), None, None, 1e-5).is_err());
        let (x, xl) = f32s(&[1.0; 6], &[2, 3, 1]);
        let (w, wl) = f32s(&[1.0; 2], &[2]);
        assert!(be
            .fused_batch_norm((&x, &xl), Some((&w, &wl)), None, 1e-5)
            .is_err());
    }
}
