// What the row kernels share (softmax.wgsl, cross_entropy.wgsl): one
// workgroup per row of a [rows, cols] view, with tree reductions over the
// row in workgroup memory.
//
// The running max starts at -3.4e38 rather than -inf because WGSL lets
// implementations assume no infinities.
//
// HALF: the input is an F16 buffer (two halves per word, lib/half.wgsl),
// each element widened exactly to f32 as it is read; the arithmetic and
// the result are f32 either way.

// #include "lib/grid.wgsl"
// #include "lib/half.wgsl"
// #include "lib/exp_log.wgsl"

override HALF: bool = false;

// Mirrors `RowParams` in crates/lam-wgpu/src/params.rs.
struct Params {
    rows: u32,
    cols: u32,
    offset: u32,
    row_stride: u32,
    col_stride: u32,
    // cross_entropy: the targets view [rows].
    t_offset: u32,
    t_stride: u32,
    inv_rows: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
// Words: f32 bits, or two halves each under HALF (read through `x_at`).
@group(0) @binding(1) var<storage, read> src: array<u32>;
// The result, contiguous [rows, cols]: softmax, or the cross-entropy gradient.
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

var<workgroup> scratch: array<f32, WG>;

// The max (or the sum) of every thread's `v`, returned to every thread.
fn tree(lid: u32, v: f32, take_max: bool) -> f32 {
    scratch[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            let a = scratch[lid];
            let b = scratch[lid + s];
            scratch[lid] = select(a + b, max(a, b), take_max);
        }
        workgroupBarrier();
    }
    let r = scratch[0];
    // Everyone has read the result before scratch is reused.
    workgroupBarrier();
    return r;
}

// Input element `i` (a storage offset, in elements) as f32.
fn x_at(i: u32) -> f32 {
    if (HALF) {
        return half_value(half_of_word(src[i >> 1u], i));
    }
    return bitcast<f32>(src[i]);
}

// One row's place and statistics, as every row kernel starts.
struct Row {
    // Where the row starts in src, and in the contiguous dst.
    base: u32,
    out: u32,
    // Its max, and the sum of exp(x - max).
    max: f32,
    sum: f32,
}

// Row `row` (< p.rows) read by the workgroup; every thread gets the result.
fn load_row(lid: u32, row: u32) -> Row {
    let base = p.offset + row * p.row_stride;
    var m = -3.4e38;
    for (var j = lid; j < p.cols; j += WG) {
        m = max(m, x_at(base + j * p.col_stride));
    }
    m = tree(lid, m, true);
    var s = 0.0;
    for (var j = lid; j < p.cols; j += WG) {
        s += lam_exp(x_at(base + j * p.col_stride) - m);
    }
    return Row(base, row * p.cols, m, tree(lid, s, false));
}
