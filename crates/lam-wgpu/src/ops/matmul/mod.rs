//! Batched matrix product: `[B, M, K] x [B, K, N] -> [B, M, N]` with any
//! strides, so transposes and broadcast batches (stride 0) are folded into
//! the kernels' loads rather than copied.
//!
//! Seven kernels ([`MatmulKernel`]) compute it, and two more run one of
//! them on slices of K:
//! - `Tile64` (matmul.wgsl): 64 x 64 tiles, every shape and view;
//! - `Tile32` (matmul_small.wgsl): 32 x 32 tiles, every shape and view,
//!   four times the workgroups, for products of few tiles (the autotuner's
//!   pick only);
//! - `Tile128` (matmul_large.wgsl): 128 x 128 tiles, 8 x 8 per thread, for
//!   products whose sizes are multiples of 128 (16 along K) with vec4-loadable
//!   operands;
//! - `Tile128x64` (matmul_large.wgsl's `NARROW`): 128 x 64 tiles, 8 x 4 per
//!   thread, for products whose M is a multiple of 128 and N of 64, with
//!   `Tile128`'s operands: twice `Tile128`'s workgroups for products of few
//!   columns (the autotuner's pick only);
//! - `Subgroup` (matmul_subgroup.wgsl): `Tile64` sharing A through subgroup
//!   shuffles, where the device has `SUBGROUP`;
//! - `Coop` and `Coop128` (matmul_coop.wgsl, 64 x 64 or 128 x 128 tiles):
//!   f16 x f16 + f32 cooperative matrices (tensor cores), for products of
//!   two `F16` operands, and of `F32` ones on devices opened with
//!   [`MatmulPrecision::High`];
//! - `SplitK64` and `SplitK128` (`split.rs`, matmul_split.wgsl): `Tile64`
//!   or `Tile128` on slices of K as a batch, their sums added by a second
//!   kernel, for unbatched products of few tiles along a long K.
//!
//! Which one runs is decided per product in `choice.rs` (a forced kernel,
//! the autotuned choice for the shape class, or a size rule); `autotune.rs`
//! times the candidates and `cache.rs` keeps the choices on disk; `coop.rs`
//! decides whether the cooperative kernel can run and checks it once per
//! device; `dispatch.rs` records a product on the chosen kernel. Each
//! kernel has a variant per load mode (`variant.rs`): for each operand, vec4
//! loads along whichever dim has stride 1 when the alignment allows, scalar
//! loads otherwise ([`MatmulVariant`]).
//!
//! Every kernel also reads `F16` operands directly (the `HALF` pipeline
//! constant): halves are widened exactly to f32 as they are loaded, the sums
//! accumulate in f32, and for [`matmul_f16`] the kernels round each sum to
//! `F16` as they write it (the `HALF_OUT` constant, a thread writing a
//! word's two halves; a product with an odd N writes f32 sums that the
//! cast kernel rounds). Against casting
//! both operands to f32 first and the result back, that reads half the
//! operand bytes, writes half the output bytes and saves three passes.
//! Products of two `F16` operands have autotune classes of their own,
//! since the cooperative kernels may take them at any precision. Autocast's `Linear` ([`linear_f16`])
//! runs the same kernels on `F16` operands with an `F32` bias, their
//! epilogue rounding each sum to f16 before the bias and ReLU. A product
//! of one `F16` and one `F32` operand (the `A_HALF` or `B_HALF` constant)
//! widens the halves alike; [`matmul_widening`] runs those, and products
//! of halves kept as f32 sums, for autocast's convolution.

mod autotune;
mod cache;
mod choice;
mod coop;
mod dispatch;
mod halves;
mod split;
mod variant;

use std::sync::Arc;

use lam_core::backend::{LinearActivation, View};
use lam_core::{DType, Error, Layout, Result, Storage};

use super::copy::cast;
use super::{input, output};
use crate::context::Gpu;
use crate::params::{to_u32, MatmulParams};
use crate::storage::GpuStorage;
use dispatch::{launch, launch_into};
use variant::{batched, fits_large, fits_narrow};

pub use autotune::autotune_matmul;
pub(crate) use choice::MatmulState;
pub use choice::{
    matmul_kernel_for, matmul_kernels, matmul_widens_halves_by_hardware, MatmulKernel,
    MatmulOptions, MatmulPrecision,
};
pub(crate) use variant::{variant, MatmulVariant};

