// Batched matrix product C[b] = A[b] (M x K) * B[b] (K x N) on cooperative
// matrices (tensor cores on NVIDIA, simdgroup matrices on Apple): f16 inputs,
// f32 accumulation. Only for devices opened with `MatmulPrecision::High`
// (rounding A and B to f16 changes results) whose adapter reports 16 x 16 x 16
// f16 x f16 + f32 cooperative matrices and 32-lane subgroups; the host checks
// both and compares a first product against matmul.wgsl before trusting it.
//
// Two tile sizes (the WIDE pipeline constant), both with 32-lane subgroups
// in a 2-column grid, each subgroup owning 32 rows of the tile:
// - 64 x 64 tiles, 128 threads (four subgroups of 32 x 32: 2 x 2
//   accumulators of 16 x 16);
// - WIDE: 128 x 128 tiles, 256 threads (eight subgroups of 32 x 64: 2 x 4
//   accumulators), twice the multiply-adds per load of workgroup memory and
//   per byte fetched.
// Per K-slab of 32, the threads load A (TM x 32) and B (32 x TN) with the
// views' strides, edge-checked (zeros outside), converting to f16 into
// workgroup memory (F16 operands, HALF, are read as the halves they are:
// the conversion is exact); each subgroup then does its multiply-adds of
// 16 x 16 x 16.
// Results go out through a 16 x 16 f32 scratch tile per subgroup, so the
// epilogue and the edge checks apply as in the other kernels. Values beyond
// f16's range (65504) become infinities.
//
// Pipeline constants: A_MODE, B_MODE, EPILOGUE and HALF as in matmul.wgsl
// (only which dim is contiguous matters here: the loads are scalar); WIDE.

enable f16;
enable wgpu_cooperative_matrix;

// #include "lib/matmul_io.wgsl"

override A_MODE: u32 = 0u;
override B_MODE: u32 = 0u;
override WIDE: bool = false;

@group(0) @binding(3) var<storage, read_write> c: array<f32>;

// The tile's side, the threads of a workgroup (32 per subgroup) and the
// accumulator columns per subgroup.
override TILE: u32 = select(64u, 128u, WIDE);
override THREADS: u32 = select(128u, 256u, WIDE);
const CK: u32 = 32u;

// as_[r * CK + kk]: A row r at depth kk; bs[kk * TILE + col]: B row-major.
var<workgroup> as_: array<f16, TILE * CK>;
var<workgroup> bs: array<f16, TILE * CK>;
// One 16 x 16 output tile per subgroup on its way out.
var<workgroup> cs: array<f32, THREADS / 32u * 256u>;

fn load_a(base: u32, m: u32, k: u32) -> f16 {
    if (m < p.m && k < p.k) {
        return f16(a_at(base + m * p.a_sm + k * p.a_sk));
    }
    return f16(0.0);
}

fn load_b(base: u32, k: u32, n: u32) -> f16 {
    if (k < p.k && n < p.n) {
        return f16(b_at(base + k * p.b_sk + n * p.b_sn));
    }
    return f16(0.0);
}

// Stages A rows m0.. and B columns n0.. at depths k0..k0+31, consecutive
// threads walking the operand's contiguous dim (modes 1, 2: A along k;
// modes 0, 2: B along n).
fn stage(t: u32, a_base: u32, b_base: u32, m0: u32, n0: u32, k0: u32) {
    for (var e = 0u; e < TILE * CK / THREADS; e++) {
        let i = t + e * THREADS;
        if (A_MODE == 1u || A_MODE == 2u) {
            let kk = i & (CK - 1u);
            let r = i / CK;
            as_[r * CK + kk] = load_a(a_base, m0 + r, k0 + kk);
        } else {
            let r = i & (TILE - 1u);
            let kk = i / TILE;
            as_[r * CK + kk] = load_a(a_base, m0 + r, k0 + kk);
        }
        if (B_MODE == 0u || B_MODE == 2u) {
            let col = i & (TILE - 1u);
            let kk = i / TILE;
            bs[kk * TILE + col] = load_b(b_base, k0 + kk, n0 + col);
        } else {
            let kk = i & (CK - 1u);
            let col = i / CK;
            bs[kk * TILE + col] = load_b(b_base, k0 + kk, n0 + col);
        }
    }
}

