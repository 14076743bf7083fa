//! Which kernel runs a product: the public settings ([`MatmulKernel`],
//! [`MatmulPrecision`], [`MatmulOptions`]), what each device can run
//! ([`MatmulState`], decided when it is opened), and the choice per product.
//!
//! The order of the choice: a kernel forced by the options (where it can
//! run the product); else, with autotuning on, the kernel measured fastest
//! for the product's shape class (timed on its first product, or by
//! [`crate::autotune_matmul`], and kept on disk); else a size rule: the
//! cooperative kernel when the precision allows it, `Tile128` for large
//! aligned products, `Tile64` otherwise.
//!
//! The cooperative kernels round their inputs to f16. For a product of two
//! `F16` operands that rounding is exact, so they may take it at any
//! precision, as PyTorch's autocast products run on tensor cores whatever
//! `torch.set_float32_matmul_precision` says; a product with an `F32`
//! operand needs [`MatmulPrecision::High`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use lam_core::{DType, Device, Error, Result};

use super::{
    autotune, cache, coop, fits_large, fits_narrow, split, variant, Job, LARGE_TILE,
    LARGE_WORKGROUP_BYTES,
};
use crate::context::{lock, Gpu};
use crate::params::MatmulParams;

/// A matmul kernel of the WebGPU backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatmulKernel {
    /// 64 x 64 tiles, 4 x 4 per thread: every shape and view (matmul.wgsl).
    Tile64,
    /// 128 x 128 tiles, 8 x 8 per thread: sizes multiples of 128 (16 along
    /// K) with vec4-loadable operands only (matmul_large.wgsl); other
    /// products fall back to `Tile64` even when this kernel is forced.
    Tile128,
    /// `Tile128` on 128 x 64 tiles, 8 x 4 per thread: M a multiple of 128
    /// and N of 64 (matmul_large.wgsl's `NARROW`). Twice `Tile128`'s
    /// workgroups, for products of few columns such as a transformer's
    /// 512-wide projections; only the autotuner (or forcing) picks it.
    Tile128x64,
    /// `Tile64` sharing A's fragments through subgroup shuffles; needs the
    /// adapter's `SUBGROUP` feature (matmul_subgroup.wgsl).
    Subgroup,
    /// Cooperative matrices (tensor cores) on 64 x 64 tiles: f16 inputs, f32
    /// accumulation; needs the adapter's cooperative-matrix feature with
    /// 16 x 16 x 16 f16 → f32 and a single subgroup size (matmul_coop.wgsl). It
    /// takes products of two `F16` operands at any precision, and products
    /// with an `F32` operand under [`MatmulPrecision::High`] only.
    Coop,
    /// `Coop` on 128 x 128 tiles (eight subgroups, 26.5 KiB of workgroup memory):
    /// twice the work per byte loaded, for large products.
    Coop128,
    /// 32 x 32 tiles, 4 x 4 per thread, 64 threads: every shape and view
    /// (matmul_small.wgsl). Four times `Tile64`'s workgroups, for products
    /// of few tiles on large GPUs; only the autotuner (or forcing) picks it.
    Tile32,
    /// Split-K on `Tile64`: K cut into slices run as a batch, their f32
    /// sums added by a second kernel (`split.rs`, matmul_split.wgsl), for
    /// unbatched products of few tiles along a long K (weight gradients);
    /// only the autotuner (or forcing) picks it.
    SplitK64,
    /// Split-K on `Tile128`, for slices it can run.
    SplitK128,
}

impl MatmulKernel {
    /// Every kernel, in the order the autotuner tries them.
    pub const ALL: [MatmulKernel; 9] = [
        MatmulKernel::Tile64,
        MatmulKernel::Tile32,
        MatmulKernel::Tile128,
        MatmulKernel::Tile128x64,
        MatmulKernel::Subgroup,
        MatmulKernel::Coop,
        MatmulKernel::Coop128,
        MatmulKernel::SplitK64,
        MatmulKernel::SplitK128,
    ];

