// matmul_coop.wgsl on 8 x 8 x 8 fragments, for adapters whose cooperative
// matrices come in that size only (lavapipe): 32 x 32 tiles, or 64 x 64
// when WIDE. See matmul_coop.wgsl.

enable f16;
enable wgpu_cooperative_matrix;

const FRAG: u32 = 8u;
alias FragA = coop_mat8x8<f16, A>;
alias FragB = coop_mat8x8<f16, B>;
alias FragC = coop_mat8x8<f32, C>;

// #include "lib/matmul_coop_body.wgsl"
