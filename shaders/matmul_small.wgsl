// Batched matrix product C[b] = A[b] (M x K) * B[b] (K x N) on 32 x 32 tiles:
// the `Tile32` kernel. Each workgroup of 64 threads computes one tile, each
// thread a 4 x 4 register tile, so a product gets four times the workgroups
// of matmul.wgsl's 64 x 64 tiles. A product of few tiles — a recurrent
// layer's step, 64 rows by 1,024 columns, is 16 tiles of 64 — then spreads
// over more of a large GPU's cores. The autotuner picks it where it measures
// faster (it is never the size rule's choice).
//
// Every strided view and any size, edge-checked: operands are staged in
// workgroup memory one K-slab of TK at a time with scalar loads, in the
// order of each operand's contiguous dim (A_MODE, B_MODE as in matmul.wgsl:
// A is k-contiguous in modes 1 and 2, B in modes 1 and 3). EPILOGUE and
// HALF as in the other kernels (lib/matmul_io.wgsl).

// #include "lib/matmul_io.wgsl"
// #include "lib/matmul_mac4.wgsl"

override A_MODE: u32 = 0u;
override B_MODE: u32 = 0u;

// f32 bits, or under HALF_OUT two halves a word.
@group(0) @binding(3) var<storage, read_write> c: array<u32>;

const TILE: u32 = 32u;
const THREADS: u32 = 64u;

// as_[kk][q] holds A rows 4q..4q+3 at depth kk; bs[kk][q] holds B columns
// 4q..4q+3 at depth kk (see lib/matmul_mac4.wgsl).
var<workgroup> as_: array<array<vec4<f32>, 8>, TK>;
var<workgroup> bs: array<array<vec4<f32>, 8>, TK>;

fn load_a(base: u32, m: u32, k: u32) -> f32 {
    if (m < p.m && k < p.k) {
        return a_at(base + m * p.a_sm + k * p.a_sk);
    }
    return 0.0;
}

fn load_b(base: u32, k: u32, n: u32) -> f32 {
    if (k < p.k && n < p.n) {
        return b_at(base + k * p.b_sk + n * p.b_sn);
    }
    return 0.0;
}

// Stages the 32 x TK slab of A at rows m0.., depths k0.. and the TK x 32
// slab of B at depths k0.., columns n0..: 512 values each, 8 per thread,
// consecutive threads reading consecutive addresses.
fn stage(t: u32, a_base: u32, b_base: u32, m0: u32, n0: u32, k0: u32) {
    for (var e = 0u; e < TILE * TK / THREADS; e++) {
        let i = t + e * THREADS;
        var r = i & (TILE - 1u);
        var ka = i / TILE;
        if (A_MODE == 1u || A_MODE == 2u) {
            ka = i & (TK - 1u);
            r = i / TK;
        }
        as_[ka][r >> 2u][r & 3u] = load_a(a_base, m0 + r, k0 + ka);
        var col = i & (TILE - 1u);
        var kb = i / TILE;
        if (B_MODE == 1u || B_MODE == 3u) {
            kb = i & (TK - 1u);
            col = i / TK;
        }
        bs[kb][col >> 2u][col & 3u] = load_b(b_base, k0 + kb, n0 + col);
    }
}

fn store_row(c_base: u32, row: u32, col: u32, v: vec4<f32>) {
    if (row >= p.m) {
        return;
    }
    let i = c_base + row * p.n + col;
    if (HALF_OUT) {
        // N is even, so i is, and col + j < N means col + j + 1 < N too.
        for (var j = 0u; j < 4u; j += 2u) {
            if (col + j < p.n) {
                c[(i + j) >> 1u] = pair(v[j], v[j + 1u], col + j);
            }
        }
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (col + j < p.n) {
            c[i + j] = bitcast<u32>(epilogue(v[j], col + j));
        }
    }
}

@compute @workgroup_size(64)
fn matmul_small(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let tx = t & 7u;
    let ty = t >> 3u;
    let tiles_n = (p.n + TILE - 1u) / TILE;
    let tiles_m = (p.m + TILE - 1u) / TILE;
    // Grid dimensions past GRID_MAX loop; the bounds are uniform, so the
    // barriers stay in uniform control flow.
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
                    stage(t, a_base, b_base, m0, n0, k0);
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
