//! Splitting a CSV stream into rows and fields with one field in memory at
//! a time, whatever the size of the file or of a line.
//!
//! The rules: a UTF-8 byte-order mark at the start is skipped; a line ends
//! at `\n`, and a `\r` just before it is dropped; a blank line (no
//! delimiter, no quote, nothing but whitespace) is skipped. A field may be
//! wrapped in double quotes, after nothing but whitespace, with `""` for a
//! quote inside; text after the closing quote is kept, and a quote
//! anywhere else is an ordinary character. A quoted field cannot span
//! lines: a line that ends inside quotes is an "unterminated quoted field".
//! Every field must be UTF-8. Errors name the file and the 1-based line.

use std::io::{BufRead, Cursor, ErrorKind, Read};
use std::path::Path;

use lam_core::{Error, Result};

use super::source::{Origin, Source};

/// The byte-order mark some editors put at the start of UTF-8 text.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The rows and fields of a CSV file, read as a stream.
pub(crate) struct Fields {
    input: Box<dyn BufRead>,
    origin: Origin,
    delimiter: Vec<u8>,
    /// The current field's bytes, quotes removed.
    field: Vec<u8>,
    /// Whether the current field used quotes.
    quoted: bool,
    /// The line of the current row, and of the next byte (from 1).
    line: usize,
    next_line: usize,
    /// Fields of the current row handed out so far.
    column: usize,
    state: State,
}

/// What ended a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Delimiter,
    Line,
    File,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between rows.
    Between,
    /// `next_row` has read the row's first field, ended by this.
    First(End),
    /// Inside a row, with more fields to come.
    Inside,
    /// The file is done.
    Done,
}

/// Where the byte loop is, relative to quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quotes {
    Outside,
    Inside,
    /// Inside, just after a quote: a second one is a literal quote,
    /// anything else means the first one closed the field's quotes.
    AfterQuote,
}

impl Fields {
    /// Opens `path` (gunzipped when it ends in `.gz`), skipping a BOM.
    pub(crate) fn open(path: &Path, delimiter: char) -> Result<Fields> {
        let Source { mut input, origin } = Source::open(path)?;
        let mut head = Vec::with_capacity(BOM.len());
        (&mut input)
            .take(BOM.len() as u64)
            .read_to_end(&mut head)
            .map_err(|e| origin.error(e))?;
        let input: Box<dyn BufRead> = if head == BOM {
            input
        } else {
            Box::new(Cursor::new(head).chain(input))
        };
        let mut utf8 = [0; 4];
        Ok(Fields {
            input,
            origin,
            delimiter: delimiter.encode_utf8(&mut utf8).as_bytes().to_vec(),
            field: Vec::new(),
            quoted: false,
            line: 0,
            next_line: 1,
            column: 0,
            state: State::Between,
        })
    }

    /// Moves to the next row that is not blank, skipping whatever is left
    /// of the current one; false at the end of the file.
    pub(crate) fn next_row(&mut self) -> Result<bool> {
        self.skip_fields()?;
        loop {
            if self.state == State::Done {
                return Ok(false);
            }
            self.line = self.next_line;
            self.column = 0;
            let end = self.read_field()?;
            if end != End::Delimiter && self.is_blank() {
                if end == End::File {
                    self.state = State::Done;
                }
                continue;
            }
            self.state = State::First(end);
            return Ok(true);
        }
    }

    /// The next field of the current row, or `None` after its last.
    pub(crate) fn next_field(&mut self) -> Result<Option<&str>> {
        if !self.advance()? {
            return Ok(None);
        }
        match std::str::from_utf8(&self.field) {
            Ok(text) => Ok(Some(text)),
            Err(_) => Err(self.error(format!("column {}: not UTF-8 text", self.column))),
        }
    }

    /// How many fields the current row has left, skipped without being
    /// read as text (for counting).
    pub(crate) fn skip_fields(&mut self) -> Result<usize> {
        let mut n = 0;
        while self.advance()? {
            n += 1;
        }
        Ok(n)
    }

    /// The line of the current row (from 1).
    pub(crate) fn line(&self) -> usize {
        self.line
    }

    /// A format error about the current row: `line N: msg`.
    pub(crate) fn error(&self, msg: impl std::fmt::Display) -> Error {
        Error::Format {
            path: self.origin.path.clone(),
            msg: format!("line {}: {msg}", self.line),
        }
    }

