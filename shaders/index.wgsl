// Indexing along one dim: index_select, gather and scatter_add.
//
// One invocation per output element; src and index are strided views.
// Values move as raw u32 words, so index_select and gather work on f32 and
// i32 data alike. Out-of-range indices read as 0 instead of faulting (lam-core
// validates index ranges on the host where it can).
//
// scatter_add is written as a gather: output element q sums, in ascending
// order of j, every src[.., j, ..] whose index[.., j, ..] equals q's coordinate
// along `dim`. That is deterministic and needs no float atomics; the cost is
// O(output x index extent along dim).

// #include "lib/index_params.wgsl"

@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read> index: array<i32>;
@group(0) @binding(3) var<storage, read_write> dst: array<u32>;

// out[.., i, ..] = src[.., index[i], ..] along dim; out has p.shape.
@compute @workgroup_size(WG)
fn index_select(t: Thread) {
    let i = element(t);
    if (i >= p.numel) {
        return;
    }
    var rem = i;
    var off = p.src_offset;
    var pick = 0i;
    for (var k = 0u; k < p.rank; k++) {
        let d = p.rank - 1u - k;
        let n = at(p.shape, d);
        var c = rem % n;
        rem = rem / n;
        if (d == p.dim) {
            pick = index[p.idx_offset + c * p.idx_stride1d];
            c = u32(max(pick, 0i));
        }
        off += c * at(p.src_stride, d);
    }
    dst[i] = select(0u, src[off], pick >= 0i && u32(pick) < p.src_dim);
}

// out[p] = src[p with p[dim] = index[p]]; out and index have p.shape.
@compute @workgroup_size(WG)
fn gather(t: Thread) {
    let i = element(t);
    if (i >= p.numel) {
        return;
    }
    // First pass finds index[p]; the second addresses src with it.
    var rem = i;
    var ioff = p.idx_offset;
    for (var k = 0u; k < p.rank; k++) {
        let d = p.rank - 1u - k;
        let n = at(p.shape, d);
        ioff += (rem % n) * at(p.idx_stride, d);
        rem = rem / n;
    }
    let pick = index[ioff];
    rem = i;
    var off = p.src_offset;
    for (var k = 0u; k < p.rank; k++) {
        let d = p.rank - 1u - k;
        let n = at(p.shape, d);
        var c = rem % n;
        rem = rem / n;
        if (d == p.dim) {
            c = u32(max(pick, 0i));
        }
        off += c * at(p.src_stride, d);
    }
    dst[i] = select(0u, src[off], pick >= 0i && u32(pick) < p.src_dim);
}

// out (shape p.shape, f32) = zeros, then out[.., index[.., j, ..], ..] += src[.., j, ..].
// index and src share idx_shape; src strides are src_stride.
@compute @workgroup_size(WG)
fn scatter_add(t: Thread) {
    let i = element(t);
    if (i >= p.numel) {
        return;
    }
    let s = scatter_slot(i);
    var acc = 0.0;
    if (s.inside) {
        let istep = at(p.idx_stride, p.dim);
        let sstep = at(p.src_stride, p.dim);
        for (var j = 0u; j < p.idx_len; j++) {
            if (index[s.idx + j * istep] == i32(s.pos)) {
                acc += bitcast<f32>(src[s.src + j * sstep]);
            }
        }
    }
    dst[i] = bitcast<u32>(acc);
}
