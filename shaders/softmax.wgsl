// Fused softmax and log-softmax over the last dim of a [rows, cols] view.
//
// One workgroup per row: a strided pass and a tree find the row max, a second
// pass and tree sum exp(x - max), a third writes the result. LOG selects
// log-softmax (x - max - log(sum)), which stays finite where softmax
// underflows.

// #include "lib/rows.wgsl"

override LOG: bool = false;

@compute @workgroup_size(WG)
fn softmax(t: Thread) {
    let row = workgroup_index(t);
    // Uniform per workgroup, so the barriers below stay in uniform control flow.
    if (row >= p.rows) {
        return;
    }
    let r = load_row(t.lid, row);
    let log_s = lam_log(r.sum);
    let inv_s = 1.0 / r.sum;
    for (var j = t.lid; j < p.cols; j += WG) {
        let x = x_at(r.base + j * p.col_stride) - r.max;
        if (LOG) {
            dst[r.out + j] = x - log_s;
        } else {
            dst[r.out + j] = lam_exp(x) * inv_s;
        }
    }
}
