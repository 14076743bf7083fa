// The dispatch grid of lam's kernels: workgroups of WG threads. The host
// (`fold_grid` in crates/lam-wgpu/src/params.rs) folds grids above 65535
// workgroups into rows of exactly GRID_X, so no num_workgroups builtin
// (which HLSL lacks natively) is needed to number them.

const WG: u32 = 256u;
const GRID_X: u32 = 65535u;

// An entry point's builtins: `fn kernel(t: Thread)`.
struct Thread {
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
}

// The linear number of this thread's workgroup in the folded grid.
fn workgroup_index(t: Thread) -> u32 {
    return t.wid.x + t.wid.y * GRID_X;
}

// The linear element of this thread, for one-thread-per-element kernels.
fn element(t: Thread) -> u32 {
    return workgroup_index(t) * WG + t.lid;
}
