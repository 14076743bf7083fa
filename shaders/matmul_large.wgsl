// Batched matrix product C[b] = A[b] (M x K) * B[b] (K x N) for large,
// tile-aligned products: M and N multiples of 128 (N of 64 when NARROW), K
// a multiple of 16.
//
// matmul.wgsl handles every shape with 64 x 64 tiles; this kernel trades
// generality for arithmetic intensity. Each workgroup of 256 threads computes
// a 128 x 128 tile of C and each thread an 8 x 8 block of it, as four 4 x 4
// quadrants 64 rows / columns apart (so neighbouring threads read
// neighbouring vec4s of the staged tiles). Per step of 16 along K a thread
// does 1024 multiply-adds for 64 vec4 reads of workgroup memory.
//
// NARROW (the host's `Tile128x64`) keeps the left column quadrant only: a
// 128 x 64 tile, an 8 x 4 block per thread, 512 multiply-adds per step for
// 48 vec4 reads. Products 512 columns wide (a transformer's projections)
// then make 256 workgroups of 128 x 64 where 128 x 128 tiles make 128,
// fewer than a large GPU has multiprocessors for two each, and 64 x 64
// tiles make 512 of half the arithmetic per read. The next
// K-slab is loaded from global memory into registers while the current one
// is multiplied, hiding the load latency behind the arithmetic, and then
// staged into the other of two workgroup buffers.
//
// Pipeline constants (the host picks them as for matmul.wgsl):
// - A_MODE: 2 row-major A (vec4 along k), 3 transposed A (vec4 along m);
// - B_MODE: 2 row-major B (vec4 along n), 3 transposed B (vec4 along k);
// - NARROW: 64-column tiles (above);
// - EPILOGUE, HALF: as in matmul.wgsl (see lib/matmul_io.wgsl).
// The host checks alignment: offsets, batch strides and the non-unit stride
// multiples of 4, so every vec4 load is aligned.

// #include "lib/matmul_io.wgsl"

override A_MODE: u32 = 2u;
override B_MODE: u32 = 2u;
override NARROW: bool = false;

// Four f32 outputs' bits, or under HALF_OUT eight halves.
@group(0) @binding(3) var<storage, read_write> c: array<vec4<u32>>;

const TILE: u32 = 128u;
// The tile's columns.
override TILE_N: u32 = select(128u, 64u, NARROW);

// as_[buf][kk][q] holds A rows 4q..4q+3 at depth kk of the slab in buffer
// buf; bs[buf][kk][q] holds B columns 4q..4q+3 (q < 16 when NARROW).
// Two buffers: the next slab
// is staged into one while the other is multiplied, so a slab costs one
// barrier, not two (32 KiB of workgroup memory; the host runs the kernel
// only on devices that allow it). Indexed by depth rather than by one flat
// index so that, in the unrolled inner loop, the depth is a constant part
// of the address (an immediate offset) and only the buffer and the
// thread's quad are clamped by wgpu's bounds checks, once per slab rather
// than once per load.
var<workgroup> as_: array<array<array<vec4<f32>, 32>, TK>, 2>;
var<workgroup> bs: array<array<array<vec4<f32>, 32>, TK>, 2>;

// The thread's 8 x 8 block of C: acc<R><C>_<i> holds row (R ? 64 : 0) +
// 4 ty + i, columns (C ? 64 : 0) + 4 tx + 0..3 as lanes. Private rather
// than local so that `mac` can add into them without pointers.
var<private> acc00_0: vec4<f32>;
var<private> acc00_1: vec4<f32>;
var<private> acc00_2: vec4<f32>;
var<private> acc00_3: vec4<f32>;
var<private> acc01_0: vec4<f32>;
var<private> acc01_1: vec4<f32>;
var<private> acc01_2: vec4<f32>;
var<private> acc01_3: vec4<f32>;
var<private> acc10_0: vec4<f32>;
var<private> acc10_1: vec4<f32>;
var<private> acc10_2: vec4<f32>;
var<private> acc10_3: vec4<f32>;
var<private> acc11_0: vec4<f32>;
var<private> acc11_1: vec4<f32>;
var<private> acc11_2: vec4<f32>;
var<private> acc11_3: vec4<f32>;

