//! The zip container of `torch.save`: stored (uncompressed) records, read
//! without trusting a single number, and written as PyTorch writes them.
//!
//! Reading walks the central directory (found through the end-of-central-
//! directory record, and its zip64 form when present) and checks every
//! size, offset and count against the bytes actually there, with checked
//! arithmetic, before anything is sliced: a record claiming 2^60 bytes is a
//! message, not an allocation. Only what torch.save produces is accepted:
//! stored records (method 0), no encryption, one disk. Each record's CRC-32
//! is checked, except a CRC of 0, which is what PyTorch writes when CRC
//! computation is off (`torch.serialization.set_crc32_options(False)`).
//!
//! Writing follows PyTorch's writer (miniz): each record's data starts on a
//! 64-byte boundary (padding in an extra field with id `FB`, as PyTorch's
//! `mmap=True` loading expects), sizes and CRC follow the data in a data
//! descriptor, and a zip64 end record is always written. Records of 4 GiB
//! or more, or starting past 4 GiB, carry zip64 fields.

use std::collections::HashSet;

/// Where PyTorch aligns each record's data.
pub(crate) const ALIGNMENT: usize = 64;

/// One record of an archive: its name and its bytes within the file.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) name: String,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// Every record of the zip archive `bytes`, in central directory order, or
/// what is wrong with it.
pub(crate) fn read(bytes: &[u8]) -> Result<Vec<Record>, String> {
    let end = find_end(bytes)?;
    let mut records = Vec::new();
    let mut crcs = Vec::new();
    let mut names = HashSet::new();
    let mut at = end.cd_start;
    while at < end.cd_end {
        let (record, crc, next) = central_entry(bytes, &bytes[..end.cd_end], at, end.cd_start)?;
        if !names.insert(record.name.clone()) {
            return Err(format!("record `{}` appears twice", record.name));
        }
        records.push(record);
        crcs.push(crc);
        at = next;
    }
    if at != end.cd_end || records.len() as u64 != end.count {
        return Err(format!(
            "the central directory holds {} records in {} bytes, but the end record says {} in {}",
            records.len(),
            at - end.cd_start,
            end.count,
            end.cd_end - end.cd_start
        ));
    }
    // Records must not overlap, which also keeps the CRC work to one pass
    // over the file however many records point at the same bytes.
    let mut spans: Vec<(usize, usize, &str)> = records
        .iter()
        .map(|r| (r.start, r.end, r.name.as_str()))
        .collect();
    spans.sort_unstable();
    if let Some(w) = spans.windows(2).find(|w| w[1].0 < w[0].1) {
        return Err(format!("records `{}` and `{}` overlap", w[0].2, w[1].2));
    }
    for (r, crc) in records.iter().zip(crcs) {
        if crc != 0 && crc32fast::hash(&bytes[r.start..r.end]) != crc {
            return Err(format!(
                "record `{}` fails its CRC-32 check: the data is corrupt",
                r.name
            ));
        }
    }
    Ok(records)
}

/// Builds an archive record by record, as PyTorch lays one out.
pub(crate) struct Writer {
    out: Vec<u8>,
    central: Vec<u8>,
    count: u64,
    /// Sizes and offsets at or above this take zip64 fields (`u32::MAX`;
    /// lowered in tests to exercise them with small data).
    zip64_from: u64,
}

impl Writer {
    pub(crate) fn new() -> Writer {
        Writer::with_zip64_from(u32::MAX as u64)
    }

    fn with_zip64_from(zip64_from: u64) -> Writer {
        Writer {
            out: Vec::new(),
            central: Vec::new(),
            count: 0,
            zip64_from,
        }
    }

    /// Appends the record `name` holding `data`.
    pub(crate) fn add(&mut self, name: &str, data: &[u8]) {
        let offset = self.out.len() as u64;
        let size = data.len() as u64;
        let crc = crc32fast::hash(data);
        let big_size = size >= self.zip64_from;
        let big_offset = offset >= self.zip64_from;
        // The local header's zip64 field, as miniz writes it: the sizes
        // (zero here, as in the header: the data descriptor has them) and
        // the header's own offset, each only when too large for 32 bits.
        let mut local_zip64 = Vec::new();
        if big_size || big_offset {
            let mut body = Vec::new();
            if big_size {
                body.extend_from_slice(&[0; 16]);
            }
            if big_offset {
                body.extend_from_slice(&offset.to_le_bytes());
            }
            extra_field(&mut local_zip64, 0x0001, &body);
        }
        // Data starts at the next multiple of ALIGNMENT after the header,
        // the name, the zip64 field and the 4 bytes of the padding field.
        let unpadded = self.out.len() + 30 + name.len() + local_zip64.len() + 4;
        let padding = unpadded.next_multiple_of(ALIGNMENT) - unpadded;
        let mut extra = local_zip64;
        extra_field(&mut extra, u16::from_le_bytes(*b"FB"), &vec![b'Z'; padding]);

        let out = &mut self.out;
        put32(out, LOCAL_SIG);
        put16(out, 0); // version needed, as miniz writes it
        put16(out, FLAGS);
        put16(out, 0); // stored
        put32(out, 0); // time and date
        put32(out, 0); // CRC-32, compressed and uncompressed sizes: in the descriptor
        put32(out, 0);
        put32(out, 0);
        put16(out, name.len() as u16);
        put16(out, extra.len() as u16);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&extra);
        debug_assert_eq!(out.len() % ALIGNMENT, 0);
        out.extend_from_slice(data);
        put32(out, DESCRIPTOR_SIG);
        put32(out, crc);
        if big_size || big_offset {
            put64(out, size);
            put64(out, size);
        } else {
            put32(out, size as u32);
            put32(out, size as u32);
        }