    /// Moves to the next field of the row (into `self.field`); false after its last.
    fn advance(&mut self) -> Result<bool> {
        let end = match self.state {
            State::Between | State::Done => return Ok(false),
            State::First(end) => end,
            State::Inside => self.read_field()?,
        };
        self.state = match end {
            End::Delimiter => State::Inside,
            End::Line => State::Between,
            End::File => State::Done,
        };
        self.column += 1;
        Ok(true)
    }

    /// True when the field just read makes its line blank.
    fn is_blank(&self) -> bool {
        !self.quoted && std::str::from_utf8(&self.field).is_ok_and(|s| s.trim().is_empty())
    }

    /// Reads one field into `self.field` and says what ended it.
    fn read_field(&mut self) -> Result<End> {
        self.field.clear();
        self.quoted = false;
        let mut quotes = Quotes::Outside;
        // Bytes of the field from here on were read outside quotes.
        let mut outside_from = 0;
        loop {
            let buf = match self.input.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.origin.error(e)),
            };
            if buf.is_empty() {
                match quotes {
                    Quotes::Inside => return Err(self.error("unterminated quoted field")),
                    Quotes::AfterQuote => outside_from = self.field.len(),
                    Quotes::Outside => {}
                }
                self.drop_cr(outside_from);
                return Ok(End::File);
            }
            // The last byte of the delimiter: where a run of plain bytes stops.
            let last = self.delimiter[self.delimiter.len() - 1];
            let mut used = 0;
            let mut end = None;
            while used < buf.len() {
                // Copy a run of bytes that need no decision at once.
                let rest = &buf[used..];
                let run = match quotes {
                    Quotes::Outside => rest
                        .iter()
                        .position(|&b| matches!(b, b'\n' | b'"') || b == last),
                    Quotes::Inside => rest.iter().position(|&b| matches!(b, b'\n' | b'"')),
                    Quotes::AfterQuote => Some(0),
                };
                let run = run.unwrap_or(rest.len());
                self.field.extend_from_slice(&rest[..run]);
                used += run;
                let Some(&b) = buf.get(used) else { break };
                used += 1;
                if quotes == Quotes::AfterQuote {
                    if b == b'"' {
                        self.field.push(b'"');
                        quotes = Quotes::Inside;
                        continue;
                    }
                    quotes = Quotes::Outside;
                    outside_from = self.field.len();
                }
                if quotes == Quotes::Inside {
                    match b {
                        b'"' => quotes = Quotes::AfterQuote,
                        b'\n' => {
                            end = Some(Err(()));
                            break;
                        }
                        _ => self.field.push(b),
                    }
                    continue;
                }
                if b == b'\n' {
                    end = Some(Ok(End::Line));
                    break;
                }
                if b == b'"' && std::str::from_utf8(&self.field).is_ok_and(|s| s.trim().is_empty())
                {
                    self.field.clear();
                    self.quoted = true;
                    quotes = Quotes::Inside;
                    continue;
                }
                if ends_field(&mut self.field, &self.delimiter, b, outside_from) {
                    end = Some(Ok(End::Delimiter));
                    break;
                }
            }
            self.input.consume(used);
            match end {
                None => {}
                Some(Err(())) => return Err(self.error("unterminated quoted field")),
                Some(Ok(end)) => {
                    if end == End::Line {
                        self.next_line += 1;
                        self.drop_cr(outside_from);
                    }
                    return Ok(end);
                }
            }
        }
    }

    /// Drops a `\r` read outside quotes at the end of the line.
    fn drop_cr(&mut self, outside_from: usize) {
        if self.field.len() > outside_from && self.field.last() == Some(&b'\r') {
            self.field.pop();
        }
    }
}

/// Takes byte `b`, read outside quotes, into `field`; true when it
/// completes the delimiter (which is then removed from the field).
fn ends_field(field: &mut Vec<u8>, delimiter: &[u8], b: u8, outside_from: usize) -> bool {
    if let [d] = delimiter[..] {
        if b == d {
            return true;
        }
        field.push(b);
        return false;
    }
    // A delimiter of several bytes: UTF-8 cannot match it across a
    // character boundary, so a match at the end is the delimiter.
    field.push(b);
    let n = delimiter.len();
    if field.len() >= outside_from + n && field.ends_with(delimiter) {
        field.truncate(field.len() - n);
        return true;
    }
    false
}
