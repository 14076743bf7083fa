// F16 data movement: strided copies and casts to and from half precision.
//
// An F16 buffer packs two IEEE binary16 values per u32 word, element i in
// word i / 2, the even element in the low 16 bits (the byte order of a
// packed half array on a little-endian host). The conversions are integer
// code, not pack2x16float/unpack2x16float, whose results WGSL leaves to the
// implementation for overflow, subnormals and rounding: here f32 -> f16
// rounds to nearest even, overflows to inf and keeps subnormals and NaN
// exactly as IEEE 754 (and lam-cpu's `half` crate) does, on every adapter,
// with no shader-f16 feature needed.

// #include "lib/elementwise_views.wgsl"

// copy_half's destination, written a half at a time: two threads may own
// the two halves of one word.
@group(0) @binding(5) var<storage, read_write> dst_halves: array<atomic<u32>>;

// cast_to_half: the source holds i32 (converted through f32, as PyTorch).
override FROM_INT: bool = false;
// cast_from_half: the output is i32 (truncated toward zero, as an f32 cast).
override TO_INT: bool = false;

// f32 bits -> f16 bits, rounding to nearest even.
fn f32_to_f16(x: u32) -> u32 {
    let sign = (x >> 16u) & 0x8000u;
    let a = x & 0x7fffffffu;
    if (a > 0x7f800000u) {
        // NaN: quiet, keeping the top of the payload.
        return sign | 0x7e00u | ((a >> 13u) & 0x3ffu);
    }
    if (a >= 0x477ff000u) {
        // 65520 and above round to inf (and inf stays inf).
        return sign | 0x7c00u;
    }
    if (a >= 0x38800000u) {
        // Normal: rebias the exponent (127 -> 15), round off 13 bits; a
        // carry out of the mantissa correctly bumps the exponent.
        let m = a - 0x38000000u;
        return sign | ((m + 0xfffu + ((m >> 13u) & 1u)) >> 13u);
    }
    if (a <= 0x33000000u) {
        // At most 2^-25, half the least subnormal: rounds to (signed) zero.
        return sign;
    }
    // Subnormal: the 24-bit significand shifted into units of 2^-24.
    let e = a >> 23u;
    let mant = (a & 0x7fffffu) | 0x800000u;
    let shift = 126u - e;
    var h = mant >> shift;
    let rest = mant & ((1u << shift) - 1u);
    let halfway = 1u << (shift - 1u);
    if (rest > halfway || (rest == halfway && (h & 1u) == 1u)) {
        h += 1u;
    }
    return sign | h;
}

// f16 bits -> f32 bits (exact).
fn f16_to_f32(h: u32) -> u32 {
    let sign = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    if (e == 0x1fu) {
        return sign | 0x7f800000u | (m << 13u);
    }
    if (e == 0u) {
        if (m == 0u) {
            return sign;
        }
        // Subnormal m * 2^-24 is a normal f32: normalise the mantissa.
        let top = firstLeadingBit(m);
        return sign | ((top + 103u) << 23u) | ((m << (23u - top)) & 0x7fffffu);
    }
    return sign | ((e + 112u) << 23u) | (m << 13u);
}

// Element `e` of the F16 source buffer (in0), as f16 bits.
fn half_at(e: u32) -> u32 {
    return (in0[e >> 1u] >> ((e & 1u) * 16u)) & 0xffffu;
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
