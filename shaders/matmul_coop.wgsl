// Batched matrix product C[b] = A[b] (M x K) * B[b] (K x N) on cooperative
// matrices (tensor cores on NVIDIA, simdgroup matrices on Apple): f16 inputs,
// f32 accumulation. For products of two F16 operands (exact), and of F32
// ones on devices opened with `MatmulPrecision::High` (rounding them to f16
// changes results), where the adapter reports f16 x f16 + f32 cooperative
// matrices of 16 x 16 x 16 (this file) or 8 x 8 x 8 (matmul_coop8.wgsl, the
// same kernel on smaller fragments) and one subgroup size; the host checks
// both and compares a first product against matmul.wgsl before trusting it.
//
// The kernel is in lib/matmul_coop_body.wgsl, in terms of the fragment side
// FRAG (F below; 16 here). Two tile sizes (the WIDE pipeline constant), both
// with subgroups in a 2-column grid, each subgroup owning 2F rows of the tile:
// - 4F x 4F tiles (64 x 64), four subgroups (of 2F x 2F: 2 x 2
//   accumulators of F x F);
// - WIDE: 8F x 8F tiles (128 x 128), eight subgroups (of 2F x 4F: 2 x 4
//   accumulators), twice the multiply-adds per load of workgroup memory and
//   per byte fetched.
// A subgroup has LANES threads (the adapter's one subgroup size: 32 on
// NVIDIA, 8 on lavapipe), so a workgroup has 4 or 8 times LANES.
// Per K-slab of 2F, the threads load A (TILE x 2F) and B (2F x TILE) with the
// views' strides, edge-checked (zeros outside), converting to f16 into
// workgroup memory (F16 operands, HALF, are read as the halves they are:
// the conversion is exact); each subgroup then does its multiply-adds of
// F x F x F.
// Results go out through an F x F f32 scratch tile per subgroup, so the
// epilogue and the edge checks apply as in the other kernels. Values beyond
// f16's range (65504) become infinities.
//
// Pipeline constants: A_MODE, B_MODE, EPILOGUE and HALF as in matmul.wgsl
// (only which dim is contiguous matters here: the loads are scalar); WIDE;
// LANES.

enable f16;
enable wgpu_cooperative_matrix;

const FRAG: u32 = 16u;
alias FragA = coop_mat16x16<f16, A>;
alias FragB = coop_mat16x16<f16, B>;
alias FragC = coop_mat16x16<f32, C>;

// #include "lib/matmul_coop_body.wgsl"
