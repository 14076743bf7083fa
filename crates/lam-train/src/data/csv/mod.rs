//! CSV files of numbers, plain or gzipped (a path ending in `.gz`).
//!
//! - [`read_table`]: every row as numbers, with the header if there is one
//!   (time series such as `examples/data/sunspots.csv`).
//! - [`read_csv`]: a [`TensorDataset`] whose target is one column (a class
//!   or a regression value) and whose features are all the other columns.
//!
//! Files are streamed, never held whole: memory is the values read plus a
//! buffer and one field (`rows`), so a file of numbers takes about its own
//! size or less however long its lines. Fields may be wrapped in double
//! quotes (`"YEAR"`, with `""` for a quote inside); blank lines, a `\r`
//! before each newline and a UTF-8 byte-order mark are ignored (`fields`
//! has the exact rules). Class labels are read as integers from their text
//! and must fit in `i32`; features and regression targets are `f32`.
//!
//! A missing value — an empty field, `NA`, `NaN`, `null` and the other
//! spellings pandas knows (`value::MISSING`) — is an error by default, and
//! NaN with [`Missing::Nan`], to be filled by a
//! [`crate::preprocess::Imputer`] fitted on the training split. A missing
//! class or target is always an error.
//!
//! Every problem — a row with the wrong number of fields, a field that is
//! not a finite number, a class label that is not an integer in the
//! `i32` range, a file that is not UTF-8 or not gzip — is an
//! [`Error::Format`] naming the file and the 1-based line (and column),
//! never a panic.

mod fields;
mod rows;
mod source;
mod value;

pub(crate) use source::read_bytes;
pub(crate) use value::class_label;

use std::path::Path;

use lam_core::{Error, Result};

use super::{HostTargets, TensorDataset};
use rows::{room, Rows};

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
    /// What a missing feature value becomes (default [`Missing::Error`]).
    pub missing: Missing,
}

/// What [`read_csv`] does with a missing feature value (an empty field,
/// `NA`, `NaN`, `null`, ...: the spellings pandas reads as missing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Missing {
    /// An error naming the line and column (the default).
    #[default]
    Error,
    /// NaN, to be filled before training: fit a
    /// [`crate::preprocess::Imputer`] (mean, median or a constant) on the
    /// training split and transform every split with it.
    Nan,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            header: false,
            target: TargetColumn::Index(-1),
            delimiter: ',',
            regression: false,
            missing: Missing::Error,
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

    /// What a missing feature value becomes.
    pub fn missing(mut self, missing: Missing) -> Self {
        self.missing = missing;
        self
    }
}

/// A CSV file of numbers: the header (if asked for) and the rows, stored
/// row after row in one vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    header: Option<Vec<String>>,
    values: Vec<f32>,
    width: usize,
    lines: Vec<usize>,
}

impl Table {
    /// Column names, when the file has a header.
    pub fn header(&self) -> Option<&[String]> {
        self.header.as_deref()
    }

    /// Number of rows (never 0: a file without rows is an error).
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// False: a table has at least one row.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Values per row (at least 1).
    pub fn width(&self) -> usize {
        self.width
    }

    /// Every value, row after row: `len() × width()`.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Row `index`, or `None` past the end.
    pub fn row(&self, index: usize) -> Option<&[f32]> {
        let start = index.checked_mul(self.width)?;
        self.values.get(start..start.checked_add(self.width)?)
    }

    /// The rows in order.
    pub fn rows(&self) -> impl Iterator<Item = &[f32]> {
        self.values.chunks_exact(self.width.max(1))
    }

    /// The values of column `index` (empty past the last column).
    pub fn column(&self, index: usize) -> Vec<f32> {
        self.rows().filter_map(|r| r.get(index).copied()).collect()
    }

    /// The 1-based line number of each row, for error messages.
    pub fn lines(&self) -> &[usize] {
        &self.lines
    }
}

/// Reads every row of `path` as numbers (see the module docs for the
/// rules; a missing value is an error).
pub fn read_table(path: impl AsRef<Path>, header: bool, delimiter: char) -> Result<Table> {
    let path = path.as_ref();
    let mut rows = Rows::open(path, header, delimiter)?;
    no_rows_is_an_error(rows.data_rows, path)?;
    let mut values = room(
        rows.data_fields
            .min(rows.data_rows.saturating_mul(rows.width)),
    )?;
    let mut lines = room(rows.data_rows)?;
    while rows.next(|_, text| {
        values.push(value::feature(text, Missing::Error)?);
        Ok(())
    })? {
        lines.push(rows.line());
    }
    no_rows_is_an_error(lines.len(), path)?;
    Ok(Table {
        header: rows.header.take(),
        values,
        width: rows.width,
        lines,
    })
}

/// Reads `path` into a data set: the target column as a class (an integer)
/// or a regression value, the other columns as features `[columns - 1]`.
pub fn read_csv(path: impl AsRef<Path>, options: &CsvOptions) -> Result<TensorDataset> {
    let path = path.as_ref();
    let mut rows = Rows::open(path, options.header, options.delimiter)?;
    no_rows_is_an_error(rows.data_rows, path)?;
    let width = rows.width;
    let target = target_column(&options.target, width, rows.header.as_deref(), path)?;
    let n = rows.data_rows;
    let mut features = room((width - 1).saturating_mul(n).min(rows.data_fields))?;
    let mut classes = room(if options.regression { 0 } else { n })?;
    let mut values = room(if options.regression { n } else { 0 })?;
    let missing = options.missing;
    while rows.next(|column, text| {
        if column != target {
            features.push(value::feature(text, missing)?);
        } else if options.regression {
            values.push(value::target_value(text)?);
        } else {
            classes.push(value::class(text)?);
        }
        Ok(())
    })? {}
    no_rows_is_an_error(classes.len().max(values.len()), path)?;
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

/// The index of the target column in rows of `width` fields.
fn target_column(
    target: &TargetColumn,
    width: usize,
    header: Option<&[String]>,
    path: &Path,
) -> Result<usize> {
    let error = |msg: String| Error::Format {
        path: path.display().to_string(),
        msg,
    };
    match target {
        TargetColumn::Index(i) => {
            let idx = if *i < 0 {
                width.checked_sub(i.unsigned_abs())
            } else {
                Some(i.unsigned_abs()).filter(|&i| i < width)
            };
            idx.ok_or_else(|| {
                error(format!(
                    "target column {i} does not exist in rows of {width} fields"
                ))
            })
        }
        TargetColumn::Name(name) => header
            .and_then(|h| h.iter().position(|c| c == name))
            .ok_or_else(|| error(format!("no column named {name:?} (header: {header:?})"))),
    }
}

fn no_rows_is_an_error(rows: usize, path: &Path) -> Result<()> {
    if rows == 0 {
        return Err(Error::Format {
            path: path.display().to_string(),
            msg: "no data rows".into(),
        });
    }
    Ok(())
}
