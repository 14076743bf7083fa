//! CSV fidelity: a byte-order mark, lines of any length, class labels read
//! as exact integers, and missing values — an error by default, NaN on
//! request, then filled from the training split by an `Imputer`.

mod common;

use std::io::Write as _;

use common::Scratch;
use lam::prelude::*;
use lam_train::data::csv::{read_csv, read_table, CsvOptions, Missing};
use lam_train::data::{Dataset, HostTargets};
use lam_train::preprocess::{Impute, Imputer};

fn format_msg(e: Error) -> String {
    match e {
        Error::Format { msg, .. } => msg,
        other => panic!("expected a format error, got {other:?}"),
    }
}

fn gzip(text: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(text).expect("gzip");
    e.finish().expect("gzip")
}

#[test]
fn a_byte_order_mark_is_skipped() -> Result<()> {
    let dir = Scratch::new("csv-bom");
    let text = "\u{feff}a,b,label\r\n1,2,0\r\n3,4,1\r\n";
    let plain = dir.path("bom.csv");
    std::fs::write(&plain, text).expect("write");
    let gz = dir.path("bom.csv.gz");
    std::fs::write(&gz, gzip(text.as_bytes())).expect("write");
    for path in [&plain, &gz] {
        let ds = read_csv(path, &CsvOptions::new().header(true).target_name("a"))?;
        assert_eq!(ds.features().as_f32()?, &[2.0, 0.0, 4.0, 1.0]);
        assert_eq!(ds.labels(), Some(&[1, 3][..]));
        let t = read_table(path, true, ',')?;
        assert_eq!(t.header().map(|h| h[0].as_str()), Some("a"));
    }
    // Without a header, the first number is a number.
    let no_header = dir.path("bom_data.csv");
    std::fs::write(&no_header, "\u{feff}5,6,1\n").expect("write");
    assert_eq!(
        read_csv(&no_header, &CsvOptions::new())?
            .features()
            .as_f32()?,
        &[5.0, 6.0]
    );
    // Only at the start of the file: elsewhere it is text.
    let inside = dir.path("bom_inside.csv");
    std::fs::write(&inside, "1,2,0\n\u{feff}3,4,1\n").expect("write");
    let msg = format_msg(read_csv(&inside, &CsvOptions::new()).expect_err("mid-file BOM"));
    assert!(msg.contains("line 2: column 1"), "{msg}");
    // A mark and nothing else: no rows.
    let alone = dir.path("bom_alone.csv");
    std::fs::write(&alone, "\u{feff}").expect("write");
    assert!(
        format_msg(read_csv(&alone, &CsvOptions::new()).expect_err("empty"))
            .contains("no data rows")
    );
    Ok(())
}

#[test]
fn lines_of_any_length_read_in_full() -> Result<()> {
    let dir = Scratch::new("csv-long");
    // One line of 300,000 fields (every value exact in f32), then its class.
    let n = 300_000;
    let value = |i: usize| (i % 1000) as f32 / 8.0 - 60.0;
    let mut text: String = (0..n).map(|i| format!("{},", value(i))).collect();
    text.push_str("7\n");
    let path = dir.path("line.csv");
    std::fs::write(&path, &text).expect("write");
    let ds = read_csv(&path, &CsvOptions::new())?;
    assert_eq!(ds.sample_shape(), vec![n]);
    assert!(ds
        .features()
        .as_f32()?
        .iter()
        .enumerate()
        .all(|(i, &v)| v == value(i)));
    assert_eq!(ds.labels(), Some(&[7][..]));
    // Three long rows; the target at the front.
    let rows: String = (0..3)
        .map(|r| {
            let fields: Vec<String> = (0..50_000).map(|i| value(i + r).to_string()).collect();
            format!("{r},{}\n", fields.join(","))
        })
        .collect();
    std::fs::write(&path, rows).expect("write");
    let ds = read_csv(&path, &CsvOptions::new().target_index(0))?;
    assert_eq!((ds.len(), ds.sample_shape()), (3, vec![50_000]));
    assert_eq!(ds.features().as_f32()?[2 * 50_000 + 9], value(11));
    // A 1 MiB quoted header name, with a delimiter and doubled quotes in it.
    let name = format!("x,\"{}\"", "y".repeat(1 << 20));
    let quoted = format!("\"{}\",b\n1,2\n", name.replace('"', "\"\""));
    std::fs::write(&path, quoted).expect("write");
    let t = read_table(&path, true, ',')?;
    assert_eq!(t.header().map(|h| h[0].as_str()), Some(name.as_str()));
    assert_eq!(t.values(), &[1.0, 2.0]);
    Ok(())
}

