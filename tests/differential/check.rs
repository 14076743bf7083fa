//! Comparing lam's values with PyTorch's, and the per-family error report.
//!
//! An element passes when NaN meets NaN, an infinity meets the same
//! infinity, or both are finite and
//! `|actual - expected| <= atol + rtol·|expected| + ntol·max|expected| + 2·e`,
//! where `max|expected|` is over the array's finite elements (the scale a
//! reduction or product works at) and `e` is how far PyTorch's own float32
//! result is from float64 (stored with the case: ill-conditioned values are
//! not held to a precision PyTorch does not reach). Cases marked exact must
//! match bit for bit (up to the sign of zero).

use std::fmt::Write as _;

/// Tolerance parts (see the module doc).
#[derive(Debug, Clone, Copy)]
pub struct Tol {
    pub atol: f32,
    pub rtol: f32,
    pub ntol: f32,
}

impl Tol {
    pub const fn new(atol: f32, rtol: f32, ntol: f32) -> Tol {
        Tol { atol, rtol, ntol }
    }

    /// This tolerance with every part scaled by `k`.
    pub fn times(self, k: f32) -> Tol {
        Tol::new(self.atol * k, self.rtol * k, self.ntol * k)
    }
}

/// The largest errors seen in one array.
#[derive(Debug, Default, Clone, Copy)]
pub struct Measure {
    pub abs: f64,
    pub rel: f64,
}

/// Compares `actual` with `expected`; `e` is PyTorch's float32 error.
pub fn compare(
    actual: &[f32],
    expected: &[f32],
    e: f32,
    tol: Tol,
    exact: bool,
) -> Result<Measure, String> {
    compare_with_slack(actual, expected, e, tol, exact, &[])
}

/// [`compare`] with an extra absolute allowance per element (`slack`, empty
/// for none): the scale an element was computed at, when it is not the
/// array's.
pub fn compare_with_slack(
    actual: &[f32],
    expected: &[f32],
    e: f32,
    tol: Tol,
    exact: bool,
    slack: &[f32],
) -> Result<Measure, String> {
    if actual.len() != expected.len() {
        return Err(format!(
            "{} values, expected {}",
            actual.len(),
            expected.len()
        ));
    }
    let scale = expected
        .iter()
        .filter(|v| v.is_finite())
        .fold(0f32, |m, v| m.max(v.abs()));
    let mut m = Measure::default();
    let mut bad = Vec::new();
    for (i, (&a, &x)) in actual.iter().zip(expected).enumerate() {
        let ok = if x.is_nan() {
            a.is_nan()
        } else if x.is_infinite() {
            a == x
        } else if !a.is_finite() {
            false
        } else {
            let d = (a as f64 - x as f64).abs();
            m.abs = m.abs.max(d);
            // Relative errors only where the value is not rounding noise.
            if x.abs() as f64 >= (1e-3 * scale as f64).max(1e-6) {
                m.rel = m.rel.max(d / x.abs() as f64);
            }
            let bound = if exact {
                0.0
            } else {
                tol.atol as f64
                    + tol.rtol as f64 * x.abs() as f64
                    + tol.ntol as f64 * scale as f64
                    + 2.0 * e as f64
                    + slack.get(i).copied().unwrap_or(0.0) as f64
            };
            d <= bound
        };
        if !ok {
            bad.push(i);
        }
    }
    if bad.is_empty() {
        return Ok(m);
    }
    let mut msg = format!("{} of {} values differ:", bad.len(), actual.len());
    for &i in bad.iter().take(4) {
        let _ = write!(msg, " [{i}] {} vs {}", actual[i], expected[i]);
    }
    if exact {
        msg.push_str(" (exact)");
    } else if e > 0.0 {
        let _ = write!(msg, " (PyTorch float32 error {e:.2e})");
    }
    Err(msg)
}

/// Counts and largest errors of one family on one device.
#[derive(Debug, Default)]
pub struct Report {
    pub cases: usize,
    pub errors: usize,
    pub differs: usize,
    pub arrays: usize,
    pub max_abs: (f64, String),
    pub max_rel: (f64, String),
    pub failures: Vec<String>,
}

impl Report {
    pub fn record(&mut self, case: &str, m: Measure) {
        self.arrays += 1;
        if m.abs > self.max_abs.0 {
            self.max_abs = (m.abs, case.to_string());
        }
        if m.rel > self.max_rel.0 {
            self.max_rel = (m.rel, case.to_string());
        }
    }

    pub fn fail(&mut self, case: &str, what: impl std::fmt::Display) {
        self.failures.push(format!("{case}: {what}"));
    }

    /// Prints the summary line, and `Err` listing every failing case.
    pub fn finish(self, family: &str, device: &str, min_cases: usize) -> lam::Result<()> {
        println!(
            "differential {family} on {device}: {} cases ({} expected errors, {} differ), {} arrays \
             compared; largest abs error {:.3e} ({}), largest rel error {:.3e} ({}); {} failing",
            self.cases,
            self.errors,
            self.differs,
            self.arrays,
            self.max_abs.0,
            self.max_abs.1,
            self.max_rel.0,
            self.max_rel.1,
            self.failures.len()
        );
        if self.cases < min_cases {
            return Err(lam::Error::invalid(
                "differential",
                format!(
                    "{family}: only {} cases, expected at least {min_cases}",
                    self.cases
                ),
            ));
        }
        if self.failures.is_empty() {
            return Ok(());
        }
        Err(lam::Error::invalid(
            "differential",
            format!(
                "{family} on {device}: {} of {} cases fail:\n{}",
                self.failures.len(),
                self.cases,
                self.failures.join("\n")
            ),
        ))
    }
}
