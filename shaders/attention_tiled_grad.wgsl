// The gradient of fused attention, workgroup-tiled (FlashAttention-2's
// backward without atomics; the layout of the work is in
// lib/attention_tiles.wgsl). The weights are recomputed from the scores
// and each query row's terms (attention.wgsl's attention_rows:
// m, 1 / l, D = rowsum(dO * out)):
//   p = exp(s - m) / l,  ds = p (dO · v - D),
//   dq = scale Σ_j ds k_j,  dk = scale Σ_i ds q_i,  dv = Σ_i p dO_i.
//
// attention_tiled_grad_q: a workgroup per block of OWN queries, key tiles
// streamed (under causal, only those up to the block's last query).
// attention_tiled_grad_kv: a workgroup per block of OWN keys, query tiles
// streamed (under causal, only those from the block's first key). Each
// owns its rows of dq, or of dk and dv, so nothing is summed across
// workgroups.

// #include "lib/attention_params.wgsl"
// #include "lib/attention_tiles.wgsl"

@group(0) @binding(7) var<storage, read> grad: array<f32>;
// Per query row (m, 1 / l, D), contiguous [B·H, L, 3].
@group(0) @binding(8) var<storage, read> rows: array<f32>;
// dq [B·H, L, E], or dk [B·H, S, E]; and dv [B·H, S, Ev].
@group(0) @binding(9) var<storage, read_write> d_qk: array<f32>;
@group(0) @binding(10) var<storage, read_write> d_v: array<f32>;

// attention_tiled_grad_kv: the (m, 1 / l, D) of the current query tile.
var<workgroup> tile_rows: array<f32, TILE_MAX * 3u>;

fn origin(src: u32, bh: u32) -> u32 {
    switch src {
        case SRC_Q: {
            return q_at(bh, 0u, 0u);
        }
        case SRC_K: {
            return k_at(bh, 0u, 0u);
        }
        case SRC_V: {
            return v_at(bh, 0u, 0u);
        }
        default: {
            return g_at(bh, 0u, 0u);
        }
    }
}

fn operand(src: u32, base: u32, row: u32, col: u32) -> f32 {
    switch src {
        case SRC_Q: {
            return q[base + row * p.q_r + col * p.q_c];
        }
        case SRC_K: {
            return k[base + row * p.k_r + col * p.k_c];
        }
        case SRC_V: {
            return v[base + row * p.v_r + col * p.v_c];
        }
        default: {
            return grad[base + row * p.g_r + col * p.g_c];
        }
    }
}

// ds of query i and key j from their product `dot`, dO_i · v_j (`dp`) and
// the query's (m, 1 / l, D); 0 where the key is masked out. Sets `w` to the
// weight p.
fn score_grad(bh: u32, i: u32, j: u32, dot: f32, dp: f32, m: f32, inv: f32, big_d: f32, w: ptr<function, f32>) -> f32 {
    let s = masked_score(bh, i, j, dot);
    *w = select(exp(s - m) * inv, 0.0, s <= HALF_NEG_BIG);
    return *w * (dp - big_d);
}

@compute @workgroup_size(THREADS)
fn attention_tiled_grad_q(t: Thread) {
    let b = block(t, p.l, OWN);
    let bh = b.x;
    if (bh >= p.bh) {
        return;
    }
    let first = b.y;
    let r = t.lid / LANES;
    let lane = t.lid % LANES;
    let i = first + r;
    let at = bh * p.l + min(i, p.l - 1u);
    let m = rows[at * 3u];
    let inv = rows[at * 3u + 1u];
    let big_d = rows[at * 3u + 2u];
    var acc: array<f32, PER_LANE>;
    let end = key_end(first, OWN);
    for (var k0 = 0u; k0 < end; k0 += TILE) {
        let dots = tile_dots(t.lid, bh, SRC_Q, first, p.l, SRC_K, k0, end, p.e);
        let dps = tile_dots(t.lid, bh, SRC_G, first, p.l, SRC_V, k0, end, p.ev);
        for (var y = 0u; y < TILE / LANES; y++) {
            let o = lane + LANES * y;
            let j = k0 + o;
            var ds = 0.0;
            if (i < p.l && j < end) {
                var w = 0.0;
                ds = score_grad(bh, i, j, dots[y], dps[y], m, inv, big_d, &w);
            }
            weights[r * TILE + o] = ds;
        }
        load_wide(t.lid, SRC_K, bh, k0, end, p.e);
        workgroupBarrier();
        accumulate(t.lid, &acc);
        workgroupBarrier();
    }
    if (i < p.l) {
        for (var x = 0u; x < HEAD_D / LANES; x++) {
            let c = lane + LANES * x;
            if (c < p.e) {
                d_qk[at * p.e + c] = acc[x] * p.scale;
            }
        }
    }
}

@compute @workgroup_size(THREADS)
fn attention_tiled_grad_kv(t: Thread) {
    let b = block(t, p.s, OWN);
    let bh = b.x;
    if (bh >= p.bh) {
        return;
    }
    let first = b.y;
    let r = t.lid / LANES;
    let lane = t.lid % LANES;
    let j = first + r;
    var dk: array<f32, PER_LANE>;
    var dv: array<f32, PER_LANE>;
    // Causal: queries before this block's first key see none of its keys.
    let start = select(0u, min(first, p.l), p.causal != 0u);
    for (var i0 = start; i0 < p.l; i0 += TILE) {
        for (var x = t.lid; x < TILE * 3u; x += THREADS) {
            var term = 0.0;
            if (i0 + x / 3u < p.l) {
                term = rows[(bh * p.l + i0) * 3u + x];
            }
            tile_rows[x] = term;
        }
        // tile_dots synchronises before anything reads tile_rows.
        let dots = tile_dots(t.lid, bh, SRC_K, first, p.s, SRC_Q, i0, p.l, p.e);
        let dps = tile_dots(t.lid, bh, SRC_V, first, p.s, SRC_G, i0, p.l, p.ev);
        var ds: array<f32, TILE_MAX / LANES>;
        for (var y = 0u; y < TILE / LANES; y++) {
            let o = lane + LANES * y;
            let i = i0 + o;
            var w = 0.0;
            if (i < p.l && j < p.s) {
                let terms = o * 3u;
                ds[y] = score_grad(bh, i, j, dots[y], dps[y], tile_rows[terms], tile_rows[terms + 1u], tile_rows[terms + 2u], &w);
            }
            weights[r * TILE + o] = w;
        }
        // dv += pᵀ dO.
        load_wide(t.lid, SRC_G, bh, i0, p.l, p.ev);
        workgroupBarrier();
        accumulate(t.lid, &dv);
        workgroupBarrier();
        // dk += dsᵀ q.
        for (var y = 0u; y < TILE / LANES; y++) {
            weights[r * TILE + lane + LANES * y] = ds[y];
        }
        load_wide(t.lid, SRC_Q, bh, i0, p.l, p.e);
        workgroupBarrier();
        accumulate(t.lid, &dk);
        workgroupBarrier();
    }
    if (j < p.s) {
        let at = bh * p.s + j;
        for (var x = 0u; x < HEAD_D / LANES; x++) {
            let c = lane + LANES * x;
            if (c < p.e) {
                d_qk[at * p.e + c] = dk[x] * p.scale;
            }
            if (c < p.ev) {
                d_v[at * p.ev + c] = dv[x];
            }
        }
    }
}
