//! The per-epoch progress bar (indicatif): batches done, running loss,
//! running accuracy and samples per second. It draws only when stderr is a
//! terminal and the run is not quiet; the one-line epoch summary is
//! printed to stderr whenever the run is not quiet.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::history::EpochRecord;

pub(crate) struct Progress {
    bar: ProgressBar,
    quiet: bool,
    start: Instant,
}

impl Progress {
    /// A bar for one epoch of `batches` batches.
    pub(crate) fn new(epoch: u64, epochs: u64, batches: usize, quiet: bool) -> Progress {
        let visible = !quiet && std::io::stderr().is_terminal();
        let bar = if visible {
            ProgressBar::with_draw_target(Some(batches as u64), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        if let Ok(style) =
            ProgressStyle::with_template("{prefix} [{bar:30.cyan/blue}] {pos}/{len} {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(format!("epoch {epoch}/{epochs}"));
        Progress {
            bar,
            quiet,
            start: Instant::now(),
        }
    }

    /// Moves to `done` batches with the running values.
    pub(crate) fn update(&self, done: usize, loss: f64, accuracy: Option<f64>, samples: usize) {
        if self.bar.is_hidden() {
            return;
        }
        self.bar.set_position(done as u64);
        self.bar
            .set_message(describe(loss, accuracy, rate(samples, self.start)));
    }

    /// Clears the bar and prints the epoch's summary line.
    pub(crate) fn finish(&self, r: &EpochRecord, epochs: u64) {
        self.bar.finish_and_clear();
        if self.quiet {
            return;
        }
        let mut line = format!(
            "epoch {}/{epochs}: {}",
            r.epoch,
            describe(r.train_loss, r.train_accuracy, r.samples_per_sec)
        );
        if let Some(v) = r.val_loss {
            line += &format!(" | val loss {v:.4}");
        }
        if let Some(a) = r.val_accuracy {
            line += &format!(" acc {a:.4}");
        }
        line += &format!(" | lr {:.3e} | {:.1}s", r.lr, r.seconds);
        eprintln!("{line}");
    }
}

/// Samples per second since `start`.
pub(crate) fn rate(samples: usize, start: Instant) -> f64 {
    samples as f64 / start.elapsed().as_secs_f64().max(1e-9)
}

fn describe(loss: f64, accuracy: Option<f64>, per_sec: f64) -> String {
    let acc = accuracy.map(|a| format!(" acc {a:.4}")).unwrap_or_default();
    format!("loss {loss:.4}{acc} {per_sec:.0} samples/s")
}
