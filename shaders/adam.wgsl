// Fused Adam / AdamW: the whole update of one parameter tensor in one pass,
// in place on contiguous param, m (first moment) and v (second moment).
// Follows PyTorch's torch.optim.Adam / AdamW (non-amsgrad) equations:
//   g = grad + wd * param                  (Adam's L2 penalty)
//   param *= 1 - lr * wd                   (AdamW's decoupled decay, instead)
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   param -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)
// The bias corrections bc1 = 1 - b1^t and bc2 = 1 - b2^t are computed on the
// host in f64, once per step instead of once per element.

// #include "lib/grid.wgsl"

// Mirrors `AdamParams` in crates/lam-wgpu/src/params.rs.
struct Params {
    numel: u32,
    decoupled: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    step_size: f32,
    bc2_sqrt: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(WG)
fn adam(t: Thread) {
    let i = element(t);
    if (i >= p.numel) {
        return;
    }
    var w = param[i];
    var g = grad[i];
    if (p.decoupled == 1u) {
        w *= 1.0 - p.lr * p.weight_decay;
    } else {
        g += p.weight_decay * w;
    }
    let m1 = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    let v1 = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = m1;
    v[i] = v1;
    param[i] = w - p.step_size * m1 / (sqrt(v1) / p.bc2_sqrt + p.eps);
}
