// Layer normalization of the rows of a [rows, cols] view and its gradient.
// The forward pass and the input's gradient run one workgroup per row with
// tree reductions in workgroup memory (the row's mean, then its variance
// about that mean; the gradient's two row sums); the weight's and the
// bias's gradients sum chunks of rows per column, then the chunks. The
// formulas are lam-core's (crates/lam-core/src/nn/norm.rs).

// #include "lib/grid.wgsl"

// Mirrors `LayerNormParams` in crates/lam-wgpu/src/params.rs: sizes, flags,
// and per view (x, grad, weight, bias, mean, rstd) its offset and its row
// and column strides (vectors use the row stride).
struct Params {
    rows: u32,
    cols: u32,
    eps: f32,
    flags: u32,
    views: array<vec4<u32>, 6>,
}

const HAS_WEIGHT: u32 = 1u;
const HAS_BIAS: u32 = 2u;
const X: u32 = 0u;
const GRAD: u32 = 1u;
const WEIGHT: u32 = 2u;
const BIAS: u32 = 3u;
const MEAN: u32 = 4u;
const RSTD: u32 = 5u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> mean_in: array<f32>;
@group(0) @binding(6) var<storage, read> rstd_in: array<f32>;
@group(0) @binding(7) var<storage, read_write> out0: array<f32>;
@group(0) @binding(8) var<storage, read_write> out1: array<f32>;
@group(0) @binding(9) var<storage, read_write> out2: array<f32>;

var<workgroup> scratch: array<f32, WG>;

// Where element (row, col) of view k lies in its buffer.
fn at(k: u32, row: u32, col: u32) -> u32 {
    let v = p.views[k];
    return v.x + row * v.y + col * v.z;
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

fn weight_at(j: u32) -> f32 {
    if ((p.flags & HAS_WEIGHT) != 0u) {
        return weight[at(WEIGHT, j, 0u)];
    }
    return 1.0;
}

// x: the input. out0: y [rows, cols]; out1: mean, out2: rstd [rows].
@compute @workgroup_size(WG)
fn layer_norm(t: Thread) {
    let row = workgroup_index(t);
    if (row >= p.rows) {
        return;
    }
    let n = f32(p.cols);
    // Summed about the row's first element, so a constant row has exactly
    // its value as mean and normalizes to exact zeros.
    let x0 = x[at(X, row, 0u)];
    var s = 0.0;
    for (var j = t.lid; j < p.cols; j += WG) {
        s += x[at(X, row, j)] - x0;
    }
    let mean = x0 + tree_sum(t.lid, s) / n;
    var q = 0.0;
    for (var j = t.lid; j < p.cols; j += WG) {
        let d = x[at(X, row, j)] - mean;
        q += d * d;
    }
    let rstd = 1.0 / sqrt(tree_sum(t.lid, q) / n + p.eps);
    for (var j = t.lid; j < p.cols; j += WG) {
        var y = (x[at(X, row, j)] - mean) * rstd * weight_at(j);
        if ((p.flags & HAS_BIAS) != 0u) {
            y += bias[at(BIAS, j, 0u)];
        }
        out0[row * p.cols + j] = y;
    }
    if (t.lid == 0u) {
        out1[row] = mean;
        out2[row] = rstd;
    }
}

// The normalized element (row, j), from the saved statistics.
fn x_hat(row: u32, j: u32) -> f32 {
    return (x[at(X, row, j)] - mean_in[at(MEAN, row, 0u)]) * rstd_in[at(RSTD, row, 0u)];
}

// x, grad, weight and the statistics (mean_in, rstd_in).
// out0: the input's gradient [rows, cols].
@compute @workgroup_size(WG)
fn layer_norm_grad_input(t: Thread) {
    let row = workgroup_index(t);
    if (row >= p.rows) {
        return;
    }
    let n = f32(p.cols);
    var s = 0.0;
    var d = 0.0;
    for (var j = t.lid; j < p.cols; j += WG) {
        let gy = grad[at(GRAD, row, j)] * weight_at(j);
        s += gy;
        d += gy * x_hat(row, j);
    }
    let mean_gy = tree_sum(t.lid, s) / n;
    let mean_dot = tree_sum(t.lid, d) / n;
    let rstd = rstd_in[at(RSTD, row, 0u)];
    for (var j = t.lid; j < p.cols; j += WG) {
        let gy = grad[at(GRAD, row, j)] * weight_at(j);
        out0[row * p.cols + j] = rstd * (gy - mean_gy - x_hat(row, j) * mean_dot);
    }
}

// Rows each thread of layer_norm_grad_params sums.
const CHUNK_ROWS: u32 = 64u;

// x, grad and the statistics. out0: per chunk of CHUNK_ROWS rows and per
// column, Σ grad ⊙ x̂ ([chunks, cols]) then Σ grad (another [chunks, cols]),
// one thread per (chunk, column): a thread per column alone summing all the
// rows left all but a few hundred threads of a large GPU idle (0.9 ms for
// 4096 × 512 on an H200).
@compute @workgroup_size(WG)
fn layer_norm_grad_params(t: Thread) {
    let chunks = (p.rows + CHUNK_ROWS - 1u) / CHUNK_ROWS;
    let e = element(t);
    if (e >= chunks * p.cols) {
        return;
    }
    let c = e / p.cols;
    let j = e % p.cols;
    let end = min(p.rows, (c + 1u) * CHUNK_ROWS);
    var sw = 0.0;
    var sb = 0.0;
    for (var r = c * CHUNK_ROWS; r < end; r++) {
        let g = grad[at(GRAD, r, j)];
        sw += g * x_hat(r, j);
        sb += g;
    }
    out0[e] = sw;
    out0[chunks * p.cols + e] = sb;
}

// out0: layer_norm_grad_params' partial sums. out1: Σ_rows grad ⊙ x̂,
// out2: Σ_rows grad ([cols] each), one thread per column, the chunks summed
// in order (the same sums every run).
@compute @workgroup_size(WG)
fn layer_norm_grad_params_sum(t: Thread) {
    let j = element(t);
    if (j >= p.cols) {
        return;
    }
    let chunks = (p.rows + CHUNK_ROWS - 1u) / CHUNK_ROWS;
    var sw = 0.0;
    var sb = 0.0;
    for (var c = 0u; c < chunks; c++) {
        sw += out0[c * p.cols + j];
        sb += out0[(chunks + c) * p.cols + j];
    }
    out1[j] = sw;
    out2[j] = sb;
}
