// Device-side index checks. A kernel that meets a user index outside
// 0..size never reads there (it reads nothing, so its result is harmless:
// 0, or a target that matches no class) and records the fault in four words
// of a per-device buffer. The host copies the words back with the next
// readback or synchronize (no extra submit) and returns the fault then as an
// OutOfRange error, as CUDA reports a device-side assert. The layout mirrors
// `RangeFault` in crates/lam-wgpu/src/fault.rs:
//   [0] 0 while no fault is recorded, then 1;
//   [1] the op's code (the FAULT_* constants), [2] the index (i32 bits),
//   [3] the size it had to be below,
// written by the first faulting thread only, so the first fault stays until
// the host clears the words.

@group(0) @binding(7) var<storage, read_write> range_fault: array<atomic<u32>, 4>;

const FAULT_INDEX_SELECT: u32 = 1u;
const FAULT_GATHER: u32 = 2u;
const FAULT_SCATTER_ADD: u32 = 3u;
const FAULT_CROSS_ENTROPY: u32 = 4u;

// True when 0 <= index < size; otherwise records the fault (unless one is
// recorded already) and returns false. In range, this is one comparison.
fn index_ok(op: u32, index: i32, size: u32) -> bool {
    if (index >= 0i && u32(index) < size) {
        return true;
    }
    if (atomicLoad(&range_fault[0]) == 0u && atomicExchange(&range_fault[0], 1u) == 0u) {
        atomicStore(&range_fault[1], op);
        atomicStore(&range_fault[2], bitcast<u32>(index));
        atomicStore(&range_fault[3], size);
    }
    return false;
}
