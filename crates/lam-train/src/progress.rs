//! Progress bars on stderr (indicatif), one look for the whole crate:
//! [`progress`] wraps the iterator of a hand-written loop (tqdm's
//! `for x in tqdm(loader)`), and the [`crate::trainer::Trainer`] draws its
//! per-epoch bar with the same [`bar`]. A bar shows the count, the rate
//! and the time left; it draws only when stderr is a terminal and it was
//! not asked to be quiet, so logs and test output stay clean.
//!
//! ```ignore
//! for epoch in 1..=epochs {
//!     let bar = progress(&loader).desc(format!("epoch {epoch}"));
//!     let shown = bar.handle();
//!     for batch in bar {
//!         let (x, y) = batch?;
//!         // ... a training step ...
//!         shown.set_message(format!("loss {:.4}", loss.item()?));
//!     }
//! }
//! ```

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// Wraps `iter` in a progress bar on stderr that moves by one per item
/// (see the module docs). The length comes from the iterator's size hint
/// (a [`crate::data::DataLoader`]'s epoch knows it); without one the bar
/// counts items and shows their rate.
pub fn progress<I: IntoIterator>(iter: I) -> Progress<I::IntoIter> {
    let inner = iter.into_iter();
    let len = match inner.size_hint() {
        (lo, Some(hi)) if lo == hi => Some(lo as u64),
        _ => None,
    };
    Progress {
        bar: bar(len, false),
        len,
        inner,
        started: false,
    }
}

/// An iterator with a progress bar ([`progress`]).
pub struct Progress<I> {
    inner: I,
    bar: ProgressBar,
    len: Option<u64>,
    started: bool,
}

impl<I> Progress<I> {
    /// Text before the bar (tqdm's `desc`), e.g. `"epoch 3/10"`.
    pub fn desc(self, text: impl Into<String>) -> Self {
        self.bar.set_prefix(text.into());
        self
    }

    /// Draw nothing when `quiet` (a `--quiet` flag); a bar never draws
    /// when stderr is not a terminal anyway.
    pub fn quiet(mut self, quiet: bool) -> Self {
        if quiet {
            self.bar = bar(self.len, true);
        }
        self
    }

    /// Moves past a bar left on the terminal, so what is printed next
    /// starts on a line of its own (as tqdm does when it closes).
    fn end_line(&self) {
        if !self.bar.is_hidden() {
            eprintln!();
        }
    }

    /// A handle that sets the text after the bar from inside the loop
    /// (tqdm's `set_postfix`), e.g. the running loss.
    pub fn handle(&self) -> ProgressHandle {
        ProgressHandle(self.bar.clone())
    }
}

impl<I: Iterator> Iterator for Progress<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        // An item counts once the loop comes back for the next one, as
        // tqdm counts it: the bar shows finished work.
        if self.started {
            self.bar.inc(1);
        } else {
            // Drawn at 0 before the first item, which may take a while.
            self.bar.tick();
            self.started = true;
        }
        let item = self.inner.next();
        if item.is_none() && !self.bar.is_finished() {
            self.bar.finish();
            self.end_line();
        }
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<I> Drop for Progress<I> {
    fn drop(&mut self) {
        // A loop that breaks early leaves the bar where it stopped.
        if !self.bar.is_finished() {
            self.bar.abandon();
            self.end_line();
        }
    }
}

/// Sets the text after a [`Progress`] bar from inside its loop.
#[derive(Clone)]
pub struct ProgressHandle(ProgressBar);

impl ProgressHandle {
    /// Replaces the text after the bar.
    pub fn set_message(&self, text: impl Into<String>) {
        self.0.set_message(text.into());
    }
}

/// A bar of `len` steps (or a counter, without one) on stderr, hidden when
/// `quiet` or when stderr is not a terminal: the one style of the crate.
pub(crate) fn bar(len: Option<u64>, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
    let template = if len.is_some() {
        "{prefix} [{bar:30.cyan/blue}] {pos}/{len} [{elapsed}<{eta}, {rate}] {msg}"
    } else {
        "{prefix} {pos} [{elapsed}, {rate}] {msg}"
    };
    // tqdm's "12.3 it/s" rather than indicatif's four decimals.
    let rate = |s: &ProgressState, w: &mut dyn std::fmt::Write| {
        let _ = write!(w, "{:.1} it/s", s.per_sec());
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.with_key("rate", rate).progress_chars("=> "));
    }
    bar
}