// The two vec4s of A and of B one thread loads per K-slab.
struct Slab {
    a0: vec4<f32>,
    a1: vec4<f32>,
    b0: vec4<f32>,
    b1: vec4<f32>,
}

fn load_slab(t: u32, a_base: u32, b_base: u32, m0: u32, n0: u32, k0: u32) -> Slab {
    var s: Slab;
    if (A_MODE == 3u) {
        // 16 depths x 32 vec4s along m: depths t/32 and t/32 + 8.
        let kk = t >> 5u;
        let q = t & 31u;
        let i = a_base + m0 + q * 4u + (k0 + kk) * p.a_sk;
        s.a0 = a_quad(i);
        s.a1 = a_quad(i + 8u * p.a_sk);
    } else {
        // 128 rows x 4 vec4s along k: rows t/4 and t/4 + 64.
        let r = t >> 2u;
        let i = a_base + (m0 + r) * p.a_sm + k0 + (t & 3u) * 4u;
        s.a0 = a_quad(i);
        s.a1 = a_quad(i + 64u * p.a_sm);
    }
    if (B_MODE == 3u) {
        // 128 columns x 4 vec4s along k: columns t/4 and t/4 + 64 (the
        // first only when NARROW).
        let col = t >> 2u;
        let i = b_base + (n0 + col) * p.b_sn + k0 + (t & 3u) * 4u;
        s.b0 = b_quad(i);
        if (!NARROW) {
            s.b1 = b_quad(i + 64u * p.b_sn);
        }
    } else if (NARROW) {
        // 16 depths x 16 vec4s along n: depth t/16.
        s.b0 = b_quad(b_base + (k0 + (t >> 4u)) * p.b_sk + n0 + (t & 15u) * 4u);
    } else {
        // 16 depths x 32 vec4s along n: depths t/32 and t/32 + 8.
        let kk = t >> 5u;
        let q = t & 31u;
        let i = b_base + (k0 + kk) * p.b_sk + n0 + q * 4u;
        s.b0 = b_quad(i);
        s.b1 = b_quad(i + 8u * p.b_sk);
    }
    return s;
}

// Writes element `lane` of vectors 4 apart along a row-major slab's depth:
// v[j] goes to depth kq + j. (A row-major A's vec4 runs along k, which the
// staged layout transposes.)
fn stage_a_column(buf: u32, kq: u32, q: u32, lane: u32, v: vec4<f32>) {
    as_[buf][kq][q][lane] = v.x;
    as_[buf][kq + 1u][q][lane] = v.y;
    as_[buf][kq + 2u][q][lane] = v.z;
    as_[buf][kq + 3u][q][lane] = v.w;
}

fn stage_b_column(buf: u32, kq: u32, q: u32, lane: u32, v: vec4<f32>) {
    bs[buf][kq][q][lane] = v.x;
    bs[buf][kq + 1u][q][lane] = v.y;
    bs[buf][kq + 2u][q][lane] = v.z;
    bs[buf][kq + 3u][q][lane] = v.w;
}

// Writes one slab into buffer `buf` of as_ and bs, in their layout.
fn stage(buf: u32, t: u32, s: Slab) {
    if (A_MODE == 3u) {
        let kk = t >> 5u;
        let q = t & 31u;
        as_[buf][kk][q] = s.a0;
        as_[buf][kk + 8u][q] = s.a1;
    } else {
        let r = t >> 2u;
        let kq = (t & 3u) * 4u;
        stage_a_column(buf, kq, r >> 2u, r & 3u, s.a0);
        stage_a_column(buf, kq, 16u + (r >> 2u), r & 3u, s.a1);
    }
    if (B_MODE == 3u) {
        let col = t >> 2u;
        let kq = (t & 3u) * 4u;
        stage_b_column(buf, kq, col >> 2u, col & 3u, s.b0);
        if (!NARROW) {
            stage_b_column(buf, kq, 16u + (col >> 2u), col & 3u, s.b1);
        }
    } else if (NARROW) {
        bs[buf][t >> 4u][t & 15u] = s.b0;
    } else {
        let kk = t >> 5u;
        let q = t & 31u;
        bs[buf][kk][q] = s.b0;
        bs[buf][kk + 8u][q] = s.b1;
    }
}

