// What the elementwise and copy kernels share: up to three strided input
// views of one shape (rank <= 8 after the host merges dims that are
// contiguous with each other), read in place, never copied first.
//
// Buffers are bound as raw u32 words so one set of bindings serves f32 and
// i32 data alike: math kernels bitcast, copies move bits untouched.

// #include "lib/grid.wgsl"
// #include "lib/dims.wgsl"

// Mirrors `EwParams` in crates/lam-wgpu/src/params.rs.
struct Params {
    numel: u32,
    rank: u32,
    offset0: u32,
    offset1: u32,
    offset2: u32,
    alpha: f32,
    beta: f32,
    // select: 1 when the condition is i32; fill: the value's bits.
    word: u32,
    shape: Dims,
    stride0: Dims,
    stride1: Dims,
    stride2: Dims,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> in0: array<u32>;
@group(0) @binding(2) var<storage, read> in1: array<u32>;
@group(0) @binding(3) var<storage, read> in2: array<u32>;
@group(0) @binding(4) var<storage, read_write> dst: array<u32>;

// Storage offsets of element `i` (row-major over p.shape) in the three views.
// Indexes the uniform directly (no `at`): this runs for every element.
fn offsets(i: u32) -> vec3<u32> {
    var off = vec3<u32>(p.offset0, p.offset1, p.offset2);
    if (p.rank == 1u) {
        // The common case after merging dims: no division needed.
        return off + i * vec3<u32>(p.stride0[0].x, p.stride1[0].x, p.stride2[0].x);
    }
    var rem = i;
    for (var k = 0u; k < p.rank; k++) {
        let d = p.rank - 1u - k;
        let n = p.shape[d >> 2u][d & 3u];
        let c = rem % n;
        rem = rem / n;
        off += c * vec3<u32>(
            p.stride0[d >> 2u][d & 3u],
            p.stride1[d >> 2u][d & 3u],
            p.stride2[d >> 2u][d & 3u],
        );
    }
    return off;
}