const TILE: usize = 64;
const TK: usize = 16;
/// Tile side of matmul_small.wgsl.
const SMALL_TILE: usize = 32;
/// Tile side of matmul_large.wgsl.
const LARGE_TILE: usize = 128;
/// Columns of matmul_large.wgsl's tiles when `NARROW` (`Tile128x64`).
const NARROW_TILE: usize = 64;
/// Workgroup memory of matmul_large.wgsl: two buffers of a 16-deep slab
/// of A and of B, 128 f32 wide.
const LARGE_WORKGROUP_BYTES: u32 = 2 * 2 * (TK as u32) * 128 * 4;
const GRID_MAX: usize = 65_535;

/// The device features the matmul kernels allowed by `options` can use; a
/// device is opened with those its adapter offers. The cooperative
/// kernels' features are asked for at every precision, since products of
/// two `F16` operands (mixed precision) may always use them, unless the
/// options turn them off.
pub(crate) fn features(options: &MatmulOptions) -> wgpu::Features {
    if options.wants_cooperative() {
        wgpu::Features::SUBGROUP | coop::FEATURES
    } else {
        wgpu::Features::SUBGROUP
    }
}

/// `lhs [B, M, K] x rhs [B, K, N]` (rank 2 means B = 1).
pub(crate) fn matmul(gpu: &Arc<Gpu>, lhs: View, rhs: View) -> Result<Storage> {
    expect_operands("matmul", [&lhs, &rhs], operand_dtype(&lhs))?;
    product(gpu, lhs, rhs, None, LinearActivation::Identity, None)
}

/// [`matmul`] of operands each `F32` or `F16`, as the `F32` sums, never
/// rounded to f16: halves are widened exactly as they are loaded (the
/// kernels' `A_HALF`, `B_HALF` or `HALF` constant), so the sums are those
/// of the `f32` product of `F32` copies, on the same kernel. Autocast's
/// convolution multiplies its `F16` columns and weight by its output
/// gradient (`F16` or `F32`) this way, and adds its bias to the sums.
pub(crate) fn matmul_widening(gpu: &Arc<Gpu>, lhs: View, rhs: View) -> Result<Storage> {
    let mut job = prepare(gpu, lhs, rhs, None, LinearActivation::Identity, DType::F32)?;
    // The f32 sums themselves, even of two halves.
    job.epilogue &= !ROUND_HALF;
    if !job.empty {
        run(gpu, &job, None)?;
    }
    Ok(job.out.into_storage())
}

/// The product of two `F16` views, as `to`: the kernels read the halves,
/// sum in f32 and round each sum to f16 as they write it (bit 2 of the
/// epilogue), as halves (HALF_OUT, a thread writing both halves of a
/// word) or for `to` `F32` widened back. Where a row has an odd length two
/// threads would share a word, so an `F16` result is written widened and
/// the cast kernel rounds it (exactly: it already is a half).
pub(crate) fn matmul_f16(gpu: &Arc<Gpu>, lhs: View, rhs: View, to: DType) -> Result<Storage> {
    const OP: &str = "matmul_f16";
    expect_operands(OP, [&lhs, &rhs], DType::F16)?;
    if to != DType::F32 && to != DType::F16 {
        return Err(Error::DTypeMismatch {
            op: OP,
            expected: DType::F16,
            found: to,
        });
    }
    let even = batched(rhs.1).is_ok_and(|b| b[2].is_multiple_of(2));
    let out = if even { to } else { DType::F32 };
    let job = prepare(gpu, lhs, rhs, None, LinearActivation::Identity, out)?;
    let numel = [job.p.batch, job.p.m, job.p.n]
        .iter()
        .map(|&d| d as usize)
        .product::<usize>();
    if job.empty {
        return Ok(output(gpu, "matmul", 0, to)?.into_storage());
    }
    run(gpu, &job, None)?;
    let sums = job.out.into_storage();
    if out == to {
        return Ok(sums);
    }
    cast(gpu, (&sums, &Layout::contiguous(&[numel])), to)
}

/// `act(input [M, K] x weight [K, N] + bias [N])`, the bias and activation
/// applied by the kernel as it writes the output. `None` when the bias is
/// not a unit-stride vector (the caller then composes the ops).
pub(crate) fn linear(
    gpu: &Arc<Gpu>,
    input: View,
    weight: View,
    bias: Option<View>,
    act: LinearActivation,
) -> Result<Option<Storage>> {
    if bias.is_some_and(|(_, l)| !unit_stride_vector(l)) {
        return Ok(None);
    }
    expect_operands("fused_linear", [&input, &weight], DType::F32)?;
    input.1.expect_rank("fused_linear", "input [M, K]", 2)?;
    weight.1.expect_rank("fused_linear", "weight [K, N]", 2)?;
    product(gpu, input, weight, bias, act, None).map(Some)
}

