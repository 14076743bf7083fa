// Fused scaled-dot-product attention, forward (FlashAttention's online
// softmax; see lib/attention_params.wgsl for the layout of the work), and
// the per-row terms its backward needs.
//
// attention_forward: one thread per query row keeps its running maximum m,
// its sum l of exp(score - m) and its output accumulator, rescaled whenever
// m grows, while the keys and values stream through workgroup memory TILE
// at a time. No [L, S] score matrix exists anywhere.
//
// A row with a NaN or infinite product q·k (a NaN in its query, say) is NaN
// throughout, as the composite's softmax makes it, and so are its
// statistics, so the backward's weights for that row are NaN too. The test
// is on the bits (lib/nan.wgsl): WGSL lets comparisons ignore NaNs.
//
// attention_rows: per query row, (m, 1 / l, rowsum(dO * out)) for
// attention_grad.wgsl (0, 0, .. for a row with no key to attend to).

// #include "lib/attention_params.wgsl"
// #include "lib/nan.wgsl"

// The output, contiguous [B·H, L, Ev].
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
// Each query row's (m, l), contiguous [B·H, L, 2]; (0, 0) when masked out.
@group(0) @binding(6) var<storage, read_write> stats: array<f32>;
// attention_rows: the output gradient (a view, p.g_*), and the rows it
// writes, contiguous [B·H, L, 3].
@group(0) @binding(7) var<storage, read> grad: array<f32>;
@group(0) @binding(8) var<storage, read_write> rows: array<f32>;

var<workgroup> k_tile: array<f32, TILE_FLOATS>;
var<workgroup> v_tile: array<f32, TILE_FLOATS>;

@compute @workgroup_size(ROWS)
fn attention_forward(t: Thread) {
    let b = block(t, p.l, ROWS);
    let bh = b.x;
    // Uniform per workgroup, so the barriers below stay in uniform control flow.
    if (bh >= p.bh) {
        return;
    }
    let i = b.y + t.lid;
    let live = i < p.l;
    var qi: array<f32, D_MAX>;
    var acc: array<f32, D_MAX>;
    for (var d = 0u; d < HEAD_D; d++) {
        let q_d = q[q_at(bh, min(i, p.l - 1u), min(d, p.e - 1u))];
        qi[d] = select(0.0, q_d, live && d < p.e);
        acc[d] = 0.0;
    }
    var m = NEG_BIG;
    var l = 0.0;
    var bad = false;
    let end = key_end(b.y, ROWS);
    for (var k0 = 0u; k0 < end; k0 += TILE) {
        let n = min(TILE, end - k0);
        for (var x = t.lid; x < n * HEAD_D; x += ROWS) {
            let j = x / HEAD_D;
            let d = x % HEAD_D;
            k_tile[x] = select(0.0, k[k_at(bh, k0 + j, min(d, p.e - 1u))], d < p.e);
            v_tile[x] = select(0.0, v[v_at(bh, k0 + j, min(d, p.ev - 1u))], d < p.ev);
        }
        workgroupBarrier();
        if (live) {
            for (var j = 0u; j < n; j++) {
                var dot = 0.0;
                for (var d = 0u; d < HEAD_D; d++) {
                    dot += qi[d] * k_tile[j * HEAD_D + d];
                }
                bad = bad || !is_finite(dot);
                let s = masked_score(bh, i, k0 + j, dot);
                if (s > m) {
                    let c = exp(m - s);
                    l *= c;
                    for (var d = 0u; d < HEAD_D; d++) {
                        acc[d] *= c;
                    }
                    m = s;
                }
                let w = exp(s - m);
                l += w;
                for (var d = 0u; d < HEAD_D; d++) {
                    acc[d] += w * v_tile[j * HEAD_D + d];
                }
            }
        }
        // Everyone is done with the tile before it is overwritten.
        workgroupBarrier();
    }
    if (!live) {
        return;
    }
    let row = bh * p.l + i;
    let masked = m <= HALF_NEG_BIG;
    let inv = select(1.0 / l, 0.0, masked);
    let nan = bitcast<f32>(0x7fc00000u);
    for (var d = 0u; d < HEAD_D; d++) {
        if (d < p.ev) {
            out[row * p.ev + d] = select(acc[d] * inv, nan, bad);
        }
    }
    stats[row * 2u] = select(select(m, 0.0, masked), nan, bad);
    stats[row * 2u + 1u] = select(select(l, 0.0, masked), nan, bad);
}

@compute @workgroup_size(WG)
fn attention_rows(t: Thread) {
    let row = element(t);
    if (row >= p.bh * p.l) {
        return;
    }
    let bh = row / p.l;
    let i = row % p.l;
    var dot = 0.0;
    for (var d = 0u; d < p.ev; d++) {
        dot += grad[g_at(bh, i, d)] * out[row * p.ev + d];
    }
    let l = stats[row * 2u + 1u];
    rows[row * 3u] = stats[row * 2u];
    rows[row * 3u + 1u] = select(1.0 / l, 0.0, l == 0.0);
    rows[row * 3u + 2u] = dot;
}
