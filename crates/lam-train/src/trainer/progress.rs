//! The per-epoch progress bar (the crate's one bar style,
//! [`crate::progress`]): batches done, time left, running loss, running
//! accuracy and samples per second. It draws only when stderr is a
//! terminal and the run is not quiet; the one-line epoch summary is
//! printed to stderr whenever the run is not quiet.

use std::time::Instant;

use indicatif::ProgressBar;

use super::history::EpochRecord;
use super::tally::Scores;
use crate::metrics::RegressionScores;

pub(crate) struct Progress {
    bar: ProgressBar,
    quiet: bool,
    start: Instant,
}

impl Progress {
    /// A bar for one epoch of `batches` batches.
    pub(crate) fn new(epoch: u64, epochs: u64, batches: usize, quiet: bool) -> Progress {
        let bar = crate::progress::bar(Some(batches as u64), quiet);
        bar.set_prefix(format!("epoch {epoch}/{epochs}"));
        Progress {
            bar,
            quiet,
            start: Instant::now(),
        }
    }

    /// Moves to `done` batches with the running values.
    pub(crate) fn update(&self, done: usize, scores: Option<Scores>, samples: usize) {
        let Some(s) = scores.filter(|_| !self.bar.is_hidden()) else {
            return;
        };
        self.bar.set_position(done as u64);
        self.bar.set_message(describe(
            s.loss,
            s.accuracy,
            s.regression,
            rate(samples, self.start),
        ));
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
            describe(
                r.train_loss,
                r.train_accuracy,
                r.train_regression,
                r.samples_per_sec
            )
        );
        if let Some(v) = r.val_loss {
            line += &format!(" | val loss {v:.4}");
        }
        line += &metrics(r.val_accuracy, r.val_regression);
        line += &format!(" | lr {:.3e} | {:.1}s", r.lr, r.seconds);
        eprintln!("{line}");
    }
}

/// Samples per second since `start`.
pub(crate) fn rate(samples: usize, start: Instant) -> f64 {
    samples as f64 / start.elapsed().as_secs_f64().max(1e-9)
}

fn describe(
    loss: f64,
    accuracy: Option<f64>,
    regression: Option<RegressionScores>,
    per_sec: f64,
) -> String {
    let m = metrics(accuracy, regression);
    format!("loss {loss:.4}{m} {per_sec:.0} samples/s")
}

/// " acc …" for a classifier, " mae … r2 …" for a regression model.
fn metrics(accuracy: Option<f64>, regression: Option<RegressionScores>) -> String {
    let acc = accuracy.map(|a| format!(" acc {a:.4}")).unwrap_or_default();
    let reg = regression
        .map(|s| format!(" mae {:.4} r2 {:.4}", s.mae, s.r2))
        .unwrap_or_default();
    acc + &reg
}
