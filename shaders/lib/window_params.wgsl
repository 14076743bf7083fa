// What the sliding-window kernels share (window.wgsl, max_pool.wgsl): the
// geometry and input views in one parameter block, and the inverse of the
// window walk, from a pixel and tap back to the window that reads it.
//
// Images are [N, C, H, W]; a window at (oy, ox) reads with tap (i, j) the
// pixel (oy*sh + i*dh - ph, ox*sw + j*dw - pw).

// #include "lib/grid.wgsl"

// Mirrors `WindowParams` in crates/lam-wgpu/src/params.rs.
struct Params {
    numel: u32,
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    ph: u32,
    pw: u32,
    dh: u32,
    dw: u32,
    oh: u32,
    ow: u32,
    // The strided input: [N, C, H, W] for unfold and max_pool, [C, K, N, L]
    // for fold, the gradient [N, C, OH, OW] for max_pool_grad.
    offset: u32,
    s0: u32,
    s1: u32,
    s2: u32,
    s3: u32,
    // unfold: the padding value; max_pool: -inf, for windows with no tap.
    pad_bits: u32,
    // max_pool_grad: the taps view [N, C, OH, OW].
    t_offset: u32,
    t0: u32,
    t1: u32,
    t2: u32,
    t3: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// The input as floats, and the output (image or maxima), contiguous.
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;

// The window row (or column) that reads pixel `pos` with tap `k`, or -1:
// o*s = pos + pad - k*d must hold for some 0 <= o < count.
fn window_of(pos: u32, k: u32, s: u32, pad: u32, d: u32, count: u32) -> i32 {
    let t = i32(pos + pad) - i32(k * d);
    if (t < 0 || u32(t) % s != 0u || u32(t) / s >= count) {
        return -1i;
    }
    return t / i32(s);
}

// Pixel `e` of a contiguous [N, C, H, W] image (fold and the max-pool
// gradient write one each).
struct Pixel {
    n: u32,
    c: u32,
    y: u32,
    x: u32,
}

fn pixel_of(e: u32) -> Pixel {
    return Pixel(e / (p.w * p.h * p.c), (e / (p.w * p.h)) % p.c, (e / p.w) % p.h, e % p.w);
}
