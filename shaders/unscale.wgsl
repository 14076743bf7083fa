// Loss scaling's unscale (PyTorch's _amp_foreach_non_finite_check_and_unscale_):
// one gradient view times 1 / scale (the uniform's alpha) into a contiguous
// output, and the bits of 1.0 OR-ed into `found` where a value is infinite
// or NaN. The host zeroes `found` once and runs this for every gradient, so
// one word answers for all of them.

// #include "lib/elementwise_views.wgsl"

@group(0) @binding(5) var<storage, read_write> found: array<atomic<u32>>;

@compute @workgroup_size(WG)
fn unscale(t: Thread) {
    let i = element(t);
    if (i >= p.numel) {
        return;
    }
    let bits = in0[offsets(i).x];
    // Tested on the bits: drivers may assume floats are finite.
    if ((bits & 0x7f800000u) == 0x7f800000u) {
        atomicOr(&found[0], 0x3f800000u);
    }
    // A NaN passes as it is, as through the unary kernel's MulScalar.
    let nan = (bits & 0x7fffffffu) > 0x7f800000u;
    dst[i] = select(bitcast<u32>(bitcast<f32>(bits) * p.alpha), bits, nan);
}
