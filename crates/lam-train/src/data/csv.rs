//! CSV files of numbers, plain or gzipped (a path ending in `.gz`).
//!
//! - [`read_table`]: every row as numbers, with the header if there is one
//!   (time series such as `examples/data/sunspots.csv`).
//! - [`read_csv`]: a [`TensorDataset`] whose target is one column (a class
//!   or a regression value) and whose features are all the other columns.
//!
//! Fields may be wrapped in double quotes (`"YEAR"`, with `""` for a quote
//! inside); blank lines and a `\r` before each newline are ignored. Every
//! problem — a row with the wrong number of fields, a field that is not a
//! finite number, a class label that is not an integer, a file that is not
//! UTF-8 or not gzip — is an [`Error::Format`] naming the file and the
//! 1-based line (and column), never a panic.

use std::io::Read;
use std::path::Path;

use lam_core::{Error, Result};

use super::{HostTargets, TensorDataset};

/// Which column holds the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetColumn {
    /// By position; negative counts from the end (`-1` is the last column).
    Index(isize),
    /// By header name (needs `header: true`).
    Name(String),
}

/// How to read a CSV file into a data set.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvOptions {
    /// The first non-blank line names the columns (default false).
    pub header: bool,
    /// The target column (default: the last).
    pub target: TargetColumn,
    /// Field separator (default `,`).
    pub delimiter: char,
    /// Targets are regression values instead of integer classes (default false).
    pub regression: bool,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            header: false,
            target: TargetColumn::Index(-1),
            delimiter: ',',
            regression: false,
        }
    }
}

impl CsvOptions {
    /// Defaults: no header, class label in the last column, comma-separated.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the first line is a header.
    pub fn header(mut self, header: bool) -> Self {
        self.header = header;
        self
    }

    /// The target column by position (negative counts from the end).
    pub fn target_index(mut self, index: isize) -> Self {
        self.target = TargetColumn::Index(index);
        self
    }

    /// The target column by header name.
    pub fn target_name(mut self, name: impl Into<String>) -> Self {
        self.target = TargetColumn::Name(name.into());
        self
    }

    /// The field separator.
    pub fn delimiter(mut self, delimiter: char) -> Self {
        self.delimiter = delimiter;
        self
    }

    /// Read the target as a regression value rather than a class.
    pub fn regression(mut self, regression: bool) -> Self {
        self.regression = regression;
        self
    }
}

/// A CSV file of numbers: the header (if asked for) and the rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Column names, when the file has a header.
    pub header: Option<Vec<String>>,
    /// Each row's values; every row has the same length.
    pub rows: Vec<Vec<f32>>,
    /// The 1-based line number of each row, for error messages.
    pub lines: Vec<usize>,
}

impl Table {
    /// The values of column `index`.
    pub fn column(&self, index: usize) -> Vec<f32> {
        self.rows
            .iter()
            .filter_map(|r| r.get(index).copied())
            .collect()
    }
}

/// Reads every row of `path` as numbers (see the module docs for the rules).
pub fn read_table(path: impl AsRef<Path>, header: bool, delimiter: char) -> Result<Table> {
    let path = path.as_ref();
    let text = read_text(path)?;
    let mut table = Table {
        header: None,
        rows: Vec::new(),
        lines: Vec::new(),
    };
    let mut width: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let fields =
            split_fields(line, delimiter).map_err(|msg| format_error(path, line_no, msg))?;
        if let Some(w) = width {
            if fields.len() != w {
                return Err(format_error(
                    path,
                    line_no,
                    format!("expected {w} fields, found {}", fields.len()),
                ));
            }
        }
        width = Some(fields.len());
        if header && table.header.is_none() {
            table.header = Some(fields);
            continue;
        }
        let row = fields
            .iter()
            .enumerate()
            .map(|(col, f)| {
                parse_number(f).map_err(|msg| {
                    format_error(path, line_no, format!("column {}: {msg}", col + 1))
                })
            })
            .collect::<Result<Vec<f32>>>()?;
        table.rows.push(row);
        table.lines.push(line_no);
    }
    if table.rows.is_empty() {
        return Err(Error::Format {
            path: path.display().to_string(),
            msg: "no data rows".into(),
        });
    }
    Ok(table)
}

