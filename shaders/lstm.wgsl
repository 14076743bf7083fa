// The gate arithmetic of one LSTM or GRU step and its gradient, one thread
// per (batch row, hidden unit): each thread reads its unit's gates from the
// two projections and writes every output of that unit, so a step is one
// dispatch. Gate order is PyTorch's: LSTM i, f, g, o; GRU r, z, n. The
// formulas are lam-core's (crates/lam-core/src/nn/rnn/fused.rs) term for
// term. Inputs are [rows, cols] views read through their strides; outputs
// are contiguous.

// #include "lib/grid.wgsl"

// Mirrors `LstmParams` in crates/lam-wgpu/src/params.rs: the step's size
// and, per input k, its view as (offset, row stride, column stride, -).
struct Params {
    rows: u32,
    hidden: u32,
    numel: u32,
    _pad: u32,
    views: array<vec4<u32>, 5>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> in0: array<f32>;
@group(0) @binding(2) var<storage, read> in1: array<f32>;
@group(0) @binding(3) var<storage, read> in2: array<f32>;
@group(0) @binding(4) var<storage, read> in3: array<f32>;
@group(0) @binding(5) var<storage, read> in4: array<f32>;
@group(0) @binding(6) var<storage, read_write> out0: array<f32>;
@group(0) @binding(7) var<storage, read_write> out1: array<f32>;
@group(0) @binding(8) var<storage, read_write> out2: array<f32>;

// Where element (row, col) of input k lies in its buffer.
fn at(k: u32, row: u32, col: u32) -> u32 {
    let v = p.views[k];
    return v.x + row * v.y + col * v.z;
}

fn sigmoid(x: f32) -> f32 {
    // Both branches exponentiate only non-positive numbers, so nothing overflows.
    if (x >= 0.0) {
        return 1.0 / (1.0 + exp(-x));
    }
    let e = exp(x);
    return e / (1.0 + e);
}

// tanh(15) rounds to 1.0 in f32; the clamp avoids the overflow some
// drivers' tanh has for large |x|.
fn tanh_(x: f32) -> f32 {
    return tanh(clamp(x, -15.0, 15.0));
}

// in0, in1: the input and hidden projections [rows, 4H]; in2: c [rows, H].
// out0: h' then c' ([2, rows, H]); out1: the activated gates [rows, 4H].
@compute @workgroup_size(WG)
fn lstm_cell(t: Thread) {
    let e = element(t);
    if (e >= p.numel) {
        return;
    }
    let h = p.hidden;
    let r = e / h;
    let j = e % h;
    let i = sigmoid(in0[at(0u, r, j)] + in1[at(1u, r, j)]);
    let f = sigmoid(in0[at(0u, r, h + j)] + in1[at(1u, r, h + j)]);
    let g = tanh_(in0[at(0u, r, 2u * h + j)] + in1[at(1u, r, 2u * h + j)]);
    let o = sigmoid(in0[at(0u, r, 3u * h + j)] + in1[at(1u, r, 3u * h + j)]);
    let c_new = f * in2[at(2u, r, j)] + i * g;
    out0[e] = o * tanh_(c_new);
    out0[p.numel + e] = c_new;
    let base = r * 4u * h + j;
    out1[base] = i;
    out1[base + h] = f;
    out1[base + 2u * h] = g;
    out1[base + 3u * h] = o;
}

// in0: grad_h, in1: grad_c [rows, H]; in2: the activated gates [rows, 4H];
// in3: c, in4: c' [rows, H]. out0: the gradient of the summed projections
// [rows, 4H]; out1: that of c [rows, H].
@compute @workgroup_size(WG)
fn lstm_cell_grad(t: Thread) {
    let e = element(t);
    if (e >= p.numel) {
        return;
    }
    let h = p.hidden;
    let r = e / h;
    let j = e % h;
    let i = in2[at(2u, r, j)];
    let f = in2[at(2u, r, h + j)];
    let g = in2[at(2u, r, 2u * h + j)];
    let o = in2[at(2u, r, 3u * h + j)];
    let dh = in0[at(0u, r, j)];
    let tc = tanh_(in4[at(4u, r, j)]);
    let d_cell = in1[at(1u, r, j)] + dh * o * (1.0 - tc * tc);
    let base = r * 4u * h + j;
    out0[base] = d_cell * g * i * (1.0 - i);
    out0[base + h] = d_cell * in3[at(3u, r, j)] * f * (1.0 - f);
    out0[base + 2u * h] = d_cell * i * (1.0 - g * g);
    out0[base + 3u * h] = dh * tc * o * (1.0 - o);
    out1[e] = d_cell * f;
}

// in0, in1: the input and hidden projections [rows, 3H]; in2: h [rows, H].
// out0: h' [rows, H]; out1: the activated gates [rows, 3H].
@compute @workgroup_size(WG)
fn gru_cell(t: Thread) {
    let e = element(t);
    if (e >= p.numel) {
        return;
    }
    let h = p.hidden;
    let r = e / h;
    let j = e % h;
    let rg = sigmoid(in0[at(0u, r, j)] + in1[at(1u, r, j)]);
    let z = sigmoid(in0[at(0u, r, h + j)] + in1[at(1u, r, h + j)]);
    let n = tanh_(in0[at(0u, r, 2u * h + j)] + rg * in1[at(1u, r, 2u * h + j)]);
    out0[e] = n + z * (in2[at(2u, r, j)] - n);
    let base = r * 3u * h + j;
    out1[base] = rg;
    out1[base + h] = z;
    out1[base + 2u * h] = n;
}

// in0: grad_h [rows, H]; in1: the activated gates, in2: the hidden
// projection [rows, 3H]; in3: h [rows, H]. out0, out1: the gradients of the
// input and hidden projections [rows, 3H]; out2: that of h [rows, H].
@compute @workgroup_size(WG)
fn gru_cell_grad(t: Thread) {
    let e = element(t);
    if (e >= p.numel) {
        return;
    }
    let h = p.hidden;
    let r = e / h;
    let j = e % h;
    let rg = in1[at(1u, r, j)];
    let z = in1[at(1u, r, h + j)];
    let n = in1[at(1u, r, 2u * h + j)];
    let dh = in0[at(0u, r, j)];
    let dn = dh * (1.0 - z) * (1.0 - n * n);
    let dz = dh * (in3[at(3u, r, j)] - n) * z * (1.0 - z);
    let dr = dn * in2[at(2u, r, 2u * h + j)] * rg * (1.0 - rg);
    let base = r * 3u * h + j;
    out0[base] = dr;
    out0[base + h] = dz;
    out0[base + 2u * h] = dn;
    out1[base] = dr;
    out1[base + h] = dz;
    out1[base + 2u * h] = dn * rg;
    out2[e] = dh * z;
}
