//! The view-fuzz harness: random views of known values, and the check that
//! an op gives on them what it gives on fresh contiguous copies of the same
//! values, on the same device.
//!
//! An input is made by a random recipe of view ops over a random base —
//! `get`, `narrow` (inner and outer dims), `permute`, `expand` (stride 0,
//! including new leading dims), `split`/`chunk` pieces and reshapes of
//! offset buffers — nested a few levels deep, so an op sees offsets, gaps,
//! transposes, broadcasts and size-1 dims in every combination. The values
//! the view holds are read back and uploaded again as the reference input,
//! so a backend or `lam-core` path that ignores any part of a layout (an
//! offset, a stride, a zero stride) gives a different answer and the case
//! fails with the recipe that broke it. Gradients are compared too: each
//! float input is a leaf with the view's layout, so backward passes meet
//! the same layouts.

use lam::prelude::*;
use lam::DType;

/// A small, seeded generator (SplitMix64): cases are reproducible from the
/// seed printed with a failure.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    pub fn chance(&mut self, p: f32) -> bool {
        self.unit() < p
    }

    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }

    /// A dim size: mostly small and odd, sometimes 1.
    pub fn size(&mut self) -> usize {
        self.pick(&[1, 1, 2, 3, 3, 4, 5, 7])
    }

    /// A shape of rank `lo..=hi`.
    pub fn shape(&mut self, lo: usize, hi: usize) -> Vec<usize> {
        let rank = lo + self.below(hi - lo + 1);
        (0..rank).map(|_| self.size()).collect()
    }
}

/// What values an input holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Values {
    /// Standard normal, scaled.
    Normal(f32),
    /// In `[0.1, 2.1)`: for log, sqrt, pow, recip.
    Positive,
    /// `I32` in `0..n`: indices and class targets.
    Index(usize),
}

/// One input of a case: its logical shape and values.
#[derive(Debug, Clone)]
pub struct Input {
    pub shape: Vec<usize>,
    pub values: Values,
}

pub fn normal(shape: &[usize]) -> Input {
    Input {
        shape: shape.to_vec(),
        values: Values::Normal(1.0),
    }
}

pub fn positive(shape: &[usize]) -> Input {
    Input {
        shape: shape.to_vec(),
        values: Values::Positive,
    }
}

pub fn index(shape: &[usize], below: usize) -> Input {
    Input {
        shape: shape.to_vec(),
        values: Values::Index(below),
    }
}

type Op = Box<dyn Fn(&[Tensor]) -> lam::Result<Vec<Tensor>>>;

/// One op applied to inputs: `run` maps the input tensors to outputs.
pub struct Case {
    pub name: String,
    pub inputs: Vec<Input>,
    pub run: Op,
    /// Also compare gradients of the float inputs.
    pub grad: bool,
    /// Relative tolerance (0 demands equal results).
    pub tol: f32,
}

impl Case {
    pub fn new(
        name: impl Into<String>,
        inputs: Vec<Input>,
        run: impl Fn(&[Tensor]) -> lam::Result<Vec<Tensor>> + 'static,
    ) -> Case {
        Case {
            name: name.into(),
            inputs,
            run: Box::new(run),
            grad: true,
            tol: 1e-6,
        }
    }

    /// A case whose op has no gradient (integer or mask outputs).
    pub fn no_grad(mut self) -> Case {
        self.grad = false;
        self
    }

    /// A case whose results may differ in rounding between layouts (sums
    /// taken in another order, a matrix product on another kernel path).
    pub fn tol(mut self, tol: f32) -> Case {
        self.tol = tol;
        self
    }
}

