// scatter_add for the common case where the index depends only on the
// position j along `dim` (it is broadcast, stride 0, along every other dim):
// the gradients of index_select and embeddings.
//
// index.wgsl's general scatter_add makes every output element scan the whole
// index (O(output x J)). Here the index is first inverted once into lists,
// "which j land on row r", in compressed-sparse-row form:
//   csr_count  counts[r] = #{j : index[j] = r}        (integer atomics: exact)
//   csr_scan   offsets = exclusive prefix sum of counts; counts reset to 0
//   csr_fill   list[offsets[r] + k] = the k-th j of row r, in arrival order
//   csr_sort   each row's list sorted ascending, so sums run in index order
//   scatter_rows  out[.., r, ..] = sum over row r's list of src[.., j, ..]
// Atomics only ever add integers, and the sort fixes the summation order,
// so the result is deterministic and equals the CPU's loop order.

// Uses IndexParams with src_dim = R (the output's extent along dim),
// idx_len = J and idx_stride1d = the index's stride along dim.

// #include "lib/index_params.wgsl"

@group(0) @binding(1) var<storage, read> index: array<i32>;
@group(0) @binding(2) var<storage, read_write> counts: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read_write> offsets: array<u32>;
@group(0) @binding(4) var<storage, read_write> list: array<u32>;
@group(0) @binding(5) var<storage, read> src: array<f32>;
@group(0) @binding(6) var<storage, read_write> dst: array<f32>;

var<workgroup> partial: array<u32, WG>;

// The row index[j] sends j to, or R when it is out of range.
fn row_of(j: u32) -> u32 {
    let r = index[p.idx_offset + j * p.idx_stride1d];
    return select(p.src_dim, u32(r), r >= 0i && u32(r) < p.src_dim);
}

@compute @workgroup_size(WG)
fn csr_count(t: Thread) {
    let j = element(t);
    if (j >= p.idx_len) {
        return;
    }
    // Each index is checked here, once; csr_fill then skips the faulty ones.
    let r = index[p.idx_offset + j * p.idx_stride1d];
    if (index_ok(FAULT_SCATTER_ADD, r, p.src_dim)) {
        atomicAdd(&counts[u32(r)], 1u);
    }
}

// One workgroup: thread lid scans its contiguous slice of the R counts, the
// 256 slice totals are scanned in workgroup memory, then each thread writes
// its slice's offsets. offsets has R + 1 entries; the last is J.
@compute @workgroup_size(WG)
fn csr_scan(t: Thread) {
    let lid = t.lid;
    let per = (p.src_dim + WG - 1u) / WG;
    let start = min(lid * per, p.src_dim);
    let end = min(start + per, p.src_dim);
    var sum = 0u;
    for (var r = start; r < end; r++) {
        sum += atomicLoad(&counts[r]);
    }
    partial[lid] = sum;
    workgroupBarrier();
    if (lid == 0u) {
        var run = 0u;
        for (var u = 0u; u < WG; u++) {
            let c = partial[u];
            partial[u] = run;
            run += c;
        }
        offsets[p.src_dim] = run;
    }
    workgroupBarrier();
    var run = partial[lid];
    for (var r = start; r < end; r++) {
        offsets[r] = run;
        run += atomicLoad(&counts[r]);
        // The counts become per-row cursors for csr_fill.
        atomicStore(&counts[r], 0u);
    }
}

@compute @workgroup_size(WG)
fn csr_fill(t: Thread) {
    let j = element(t);
    if (j >= p.idx_len) {
        return;
    }
    let r = row_of(j);
    if (r < p.src_dim) {
        list[offsets[r] + atomicAdd(&counts[r], 1u)] = j;
    }
}

// Insertion sort of one row's list: rows are short (a handful of taps for
// convolutions, a token's occurrences for embeddings).
@compute @workgroup_size(WG)
fn csr_sort(t: Thread) {
    let r = element(t);
    if (r >= p.src_dim) {
        return;
    }
    let lo = offsets[r];
    let hi = offsets[r + 1u];
    for (var a = lo + 1u; a < hi; a++) {
        let v = list[a];
        var b = a;
        while (b > lo && list[b - 1u] > v) {
            list[b] = list[b - 1u];
            b -= 1u;
        }
        list[b] = v;
    }
}

// out has p.shape; src has idx_shape with src_stride. Positions beyond the
// index's extent in a dim other than `dim` receive nothing.
@compute @workgroup_size(WG)
fn scatter_rows(t: Thread) {
    let i = element(t);
    if (i >= p.numel) {
        return;
    }
    let w = walk(i);
    var acc = 0.0;
    if (w.inside) {
        let step = at(p.src_stride, p.dim);
        for (var k = offsets[w.pos]; k < offsets[w.pos + 1u]; k++) {
            acc += src[w.src + list[k] * step];
        }
    }
    dst[i] = acc;
}
