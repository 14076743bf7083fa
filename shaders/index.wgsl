// Indexing along one dim: index_select, gather and scatter_add.
//
// One invocation per output element; src and index are strided views.
// Values move as raw u32 words, so index_select and gather work on f32 and
// i32 data alike. Every index is checked on the device: one outside the
// indexed dim reads nothing (its output element is 0) and is recorded as a
// fault for the host (see lib/range_fault.wgsl).
//
// scatter_add is written as a gather: output element q sums, in ascending
// order of j, every src[.., j, ..] whose index[.., j, ..] equals q's coordinate
// along `dim`. That is deterministic and needs no float atomics; the cost is
// O(output x index extent along dim).
//
// index_select and scatter_add run max(output, index) threads: thread i
// checks index element i once, so an index is checked even where the output
// is empty or never reads it.

// #include "lib/index_params.wgsl"

@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read> index: array<i32>;
@group(0) @binding(3) var<storage, read_write> dst: array<u32>;

// src[.., pick, ..] with `base` addressing src[.., 0, ..], or 0 when pick is
// outside the dim.
fn pick_from(base: u32, pick: i32) -> u32 {
    if (pick < 0i || u32(pick) >= p.src_dim) {
        return 0u;
    }
    return src[base + u32(pick) * at(p.src_stride, p.dim)];
}

// out[.., i, ..] = src[.., index[i], ..] along dim; out has p.shape.
@compute @workgroup_size(WG)
fn index_select(t: Thread) {
    let i = element(t);
    if (i < p.idx_len) {
        index_ok(FAULT_INDEX_SELECT, index[p.idx_offset + i * p.idx_stride1d], p.src_dim);
    }
    if (i >= p.numel) {
        return;
    }
    let w = walk(i);
    dst[i] = pick_from(w.src, index[p.idx_offset + w.pos * p.idx_stride1d]);
}

// out[q] = src[q with q[dim] = index[q]]; out and index have p.shape.
@compute @workgroup_size(WG)
fn gather(t: Thread) {
    let i = element(t);
    if (i >= p.numel) {
        return;
    }
    let w = walk(i);
    let pick = index[w.idx + w.pos * at(p.idx_stride, p.dim)];
    index_ok(FAULT_GATHER, pick, p.src_dim);
    dst[i] = pick_from(w.src, pick);
}

// The storage offset of element i of the index view (idx_shape, row-major).
fn index_element(i: u32) -> u32 {
    var rem = i;
    var off = p.idx_offset;
    for (var k = 0u; k < p.rank; k++) {
        let d = p.rank - 1u - k;
        let n = at(p.idx_shape, d);
        off += (rem % n) * at(p.idx_stride, d);
        rem = rem / n;
    }
    return off;
}

// Elements of the index view.
fn index_numel() -> u32 {
    var n = 1u;
    for (var d = 0u; d < p.rank; d++) {
        n *= at(p.idx_shape, d);
    }
    return n;
}

// out (shape p.shape, f32) = zeros, then out[.., index[.., j, ..], ..] += src[.., j, ..].
// index and src share idx_shape; src strides are src_stride.
@compute @workgroup_size(WG)
fn scatter_add(t: Thread) {
    let i = element(t);
    let rows = at(p.shape, p.dim);
    if (i < index_numel()) {
        index_ok(FAULT_SCATTER_ADD, index[index_element(i)], rows);
    }
    if (i >= p.numel) {
        return;
    }
    let w = walk(i);
    var acc = 0.0;
    if (w.inside) {
        let istep = at(p.idx_stride, p.dim);
        let sstep = at(p.src_stride, p.dim);
        for (var j = 0u; j < p.idx_len; j++) {
            // An index outside 0..rows matches no output element.
            if (index[w.idx + j * istep] == i32(w.pos)) {
                acc += bitcast<f32>(src[w.src + j * sstep]);
            }
        }
    }
    dst[i] = bitcast<u32>(acc);
}
