//! File readers: CSV (plain and gzipped), IDX, and the shipped digits and
//! sunspots data; malformed files are errors naming the file and line.

mod common;

use common::Scratch;
use lam::prelude::*;
use lam_train::data::csv::{read_csv, read_table, CsvOptions};
use lam_train::data::idx::{encode_idx_u8, parse_idx, read_idx, read_idx_dataset};
use lam_train::data::Dataset;

fn format_msg(e: Error) -> (String, String) {
    match e {
        Error::Format { path, msg } => (path, msg),
        other => panic!("expected a format error, got {other:?}"),
    }
}

#[test]
fn csv_with_header_quotes_and_named_target() -> Result<()> {
    let dir = Scratch::new("csv");
    let path = dir.path("t.csv");
    std::fs::write(
        &path,
        "\"a\",\"b\",\"label\"\r\n1,2.5,0\r\n\r\n-3,4e1,2\r\n",
    )
    .expect("write");
    let ds = read_csv(&path, &CsvOptions::new().header(true).target_name("label"))?;
    assert_eq!(ds.features().as_f32()?, &[1.0, 2.5, -3.0, 40.0]);
    assert_eq!(ds.labels(), Some(&[0, 2][..]));
    let reg = read_csv(
        &path,
        &CsvOptions::new()
            .header(true)
            .target_index(0)
            .regression(true),
    )?;
    assert_eq!(reg.features().as_f32()?, &[2.5, 0.0, 40.0, 2.0]);
    let t = read_table(&path, true, ',')?;
    assert_eq!(
        t.header(),
        Some(&["a".to_string(), "b".into(), "label".into()][..])
    );
    assert_eq!(t.lines(), &[2, 4]);
    assert_eq!((t.len(), t.width()), (2, 3));
    assert_eq!(t.row(1), Some(&[-3.0, 40.0, 2.0][..]));
    assert_eq!(t.row(2), None);
    assert_eq!(t.values().len(), 6);
    Ok(())
}

#[test]
fn sunspots_reads_as_a_table() -> Result<()> {
    let t = read_table(
        common::repo_root().join("examples/data/sunspots.csv"),
        true,
        ',',
    )?;
    assert_eq!(t.len(), 309);
    assert_eq!(t.rows().count(), 309);
    assert_eq!(t.column(0)[0], 1700.0);
    assert_eq!(t.header().map(|h| h[1].as_str()), Some("SUNACTIVITY"));
    Ok(())
}

#[test]
fn malformed_csv_is_an_error_naming_file_and_line() {
    let dir = Scratch::new("badcsv");
    let cases = [
        (
            "short_row.csv",
            "1,2,0\n3,4\n",
            "line 2: expected 3 fields, found 2",
        ),
        (
            "not_a_number.csv",
            "1,2,0\n\n3,x,1\n",
            "line 3: column 2: \"x\" is not a number",
        ),
        (
            "nan.csv",
            "1,NaN,0\n",
            "line 1: column 2: missing value \"NaN\"",
        ),
        (
            "fraction_label.csv",
            "1,2,0\n3,4,1.5\n",
            "line 2: column 3: class label 1.5 is not an integer",
        ),
        (
            "quote.csv",
            "1,\"2,0\n",
            "line 1: unterminated quoted field",
        ),
        ("empty.csv", "\n\n", "no data rows"),
    ];
    for (name, text, want) in cases {
        let path = dir.path(name);
        std::fs::write(&path, text).expect("write");
        let (p, msg) = format_msg(read_csv(&path, &CsvOptions::new()).expect_err(name));
        assert!(p.ends_with(name), "{p}");
        assert!(msg.contains(want), "{name}: {msg}");
    }
    let path = dir.path("bin.csv");
    std::fs::write(&path, [0xff, 0xfe, b'1']).expect("write");
    assert!(
        format_msg(read_csv(&path, &CsvOptions::new()).expect_err("utf8"))
            .1
            .contains("UTF-8")
    );
    let gz = dir.path("fake.csv.gz");
    std::fs::write(&gz, "1,2,3\n").expect("write");
    assert!(
        format_msg(read_csv(&gz, &CsvOptions::new()).expect_err("gz"))
            .1
            .contains("gzip")
    );
    let header_only = dir.path("h.csv");
    std::fs::write(&header_only, "a,b\n1,2\n").expect("write");
    let e = read_csv(
        &header_only,
        &CsvOptions::new().header(true).target_name("zzz"),
    )
    .expect_err("name");
    assert!(format_msg(e).1.contains("zzz"));
    assert!(matches!(
        read_csv(dir.path("missing.csv"), &CsvOptions::new()),
        Err(Error::Io { .. })
    ));
}

