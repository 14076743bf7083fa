// The softmax between the composite attention's two products (Backend
// `fused_attention_weights` and `fused_attention_weights_grad`), one
// workgroup per query row of the products `q kᵀ` [B, H, L, S]:
//
// - attention_weights: the row scaled, masked (additive mask, causal) and
//   normalised, and its statistics (m, l): a pass and a tree for the max,
//   a pass writing the exponentials and a tree for their sum, a pass
//   dividing them. Composing it took a dozen passes over the scores.
// - attention_weights_grad: rowsum(grad ∘ out) by a tree, then in one pass
//   the weights p = exp(x - m) / l, recomputed from the statistics, and
//   their gradient ds = p ∘ (dp - rowsum).
//
// Masked scores are NEG_BIG, never -inf (WGSL lets implementations assume
// no infinities): a row whose largest score is at or below HALF_NEG_BIG has
// no key to attend to (weights 0, statistics (0, 0)). A NaN or +inf score,
// found on the bits, makes its row NaN, as the fused attention kernels do.

// #include "lib/grid.wgsl"
// #include "lib/nan.wgsl"

const NEG_BIG: f32 = -3.0e38;
const HALF_NEG_BIG: f32 = -1.5e38;

// Mirrors `WeightsParams` in crates/lam-wgpu/src/ops/attention_weights.rs.
// Each view is an offset and the strides of its [B, H, row, col] dims.
struct Params {
    rows: u32,
    heads: u32,
    l: u32,
    s: u32,
    ev: u32,
    causal: u32,
    has_mask: u32,
    scale: f32,
    x_off: u32, x_b: u32, x_h: u32, x_r: u32, x_c: u32,
    m_off: u32, m_b: u32, m_h: u32, m_r: u32, m_c: u32,
    d_off: u32, d_b: u32, d_h: u32, d_r: u32, d_c: u32,
    g_off: u32, g_b: u32, g_h: u32, g_r: u32, g_c: u32,
    o_off: u32, o_b: u32, o_h: u32, o_r: u32, o_c: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// The products q kᵀ, not yet scaled.
@group(0) @binding(1) var<storage, read> scores: array<f32>;
// The additive mask; any buffer when p.has_mask is 0.
@group(0) @binding(2) var<storage, read> mask: array<f32>;
// The weights, contiguous [B·H·L, S].
@group(0) @binding(3) var<storage, read_write> weights: array<f32>;
// The statistics, contiguous [B·H·L, 2]: written by attention_weights,
// read by attention_weights_grad.
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;
// attention_weights_grad: dp = grad · vᵀ, the output's gradient, the
// output, and the scores' gradient it writes (contiguous [B·H·L, S]).
@group(0) @binding(5) var<storage, read> dp: array<f32>;
@group(0) @binding(6) var<storage, read> grad: array<f32>;
@group(0) @binding(7) var<storage, read> out: array<f32>;
@group(0) @binding(8) var<storage, read_write> ds: array<f32>;

var<workgroup> red: array<vec2<f32>, WG>;

// Where batch·head `bh`'s (row, col) lives, from a view's offset and strides.
fn at(bh: u32, row: u32, col: u32, off: u32, sb: u32, sh: u32, sr: u32, sc: u32) -> u32 {
    return off + (bh / p.heads) * sb + (bh % p.heads) * sh + row * sr + col * sc;
}

// The masked, scaled score of query i and key j of `bh`, NEG_BIG for a
// masked key; `bad` where it is NaN or +inf.
struct Score {
    x: f32,
    bad: bool,
}

fn score(bh: u32, i: u32, j: u32) -> Score {
    if (p.causal != 0u && j > i) {
        return Score(NEG_BIG, false);
    }
    var x = scores[at(bh, i, j, p.x_off, p.x_b, p.x_h, p.x_r, p.x_c)] * p.scale;
    if (p.has_mask != 0u) {
        x += mask[at(bh, i, j, p.m_off, p.m_b, p.m_h, p.m_r, p.m_c)];
    }
    let bad = is_nan(x) || bitcast<u32>(x) == 0x7f800000u;
    return Score(max(x, NEG_BIG), bad);
}

// The max of every thread's `v` (each component), returned to every thread.
fn tree_max(lid: u32, v: vec2<f32>) -> vec2<f32> {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] = max(red[lid], red[lid + s]);
        }
        workgroupBarrier();
    }
    let r = red[0];
    // Everyone has read the result before red is reused.
    workgroupBarrier();
    return r;
}

// The sum of every thread's `v`, returned to every thread.
fn tree_sum(lid: u32, v: f32) -> f32 {
    red[lid] = vec2<f32>(v, 0.0);
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    let r = red[0].x;
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(WG)
fn attention_weights(t: Thread) {
    let row = workgroup_index(t);
    // Uniform per workgroup, so the barriers below stay in uniform control flow.
    if (row >= p.rows) {
        return;
    }
    let bh = row / p.l;
    let i = row % p.l;
    let base = row * p.s;
    var m = NEG_BIG;
    var bad = 0.0;
    for (var j = t.lid; j < p.s; j += WG) {
        let x = score(bh, i, j);
        m = max(m, x.x);
        bad = select(bad, 1.0, x.bad);
    }
    let found = tree_max(t.lid, vec2<f32>(m, bad));
    m = found.x;
    if (found.y != 0.0 || m <= HALF_NEG_BIG) {
        // NaN for a bad row, 0 for a row with no key to attend to.
        let fill = select(0.0, bitcast<f32>(0x7fc00000u), found.y != 0.0);
        for (var j = t.lid; j < p.s; j += WG) {
            weights[base + j] = fill;
        }
        if (t.lid == 0u) {
            stats[row * 2u] = fill;
            stats[row * 2u + 1u] = fill;
        }
        return;
    }
    var sum = 0.0;
    for (var j = t.lid; j < p.s; j += WG) {
        let e = exp(score(bh, i, j).x - m);
        weights[base + j] = e;
        sum += e;
    }
    sum = tree_sum(t.lid, sum);
    // Each thread divides the exponentials it wrote itself.
    for (var j = t.lid; j < p.s; j += WG) {
        weights[base + j] = weights[base + j] / sum;
    }
    if (t.lid == 0u) {
        stats[row * 2u] = m;
        stats[row * 2u + 1u] = sum;
    }
}

@compute @workgroup_size(WG)
fn attention_weights_grad(t: Thread) {
    let row = workgroup_index(t);
    if (row >= p.rows) {
        return;
    }
    let bh = row / p.l;
    let i = row % p.l;
    let base = row * p.s;
    var dot = 0.0;
    for (var d = t.lid; d < p.ev; d += WG) {
        let g = grad[at(bh, i, d, p.g_off, p.g_b, p.g_h, p.g_r, p.g_c)];
        dot += g * out[at(bh, i, d, p.o_off, p.o_b, p.o_h, p.o_r, p.o_c)];
    }
    dot = tree_sum(t.lid, dot);
    let m = stats[row * 2u];
    let l = stats[row * 2u + 1u];
    let nan = is_nan(m) || is_nan(l);
    let inv = select(1.0 / l, 0.0, l == 0.0);
    for (var j = t.lid; j < p.s; j += WG) {
        let w = exp(score(bh, i, j).x - m) * inv;
        let d = dp[at(bh, i, j, p.d_off, p.d_b, p.d_h, p.d_r, p.d_c)];
        let nan_value = bitcast<f32>(0x7fc00000u);
        weights[base + j] = select(w, nan_value, nan);
        ds[base + j] = select(w * (d - dot), nan_value, nan);
    }
}