// One depth kk of the slab in buffer `buf`: 64 multiply-adds from four
// vec4 reads (32 from three when NARROW).
fn mac(buf: u32, kk: u32, ty: u32, tx: u32) {
    let a0 = as_[buf][kk][ty];
    let a1 = as_[buf][kk][ty + 16u];
    let b0 = bs[buf][kk][tx];
    acc00_0 = fma(vec4<f32>(a0.x), b0, acc00_0);
    acc00_1 = fma(vec4<f32>(a0.y), b0, acc00_1);
    acc00_2 = fma(vec4<f32>(a0.z), b0, acc00_2);
    acc00_3 = fma(vec4<f32>(a0.w), b0, acc00_3);
    acc10_0 = fma(vec4<f32>(a1.x), b0, acc10_0);
    acc10_1 = fma(vec4<f32>(a1.y), b0, acc10_1);
    acc10_2 = fma(vec4<f32>(a1.z), b0, acc10_2);
    acc10_3 = fma(vec4<f32>(a1.w), b0, acc10_3);
    if (NARROW) {
        return;
    }
    let b1 = bs[buf][kk][tx + 16u];
    acc01_0 = fma(vec4<f32>(a0.x), b1, acc01_0);
    acc01_1 = fma(vec4<f32>(a0.y), b1, acc01_1);
    acc01_2 = fma(vec4<f32>(a0.z), b1, acc01_2);
    acc01_3 = fma(vec4<f32>(a0.w), b1, acc01_3);
    acc11_0 = fma(vec4<f32>(a1.x), b1, acc11_0);
    acc11_1 = fma(vec4<f32>(a1.y), b1, acc11_1);
    acc11_2 = fma(vec4<f32>(a1.z), b1, acc11_2);
    acc11_3 = fma(vec4<f32>(a1.w), b1, acc11_3);
}

// The whole staged slab, its 16 depths written out rather than looped
// over: wgpu gives every WGSL loop a 64-bit iteration counter and exit
// test, which in a loop of 64 multiply-adds would take a quarter of the
// issue slots (an H200's FP32 peak needs an FMA in nearly every slot) and
// can keep the driver from unrolling; each call's depth is a constant.
fn mac_slab(buf: u32, ty: u32, tx: u32) {
    mac(buf, 0u, ty, tx);
    mac(buf, 1u, ty, tx);
    mac(buf, 2u, ty, tx);
    mac(buf, 3u, ty, tx);
    mac(buf, 4u, ty, tx);
    mac(buf, 5u, ty, tx);
    mac(buf, 6u, ty, tx);
    mac(buf, 7u, ty, tx);
    mac(buf, 8u, ty, tx);
    mac(buf, 9u, ty, tx);
    mac(buf, 10u, ty, tx);
    mac(buf, 11u, ty, tx);
    mac(buf, 12u, ty, tx);
    mac(buf, 13u, ty, tx);
    mac(buf, 14u, ty, tx);
    mac(buf, 15u, ty, tx);
}

// Output quad `q` (elements 4q..4q+3, columns col..col+3) through the
// epilogue: one vec4 of f32 bits, or under HALF_OUT its four halves, two
// words of the vec4 holding quads 2(q / 2) and 2(q / 2) + 1.
fn put(q: u32, v: vec4<f32>, col: u32) {
    if (HALF_OUT) {
        let lane = (q & 1u) * 2u;
        c[q >> 1u][lane] = pair(v.x, v.y, col);
        c[q >> 1u][lane + 1u] = pair(v.z, v.w, col + 2u);
        return;
    }
    c[q] = bitcast<vec4<u32>>(epilogue4(v, col));
}

