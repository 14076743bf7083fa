// Elementwise math over strided views: unary and binary ops and select
// (where). Inputs are any strided views (see lib/elementwise_views.wgsl), so
// transposed, narrowed and broadcast (stride 0) inputs are read in place;
// outputs are contiguous.
//
// The math op is the pipeline constant OP (codes in
// crates/lam-wgpu/src/kernels.rs); scalar parameters such as a LeakyRelu
// slope live in the uniform, so they do not multiply pipelines.
//
// Unary and binary ops also read and write F16 buffers (lib/half.wgsl's
// packing): HALF0 and HALF1 widen input 0 or 1 from halves exactly, and
// HALF_OUT rounds each f32 result to a half once, a thread writing one word
// (two elements). So an op on halves is one pass, with the numbers of
// casting to f32, the f32 op and the cast back, which take three.

// #include "lib/elementwise_views.wgsl"
// #include "lib/half.wgsl"
// #include "lib/nan.wgsl"
// #include "lib/activations.wgsl"

override OP: u32 = 0u;
override HALF0: bool = false;
override HALF1: bool = false;
override HALF_OUT: bool = false;

const FRAC_1_SQRT_2: f32 = 0.707106781186548;
const FRAC_1_SQRT_2PI: f32 = 0.398942280401433;

fn f(word: u32) -> f32 {
    return bitcast<f32>(word);
}

// 1 - erf(x), relative error below 1e-6 + 1.5e-7 x² wherever the result
// is a normal f32: Numerical Recipes' Chebyshev fit `erfcc`, as lam-cpu's
// math_f32.rs evaluates it (WGSL has no erf builtin and exact GELU needs
// one). Being relative, it holds in the far tail, where Φ(x) = (1 + erf(x/√2))
// / 2 of a negative x cancels: through an erf, GELU(-5) was 4% off and
// GELU(-8) 0.
fn erfc_approx(x: f32) -> f32 {
    let z = abs(x);
    let t = 1.0 / fma(z, 0.5, 1.0);
    var p = 0.17087277;
    p = fma(p, t, -0.82215223);
    p = fma(p, t, 1.4885159);
    p = fma(p, t, -1.135204);
    p = fma(p, t, 0.27886807);
    p = fma(p, t, -0.18628806);
    p = fma(p, t, 0.09678418);
    p = fma(p, t, 0.37409196);
    p = fma(p, t, 1.0000237);
    p = fma(p, t, -1.2655122);
    let tail = t * lam_exp(fma(-z, z, p));
    return select(tail, 2.0 - tail, x < 0.0);
}

// The standard normal CDF Φ(x).
fn normal_cdf(x: f32) -> f32 {
    return 0.5 * erfc_approx(-x * FRAC_1_SQRT_2);
}

// log(1 + e) for e in [0, 1] within a few ulps of relative error (WGSL has
// no log1p): 2 atanh(s) for s = e / (2 + e) <= 1/3, by its odd series to
// s^17. log(1 + e) rounded 1 + e first, losing half an ulp of 1 from a
// value as small as 1e-3, and WGSL bounds log's error near 1 only
// absolutely.
fn log1p_small(e: f32) -> f32 {
    let s = e / (2.0 + e);
    let s2 = s * s;
    var r = 1.0 / 17.0;
    r = fma(r, s2, 1.0 / 15.0);
    r = fma(r, s2, 1.0 / 13.0);
    r = fma(r, s2, 1.0 / 11.0);
    r = fma(r, s2, 1.0 / 9.0);
    r = fma(r, s2, 1.0 / 7.0);
    r = fma(r, s2, 1.0 / 5.0);
    r = fma(r, s2, 1.0 / 3.0);
    r = fma(r, s2, 1.0);
    return 2.0 * s * r;
}

// exp(x) - 1 within a few ulps of relative error (and keeping -0.0): below
// |x| = 0.35, where exp(x) - 1 cancels, by its Taylor series to x^10
// (the next term is under 1e-11 of the value); exp(x) - 1 there loses
// exp's rounding at 1 from a value as small as 0.01.
fn expm1(x: f32) -> f32 {
    if (abs(x) < 0.35) {
        var r = 1.0 / 3628800.0;
        r = fma(r, x, 1.0 / 362880.0);
        r = fma(r, x, 1.0 / 40320.0);
        r = fma(r, x, 1.0 / 5040.0);
        r = fma(r, x, 1.0 / 720.0);
        r = fma(r, x, 1.0 / 120.0);
        r = fma(r, x, 1.0 / 24.0);
        r = fma(r, x, 1.0 / 6.0);
        r = fma(r, x, 0.5);
        return x * fma(r, x, 1.0);
    }
    return lam_exp(x) - 1.0;
}

