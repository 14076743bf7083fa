// The inner loop of the kernels whose threads each own a 4 x 4 block of C
// (matmul.wgsl's 64 x 64 tiles, matmul_small.wgsl's 32 x 32): the including
// kernel declares the staged slab as `as_[kk][q]` (A rows 4q..4q+3 at depth
// kk) and `bs[kk][q]` (B columns 4q..4q+3), TK deep, and calls `mac_slab`
// once per slab after zeroing the accumulators.

// The thread's 4 x 4 block of C: acc<i> holds row 4 ty + i, columns
// 4 tx + 0..3 as lanes. Private rather than local so that `mac` can add
// into them without pointers.
var<private> acc0: vec4<f32>;
var<private> acc1: vec4<f32>;
var<private> acc2: vec4<f32>;
var<private> acc3: vec4<f32>;

// One depth kk of the staged slab: 16 multiply-adds from two vec4 reads.
fn mac(kk: u32, ty: u32, tx: u32) {
    let av = as_[kk][ty];
    let bv = bs[kk][tx];
    acc0 = fma(vec4<f32>(av.x), bv, acc0);
    acc1 = fma(vec4<f32>(av.y), bv, acc1);
    acc2 = fma(vec4<f32>(av.z), bv, acc2);
    acc3 = fma(vec4<f32>(av.w), bv, acc3);
}

// The whole staged slab, its TK = 16 depths written out rather than looped
// over: wgpu gives every WGSL loop a 64-bit iteration counter and exit
// test, which would outnumber a depth's four vector multiply-adds and can
// keep the driver from unrolling; each call's depth is a constant.
fn mac_slab(ty: u32, tx: u32) {
    mac(0u, ty, tx);
    mac(1u, ty, tx);
    mac(2u, ty, tx);
    mac(3u, ty, tx);
    mac(4u, ty, tx);
    mac(5u, ty, tx);
    mac(6u, ty, tx);
    mac(7u, ty, tx);
    mac(8u, ty, tx);
    mac(9u, ty, tx);
    mac(10u, ty, tx);
    mac(11u, ty, tx);
    mac(12u, ty, tx);
    mac(13u, ty, tx);
    mac(14u, ty, tx);
    mac(15u, ty, tx);
}
