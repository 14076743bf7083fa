// Fused softmax, log-softmax and cross-entropy over the last dim of a
// [rows, cols] view (one file, so the row reductions are written once).
//
// One workgroup per row: a strided pass and a tree find the row max, a second
// pass and tree sum exp(x - max), a third writes the result. The running max
// starts at -3.4e38 rather than -inf because WGSL lets implementations assume
// no infinities. LOG selects log-softmax (x - max - log(sum)), which stays
// finite where softmax underflows. Cross-entropy computes each row's loss
// and its gradient (softmax - onehot) / rows in the same pass over the row.

// Mirrors `RowParams` in crates/lam-wgpu/src/params.rs.
struct Params {
    rows: u32,
    cols: u32,
    offset: u32,
    row_stride: u32,
    col_stride: u32,
    t_offset: u32,
    t_stride: u32,
    inv_rows: f32,
}

override LOG: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<i32>;
// softmax output, or the cross-entropy gradient; both contiguous [rows, cols].
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<storage, read_write> loss: array<f32>;

const WG: u32 = 256u;
const GRID_X: u32 = 65535u;

var<workgroup> scratch: array<f32, WG>;

fn tree_max(lid: u32, v: f32) -> f32 {
    scratch[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            scratch[lid] = max(scratch[lid], scratch[lid + s]);
        }
        workgroupBarrier();
    }
    let r = scratch[0];
    // Everyone has read the result before scratch is reused.
    workgroupBarrier();
    return r;
}

fn tree_sum(lid: u32, v: f32) -> f32 {
    scratch[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            scratch[lid] += scratch[lid + s];
        }
        workgroupBarrier();
    }
    let r = scratch[0];
    workgroupBarrier();
    return r;
}

// (max, sum of exp(x - max)) of the row starting at `base`.
fn row_stats(lid: u32, base: u32) -> vec2<f32> {
    var m = -3.4e38;
    for (var j = lid; j < p.cols; j += WG) {
        m = max(m, src[base + j * p.col_stride]);
    }
    m = tree_max(lid, m);
    var s = 0.0;
    for (var j = lid; j < p.cols; j += WG) {
        s += exp(src[base + j * p.col_stride] - m);
    }
    return vec2<f32>(m, tree_sum(lid, s));
}

@compute @workgroup_size(WG)
fn softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * GRID_X;
    // Uniform per workgroup, so the barriers below stay in uniform control flow.
    if (row >= p.rows) {
        return;
    }
    let base = p.offset + row * p.row_stride;
    let stats = row_stats(lid, base);
    let m = stats.x;
    let s = stats.y;
    let log_s = log(s);
    let inv_s = 1.0 / s;
    let out_base = row * p.cols;
    for (var j = lid; j < p.cols; j += WG) {
        let x = src[base + j * p.col_stride] - m;
        if (LOG) {
            dst[out_base + j] = x - log_s;
        } else {
            dst[out_base + j] = exp(x) * inv_s;
        }
    }
}

// loss[row] = logsumexp(x) - x[target]; dst = (softmax(x) - onehot) / rows.
@compute @workgroup_size(WG)
fn cross_entropy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * GRID_X;
    if (row >= p.rows) {
        return;
    }
    let base = p.offset + row * p.row_stride;
    let stats = row_stats(lid, base);
    let m = stats.x;
    let inv_s = 1.0 / stats.y;
    let t = targets[p.t_offset + row * p.t_stride];
    // A target outside [0, cols) matches no column (lam-core validates targets).
    let tu = select(0xffffffffu, u32(t), t >= 0i);
    let out_base = row * p.cols;
    for (var j = lid; j < p.cols; j += WG) {
        let prob = exp(src[base + j * p.col_stride] - m) * inv_s;
        let hit = select(0.0, 1.0, j == tu);
        dst[out_base + j] = (prob - hit) * p.inv_rows;
    }
    if (lid == 0u) {
        var xt = m;
        if (tu < p.cols) {
            xt = src[base + tu * p.col_stride];
        }
        loss[row] = m + log(stats.y) - xt;
    }
}
