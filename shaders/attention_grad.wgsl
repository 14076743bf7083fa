// The gradient of fused attention (FlashAttention-2's backward), the
// weights recomputed from the scores and each query row's terms
// (attention.wgsl's attention_rows: m, 1 / l, D = rowsum(dO * out)):
//   p = exp(s - m) / l,  ds = p (dO · v - D),
//   dq = scale Σ_j ds k_j,  dk = scale Σ_i ds q_i,  dv = Σ_i p dO_i.
//
// attention_grad_q: one thread per query row, keys and values streamed.
// attention_grad_kv: one thread per key row, queries and output gradients
// streamed; it owns its dk and dv rows, so nothing is summed across threads.

// #include "lib/attention_params.wgsl"

@group(0) @binding(7) var<storage, read> grad: array<f32>;
// Per query row (m, 1 / l, D), contiguous [B·H, L, 3].
@group(0) @binding(8) var<storage, read> rows: array<f32>;
// dq [B·H, L, E], or dk [B·H, S, E]; and dv [B·H, S, Ev].
@group(0) @binding(9) var<storage, read_write> d_qk: array<f32>;
@group(0) @binding(10) var<storage, read_write> d_v: array<f32>;

var<workgroup> a_tile: array<f32, TILE_FLOATS>;
var<workgroup> b_tile: array<f32, TILE_FLOATS>;
var<workgroup> row_tile: array<f32, TILE * 3u>;

// The weight of score `s` in query row `r` (its (m, 1 / l, D) at rows[3r]).
fn weight(s: f32, r: u32) -> f32 {
    return select(exp(s - rows[r * 3u]) * rows[r * 3u + 1u], 0.0, s <= HALF_NEG_BIG);
}

@compute @workgroup_size(ROWS)
fn attention_grad_q(t: Thread) {
    let b = block(t, p.l, ROWS);
    let bh = b.x;
    if (bh >= p.bh) {
        return;
    }
    let i = b.y + t.lid;
    let live = i < p.l;
    let ic = min(i, p.l - 1u);
    var qi: array<f32, D_MAX>;
    var gi: array<f32, D_MAX>;
    var acc: array<f32, D_MAX>;
    for (var d = 0u; d < HEAD_D; d++) {
        qi[d] = select(0.0, q[q_at(bh, ic, min(d, p.e - 1u))], d < p.e);
        gi[d] = select(0.0, grad[g_at(bh, ic, min(d, p.ev - 1u))], d < p.ev);
        acc[d] = 0.0;
    }
    let r = bh * p.l + ic;
    let big_d = rows[r * 3u + 2u];
    let end = key_end(b.y, ROWS);
    for (var k0 = 0u; k0 < end; k0 += TILE) {
        let n = min(TILE, end - k0);
        for (var x = t.lid; x < n * HEAD_D; x += ROWS) {
            let j = x / HEAD_D;
            let d = x % HEAD_D;
            a_tile[x] = select(0.0, k[k_at(bh, k0 + j, min(d, p.e - 1u))], d < p.e);
            b_tile[x] = select(0.0, v[v_at(bh, k0 + j, min(d, p.ev - 1u))], d < p.ev);
        }
        workgroupBarrier();
        if (live) {
            for (var j = 0u; j < n; j++) {
                var dot = 0.0;
                for (var d = 0u; d < HEAD_D; d++) {
                    dot += qi[d] * a_tile[j * HEAD_D + d];
                }
                let w = weight(masked_score(bh, i, k0 + j, dot), r);
                var dp = 0.0;
                for (var d = 0u; d < HEAD_D; d++) {
                    dp += gi[d] * b_tile[j * HEAD_D + d];
                }
                let ds = w * (dp - big_d);
                for (var d = 0u; d < HEAD_D; d++) {
                    acc[d] += ds * a_tile[j * HEAD_D + d];
                }
            }
        }
        workgroupBarrier();
    }
    if (live) {
        for (var d = 0u; d < HEAD_D; d++) {
            if (d < p.e) {
                d_qk[r * p.e + d] = acc[d] * p.scale;
            }
        }
    }
}

@compute @workgroup_size(ROWS)
fn attention_grad_kv(t: Thread) {
    let b = block(t, p.s, ROWS);
    let bh = b.x;
    if (bh >= p.bh) {
        return;
    }
    let j = b.y + t.lid;
    let live = j < p.s;
    let jc = min(j, p.s - 1u);
    var kj: array<f32, D_MAX>;
    var vj: array<f32, D_MAX>;
    var dk: array<f32, D_MAX>;
    var dv: array<f32, D_MAX>;
    for (var d = 0u; d < HEAD_D; d++) {
        kj[d] = select(0.0, k[k_at(bh, jc, min(d, p.e - 1u))], d < p.e);
        vj[d] = select(0.0, v[v_at(bh, jc, min(d, p.ev - 1u))], d < p.ev);
        dk[d] = 0.0;
        dv[d] = 0.0;
    }
    // Causal: queries before this block's first key see none of its keys.
    let start = select(0u, min(b.y, p.l), p.causal != 0u);
    for (var i0 = start; i0 < p.l; i0 += TILE) {
        let n = min(TILE, p.l - i0);
        for (var x = t.lid; x < n * HEAD_D; x += ROWS) {
            let i = x / HEAD_D;
            let d = x % HEAD_D;
            a_tile[x] = select(0.0, q[q_at(bh, i0 + i, min(d, p.e - 1u))], d < p.e);
            b_tile[x] = select(0.0, grad[g_at(bh, i0 + i, min(d, p.ev - 1u))], d < p.ev);
        }
        for (var x = t.lid; x < n * 3u; x += ROWS) {
            row_tile[x] = rows[(bh * p.l + i0) * 3u + x];
        }
        workgroupBarrier();
        if (live) {
            for (var i = 0u; i < n; i++) {
                var dot = 0.0;
                for (var d = 0u; d < HEAD_D; d++) {
                    dot += a_tile[i * HEAD_D + d] * kj[d];
                }
                let s = masked_score(bh, i0 + i, j, dot);
                let w = select(exp(s - row_tile[i * 3u]) * row_tile[i * 3u + 1u], 0.0, s <= HALF_NEG_BIG);
                var dp = 0.0;
                for (var d = 0u; d < HEAD_D; d++) {
                    let g = b_tile[i * HEAD_D + d];
                    dv[d] += w * g;
                    dp += g * vj[d];
                }
                let ds = w * (dp - row_tile[i * 3u + 2u]);
                for (var d = 0u; d < HEAD_D; d++) {
                    dk[d] += ds * a_tile[i * HEAD_D + d];
                }
            }
        }
        workgroupBarrier();
    }
    if (live) {
        let r = bh * p.s + j;
        for (var d = 0u; d < HEAD_D; d++) {
            if (d < p.e) {
                d_qk[r * p.e + d] = dk[d] * p.scale;
            }
            if (d < p.ev) {
                d_v[r * p.ev + d] = dv[d];
            }
        }
    }
}