@compute @workgroup_size(256)
fn matmul_large(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let tx = t & 15u;
    let ty = t >> 4u;
    let tiles_n = p.n / TILE_N;
    let tiles_m = p.m / TILE;
    // Grid dimensions are at most GRID_MAX; larger extents loop. All loop
    // bounds are uniform, so the barriers inside stay in uniform control flow.
    for (var bz = wid.z; bz < p.batch; bz += GRID_MAX) {
        let a_base = p.a_offset + bz * p.a_sb;
        let b_base = p.b_offset + bz * p.b_sb;
        let c_base = bz * p.m * p.n;
        for (var tm = wid.y; tm < tiles_m; tm += GRID_MAX) {
            for (var tn = wid.x; tn < tiles_n; tn += GRID_MAX) {
                let m0 = tm * TILE;
                let n0 = tn * TILE_N;
                acc00_0 = vec4<f32>(0.0);
                acc00_1 = vec4<f32>(0.0);
                acc00_2 = vec4<f32>(0.0);
                acc00_3 = vec4<f32>(0.0);
                acc01_0 = vec4<f32>(0.0);
                acc01_1 = vec4<f32>(0.0);
                acc01_2 = vec4<f32>(0.0);
                acc01_3 = vec4<f32>(0.0);
                acc10_0 = vec4<f32>(0.0);
                acc10_1 = vec4<f32>(0.0);
                acc10_2 = vec4<f32>(0.0);
                acc10_3 = vec4<f32>(0.0);
                acc11_0 = vec4<f32>(0.0);
                acc11_1 = vec4<f32>(0.0);
                acc11_2 = vec4<f32>(0.0);
                acc11_3 = vec4<f32>(0.0);
                // Slab i is multiplied from buffer i % 2 while slab i + 1,
                // loaded into registers meanwhile, is staged into the other.
                // The barrier after both keeps any thread from staging
                // slab i + 2 over slab i while another still multiplies it
                // (and the loop's last one, a next tile's slab 0 over this
                // tile's last).
                stage(0u, t, load_slab(t, a_base, b_base, m0, n0, 0u));
                workgroupBarrier();
                var buf = 0u;
                for (var k0 = 0u; k0 < p.k; k0 += TK) {
                    let more = k0 + TK < p.k;
                    var next: Slab;
                    if (more) {
                        next = load_slab(t, a_base, b_base, m0, n0, k0 + TK);
                    }
                    mac_slab(buf, ty, tx);
                    if (more) {
                        stage(buf ^ 1u, t, next);
                    }
                    workgroupBarrier();
                    buf ^= 1u;
                }
                let r0 = m0 + ty * 4u;
                let r1 = r0 + 64u;
                // vec4 column indices of the two column quadrants.
                let q0 = (c_base + n0) / 4u + tx;
                let q1 = q0 + 16u;
                let row = p.n / 4u;
                let col0 = n0 + tx * 4u;
                let col1 = col0 + 64u;
                put(r0 * row + q0, acc00_0, col0);
                put((r0 + 1u) * row + q0, acc00_1, col0);
                put((r0 + 2u) * row + q0, acc00_2, col0);
                put((r0 + 3u) * row + q0, acc00_3, col0);
                put(r1 * row + q0, acc10_0, col0);
                put((r1 + 1u) * row + q0, acc10_1, col0);
                put((r1 + 2u) * row + q0, acc10_2, col0);
                put((r1 + 3u) * row + q0, acc10_3, col0);
                if (NARROW) {
                    continue;
                }
                put(r0 * row + q1, acc01_0, col1);
                put((r0 + 1u) * row + q1, acc01_1, col1);
                put((r0 + 2u) * row + q1, acc01_2, col1);
                put((r0 + 3u) * row + q1, acc01_3, col1);
                put(r1 * row + q1, acc11_0, col1);
                put((r1 + 1u) * row + q1, acc11_1, col1);
                put((r1 + 2u) * row + q1, acc11_2, col1);
                put((r1 + 3u) * row + q1, acc11_3, col1);
            }
        }
    }
}