    /// The name used by `LAM_MATMUL_KERNEL`, the autotune cache and lam-bench.
    pub fn name(self) -> &'static str {
        match self {
            MatmulKernel::Tile64 => "tile64",
            MatmulKernel::Tile128 => "tile128",
            MatmulKernel::Tile128x64 => "tile128x64",
            MatmulKernel::Subgroup => "subgroup",
            MatmulKernel::Coop => "coop",
            MatmulKernel::Coop128 => "coop128",
            MatmulKernel::Tile32 => "tile32",
            MatmulKernel::SplitK64 => "splitk64",
            MatmulKernel::SplitK128 => "splitk128",
        }
    }

    /// The kernel called `name` (as [`MatmulKernel::name`] spells it).
    pub fn from_name(name: &str) -> Option<MatmulKernel> {
        MatmulKernel::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// How exactly float32 matmuls must be computed, as PyTorch's
/// `torch.set_float32_matmul_precision`. Products of two `F16` operands
/// (mixed precision) are exact on every kernel, so this does not limit
/// them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum MatmulPrecision {
    /// f32 inputs and accumulation only (the default).
    #[default]
    Highest,
    /// `F32` inputs may be rounded to f16 (11 significant bits, range
    /// ±65504) for cooperative-matrix (tensor-core) kernels, accumulating in
    /// f32.
    High,
}

impl MatmulPrecision {
    /// `highest` or `high`, as `LAM_MATMUL_PRECISION` and lam-bench spell it.
    pub fn from_name(name: &str) -> Option<MatmulPrecision> {
        match name {
            "highest" => Some(MatmulPrecision::Highest),
            "high" => Some(MatmulPrecision::High),
            _ => None,
        }
    }
}

/// Matmul settings of a device, fixed when it is opened
/// ([`crate::GpuOptions::matmul`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatmulOptions {
    /// [`MatmulPrecision::High`] lets f16-input kernels run products of
    /// `F32` operands.
    pub precision: MatmulPrecision,
    /// Run every product on this kernel where it can run it (tests,
    /// benchmarks). Opening fails if the device cannot run it at all.
    pub kernel: Option<MatmulKernel>,
    /// Time the candidate kernels on the first product of each shape class
    /// and keep the fastest. `None`: on, unless `LAM_AUTOTUNE=0`, for GPUs
    /// (CPU adapters such as lavapipe keep the size rule: timing there is
    /// slow and says nothing about a GPU; [`crate::autotune_matmul`] still
    /// tunes them when asked).
    pub autotune: Option<bool>,
    /// Where the autotune cache lives: default `$XDG_CACHE_HOME/lam` or
    /// `~/.cache/lam`; the file is `matmul-<adapter>.json`.
    pub cache_dir: Option<PathBuf>,
    /// Open the device with the adapter's cooperative matrices (tensor
    /// cores) where it has them. `None`: yes, unless
    /// `LAM_MATMUL_COOPERATIVE=0`. The feature is wgpu's experimental
    /// `EXPERIMENTAL_COOPERATIVE_MATRIX` (it compiles the cooperative
    /// kernels, and only them, to the Vulkan memory model); `Some(false)`
    /// keeps the device without it (and without the cooperative kernels).
    pub cooperative: Option<bool>,
}

impl MatmulOptions {
    /// The options `LAM_MATMUL_PRECISION` (`highest`, `high`),
    /// `LAM_MATMUL_KERNEL` (a [`MatmulKernel::name`]) and the older
    /// `LAM_MATMUL_TILES` (`64`, `128`) and `LAM_MATMUL_COOPERATIVE` (`0`,
    /// `1`) ask for; unknown values are reported on stderr and ignored. For
    /// [`crate::default_gpu`].
    pub fn from_env() -> MatmulOptions {
        let var = |name: &str| std::env::var(name).ok().map(|v| v.trim().to_lowercase());
        let mut opts = MatmulOptions::default();
        if let Some(v) = var("LAM_MATMUL_PRECISION") {
            match MatmulPrecision::from_name(&v) {
                Some(p) => opts.precision = p,
                None => eprintln!(
                    "lam-wgpu: ignoring LAM_MATMUL_PRECISION={v:?} (expected highest or high)"
                ),
            }
        }
        let tiles = var("LAM_MATMUL_TILES").and_then(|v| match v.as_str() {
            "64" => Some(MatmulKernel::Tile64),
            "128" => Some(MatmulKernel::Tile128),
            other => {
                eprintln!("lam-wgpu: ignoring LAM_MATMUL_TILES={other:?} (expected 64 or 128)");
                None
            }
        });
        let kernel = var("LAM_MATMUL_KERNEL").and_then(|v| {
            let k = MatmulKernel::from_name(&v);
            if k.is_none() {
                let known: Vec<&str> = MatmulKernel::ALL.iter().map(|k| k.name()).collect();
                eprintln!(
                    "lam-wgpu: ignoring LAM_MATMUL_KERNEL={v:?} (expected one of {})",
                    known.join(", ")
                );
            }
            k
        });
        opts.kernel = kernel.or(tiles);
        opts.cooperative = var("LAM_MATMUL_COOPERATIVE").and_then(|v| match v.as_str() {
            "0" => Some(false),
            "1" => Some(true),
            other => {
                eprintln!("lam-wgpu: ignoring LAM_MATMUL_COOPERATIVE={other:?} (expected 0 or 1)");
                None
            }
        });
        opts
    }