/// Reads `path` into a data set: the target column as a class (an integer)
/// or a regression value, the other columns as features `[columns - 1]`.
pub fn read_csv(path: impl AsRef<Path>, options: &CsvOptions) -> Result<TensorDataset> {
    let path = path.as_ref();
    let table = read_table(path, options.header, options.delimiter)?;
    let width = table.rows[0].len();
    let target = match &options.target {
        TargetColumn::Index(i) => {
            let idx = if *i < 0 { width as isize + i } else { *i };
            if idx < 0 || idx as usize >= width {
                return Err(Error::Format {
                    path: path.display().to_string(),
                    msg: format!("target column {i} does not exist in rows of {width} fields"),
                });
            }
            idx as usize
        }
        TargetColumn::Name(name) => {
            let found = table
                .header
                .as_ref()
                .and_then(|h| h.iter().position(|c| c == name));
            found.ok_or_else(|| Error::Format {
                path: path.display().to_string(),
                msg: format!("no column named {name:?} (header: {:?})", table.header),
            })?
        }
    };
    let mut features = Vec::with_capacity(table.rows.len() * (width - 1));
    let mut classes = Vec::new();
    let mut values = Vec::new();
    for (row, &line_no) in table.rows.iter().zip(&table.lines) {
        let t = row[target];
        if options.regression {
            values.push(t);
        } else {
            let class = class_label(t).ok_or_else(|| {
                format_error(
                    path,
                    line_no,
                    format!(
                        "column {}: class label {t} is not an integer in the int32 range",
                        target + 1
                    ),
                )
            })?;
            classes.push(class);
        }
        features.extend(
            row.iter()
                .enumerate()
                .filter(|(c, _)| *c != target)
                .map(|(_, v)| *v),
        );
    }
    let targets = if options.regression {
        HostTargets::Values {
            data: values,
            width: 1,
        }
    } else {
        HostTargets::Classes(classes)
    };
    TensorDataset::from_parts(features, &[width - 1], targets)
}

/// The whole file as text, gunzipped when the name ends in `.gz`.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let bytes = read_bytes(path)?;
    String::from_utf8(bytes).map_err(|e| Error::Format {
        path: path.display().to_string(),
        msg: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
    })
}

/// The file's bytes, gunzipped when the name ends in `.gz`.
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        msg: e.to_string(),
    })?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::Format {
                path: path.display().to_string(),
                msg: format!("not a valid gzip file: {e}"),
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn format_error(path: &Path, line: usize, msg: impl std::fmt::Display) -> Error {
    Error::Format {
        path: path.display().to_string(),
        msg: format!("line {line}: {msg}"),
    }
}

/// `value` as a class label: a whole number within `i32` (an `as` cast
/// would turn 2^31 into `i32::MAX` without a word).
pub(crate) fn class_label(value: f32) -> Option<i32> {
    let limit = 2f32.powi(31);
    (value.fract() == 0.0 && (-limit..limit).contains(&value)).then_some(value as i32)
}

fn parse_number(field: &str) -> std::result::Result<f32, String> {
    let t = field.trim();
    match t.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(v) => Err(format!("{v} is not a finite number")),
        Err(_) => Err(format!("{t:?} is not a number")),
    }
}

/// Splits one line into fields, honouring double quotes.
fn split_fields(line: &str, delimiter: char) -> std::result::Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
        } else if c == '"' && field.trim().is_empty() {
            field.clear();
            quoted = true;
        } else if c == delimiter {
            fields.push(std::mem::take(&mut field));
        } else {
            field.push(c);
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    fields.push(field);
    Ok(fields)
}
