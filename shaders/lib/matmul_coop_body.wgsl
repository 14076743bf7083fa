// The body of the cooperative-matrix matmul kernels, matmul_coop.wgsl
// (16 x 16 x 16 fragments) and matmul_coop8.wgsl (8 x 8 x 8, the size
// lavapipe offers): each defines FRAG, the fragment side, and the fragment
// types FragA (f16, A), FragB (f16, B) and FragC (f32, the accumulator),
// then includes this. See matmul_coop.wgsl for the algorithm; every size
// below scales with FRAG, so one kernel runs at either size.

// #include "lib/matmul_io.wgsl"

override A_MODE: u32 = 0u;
override B_MODE: u32 = 0u;
override WIDE: bool = false;
override LANES: u32 = 32u;

// The output's words: f32 bits, or under HALF_OUT two halves each.
@group(0) @binding(3) var<storage, read_write> c: array<u32>;

// The tile's side, the subgroups and the threads of a workgroup, and the
// depth of a K-slab.
override TILE: u32 = select(4u, 8u, WIDE) * FRAG;
override SUBGROUPS: u32 = select(4u, 8u, WIDE);
override THREADS: u32 = SUBGROUPS * LANES;
const CK: u32 = 2u * FRAG;

// as_[r * AS + kk]: A row r at depth kk; bs[kk * BS + col]: B row-major.
// The rows are padded by 8 halves (16 bytes, which keeps every fragment's
// start and stride 16-byte aligned) so that a fragment's rows start in
// different memory banks: unpadded, B's rows would be TILE halves apart
// and a fragment's 16 rows would all hit the same banks.
const PAD: u32 = 8u;
const AS: u32 = CK + PAD;
override BS: u32 = TILE + PAD;
var<workgroup> as_: array<f16, TILE * AS>;
var<workgroup> bs: array<f16, CK * BS>;
// One fragment of output per subgroup on its way out.
var<workgroup> cs: array<f32, SUBGROUPS * FRAG * FRAG>;

// Each thread moves QUADS quads (four consecutive elements) of A and of B
// per K-slab: TILE * CK / 4 of each, over THREADS threads (the host keeps
// QUADS within 1..=QUADS_MAX). A quad runs along the operand's contiguous
// dim (A along k in modes 1 and 2, else along m; B along n in modes 0 and
// 2, else along k), consecutive threads taking consecutive quads. In the
// vec4 modes (2, 3) it is one aligned vec4 load, in bounds or out as a
// whole (the host checks that the dim's size, the offset and the strides
// are multiples of 4); in the scalar modes, four loads checked one by one.
// (QUADS is TILE * CK / (4 THREADS), written out where used: naga 30's
// process_overrides panics on an `override QUADS` declared as that.)
const QUADS_MAX: u32 = 8u;
// Quads are held as the f16 values they are staged as. F16 operands
// (HALF, A_HALF, B_HALF) take the hardware's conversions, exact both ways
// for every half: lib/half.wgsl's integer conversions, which the other
// kernels use so as to need no shader-f16 feature, cost a dozen
// instructions an element, more than the tensor cores' work on it. f32
// operands are rounded to f16 once, as they are fetched.
alias Quads = array<vec4<f16>, QUADS_MAX>;

// The two halves of one word of an F16 buffer (the even element in the
// low half, as lib/half.wgsl packs them). naga 30 cannot bitcast a u32 to
// vec2<f16>, so they are widened to f32 and narrowed back, which is exact.
fn halves2(word: u32) -> vec2<f16> {
    return vec2<f16>(unpack2x16float(word));
}

// Element i of A or B as f16.
fn a_f16(i: u32) -> f16 {
    if (HALF || A_HALF) {
        return halves2(a[i >> 3u][(i >> 1u) & 3u])[i & 1u];
    }
    return f16(bitcast<f32>(a[i >> 2u][i & 3u]));
}

fn b_f16(i: u32) -> f16 {
    if (HALF || B_HALF) {
        return halves2(b[i >> 3u][(i >> 1u) & 3u])[i & 1u];
    }
    return f16(bitcast<f32>(b[i >> 2u][i & 3u]));
}

// Elements i..i+3 (i a multiple of 4) of A or B as f16: under HALF the low
// or high two words of the 16 bytes holding them and four more.
fn a_quad16(i: u32) -> vec4<f16> {
    if (HALF || A_HALF) {
        let w = select(a[i >> 3u].xy, a[i >> 3u].zw, (i & 4u) != 0u);
        return vec4<f16>(halves2(w.x), halves2(w.y));
    }
    return vec4<f16>(bitcast<vec4<f32>>(a[i >> 2u]));
}

fn b_quad16(i: u32) -> vec4<f16> {
    if (HALF || B_HALF) {
        let w = select(b[i >> 3u].xy, b[i >> 3u].zw, (i & 4u) != 0u);
        return vec4<f16>(halves2(w.x), halves2(w.y));
    }
    return vec4<f16>(bitcast<vec4<f32>>(b[i >> 2u]));
}

