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
// unfold_half: the same columns of an F16 image, as F16 (lib/half.wgsl's
// packing): one invocation per column word, which takes its two halves from
// wherever they lie in the image, so no two invocations write one word. The
// padding value is f16 bits in the low half of pad_bits.
//
// fold: one invocation per pixel, summing the column entries of the taps that
// read it in tap order. It is a gather: deterministic, no atomics.

// #include "lib/window_params.wgsl"
// #include "lib/half.wgsl"

@group(0) @binding(1) var<storage, read> src_words: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst_words: array<u32>;

// What source_of returns for a tap in the padding.
const PADDING: u32 = 0xffffffffu;

// The image element (an index into the strided image view) that column
// element `e` of cols [C, K, N, L] reads, or PADDING.
fn source_of(e: u32) -> u32 {
    let l_len = p.oh * p.ow;
    let l = e % l_len;
    let n = (e / l_len) % p.n;
    let tap = (e / (l_len * p.n)) % (p.kh * p.kw);
    let c = e / (l_len * p.n * p.kh * p.kw);
    // Signed, because a tap may fall into the padding before the image.
    let y = i32((l / p.ow) * p.sh + (tap / p.kw) * p.dh) - i32(p.ph);
    let x = i32((l % p.ow) * p.sw + (tap % p.kw) * p.dw) - i32(p.pw);
    if (y < 0 || x < 0 || u32(y) >= p.h || u32(x) >= p.w) {
        return PADDING;
    }
    return p.offset + n * p.s0 + c * p.s1 + u32(y) * p.s2 + u32(x) * p.s3;
}

// dst_words = cols [C, K, N, L] (contiguous) from src_words = image [N, C, H, W] (strided).
@compute @workgroup_size(WG)
fn unfold(t: Thread) {
    let e = element(t);
    if (e >= p.numel) {
        return;
    }
    let s = source_of(e);
    var word = p.pad_bits;
    if (s != PADDING) {
        word = src_words[s];
    }
    dst_words[e] = word;
}

// Column element `e` of an F16 image, as f16 bits.
fn half_tap(e: u32) -> u32 {
    let s = source_of(e);
    if (s == PADDING) {
        return p.pad_bits & 0xffffu;
    }
    return half_of_word(src_words[s >> 1u], s);
}

// unfold of F16 words: column word w holds elements 2w (low half) and 2w + 1.
@compute @workgroup_size(WG)
fn unfold_half(t: Thread) {
    let w = element(t);
    let e = 2u * w;
    if (e >= p.numel) {
        return;
    }
    var hi = 0u;
    if (e + 1u < p.numel) {
        hi = half_tap(e + 1u);
    }
    dst_words[w] = half_tap(e) | (hi << 16u);
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
