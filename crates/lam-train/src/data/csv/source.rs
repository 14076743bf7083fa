//! Where a CSV or IDX file's bytes come from: the file itself, or its
//! gunzipped content when the name ends in `.gz`; whole ([`read_bytes`],
//! for IDX) or as a stream ([`Source`], for CSV, which never holds the
//! whole text).

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::path::Path;

use lam_core::{Error, Result};

/// The file's bytes, gunzipped when the name ends in `.gz`.
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let mut source = Source::open(path)?;
    let mut out = Vec::new();
    source
        .input
        .read_to_end(&mut out)
        .map_err(|e| source.origin.error(e))?;
    Ok(out)
}

/// A file's (gunzipped) bytes as a buffered stream.
pub(crate) struct Source {
    pub(crate) input: Box<dyn BufRead>,
    /// Apart from `input`, so that errors can be made while it is borrowed.
    pub(crate) origin: Origin,
}

/// Which file a stream reads, for its errors.
pub(crate) struct Origin {
    pub(crate) path: String,
    gz: bool,
}

impl Source {
    /// Opens `path`; a missing or unreadable file is an [`Error::Io`].
    pub(crate) fn open(path: &Path) -> Result<Source> {
        let shown = path.display().to_string();
        let file = File::open(path).map_err(|e| Error::Io {
            path: shown.clone(),
            msg: e.to_string(),
        })?;
        let gz = path.extension().is_some_and(|e| e == "gz");
        let input: Box<dyn BufRead> = if gz {
            Box::new(BufReader::new(flate2::read::GzDecoder::new(file)))
        } else {
            Box::new(BufReader::new(file))
        };
        Ok(Source {
            input,
            origin: Origin { path: shown, gz },
        })
    }
}

impl Origin {
    /// The error for a failed read: bad compressed data is a malformed file
    /// ([`Error::Format`]), anything else a failed read ([`Error::Io`]).
    pub(crate) fn error(&self, e: std::io::Error) -> Error {
        let bad_data = matches!(
            e.kind(),
            ErrorKind::InvalidData | ErrorKind::InvalidInput | ErrorKind::UnexpectedEof
        );
        if self.gz && bad_data {
            Error::Format {
                path: self.path.clone(),
                msg: format!("not a valid gzip file: {e}"),
            }
        } else {
            Error::Io {
                path: self.path.clone(),
                msg: e.to_string(),
            }
        }
    }
}
