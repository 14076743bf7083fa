// Fused scaled-dot-product attention, forward, a workgroup per block of
// OWN queries (FlashAttention-2; the layout of the work is in
// lib/attention_tiles.wgsl). Per key tile: the workgroup computes the
// block's OWN × TILE scores, one thread per query row turns its row into
// weights exp(s - m) against the row's running maximum m (rescaling its sum
// l, and recording the factor the accumulators take), and every thread adds
// the weights times the value tile into its columns of the output. No
// [L, S] score matrix exists anywhere; under causal, key tiles past the
// block's last query are never read.
//
// The LANES threads of a row keep its running maximum m and sum l each,
// identical copies: each finds the maximum and the sum over its own scores,
// and reads its row's other partial results from `partial_max` and
// `partial_sum`, always combining them in the same order.
//
// Same results as attention.wgsl's attention_forward, whose statistics
// (m, l) it writes too, so the backward (attention_rows, then either
// gradient family) reads them alike: a row with no key to attend to is 0
// with statistics (0, 0); a row with a NaN or infinite product q·k among
// the keys it sees (all of them, or those up to its own position when
// causal) is NaN, statistics included.

// #include "lib/attention_params.wgsl"
// #include "lib/attention_tiles.wgsl"
// #include "lib/nan.wgsl"

// The output, contiguous [B·H, L, Ev].
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
// Each query row's (m, l), contiguous [B·H, L, 2]; (0, 0) when masked out.
@group(0) @binding(6) var<storage, read_write> stats: array<f32>;

// Per thread: the maximum and the sum of exp(s - m) over its scores of the
// current tile, and whether it saw a product that is not finite.
var<workgroup> partial_max: array<f32, THREADS>;
var<workgroup> partial_sum: array<f32, THREADS>;
var<workgroup> saw_bad: array<u32, THREADS>;

fn origin(src: u32, bh: u32) -> u32 {
    switch src {
        case SRC_Q: {
            return q_at(bh, 0u, 0u);
        }
        case SRC_K: {
            return k_at(bh, 0u, 0u);
        }
        default: {
            return v_at(bh, 0u, 0u);
        }
    }
}

fn operand(src: u32, base: u32, row: u32, col: u32) -> f32 {
    switch src {
        case SRC_Q: {
            return q[base + row * p.q_r + col * p.q_c];
        }
        case SRC_K: {
            return k[base + row * p.k_r + col * p.k_c];
        }
        default: {
            return v[base + row * p.v_r + col * p.v_c];
        }
    }
}

@compute @workgroup_size(THREADS)
fn attention_tiled_forward(t: Thread) {
    let b = block(t, p.l, OWN);
    let bh = b.x;
    // Uniform per workgroup, so the barriers below stay in uniform control flow.
    if (bh >= p.bh) {
        return;
    }
    let first = b.y;
    let r = t.lid / LANES;
    let lane = t.lid % LANES;
    let i = first + r;
    var acc: array<f32, PER_LANE>;
    var m = NEG_BIG;
    var l = 0.0;
    var bad = false;
    let end = key_end(first, OWN);
    for (var k0 = 0u; k0 < end; k0 += TILE) {
        let dots = tile_dots(t.lid, bh, SRC_Q, first, p.l, SRC_K, k0, end, p.e);
        // This thread's masked scores, and their maximum (keys past `end`
        // take no part).
        var scores: array<f32, TILE_MAX / LANES>;
        var own_max = NEG_BIG;
        for (var y = 0u; y < TILE / LANES; y++) {
            let j = k0 + lane + LANES * y;
            var s = NEG_BIG;
            if (i < p.l && j < end) {
                let seen = p.causal == 0u || j <= i;
                if (is_finite(dots[y])) {
                    s = masked_score(bh, i, j, dots[y]);
                } else if (seen) {
                    bad = true;
                }
                own_max = max(own_max, s);
            }
            scores[y] = s;
        }
        partial_max[t.lid] = own_max;
        workgroupBarrier();
        var m_new = m;
        for (var x = 0u; x < LANES; x++) {
            m_new = max(m_new, partial_max[r * LANES + x]);
        }
        var own_sum = 0.0;
        for (var y = 0u; y < TILE / LANES; y++) {
            let o = lane + LANES * y;
            var w = 0.0;
            if (k0 + o < end) {
                w = exp(scores[y] - m_new);
            }
            weights[r * TILE + o] = w;
            own_sum += w;
        }
        partial_sum[t.lid] = own_sum;
        load_wide(t.lid, SRC_V, bh, k0, end, p.ev);
        workgroupBarrier();
        let factor = exp(m - m_new);
        var sum = 0.0;
        for (var x = 0u; x < LANES; x++) {
            sum += partial_sum[r * LANES + x];
        }
        l = l * factor + sum;
        m = m_new;
        for (var x = 0u; x < HEAD_D / LANES; x++) {
            acc[x] *= factor;
        }
        accumulate(t.lid, &acc);
        // Everyone is done with the tiles before they are overwritten.
        workgroupBarrier();
    }
    saw_bad[t.lid] = u32(bad);
    workgroupBarrier();
    if (i >= p.l) {
        return;
    }
    var row_bad = 0u;
    for (var x = 0u; x < LANES; x++) {
        row_bad |= saw_bad[r * LANES + x];
    }
    let nan = bitcast<f32>(0x7fc00000u);
    let masked = m <= HALF_NEG_BIG;
    let inv = select(1.0 / l, 0.0, masked);
    let at = bh * p.l + i;
    for (var x = 0u; x < HEAD_D / LANES; x++) {
        let c = lane + LANES * x;
        if (c < p.ev) {
            out[at * p.ev + c] = select(acc[x] * inv, nan, row_bad != 0u);
        }
    }
    if (lane == 0u) {
        stats[at * 2u] = select(select(m, 0.0, masked), nan, row_bad != 0u);
        stats[at * 2u + 1u] = select(select(l, 0.0, masked), nan, row_bad != 0u);
    }
}
