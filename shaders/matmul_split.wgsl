// Split-K's second pass (crates/lam-wgpu/src/ops/matmul/split.rs): a
// product of few output tiles along a long K runs as a batch of S products
// of K's slices, each writing its f32 sums to partials [S, M, N]; this adds
// them in order, one thread per output element (a word of two under
// HALF_OUT), and writes the total through the matmul kernels' epilogue:
// bias, ReLU, f16 rounding (lib/matmul_io.wgsl), so the output is what one
// kernel over all of K writes, up to the order of the f32 sums.
//
// Params: m and n as the product's, k the number of slices S; the
// partials are bound as A (f32, read through `a_at`).

// #include "lib/grid.wgsl"
// #include "lib/matmul_io.wgsl"

// Words: f32 bits, or two halves under HALF_OUT.
@group(0) @binding(3) var<storage, read_write> c: array<u32>;

// Element `e` of the output summed over the slices, in slice order.
fn total(e: u32) -> f32 {
    let mn = p.m * p.n;
    var sum = 0.0;
    for (var s = 0u; s < p.k; s++) {
        sum += a_at(s * mn + e);
    }
    return sum;
}

@compute @workgroup_size(WG)
fn matmul_split_sum(t: Thread) {
    let i = element(t);
    let mn = p.m * p.n;
    if (HALF_OUT) {
        // N is even, so both columns of a word are in one row.
        if (i >= mn / 2u) {
            return;
        }
        let e = 2u * i;
        c[i] = pair(total(e), total(e + 1u), e % p.n);
        return;
    }
    if (i >= mn) {
        return;
    }
    c[i] = bitcast<u32>(epilogue(total(i), i % p.n));
}
