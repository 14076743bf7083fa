// Batched matrix product C[b] = A[b] (M x K) * B[b] (K x N) for adapters
// with subgroup operations: matmul.wgsl's 64 x 64 tiles, load modes and
// edge handling (lib/matmul_tile64.wgsl), with A's fragments shared between
// threads through subgroup shuffles instead of workgroup-memory reads.
//
// In matmul.wgsl every thread reads, per step kk of a K-slab, the vec4 of A
// rows 4ty..4ty+3 at depth kk from workgroup memory, although the 16 threads
// of a row of the thread grid (same ty) read the same one. Here the lanes of
// an aligned group of GROUP lanes (all of one ty) each read a different
// depth once per slab, and pass those vec4s around with subgroupShuffle:
// TK / GROUP workgroup reads of A per slab instead of TK, so the inner loop
// reads only B from workgroup memory.
//
// Threads are numbered t = subgroup_id * subgroup_size + lane, so the lanes
// of a group are consecutive in t whatever order the driver gives the
// subgroups; the host checks that subgroups hold at least GROUP lanes (and
// 256 threads are a whole number of subgroups of any power-of-two size), so a
// group never straddles two subgroups.
//
// Pipeline constants: A_MODE, B_MODE, ALIGNED, EPILOGUE and HALF as in
// matmul.wgsl; GROUP (4 or 8, at most the adapter's smallest subgroup)
// lanes share A.

// #include "lib/matmul_tile64.wgsl"

override GROUP: u32 = 8u;

@compute @workgroup_size(256)
fn matmul_subgroup(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(subgroup_id) sg: u32,
    @builtin(subgroup_size) sg_size: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let t = sg * sg_size + lane;
    let tx = t & 15u;
    let ty = t >> 4u;
    // The first lane of this thread's group, and its place in the group.
    let first = lane & ~(GROUP - 1u);
    let g = lane & (GROUP - 1u);
    let tiles_n = (p.n + TILE - 1u) / TILE;
    let tiles_m = (p.m + TILE - 1u) / TILE;
    // Loop bounds are uniform, so the barriers and shuffles inside run in
    // uniform control flow, as both require.
    for (var bz = wid.z; bz < p.batch; bz += GRID_MAX) {
        let a_base = p.a_offset + bz * p.a_sb;
        let b_base = p.b_offset + bz * p.b_sb;
        let c_base = bz * p.m * p.n;
        for (var tm = wid.y; tm < tiles_m; tm += GRID_MAX) {
            for (var tn = wid.x; tn < tiles_n; tn += GRID_MAX) {
                let m0 = tm * TILE;
                let n0 = tn * TILE;
                var acc0 = vec4<f32>(0.0);
                var acc1 = vec4<f32>(0.0);
                var acc2 = vec4<f32>(0.0);
                var acc3 = vec4<f32>(0.0);
                for (var k0 = 0u; k0 < p.k; k0 += TK) {
                    stage_a(t, a_base, m0, k0);
                    stage_b(t, b_base, k0, n0);
                    workgroupBarrier();
                    for (var d0 = 0u; d0 < TK; d0 += GROUP) {
                        // This lane's share: A rows 4ty.. at depth d0 + g.
                        let mine = as_[(d0 + g) * 16u + ty];
                        for (var j = 0u; j < GROUP; j++) {
                            let av = subgroupShuffle(mine, first + j);
                            let bv = bs[(d0 + j) * 16u + tx];
                            acc0 = fma(vec4<f32>(av.x), bv, acc0);
                            acc1 = fma(vec4<f32>(av.y), bv, acc1);
                            acc2 = fma(vec4<f32>(av.z), bv, acc2);
                            acc3 = fma(vec4<f32>(av.w), bv, acc3);
                        }
                    }
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
