//! Writing `.pth` files as `torch.save(state_dict, path)` does.
//!
//! The pickle is the one PyTorch's pickler emits for a state dict, less
//! its memo (which only shortens repeats): an `OrderedDict` whose values
//! are `torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False,
//! OrderedDict())`, each storage a persistent id `('storage',
//! torch.FloatStorage | torch.LongStorage, key, 'cpu', numel)` whose bytes
//! are the record `data/<key>`. Records sit under `archive/` (PyTorch's
//! folder name when it saves to a buffer), in PyTorch's order, aligned and
//! laid out by `zip::Writer` as PyTorch's writer lays them out.

use safetensors::Dtype;

use super::element::Element;
use super::zip;
use crate::checkpoint::file::Raw;

/// The bytes of a `.pth` file holding `tensors` (little-endian `F32`, `F16`
/// or `I64`, as `Raw` has them) and `strings`, in one dict in the order given,
/// or a message naming a tensor of another dtype.
pub(crate) fn encode(
    tensors: &[(&str, &Raw)],
    strings: &[(&str, &str)],
) -> Result<Vec<u8>, String> {
    let mut p = vec![0x80, 2]; // PROTO 2
    global(&mut p, "collections", "OrderedDict");
    p.extend_from_slice(b")R("); // OrderedDict(), then MARK for its items
    for (key, (name, raw)) in tensors.iter().enumerate() {
        let element = match raw.dtype {
            Dtype::F32 => Element::F32,
            Dtype::F16 => Element::F16,
            Dtype::I64 => Element::I64,
            other => return Err(format!("tensor `{name}` has dtype {other:?}")),
        };
        let numel: usize = raw.shape.iter().product();
        string(&mut p, name);
        global(&mut p, "torch._utils", "_rebuild_tensor_v2");
        p.extend_from_slice(b"(("); // the arguments, then the persistent id
        string(&mut p, "storage");
        global(&mut p, "torch", element.storage_class());
        string(&mut p, &key.to_string());
        string(&mut p, "cpu");
        int(&mut p, numel as u64);
        p.extend_from_slice(b"tQ"); // TUPLE, BINPERSID
        int(&mut p, 0); // storage offset
        tuple(&mut p, &raw.shape);
        tuple(&mut p, &crate::layout::contiguous_strides(&raw.shape));
        p.push(0x89); // requires_grad = False
        global(&mut p, "collections", "OrderedDict");
        p.extend_from_slice(b")RtR"); // backward hooks = OrderedDict(); TUPLE; REDUCE
    }
    for (key, value) in strings {
        string(&mut p, key);
        string(&mut p, value);
    }
    p.extend_from_slice(b"u."); // SETITEMS, STOP

    let mut zip = zip::Writer::new();
    zip.add("archive/data.pkl", &p);
    zip.add("archive/.format_version", b"1");
    zip.add(
        "archive/.storage_alignment",
        zip::ALIGNMENT.to_string().as_bytes(),
    );
    zip.add("archive/byteorder", b"little");
    for (key, (_, raw)) in tensors.iter().enumerate() {
        zip.add(&format!("archive/data/{key}"), &raw.bytes);
    }
    zip.add("archive/version", b"3\n");
    Ok(zip.finish())
}

fn global(p: &mut Vec<u8>, module: &str, name: &str) {
    p.push(b'c');
    p.extend_from_slice(module.as_bytes());
    p.push(b'\n');
    p.extend_from_slice(name.as_bytes());
    p.push(b'\n');
}

/// BINUNICODE.
fn string(p: &mut Vec<u8>, s: &str) {
    p.push(b'X');
    p.extend_from_slice(&(s.len() as u32).to_le_bytes());
    p.extend_from_slice(s.as_bytes());
}

/// The shortest of BININT1, BININT2, BININT and LONG1, as Python's pickler chooses.
fn int(p: &mut Vec<u8>, v: u64) {
    if v <= 0xff {
        p.extend_from_slice(&[b'K', v as u8]);
    } else if v <= 0xffff {
        p.push(b'M');
        p.extend_from_slice(&(v as u16).to_le_bytes());
    } else if v <= i32::MAX as u64 {
        p.push(b'J');
        p.extend_from_slice(&(v as u32).to_le_bytes());
    } else {
        // Two's complement, little-endian, with a clear top bit.
        let mut bytes = v.to_le_bytes().to_vec();
        while bytes.len() > 1 && bytes[bytes.len() - 1] == 0 && bytes[bytes.len() - 2] & 0x80 == 0 {
            bytes.pop();
        }
        if bytes[bytes.len() - 1] & 0x80 != 0 {
            bytes.push(0);
        }
        p.extend_from_slice(&[0x8a, bytes.len() as u8]);
        p.extend_from_slice(&bytes);
    }
}

/// A tuple of integers: EMPTY_TUPLE, TUPLE1..3, or MARK ... TUPLE.
fn tuple(p: &mut Vec<u8>, items: &[usize]) {
    if items.len() > 3 {
        p.push(b'(');
    }
    for &d in items {
        int(p, d as u64);
    }
    p.push(match items.len() {
        0 => b')',
        1 => 0x85,
        2 => 0x86,
        3 => 0x87,
        _ => b't',
    });
}
