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

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use lam_core::{Device, Error, Result};

use super::{autotune, cache, coop, fits_large, split, variant, Job, LARGE_TILE};
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
    /// `Tile64` sharing A's fragments through subgroup shuffles; needs the
    /// adapter's `SUBGROUP` feature (matmul_subgroup.wgsl).
    Subgroup,
    /// Cooperative matrices (tensor cores) on 64 x 64 tiles: f16 inputs, f32
    /// accumulation; needs [`MatmulPrecision::High`] and the adapter's
    /// cooperative-matrix feature with 16 x 16 x 16 f16 → f32 and 32-lane
    /// subgroups (matmul_coop.wgsl).
    Coop,
    /// `Coop` on 128 x 128 tiles (256 threads, 24 KiB of workgroup memory):
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
    pub const ALL: [MatmulKernel; 8] = [
        MatmulKernel::Tile64,
        MatmulKernel::Tile32,
        MatmulKernel::Tile128,
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
/// `torch.set_float32_matmul_precision`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum MatmulPrecision {
    /// f32 inputs and accumulation only (the default).
    #[default]
    Highest,
    /// Inputs may be rounded to f16 (11 significant bits, range ±65504) for
    /// cooperative-matrix (tensor-core) kernels, accumulating in f32.
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
    /// [`MatmulPrecision::High`] lets f16-input kernels run (and asks the
    /// adapter for its cooperative-matrix feature when opening).
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
}

impl MatmulOptions {
    /// The options `LAM_MATMUL_PRECISION` (`highest`, `high`),
    /// `LAM_MATMUL_KERNEL` (a [`MatmulKernel::name`]) and the older
    /// `LAM_MATMUL_TILES` (`64`, `128`) ask for; unknown values are
    /// reported on stderr and ignored. For [`crate::default_gpu`].
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
                eprintln!(
                    "lam-wgpu: ignoring LAM_MATMUL_KERNEL={v:?} (expected tile64, tile32, tile128, \
                     subgroup, coop, coop128, splitk64 or splitk128)"
                );
            }
            k
        });
        opts.kernel = kernel.or(tiles);
        opts
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
    /// Per cooperative kernel (`Coop`, `Coop128`): why it cannot run
    /// (`Err`, decided at open), and its first-use check against `Tile64`.
    coop: [CoopSlot; 2],
    /// Autotuning on for products: cached choices are loaded and untuned
    /// classes timed on their first product.
    autotune: bool,
    /// Tuned choices per shape class, loaded from and saved to `cache`.
    tuned: Mutex<Option<HashMap<String, MatmulKernel>>>,
    cache: Option<cache::TuneCache>,
}

impl MatmulState {
    /// The state of a device opened from an adapter with `info`, `features`
    /// and `limits` (those the device was opened with) and cooperative-matrix
    /// configurations `coop`.
    pub(crate) fn new(
        options: MatmulOptions,
        info: &wgpu::AdapterInfo,
        features: wgpu::Features,
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
        let storage = limits.max_compute_workgroup_storage_size;
        let coop_slot = |wide| -> CoopSlot {
            let support = coop::support(&options, info, features, coop);
            (
                support.and_then(|()| coop::fits(wide, storage)),
                OnceLock::new(),
            )
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
            coop,
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

    /// Lanes sharing A in matmul_subgroup.wgsl, if it can run.
    pub(crate) fn subgroup_group(&self) -> Option<u32> {
        self.subgroup_group
    }

    /// Whether the device can run `kernel` at all (before any product).
    pub(crate) fn available(&self, kernel: MatmulKernel) -> std::result::Result<(), String> {
        match kernel {
            MatmulKernel::Tile64
            | MatmulKernel::Tile128
            | MatmulKernel::Tile32
            | MatmulKernel::SplitK64
            | MatmulKernel::SplitK128 => Ok(()),
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
    if let Some(k) = state.options.kernel {
        if runnable(gpu, k, &job.p)? {
            return Ok(k);
        }
    }
    if state.autotune {
        return tuned(gpu, job);
    }
    // Classes tuned by an explicit `autotune_matmul` still count.
    if let Some(k) = lookup(state, &autotune::shape_class(&job.p), false) {
        if runnable(gpu, k, &job.p)? {
            return Ok(k);
        }
    }
    by_size(gpu, &job.p)
}

/// Whether `kernel` can run a product with params `p` on this device; the
/// first time the cooperative kernel is asked, this runs its check.
pub(crate) fn runnable(gpu: &Arc<Gpu>, kernel: MatmulKernel, p: &MatmulParams) -> Result<bool> {
    let state = &gpu.matmul;
    Ok(match kernel {
        MatmulKernel::Tile64 | MatmulKernel::Tile32 => true,
        MatmulKernel::Tile128 => fits_large(p, &variant(p)),
        MatmulKernel::SplitK64 | MatmulKernel::SplitK128 => kernel
            .split_base()
            .and_then(|base| split::plan(p, base))
            .is_some(),
        MatmulKernel::Subgroup => state.subgroup_group.is_some(),
        MatmulKernel::Coop | MatmulKernel::Coop128 => {
            let (support, checked) = state.coop_slot(kernel);
            support.is_ok()
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

/// The size rule, without measurements.
fn by_size(gpu: &Arc<Gpu>, p: &MatmulParams) -> Result<MatmulKernel> {
    let big = p.m >= 128 && p.n >= 128;
    if big && runnable(gpu, MatmulKernel::Coop128, p)? {
        return Ok(MatmulKernel::Coop128);
    }
    if runnable(gpu, MatmulKernel::Coop, p)? {
        return Ok(MatmulKernel::Coop);
    }
    let large = LARGE_TILE as u64;
    let tiles = (u64::from(p.m) / large) * (u64::from(p.n) / large) * u64::from(p.batch);
    if fits_large(p, &variant(p)) && tiles >= LARGE_MIN_TILES {
        return Ok(MatmulKernel::Tile128);
    }
    Ok(MatmulKernel::Tile64)
}

/// The tuned kernel for `job`'s shape class, timing the candidates on
/// `job` itself the first time the class is seen (and saving the result).
fn tuned(gpu: &Arc<Gpu>, job: &Job) -> Result<MatmulKernel> {
    let class = autotune::shape_class(&job.p);
    if let Some(k) = lookup(&gpu.matmul, &class, true) {
        if runnable(gpu, k, &job.p)? {
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

/// The kernel a contiguous `[batch, m, k] x [batch, k, n]` product runs on
/// with `device`'s settings and what it has tuned so far, without running
/// it (and without tuning: an untuned class answers with the size rule).
pub fn matmul_kernel_for(
    device: &Device,
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
) -> Result<MatmulKernel> {
    let gpu = super::autotune::gpu_of(device)?;
    let p = autotune::contiguous_params(batch, m, k, n)?;
    if let Some(forced) = gpu.matmul.options.kernel {
        if runnable(&gpu, forced, &p)? {
            return Ok(forced);
        }
    }
    let load = gpu.matmul.autotune;
    if let Some(tuned) = lookup(&gpu.matmul, &autotune::shape_class(&p), load) {
        if runnable(&gpu, tuned, &p)? {
            return Ok(tuned);
        }
    }
    by_size(&gpu, &p)
}
