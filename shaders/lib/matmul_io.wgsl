// What every matmul kernel shares: the parameter block, the operand and bias
// bindings, and the epilogue that applies `fused_linear`'s bias and ReLU as
// the output is written (bit 0 of EPILOGUE: add the bias row at binding 4;
// bit 1: a ReLU; bit 2: round the sum to f16 and widen it back first, as the
// cast kernel would round it, so that autocast's Linear, `fused_linear_f16`,
// adds its F32 bias to the F16 product). Without bit 0 the host binds any
// buffer there; it is not read. The output binding differs (words or vec4
// of words) and stays in each kernel.
//
// HALF_OUT: the output is an F16 buffer rather than an f32 one: each output
// value (after the epilogue) is rounded to f16 once, as the cast kernel
// rounds it, and a thread writes the two halves of a word together (`pair`),
// which needs an even N (the host sees to it). f32 outputs are written as
// their bits.
//
// HALF: A and B are F16 buffers (two halves per word, see lib/half.wgsl)
// rather than f32 ones; elements are read as halves, widened exactly to
// f32, and the kernels accumulate in f32 as for f32 operands. Offsets and
// strides count elements either way, so every view reads as it does in
// f32, and a "vec4" load is four consecutive elements: 16 bytes of f32 or
// 8 of halves, aligned alike (the element index a multiple of 4).
// A_HALF, B_HALF: only A (or only B) is F16, the other f32 (autocast's
// convolution gradient: F16 columns or weight times an f32 gradient).
// HALF_HW: halves are widened by the hardware (unpack2x16float, an
// instruction or two) rather than by lib/half.wgsl's integer code (a dozen
// with branches, on every element staged); the host sets it where a check
// on the device found the hardware exact for every half, subnormals too.

// #include "lib/nan.wgsl"
// #include "lib/half.wgsl"

// Mirrors `MatmulParams` in crates/lam-wgpu/src/params.rs.
struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    a_offset: u32,
    a_sb: u32,
    a_sm: u32,
    a_sk: u32,
    b_offset: u32,
    b_sb: u32,
    b_sk: u32,
    b_sn: u32,
    bias_offset: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

override EPILOGUE: u32 = 0u;
override HALF: bool = false;
override HALF_OUT: bool = false;
override A_HALF: bool = false;
override B_HALF: bool = false;
override HALF_HW: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
// Bound as vec4 so the fast modes load 16 bytes at once; scalar modes pick a
// component (every lam buffer is a multiple of 16 bytes long). The words
// are u32 so that halves are read as the bits they are; f32 operands are
// reinterpreted, which is free.
@group(0) @binding(1) var<storage, read> a: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

// Element i of A or B (scalar loads of the general modes).
fn a_at(i: u32) -> f32 {
    if (HALF || A_HALF) {
        return widen(a[i >> 3u][(i >> 1u) & 3u], i);
    }
    return bitcast<f32>(a[i >> 2u][i & 3u]);
}

fn b_at(i: u32) -> f32 {
    if (HALF || B_HALF) {
        return widen(b[i >> 3u][(i >> 1u) & 3u], i);
    }
    return bitcast<f32>(b[i >> 2u][i & 3u]);
}

// Half `e` (its index in the buffer) of `word`, widened to f32 exactly.
fn widen(word: u32, e: u32) -> f32 {
    if (HALF_HW) {
        return unpack2x16float(word)[e & 1u];
    }
    return half_value(half_of_word(word, e));
}

// Elements i..i+3 of A or B, i a multiple of 4 (the vec4 load modes).
fn a_quad(i: u32) -> vec4<f32> {
    if (HALF || A_HALF) {
        return halves4(a[i >> 3u], i);
    }
    return bitcast<vec4<f32>>(a[i >> 2u]);
}

fn b_quad(i: u32) -> vec4<f32> {
    if (HALF || B_HALF) {
        return halves4(b[i >> 3u], i);
    }
    return bitcast<vec4<f32>>(b[i >> 2u]);
}

// The four halves i..i+3 (i a multiple of 4) of the 16 bytes `q` holding
// them and four more: the low two words when i % 8 == 0, else the high two.
fn halves4(q: vec4<u32>, i: u32) -> vec4<f32> {
    let w = select(q.xy, q.zw, (i & 4u) != 0u);
    if (HALF_HW) {
        return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
    }
    return vec4<f32>(
        half_value(w.x & 0xffffu),
        half_value(w.x >> 16u),
        half_value(w.y & 0xffffu),
        half_value(w.y >> 16u),
    );
}

// Each grid dimension is at most GRID_MAX; larger extents loop.
const GRID_MAX: u32 = 65535u;
// Depth of the K-slab both kernels stage in workgroup memory per step.
const TK: u32 = 16u;

// The output value at column `col`: plus the bias, through a ReLU, or as is.
fn epilogue(x: f32, col: u32) -> f32 {
    var y = x;
    if ((EPILOGUE & 4u) != 0u) {
        y = half_value(f32_to_f16(bitcast<u32>(y)));
    }
    if ((EPILOGUE & 1u) != 0u) {
        y += bias[p.bias_offset + col];
    }
    if ((EPILOGUE & 2u) != 0u) {
        // A NaN passes, as in PyTorch.
        y = select(y, 0.0, y < 0.0 && !is_nan(y));
    }
    return y;
}

// Four output values at columns col..col+3.
fn epilogue4(v: vec4<f32>, col: u32) -> vec4<f32> {
    return vec4<f32>(
        epilogue(v.x, col),
        epilogue(v.y, col + 1u),
        epilogue(v.z, col + 2u),
        epilogue(v.w, col + 3u),
    );
}

// Output columns col and col + 1, through the epilogue, rounded to f16 and
// packed into one word (the even column in the low half).
fn pair(x: f32, y: f32, col: u32) -> u32 {
    let lo = f32_to_f16(bitcast<u32>(epilogue(x, col)));
    let hi = f32_to_f16(bitcast<u32>(epilogue(y, col + 1u)));
    return lo | (hi << 16u);
}
