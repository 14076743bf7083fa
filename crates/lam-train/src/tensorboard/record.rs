//! TFRecord framing, the container of TensorBoard event files: each record
//! is
//!
//! ```text
//! u64 length (little-endian) | u32 masked CRC-32C of those 8 bytes
//! length bytes of data       | u32 masked CRC-32C of the data
//! ```
//!
//! The CRC is CRC-32C (Castagnoli), rotated right by 15 bits and offset by
//! `0xa282ead8` ("masked", so that a CRC stored inside checked data does
//! not check itself).

use lam_core::{Error, Result};

/// TensorFlow's mask of a CRC-32C.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// `data` framed as one record.
pub fn frame(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

/// Every record of a file's bytes, each CRC checked; `path` names the file
/// in errors, which say which record is short or corrupt.
pub fn unframe<'a>(bytes: &'a [u8], path: &str) -> Result<Vec<&'a [u8]>> {
    let bad = |msg: String| Error::Format {
        path: path.to_string(),
        msg,
    };
    let mut records = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let n = records.len();
        let header = bytes
            .get(at..at + 12)
            .ok_or_else(|| bad(format!("record {n} at byte {at}: truncated length header")))?;
        let (len_bytes, len_crc) = header.split_at(8);
        if masked_crc32c(len_bytes).to_le_bytes() != len_crc {
            return Err(bad(format!(
                "record {n} at byte {at}: the length's CRC does not match"
            )));
        }
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap_or_default());
        let start = at + 12;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(l))
            .filter(|&e| e.checked_add(4).is_some_and(|e4| e4 <= bytes.len()))
            .ok_or_else(|| {
                bad(format!(
                    "record {n} at byte {at} claims {len} bytes, past the end of the file"
                ))
            })?;
        let data = &bytes[start..end];
        if masked_crc32c(data).to_le_bytes() != bytes[end..end + 4] {
            return Err(bad(format!(
                "record {n} at byte {at}: the data's CRC does not match"
            )));
        }
        records.push(data);
        at = end + 4;
    }
    Ok(records)
}
