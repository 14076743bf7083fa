//! The only file that names a shader: each WGSL file is embedded here with
//! `include_str!`. Each entry point is a [`Kernel`] with the bindings it
//! uses, in one of two tables: `kernels/primitives.rs` (the primitives', and
//! the codes that map lam's op enums to the shaders' pipeline constants) and
//! `kernels/fused.rs` (the optional fused ops'), both re-exported here, so an
//! op names its kernel `kernels::MATMUL` whichever table holds it.
//!
//! Shaders share code through the snippets of `shaders/lib/` (the
//! [`LIBRARY`]), pasted in by `// #include` lines (see `wgsl.rs`); each
//! shader is expanded once per process, on first use.
//!
//! A kernel variant is (kernel, pipeline constants); the pipeline cache builds
//! one pipeline per variant. Variants use WGSL `override` constants, never text
//! substitution, so every expanded file stays plain WGSL that naga validates
//! as is (`tests/shaders_validate.rs`, which also checks that every file in
//! `shaders/` is named here and every snippet is included somewhere).

mod fused;
mod primitives;

use std::sync::OnceLock;

use crate::wgsl::{expand, Expanded};

pub(crate) use fused::*;
pub(crate) use primitives::*;

/// Declares [`Shader`] from one list of (variant, file in `shaders/`): the
/// enum, [`Shader::ALL`], the file names and the embedded texts.
macro_rules! shaders {
    ($($variant:ident => $file:literal,)*) => {
        /// A WGSL source file in `shaders/`, one or two per op family.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub(crate) enum Shader {
            $($variant,)*
        }

        impl Shader {
            /// Every shader.
            pub(crate) const ALL: &'static [Shader] = &[$(Shader::$variant,)*];

            /// The file name, for labels and error messages.
            pub(crate) fn file(self) -> &'static str {
                match self {
                    $(Shader::$variant => $file,)*
                }
            }

            /// The file as written, embedded at compile time.
            fn text(self) -> &'static str {
                match self {
                    $(Shader::$variant => include_str!(concat!("../../../shaders/", $file)),)*
                }
            }
        }
    };
}

shaders! {
    Copy => "copy.wgsl",
    CopyHalf => "copy_half.wgsl",
    Elementwise => "elementwise.wgsl",
    Reduce => "reduce.wgsl",
    Matmul => "matmul.wgsl",
    MatmulLarge => "matmul_large.wgsl",
    MatmulSubgroup => "matmul_subgroup.wgsl",
    MatmulSmall => "matmul_small.wgsl",
    MatmulCoop => "matmul_coop.wgsl",
    MatmulCoop8 => "matmul_coop8.wgsl",
    MatmulSplit => "matmul_split.wgsl",
    Index => "index.wgsl",
    IndexScatter => "index_scatter.wgsl",
    Window => "window.wgsl",
    MaxPool => "max_pool.wgsl",
    Quant => "quant.wgsl",
    Random => "random.wgsl",
    Softmax => "softmax.wgsl",
    Attention => "attention.wgsl",
    AttentionGrad => "attention_grad.wgsl",
    AttentionTiled => "attention_tiled.wgsl",
    AttentionTiledGrad => "attention_tiled_grad.wgsl",
    AttentionWeights => "attention_weights.wgsl",
    CrossEntropy => "cross_entropy.wgsl",
    Lstm => "lstm.wgsl",
    LayerNorm => "layer_norm.wgsl",
    BatchNorm => "batch_norm.wgsl",
    BatchNormRunning => "batch_norm_running.wgsl",
    Adam => "adam.wgsl",
    Sgd => "sgd.wgsl",
    Unscale => "unscale.wgsl",
}

/// A snippet of `shaders/lib/`: the path `// #include` names it by, and its text.
macro_rules! snippet {
    ($path:literal) => {
        ($path, include_str!(concat!("../../../shaders/", $path)))
    };
}