#[test]
fn class_labels_are_read_as_integers_and_must_fit_in_int32() -> Result<()> {
    let dir = Scratch::new("csv-labels");
    let path = dir.path("labels.csv");
    // 2^24 + 1 and 2^24 + 3 have no f32; i32's ends are labels too.
    std::fs::write(
        &path,
        "0.5,16777217\n0.5,16777219\n0.5,2147483647\n0.5,-2147483648\n0.5,3.0\n0.5,1e2\n0.5, +7 \n",
    )
    .expect("write");
    let ds = read_csv(&path, &CsvOptions::new())?;
    assert_eq!(
        ds.labels(),
        Some(&[16_777_217, 16_777_219, i32::MAX, i32::MIN, 3, 100, 7][..])
    );
    let cases = [
        ("2147483648", "class label 2147483648 does not fit in int32"),
        (
            "-2147483649",
            "class label -2147483649 does not fit in int32",
        ),
        ("1e10", "class label 1e10 does not fit in int32"),
        ("99999999999999999999", "does not fit in int32"),
        ("1.5", "class label 1.5 is not an integer"),
        ("16777217.5", "class label 16777217.5 is not an integer"),
        ("seven", "class label \"seven\" is not a number"),
        ("", "missing class label \"\""),
        ("NA", "missing class label \"NA\""),
        ("nan", "missing class label \"nan\""),
    ];
    for (label, want) in cases {
        std::fs::write(&path, format!("1,2,0\n3,4,{label}\n")).expect("write");
        let msg = format_msg(read_csv(&path, &CsvOptions::new()).expect_err(label));
        assert!(
            msg.contains("line 2: column 3") && msg.contains(want),
            "{label}: {msg}"
        );
    }
    // Regression targets are numbers, and never missing.
    std::fs::write(&path, "1,16777217\n2,NA\n").expect("write");
    let msg = format_msg(
        read_csv(
            &path,
            &CsvOptions::new().regression(true).missing(Missing::Nan),
        )
        .expect_err("missing target"),
    );
    assert!(
        msg.contains("line 2: column 2: missing target value"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn missing_values_are_errors_by_default_naming_line_and_column() {
    let dir = Scratch::new("csv-missing");
    let path = dir.path("m.csv");
    for field in [
        "", " ", "NA", "NaN", "nan", "NAN", "null", "n/a", "#N/A", "None", "\"\"",
    ] {
        std::fs::write(&path, format!("1,2,0\n3,{field},1\n")).expect("write");
        let msg = format_msg(read_csv(&path, &CsvOptions::new()).expect_err(field));
        assert!(
            msg.contains("line 2: column 2: missing value") && msg.contains("Missing::Nan"),
            "{field:?}: {msg}"
        );
        let msg = format_msg(read_table(&path, false, ',').expect_err(field));
        assert!(
            msg.contains("line 2: column 2: missing value"),
            "{field:?}: {msg}"
        );
    }
    // Infinities and overflow are not missing values: errors under every policy.
    for (field, want) in [
        ("inf", "inf is not a finite number"),
        ("-Infinity", "is not a finite number"),
        ("1e39", "1e39 is beyond the float32 range"),
    ] {
        std::fs::write(&path, format!("1,{field},0\n")).expect("write");
        for missing in [Missing::Error, Missing::Nan] {
            let msg =
                format_msg(read_csv(&path, &CsvOptions::new().missing(missing)).expect_err(field));
            assert!(msg.contains(want), "{field}: {msg}");
        }
    }
}

/// Nine rows of two features and a class; NaN (as `Missing::Nan` reads
/// them) in both columns, in the training rows (0..6) and the test rows.
const DATA: &str = "\
1,,0
2,10,1
NA,20,0
4,30,1
10,NaN,0
,40,1
100,,0
null,1000,1
7,8,0
";

#[test]
fn missing_values_read_as_nan_and_are_filled_from_the_training_split() -> Result<()> {
    let dir = Scratch::new("csv-impute");
    let path = dir.path("data.csv");
    std::fs::write(&path, DATA).expect("write");
    let data = read_csv(&path, &CsvOptions::new().missing(Missing::Nan))?;
    let values = data.features().as_f32()?;
    let nan_at: Vec<usize> = (0..values.len()).filter(|&i| values[i].is_nan()).collect();
    assert_eq!(nan_at, vec![1, 4, 9, 10, 13, 14]);
    assert_eq!(
        data.targets(),
        &HostTargets::Classes(vec![0, 1, 0, 1, 0, 1, 0, 1, 0])
    );
    let train_idx: Vec<usize> = (0..6).collect();
    let test_idx: Vec<usize> = (6..9).collect();
    // Training values: column 0 {1, 2, 4, 10}, column 1 {10, 20, 30, 40}.
    let cases = [
        (Impute::Mean, [4.25, 25.0]),
        (Impute::Median, [3.0, 25.0]),
        (Impute::Constant(-1.0), [-1.0, -1.0]),
    ];
    for (strategy, fill) in cases {
        let (mut train, mut test) = (data.select(&train_idx)?, data.select(&test_idx)?);
        let mut imputer = Imputer::new(strategy);
        imputer.fit_slice(train.features().as_f32()?, &train.sample_shape())?;
        assert_eq!(imputer.fill_values(), Some(&fill[..]), "{strategy:?}");
        imputer.transform_slice(train.features_mut().as_f32_mut()?)?;
        imputer.transform_slice(test.features_mut().as_f32_mut()?)?;
        assert_eq!(
            train.features().as_f32()?,
            &[1.0, fill[1], 2.0, 10.0, fill[0], 20.0, 4.0, 30.0, 10.0, fill[1], fill[0], 40.0],
            "{strategy:?}"
        );
        // The test rows get the training statistics, not their own.
        assert_eq!(
            test.features().as_f32()?,
            &[100.0, fill[1], fill[0], 1000.0, 7.0, 8.0],
            "{strategy:?}"
        );
        // The same on a tensor, on its device.
        let x = data.select(&test_idx)?.features_tensor(&Device::cpu())?;
        assert_eq!(imputer.transform(&x)?.to_vec()?, test.features().as_f32()?);
        // Saved and loaded, the same fill values.
        let file = dir.path("imputer.json");
        imputer.save(&file)?;
        assert_eq!(Imputer::load(&file)?, imputer);
    }
    // Fitted on every row instead, the statistics would differ: the split matters.
    let mut leaky = Imputer::new(Impute::Median);
    leaky.fit_slice(data.features().as_f32()?, &[2])?;
    assert_ne!(leaky.fill_values(), Some(&[3.0f32, 25.0][..]));
    Ok(())
}

#[test]
fn quotes_line_ends_and_delimiters_follow_the_documented_rules() -> Result<()> {
    let dir = Scratch::new("csv-rules");
    let path = dir.path("r.csv");
    let table = |text: &str, delimiter: char| {
        std::fs::write(&path, text).expect("write");
        read_table(&path, true, delimiter)
    };
    // Quoted names with delimiters, doubled quotes, text after the closing
    // quote, leading spaces before a quote; CRLF; a last line without newline.
    let t = table(
        " \"a,b\" ,\"say \"\"hi\"\"\"x,c\r\n1,\"2\",3\r\n  \r\n4,5,6",
        ',',
    )?;
    assert_eq!(
        t.header(),
        Some(&["a,b ".to_string(), "say \"hi\"x".into(), "c".into()][..])
    );
    assert_eq!(
        (t.values(), t.lines()),
        (&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0][..], &[2, 4][..])
    );
    // A quote inside a field is a character; a `\r` inside quotes is kept.
    let t = table("a\"b,\"c\r\"\n1,2\n", ',')?;
    assert_eq!(t.header(), Some(&["a\"b".to_string(), "c\r".into()][..]));
    // A delimiter of several bytes, and a tab.
    let t = table("x§y\n1§2\n", '§')?;
    assert_eq!((t.width(), t.values()), (2, &[1.0, 2.0][..]));
    let t = table("x\ty\n1\t2\n", '\t')?;
    assert_eq!(t.values(), &[1.0, 2.0]);
    // A quoted field cannot span lines; a quote or a newline cannot be the delimiter.
    let msg = format_msg(table("a,b\n1,\"2\n3\",4\n", ',').expect_err("span"));
    assert!(msg.contains("line 2: unterminated quoted field"), "{msg}");
    for bad in ['"', '\n', '\r'] {
        let e = table("a,b\n1,2\n", bad).expect_err("delimiter");
        assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    }
    // Rows wider or narrower than the first.
    let msg = format_msg(table("a,b\n1,2,3\n", ',').expect_err("wide"));
    assert!(msg.contains("line 2: expected 2 fields, found 3"), "{msg}");
    Ok(())
}
