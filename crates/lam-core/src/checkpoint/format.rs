//! What a checkpoint file is, from its first bytes, whatever its name:
//! safetensors, or a `torch.save` file (zip or legacy). Any other file is
//! an error that says what it looks like and how to convert it, instead of
//! a safetensors parser's complaint about a header length.

use std::io::Read;
use std::path::Path;

use crate::{Error, Result};

use super::pth::{self, Kind};

/// A format lam reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Safetensors,
    Pth(Kind),
}

/// Which format the file at `path` has, from its first bytes.
pub(crate) fn detect(path: &Path) -> Result<Format> {
    let shown = path.display().to_string();
    let io = |e: std::io::Error| Error::Io {
        path: shown.clone(),
        msg: e.to_string(),
    };
    let mut head = Vec::with_capacity(HEAD);
    std::fs::File::open(path)
        .map_err(io)?
        .take(HEAD as u64)
        .read_to_end(&mut head)
        .map_err(io)?;
    sniff(&head).map_err(|msg| Error::Format { path: shown, msg })
}

/// Enough for every signature below (a tar header's `ustar` is at 257).
const HEAD: usize = 512;

const CONVERT: &str = "lam reads safetensors files and PyTorch state dicts saved with torch.save";

/// The format `head` (a file's first bytes) starts, or what the file is and
/// how to convert it.
fn sniff(head: &[u8]) -> std::result::Result<Format, String> {
    if head.is_empty() {
        return Err("the file is empty".into());
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Ok(Format::Pth(Kind::Zip));
    }
    if pth::is_legacy(head) {
        return Ok(Format::Pth(Kind::Legacy));
    }
    if head.get(257..262) == Some(b"ustar") {
        return Err(format!(
            "a tar archive: the layout torch.save wrote before PyTorch 1.0, which \
             torch.load(weights_only=True) refuses too. If you trust the file, in Python \
             torch.save(torch.load(path, weights_only=False), \"model.pth\") re-saves it \
             in the current layout; {CONVERT}"
        ));
    }
    if head.first() == Some(&0x80) {
        return Err(format!(
            "a Python pickle, but not one torch.save wrote (no torch.save magic number): {CONVERT}"
        ));
    }
    if head.starts_with(b"\x89HDF\r\n\x1a\n") {
        return Err(format!(
            "an HDF5 file (Keras .h5 weights?): {CONVERT}; save the weights as safetensors \
             (safetensors.numpy.save_file) to load them here"
        ));
    }
    if head.starts_with(b"GGUF") {
        return Err(format!("a GGUF file (llama.cpp): {CONVERT}"));
    }
    if head.starts_with(b"\x93NUMPY") {
        return Err(format!(
            "a NumPy .npy array: {CONVERT}; in Python, \
             safetensors.numpy.save_file({{\"name\": numpy.load(path)}}, \"x.safetensors\") converts it"
        ));
    }
    // A safetensors file's JSON header follows its 8-byte length. A file
    // too short to tell goes to the safetensors parser, which says how short.
    let json = head
        .get(8..)
        .map(|rest| rest.iter().find(|b| !b.is_ascii_whitespace()));
    match json {
        Some(Some(b'{')) | None | Some(None) => Ok(Format::Safetensors),
        Some(Some(_)) => Err(format!(
            "neither a safetensors file nor a torch.save file (it starts with {}): {CONVERT}; \
             in Python, safetensors.torch.save_file(state_dict, \"model.safetensors\") or \
             torch.save(state_dict, \"model.pth\") writes one",
            head.iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_told_apart_by_their_first_bytes() {
        let mut st = 20u64.to_le_bytes().to_vec();
        st.extend_from_slice(b"{\"a\":1}");
        assert_eq!(sniff(&st), Ok(Format::Safetensors));
        assert_eq!(sniff(b"PK\x03\x04rest"), Ok(Format::Pth(Kind::Zip)));
        assert_eq!(sniff(b"abc"), Ok(Format::Safetensors), "too short to tell");
        assert!(sniff(b"").expect_err("empty").contains("empty"));
        let mut legacy = vec![0x80, 2, 0x8a, 10];
        legacy.extend_from_slice(&[0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);
        assert_eq!(sniff(&legacy), Ok(Format::Pth(Kind::Legacy)));
        let other = |head: &[u8]| sniff(head).expect_err("not a checkpoint");
        assert!(other(b"\x80\x04\x95....").contains("pickle"));
        assert!(other(b"\x89HDF\r\n\x1a\n...").contains("HDF5"));
        assert!(other(b"\x7fELF\x02\x01\x01\x00\x00").contains("7f 45 4c 46"));
        let mut tar = vec![0u8; 300];
        tar[257..262].copy_from_slice(b"ustar");
        assert!(other(&tar).contains("tar archive"));
    }
}