    /// Whether a device opened with these options asks for cooperative
    /// matrices (see [`MatmulOptions::cooperative`]).
    pub(crate) fn wants_cooperative(&self) -> bool {
        self.cooperative.unwrap_or(true)
    }
}

/// Why a cooperative kernel cannot run (`Err`), and its first-use check.
type CoopSlot = (std::result::Result<(), String>, OnceLock<bool>);

/// What a device's matmuls may use, and what was learnt about them.
#[derive(Debug)]
pub(crate) struct MatmulState {
    options: MatmulOptions,
    /// Lanes sharing A in matmul_subgroup.wgsl, where the device has subgroups.
    subgroup_group: Option<u32>,
    /// Why matmul_large.wgsl (`Tile128`, `Tile128x64`, `SplitK128`) cannot run (`Err`):
    /// the device allows less workgroup memory than its two slab buffers.
    large: std::result::Result<(), String>,
    /// The adapter's subgroup size: the cooperative kernels' `LANES`.
    lanes: u32,
    /// The side of the cooperative kernels' fragments: 16 (matmul_coop.wgsl)
    /// or 8 (matmul_coop8.wgsl).
    frag: u32,
    /// Per cooperative kernel (`Coop`, `Coop128`): why it cannot run
    /// (`Err`, decided at open), and its first-use check against `Tile64`.
    coop: [CoopSlot; 2],
    /// Whether the kernels widen halves by hardware (`HALF_HW`): decided
    /// by `halves::hardware_exact` on the first product of halves.
    half_hw: OnceLock<bool>,
    /// Autotuning on for products: cached choices are loaded and untuned
    /// classes timed on their first product.
    autotune: bool,
    /// Tuned choices per shape class, loaded from and saved to `cache`.
    tuned: Mutex<Option<HashMap<String, MatmulKernel>>>,
    cache: Option<cache::TuneCache>,
}

impl MatmulState {
    /// The state of a device opened from an adapter with `info`, `features`
    /// and `limits` (those the device was opened with), downlevel flags
    /// `downlevel` and cooperative-matrix configurations `coop`.
    pub(crate) fn new(
        options: MatmulOptions,
        info: &wgpu::AdapterInfo,
        features: wgpu::Features,
        downlevel: wgpu::DownlevelFlags,
        limits: &wgpu::Limits,
        coop: &[wgpu::CooperativeMatrixProperties],
    ) -> Result<MatmulState> {
        let subgroup_group = if features.contains(wgpu::Features::SUBGROUP) {
            match info.subgroup_min_size {
                s if s >= 8 => Some(8),
                s if s >= 4 => Some(4),
                _ => None,
            }
        } else {
            None
        };
        let lanes = info.subgroup_min_size;
        let large = match limits.max_compute_workgroup_storage_size {
            have if have >= LARGE_WORKGROUP_BYTES => Ok(()),
            have => Err(format!(
                "its 128-row tiles need {LARGE_WORKGROUP_BYTES} bytes of workgroup memory; \
                 the device allows {have}"
            )),
        };
        let frag = coop::support(info, features, downlevel, coop);
        let coop_slot = |wide| -> CoopSlot {
            let fits = |&frag: &u32| coop::fits(frag, wide, lanes, limits);
            (frag.clone().and_then(|f| fits(&f)), OnceLock::new())
        };
        let coop = [coop_slot(false), coop_slot(true)];
        let state = MatmulState {
            autotune: autotune::enabled(&options, info),
            cache: cache::TuneCache::for_adapter(
                options.cache_dir.as_deref(),
                info,
                options.precision,
            ),
            options,
            subgroup_group,
            large,
            lanes,
            frag: frag.unwrap_or(16),
            coop,
            half_hw: OnceLock::new(),
            tuned: Mutex::new(None),
        };
        if let Some(k) = state.options.kernel {
            if let Err(why) = state.available(k) {
                return Err(Error::Device(format!(
                    "the matmul kernel {} was asked for, but {why}",
                    k.name()
                )));
            }
        }
        Ok(state)
    }

