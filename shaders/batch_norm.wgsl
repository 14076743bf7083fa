// Batch normalization in training mode of an [N, C, L] view and its
// gradient, one workgroup per channel with tree reductions in workgroup
// memory. The forward pass: the channel's mean (summed about its first
// element, so a constant channel has exactly its value as mean and
// normalizes to exact zeros), its biased variance about that mean, then
// y = (x − mean) · invstd·weight + bias. The gradient: Σg and Σg·(x − mean),
// then dx = invstd·weight · (g − Σg/m − (x − mean) · invstd² · Σg·(x − mean)/m).
// The formulas are lam-core's (crates/lam-core/src/nn/batch_norm.rs).

// #include "lib/grid.wgsl"

// Mirrors `BatchNormParams` in crates/lam-wgpu/src/params.rs: sizes, flags,
// eps, and per view its offset and strides: x and grad as [N, C, L]
// (offset, N stride, C stride, L stride), the [C] vectors weight, bias,
// mean and invstd as (offset, stride, 0, 0).
struct Params {
    n: u32,
    c: u32,
    l: u32,
    flags: u32,
    eps: f32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
    views: array<vec4<u32>, 6>,
}

const HAS_WEIGHT: u32 = 1u;
const HAS_BIAS: u32 = 2u;
const X: u32 = 0u;
const GRAD: u32 = 1u;
const WEIGHT: u32 = 2u;
const BIAS: u32 = 3u;
const MEAN: u32 = 4u;
const INVSTD: u32 = 5u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> mean_in: array<f32>;
@group(0) @binding(6) var<storage, read> invstd_in: array<f32>;
@group(0) @binding(7) var<storage, read_write> out0: array<f32>;
@group(0) @binding(8) var<storage, read_write> out1: array<f32>;
@group(0) @binding(9) var<storage, read_write> out2: array<f32>;

var<workgroup> scratch: array<f32, WG>;

// Where value i (of the channel's N·L) of channel c of view k lies.
fn at(k: u32, c: u32, i: u32) -> u32 {
    let v = p.views[k];
    return v.x + (i / p.l) * v.y + c * v.z + (i % p.l) * v.w;
}

// Where value i of channel c lies in the contiguous [N, C, L] output.
fn out_at(c: u32, i: u32) -> u32 {
    return ((i / p.l) * p.c + c) * p.l + i % p.l;
}

// Element c of the [C] vector view k.
fn channel(k: u32, c: u32) -> u32 {
    let v = p.views[k];
    return v.x + c * v.y;
}

// The sum of every thread's `v`, returned to every thread.
fn tree_sum(lid: u32, v: f32) -> f32 {
    scratch[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            scratch[lid] += scratch[lid + s];
        }
        workgroupBarrier();
    }
    let r = scratch[0];
    // Everyone has read the result before scratch is reused.
    workgroupBarrier();
    return r;
}

fn weight_at(c: u32) -> f32 {
    if ((p.flags & HAS_WEIGHT) != 0u) {
        return weight[channel(WEIGHT, c)];
    }
    return 1.0;
}

// x, weight, bias. out0: y [N, C, L]; out1: [3, C] mean, variance, invstd.
@compute @workgroup_size(WG)
fn batch_norm(t: Thread) {
    let c = workgroup_index(t);
    if (c >= p.c) {
        return;
    }
    let m = p.n * p.l;
    let count = f32(m);
    // (With no values, the mean is 0 / 0.)
    var x0 = 0.0;
    if (m > 0u) {
        x0 = x[at(X, c, 0u)];
    }
    var s = 0.0;
    for (var i = t.lid; i < m; i += WG) {
        s += x[at(X, c, i)] - x0;
    }
    let mean = x0 + tree_sum(t.lid, s) / count;
    var q = 0.0;
    for (var i = t.lid; i < m; i += WG) {
        let d = x[at(X, c, i)] - mean;
        q += d * d;
    }
    let variance = tree_sum(t.lid, q) / count;
    let invstd = 1.0 / sqrt(variance + p.eps);
    let scale = invstd * weight_at(c);
    var shift = 0.0;
    if ((p.flags & HAS_BIAS) != 0u) {
        shift = bias[channel(BIAS, c)];
    }
    for (var i = t.lid; i < m; i += WG) {
        out0[out_at(c, i)] = (x[at(X, c, i)] - mean) * scale + shift;
    }
    if (t.lid == 0u) {
        out1[c] = mean;
        out1[p.c + c] = variance;
        out1[2u * p.c + c] = invstd;
    }
}

// x, grad, weight and the statistics (mean_in, invstd_in). out0: the
// input's gradient [N, C, L]; out1: Σ grad ⊙ x̂, out2: Σ grad ([C] each).
@compute @workgroup_size(WG)
fn batch_norm_grad(t: Thread) {
    let c = workgroup_index(t);
    if (c >= p.c) {
        return;
    }
    let m = p.n * p.l;
    let count = f32(m);
    let mean = mean_in[channel(MEAN, c)];
    let invstd = invstd_in[channel(INVSTD, c)];
    var sg = 0.0;
    var sgc = 0.0;
    for (var i = t.lid; i < m; i += WG) {
        let g = grad[at(GRAD, c, i)];
        sg += g;
        sgc += g * (x[at(X, c, i)] - mean);
    }
    let sum_g = tree_sum(t.lid, sg);
    let sum_gc = tree_sum(t.lid, sgc);
    let a = sum_g / count;
    let k = invstd * invstd * sum_gc / count;
    let scale = invstd * weight_at(c);
    for (var i = t.lid; i < m; i += WG) {
        let g = grad[at(GRAD, c, i)];
        out0[out_at(c, i)] = (g - a - (x[at(X, c, i)] - mean) * k) * scale;
    }
    if (t.lid == 0u) {
        out1[c] = sum_gc * invstd;
        out2[c] = sum_g;
    }
}
