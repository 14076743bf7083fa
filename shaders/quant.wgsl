// The int8 product of dynamic quantization (Backend::matmul_i8): one thread
// per output element. Each thread quantizes four inputs of its row at a time
// (clamp(round(x / s), -127, 127), s the row's scale), packs them into a word as the weights
// are packed (four int8 values, lowest byte first), and takes the product
// with dot4I8Packed, which naga lowers to the adapter's packed-dot
// instruction where it has one (SPIR-V DotProductInput4x8BitPacked, DP4a)
// and to shifts and multiplies elsewhere. Sums stay in i32.

// #include "lib/grid.wgsl"
// #include "lib/nan.wgsl"

// Mirrors `QuantParams` in crates/lam-wgpu/src/params.rs.
struct Params {
    m: u32,
    n: u32,
    k: u32,
    words: u32,
    x_offset: u32,
    x_row_stride: u32,
    x_col_stride: u32,
    s_offset: u32,
    s_stride: u32,
    ws_offset: u32,
    ws_stride: u32,
    b_offset: u32,
    b_stride: u32,
    has_bias: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> x_scale: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<u32>;
@group(0) @binding(4) var<storage, read> w_scale: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> dst: array<f32>;
@group(0) @binding(7) var<storage, read_write> row_scale_out: array<f32>;

// Dynamic quantization's scale of each input row, max |x| / 127 (NaN for a
// row holding one), before matmul_i8 reads it: one thread per row.
@compute @workgroup_size(WG)
fn row_scale(t: Thread) {
    let row = element(t);
    if (row >= p.m) {
        return;
    }
    var m = 0.0;
    var nan = false;
    for (var c = 0u; c < p.k; c++) {
        let v = x[p.x_offset + row * p.x_row_stride + c * p.x_col_stride];
        nan = nan || is_nan(v);
        m = max(m, abs(v));
    }
    row_scale_out[row] = select(m / 127.0, bitcast<f32>(0x7fc00000u), nan);
}

// One input quantized, as an int8 in the low byte of a word.
fn quantize(row: u32, col: u32, inv: f32) -> u32 {
    if (col >= p.k) {
        return 0u;
    }
    let v = x[p.x_offset + row * p.x_row_stride + col * p.x_col_stride] * inv;
    // NaN fails both comparisons of clamp on some drivers: send it to 0.
    let q = select(0.0, clamp(round(v), -127.0, 127.0), v == v);
    return u32(i32(q)) & 0xffu;
}

// Output i's i32 sum, as f32, times its row's input scale.
fn row_product(i: u32) -> f32 {
    let row = i / p.n;
    let col = i % p.n;
    let s = x_scale[p.s_offset + row * p.s_stride];
    let inv = select(0.0, 1.0 / s, s > 0.0);
    var acc = 0;
    for (var w = 0u; w < p.words; w++) {
        let c = w * 4u;
        let packed = quantize(row, c, inv)
            | (quantize(row, c + 1u, inv) << 8u)
            | (quantize(row, c + 2u, inv) << 16u)
            | (quantize(row, c + 3u, inv) << 24u);
        acc += dot4I8Packed(packed, weight[col * p.words + w]);
    }
    return f32(acc) * s;
}

// Output i's weight scale and bias applied to `y`.
fn scale_column(i: u32, y: f32) -> f32 {
    let col = i % p.n;
    var out = y * w_scale[p.ws_offset + col * p.ws_stride];
    if (p.has_bias != 0u) {
        out += bias[p.b_offset + col * p.b_stride];
    }
    return out;
}

@compute @workgroup_size(WG)
fn matmul_i8(t: Thread) {
    let i = element(t);
    if (i >= p.m * p.n) {
        return;
    }
    dst[i] = scale_column(i, row_product(i));
}

// matmul_i8 in two passes, for devices that allow fewer than its six
// storage buffers in one kernel (four at least): the row-scaled sums, then
// the column scales and bias in place. The same operations in the same
// order, so the same bits.
@compute @workgroup_size(WG)
fn matmul_i8_rows(t: Thread) {
    let i = element(t);
    if (i >= p.m * p.n) {
        return;
    }
    dst[i] = row_product(i);
}

@compute @workgroup_size(WG)
fn matmul_i8_columns(t: Thread) {
    let i = element(t);
    if (i >= p.m * p.n) {
        return;
    }
    dst[i] = scale_column(i, dst[i]);
}