/// The snippets shaders may include.
pub(crate) const LIBRARY: &[(&str, &str)] = &[
    snippet!("lib/grid.wgsl"),
    snippet!("lib/dims.wgsl"),
    snippet!("lib/nan.wgsl"),
    snippet!("lib/exp_log.wgsl"),
    snippet!("lib/activations.wgsl"),
    snippet!("lib/half.wgsl"),
    snippet!("lib/elementwise_views.wgsl"),
    snippet!("lib/matmul_io.wgsl"),
    snippet!("lib/matmul_tile64.wgsl"),
    snippet!("lib/matmul_mac4.wgsl"),
    snippet!("lib/matmul_coop_body.wgsl"),
    snippet!("lib/index_params.wgsl"),
    snippet!("lib/window_params.wgsl"),
    snippet!("lib/rows.wgsl"),
    snippet!("lib/attention_params.wgsl"),
    snippet!("lib/attention_tiles.wgsl"),
    snippet!("lib/range_fault.wgsl"),
];

impl Shader {
    /// The device features the shader needs beyond WebGPU's baseline; it is
    /// compiled only on devices opened with them.
    pub(crate) fn features(self) -> wgpu::Features {
        match self {
            Shader::MatmulSubgroup => wgpu::Features::SUBGROUP,
            Shader::MatmulCoop | Shader::MatmulCoop8 => {
                wgpu::Features::SUBGROUP
                    | wgpu::Features::SHADER_F16
                    | wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX
            }
            _ => wgpu::Features::empty(),
        }
    }

    /// The WGSL text as pipelines compile it, includes expanded (once per
    /// process), or why the expansion failed.
    pub(crate) fn source(self) -> Result<&'static Expanded, &'static str> {
        static EXPANDED: OnceLock<Vec<Result<Expanded, String>>> = OnceLock::new();
        let all = EXPANDED.get_or_init(|| {
            Shader::ALL
                .iter()
                .map(|s| expand(s.file(), s.text(), LIBRARY))
                .collect()
        });
        let at = Shader::ALL.iter().position(|&s| s == self);
        match at.and_then(|i| all.get(i)) {
            Some(Ok(expanded)) => Ok(expanded),
            Some(Err(why)) => Err(why),
            None => Err("a shader missing from Shader::ALL"),
        }
    }
}

/// One shader as the pipelines compile it, for `tests/shaders_validate.rs`.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct ShaderSource {
    /// The file in `shaders/`.
    pub file: &'static str,
    /// The expanded WGSL, or why the expansion failed.
    pub text: Result<String, String>,
    /// The snippets of `shaders/lib/` it includes, directly or not.
    pub includes: Vec<&'static str>,
    /// The device features it needs (empty: WebGPU's baseline).
    pub features: wgpu::Features,
}

/// Every shader, expanded exactly as the pipelines get it, and every
/// snippet path of the library. For the naga validation test; not for
/// other uses.
#[doc(hidden)]
pub fn shader_sources() -> (Vec<ShaderSource>, Vec<&'static str>) {
    let shaders = Shader::ALL
        .iter()
        .map(|&s| {
            let expanded = s.source();
            ShaderSource {
                file: s.file(),
                text: expanded
                    .map(|e| e.text.clone())
                    .map_err(|why| why.to_string()),
                includes: expanded.map(|e| e.includes.clone()).unwrap_or_default(),
                features: s.features(),
            }
        })
        .collect();
    (shaders, LIBRARY.iter().map(|&(path, _)| path).collect())
}

/// How an entry point uses a storage binding. Binding 0 is always the
/// kernel's uniform parameter block and is not listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Access {
    Read,
    ReadWrite,
}

/// One compute entry point and its storage bindings `(binding, access)`,
/// in the order `Gpu::dispatch` receives the buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Kernel {
    pub shader: Shader,
    pub entry: &'static str,
    pub bindings: &'static [(u32, Access)],
}

/// The op behind a `FAULT_*` code of lib/range_fault.wgsl, as an
/// [`lam_core::Error::OutOfRange`] names it.
pub(crate) fn fault_op(code: u32) -> &'static str {
    match code {
        1 => "index_select (detected on the device)",
        2 => "gather (detected on the device)",
        3 => "scatter_add (detected on the device)",
        4 => "cross_entropy (detected on the device)",
        _ => "an index op (detected on the device)",
    }
}

/// The binding of the device's fault words (lib/range_fault.wgsl), last in
/// the bindings of every kernel that checks user indices.
const FAULTS: (u32, Access) = (7, Access::ReadWrite);

/// A [`Kernel`], written positionally to keep the tables short.
const fn kernel(shader: Shader, entry: &'static str, bindings: &'static [(u32, Access)]) -> Kernel {
    Kernel {
        shader,
        entry,
        bindings,
    }
}