        let mut central_zip64 = Vec::new();
        if big_size || big_offset {
            let mut body = Vec::new();
            if big_size {
                body.extend_from_slice(&size.to_le_bytes());
                body.extend_from_slice(&size.to_le_bytes());
            }
            if big_offset {
                body.extend_from_slice(&offset.to_le_bytes());
            }
            extra_field(&mut central_zip64, 0x0001, &body);
        }
        let c = &mut self.central;
        put32(c, CENTRAL_SIG);
        put16(c, 0); // version made by
        put16(c, 0); // version needed
        put16(c, FLAGS);
        put16(c, 0);
        put32(c, 0);
        put32(c, crc);
        let size32 = if big_size { u32::MAX } else { size as u32 };
        put32(c, size32);
        put32(c, size32);
        put16(c, name.len() as u16);
        put16(c, central_zip64.len() as u16);
        put16(c, 0); // comment
        put16(c, 0); // disk
        put16(c, 0); // internal attributes
        put32(c, 0); // external attributes
        put32(c, if big_offset { u32::MAX } else { offset as u32 });
        c.extend_from_slice(name.as_bytes());
        c.extend_from_slice(&central_zip64);
        self.count += 1;
    }

    /// The finished archive: the records, the central directory and the
    /// end records (zip64 and classic).
    pub(crate) fn finish(mut self) -> Vec<u8> {
        let cd_offset = self.out.len() as u64;
        let cd_size = self.central.len() as u64;
        self.out.append(&mut self.central);
        let zip64_end = self.out.len() as u64;
        let out = &mut self.out;
        put32(out, ZIP64_END_SIG);
        put64(out, 44); // the size of the rest of this record
        put16(out, 0x031e); // version made by, as miniz writes it
        put16(out, 45); // version needed: zip64
        put32(out, 0); // this disk
        put32(out, 0); // the central directory's disk
        put64(out, self.count);
        put64(out, self.count);
        put64(out, cd_size);
        put64(out, cd_offset);
        put32(out, ZIP64_LOCATOR_SIG);
        put32(out, 0);
        put64(out, zip64_end);
        put32(out, 1); // disks
        put32(out, END_SIG);
        put32(out, 0); // disk numbers
        let count16 = self.count.min(0xffff) as u16;
        put16(out, count16);
        put16(out, count16);
        put32(out, cd_size.min(u32::MAX as u64) as u32);
        put32(out, cd_offset.min(u32::MAX as u64) as u32);
        put16(out, 0); // comment
        self.out
    }
}

const LOCAL_SIG: u32 = 0x0403_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const DESCRIPTOR_SIG: u32 = 0x0807_4b50;
const END_SIG: u32 = 0x0605_4b50;
const ZIP64_END_SIG: u32 = 0x0606_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
/// A data descriptor follows the data (bit 3); names are UTF-8 (bit 11).
const FLAGS: u16 = 0x0808;
const END_LEN: usize = 22;
const LOCATOR_LEN: usize = 20;

/// The central directory's place and size, from the end records.
struct End {
    cd_start: usize,
    cd_end: usize,
    count: u64,
}

