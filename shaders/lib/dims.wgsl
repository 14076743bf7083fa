// Shapes and strides of up to 8 dims. Uniform arrays need 16-byte strides,
// so they travel as two vec4s (`Dims` in crates/lam-wgpu/src/params.rs).

alias Dims = array<vec4<u32>, 2>;

// Entry d of a packed shape or strides.
fn at(a: Dims, d: u32) -> u32 {
    return a[d >> 2u][d & 3u];
}
