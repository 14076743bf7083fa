// Fused cross-entropy of a [rows, cols] view of logits against I32 targets:
// each row's loss and its gradient (softmax - onehot) / rows in one pass
// over the row, one workgroup per row (see lib/rows.wgsl).

// #include "lib/rows.wgsl"

@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(4) var<storage, read_write> loss: array<f32>;

// loss[row] = logsumexp(x) - x[target]; dst = (softmax(x) - onehot) / rows.
@compute @workgroup_size(WG)
fn cross_entropy(t: Thread) {
    let row = workgroup_index(t);
    if (row >= p.rows) {
        return;
    }
    let base = p.offset + row * p.row_stride;
    let stats = row_stats(t.lid, base);
    let m = stats.x;
    let inv_s = 1.0 / stats.y;
    let target_class = targets[p.t_offset + row * p.t_stride];
    // A target outside [0, cols) matches no column (lam-core validates targets).
    let tu = select(0xffffffffu, u32(target_class), target_class >= 0i);
    let out_base = row * p.cols;
    for (var j = t.lid; j < p.cols; j += WG) {
        let prob = exp(src[base + j * p.col_stride] - m) * inv_s;
        let hit = select(0.0, 1.0, j == tu);
        dst[out_base + j] = (prob - hit) * p.inv_rows;
    }
    if (t.lid == 0u) {
        var xt = m;
        if (tu < p.cols) {
            xt = src[base + tu * p.col_stride];
        }
        loss[row] = m + log(stats.y) - xt;
    }
}