/// Finds the end-of-central-directory record (the last one whose comment
/// ends the file) and, through its locator, the zip64 end record.
fn find_end(bytes: &[u8]) -> Result<End, String> {
    let len = bytes.len();
    if len < END_LEN {
        return Err(format!("{len} bytes, too few for a zip archive"));
    }
    let lowest = len.saturating_sub(END_LEN + 0xffff);
    let at = (lowest..=len - END_LEN)
        .rev()
        .find(|&i| {
            get32(bytes, i) == Some(END_SIG)
                && get16(bytes, i + 20).map(|c| i + END_LEN + c as usize) == Some(len)
        })
        .ok_or("no end-of-central-directory record (truncated?)")?;
    let field16 = |o: usize| get16(bytes, at + o).unwrap_or(0);
    let field32 = |o: usize| get32(bytes, at + o).unwrap_or(0);
    if field16(4) != 0 || field16(6) != 0 || field16(8) != field16(10) {
        return Err("the archive spans several disks".into());
    }
    let mut count = field16(10) as u64;
    let mut cd_size = field32(12) as u64;
    let mut cd_offset = field32(16) as u64;
    let mut cd_limit = at; // the central directory ends before the end records
    if at >= LOCATOR_LEN && get32(bytes, at - LOCATOR_LEN) == Some(ZIP64_LOCATOR_SIG) {
        let locator = at - LOCATOR_LEN;
        let record = get64(bytes, locator + 8)
            .and_then(|o| usize::try_from(o).ok())
            .filter(|&o| o.checked_add(56).is_some_and(|e| e <= locator))
            .filter(|&o| get32(bytes, o) == Some(ZIP64_END_SIG))
            .ok_or("the zip64 end locator points at no zip64 end record")?;
        let disk = get32(bytes, record + 16).zip(get32(bytes, record + 20));
        let counts = get64(bytes, record + 24).zip(get64(bytes, record + 32));
        if disk != Some((0, 0)) || counts.is_none_or(|(a, b)| a != b) {
            return Err("the archive spans several disks".into());
        }
        count = get64(bytes, record + 32).unwrap_or(0);
        cd_size = get64(bytes, record + 40).unwrap_or(0);
        cd_offset = get64(bytes, record + 48).unwrap_or(0);
        cd_limit = record;
    }
    let span = usize::try_from(cd_offset)
        .ok()
        .zip(usize::try_from(cd_size).ok())
        .and_then(|(start, size)| Some((start, start.checked_add(size)?)))
        .filter(|&(_, end)| end <= cd_limit);
    let Some((cd_start, cd_end)) = span else {
        return Err(format!(
            "the central directory ({cd_size} bytes at {cd_offset}) lies outside the {cd_limit} bytes before the end records"
        ));
    };
    Ok(End {
        cd_start,
        cd_end,
        count,
    })
}

/// The central directory entry at `at` (within `cd`, the file up to the
/// central directory's end), its CRC-32, and where the next entry starts;
/// record data must lie before `data_limit` (the central directory's start).
fn central_entry(
    bytes: &[u8],
    cd: &[u8],
    at: usize,
    data_limit: usize,
) -> Result<(Record, u32, usize), String> {
    let short = || format!("central directory entry at byte {at} is truncated");
    if get32(cd, at) != Some(CENTRAL_SIG) {
        return Err(format!("no central directory entry at byte {at}"));
    }
    let f16 = |o: usize| get16(cd, at + o).ok_or_else(short);
    let f32_ = |o: usize| get32(cd, at + o).ok_or_else(short);
    let flags = f16(8)?;
    let method = f16(10)?;
    let crc = f32_(16)?;
    let mut compressed = f32_(20)? as u64;
    let mut size = f32_(24)? as u64;
    let (name_len, extra_len, comment_len) =
        (f16(28)? as usize, f16(30)? as usize, f16(32)? as usize);
    let disk = f16(34)?;
    let mut offset = f32_(42)? as u64;
    let name_start = at + 46;
    let extra_start = name_start + name_len;
    let next = extra_start + extra_len + comment_len;
    let name = cd.get(name_start..extra_start).ok_or_else(short)?;
    let extra = cd
        .get(extra_start..extra_start + extra_len)
        .ok_or_else(short)?;
    if next > cd.len() {
        return Err(short());
    }
    let name = std::str::from_utf8(name)
        .map_err(|_| format!("the name of the record at byte {at} is not UTF-8"))?
        .to_string();
    // The zip64 field holds, in this order, each 32-bit field that is saturated.
    if let Some(mut body) = find_extra(extra, 0x0001) {
        let mut take = |field: &mut u64| -> Result<(), String> {
            if *field == u32::MAX as u64 {
                let (v, rest) = body
                    .split_first_chunk::<8>()
                    .ok_or_else(|| format!("record `{name}`: its zip64 field is too short"))?;
                *field = u64::from_le_bytes(*v);
                body = rest;
            }
            Ok(())
        };
        take(&mut size)?;
        take(&mut compressed)?;
        take(&mut offset)?;
    }
    if flags & 1 != 0 {
        return Err(format!("record `{name}` is encrypted"));
    }
    if method != 0 {
        return Err(format!(
            "record `{name}` is compressed (method {method}); torch.save stores records \
             uncompressed, so the archive was repacked: re-save it with torch.save"
        ));
    }
    if disk != 0 {
        return Err("the archive spans several disks".into());
    }
    if compressed != size {
        return Err(format!(
            "record `{name}` is stored but its sizes differ ({compressed} and {size})"
        ));
    }
    let (start, end) = local_data(bytes, &name, offset, size, data_limit)?;
    Ok((Record { name, start, end }, crc, next))
}

