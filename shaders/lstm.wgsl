// The gate arithmetic of one LSTM or GRU step and its gradient, one thread
// per (batch row, hidden unit): each thread reads its unit's gates from the
// two projections and writes every output of that unit, so a step is one
// dispatch. Gate order is PyTorch's: LSTM i, f, g, o; GRU r, z, n. The
// formulas are lam-core's (crates/lam-core/src/nn/rnn/fused.rs) term for
// term. Inputs are [rows, cols] views read through their strides; outputs
// are contiguous. The two lstm_sequence_step kernels are the LSTM's step
// within a whole layer's loop (Backend `fused_lstm_sequence` and its
// gradient): they write into the sequence's buffers at the step's offsets,
// keep c (or its gradient) in a buffer they read and write, and the
// gradient's step adds the upstream gradient of h itself.

// #include "lib/grid.wgsl"
// #include "lib/activations.wgsl"

// Mirrors `LstmParams` in crates/lam-wgpu/src/params.rs: the step's size,
// flags, per input k its view as (offset, row stride, column stride, -),
// and the sequence kernels' offsets into their outputs.
struct Params {
    rows: u32,
    hidden: u32,
    numel: u32,
    flags: u32,
    views: array<vec4<u32>, 5>,
    offsets: vec4<u32>,
}

// lstm_sequence_step_grad: in1 holds the gradient reaching h from the step
// run after this one (absent for the last step run).
const HAS_DH: u32 = 1u;

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

// An LSTM unit's activated gates, i, f, g, o.
struct Gates {
    i: f32,
    f: f32,
    g: f32,
    o: f32,
}

// The gates of unit j of row r from the input and hidden projections, in0
// and in1 ([rows, 4H] views 0 and 1).
fn lstm_gates(r: u32, j: u32) -> Gates {
    let h = p.hidden;
    var a: Gates;
    a.i = sigmoid(in0[at(0u, r, j)] + in1[at(1u, r, j)]);
    a.f = sigmoid(in0[at(0u, r, h + j)] + in1[at(1u, r, h + j)]);
    a.g = lam_tanh(in0[at(0u, r, 2u * h + j)] + in1[at(1u, r, 2u * h + j)]);
    a.o = sigmoid(in0[at(0u, r, 3u * h + j)] + in1[at(1u, r, 3u * h + j)]);
    return a;
}

// Writes gates `a` of unit j of row r into `out1` at `offset`, [rows, 4H].
fn put_gates(offset: u32, r: u32, j: u32, a: Gates) {
    let h = p.hidden;
    let base = offset + r * 4u * h + j;
    out1[base] = a.i;
    out1[base + h] = a.f;
    out1[base + 2u * h] = a.g;
    out1[base + 3u * h] = a.o;
}

// The gates of unit j of row r from in2 ([rows, 4H] view 2).
fn saved_gates(r: u32, j: u32) -> Gates {
    let h = p.hidden;
    return Gates(
        in2[at(2u, r, j)],
        in2[at(2u, r, h + j)],
        in2[at(2u, r, 2u * h + j)],
        in2[at(2u, r, 3u * h + j)],
    );
}

// From the gradients dh and dc reaching a unit's h' and c', its gates `a`,
// c and c': writes the gradient of the summed projections into out0 at
// `offset` ([rows, 4H]) and returns that of c.
fn lstm_grads(offset: u32, r: u32, j: u32, dh: f32, dc: f32, a: Gates, c: f32, c_new: f32) -> f32 {
    let h = p.hidden;
    let tc = lam_tanh(c_new);
    let d_cell = dc + dh * a.o * (1.0 - tc * tc);
    let base = offset + r * 4u * h + j;
    out0[base] = d_cell * a.g * a.i * (1.0 - a.i);
    out0[base + h] = d_cell * c * a.f * (1.0 - a.f);
    out0[base + 2u * h] = d_cell * a.i * (1.0 - a.g * a.g);
    out0[base + 3u * h] = dh * tc * a.o * (1.0 - a.o);
    return d_cell * a.f;
}

// in0, in1: the input and hidden projections [rows, 4H]; in2: c [rows, H].
// out0: h' then c' ([2, rows, H]); out1: the activated gates [rows, 4H].
@compute @workgroup_size(WG)
fn lstm_cell(t: Thread) {
    let e = element(t);
    if (e >= p.numel) {
        return;
    }
    let r = e / p.hidden;
    let j = e % p.hidden;
    let a = lstm_gates(r, j);
    let c_new = a.f * in2[at(2u, r, j)] + a.i * a.g;
    out0[e] = a.o * lam_tanh(c_new);
    out0[p.numel + e] = c_new;
    put_gates(0u, r, j, a);
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
    let r = e / p.hidden;
    let j = e % p.hidden;
    let dh = in0[at(0u, r, j)];
    let dc = in1[at(1u, r, j)];
    let c = in3[at(3u, r, j)];
    out1[e] = lstm_grads(0u, r, j, dh, dc, saved_gates(r, j), c, in4[at(4u, r, j)]);
}

// One step of a whole layer's loop. in0: the step's input projection, in1:
// h Wₕₕᵀ ([rows, 4H] views). out0: the sequence's hs, h' written at
// offsets.x; out2: its cs, c read at offsets.w and c' written at offsets.y
// (one read-write binding: the buffer holds both); out1: its gates, written
// at offsets.z.
@compute @workgroup_size(WG)
fn lstm_sequence_step(t: Thread) {
    let e = element(t);
    if (e >= p.numel) {
        return;
    }
    let r = e / p.hidden;
    let j = e % p.hidden;
    let a = lstm_gates(r, j);
    let c_new = a.f * out2[p.offsets.w + e] + a.i * a.g;
    out0[p.offsets.x + e] = a.o * lam_tanh(c_new);
    out2[p.offsets.y + e] = c_new;
    put_gates(p.offsets.z, r, j, a);
}

// The gradient of one step of a whole layer's loop. in0: the gradient
// reaching the step's output h from outside the loop, in1 (under HAS_DH):
// that from the step run after it, summed; in2: the step's gates; in3: c,
// in4: c' [rows, H] views. out0: the gradient of the summed projections,
// written at offsets.x; out1: that of c, [rows, H] contiguous, read (from
// the step after) and overwritten in place.
@compute @workgroup_size(WG)
fn lstm_sequence_step_grad(t: Thread) {
    let e = element(t);
    if (e >= p.numel) {
        return;
    }
    let r = e / p.hidden;
    let j = e % p.hidden;
    var dh = in0[at(0u, r, j)];
    if ((p.flags & HAS_DH) != 0u) {
        dh = dh + in1[at(1u, r, j)];
    }
    let c = in3[at(3u, r, j)];
    let a = saved_gates(r, j);
    out1[e] = lstm_grads(p.offsets.x, r, j, dh, out1[e], a, c, in4[at(4u, r, j)]);
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
    let n = lam_tanh(in0[at(0u, r, 2u * h + j)] + rg * in1[at(1u, r, 2u * h + j)]);
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