// The quad of A at (row r, depth kk) of the slab and its three successors
// along the quad's dim: zeros outside the product.
fn fetch_a(base: u32, r: u32, kk: u32) -> vec4<f16> {
    let along_k = A_MODE == 1u || A_MODE == 2u;
    if (A_MODE >= 2u) {
        let inside = r < p.m && kk < p.k;
        if (inside) {
            return a_quad16(base + r * p.a_sm + kk * p.a_sk);
        }
        return vec4<f16>(0.0h);
    }
    var q = vec4<f16>(0.0h);
    for (var j = 0u; j < 4u; j++) {
        let rj = select(r + j, r, along_k);
        let kj = select(kk, kk + j, along_k);
        if (rj < p.m && kj < p.k) {
            q[j] = a_f16(base + rj * p.a_sm + kj * p.a_sk);
        }
    }
    return q;
}

// The quad of B at (depth kk, column col) and its successors, as fetch_a.
fn fetch_b(base: u32, kk: u32, col: u32) -> vec4<f16> {
    let along_n = B_MODE == 0u || B_MODE == 2u;
    if (B_MODE >= 2u) {
        let inside = kk < p.k && col < p.n;
        if (inside) {
            return b_quad16(base + kk * p.b_sk + col * p.b_sn);
        }
        return vec4<f16>(0.0h);
    }
    var q = vec4<f16>(0.0h);
    for (var j = 0u; j < 4u; j++) {
        let kj = select(kk + j, kk, along_n);
        let cj = select(col, col + j, along_n);
        if (kj < p.k && cj < p.n) {
            q[j] = b_f16(base + kj * p.b_sk + cj * p.b_sn);
        }
    }
    return q;
}

// Where quad `q` of a slab starts: (row or depth, depth or column) of its
// first element, for A and for B.
fn a_quad_at(q: u32) -> vec2<u32> {
    if (A_MODE == 1u || A_MODE == 2u) {
        return vec2<u32>(q / (CK / 4u), (q % (CK / 4u)) * 4u);
    }
    return vec2<u32>((q % (TILE / 4u)) * 4u, q / (TILE / 4u));
}

fn b_quad_at(q: u32) -> vec2<u32> {
    if (B_MODE == 0u || B_MODE == 2u) {
        return vec2<u32>(q / (TILE / 4u), (q % (TILE / 4u)) * 4u);
    }
    return vec2<u32>((q % (CK / 4u)) * 4u, q / (CK / 4u));
}

// Loads this thread's quads of the slab at depth k0 (A rows m0.., B
// columns n0..) into registers.
fn fetch(t: u32, a_base: u32, b_base: u32, m0: u32, n0: u32, k0: u32,
         qa: ptr<function, Quads>, qb: ptr<function, Quads>) {
    for (var e = 0u; e < TILE * CK / (4u * THREADS); e++) {
        let q = t + e * THREADS;
        let ra = a_quad_at(q);
        (*qa)[e] = fetch_a(a_base, m0 + ra.x, k0 + ra.y);
        let rb = b_quad_at(q);
        (*qb)[e] = fetch_b(b_base, k0 + rb.x, n0 + rb.y);
    }
}

// Writes the quads fetched by `fetch` into workgroup memory:
// as_[r * AS + kk] and bs[kk * BS + col]. A quad's four halves are `step`
// apart (1 along a staged row, else a row's length), written out rather
// than looped over: wgpu gives every loop an iteration counter, which
// would cost more than the store it repeats.
fn stage(t: u32, qa: ptr<function, Quads>, qb: ptr<function, Quads>) {
    let a_step = select(AS, 1u, A_MODE == 1u || A_MODE == 2u);
    let b_step = select(1u, BS, B_MODE == 1u || B_MODE == 3u);
    for (var e = 0u; e < TILE * CK / (4u * THREADS); e++) {
        let q = t + e * THREADS;
        let ra = a_quad_at(q);
        let va = (*qa)[e];
        let ia = ra.x * AS + ra.y;
        as_[ia] = va.x;
        as_[ia + a_step] = va.y;
        as_[ia + 2u * a_step] = va.z;
        as_[ia + 3u * a_step] = va.w;
        let rb = b_quad_at(q);
        let vb = (*qb)[e];
        let ib = rb.x * BS + rb.y;
        bs[ib] = vb.x;
        bs[ib + b_step] = vb.y;
        bs[ib + 2u * b_step] = vb.z;
        bs[ib + 3u * b_step] = vb.w;
    }
}