/// `act(f32(f16(input [M, K] x weight [K, N])) + bias [N])` for `F16`
/// operands and an `F32` bias, as `F32`: autocast's `Linear`. The kernels
/// read the halves and sum in f32, and their epilogue (bit 2 of EPILOGUE)
/// rounds each sum to f16 with the cast kernel's integer code before the
/// bias and activation, so the output is bit for bit what the cast, the
/// add and the ReLU kernels would make of [`matmul_f16`]'s product; with
/// `to` `F16`, that rounded to `F16` once more as it is written (an odd N
/// takes the F32 output and the cast kernel). `None` when the bias is not a
/// unit-stride vector (the caller then composes the ops).
pub(crate) fn linear_f16(
    gpu: &Arc<Gpu>,
    input: View,
    weight: View,
    bias: View,
    act: LinearActivation,
    to: DType,
) -> Result<Option<Storage>> {
    const OP: &str = "fused_linear_f16";
    if !unit_stride_vector(bias.1) {
        return Ok(None);
    }
    expect_operands(OP, [&input, &weight], DType::F16)?;
    input.1.expect_rank(OP, "input [M, K]", 2)?;
    weight.1.expect_rank(OP, "weight [K, N]", 2)?;
    if to != DType::F32 && to != DType::F16 {
        return Err(Error::DTypeMismatch {
            op: OP,
            expected: DType::F16,
            found: to,
        });
    }
    let n = weight.1.shape[1];
    let out = if n.is_multiple_of(2) { to } else { DType::F32 };
    let job = prepare(gpu, input, weight, Some(bias), act, out)?;
    if !job.empty {
        run(gpu, &job, None)?;
    }
    let y = job.out.into_storage();
    if out == to {
        return Ok(Some(y));
    }
    let numel = input.1.shape[0] * n;
    cast(gpu, (&y, &Layout::contiguous(&[numel])), to).map(Some)
}

/// True for a rank-1 view the epilogue can index as `bias[offset + col]`.
fn unit_stride_vector(l: &Layout) -> bool {
    l.rank() == 1 && (l.shape[0] <= 1 || l.strides[0] == 1)
}

/// `F16` for an `F16` view, else `F32` (which [`prepare`] then checks).
fn operand_dtype(v: &View) -> DType {
    match v.0.dtype() {
        DType::F16 => DType::F16,
        _ => DType::F32,
    }
}

/// An error naming `op` unless both operands are of `dtype`.
fn expect_operands(op: &'static str, views: [&View; 2], dtype: DType) -> Result<()> {
    match views.iter().find(|v| v.0.dtype() != dtype) {
        Some(v) => Err(Error::DTypeMismatch {
            op,
            expected: dtype,
            found: v.0.dtype(),
        }),
        None => Ok(()),
    }
}

/// Bit 2 of the epilogue (lib/matmul_io.wgsl): each f32 sum rounded to
/// f16 (and widened back for an f32 output) as it is written.
const ROUND_HALF: u32 = 4;

/// One product, checked and packed, ready to be launched on any kernel.
pub(crate) struct Job<'a> {
    a: &'a GpuStorage,
    b: &'a GpuStorage,
    bias: Option<&'a GpuStorage>,
    out: GpuStorage,
    p: MatmulParams,
    v: MatmulVariant,
    epilogue: u32,
    /// Which operands (A, B) are `F16` (the kernels' `HALF` constant for
    /// both, `A_HALF` or `B_HALF` for one).
    halves: [bool; 2],
    /// The output is `F16` (the kernels' `HALF_OUT` constant; N is even).
    half_out: bool,
    /// Whether the kernels widen halves by hardware (`HALF_HW`): `None`,
    /// as the device's check found (`halves.rs`); the check's own products
    /// set it.
    half_hw: Option<bool>,
    /// No output elements: nothing to launch.
    empty: bool,
}

impl Job<'_> {
    /// Both operands are `F16`: rounding them to f16 (the cooperative
    /// kernels' inputs) is exact.
    pub(crate) fn exact_f16(&self) -> bool {
        self.halves == [true, true]
    }
}

/// The product with the optional bias and activation epilogue, on `kernel`
/// when given (it must be able to run this product), else on the kernel
/// `choice.rs` picks.
fn product(
    gpu: &Arc<Gpu>,
    lhs: View,
    rhs: View,
    bias: Option<View>,
    act: LinearActivation,
    kernel: Option<MatmulKernel>,
) -> Result<Storage> {
    let job = prepare(gpu, lhs, rhs, bias, act, DType::F32)?;
    if !job.empty {
        run(gpu, &job, kernel)?;
    }
    Ok(job.out.into_storage())
}