    /// Whether products of halves widen them by hardware: false until
    /// `check_half_hw` has run and found it exact.
    pub(crate) fn half_hw(&self) -> bool {
        self.half_hw.get().copied().unwrap_or(false)
    }

    /// Runs `check` (whether the hardware widens every half exactly) once
    /// per device; an error leaves it to the next product.
    pub(crate) fn check_half_hw(&self, check: impl FnOnce() -> Result<bool>) -> Result<()> {
        if self.half_hw.get().is_none() {
            let exact = check()?;
            let _ = self.half_hw.set(exact);
        }
        Ok(())
    }

    /// The cooperative kernels' subgroup size (`LANES`) and fragment side.
    pub(crate) fn coop_shape(&self) -> (u32, u32) {
        (self.lanes, self.frag)
    }

    /// Lanes sharing A in matmul_subgroup.wgsl, if it can run.
    pub(crate) fn subgroup_group(&self) -> Option<u32> {
        self.subgroup_group
    }

    /// Whether the device can run `kernel` at all (before any product).
    pub(crate) fn available(&self, kernel: MatmulKernel) -> std::result::Result<(), String> {
        match kernel {
            MatmulKernel::Tile64 | MatmulKernel::Tile32 | MatmulKernel::SplitK64 => Ok(()),
            MatmulKernel::Tile128 | MatmulKernel::Tile128x64 | MatmulKernel::SplitK128 => {
                self.large.clone()
            }
            MatmulKernel::Subgroup => self.subgroup_group.map(drop).ok_or_else(|| {
                "the device has no subgroup operations (wgpu SUBGROUP) with 4+ lanes".into()
            }),
            MatmulKernel::Coop | MatmulKernel::Coop128 => self.coop_slot(kernel).0.clone(),
        }
    }

    /// The support and check of a cooperative kernel.
    fn coop_slot(&self, kernel: MatmulKernel) -> &CoopSlot {
        &self.coop[usize::from(kernel == MatmulKernel::Coop128)]
    }

    /// The choices saved for this adapter (none without a cache file).
    fn load_cache(&self) -> HashMap<String, MatmulKernel> {
        self.cache.as_ref().map(|c| c.load()).unwrap_or_default()
    }

    /// The kernels [`crate::autotune_matmul`] and the autotuner may try.
    pub(crate) fn candidates(&self) -> Vec<MatmulKernel> {
        MatmulKernel::ALL
            .into_iter()
            .filter(|&k| self.available(k).is_ok())
            .collect()
    }
}

/// The kernel for `job`: forced, tuned or by the size rule (module docs).
pub(crate) fn choose(gpu: &Arc<Gpu>, job: &Job) -> Result<MatmulKernel> {
    let state = &gpu.matmul;
    let halves = job.exact_f16();
    if let Some(k) = state.options.kernel {
        if runnable(gpu, k, &job.p, halves)? {
            return Ok(k);
        }
    }
    if state.autotune {
        return tuned(gpu, job);
    }
    // Classes tuned by an explicit `autotune_matmul` still count.
    if let Some(k) = lookup(state, &autotune::shape_class(&job.p, halves), false) {
        if runnable(gpu, k, &job.p, halves)? {
            return Ok(k);
        }
    }
    by_size(gpu, &job.p, halves)
}

