//! Reading a CSV file takes the memory of the values it holds, and nothing
//! that grows with the file or with a line: measured by the counting
//! allocator of `tests/fuzz/mod.rs` (at the workspace root) on files of
//! 8 MiB, or `LAM_CSV_MEMORY_MIB` MiB.
//!
//! The only test in its binary: the allocator's figures are process-wide.

#[path = "../../../tests/fuzz/mod.rs"]
mod fuzz;

use std::fmt::Write as _;
use std::io::Write as _;

use lam_train::data::csv::{read_csv, CsvOptions};

/// What a read may take beyond its values: the reader's buffers, a gzip
/// decoder's state and one field.
const SLACK: usize = 256 << 10;

fn size() -> usize {
    std::env::var("LAM_CSV_MEMORY_MIB")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(8)
        << 20
}

/// A number in [-10, 10) with four decimals.
fn decimal(rng: &mut fuzz::Rng) -> f64 {
    (rng.next_u64() % 2_000_000) as f64 / 1e5 - 10.0
}

/// Rows of `width` decimal features and a class.
fn rows(width: usize) -> String {
    let mut rng = fuzz::Rng::new(width as u64);
    let mut text = String::with_capacity(size() + 256);
    while text.len() < size() {
        for _ in 0..width {
            let _ = write!(text, "{:.4},", decimal(&mut rng));
        }
        let _ = writeln!(text, "{}", rng.below(10));
    }
    text
}

/// One line: decimal features (or single digits), then a class.
fn one_line(digits: bool) -> String {
    let mut rng = fuzz::Rng::new(7);
    let mut text = String::with_capacity(size() + 256);
    while text.len() < size() {
        let _ = match digits {
            true => write!(text, "{},", rng.below(10)),
            false => write!(text, "{:.4},", decimal(&mut rng)),
        };
    }
    text.push_str("3\n");
    text
}

fn gzip(text: &str) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(text.as_bytes()).expect("gzip");
    e.finish().expect("gzip")
}

#[test]
fn reading_a_csv_takes_the_memory_of_its_values() {
    let dir = fuzz::TempDir::new("lam-train-csv-memory");
    // (file, text, whether the values are decimals, which take less room than their text)
    let cases: Vec<(&str, String, bool)> = vec![
        ("wide.csv", rows(20), true),
        ("wide.csv.gz", rows(20), true),
        ("narrow.csv", rows(3), true),
        ("line.csv", one_line(false), true),
        ("digits_line.csv", one_line(true), false),
    ];
    let mut problems = Vec::new();
    for (name, text, decimals) in cases {
        let path = dir.0.join(name);
        let bytes = match name.ends_with(".gz") {
            true => gzip(&text),
            false => text.as_bytes().to_vec(),
        };
        std::fs::write(&path, &bytes).expect("write");
        let text_size = text.len();
        drop((text, bytes));
        let base = fuzz::mark();
        let started = std::time::Instant::now();
        let ds = read_csv(&path, &CsvOptions::new()).expect("reads");
        let took = started.elapsed();
        let grew = fuzz::peak_since(base);
        let values = 4 * (ds.features().len() + ds.targets().len());
        eprintln!(
            "{name}: {text_size} bytes of text, {values} bytes of values, peak heap growth \
             {grew} bytes ({:.2}× the text), read in {took:.2?}",
            grew as f64 / text_size as f64
        );
        if grew > values + SLACK || (decimals && grew > 2 * text_size) {
            problems.push(format!("{name}: {grew} bytes for {values} bytes of values"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