// One fragment depth kk of the staged slab: this subgroup's 2 x 2 (WIDE:
// 2 x 4) fragment products, rows qr.., columns qc.. of the tile.
fn coop_mac(kk: u32, qr: u32, qc: u32,
            acc00: ptr<function, FragC>, acc01: ptr<function, FragC>,
            acc02: ptr<function, FragC>, acc03: ptr<function, FragC>,
            acc10: ptr<function, FragC>, acc11: ptr<function, FragC>,
            acc12: ptr<function, FragC>, acc13: ptr<function, FragC>) {
    let a0 = coopLoadT<FragA>(&as_[qr * AS + kk], AS);
    let a1 = coopLoadT<FragA>(&as_[(qr + FRAG) * AS + kk], AS);
    let b0 = coopLoadT<FragB>(&bs[kk * BS + qc], BS);
    let b1 = coopLoadT<FragB>(&bs[kk * BS + qc + FRAG], BS);
    *acc00 = coopMultiplyAdd(a0, b0, *acc00);
    *acc01 = coopMultiplyAdd(a0, b1, *acc01);
    *acc10 = coopMultiplyAdd(a1, b0, *acc10);
    *acc11 = coopMultiplyAdd(a1, b1, *acc11);
    if (WIDE) {
        let b2 = coopLoadT<FragB>(&bs[kk * BS + qc + 2u * FRAG], BS);
        let b3 = coopLoadT<FragB>(&bs[kk * BS + qc + 3u * FRAG], BS);
        *acc02 = coopMultiplyAdd(a0, b2, *acc02);
        *acc03 = coopMultiplyAdd(a0, b3, *acc03);
        *acc12 = coopMultiplyAdd(a1, b2, *acc12);
        *acc13 = coopMultiplyAdd(a1, b3, *acc13);
    }
}

// Writes accumulator `acc` (C rows row0.., columns col0..) through the
// subgroup's scratch tile. Every subgroup calls it equally often (WIDE is
// the same for all), so the barriers stay uniform.
fn store_tile(acc: FragC, sg: u32, lane: u32, c_base: u32, row0: u32, col0: u32) {
    let scratch = sg * FRAG * FRAG;
    coopStoreT(acc, &cs[scratch], FRAG);
    workgroupBarrier();
    if (HALF_OUT) {
        // A thread writes both halves of a word: columns col and col + 1
        // (N is even, and so are col0 and c_base, so col + 1 < N too).
        for (var e = 0u; e < FRAG * FRAG / (2u * LANES); e++) {
            let i = 2u * (lane + e * LANES);
            let row = row0 + i / FRAG;
            let col = col0 + i % FRAG;
            if (row < p.m && col < p.n) {
                let word = (c_base + row * p.n + col) / 2u;
                c[word] = pair(cs[scratch + i], cs[scratch + i + 1u], col);
            }
        }
    } else {
        for (var e = 0u; e < FRAG * FRAG / LANES; e++) {
            let i = lane + e * LANES;
            let row = row0 + i / FRAG;
            let col = col0 + i % FRAG;
            if (row < p.m && col < p.n) {
                c[c_base + row * p.n + col] = bitcast<u32>(epilogue(cs[scratch + i], col));
            }
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
    // This subgroup's 2 FRAG rows and TILE / 2 columns of the tile.
    let qr = (sg >> 1u) * 2u * FRAG;
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
                // acc<row><col>: rows qr + FRAG row, columns qc + FRAG col;
                // the columns 2 and 3 only when WIDE.
                var acc00 = FragC();
                var acc01 = FragC();
                var acc02 = FragC();
                var acc03 = FragC();
                var acc10 = FragC();
                var acc11 = FragC();
                var acc12 = FragC();
                var acc13 = FragC();
                // The next slab is fetched into registers while the
                // current one is multiplied, hiding the loads' latency.
                var qa: Quads;
                var qb: Quads;
                fetch(t, a_base, b_base, m0, n0, 0u, &qa, &qb);
                for (var k0 = 0u; k0 < p.k; k0 += CK) {
                    workgroupBarrier();
                    stage(t, &qa, &qb);
                    workgroupBarrier();
                    if (k0 + CK < p.k) {
                        fetch(t, a_base, b_base, m0, n0, k0 + CK, &qa, &qb);
                    }
                    // The slab's two fragment depths (CK = 2 FRAG), written
                    // out rather than looped over, as `stage` is.
                    coop_mac(0u, qr, qc, &acc00, &acc01, &acc02, &acc03,
                             &acc10, &acc11, &acc12, &acc13);
                    coop_mac(FRAG, qr, qc, &acc00, &acc01, &acc02, &acc03,
                             &acc10, &acc11, &acc12, &acc13);
                }
                let r0 = m0 + qr;
                let c0 = n0 + qc;
                store_tile(acc00, sg, lane, c_base, r0, c0);
                store_tile(acc01, sg, lane, c_base, r0, c0 + FRAG);
                store_tile(acc10, sg, lane, c_base, r0 + FRAG, c0);
                store_tile(acc11, sg, lane, c_base, r0 + FRAG, c0 + FRAG);
                if (WIDE) {
                    store_tile(acc02, sg, lane, c_base, r0, c0 + 2u * FRAG);
                    store_tile(acc03, sg, lane, c_base, r0, c0 + 3u * FRAG);
                    store_tile(acc12, sg, lane, c_base, r0 + FRAG, c0 + 2u * FRAG);
                    store_tile(acc13, sg, lane, c_base, r0 + FRAG, c0 + 3u * FRAG);
                }
            }
        }
    }
}
