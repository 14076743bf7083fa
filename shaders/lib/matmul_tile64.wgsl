// What the 64 x 64-tile kernels share (matmul.wgsl and matmul_subgroup.wgsl):
// the load modes, the staging of one K-slab of A and B into workgroup
// memory by 256 threads, and the edge-checked output write. Every strided
// view, any size: see matmul.wgsl for the pipeline constants.

// #include "lib/matmul_io.wgsl"

override A_MODE: u32 = 0u;
override B_MODE: u32 = 0u;
override ALIGNED: bool = false;

// f32 bits, or under HALF_OUT two halves a word.
@group(0) @binding(3) var<storage, read_write> c: array<u32>;

const TILE: u32 = 64u;

// as_[kk][q] holds A rows 4q..4q+3 at depth kk; bs[kk][q] holds B columns
// 4q..4q+3 at depth kk. Two dimensions rather than one flat index so that
// where the depth is a constant (the unrolled inner loop of matmul.wgsl) it
// is an immediate part of the address, and wgpu's bounds checks clamp only
// the thread's quad.
var<workgroup> as_: array<array<vec4<f32>, 16>, TK>;
var<workgroup> bs: array<array<vec4<f32>, 16>, TK>;

fn set_a(kk: u32, r: u32, v: f32) {
    as_[kk][r >> 2u][r & 3u] = v;
}

fn set_b(kk: u32, col: u32, v: f32) {
    bs[kk][col >> 2u][col & 3u] = v;
}

fn load_a_scalar(base: u32, m: u32, k: u32) -> f32 {
    if (ALIGNED || (m < p.m && k < p.k)) {
        return a_at(base + m * p.a_sm + k * p.a_sk);
    }
    return 0.0;
}

fn load_b_scalar(base: u32, k: u32, n: u32) -> f32 {
    if (ALIGNED || (k < p.k && n < p.n)) {
        return b_at(base + k * p.b_sk + n * p.b_sn);
    }
    return 0.0;
}

// Stages the 64 x 16 tile of A at rows m0.., depth k0.. into as_.
fn stage_a(t: u32, base: u32, m0: u32, k0: u32) {
    switch A_MODE {
        case 2u: {
            // 64 rows x 4 vec4s along k; K % 4 == 0 so a vec4 never straddles K.
            let r = t >> 2u;
            let kq = (t & 3u) * 4u;
            var v = vec4<f32>(0.0);
            if (ALIGNED || (m0 + r < p.m && k0 + kq < p.k)) {
                v = a_quad(base + (m0 + r) * p.a_sm + k0 + kq);
            }
            set_a(kq, r, v.x);
            set_a(kq + 1u, r, v.y);
            set_a(kq + 2u, r, v.z);
            set_a(kq + 3u, r, v.w);
        }
        case 3u: {
            // 16 depths x 16 vec4s along m; M % 4 == 0.
            let kk = t >> 4u;
            let q = t & 15u;
            var v = vec4<f32>(0.0);
            if (ALIGNED || (m0 + q * 4u < p.m && k0 + kk < p.k)) {
                v = a_quad(base + m0 + q * 4u + (k0 + kk) * p.a_sk);
            }
            as_[kk][q] = v;
        }
        case 1u: {
            for (var e = 0u; e < 4u; e++) {
                let idx = t + e * 256u;
                let kk = idx & 15u;
                let r = idx >> 4u;
                set_a(kk, r, load_a_scalar(base, m0 + r, k0 + kk));
            }
        }
        default: {
            for (var e = 0u; e < 4u; e++) {
                let idx = t + e * 256u;
                let r = idx & 63u;
                let kk = idx >> 6u;
                set_a(kk, r, load_a_scalar(base, m0 + r, k0 + kk));
            }
        }
    }
}

// Stages the 16 x 64 tile of B at depth k0.., columns n0.. into bs.
fn stage_b(t: u32, base: u32, k0: u32, n0: u32) {
    switch B_MODE {
        case 2u: {
            // 16 depths x 16 vec4s along n; N % 4 == 0.
            let kk = t >> 4u;
            let q = t & 15u;
            var v = vec4<f32>(0.0);
            if (ALIGNED || (k0 + kk < p.k && n0 + q * 4u < p.n)) {
                v = b_quad(base + (k0 + kk) * p.b_sk + n0 + q * 4u);
            }
            bs[kk][q] = v;
        }
        case 3u: {
            // 64 columns x 4 vec4s along k; K % 4 == 0.
            let col = t >> 2u;
            let kq = (t & 3u) * 4u;
            var v = vec4<f32>(0.0);
            if (ALIGNED || (n0 + col < p.n && k0 + kq < p.k)) {
                v = b_quad(base + (n0 + col) * p.b_sn + k0 + kq);
            }
            set_b(kq, col, v.x);
            set_b(kq + 1u, col, v.y);
            set_b(kq + 2u, col, v.z);
            set_b(kq + 3u, col, v.w);
        }
        case 1u: {
            for (var e = 0u; e < 4u; e++) {
                let idx = t + e * 256u;
                let kk = idx & 15u;
                let col = idx >> 4u;
                set_b(kk, col, load_b_scalar(base, k0 + kk, n0 + col));
            }
        }
        default: {
            for (var e = 0u; e < 4u; e++) {
                let idx = t + e * 256u;
                let col = idx & 63u;
                let kk = idx >> 6u;
                set_b(kk, col, load_b_scalar(base, k0 + kk, n0 + col));
            }
        }
    }
}

fn store_row(c_base: u32, row: u32, col: u32, v: vec4<f32>) {
    if (!ALIGNED && row >= p.m) {
        return;
    }
    let i = c_base + row * p.n + col;
    if (HALF_OUT) {
        // N is even, so i is, and col + j < N means col + j + 1 < N too.
        for (var j = 0u; j < 4u; j += 2u) {
            if (ALIGNED || col + j < p.n) {
                c[(i + j) >> 1u] = pair(v[j], v[j + 1u], col + j);
            }
        }
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (ALIGNED || col + j < p.n) {
            c[i + j] = bitcast<u32>(epilogue(v[j], col + j));
        }
    }
}