/// The data span of the record whose local header is at `offset`.
fn local_data(
    bytes: &[u8],
    name: &str,
    offset: u64,
    size: u64,
    data_limit: usize,
) -> Result<(usize, usize), String> {
    let bad =
        || format!("record `{name}`: its local header at byte {offset} is missing or truncated");
    let at = usize::try_from(offset).map_err(|_| bad())?;
    if get32(bytes, at) != Some(LOCAL_SIG) {
        return Err(bad());
    }
    if at >= data_limit {
        return Err(bad());
    }
    let name_len = get16(bytes, at + 26).ok_or_else(bad)? as usize;
    let extra_len = get16(bytes, at + 28).ok_or_else(bad)? as usize;
    let local_name = bytes.get(at + 30..at + 30 + name_len).ok_or_else(bad)?;
    if local_name != name.as_bytes() {
        return Err(format!(
            "record `{name}`: its local header names `{}`",
            String::from_utf8_lossy(local_name)
        ));
    }
    let start = at + 30 + name_len + extra_len;
    let end = usize::try_from(size)
        .ok()
        .and_then(|s| start.checked_add(s))
        .filter(|&e| e <= data_limit)
        .ok_or_else(|| {
            format!("record `{name}`: {size} bytes at byte {start} run past the data section ({data_limit} bytes)")
        })?;
    Ok((start, end))
}

/// The body of the extra field with `id`, if present and well formed.
fn find_extra(mut extra: &[u8], id: u16) -> Option<&[u8]> {
    while extra.len() >= 4 {
        let field = u16::from_le_bytes([extra[0], extra[1]]);
        let len = u16::from_le_bytes([extra[2], extra[3]]) as usize;
        let body = extra.get(4..4 + len)?;
        if field == id {
            return Some(body);
        }
        extra = &extra[4 + len..];
    }
    None
}

fn extra_field(out: &mut Vec<u8>, id: u16, body: &[u8]) {
    put16(out, id);
    put16(out, body.len() as u16);
    out.extend_from_slice(body);
}

fn get16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(*b.get(at..)?.first_chunk::<2>()?))
}

fn get32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(*b.get(at..)?.first_chunk::<4>()?))
}

fn get64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(*b.get(at..)?.first_chunk::<8>()?))
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(zip64_from: u64) {
        let mut w = Writer::with_zip64_from(zip64_from);
        let records: [(&str, &[u8]); 3] = [
            ("archive/data.pkl", b"\x80\x02}."),
            ("archive/data/0", &[1, 2, 3, 4, 5, 6, 7, 8]),
            ("archive/empty", b""),
        ];
        for (name, data) in records {
            w.add(name, data);
        }
        let bytes = w.finish();
        let read = read(&bytes).expect("a valid archive");
        assert_eq!(read.len(), records.len());
        for (r, (name, data)) in read.iter().zip(records) {
            assert_eq!(r.name, name);
            assert_eq!(&bytes[r.start..r.end], data);
            assert_eq!(r.start % ALIGNMENT, 0, "{name} is not aligned");
        }
    }

    #[test]
    fn records_round_trip_aligned() {
        round_trip(u32::MAX as u64);
    }

    #[test]
    fn zip64_fields_round_trip() {
        // Every size and offset above 4 counts as large: each record takes
        // zip64 fields in its headers and descriptor.
        round_trip(4);
    }

    #[test]
    fn corrupt_records_are_errors() {
        let mut w = Writer::new();
        w.add("archive/data/0", &[9; 100]);
        let good = w.finish();
        let data_at = read(&good).expect("valid")[0].start;
        let mut flipped = good.clone();
        flipped[data_at + 5] ^= 1;
        assert!(read(&flipped).expect_err("corrupt").contains("CRC-32"));
        for cut in [0, 10, good.len() / 2, good.len() - 1] {
            assert!(read(&good[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn overlapping_records_are_errors() {
        // Record `a` grown in the central directory to cover `b` too: a
        // thousand such records would make a small file a long CRC job.
        let mut w = Writer::new();
        w.add("m/a", b"1");
        w.add("m/b", b"2");
        let mut bytes = w.finish();
        let records = read(&bytes).expect("valid");
        let cd = bytes
            .windows(4)
            .position(|x| x == b"PK\x01\x02")
            .expect("central");
        let grown = (records[1].end - records[0].start) as u32;
        bytes[cd + 20..cd + 24].copy_from_slice(&grown.to_le_bytes());
        bytes[cd + 24..cd + 28].copy_from_slice(&grown.to_le_bytes());
        let e = read(&bytes).expect_err("overlap");
        assert!(e.contains("overlap"), "{e}");
    }
}
