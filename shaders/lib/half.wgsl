// F16 <-> f32 conversions on bits, for every shader that reads or writes
// lam's F16 buffers.
//
// An F16 buffer packs two IEEE binary16 values per u32 word, element i in
// word i / 2, the even element in the low 16 bits (the byte order of a
// packed half array on a little-endian host). The conversions are integer
// code, not pack2x16float/unpack2x16float, whose results WGSL leaves to the
// implementation for overflow, subnormals and rounding: here f32 -> f16
// rounds to nearest even, overflows to inf and keeps subnormals and NaN
// exactly as IEEE 754 (and lam-cpu's `half` crate) does, on every adapter,
// with no shader-f16 feature needed. No bindings: the includer owns them.

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

// Half `e` (its index in the buffer) of the word holding it, as f16 bits.
fn half_of_word(word: u32, e: u32) -> u32 {
    return (word >> ((e & 1u) * 16u)) & 0xffffu;
}

// The f32 value of f16 bits (exact).
fn half_value(h: u32) -> f32 {
    return bitcast<f32>(f16_to_f32(h));
}
