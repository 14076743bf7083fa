//! Device-side index faults. Index kernels check every user index on the
//! device (`shaders/lib/range_fault.wgsl`): one outside its dim is never
//! read, and the first such index is recorded in four words of a per-device
//! buffer. Each readback and `synchronize` copies those words back in the
//! same submit as the data (no extra submit, no extra wait) and turns a
//! recorded fault into [`Error::OutOfRange`], then clears it, so the device
//! goes on working. This is how CUDA reports a device-side assert: at the
//! next synchronising call, which may come from a later op than the faulty
//! one; and since the words are per device, a thread sharing the device
//! with the faulty op's thread may receive it.
//!
//! In range, a check is one comparison in the kernel. The cost elsewhere
//! is 16 bytes more per readback copy, and a write to clear the words after
//! a fault.

use lam_core::{Error, Result};

use crate::kernels::fault_op;

/// Bytes of the fault words: flag, op code, index, size (all u32).
pub(crate) const FAULT_BYTES: u64 = 16;

/// The fault words of a device, zeroed (wgpu zeroes new buffers): bound by
/// index kernels, copied by readbacks, cleared after a fault.
pub(crate) fn fault_buffer(device: &wgpu::Device) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("lam index faults"),
        size: FAULT_BYTES,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// The fault the words read back describe, or `Ok` when none is recorded.
pub(crate) fn decode(words: &[u8]) -> Result<()> {
    let word = |i: usize| {
        words
            .get(4 * i..4 * i + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if word(0) == 0 {
        return Ok(());
    }
    Err(Error::OutOfRange {
        op: fault_op(word(1)),
        index: i64::from(word(2) as i32),
        size: word(3) as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: [u32; 4]) -> Vec<u8> {
        w.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn a_recorded_fault_decodes_as_out_of_range() {
        assert_eq!(decode(&words([0, 0, 0, 0])), Ok(()));
        let e = decode(&words([1, 1, 1000, 3])).unwrap_err();
        assert_eq!(
            e,
            Error::OutOfRange {
                op: fault_op(1),
                index: 1000,
                size: 3
            }
        );
        let msg = e.to_string();
        assert!(
            msg.contains("index_select") && msg.contains("device"),
            "{msg}"
        );
        // The index travels as i32 bits.
        let e = decode(&words([1, 4, (-2i32) as u32, 5])).unwrap_err();
        assert!(
            matches!(
                e,
                Error::OutOfRange {
                    index: -2,
                    size: 5,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("cross_entropy"), "{e}");
    }
}