/// Whether `kernel` can run a product with params `p` on this device, of
/// two `F16` operands when `halves` (which the cooperative kernels take at
/// any precision); the first time a cooperative kernel is asked, this runs
/// its check.
pub(crate) fn runnable(
    gpu: &Arc<Gpu>,
    kernel: MatmulKernel,
    p: &MatmulParams,
    halves: bool,
) -> Result<bool> {
    let state = &gpu.matmul;
    Ok(match kernel {
        MatmulKernel::Tile64 | MatmulKernel::Tile32 => true,
        MatmulKernel::Tile128 => state.large.is_ok() && fits_large(p, &variant(p)),
        MatmulKernel::Tile128x64 => state.large.is_ok() && fits_narrow(p, &variant(p)),
        MatmulKernel::SplitK64 | MatmulKernel::SplitK128 => {
            state.available(kernel).is_ok()
                && kernel
                    .split_base()
                    .and_then(|base| split::plan(p, base))
                    .is_some()
        }
        MatmulKernel::Subgroup => state.subgroup_group.is_some(),
        MatmulKernel::Coop | MatmulKernel::Coop128 => {
            let (support, checked) = state.coop_slot(kernel);
            let exact = halves || state.options.precision == MatmulPrecision::High;
            exact
                && support.is_ok()
                && *checked.get_or_init(|| {
                    coop::self_check(gpu, kernel).unwrap_or_else(|e| {
                        eprintln!(
                            "lam-wgpu: matmul kernel {} disabled on {}: its check failed: {e}",
                            kernel.name(),
                            gpu.info.name
                        );
                        false
                    })
                })
        }
    })
}

/// Fewest 128 x 128 tiles for which the size rule picks `Tile128`: below
/// this the 64 x 64 kernel's four times as many workgroups occupy more of
/// the GPU.
const LARGE_MIN_TILES: u64 = 64;

/// The size rule, without measurements, for a product of two `F16`
/// operands when `halves`.
fn by_size(gpu: &Arc<Gpu>, p: &MatmulParams, halves: bool) -> Result<MatmulKernel> {
    let big = p.m >= 128 && p.n >= 128;
    if big && runnable(gpu, MatmulKernel::Coop128, p, halves)? {
        return Ok(MatmulKernel::Coop128);
    }
    if runnable(gpu, MatmulKernel::Coop, p, halves)? {
        return Ok(MatmulKernel::Coop);
    }
    let large = LARGE_TILE as u64;
    let tiles = (u64::from(p.m) / large) * (u64::from(p.n) / large) * u64::from(p.batch);
    if tiles >= LARGE_MIN_TILES && runnable(gpu, MatmulKernel::Tile128, p, halves)? {
        return Ok(MatmulKernel::Tile128);
    }
    Ok(MatmulKernel::Tile64)
}

/// The tuned kernel for `job`'s shape class, timing the candidates on
/// `job` itself the first time the class is seen (and saving the result).
fn tuned(gpu: &Arc<Gpu>, job: &Job) -> Result<MatmulKernel> {
    let halves = job.exact_f16();
    let class = autotune::shape_class(&job.p, halves);
    if let Some(k) = lookup(&gpu.matmul, &class, true) {
        if runnable(gpu, k, &job.p, halves)? {
            return Ok(k);
        }
    }
    let best = autotune::measure(gpu, job)?;
    remember(&gpu.matmul, &class, best);
    Ok(best)
}

/// The tuned choice for `class`; with `load`, the cache file is read on
/// first use (else only choices tuned in this process count).
pub(crate) fn lookup(state: &MatmulState, class: &str, load: bool) -> Option<MatmulKernel> {
    let mut tuned = lock(&state.tuned);
    if tuned.is_none() && !load {
        return None;
    }
    let map = tuned.get_or_insert_with(|| state.load_cache());
    map.get(class).copied()
}

/// Records `kernel` for `class`, in memory and in the cache file.
pub(crate) fn remember(state: &MatmulState, class: &str, kernel: MatmulKernel) {
    let mut tuned = lock(&state.tuned);
    let map = tuned.get_or_insert_with(|| state.load_cache());
    map.insert(class.to_string(), kernel);
    if let Some(c) = &state.cache {
        c.store(&[(class.to_string(), kernel)]);
    }
}

