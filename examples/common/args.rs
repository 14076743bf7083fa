//! What every example shares: its command line and where it writes.
//!
//! Flags: `--quick` (a run of seconds, the configuration the smoke tests
//! use), `--epochs N`, `--seed S`, and each example's own. A flag that no
//! example asked about, or a value that does not parse, is an error that
//! lists the flags the example knows. Outputs go to
//! `target/lam-out/<example>/`, or `$LAM_OUT_DIR/<example>/`.
//!
//! Each example includes this file with `#[path = "common/args.rs"] mod
//! args;` (examples are single files; this keeps one parser for all).

#![allow(dead_code)] // Each example uses part of it.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use lam::{Error, Result};

/// The command-line flags of one example.
pub struct Args {
    example: &'static str,
    words: Vec<String>,
    used: Vec<bool>,
    /// The flags asked about so far, as the error message lists them.
    known: Vec<String>,
}

impl Args {
    /// The process's arguments.
    pub fn from_env(example: &'static str) -> Args {
        Args::new(example, std::env::args().skip(1))
    }

    /// The given arguments (for tests).
    pub fn new(example: &'static str, words: impl IntoIterator<Item = String>) -> Args {
        let words: Vec<String> = words.into_iter().collect();
        Args {
            example,
            used: vec![false; words.len()],
            words,
            known: Vec::new(),
        }
    }

    /// `--quick`: a run of seconds.
    pub fn quick(&mut self) -> bool {
        self.flag("--quick")
    }

    /// True when the switch `name` (`--render`) was given.
    pub fn flag(&mut self, name: &str) -> bool {
        self.known.push(name.to_string());
        match self.position(name) {
            Some(i) => {
                self.used[i] = true;
                true
            }
            None => false,
        }
    }

    /// The value after `name` (`--epochs 5`), parsed, when `name` was given.
    pub fn value<T: FromStr>(&mut self, name: &str) -> Result<Option<T>> {
        self.known.push(format!("{name} VALUE"));
        let Some(i) = self.position(name) else {
            return Ok(None);
        };
        self.used[i] = true;
        let Some(word) = self.words.get(i + 1) else {
            return Err(Error::invalid(
                self.example,
                format!("{name} needs a value"),
            ));
        };
        let parsed = word.parse().map_err(|_| {
            Error::invalid(
                self.example,
                format!("{name} needs a value of the right kind, found {word:?}"),
            )
        })?;
        self.used[i + 1] = true;
        Ok(Some(parsed))
    }

    /// An error for any argument no call asked about.
    pub fn finish(self) -> Result<()> {
        match self.words.iter().zip(&self.used).find(|(_, used)| !**used) {
            None => Ok(()),
            Some((word, _)) => Err(Error::invalid(
                self.example,
                format!(
                    "unknown argument {word:?}; expected {}",
                    self.known.join(", ")
                ),
            )),
        }
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.words.iter().position(|w| w == name)
    }
}

/// `$LAM_OUT_DIR/<example>`, or `target/lam-out/<example>` (not created).
pub fn out_dir(example: &str) -> PathBuf {
    std::env::var_os("LAM_OUT_DIR")
        .map_or_else(|| PathBuf::from("target/lam-out"), PathBuf::from)
        .join(example)
}

/// [`out_dir`], created if it is not there yet.
pub fn make_out_dir(example: &str) -> Result<PathBuf> {
    let dir = out_dir(example);
    create_dir(&dir)?;
    Ok(dir)
}

/// `dir` and its parents, created if they are not there yet.
pub fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}
