// BatchNorm's running statistics after a training batch (Backend
// `fused_batch_norm_running`), a thread per channel: per channel
// running·(1 − m) + batch·m for the mean (batch: the batch's mean) and the
// variance (batch: the batch's biased variance times n/(n−1)), each
// product rounded before the sum as lam-core composes it (a driver may
// still fuse a product into the sum); and thread 0 counts the batch,
// count + 1 (wrapping, as WGSL's i32 arithmetic does). The formulas are
// lam-core's (crates/lam-core/src/nn/norm.rs, `update_running`).

// #include "lib/grid.wgsl"

// Mirrors `BatchNormRunningParams` in crates/lam-wgpu/src/params.rs:
// channels, flags, the factors, and per view (running mean, running
// variance, batch mean, batch variance, count) its offset and stride.
struct Params {
    c: u32,
    flags: u32,
    // 1 − momentum, momentum, n/(n−1).
    keep: f32,
    momentum: f32,
    correction: f32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
    views: array<vec4<u32>, 5>,
}

const HAS_COUNT: u32 = 1u;
const RUNNING_MEAN: u32 = 0u;
const RUNNING_VAR: u32 = 1u;
const MEAN: u32 = 2u;
const VAR: u32 = 3u;
const COUNT: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> running_mean: array<f32>;
@group(0) @binding(2) var<storage, read> running_var: array<f32>;
@group(0) @binding(3) var<storage, read> batch_mean: array<f32>;
@group(0) @binding(4) var<storage, read> batch_var: array<f32>;
// The count (any buffer when there is none).
@group(0) @binding(5) var<storage, read> count: array<i32>;
@group(0) @binding(6) var<storage, read_write> next_mean: array<f32>;
@group(0) @binding(7) var<storage, read_write> next_var: array<f32>;
@group(0) @binding(8) var<storage, read_write> next_count: array<i32>;

// Where channel c of view k lies.
fn at(k: u32, c: u32) -> u32 {
    return p.views[k].x + c * p.views[k].y;
}

@compute @workgroup_size(WG)
fn batch_norm_running(t: Thread) {
    let c = element(t);
    if (c == 0u && (p.flags & HAS_COUNT) != 0u) {
        next_count[0] = count[p.views[COUNT].x] + 1;
    }
    if (c >= p.c) {
        return;
    }
    let mean = running_mean[at(RUNNING_MEAN, c)] * p.keep + batch_mean[at(MEAN, c)] * p.momentum;
    let unbiased = batch_var[at(VAR, c)] * p.correction;
    next_mean[c] = mean;
    next_var[c] = running_var[at(RUNNING_VAR, c)] * p.keep + unbiased * p.momentum;
}
