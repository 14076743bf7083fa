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

// Mirrors `IndexParams` in crates/lam-wgpu/src/params.rs.
struct Params {
    numel: u32,
    rank: u32,
    dim: u32,
    src_offset: u32,
    idx_offset: u32,
    // index_select: the length of the 1-d index; scatter_add: index.shape[dim].
    idx_len: u32,
    // Size of src along `dim` (index_select, gather) for range checks.
    src_dim: u32,
    idx_stride1d: u32,
    shape: array<vec4<u32>, 2>,
    src_stride: array<vec4<u32>, 2>,
    idx_shape: array<vec4<u32>, 2>,
    idx_stride: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read> index: array<i32>;
@group(0) @binding(3) var<storage, read_write> dst: array<u32>;

const WG: u32 = 256u;
const GRID_X: u32 = 65535u;

fn at(a: array<vec4<u32>, 2>, d: u32) -> u32 {
    return a[d >> 2u][d & 3u];
}

fn element(wid: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * GRID_X) * WG + lid;
}

// out[.., i, ..] = src[.., index[i], ..] along dim; out has p.shape.
@compute @workgroup_size(WG)
fn index_select(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, lid);
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
fn gather(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, lid);
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
fn scatter_add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, lid);
    if (i >= p.numel) {
        return;
    }
    var rem = i;
    var ioff = p.idx_offset;
    var soff = p.src_offset;
    var target_pos = 0u;
    var inside = true;
    for (var k = 0u; k < p.rank; k++) {
        let d = p.rank - 1u - k;
        let n = at(p.shape, d);
        let c = rem % n;
        rem = rem / n;
        if (d == p.dim) {
            target_pos = c;
        } else {
            // Output positions beyond the index's extent receive nothing.
            inside = inside && c < at(p.idx_shape, d);
            ioff += c * at(p.idx_stride, d);
            soff += c * at(p.src_stride, d);
        }
    }
    var acc = 0.0;
    if (inside) {
        let istep = at(p.idx_stride, p.dim);
        let sstep = at(p.src_stride, p.dim);
        for (var j = 0u; j < p.idx_len; j++) {
            if (index[ioff + j * istep] == i32(target_pos)) {
                acc += bitcast<f32>(src[soff + j * sstep]);
            }
        }
    }
    dst[i] = bitcast<u32>(acc);
}
