// Reductions (sum, max, min, argmax, argmin) over any set of axes.
//
// The host splits the input view into "kept" dims (one output row each) and
// "reduced" dims (the row's elements), each with its own strides, so reduced
// axes are logically last without moving any data. One workgroup reduces one
// chunk of one row: each thread folds a strided slice sequentially, then a
// tree in workgroup memory combines the 256 partials. The order of every
// addition is fixed by the shapes, so results are deterministic (no atomics).
//
// reduce_columns serves reductions whose output is a contiguous row of
// columns and whose reduced elements lie a row apart (a Linear's bias
// gradient, the column sums of [tokens, features]): a thread per column
// folds a chunk of rows in order, neighbouring threads reading neighbouring
// columns, and partials [chunks, columns] are reduced the same way.
//
// Rows longer than one chunk take two (or more) passes: the first writes
// `chunks` partials per row, the next reduces those as a contiguous row.
// Arg reductions carry (value, index) pairs and keep the first index on ties;
// in later passes `use_idx` makes the index come from the previous pass.

// #include "lib/grid.wgsl"
// #include "lib/dims.wgsl"
// #include "lib/nan.wgsl"

// Mirrors `ReduceParams` in crates/lam-wgpu/src/params.rs.
struct Params {
    rows: u32,
    len: u32,
    chunk: u32,
    chunks: u32,
    offset: u32,
    kept_rank: u32,
    red_rank: u32,
    use_idx: u32,
    kept_shape: Dims,
    kept_stride: Dims,
    red_shape: Dims,
    red_stride: Dims,
}

// 0 sum, 1 max, 2 min, 3 argmax, 4 argmin (`reduce_code` in kernels.rs).
override OP: u32 = 0u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> src_idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> out_val: array<f32>;
@group(0) @binding(4) var<storage, read_write> out_idx: array<i32>;

var<workgroup> s_val: array<f32, WG>;
var<workgroup> s_idx: array<u32, WG>;

fn row_offset(row: u32) -> u32 {
    var rem = row;
    var off = p.offset;
    for (var k = 0u; k < p.kept_rank; k++) {
        let d = p.kept_rank - 1u - k;
        let n = p.kept_shape[d >> 2u][d & 3u];
        off += (rem % n) * p.kept_stride[d >> 2u][d & 3u];
        rem = rem / n;
    }
    return off;
}

fn elem_offset(j: u32) -> u32 {
    var rem = j;
    var off = 0u;
    for (var k = 0u; k < p.red_rank; k++) {
        let d = p.red_rank - 1u - k;
        let n = p.red_shape[d >> 2u][d & 3u];
        off += (rem % n) * p.red_stride[d >> 2u][d & 3u];
        rem = rem / n;
    }
    return off;
}

// True when candidate (v, i) replaces the current (cv, ci). A NaN beats
// every number and only an earlier NaN beats it, as in PyTorch.
fn better(v: f32, i: u32, cv: f32, ci: u32) -> bool {
    if (is_nan(cv)) {
        return is_nan(v) && i < ci;
    }
    if (is_nan(v)) {
        return true;
    }
    switch OP {
        case 1u, 3u: { return v > cv || (v == cv && i < ci); }
        case 2u, 4u: { return v < cv || (v == cv && i < ci); }
        default: { return false; }
    }
}

// Workgroup `g` of the folded grid reduces chunk g % chunks of row g / chunks
// and writes result g, so partials land row-major as [rows, chunks].
@compute @workgroup_size(WG)
fn reduce(t: Thread) {
    let lid = t.lid;
    let g = workgroup_index(t);
    // `g` is uniform across the workgroup, so this early exit keeps the
    // barriers below in uniform control flow.
    if (g >= p.rows * p.chunks) {
        return;
    }
    let row = g / p.chunks;
    let start = (g % p.chunks) * p.chunk;
    let end = min(start + p.chunk, p.len);
    let count = min(end - min(start, end), WG);
    let base = row_offset(row);

    var acc = 0.0;
    var acc_i = 0u;
    var first = true;
    for (var j = start + lid; j < end; j += WG) {
        let off = base + elem_offset(j);
        let v = src[off];
        let i = select(j, u32(src_idx[off]), p.use_idx == 1u);
        if (OP == 0u) {
            acc += v;
        } else if (first || better(v, i, acc, acc_i)) {
            acc = v;
            acc_i = i;
        }
        first = false;
    }
    s_val[lid] = acc;
    s_idx[lid] = acc_i;
    workgroupBarrier();

    // Tree over the threads that saw at least one element (the first `count`).
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s && lid + s < count) {
            let v = s_val[lid + s];
            let i = s_idx[lid + s];
            if (OP == 0u) {
                s_val[lid] += v;
            } else if (better(v, i, s_val[lid], s_idx[lid])) {
                s_val[lid] = v;
                s_idx[lid] = i;
            }
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        // An empty row (len 0, so a single pass) sums to 0 (the untouched
        // s_val[0]); its max is -inf and its min +inf, as on the CPU.
        var r = s_val[0];
        if (count == 0u && OP == 1u) {
            r = bitcast<f32>(0xff800000u);
        } else if (count == 0u && OP == 2u) {
            r = bitcast<f32>(0x7f800000u);
        }
        out_val[g] = r;
        if (OP >= 3u) {
            out_idx[g] = i32(s_idx[0]);
        }
    }
}

// Workgroup `g` covers columns (g % blocks) * WG .. of chunk g / blocks,
// `blocks` being the column blocks; p.rows counts the columns (the kept
// dim, stride 1 at p.offset) and p.chunk the reduced elements per chunk.
// Partials land as [chunks, columns].
@compute @workgroup_size(WG)
fn reduce_columns(t: Thread) {
    let blocks = (p.rows + WG - 1u) / WG;
    let g = workgroup_index(t);
    let col = (g % blocks) * WG + t.lid;
    let chunk = g / blocks;
    if (col >= p.rows || chunk >= p.chunks) {
        return;
    }
    let start = chunk * p.chunk;
    let end = min(start + p.chunk, p.len);
    let base = p.offset + col;
    var acc = 0.0;
    var acc_i = 0u;
    var first = true;
    for (var j = start; j < end; j++) {
        let off = base + elem_offset(j);
        let v = src[off];
        let i = select(j, u32(src_idx[off]), p.use_idx == 1u);
        if (OP == 0u) {
            acc += v;
        } else if (first || better(v, i, acc, acc_i)) {
            acc = v;
            acc_i = i;
        }
        first = false;
    }
    // An empty column (len 0): sum 0, max -inf, min +inf, as in `reduce`.
    if (first && OP == 1u) {
        acc = bitcast<f32>(0xff800000u);
    } else if (first && OP == 2u) {
        acc = bitcast<f32>(0x7f800000u);
    }
    let at = chunk * p.rows + col;
    out_val[at] = acc;
    if (OP >= 3u) {
        out_idx[at] = i32(acc_i);
    }
}