/// Host values for `values`, `n` of them.
fn draw(rng: &mut Rng, values: Values, n: usize) -> Host {
    match values {
        Values::Normal(scale) => Host::F32(
            (0..n)
                .map(|_| {
                    // Box–Muller from two uniforms.
                    let (u, v) = (rng.unit().max(1e-7), rng.unit());
                    scale * (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
                })
                .collect(),
        ),
        Values::Positive => Host::F32((0..n).map(|_| 0.1 + 2.0 * rng.unit()).collect()),
        Values::Index(k) => Host::I32((0..n).map(|_| rng.below(k.max(1)) as i32).collect()),
    }
}

enum Host {
    F32(Vec<f32>),
    I32(Vec<i32>),
}

fn upload(host: Host, shape: &[usize], dev: &Device) -> lam::Result<Tensor> {
    match host {
        Host::F32(v) => Tensor::from_vec(v, shape, dev),
        Host::I32(v) => Tensor::from_vec_i32(v, shape, dev),
    }
}

/// A tensor of `shape` with values drawn from `values`, reached by a random
/// recipe of view ops `depth` levels deep; the recipe is appended to `how`.
pub fn random_view(
    rng: &mut Rng,
    dev: &Device,
    shape: &[usize],
    values: Values,
    depth: usize,
    how: &mut String,
) -> lam::Result<Tensor> {
    let rank = shape.len();
    let kind = if depth == 0 { 0 } else { rng.below(7) };
    let base = |rng: &mut Rng, how: &mut String, s: &[usize]| {
        random_view(rng, dev, s, values, depth - 1, how)
    };
    let t = match kind {
        // A fresh buffer.
        0 => {
            how.push_str(&format!("fresh{shape:?}"));
            upload(draw(rng, values, shape.iter().product()), shape, dev)?
        }
        // Row i of a stack: an offset into a bigger buffer.
        1 => {
            let k = 1 + rng.below(3);
            let i = rng.below(k);
            let mut s = vec![k];
            s.extend_from_slice(shape);
            let b = base(rng, how, &s)?;
            how.push_str(&format!(".get({i})"));
            b.get(i)?
        }
        // A window of a longer dim: offset and a gap between rows.
        2 if rank > 0 => {
            let d = rng.below(rank);
            let (before, after) = (rng.below(3), rng.below(3));
            let mut s = shape.to_vec();
            s[d] += before + after;
            let b = base(rng, how, &s)?;
            how.push_str(&format!(".narrow({d}, {before}, {})", shape[d]));
            b.narrow(d as isize, before, shape[d])?
        }
        // A permutation of another layout.
        3 if rank > 1 => {
            let mut perm: Vec<usize> = (0..rank).collect();
            for i in (1..rank).rev() {
                perm.swap(i, rng.below(i + 1));
            }
            // view = base.permute(perm) has shape[i] = base_shape[perm[i]].
            let mut s = vec![0; rank];
            for (i, &p) in perm.iter().enumerate() {
                s[p] = shape[i];
            }
            let b = base(rng, how, &s)?;
            how.push_str(&format!(".permute({perm:?})"));
            b.permute(&perm)?
        }
        // A broadcast: some dims (and maybe leading ones) repeat one element.
        4 if rank > 0 => {
            let lead = rng.below(rank.min(2) + 1);
            let s: Vec<usize> = shape[lead..]
                .iter()
                .map(|&d| if rng.chance(0.5) { 1 } else { d })
                .collect();
            let b = base(rng, how, &s)?;
            let target: Vec<isize> = shape.iter().map(|&d| d as isize).collect();
            how.push_str(&format!(".expand({shape:?})"));
            b.expand(&target)?
        }
        // One piece of a split along dim 0.
        5 if rank > 0 => {
            let pieces = 1 + rng.below(3);
            let j = rng.below(pieces);
            let mut s = shape.to_vec();
            s[0] *= pieces;
            let b = base(rng, how, &s)?;
            how.push_str(&format!(".split({}, 0)[{j}]", shape[0].max(1)));
            if shape[0] == 0 {
                b
            } else {
                b.split(shape[0], 0)?[j].clone()
            }
        }
        // A reshape of a flat buffer that starts inside a bigger one.
        6 => {
            let n: usize = shape.iter().product();
            let pad = 1 + rng.below(4);
            let b = base(rng, how, &[n + pad])?;
            let start = rng.below(pad + 1);
            how.push_str(&format!(".narrow(0, {start}, {n}).reshape({shape:?})"));
            b.narrow(0, start, n)?.reshape_exact(shape)?
        }
        _ => {
            how.push_str(&format!("fresh{shape:?}"));
            upload(draw(rng, values, shape.iter().product()), shape, dev)?
        }
    };
    debug_assert_eq!(t.dims(), shape);
    Ok(t)
}

/// A fresh contiguous copy of `t`'s values.
fn fresh_copy(t: &Tensor) -> lam::Result<Tensor> {
    match t.dtype() {
        DType::F32 => Tensor::from_vec(t.to_vec()?, t.dims(), &t.device()),
        DType::I32 => Tensor::from_vec_i32(t.to_vec_i32()?, t.dims(), &t.device()),
        DType::F16 => Tensor::from_f16(&t.to_vec_f16()?, t.dims(), &t.device()),
    }
}

/// Runs `case` once on random views and once on fresh copies; panics with
/// the recipes on any difference.
pub fn check(rng: &mut Rng, dev: &Device, case: &Case) -> lam::Result<()> {
    let mut recipes = Vec::new();
    let mut views = Vec::new();
    let mut copies = Vec::new();
    for input in &case.inputs {
        let mut how = String::new();
        let depth = 1 + rng.below(3);
        let v = random_view(rng, dev, &input.shape, input.values, depth, &mut how)?;
        let c = fresh_copy(&v)?;
        let grad = case.grad && v.dtype() == DType::F32;
        // A leaf with the view's own layout (detach keeps it), so gradients
        // flow into a strided, offset tensor.
        views.push(if grad {
            v.detach().requires_grad_()?
        } else {
            v
        });
        copies.push(if grad { c.requires_grad_()? } else { c });
        recipes.push(how);
    }
    let what = || format!("{} on {dev}, inputs {recipes:?}", case.name);
    let (got, want) = ((case.run)(&views), (case.run)(&copies));
    let (got, want) = match (got, want) {
        (Ok(g), Ok(w)) => (g, w),
        (Err(_), Err(_)) => return Ok(()),
        (g, w) => panic!(
            "{}: on views {:?}, on copies {:?}",
            what(),
            g.map(|_| "Ok"),
            w.map(|_| "Ok")
        ),
    };
    assert_eq!(got.len(), want.len(), "{}", what());
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.dims(), w.dims(), "{}: output {k} shape", what());
        assert_eq!(g.dtype(), w.dtype(), "{}: output {k} dtype", what());
        compare(&format!("{} output {k}", what()), g, w, case.tol)?;
    }
    if case.grad {
        backward(&got)?;
        backward(&want)?;
        for (k, (v, c)) in views.iter().zip(&copies).enumerate() {
            if !v.requires_grad() {
                continue;
            }
            match (v.grad(), c.grad()) {
                (Some(g), Some(w)) => compare(
                    &format!("{} gradient of input {k}", what()),
                    &g,
                    &w,
                    case.tol,
                )?,
                (None, None) => {}
                (g, _) => panic!(
                    "{}: input {k} has a gradient on the {} only",
                    what(),
                    if g.is_some() { "view" } else { "copy" }
                ),
            }
        }
    }
    Ok(())
}

/// Backward from every float output that requires grad, each weighted by a
/// fixed pattern so every element's gradient path counts.
fn backward(outs: &[Tensor]) -> lam::Result<()> {
    let mut total: Option<Tensor> = None;
    for o in outs.iter().filter(|o| o.requires_grad()) {
        let n = o.numel();
        let w: Vec<f32> = (0..n).map(|i| 0.5 + (i % 7) as f32 * 0.25).collect();
        let w = Tensor::from_vec(w, o.dims(), &o.device())?;
        let term = o.mul(&w)?.sum_all()?;
        total = Some(match total {
            Some(t) => t.add(&term)?,
            None => term,
        });
    }
    match total {
        Some(t) => t.backward(),
        None => Ok(()),
    }
}

fn compare(what: &str, got: &Tensor, want: &Tensor, tol: f32) -> lam::Result<()> {
    let (g, w) = (got.to_vec()?, want.to_vec()?);
    for (i, (&a, &b)) in g.iter().zip(&w).enumerate() {
        let same = a == b || (a.is_nan() && b.is_nan());
        let close = (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()));
        assert!(
            same || close,
            "{what}: element {i} is {a} on views, {b} on copies\nviews:  {g:?}\ncopies: {w:?}"
        );
    }
    Ok(())
}
