// Data movement over strided views: strided copies, dtype casts and fills.
// Values move as raw u32 words, so copies are exact for every dtype.

// #include "lib/elementwise_views.wgsl"

override TO_INT: bool = false;

// f32 -> i32 truncating toward zero (TO_INT), or i32 -> f32.
@compute @workgroup_size(WG)
fn cast_dtype(t: Thread) {
    let i = element(t);
    if (i >= p.numel) {
        return;
    }
    let w = in0[offsets(i).x];
    if (TO_INT) {
        dst[i] = bitcast<u32>(i32(bitcast<f32>(w)));
    } else {
        dst[i] = bitcast<u32>(f32(bitcast<i32>(w)));
    }
}

// dst view (offset1/stride1) = src view (offset0/stride0), bits unchanged.
@compute @workgroup_size(WG)
fn copy_view(t: Thread) {
    let i = element(t);
    if (i >= p.numel) {
        return;
    }
    let o = offsets(i);
    dst[o.y] = in0[o.x];
}

// dst[offset1 + i] = word for i < numel (zeros and constant tensors).
@compute @workgroup_size(WG)
fn fill_value(t: Thread) {
    let i = element(t);
    if (i >= p.numel) {
        return;
    }
    dst[p.offset1 + i] = p.word;
}
