// e^x and ln x within two ulp, written out rather than through the builtins,
// whose accuracy WGSL leaves loose: exp within 3 + 2|x| ulp (lavapipe's
// e^85 was 3.6e-6 off: exp2 of x log2(e) rounds the product first) and log
// within 2^-21 absolute on [0.5, 2], which near 1 is no relative precision
// at all (ln 0.9998 was 2.4e-4 off). lam-cpu's are as precise (its
// `math.rs`), as are PyTorch's CPU and CUDA ones; the elementwise ops,
// activations and row kernels use these. (The attention kernels keep the
// builtin exp of a score difference, whose accuracy the output's own
// rounding covers, since the extra work would be per score.)

// ln 2 split so that k LN2_HI is exact for |k| < 512: LN2_HI has 15
// significant bits.
const LN2_HI: f32 = 0.693145751953125;
const LN2_LO: f32 = 1.4286068203e-6;

// e^x: x = k ln 2 + r with |r| <= ln 2 / 2 (Cody and Waite's reduction, r
// exact but for the last fma's rounding), e^r by its Taylor series to r^7
// (truncation below 1e-8 relative), and 2^k as two exact powers of two so
// that results past f32's normal range round to infinity or to a
// subnormal (or to 0 where the device flushes them) by the last product.
// NaN stays NaN, tested on the bits (WGSL lets a compiler assume float
// arithmetic meets no NaN).
fn lam_exp(x: f32) -> f32 {
    // Beyond these e^x is 0 or infinity in f32 (e^-104 is below half the
    // smallest subnormal); the clamp keeps k in range.
    let c = clamp(x, -104.0, 89.0);
    let k = round(c * 1.44269504);
    let ki = i32(k);
    // k again, through the integer: a compiler that may reassociate (GL's,
    // without `precise`) would otherwise factor k LN2_HI + k LN2_LO into
    // k (LN2_HI + LN2_LO), undoing the split.
    let kk = f32(ki);
    var r = fma(-k, LN2_HI, c);
    r = fma(-kk, LN2_LO, r);
    var p = 1.0 / 5040.0;
    p = fma(p, r, 1.0 / 720.0);
    p = fma(p, r, 1.0 / 120.0);
    p = fma(p, r, 1.0 / 24.0);
    p = fma(p, r, 1.0 / 6.0);
    p = fma(p, r, 0.5);
    p = fma(p, r, 1.0);
    p = fma(p, r, 1.0);
    let half = ki / 2;
    let s1 = bitcast<f32>(u32(half + 127) << 23u);
    let s2 = bitcast<f32>(u32(ki - half + 127) << 23u);
    let bits = bitcast<u32>(x);
    return select(p * s1 * s2, x, (bits & 0x7fffffffu) > 0x7f800000u);
}

// ln x: x = m 2^e with m in [√½, √2), ln m = 2 atanh(s) for s = (m - 1) /
// (m + 1), |s| <= 0.172, by its odd series to s^11 (truncation below 1e-10
// relative), plus e ln 2 split as in lam_exp, so that near 1 (e = 0) the
// result keeps its relative precision. Subnormals are scaled by 2^23 first;
// 0 gives -inf, negatives NaN, +inf itself, NaN stays NaN.
fn lam_log(x: f32) -> f32 {
    let tiny = x < 1.17549435e-38;
    let bits = bitcast<u32>(select(x, x * 8388608.0, tiny));
    var e = i32((bits >> 23u) & 0xffu) - select(127, 150, tiny);
    var m = bitcast<f32>((bits & 0x007fffffu) | 0x3f800000u);
    if (m > 1.41421356) {
        m = m * 0.5;
        e = e + 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    var p = 1.0 / 11.0;
    p = fma(p, s2, 1.0 / 9.0);
    p = fma(p, s2, 1.0 / 7.0);
    p = fma(p, s2, 1.0 / 5.0);
    p = fma(p, s2, 1.0 / 3.0);
    let ln_m = fma(2.0 * s * s2, p, 2.0 * s);
    let fe = f32(e);
    let r = fma(fe, LN2_HI, fma(fe, LN2_LO, ln_m));
    let xb = bitcast<u32>(x);
    if ((xb & 0x7fffffffu) >= 0x7f800000u) {
        // NaN stays NaN, -inf gives NaN, +inf itself.
        return select(x, bitcast<f32>(0x7fc00000u), xb == 0xff800000u);
    }
    if (x == 0.0) {
        return bitcast<f32>(0xff800000u);
    }
    return select(r, bitcast<f32>(0x7fc00000u), x < 0.0);
}
