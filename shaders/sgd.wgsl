// Fused SGD: the whole update of one parameter tensor in one pass, in
// place on contiguous param and (with momentum) its momentum buffer, in
// torch.optim.SGD's order (without its L1 term):
//   g = grad + wd * param                        (when wd != 0)
//   b = g (first step)  or  momentum * b + (1 - dampening) * g
//   g = g + momentum * b (Nesterov)  or  b       (when momentum != 0)
//   param -= lr * g

// #include "lib/grid.wgsl"

// Mirrors `SgdParams` in crates/lam-wgpu/src/params.rs.
struct Params {
    numel: u32,
    // 1: weight decay, 2: momentum, 4: first momentum step, 8: Nesterov.
    flags: u32,
    lr: f32,
    momentum: f32,
    dampening: f32,
    weight_decay: f32,
    _pad0: u32,
    _pad1: u32,
}

const DECAY: u32 = 1u;
const MOMENTUM: u32 = 2u;
const FIRST: u32 = 4u;
const NESTEROV: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
// The momentum buffer (any buffer when there is no momentum).
@group(0) @binding(3) var<storage, read_write> buf: array<f32>;

@compute @workgroup_size(WG)
fn sgd(t: Thread) {
    let i = element(t);
    if (i >= p.numel) {
        return;
    }
    let w = param[i];
    var g = grad[i];
    if ((p.flags & DECAY) != 0u) {
        g += w * p.weight_decay;
    }
    if ((p.flags & MOMENTUM) != 0u) {
        var b = g;
        if ((p.flags & FIRST) == 0u) {
            b = buf[i] * p.momentum + g * (1.0 - p.dampening);
        }
        buf[i] = b;
        if ((p.flags & NESTEROV) != 0u) {
            g += b * p.momentum;
        } else {
            g = b;
        }
    }
    param[i] = w - g * p.lr;
}
