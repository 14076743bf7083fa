//! [`ProfileReport`]: a snapshot of the profiler's tables and the table it
//! prints.
//!
//! The report is grouped by device, then by clock (host time per op, and
//! GPU time per kernel where the device measured it). Shares are of the
//! measured span — the wall time since `enable`/`reset` — so the rows and
//! the closing "other" line (span minus all host op time: the autograd tape,
//! tensor handles, the caller's own code) add up to the whole.

use std::fmt;
use std::time::Duration;

use super::{Clock, Recorded};

/// What the profiler recorded over one span; `Display` prints the table.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileReport {
    /// Wall time from `enable`/`reset` to this report.
    pub span: Duration,
    /// One per (device, clock), in the order first recorded.
    pub sections: Vec<Section>,
}

/// The ops of one device measured by one clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// The backend's name, e.g. "cpu" or "vulkan: llvmpipe (...)".
    pub device: String,
    pub clock: Clock,
    /// How the device measures itself, where its backend said (see
    /// [`super::note_device`]).
    pub note: Option<String>,
    /// Most total time first.
    pub rows: Vec<Row>,
}

/// One op (host clock) or kernel (GPU clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// e.g. `matmul`, `unary.relu`, `fused_adam`.
    pub op: String,
    pub count: u64,
    pub total: Duration,
}

impl Row {
    /// Mean time per call.
    pub fn mean(&self) -> Duration {
        // The counts of one run stay far below u32::MAX calls per op name.
        let n = u32::try_from(self.count).unwrap_or(u32::MAX).max(1);
        self.total / n
    }
}

impl Section {
    /// Sum of the rows' times.
    pub fn total(&self) -> Duration {
        self.rows.iter().map(|r| r.total).sum()
    }

    /// Sum of the rows' counts.
    pub fn count(&self) -> u64 {
        self.rows.iter().map(|r| r.count).sum()
    }
}

impl ProfileReport {
    pub(super) fn new(
        span: Duration,
        recorded: &[Recorded],
        notes: &[(String, String)],
    ) -> ProfileReport {
        let sections = recorded
            .iter()
            .map(|r| {
                let mut rows: Vec<Row> = r
                    .ops
                    .iter()
                    .map(|(op, stat)| Row {
                        op: op.clone(),
                        count: stat.count,
                        total: stat.total,
                    })
                    .collect();
                rows.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.op.cmp(&b.op)));
                Section {
                    device: r.device.clone(),
                    clock: r.clock,
                    note: notes
                        .iter()
                        .find(|(d, _)| *d == r.device)
                        .map(|(_, n)| n.clone()),
                    rows,
                }
            })
            .collect();
        ProfileReport { span, sections }
    }

    /// Host time inside backend calls, over every device.
    pub fn host_total(&self) -> Duration {
        self.clock_total(Clock::Host)
    }

    /// GPU kernel time measured by the devices themselves.
    pub fn gpu_total(&self) -> Duration {
        self.clock_total(Clock::Gpu)
    }

    /// The span not spent inside any backend call (zero if ops ran on
    /// several threads at once and so add up to more than the span).
    pub fn other(&self) -> Duration {
        self.span.saturating_sub(self.host_total())
    }

    /// Host op time as a fraction of the span: how much of the measured
    /// wall time the table accounts for.
    pub fn host_share(&self) -> f64 {
        ratio(self.host_total(), self.span)
    }

    /// GPU kernel time as a fraction of the span.
    pub fn gpu_share(&self) -> f64 {
        ratio(self.gpu_total(), self.span)
    }

    /// Calls of `op` timed on the host, over every device.
    pub fn count(&self, op: &str) -> u64 {
        self.rows(Clock::Host, op).map(|r| r.count).sum()
    }

    /// Calls of `kernel` timed on a GPU, over every device.
    pub fn kernel_count(&self, kernel: &str) -> u64 {
        self.rows(Clock::Gpu, kernel).map(|r| r.count).sum()
    }

    /// The section of `device` measured by `clock`.
    pub fn section(&self, device: &str, clock: Clock) -> Option<&Section> {
        self.sections
            .iter()
            .find(|s| s.device == device && s.clock == clock)
    }

    fn clock_total(&self, clock: Clock) -> Duration {
        self.sections
            .iter()
            .filter(|s| s.clock == clock)
            .map(Section::total)
            .sum()
    }

    fn rows<'a>(&'a self, clock: Clock, op: &'a str) -> impl Iterator<Item = &'a Row> + 'a {
        self.sections
            .iter()
            .filter(move |s| s.clock == clock)
            .flat_map(|s| s.rows.iter())
            .filter(move |r| r.op == op)
    }
}

impl fmt::Display for ProfileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .sections
            .iter()
            .flat_map(|s| s.rows.iter().map(|r| r.op.len()))
            .max()
            .unwrap_or(0)
            .max(MIN_NAME_WIDTH);
        writeln!(
            f,
            "lam profile: {:.1} ms measured; ops account for {:.1}% of it (host time)",
            ms(self.span),
            100.0 * self.host_share()
        )?;
        let mut shown: Vec<&str> = Vec::new();
        for section in &self.sections {
            if !shown.contains(&section.device.as_str()) {
                shown.push(&section.device);
                match &section.note {
                    Some(note) => writeln!(f, "{} — {note}", section.device)?,
                    None => writeln!(f, "{}", section.device)?,
                }
            }
            self.write_section(f, section, width)?;
        }
        writeln!(
            f,
            "  {:<width$} {:>8} {:>11.2} {:>10} {:>7.1}",
            "other (host, outside ops)",
            "",
            ms(self.other()),
            "",
            100.0 * ratio(self.other(), self.span),
            width = width
        )
    }
}

