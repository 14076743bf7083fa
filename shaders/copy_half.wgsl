// F16 data movement: strided copies and casts to and from half precision.
// The packing of F16 buffers and the exact conversions are lib/half.wgsl's.

// #include "lib/elementwise_views.wgsl"
// #include "lib/half.wgsl"

// copy_half's destination, written a half at a time: two threads may own
// the two halves of one word.
@group(0) @binding(5) var<storage, read_write> dst_halves: array<atomic<u32>>;

// cast_to_half: the source holds i32 (converted through f32, as PyTorch).
override FROM_INT: bool = false;
// cast_from_half: the output is i32 (truncated toward zero, as an f32 cast).
override TO_INT: bool = false;

// Element `e` of the F16 source buffer (in0), as f16 bits.
fn half_at(e: u32) -> u32 {
    return half_of_word(in0[e >> 1u], e);
}

// Element `e` of a 32-bit source view as f32 bits.
fn wide_at(e: u32) -> u32 {
    let w = in0[e];
    if (FROM_INT) {
        return bitcast<u32>(f32(bitcast<i32>(w)));
    }
    return w;
}

// dst view (offset1/stride1, F16) = src view (offset0/stride0, F16).
@compute @workgroup_size(WG)
fn copy_half(t: Thread) {
    let i = element(t);
    if (i >= p.numel) {
        return;
    }
    let o = offsets(i);
    let shift = (o.y & 1u) * 16u;
    let word = o.y >> 1u;
    atomicAnd(&dst_halves[word], ~(0xffffu << shift));
    atomicOr(&dst_halves[word], half_at(o.x) << shift);
}

// Contiguous F16 dst = an f32 (or i32) view: one thread per output word.
@compute @workgroup_size(WG)
fn cast_to_half(t: Thread) {
    let w = element(t);
    let i = 2u * w;
    if (i >= p.numel) {
        return;
    }
    let lo = f32_to_f16(wide_at(offsets(i).x));
    var hi = 0u;
    if (i + 1u < p.numel) {
        hi = f32_to_f16(wide_at(offsets(i + 1u).x));
    }
    dst[w] = lo | (hi << 16u);
}

// Contiguous f32 (or i32) dst = an F16 view.
@compute @workgroup_size(WG)
fn cast_from_half(t: Thread) {
    let i = element(t);
    if (i >= p.numel) {
        return;
    }
    let bits = f16_to_f32(half_at(offsets(i).x));
    if (TO_INT) {
        dst[i] = bitcast<u32>(i32(bitcast<f32>(bits)));
    } else {
        dst[i] = bits;
    }
}