// a^n by repeated squaring: a rounding per product, where exp2(n log2 a)
// loses about |n log2 a| ulp (x^3 was 1.3e-6 off on lavapipe).
fn int_pow(a: f32, n: u32) -> f32 {
    var b = a;
    var k = n;
    var r = 1.0;
    loop {
        if ((k & 1u) != 0u) {
            r = r * b;
        }
        k = k >> 1u;
        if (k == 0u) {
            break;
        }
        b = b * b;
    }
    return r;
}

// a^y for a > 0 and y neither 0 nor NaN: integer exponents by int_pow (a
// negative one as 1 / a^n, or (1 / a)^n where a^n underflows), ±1/2
// through sqrt, others as exp2(y log2 a).
fn pow_abs(a: f32, y: f32) -> f32 {
    if (y == 0.5) {
        return sqrt(a);
    }
    if (y == -0.5) {
        return 1.0 / sqrt(a);
    }
    let n = abs(y);
    if (y != trunc(y) || n >= 4294967296.0) {
        return exp2(y * log2(a));
    }
    let r = int_pow(a, u32(n));
    if (y > 0.0) {
        return r;
    }
    return select(1.0 / r, int_pow(1.0 / a, u32(n)), r < 1.17549435e-38);
}

// x^y with C's rules for negative bases and zero; WGSL's pow is undefined there.
fn pow_c(x: f32, y: f32) -> f32 {
    if (y == 0.0) {
        return 1.0;
    }
    if (is_nan(y)) {
        return select(y, 1.0, x == 1.0);
    }
    if (y == 1.0) {
        return x;
    }
    if (y == 2.0) {
        return x * x;
    }
    let odd = y == trunc(y) && (y * 0.5) != trunc(y * 0.5);
    if (x == 0.0) {
        // 0^positive is 0 and 0^negative is inf (WGSL has no inf literal),
        // each keeping the zero's sign for odd integer exponents.
        let negative = bitcast<u32>(x) != 0u && odd;
        if (y > 0.0) {
            return select(0.0, x, negative);
        }
        return bitcast<f32>(select(0x7f800000u, 0xff800000u, negative));
    }
    let r = pow_abs(abs(x), y);
    if (x > 0.0) {
        return r;
    }
    if (y != trunc(y)) {
        return bitcast<f32>(0x7fc00000u);
    }
    // An odd integer exponent keeps the sign of a negative base.
    return select(r, -r, odd);
}


fn unary_op(x: f32) -> f32 {
    let a = p.alpha;
    let b = p.beta;
    // NaN propagates through every op, as in PyTorch (max/min/clamp would
    // drop it on some drivers), except the indicators, which are false, and
    // sign, which is 0.
    if (is_nan(x)) {
        let indicator = OP == 18u || OP == 19u || OP == 23u || OP == 24u || OP == 26u;
        // x^0 is 1 even for NaN (C's pow).
        let power_zero = OP == 22u && a == 0.0;
        return select(select(x, 0.0, indicator), 1.0, power_zero);
    }
    switch OP {
        case 0u: { return -x; }
        case 1u: { return abs(x); }
        case 2u: { return lam_exp(x); }
        case 3u: { return lam_log(x); }
        case 4u: { return sqrt(x); }
        case 5u: { return x * x; }
        case 6u: { return 1.0 / x; }
        case 7u: { return sin(x); }
        case 8u: { return cos(x); }
        case 9u: { return lam_tanh(x); }
        case 10u: { return sigmoid(x); }
        // Written as selects so -0.0 passes through unchanged, as on the CPU.
        case 11u: { return select(x, 0.0, x < 0.0); }
        case 12u: { return select(a * x, x, x > 0.0); }
        case 13u: { return select(a * expm1(select(x, 0.0, x > 0.0)), x, x > 0.0); }
        case 14u: { return x * normal_cdf(x); }
        case 15u: { return x * sigmoid(x); }
        case 16u: { return max(x, 0.0) + log1p_small(lam_exp(-abs(x))); }
        case 17u: { return select(select(x, a, x < a), b, x > b); }
        // Keeps the sign of zero, like the CPU reference (WGSL's sign may not).
        case 18u: { return select(select(x, -1.0, x < 0.0), 1.0, x > 0.0); }
        case 19u: { return select(0.0, 1.0, x > 0.0); }
        case 20u: { return x + a; }
        case 21u: { return x * a; }
        case 22u: { return pow_c(x, a); }
        case 23u: { return select(0.0, 1.0, x > a); }
        case 24u: { return select(0.0, 1.0, x < a); }
        case 25u: { return gelu_grad(x); }
        case 26u: { return select(0.0, 1.0, x > a && x < b); }
        // A true division: x * (1 / a) would round twice.
        case 27u: { return x / a; }
        default: { return x; }
    }
}