/// Launches `job` (not empty) on `kernel`, or on the kernel `choice.rs` picks.
fn run(gpu: &Arc<Gpu>, job: &Job, kernel: Option<MatmulKernel>) -> Result<()> {
    // Before any kernel choice, so autotuning times the kernels as they
    // will run.
    halves::decide(gpu, job)?;
    let kernel = match kernel {
        Some(k) => k,
        None => choice::choose(gpu, job)?,
    };
    launch(gpu, job, kernel)
}

/// Checks the operands, packs the parameters and allocates the output, of
/// dtype `out` (`F16` only for products of halves with an even N).
fn prepare<'a>(
    gpu: &Arc<Gpu>,
    lhs: View<'a>,
    rhs: View<'a>,
    bias: Option<View<'a>>,
    act: LinearActivation,
    out: DType,
) -> Result<Job<'a>> {
    // Each operand F32 or F16 (the entry points say which mixes they
    // take). The sums of a product of halves (both F16) are rounded to f16
    // as they are written (ROUND_HALF): before the bias of autocast's
    // Linear (`linear_f16`), and before an F32 output of `matmul_f16`; for
    // an F16 output the rounding is then exact. `matmul_widening` keeps the
    // f32 sums.
    let (dtype, b_dtype) = (operand_dtype(&lhs), operand_dtype(&rhs));
    let (a, la) = input(gpu, "matmul", lhs, Some(dtype))?;
    let (b, lb) = input(gpu, "matmul", rhs, Some(b_dtype))?;
    let [ba, m, k, a_sb, a_sm, a_sk] = batched(la)?;
    let [bb, k2, n, b_sb, b_sk, b_sn] = batched(lb)?;
    if k != k2 || (ba != bb && ba != 1 && bb != 1) {
        return Err(Error::shape(
            "matmul",
            format!("[{ba}, {k}, N] to multiply [{ba}, {m}, {k}]"),
            &lb.shape,
        ));
    }
    let batch = ba.max(bb);
    let numel = batch
        .checked_mul(m)
        .and_then(|x| x.checked_mul(n))
        .ok_or(Error::TooLarge {
            op: "matmul",
            bytes: u64::MAX,
            limit: gpu.limits.max_binding,
        })?;
    let half_out = out == DType::F16;
    if half_out && (dtype != DType::F16 || !n.is_multiple_of(2)) {
        return Err(Error::invalid(
            "matmul",
            format!("F16 output of a {dtype} product with {n} columns"),
        ));
    }
    let out = output(gpu, "matmul", numel, out)?;
    let bias = match bias {
        None => None,
        Some(view) => {
            let (s, l) = input(gpu, "fused_linear", view, Some(DType::F32))?;
            if l.shape != [n] {
                return Err(Error::shape(
                    "fused_linear",
                    format!("a bias of shape [{n}]"),
                    &l.shape,
                ));
            }
            Some((s, l.offset))
        }
    };
    let round_half = dtype == DType::F16 && b_dtype == DType::F16;
    let epilogue = u32::from(bias.is_some())
        | if act == LinearActivation::Relu { 2 } else { 0 }
        | if round_half { ROUND_HALF } else { 0 };
    // A batch of one repeats for every batch (stride 0).
    let a_sb = if ba == 1 { 0 } else { a_sb };
    let b_sb = if bb == 1 { 0 } else { b_sb };
    let p = MatmulParams {
        m: to_u32("matmul", m)?,
        n: to_u32("matmul", n)?,
        k: to_u32("matmul", k)?,
        batch: to_u32("matmul", batch)?,
        a_offset: to_u32("matmul", la.offset)?,
        a_sb: to_u32("matmul", a_sb)?,
        a_sm: to_u32("matmul", a_sm)?,
        a_sk: to_u32("matmul", a_sk)?,
        b_offset: to_u32("matmul", lb.offset)?,
        b_sb: to_u32("matmul", b_sb)?,
        b_sk: to_u32("matmul", b_sk)?,
        b_sn: to_u32("matmul", b_sn)?,
        bias_offset: to_u32("matmul", bias.map_or(0, |(_, o)| o))?,
        _pad: [0; 3],
    };
    Ok(Job {
        a,
        b,
        bias: bias.map(|(s, _)| s),
        out,
        v: variant(&p),
        p,
        epilogue,
        halves: [dtype == DType::F16, b_dtype == DType::F16],
        half_out,
        half_hw: None,
        empty: numel == 0,
    })
}