/// The kernels `device`'s products may run on (each where it can run the
/// product, and the cooperative ones on `F32` operands only under
/// [`MatmulPrecision::High`]), in the order the autotuner tries them. A
/// device whose list holds [`MatmulKernel::Coop`] sums `F16` products on
/// cooperative matrices, in an order of their own (tests comparing bits
/// with the f32 kernels ask this).
pub fn matmul_kernels(device: &Device) -> Result<Vec<MatmulKernel>> {
    Ok(super::autotune::gpu_of(device)?.matmul.candidates())
}

/// Whether `device`'s matmul kernels widen `F16` operands by hardware
/// (`unpack2x16float`) rather than by lam's integer conversion: `None`
/// before its first product of halves, which checks the hardware's
/// conversion against lam's, `Some(true)` where they agreed bit for bit.
pub fn matmul_widens_halves_by_hardware(device: &Device) -> Result<Option<bool>> {
    Ok(super::autotune::gpu_of(device)?
        .matmul
        .half_hw
        .get()
        .copied())
}

/// The kernel a contiguous `[batch, m, k] x [batch, k, n]` product of two
/// `dtype` operands (`F32` or `F16`) runs on with `device`'s settings and
/// what it has tuned so far, without running it (and without tuning: an
/// untuned class answers with the size rule).
pub fn matmul_kernel_for(
    device: &Device,
    dtype: DType,
    [batch, m, k, n]: [usize; 4],
) -> Result<MatmulKernel> {
    let halves = match dtype {
        DType::F32 => false,
        DType::F16 => true,
        other => {
            return Err(Error::DTypeMismatch {
                op: "matmul_kernel_for",
                expected: DType::F32,
                found: other,
            })
        }
    };
    let gpu = super::autotune::gpu_of(device)?;
    let p = autotune::contiguous_params(batch, m, k, n)?;
    if let Some(forced) = gpu.matmul.options.kernel {
        if runnable(&gpu, forced, &p, halves)? {
            return Ok(forced);
        }
    }
    let load = gpu.matmul.autotune;
    let class = autotune::shape_class(&p, halves);
    if let Some(tuned) = lookup(&gpu.matmul, &class, load) {
        if runnable(&gpu, tuned, &p, halves)? {
            return Ok(tuned);
        }
    }
    by_size(&gpu, &p, halves)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device's matmul state from its workgroup-memory limit alone.
    fn state_with_storage(bytes: u32, kernel: Option<MatmulKernel>) -> Result<MatmulState> {
        let limits = wgpu::Limits {
            max_compute_workgroup_storage_size: bytes,
            ..wgpu::Limits::default()
        };
        let options = MatmulOptions {
            kernel,
            autotune: Some(false),
            ..MatmulOptions::default()
        };
        MatmulState::new(
            options,
            &wgpu::AdapterInfo::new(wgpu::DeviceType::DiscreteGpu, wgpu::Backend::Vulkan),
            wgpu::Features::empty(),
            wgpu::DownlevelFlags::all(),
            &limits,
            &[],
        )
    }

    #[test]
    fn the_large_tiles_need_their_two_slab_buffers_of_workgroup_memory() {
        let small = state_with_storage(LARGE_WORKGROUP_BYTES - 1, None).unwrap();
        let large = [
            MatmulKernel::Tile128,
            MatmulKernel::Tile128x64,
            MatmulKernel::SplitK128,
        ];
        for kernel in large {
            let why = small.available(kernel).unwrap_err();
            assert!(why.contains("32768") && why.contains("32767"), "{why}");
            assert!(!small.candidates().contains(&kernel));
        }
        assert_eq!(small.available(MatmulKernel::Tile64), Ok(()));
        let why = state_with_storage(16384, Some(MatmulKernel::Tile128)).unwrap_err();
        assert!(why.to_string().contains("tile128 was asked for"), "{why}");
        let enough = state_with_storage(LARGE_WORKGROUP_BYTES, None).unwrap();
        assert_eq!(enough.available(MatmulKernel::Tile128), Ok(()));
        assert!(enough.candidates().contains(&MatmulKernel::SplitK128));
        assert!(enough.candidates().contains(&MatmulKernel::Tile128x64));
    }
}
