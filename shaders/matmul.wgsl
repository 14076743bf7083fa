// Batched matrix product C[b] = A[b] (M x K) * B[b] (K x N), C contiguous.
//
// A and B are any strided views: batch strides may be 0 (broadcast) and row
// or column strides arbitrary, so transposes are folded into the loads and
// never materialised. Each workgroup of 256 threads computes a 64 x 64 tile
// of C; each thread owns a 4 x 4 register tile (the main lever for speed).
// A and B tiles of depth TK = 16 are staged in workgroup memory as vec4s so
// the inner loop reads one vec4 of A and one of B per 16 multiply-adds.
//
// Pipeline constants pick the variant (see `MatmulVariant` in ops/matmul.rs):
// - A_MODE: 0 scalar loads (m fastest), 1 scalar (k fastest),
//           2 vec4 along k (row-major A), 3 vec4 along m (transposed A);
// - B_MODE: 0 scalar (n fastest), 1 scalar (k fastest),
//           2 vec4 along n (row-major B), 3 vec4 along k (transposed B);
// - ALIGNED: M, N multiples of 64 and K of 16, so no edge checks at all;
// - EPILOGUE: what the output write adds (see lib/matmul_io.wgsl): bit 0
//   the bias row, bit 1 a ReLU, bit 2 rounding the sum to f16 first (the
//   autocast Linear). This is how `Linear` + `ReLU` run as one kernel;
// - HALF: A and B are F16 buffers, read as halves and widened exactly to
//   f32 (lib/matmul_io.wgsl); every other kernel reads them alike.
// The vec4 modes need the host to have checked alignment of the offset,
// batch stride and the other stride, and divisibility of the vector dim by 4.

// #include "lib/matmul_tile64.wgsl"
// #include "lib/matmul_mac4.wgsl"

@compute @workgroup_size(256)
fn matmul(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let tx = t & 15u;
    let ty = t >> 4u;
    let tiles_n = (p.n + TILE - 1u) / TILE;
    let tiles_m = (p.m + TILE - 1u) / TILE;
    // Each grid dimension is at most GRID_MAX; larger extents loop. All loop
    // bounds are uniform, so the barriers inside stay in uniform control flow.
    for (var bz = wid.z; bz < p.batch; bz += GRID_MAX) {
        let a_base = p.a_offset + bz * p.a_sb;
        let b_base = p.b_offset + bz * p.b_sb;
        let c_base = bz * p.m * p.n;
        for (var tm = wid.y; tm < tiles_m; tm += GRID_MAX) {
            for (var tn = wid.x; tn < tiles_n; tn += GRID_MAX) {
                let m0 = tm * TILE;
                let n0 = tn * TILE;
                acc0 = vec4<f32>(0.0);
                acc1 = vec4<f32>(0.0);
                acc2 = vec4<f32>(0.0);
                acc3 = vec4<f32>(0.0);
                for (var k0 = 0u; k0 < p.k; k0 += TK) {
                    stage_a(t, a_base, m0, k0);
                    stage_b(t, b_base, k0, n0);
                    workgroupBarrier();
                    mac_slab(ty, tx);
                    workgroupBarrier();
                }
                let row = m0 + ty * 4u;
                let col = n0 + tx * 4u;
                store_row(c_base, row, col, acc0);
                store_row(c_base, row + 1u, col, acc1);
                store_row(c_base, row + 2u, col, acc2);
                store_row(c_base, row + 3u, col, acc3);
            }
        }
    }
}

