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
// #include "lib/matmul_mac4.wgsl"

override GROUP: u32 = 8u;

// Depth d0 + j of the slab, A's vec4 taken from lane `first + j` of the
// group: 16 multiply-adds into lib/matmul_mac4.wgsl's accumulators.
fn shuffle_mac(d0: u32, j: u32, mine: vec4<f32>, first: u32, tx: u32) {
    let av = subgroupShuffle(mine, first + j);
    let bv = bs[d0 + j][tx];
    acc0 = fma(vec4<f32>(av.x), bv, acc0);
    acc1 = fma(vec4<f32>(av.y), bv, acc1);
    acc2 = fma(vec4<f32>(av.z), bv, acc2);
    acc3 = fma(vec4<f32>(av.w), bv, acc3);
}

// Depths d0..d0 + GROUP: each lane reads A rows 4ty.. at depth d0 + g, and
// the group passes them round.
fn group_mac(d0: u32, g: u32, ty: u32, first: u32, tx: u32) {
    let mine = as_[d0 + g][ty];
    shuffle_mac(d0, 0u, mine, first, tx);
    shuffle_mac(d0, 1u, mine, first, tx);
    shuffle_mac(d0, 2u, mine, first, tx);
    shuffle_mac(d0, 3u, mine, first, tx);
    if (GROUP == 8u) {
        shuffle_mac(d0, 4u, mine, first, tx);
        shuffle_mac(d0, 5u, mine, first, tx);
        shuffle_mac(d0, 6u, mine, first, tx);
        shuffle_mac(d0, 7u, mine, first, tx);
    }
}

// The whole staged slab (TK = 16 depths) in groups of GROUP (4 or 8),
// written out rather than looped over, as lib/matmul_mac4.wgsl's
// `mac_slab` is. The branches test a pipeline constant, so they are
// uniform and the shuffles stay in uniform control flow.
fn shuffle_slab(g: u32, ty: u32, first: u32, tx: u32) {
    group_mac(0u, g, ty, first, tx);
    if (GROUP == 4u) {
        group_mac(4u, g, ty, first, tx);
    }
    group_mac(8u, g, ty, first, tx);
    if (GROUP == 4u) {
        group_mac(12u, g, ty, first, tx);
    }
}

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
                acc0 = vec4<f32>(0.0);
                acc1 = vec4<f32>(0.0);
                acc2 = vec4<f32>(0.0);
                acc3 = vec4<f32>(0.0);
                for (var k0 = 0u; k0 < p.k; k0 += TK) {
                    stage_a(t, a_base, m0, k0);
                    stage_b(t, b_base, k0, n0);
                    workgroupBarrier();
                    shuffle_slab(g, ty, first, tx);
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
