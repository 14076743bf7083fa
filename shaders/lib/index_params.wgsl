// What the index kernels share (index.wgsl, index_scatter.wgsl): the
// parameter block, the walk from an output element to the index and src
// elements that serve it, and the device-side range check.

// #include "lib/grid.wgsl"
// #include "lib/dims.wgsl"
// #include "lib/range_fault.wgsl"

// Mirrors `IndexParams` in crates/lam-wgpu/src/params.rs.
struct Params {
    numel: u32,
    rank: u32,
    dim: u32,
    src_offset: u32,
    idx_offset: u32,
    // index_select: the length of the 1-d index; scatter_add: index.shape[dim].
    idx_len: u32,
    // The extent of the indexed dim: of src (index_select, gather), or of
    // the output (scatter_add's row lists).
    src_dim: u32,
    // index_select: the 1-d index's stride; row lists: its stride along dim.
    idx_stride1d: u32,
    shape: Dims,
    src_stride: Dims,
    idx_shape: Dims,
    idx_stride: Dims,
}

@group(0) @binding(0) var<uniform> p: Params;

// Output element `i` (p.shape, row-major) seen from the index and src views.
struct Walk {
    // Its coordinate along dim.
    pos: u32,
    // Storage offsets of index[.., 0, ..] and src[.., 0, ..] at its other
    // coordinates (index: through idx_stride, unused by index_select).
    idx: u32,
    src: u32,
    // False beyond the index's extent in a dim other than dim (scatter_add:
    // nothing lands there).
    inside: bool,
}

fn walk(i: u32) -> Walk {
    var w = Walk(0u, p.idx_offset, p.src_offset, true);
    var rem = i;
    for (var k = 0u; k < p.rank; k++) {
        let d = p.rank - 1u - k;
        let n = at(p.shape, d);
        let c = rem % n;
        rem = rem / n;
        if (d == p.dim) {
            w.pos = c;
        } else {
            w.inside = w.inside && c < at(p.idx_shape, d);
            w.idx += c * at(p.idx_stride, d);
            w.src += c * at(p.src_stride, d);
        }
    }
    return w;
}
