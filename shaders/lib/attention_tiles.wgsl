// The work layout of the tiled attention kernels (attention_tiled.wgsl,
// attention_tiled_grad.wgsl), FlashAttention-2's: a workgroup of THREADS
// threads owns OWN rows of one batch·head (queries, or keys in the dk/dv
// kernel) and streams the other side past them TILE rows at a time.
//
// - Scores: each thread computes TILE / LANES of its block's OWN × TILE
//   products, those of own row lid / LANES with the other side's rows
//   lane + LANES·y (lane = lid % LANES), from DK-wide column chunks of both
//   operands staged in workgroup memory (`tile_dots`), as a matmul tile.
// - Accumulators: the same thread owns columns lane + LANES·x of its row's
//   output (or dk, dv, dq), HEAD_D / LANES of them in registers, and adds
//   the weights (kept in `weights`, OWN × TILE) times a whole TILE × HEAD_D
//   tile of the other side staged in `wide`.
//
// Workgroup memory: `wide` (2,048 floats; the two column chunks alias its
// start), `weights` (1,024) and the kernels' few row terms, 13.5 KiB at most,
// within the 16 KiB every WebGPU adapter grants (the host checks). The
// shader including this defines `origin(src, bh)`, where batch·head `bh`'s
// rows of input SRC_* start, and `operand(src, base, row, col)`, the
// element it reads: the division that splits `bh` into batch and head runs
// once per tile, not once per element.

const THREADS: u32 = 128u;
const LANES: u32 = 4u;
const OWN: u32 = 32u;
// Columns per chunk of the score products, and the chunks' row stride
// (one more, so a column read by eight rows at once spreads over banks).
const DK: u32 = 16u;
const DK_STRIDE: u32 = 17u;
// Where the other side's chunk starts in `wide`.
const OTHER_CHUNK: u32 = 544u;
// The most rows TILE may be (TILE / LANES scores per thread), and the most
// accumulator columns per thread (D_MAX / LANES).
const TILE_MAX: u32 = 32u;
const PER_LANE: u32 = 32u;

// The inputs `operand` reads.
const SRC_Q: u32 = 0u;
const SRC_K: u32 = 1u;
const SRC_V: u32 = 2u;
const SRC_G: u32 = 3u;

var<workgroup> wide: array<f32, 2048>;
var<workgroup> weights: array<f32, 1024>;

// Element (row, col) of input `src` from `base` (its `origin`), or 0 for a
// row at or past `end` or a column at or past `cols`.
fn fetch(src: u32, base: u32, row: u32, end: u32, col: u32, cols: u32) -> f32 {
    if (row >= end || col >= cols) {
        return 0.0;
    }
    return operand(src, base, row, col);
}

// The products of own row lid / LANES (of the rows of `own` from
// `own_first`, up to `own_end`) with rows lane + LANES·y of `other` (from
// `other_first`, up to `other_end`), over `cols` columns; 0 past the ends.
// Called in uniform control flow: it synchronises the workgroup, and
// leaves `wide` free for the caller.
fn tile_dots(
    lid: u32,
    bh: u32,
    own: u32,
    own_first: u32,
    own_end: u32,
    other: u32,
    other_first: u32,
    other_end: u32,
    cols: u32,
) -> array<f32, TILE_MAX / LANES> {
    var dots: array<f32, TILE_MAX / LANES>;
    let r = lid / LANES;
    let lane = lid % LANES;
    let own_origin = origin(own, bh);
    let other_origin = origin(other, bh);
    for (var c0 = 0u; c0 < cols; c0 += DK) {
        for (var x = lid; x < OWN * DK; x += THREADS) {
            let row = x / DK;
            let c = x % DK;
            wide[row * DK_STRIDE + c] = fetch(own, own_origin, own_first + row, own_end, c0 + c, cols);
        }
        for (var x = lid; x < TILE * DK; x += THREADS) {
            let row = x / DK;
            let c = x % DK;
            wide[OTHER_CHUNK + row * DK_STRIDE + c] =
                fetch(other, other_origin, other_first + row, other_end, c0 + c, cols);
        }
        workgroupBarrier();
        for (var c = 0u; c < DK; c++) {
            let a = wide[r * DK_STRIDE + c];
            for (var y = 0u; y < TILE / LANES; y++) {
                dots[y] += a * wide[OTHER_CHUNK + (lane + LANES * y) * DK_STRIDE + c];
            }
        }
        workgroupBarrier();
    }
    return dots;
}

// Stages rows `first`.. (up to `end`) of input `src`, `cols` columns, as a
// TILE × HEAD_D tile in `wide`, zero-padded.
fn load_wide(lid: u32, src: u32, bh: u32, first: u32, end: u32, cols: u32) {
    let base = origin(src, bh);
    for (var x = lid; x < TILE * HEAD_D; x += THREADS) {
        wide[x] = fetch(src, base, first + x / HEAD_D, end, x % HEAD_D, cols);
    }
}

// acc[x] += Σ_o weights[own row, o] · wide[o, lane + LANES·x]: the weighted
// sum of the staged tile's rows into this thread's accumulator columns.
fn accumulate(lid: u32, acc: ptr<function, array<f32, PER_LANE>>) {
    let r = lid / LANES;
    let lane = lid % LANES;
    for (var o = 0u; o < TILE; o++) {
        let w = weights[r * TILE + o];
        for (var x = 0u; x < HEAD_D / LANES; x++) {
            (*acc)[x] += w * wide[o * HEAD_D + lane + LANES * x];
        }
    }
}