#[test]
fn digits_loads_and_rejects_wrong_shapes() -> Result<()> {
    let ds = lam_train::datasets::digits(lam_train::datasets::digits_path())?;
    assert_eq!(ds.len(), 1797);
    assert_eq!(ds.sample_shape(), vec![64]);
    let labels = ds.labels().expect("classes");
    let counts: Vec<usize> = (0..10)
        .map(|c| labels.iter().filter(|&&l| l == c).count())
        .collect();
    assert_eq!(
        counts,
        vec![178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    );
    assert_eq!(
        &ds.features().as_f32()?[..8],
        &[0.0, 0.0, 5.0, 13.0, 9.0, 1.0, 0.0, 0.0]
    );

    let dir = Scratch::new("digits");
    let path = dir.path("d.csv");
    std::fs::write(&path, "1,2,3\n").expect("write");
    assert!(
        format_msg(lam_train::datasets::digits(&path).expect_err("cols"))
            .1
            .contains("65 columns")
    );
    Ok(())
}

#[test]
fn idx_round_trip_and_dataset() -> Result<()> {
    let dir = Scratch::new("idx");
    let pixels: Vec<u8> = (0..24).collect();
    std::fs::write(dir.path("x.idx"), encode_idx_u8(&[2, 3, 4], &pixels)?).expect("write");
    std::fs::write(dir.path("y.idx"), encode_idx_u8(&[2], &[7, 1])?).expect("write");
    let a = read_idx(dir.path("x.idx"))?;
    assert_eq!(a.shape, vec![2, 3, 4]);
    assert_eq!(a.data[23], 23.0);
    let ds = read_idx_dataset(dir.path("x.idx"), dir.path("y.idx"))?;
    assert_eq!(ds.sample_shape(), vec![3, 4]);
    assert_eq!(ds.labels(), Some(&[7, 1][..]));
    // Big-endian wider types.
    let mut i16s = vec![0, 0, 0x0B, 1, 0, 0, 0, 2];
    i16s.extend_from_slice(&(-300i16).to_be_bytes());
    i16s.extend_from_slice(&(5i16).to_be_bytes());
    assert_eq!(parse_idx(&i16s, "mem")?.data, vec![-300.0, 5.0]);
    Ok(())
}

#[test]
fn malformed_idx_is_an_error_naming_the_file() {
    let good = encode_idx_u8(&[2, 2], &[1, 2, 3, 4]).expect("encode");
    let mut bad_magic = good.clone();
    bad_magic[0] = 8;
    let mut bad_type = good.clone();
    bad_type[2] = 0x42;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("tiny", vec![0, 0], "truncated IDX header"),
        ("magic", bad_magic, "bad IDX magic"),
        ("type", bad_type, "unknown IDX element type 0x42"),
        ("dims", good[..9].to_vec(), "truncated IDX header"),
        (
            "data",
            good[..good.len() - 1].to_vec(),
            "truncated IDX data",
        ),
        ("extra", [&good[..], &[9]].concat(), "unexpected bytes"),
        ("nodims", vec![0, 0, 8, 0], "0 dimensions"),
    ];
    let dir = Scratch::new("badidx");
    for (name, bytes, want) in cases {
        let path = dir.path(name);
        std::fs::write(&path, bytes).expect("write");
        let (p, msg) = format_msg(read_idx(&path).expect_err(name));
        assert!(p.ends_with(name), "{p}");
        assert!(msg.contains(want), "{name}: {msg}");
    }
    std::fs::write(
        dir.path("x"),
        encode_idx_u8(&[3, 1], &[1, 2, 3]).expect("encode"),
    )
    .expect("write");
    std::fs::write(dir.path("y"), encode_idx_u8(&[2], &[1, 2]).expect("encode")).expect("write");
    let (_, msg) = format_msg(read_idx_dataset(dir.path("x"), dir.path("y")).expect_err("count"));
    assert!(msg.contains("2 labels for 3 images"), "{msg}");
}

/// Sizes and labels at the edge of what fits: errors, not panics or
/// silently saturated values (cases the loader fuzz test found or guards).
#[test]
fn sizes_and_labels_at_the_limits_are_errors() {
    let dir = Scratch::new("limits");
    // A class label of 2^31 does not fit in i32 (a cast would give i32::MAX).
    let path = dir.path("big_label.csv");
    std::fs::write(&path, "1,2,0\n3,4,2147483648\n").expect("write");
    let (_, msg) = format_msg(read_csv(&path, &CsvOptions::new()).expect_err("label"));
    assert!(
        msg.contains("line 2: column 3") && msg.contains("int32"),
        "{msg}"
    );
    std::fs::write(&path, "1,2,-2147483648\n").expect("write");
    let ds = read_csv(&path, &CsvOptions::new()).expect("i32::MIN is a label");
    assert_eq!(ds.labels(), Some(&[i32::MIN][..]));
    // IDX labels stored as f32 beyond i32.
    let mut labels = vec![0, 0, 0x0D, 1, 0, 0, 0, 1];
    labels.extend_from_slice(&1e10f32.to_be_bytes());
    let images = encode_idx_u8(&[1, 1], &[7]).expect("encode");
    std::fs::write(dir.path("l"), labels).expect("write");
    std::fs::write(dir.path("i"), images).expect("write");
    let (_, msg) = format_msg(read_idx_dataset(dir.path("i"), dir.path("l")).expect_err("label"));
    assert!(msg.contains("label 0 is 10000000000"), "{msg}");
    // No images, but dims whose product overflows: the sample shape is refused.
    let mut images = vec![0, 0, 0x08, 4, 0, 0, 0, 0];
    for _ in 0..3 {
        images.extend_from_slice(&u32::MAX.to_be_bytes());
    }
    std::fs::write(dir.path("i"), images).expect("write");
    std::fs::write(dir.path("l"), encode_idx_u8(&[0], &[]).expect("encode")).expect("write");
    let e = read_idx_dataset(dir.path("i"), dir.path("l")).expect_err("shape");
    assert!(e.to_string().contains("fits in memory"), "{e}");
    assert!(encode_idx_u8(&[1 << 40, 1 << 40], &[]).is_err());
    // A scaler file whose shape overflows.
    let path = dir.path("scaler.json");
    std::fs::write(
        &path,
        r#"{"kind": "standard", "shape": [4294967296, 4294967296], "mean": [0], "std": [1]}"#,
    )
    .expect("write");
    let e = lam_train::preprocess::load_scaler(&path)
        .err()
        .expect("shape");
    assert!(e.to_string().contains("too large"), "{e}");
}
