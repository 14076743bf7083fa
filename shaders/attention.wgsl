// Fused scaled-dot-product attention, forward (FlashAttention's online
// softmax; see lib/attention_params.wgsl for the layout of the work), and
// the per-row terms its backward needs.
//
// attention_forward: one thread per query row keeps its running maximum m,
// its sum l of exp(score - m) and its output accumulator, rescaled whenever
// m grows, while the keys and values stream through workgroup memory TILE
// at a time. No [L, S] score matrix exists anywhere.
//
// attention_rows: per query row, (m, 1 / l, rowsum(dO * out)) for
// attention_grad.wgsl (0, 0, .. for a row with no key to attend to).

// #include "lib/attention_params.wgsl"

// The output, contiguous [B·H, L, Ev].
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
// Each query row's (m, l), contiguous [B·H, L, 2]; (0, 0) when masked out.
@group(0) @binding(6) var<storage, read_write> stats: array<f32>;
// attention_rows: the output gradient (a view, p.g_*), and the rows it
// writes, contiguous [B·H, L, 3].
@group(0) @binding(7) var<storage, read> grad: array<f32>;
@group(0) @binding(8) var<storage, read_write> rows: array<f32>;

var<workgroup> k_tile: array<f32, TILE * D_MAX>;
var<workgroup> v_tile: array<f32, TILE * D_MAX>;

@compute @workgroup_size(ROWS)
fn attention_forward(t: Thread) {
    let b = block(t, p.l);
    let bh = b.x;
    // Uniform per workgroup, so the barriers below stay in uniform control flow.
    if (bh >= p.bh) {
        return;
    }
    let i = b.y + t.lid;
    let live = i < p.l;
    var qi: array<f32, D_MAX>;
    var acc: array<f32, D_MAX>;
    for (var d = 0u; d < p.e; d++) {
        qi[d] = select(0.0, q[q_at(bh, min(i, p.l - 1u), d)], live);
    }
    for (var d = 0u; d < p.ev; d++) {
        acc[d] = 0.0;
    }
    var m = NEG_BIG;
    var l = 0.0;
    let end = key_end(b.y);
    for (var k0 = 0u; k0 < end; k0 += TILE) {
        let n = min(TILE, end - k0);
        for (var x = t.lid; x < n * D_MAX; x += ROWS) {
            let j = x / D_MAX;
            let d = x % D_MAX;
            if (d < p.e) {
                k_tile[x] = k[k_at(bh, k0 + j, d)];
            }
            if (d < p.ev) {
                v_tile[x] = v[v_at(bh, k0 + j, d)];
            }
        }
        workgroupBarrier();
        if (live) {
            for (var j = 0u; j < n; j++) {
                var dot = 0.0;
                for (var d = 0u; d < p.e; d++) {
                    dot += qi[d] * k_tile[j * D_MAX + d];
                }
                let s = masked_score(bh, i, k0 + j, dot);
                if (s > m) {
                    let c = exp(m - s);
                    l *= c;
                    for (var d = 0u; d < p.ev; d++) {
                        acc[d] *= c;
                    }
                    m = s;
                }
                let w = exp(s - m);
                l += w;
                for (var d = 0u; d < p.ev; d++) {
                    acc[d] += w * v_tile[j * D_MAX + d];
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
    for (var d = 0u; d < p.ev; d++) {
        out[row * p.ev + d] = acc[d] * inv;
    }
    stats[row * 2u] = select(m, 0.0, masked);
    stats[row * 2u + 1u] = select(l, 0.0, masked);
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
