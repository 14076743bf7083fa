//! Reading a CSV file row by row, in two streaming passes.
//!
//! The first pass only splits fields (see `fields`) to count the rows and
//! fields and measure the first row, so that the second can store every
//! value in vectors of exactly the right size: a growing vector would
//! reserve up to twice what it holds, and moving it to a bigger one holds
//! both at once. Memory is then the values read, the reader's buffer and
//! one field, for a file of any size or a single line of any length; a
//! gzipped file is decompressed twice.

use std::path::Path;

use lam_core::{Error, Result};

use super::fields::Fields;

/// The rows of a CSV file, after its header.
pub(crate) struct Rows {
    fields: Fields,
    /// Fields per row: every row must have as many as the first.
    pub(crate) width: usize,
    /// Rows after the header, as the first pass counted them.
    pub(crate) data_rows: usize,
    /// Fields in those rows, as the first pass counted them.
    pub(crate) data_fields: usize,
    /// The header's fields, when the file has one.
    pub(crate) header: Option<Vec<String>>,
}

impl Rows {
    /// Scans `path` once, then opens it again and reads the header (the
    /// first non-blank line) when `header` is true.
    pub(crate) fn open(path: &Path, header: bool, delimiter: char) -> Result<Rows> {
        if matches!(delimiter, '"' | '\n' | '\r') {
            return Err(Error::invalid(
                "read_csv",
                format!("the delimiter {delimiter:?} cannot be a quote or a line break"),
            ));
        }
        let mut scan = Fields::open(path, delimiter)?;
        let (mut rows, mut fields, mut first) = (0usize, 0usize, None);
        while scan.next_row()? {
            let n = scan.skip_fields()?;
            rows += 1;
            fields += n;
            first.get_or_insert(n);
        }
        let width = first.unwrap_or(0);
        let mut fields_of = Fields::open(path, delimiter)?;
        let names = if header && fields_of.next_row()? {
            let mut names = Vec::with_capacity(width);
            while let Some(name) = fields_of.next_field()? {
                names.push(name.to_string());
            }
            Some(names)
        } else {
            None
        };
        let header_fields = names.as_ref().map_or(0, Vec::len);
        Ok(Rows {
            fields: fields_of,
            width,
            data_rows: rows.saturating_sub(usize::from(names.is_some())),
            data_fields: fields.saturating_sub(header_fields),
            header: names,
        })
    }

    /// Hands each field of the next row to `cell(column, text)`; false at
    /// the end of the file. A row of another width than the first, or a
    /// message from `cell`, is an error naming the line (and column).
    pub(crate) fn next(
        &mut self,
        mut cell: impl FnMut(usize, &str) -> std::result::Result<(), String>,
    ) -> Result<bool> {
        if !self.fields.next_row()? {
            return Ok(false);
        }
        let mut n = 0;
        while let Some(text) = self.fields.next_field()? {
            if n < self.width {
                if let Err(msg) = cell(n, text) {
                    return Err(self.fields.error(format!("column {}: {msg}", n + 1)));
                }
            }
            n += 1;
        }
        if n != self.width {
            return Err(self
                .fields
                .error(format!("expected {} fields, found {n}", self.width)));
        }
        Ok(true)
    }

    /// The line of the row `next` last read (from 1).
    pub(crate) fn line(&self) -> usize {
        self.fields.line()
    }
}

/// An empty vector with room for exactly `n` items, or an
/// [`Error::OutOfMemory`] when the allocator refuses.
pub(crate) fn room<T>(n: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| Error::OutOfMemory {
        op: "read_csv",
        bytes: (n as u64).saturating_mul(std::mem::size_of::<T>() as u64),
    })?;
    Ok(v)
}
