// NaN test on the bits: WGSL lets implementations assume no NaNs in float
// arithmetic, so `x != x` may be folded away, but integer tests may not.
fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

// Neither NaN nor ±infinity, on the bits likewise.
fn is_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) < 0x7f800000u;
}