// Writes accumulator `acc` (C rows row0.., columns col0..) through the
// subgroup's scratch tile. Every subgroup calls it equally often (WIDE is
// the same for all), so the barriers stay uniform.
fn store_tile(acc: coop_mat16x16<f32, C>, sg: u32, lane: u32, c_base: u32, row0: u32, col0: u32) {
    coopStoreT(acc, &cs[sg * 256u], 16u);
    workgroupBarrier();
    for (var e = 0u; e < 8u; e++) {
        let i = lane + e * 32u;
        let row = row0 + i / 16u;
        let col = col0 + (i & 15u);
        if (row < p.m && col < p.n) {
            c[c_base + row * p.n + col] = epilogue(cs[sg * 256u + i], col);
        }
    }
    workgroupBarrier();
}

@compute @workgroup_size(THREADS)
fn matmul_coop(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
    @builtin(subgroup_id) sg: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    // This subgroup's 32 rows and TILE / 2 columns of the tile.
    let qr = (sg >> 1u) * 32u;
    let qc = (sg & 1u) * (TILE / 2u);
    let tiles_n = (p.n + TILE - 1u) / TILE;
    let tiles_m = (p.m + TILE - 1u) / TILE;
    for (var bz = wid.z; bz < p.batch; bz += GRID_MAX) {
        let a_base = p.a_offset + bz * p.a_sb;
        let b_base = p.b_offset + bz * p.b_sb;
        let c_base = bz * p.m * p.n;
        for (var tm = wid.y; tm < tiles_m; tm += GRID_MAX) {
            for (var tn = wid.x; tn < tiles_n; tn += GRID_MAX) {
                let m0 = tm * TILE;
                let n0 = tn * TILE;
                // acc<row><col>: rows qr + 16 row, columns qc + 16 col; the
                // columns 2 and 3 only when WIDE.
                var acc00 = coop_mat16x16<f32, C>();
                var acc01 = coop_mat16x16<f32, C>();
                var acc02 = coop_mat16x16<f32, C>();
                var acc03 = coop_mat16x16<f32, C>();
                var acc10 = coop_mat16x16<f32, C>();
                var acc11 = coop_mat16x16<f32, C>();
                var acc12 = coop_mat16x16<f32, C>();
                var acc13 = coop_mat16x16<f32, C>();
                for (var k0 = 0u; k0 < p.k; k0 += CK) {
                    stage(t, a_base, b_base, m0, n0, k0);
                    workgroupBarrier();
                    for (var kk = 0u; kk < CK; kk += 16u) {
                        let a0 = coopLoadT<coop_mat16x16<f16, A>>(&as_[qr * CK + kk], CK);
                        let a1 = coopLoadT<coop_mat16x16<f16, A>>(&as_[(qr + 16u) * CK + kk], CK);
                        let b0 = coopLoadT<coop_mat16x16<f16, B>>(&bs[kk * TILE + qc], TILE);
                        let b1 = coopLoadT<coop_mat16x16<f16, B>>(&bs[kk * TILE + qc + 16u], TILE);
                        acc00 = coopMultiplyAdd(a0, b0, acc00);
                        acc01 = coopMultiplyAdd(a0, b1, acc01);
                        acc10 = coopMultiplyAdd(a1, b0, acc10);
                        acc11 = coopMultiplyAdd(a1, b1, acc11);
                        if (WIDE) {
                            let b2 = coopLoadT<coop_mat16x16<f16, B>>(&bs[kk * TILE + qc + 32u], TILE);
                            let b3 = coopLoadT<coop_mat16x16<f16, B>>(&bs[kk * TILE + qc + 48u], TILE);
                            acc02 = coopMultiplyAdd(a0, b2, acc02);
                            acc03 = coopMultiplyAdd(a0, b3, acc03);
                            acc12 = coopMultiplyAdd(a1, b2, acc12);
                            acc13 = coopMultiplyAdd(a1, b3, acc13);
                        }
                    }
                    workgroupBarrier();
                }
                let r0 = m0 + qr;
                let c0 = n0 + qc;
                store_tile(acc00, sg, lane, c_base, r0, c0);
                store_tile(acc01, sg, lane, c_base, r0, c0 + 16u);
                store_tile(acc10, sg, lane, c_base, r0 + 16u, c0);
                store_tile(acc11, sg, lane, c_base, r0 + 16u, c0 + 16u);
                if (WIDE) {
                    store_tile(acc02, sg, lane, c_base, r0, c0 + 32u);
                    store_tile(acc03, sg, lane, c_base, r0, c0 + 48u);
                    store_tile(acc12, sg, lane, c_base, r0 + 16u, c0 + 32u);
                    store_tile(acc13, sg, lane, c_base, r0 + 16u, c0 + 48u);
                }
            }
        }
    }
}