impl ProfileReport {
    fn write_section(&self, f: &mut fmt::Formatter<'_>, s: &Section, width: usize) -> fmt::Result {
        let (title, all) = match s.clock {
            Clock::Host => ("op (host time)", "all ops"),
            Clock::Gpu => ("kernel (GPU time)", "all kernels"),
        };
        writeln!(
            f,
            "  {title:<width$} {:>8} {:>11} {:>10} {:>7}",
            "count", "total ms", "mean µs", "% span"
        )?;
        for r in &s.rows {
            writeln!(
                f,
                "  {:<width$} {:>8} {:>11.2} {:>10.1} {:>7.1}",
                r.op,
                r.count,
                ms(r.total),
                r.mean().as_secs_f64() * 1e6,
                100.0 * ratio(r.total, self.span)
            )?;
        }
        writeln!(
            f,
            "  {all:<width$} {:>8} {:>11.2} {:>10} {:>7.1}",
            s.count(),
            ms(s.total()),
            "",
            100.0 * ratio(s.total(), self.span)
        )
    }
}

/// The narrowest name column: room for the "other" line; longer op names widen it.
const MIN_NAME_WIDTH: usize = 26;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn ratio(part: Duration, whole: Duration) -> f64 {
    if whole.is_zero() {
        0.0
    } else {
        part.as_secs_f64() / whole.as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Stat;

    fn recorded(device: &str, clock: Clock, ops: &[(&str, u64, u64)]) -> Recorded {
        Recorded {
            device: device.into(),
            clock,
            ops: ops
                .iter()
                .map(|&(op, count, micros)| {
                    (
                        op.to_string(),
                        Stat {
                            count,
                            total: Duration::from_micros(micros),
                        },
                    )
                })
                .collect(),
        }
    }

    fn sample() -> ProfileReport {
        ProfileReport::new(
            Duration::from_millis(10),
            &[
                recorded(
                    "cpu",
                    Clock::Host,
                    &[("unary.relu", 4, 1_000), ("matmul", 3, 6_000)],
                ),
                recorded("gpu0", Clock::Gpu, &[("matmul", 3, 1_500)]),
            ],
            &[("gpu0".into(), "timestamp queries".into())],
        )
    }

    #[test]
    fn rows_are_sorted_by_total_and_sums_hold() {
        let r = sample();
        let cpu = r.section("cpu", Clock::Host).unwrap();
        assert_eq!(cpu.rows[0].op, "matmul");
        assert_eq!(cpu.rows[0].mean(), Duration::from_micros(2_000));
        assert_eq!(r.count("matmul"), 3);
        assert_eq!(r.kernel_count("matmul"), 3);
        assert_eq!(r.count("unary.relu"), 4);
        assert_eq!(r.host_total(), Duration::from_millis(7));
        assert_eq!(r.gpu_total(), Duration::from_micros(1_500));
        assert_eq!(r.other(), Duration::from_millis(3));
        assert!((r.host_share() - 0.7).abs() < 1e-9);
        assert_eq!(cpu.note, None);
        assert_eq!(
            r.section("gpu0", Clock::Gpu).unwrap().note.as_deref(),
            Some("timestamp queries")
        );
    }

    #[test]
    fn the_table_has_every_row_share_and_the_remainder() {
        let text = sample().to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "lam profile: 10.0 ms measured; ops account for 70.0% of it (host time)"
        );
        assert_eq!(lines[1], "cpu");
        assert!(
            lines[2].trim_start().starts_with("op (host time)"),
            "{text}"
        );
        assert!(
            lines[2].contains("count") && lines[2].contains("% span"),
            "{text}"
        );
        let cols = |l: &str| -> Vec<String> { l.split_whitespace().map(String::from).collect() };
        assert_eq!(cols(lines[3]), ["matmul", "3", "6.00", "2000.0", "60.0"]);
        assert_eq!(cols(lines[4]), ["unary.relu", "4", "1.00", "250.0", "10.0"]);
        assert_eq!(cols(lines[5]), ["all", "ops", "7", "7.00", "70.0"]);
        assert_eq!(lines[6], "gpu0 — timestamp queries");
        assert!(
            lines[7].trim_start().starts_with("kernel (GPU time)"),
            "{text}"
        );
        assert_eq!(cols(lines[8]), ["matmul", "3", "1.50", "500.0", "15.0"]);
        assert_eq!(cols(lines[9]), ["all", "kernels", "3", "1.50", "15.0"]);
        assert_eq!(
            cols(lines[10]),
            ["other", "(host,", "outside", "ops)", "3.00", "30.0"]
        );
        assert_eq!(lines.len(), 11);
    }

    #[test]
    fn an_empty_span_prints_zero_shares() {
        let r = ProfileReport::new(Duration::ZERO, &[], &[]);
        assert_eq!(r.host_share(), 0.0);
        assert!(r.to_string().contains("0.0%"));
    }
}
