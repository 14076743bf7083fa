// Seeded random fills: element i is a pure function of (seed, i), computed
// with the same 32-bit integer hash as crates/lam-core/src/rng.rs, so the
// uniform bits match the CPU exactly and every backend draws the same tensor.

// #include "lib/grid.wgsl"

// Mirrors `RandomParams` in crates/lam-wgpu/src/params.rs.
struct Params {
    numel: u32,
    seed_lo: u32,
    seed_hi: u32,
    // 0 uniform in [a, b); 1 normal with mean a and std b.
    normal: u32,
    a: f32,
    b: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;

const INV_2_24: f32 = 5.9604644775390625e-8;

// Wellons' lowbias32 (rng::hash32).
fn hash32(x0: u32) -> u32 {
    var x = x0;
    x ^= x >> 16u;
    x *= 0x7feb352du;
    x ^= x >> 15u;
    x *= 0x846ca68bu;
    x ^= x >> 16u;
    return x;
}

// rng::random_bits.
fn random_bits(i: u32) -> u32 {
    return hash32(hash32(i + hash32(p.seed_lo)) ^ p.seed_hi);
}

// rng::uniform01: 24 random bits scaled exactly into [0, 1).
fn uniform01(i: u32) -> f32 {
    return f32(random_bits(i) >> 8u) * INV_2_24;
}

// cos(2 pi u) for u in [0, 1) to ~1e-7, independent of the driver's cos,
// whose precision WGSL only bounds loosely. Reduces to |x| <= pi/4 by octant.
fn cos_2pi(u: f32) -> f32 {
    // Quarter turns: q = round(4u) picks the octant pair, r in [-1/8, 1/8].
    let q = floor(u * 4.0 + 0.5);
    let x = (u * 4.0 - q) * 1.5707963267948966;
    let x2 = x * x;
    let c = 1.0 + x2 * (-0.5 + x2 * (4.16666457e-2 + x2 * (-1.38873163e-3 + x2 * 2.44331571e-5)));
    let s = x * (1.0 + x2 * (-1.66666546e-1 + x2 * (8.33216087e-3 + x2 * -1.95152959e-4)));
    switch (u32(q) & 3u) {
        case 0u: { return c; }
        case 1u: { return -s; }
        case 2u: { return -c; }
        default: { return s; }
    }
}

// rng::standard_normal: Box-Muller over bits 2i and 2i + 1.
fn standard_normal(i: u32) -> f32 {
    let u1 = f32((random_bits(i * 2u) >> 8u) + 1u) * INV_2_24;
    let u2 = uniform01(i * 2u + 1u);
    return sqrt(-2.0 * log(u1)) * cos_2pi(u2);
}

@compute @workgroup_size(WG)
fn fill_random(t: Thread) {
    let i = element(t);
    if (i >= p.numel) {
        return;
    }
    if (p.normal == 1u) {
        dst[i] = p.a + p.b * standard_normal(i);
    } else {
        dst[i] = p.a + (p.b - p.a) * uniform01(i);
    }
}
