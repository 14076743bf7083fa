// What the attention kernels share (the per-row attention.wgsl and
// attention_grad.wgsl, the workgroup-tiled attention_tiled.wgsl and
// attention_tiled_grad.wgsl): the parameter block, the read-only inputs as
// strided [B, H, rows, cols] views, and the masked, scaled score of one
// (query, key) pair.
//
// In the per-row kernels one thread owns one row (a query, or a key in the
// dk/dv kernel) and keeps it, and its accumulators, in private arrays of
// D_MAX floats; the other operand streams through workgroup memory TILE
// rows at a time. The tiled kernels (lib/attention_tiles.wgsl) share a
// block of rows among a workgroup instead. Head dims above D_MAX are
// declined on the host.
//
// Masked scores are NEG_BIG, never -inf (WGSL lets implementations assume no
// infinities): a mask value is clamped to it, and a row whose largest score
// is at or below HALF_NEG_BIG has no key it may attend to. Finite masks
// above that (MultiheadAttention's -1e9) are ordinary scores.

// #include "lib/grid.wgsl"

const D_MAX: u32 = 128u;
// Threads per workgroup, one row each.
const ROWS: u32 = 64u;
// Floats in each workgroup tile: TILE rows of HEAD_D.
const TILE_FLOATS: u32 = 1024u;
// The head dims (E and Ev) rounded up to a power of two of at least 16, set
// per pipeline by the host. Loops over a row run to HEAD_D, a constant once
// the pipeline is built, so the driver can unroll them and keep the private
// row arrays in registers (a loop to p.e indexes them dynamically, which
// puts them in slow local memory); columns from E (or Ev) to HEAD_D hold 0.
override HEAD_D: u32 = 128u;
// Rows of the streamed operand per workgroup tile: TILE_FLOATS / HEAD_D in
// the per-row kernels, min(32, 2048 / HEAD_D) in the tiled ones.
override TILE: u32 = 8u;
const NEG_BIG: f32 = -3.0e38;
const HALF_NEG_BIG: f32 = -1.5e38;

// Mirrors `AttentionParams` in crates/lam-wgpu/src/ops/attention.rs. Each
// view is an offset and the strides of its [B, H, row, col] dims.
struct Params {
    bh: u32,
    heads: u32,
    l: u32,
    s: u32,
    e: u32,
    ev: u32,
    causal: u32,
    has_mask: u32,
    scale: f32,
    q_off: u32, q_b: u32, q_h: u32, q_r: u32, q_c: u32,
    k_off: u32, k_b: u32, k_h: u32, k_r: u32, k_c: u32,
    v_off: u32, v_b: u32, v_h: u32, v_r: u32, v_c: u32,
    m_off: u32, m_b: u32, m_h: u32, m_r: u32, m_c: u32,
    g_off: u32, g_b: u32, g_h: u32, g_r: u32, g_c: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
// The additive mask [B, H, L, S]; any buffer when p.has_mask is 0.
@group(0) @binding(4) var<storage, read> mask: array<f32>;

// Where batch·head `bh`'s (row, col) lives, from a view's offset and strides.
fn at(bh: u32, row: u32, col: u32, off: u32, sb: u32, sh: u32, sr: u32, sc: u32) -> u32 {
    return off + (bh / p.heads) * sb + (bh % p.heads) * sh + row * sr + col * sc;
}

fn q_at(bh: u32, i: u32, d: u32) -> u32 {
    return at(bh, i, d, p.q_off, p.q_b, p.q_h, p.q_r, p.q_c);
}

fn k_at(bh: u32, j: u32, d: u32) -> u32 {
    return at(bh, j, d, p.k_off, p.k_b, p.k_h, p.k_r, p.k_c);
}

fn v_at(bh: u32, j: u32, d: u32) -> u32 {
    return at(bh, j, d, p.v_off, p.v_b, p.v_h, p.v_r, p.v_c);
}

// The output gradient [B, H, L, Ev] (attention_grad.wgsl and the row
// statistics of the backward).
fn g_at(bh: u32, i: u32, d: u32) -> u32 {
    return at(bh, i, d, p.g_off, p.g_b, p.g_h, p.g_r, p.g_c);
}

// The score of query i and key j of `bh` whose dot product is `dot`:
// scaled, masked, NEG_BIG above the diagonal when causal.
fn masked_score(bh: u32, i: u32, j: u32, dot: f32) -> f32 {
    var s = dot * p.scale;
    if (p.has_mask != 0u) {
        s += mask[at(bh, i, j, p.m_off, p.m_b, p.m_h, p.m_r, p.m_c)];
    }
    s = max(s, NEG_BIG);
    if (p.causal != 0u && j > i) {
        s = NEG_BIG;
    }
    return s;
}

// The keys a block of `rows` queries from `first` may need: all of the `s`
// keys, or when causal those up to the block's last query.
fn key_end(first: u32, rows: u32) -> u32 {
    if (p.causal != 0u) {
        return min(p.s, first + rows);
    }
    return p.s;
}

// The block of `rows` rows (of `count`) this workgroup owns: its
// batch·head and first row, or bh == p.bh past the last block.
fn block(t: Thread, count: u32, rows: u32) -> vec2<u32> {
    let blocks = max((count + rows - 1u) / rows, 1u);
    let w = workgroup_index(t);
    return vec2<u32>(min(w / blocks, p.bh), (w % blocks) * rows);
}
