// Sliding windows: unfold (im2col), fold (col2im, its adjoint), and max
// pooling with its gradient.
//
// Columns are [C, K, N, L]: K = kh*kw taps, L = oh*ow window positions;
// element [c, i*kw + j, n, oy*ow + ox] is tap (i, j) of window (oy, ox), which
// reads pixel (oy*sh + i*dh - ph, ox*sw + j*dw - pw) of image n, channel c.
//
// unfold: one invocation per column element. Values move as raw u32 words and
// the padding value arrives as its bit pattern, so a -inf padding (max
// pooling) never passes through float arithmetic, which WGSL lets
// implementations assume is finite.
//
// fold: one invocation per pixel, summing the column entries of the taps that
// read it in tap order. It is a gather: deterministic, no atomics.
//
// max_pool: one invocation per window, keeping the first maximum over the taps
// inside the image and its tap index. max_pool_grad: one invocation per pixel,
// like fold, adding the gradient of each window whose winning tap reads it.

// Mirrors `WindowParams` in crates/lam-wgpu/src/ops/window.rs.
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
@group(0) @binding(1) var<storage, read> src_words: array<u32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst_words: array<u32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;
@group(0) @binding(5) var<storage, read> taps_in: array<i32>;
@group(0) @binding(6) var<storage, read_write> taps_out: array<i32>;

const WG: u32 = 256u;
const GRID_X: u32 = 65535u;

fn element(wid: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * GRID_X) * WG + lid;
}

// dst_words = cols [C, K, N, L] (contiguous) from src_words = image [N, C, H, W] (strided).
@compute @workgroup_size(WG)
fn unfold(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let e = element(wid, lid);
    if (e >= p.numel) {
        return;
    }
    let l_len = p.oh * p.ow;
    let l = e % l_len;
    let n = (e / l_len) % p.n;
    let t = (e / (l_len * p.n)) % (p.kh * p.kw);
    let c = e / (l_len * p.n * p.kh * p.kw);
    // Signed, because a tap may fall into the padding before the image.
    let y = i32((l / p.ow) * p.sh + (t / p.kw) * p.dh) - i32(p.ph);
    let x = i32((l % p.ow) * p.sw + (t % p.kw) * p.dw) - i32(p.pw);
    var word = p.pad_bits;
    if (y >= 0 && x >= 0 && u32(y) < p.h && u32(x) < p.w) {
        word = src_words[p.offset + n * p.s0 + c * p.s1 + u32(y) * p.s2 + u32(x) * p.s3];
    }
    dst_words[e] = word;
}

// dst = image [N, C, H, W] (contiguous), the sum over taps of src = cols [C, K, N, L] (strided).
@compute @workgroup_size(WG)
fn fold(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let e = element(wid, lid);
    if (e >= p.numel) {
        return;
    }
    let x = e % p.w;
    let y = (e / p.w) % p.h;
    let c = (e / (p.w * p.h)) % p.c;
    let n = e / (p.w * p.h * p.c);
    let base = p.offset + c * p.s0 + n * p.s2;
    var acc = 0.0;
    for (var i = 0u; i < p.kh; i++) {
        // Window row oy reads this pixel with tap row i when oy*sh = y + ph - i*dh.
        let ty = i32(y + p.ph) - i32(i * p.dh);
        if (ty < 0 || u32(ty) % p.sh != 0u) {
            continue;
        }
        let oy = u32(ty) / p.sh;
        if (oy >= p.oh) {
            continue;
        }
        for (var j = 0u; j < p.kw; j++) {
            let tx = i32(x + p.pw) - i32(j * p.dw);
            if (tx < 0 || u32(tx) % p.sw != 0u) {
                continue;
            }
            let ox = u32(tx) / p.sw;
            if (ox >= p.ow) {
                continue;
            }
            acc += src[base + (i * p.kw + j) * p.s1 + (oy * p.ow + ox) * p.s3];
        }
    }
    dst[e] = acc;
}

// The window row (or column) that reads pixel `pos` with tap `k`, or -1:
// o*s = pos + pad - k*d must hold for some 0 <= o < count.
fn window_of(pos: u32, k: u32, s: u32, pad: u32, d: u32, count: u32) -> i32 {
    let t = i32(pos + pad) - i32(k * d);
    if (t < 0 || u32(t) % s != 0u || u32(t) / s >= count) {
        return -1i;
    }
    return t / i32(s);
}

// dst = maxima [N, C, OH, OW], taps_out = winning taps, from src = image [N, C, H, W] (strided).
@compute @workgroup_size(WG)
fn max_pool(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let e = element(wid, lid);
    if (e >= p.numel) {
        return;
    }
    let ox = e % p.ow;
    let oy = (e / p.ow) % p.oh;
    let c = (e / (p.ow * p.oh)) % p.c;
    let n = e / (p.ow * p.oh * p.c);
    let base = p.offset + n * p.s0 + c * p.s1;
    var best = bitcast<f32>(p.pad_bits);
    var win = -1i;
    for (var i = 0u; i < p.kh; i++) {
        let y = i32(oy * p.sh + i * p.dh) - i32(p.ph);
        if (y < 0 || u32(y) >= p.h) {
            continue;
        }
        for (var j = 0u; j < p.kw; j++) {
            let x = i32(ox * p.sw + j * p.dw) - i32(p.pw);
            if (x < 0 || u32(x) >= p.w) {
                continue;
            }
            let v = src[base + u32(y) * p.s2 + u32(x) * p.s3];
            if (win < 0i || v > best) {
                best = v;
                win = i32(i * p.kw + j);
            }
        }
    }
    dst[e] = best;
    taps_out[e] = win;
}

// dst = image gradient [N, C, H, W]: each pixel sums src = grad [N, C, OH, OW]
// (strided) over the windows whose winning tap (taps_in, strided) reads it.
@compute @workgroup_size(WG)
fn max_pool_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let e = element(wid, lid);
    if (e >= p.numel) {
        return;
    }
    let x = e % p.w;
    let y = (e / p.w) % p.h;
    let c = (e / (p.w * p.h)) % p.c;
    let n = e / (p.w * p.h * p.c);
    var acc = 0.0;
    for (var i = 0u; i < p.kh; i++) {
        let oy = window_of(y, i, p.sh, p.ph, p.dh, p.oh);
        if (oy < 0i) {
            continue;
        }
        for (var j = 0u; j < p.kw; j++) {
            let ox = window_of(x, j, p.sw, p.pw, p.dw, p.ow);
            if (ox < 0i) {
                continue;
            }
            let t = taps_in[p.t_offset + n * p.t0 + c * p.t1 + u32(oy) * p.t2 + u32(ox) * p.t3];
            if (t == i32(i * p.kw + j)) {
                acc += src[p.offset + n * p.s0 + c * p.s1 + u32(oy) * p.s2 + u32(ox) * p.s3];
            }
        }
    }
    dst[e] = acc;
}
