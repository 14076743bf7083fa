// Max pooling: one invocation per window keeps the first maximum over the
// taps inside the image and its tap index — the first NaN if there is one,
// as PyTorch and lam-cpu do (tested on the bits: a driver may take a float
// comparison with NaN as false either way); the gradient is one invocation
// per pixel, like fold, adding the gradient of each window whose winning
// tap reads it (a gather: deterministic, no atomics).

// #include "lib/window_params.wgsl"
// #include "lib/nan.wgsl"

@group(0) @binding(5) var<storage, read> taps_in: array<i32>;
@group(0) @binding(6) var<storage, read_write> taps_out: array<i32>;

// dst = maxima [N, C, OH, OW], taps_out = winning taps, from src = image [N, C, H, W] (strided).
@compute @workgroup_size(WG)
fn max_pool(t: Thread) {
    let e = element(t);
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
            let take = win < 0i || (is_nan(v) && !is_nan(best)) || (!is_nan(best) && v > best);
            if (take) {
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
fn max_pool_grad(t: Thread) {
    let e = element(t);
    if (e >= p.numel) {
        return;
    }
    let px = pixel_of(e);
    var acc = 0.0;
    for (var i = 0u; i < p.kh; i++) {
        let oy = window_of(px.y, i, p.sh, p.ph, p.dh, p.oh);
        if (oy < 0i) {
            continue;
        }
        for (var j = 0u; j < p.kw; j++) {
            let ox = window_of(px.x, j, p.sw, p.pw, p.dw, p.ow);
            if (ox < 0i) {
                continue;
            }
            let won = taps_in[p.t_offset + px.n * p.t0 + px.c * p.t1 + u32(oy) * p.t2 + u32(ox) * p.t3];
            if (won == i32(i * p.kw + j)) {
                acc += src[p.offset + px.n * p.s0 + px.c * p.s1 + u32(oy) * p.s2 + u32(ox) * p.s3];
            }
        }
    }
    dst[e] = acc;
}