// The derivative of exact GELU, Φ(x) + x φ(x) (unary op 25, and binary op
// 14 times the upstream gradient).
fn gelu_grad(x: f32) -> f32 {
    return normal_cdf(x) + x * FRAC_1_SQRT_2PI * lam_exp(-0.5 * x * x);
}

fn binary_op(x: f32, y: f32) -> f32 {
    if (is_nan(x) || is_nan(y)) {
        // Explicit, since drivers may assume no NaNs: comparisons are false
        // (Ne true) and maximum/minimum propagate the NaN, as in PyTorch.
        switch OP {
            case 5u, 6u: { return select(y, x, is_nan(x)); }
            case 7u, 9u, 10u, 11u, 12u: { return 0.0; }
            case 8u: { return 1.0; }
            // The gradient (NaN or not) passes unless the ReLU's output is
            // <= 0; a NaN output passes it, as PyTorch's threshold_backward.
            case 13u: { return select(x, 0.0, !is_nan(y) && y <= 0.0); }
            // NaN either way, as the product of the two ops it replaces.
            case 14u: { return x * y; }
            default: {}
        }
    }
    switch OP {
        case 0u: { return x + y; }
        case 1u: { return x - y; }
        case 2u: { return x * y; }
        case 3u: { return x / y; }
        case 4u: { return pow_c(x, y); }
        case 5u: { return max(x, y); }
        case 6u: { return min(x, y); }
        case 7u: { return select(0.0, 1.0, x == y); }
        case 8u: { return select(0.0, 1.0, x != y); }
        case 9u: { return select(0.0, 1.0, x < y); }
        case 10u: { return select(0.0, 1.0, x <= y); }
        case 11u: { return select(0.0, 1.0, x > y); }
        case 12u: { return select(0.0, 1.0, x >= y); }
        case 13u: { return select(x, 0.0, y <= 0.0); }
        case 14u: { return x * gelu_grad(y); }
        default: { return x; }
    }
}

// Input 0 or 1 at storage offset `o`, as f32 (widened when it holds halves).
fn load0(o: u32) -> f32 {
    if (HALF0) {
        return half_value(half_of_word(in0[o >> 1u], o));
    }
    return f(in0[o]);
}

fn load1(o: u32) -> f32 {
    if (HALF1) {
        return half_value(half_of_word(in1[o >> 1u], o));
    }
    return f(in1[o]);
}

// Output element `i` of each op, as f32 bits.
fn unary_at(i: u32) -> u32 {
    return bitcast<u32>(unary_op(load0(offsets(i).x)));
}

fn binary_at(i: u32) -> u32 {
    let o = offsets(i);
    return bitcast<u32>(binary_op(load0(o.x), load1(o.y)));
}

// Two f32 results as one word of halves, each rounded once. Past the end
// the high half is +0.0's bits, 0, as cast_to_half leaves it.
fn halves(lo: u32, hi: u32) -> u32 {
    return f32_to_f16(lo) | (f32_to_f16(hi) << 16u);
}

// A thread writes one f32 element, or under HALF_OUT one word (elements
// 2w and 2w + 1). The two entry points repeat this shape because an entry
// point may only touch the bindings its kernel declares (unary has no in1).
@compute @workgroup_size(WG)
fn unary(t: Thread) {
    let w = element(t);
    if (!HALF_OUT) {
        if (w < p.numel) {
            dst[w] = unary_at(w);
        }
        return;
    }
    let e = 2u * w;
    if (e >= p.numel) {
        return;
    }
    var hi = 0u;
    if (e + 1u < p.numel) {
        hi = unary_at(e + 1u);
    }
    dst[w] = halves(unary_at(e), hi);
}

@compute @workgroup_size(WG)
fn binary(t: Thread) {
    let w = element(t);
    if (!HALF_OUT) {
        if (w < p.numel) {
            dst[w] = binary_at(w);
        }
        return;
    }
    let e = 2u * w;
    if (e >= p.numel) {
        return;
    }
    var hi = 0u;
    if (e + 1u < p.numel) {
        hi = binary_at(e + 1u);
    }
    dst[w] = halves(binary_at(e), hi);
}

// out = cond != 0 ? a : b, moving the bits of a or b (any dtype).
@compute @workgroup_size(WG)
fn select_where(t: Thread) {
    let i = element(t);
    if (i >= p.numel) {
        return;
    }
    let o = offsets(i);
    let c = in0[o.x];
    // A float condition is true unless it is ±0.0, tested on the bits:
    // comparing as floats lets a driver take NaN for zero.
    let truthy = select((c & 0x7fffffffu) != 0u, c != 0u, p.word == 1u);
    dst[i] = select(in2[o.z], in1[o.y], truthy);
}
