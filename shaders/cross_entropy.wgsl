// Fused cross-entropy of a [rows, cols] view of logits against I32 targets:
// each row's loss and its gradient (softmax - onehot) / rows in one pass
// over the row, one workgroup per row (see lib/rows.wgsl; F16 logits are
// read as halves under its HALF constant). A target outside
// 0..cols matches no column and is recorded as a fault for the host (see
// lib/range_fault.wgsl).

// #include "lib/rows.wgsl"
// #include "lib/range_fault.wgsl"

@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(4) var<storage, read_write> loss: array<f32>;

// loss[row] = logsumexp(x) - x[target]; dst = (softmax(x) - onehot) / rows.
@compute @workgroup_size(WG)
fn cross_entropy(t: Thread) {
    let row = workgroup_index(t);
    if (row >= p.rows) {
        return;
    }
    let r = load_row(t.lid, row);
    let class_index = targets[p.t_offset + row * p.t_stride];
    // Every thread reads the target; thread 0 records a bad one.
    let valid = class_index >= 0i && u32(class_index) < p.cols;
    if (t.lid == 0u) {
        index_ok(FAULT_CROSS_ENTROPY, class_index, p.cols);
    }
    let hit_col = select(0xffffffffu, u32(class_index), valid);
    let inv_s = 1.0 / r.sum;
    for (var j = t.lid; j < p.cols; j += WG) {
        let prob = lam_exp(x_at(r.base + j * p.col_stride) - r.max) * inv_s;
        let hit = select(0.0, 1.0, j == hit_col);
        dst[r.out + j] = (prob - hit) * p.inv_rows;
    }
    if (t.lid == 0u) {
        var xt = r.max;
        if (valid) {
            xt = x_at(r.base + hit_col * p.col_stride);
        }
        // Not max + log(sum) - xt, which rounds at the logits' magnitude
        // (see lam-cpu's cross_entropy.rs).
        loss[row] = lam_log(r.sum) - (xt - r.max);
    }
}
