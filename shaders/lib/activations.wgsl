// Sigmoid and tanh written out rather than through the builtin `tanh`, whose
// precision the WGSL spec leaves to the driver: both round only once near 1,
// last, so a saturated gate keeps the half-ulp precision that its gradient,
// `σ(1 − σ)` or `1 − tanh²` from the output, needs (one ulp at 1 is of the
// size of that gradient there). The same formulas as lam-cpu's `math.rs`.

// #include "lib/exp_log.wgsl"

// 1 / (1 + e^-x): q = e / (1 + e) with e = e^-|x| (nothing overflows), q for
// x < 0 and 1 - q for x >= 0. NaN stays NaN.
fn sigmoid(x: f32) -> f32 {
    let e = lam_exp(-abs(x));
    let q = e / (1.0 + e);
    return select(q, 1.0 - q, x >= 0.0);
}

// tanh x: x + x³ P(x²) where |x| < 0.625 (P fitted for least relative
// error there), else ±(1 - 2e / (1 + e)) with e = e^-2|x|, which is 0 for
// large |x|, giving ±1. The sign is x's (-0 stays -0); NaN stays NaN, tested
// on the bits (WGSL lets a compiler assume float arithmetic meets no NaN).
fn lam_tanh(x: f32) -> f32 {
    let a = abs(x);
    let s = x * x;
    var p = 2.1382263e-3;
    p = p * s - 8.171788e-3;
    p = p * s + 2.169821e-2;
    p = p * s - 5.3946253e-2;
    p = p * s + 0.13333201;
    p = p * s - 0.3333333;
    let e = lam_exp(-2.0 * a);
    let r = select(1.0 - 2.0 * e / (1.0 + e), a + a * s * p, a < 0.625);
    let bits = bitcast<u32>(x);
    let signed = bitcast<f32>(bitcast<u32>(r) | (bits & 0x80000000u));
    return select(signed, x, (bits & 0x7fffffffu) > 0x7f800000u);
}
