// Sliding windows: unfold (im2col) and fold (col2im, its adjoint).
//
// Columns are [C, K, N, L]: K = kh*kw taps, L = oh*ow window positions;
// element [c, i*kw + j, n, oy*ow + ox] is tap (i, j) of window (oy, ox), which
// reads pixel (oy*sh + i*dh - ph, ox*sw + j*dw - pw) of image n, channel c.
//
// unfold: one invocation per column element. Values move as raw u32 words and
// the padding value arrives as its bit pattern, so a -inf padding never passes
// through float arithmetic, which WGSL lets implementations assume is finite.
//
// fold: one invocation per pixel, summing the column entries of the taps that
// read it in tap order. It is a gather: deterministic, no atomics.

// #include "lib/window_params.wgsl"

@group(0) @binding(1) var<storage, read> src_words: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst_words: array<u32>;

// dst_words = cols [C, K, N, L] (contiguous) from src_words = image [N, C, H, W] (strided).
@compute @workgroup_size(WG)
fn unfold(t: Thread) {
    let e = element(t);
    if (e >= p.numel) {
        return;
    }
    let l_len = p.oh * p.ow;
    let l = e % l_len;
    let n = (e / l_len) % p.n;
    let tap = (e / (l_len * p.n)) % (p.kh * p.kw);
    let c = e / (l_len * p.n * p.kh * p.kw);
    // Signed, because a tap may fall into the padding before the image.
    let y = i32((l / p.ow) * p.sh + (tap / p.kw) * p.dh) - i32(p.ph);
    let x = i32((l % p.ow) * p.sw + (tap % p.kw) * p.dw) - i32(p.pw);
    var word = p.pad_bits;
    if (y >= 0 && x >= 0 && u32(y) < p.h && u32(x) < p.w) {
        word = src_words[p.offset + n * p.s0 + c * p.s1 + u32(y) * p.s2 + u32(x) * p.s3];
    }
    dst_words[e] = word;
}

// dst = image [N, C, H, W] (contiguous), the sum over taps of src = cols [C, K, N, L] (strided).
@compute @workgroup_size(WG)
fn fold(t: Thread) {
    let e = element(t);
    if (e >= p.numel) {
        return;
    }
    let px = pixel_of(e);
    let base = p.offset + px.c * p.s0 + px.n * p.s2;
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
            acc += src[base + (i * p.kw + j) * p.s1 + (u32(oy) * p.ow + u32(ox)) * p.s3];
        }
    }
    dst[e] = acc;
}
