//! Plots of a run, as PNG or SVG (chosen by the file extension): loss and
//! metric curves per epoch ([`plot_history`], [`plot_lines`]), ROC curves
//! ([`plot_roc`]) and a confusion-matrix heatmap ([`plot_confusion_matrix`]);
//! and pictures of what a model looks at ([`attribution`]): attribution
//! heat maps over images ([`plot_heatmaps`]) and feature importances with
//! error bars ([`plot_importances`]).
//!
//! Drawing is pure Rust (plotters): PNGs are encoded in-process and text is
//! laid out with ab_glyph from the DejaVu Sans font embedded in the binary,
//! so no system font, fontconfig or freetype is needed on any machine.

use std::path::{Path, PathBuf};
use std::sync::Once;

use lam_core::{Error, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::metrics::{roc_curve, ConfusionMatrix, RocCurve};
use crate::trainer::{History, Predictions};

pub mod attribution;

pub use attribution::{plot_heatmaps, plot_importances, Explained};

/// One named line: `(x, y)` points in order.
pub type Series<'a> = (&'a str, Vec<(f64, f64)>);

/// Writes the loss curves (`loss.png`, `loss.svg`) and, when the history has
/// them, the accuracy curves (`accuracy.png`, `accuracy.svg`) of a
/// classifier or the R² curves (`r2.png`, `r2.svg`) of a regression model
/// into `dir`, and returns the paths written.
pub fn plot_history(history: &History, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let mut written = Vec::new();
    let loss = [
        ("train loss", history.series(|r| Some(r.train_loss))),
        ("validation loss", history.series(|r| r.val_loss)),
    ];
    let acc = [
        ("train accuracy", history.series(|r| r.train_accuracy)),
        ("validation accuracy", history.series(|r| r.val_accuracy)),
    ];
    let r2 = [
        (
            "train R²",
            history.series(|r| r.train_regression.map(|s| s.r2)),
        ),
        (
            "validation R²",
            history.series(|r| r.val_regression.map(|s| s.r2)),
        ),
    ];
    for (name, title, series) in [
        ("loss", "Loss", &loss),
        ("accuracy", "Accuracy", &acc),
        ("r2", "R²", &r2),
    ] {
        let series: Vec<Series<'_>> = series
            .iter()
            .filter(|(_, s)| !s.is_empty())
            .cloned()
            .collect();
        if series.is_empty() {
            continue;
        }
        for ext in ["png", "svg"] {
            let path = dir.join(format!("{name}.{ext}"));
            plot_lines(&path, title, "epoch", name, &series)?;
            written.push(path);
        }
    }
    Ok(written)
}

/// Writes a classifier's confusion matrix (`confusion_matrix.png/.svg`) and
/// ROC curves (`roc.png/.svg`: one-vs-rest, one curve per class present;
/// for a binary model the one curve of class 1) into `dir`, and returns the
/// paths written.
pub fn plot_classification(predictions: &Predictions, dir: &Path) -> Result<Vec<PathBuf>> {
    let cm = ConfusionMatrix::new(&predictions.y_true, &predictions.y_pred)?;
    // Classes with no positive (or no negative) sample have no curve.
    let k = predictions.n_classes;
    let classes = if predictions.task.is_binary() {
        1..k
    } else {
        0..k
    };
    let curves: Vec<(String, RocCurve)> = classes
        .filter_map(|c| {
            let truth: Vec<bool> = predictions.y_true.iter().map(|&t| t == c as i32).collect();
            let col: Vec<f32> = predictions
                .probs
                .chunks(k.max(1))
                .map(|row| row[c])
                .collect();
            roc_curve(&truth, &col)
                .ok()
                .map(|r| (format!("class {c}"), r))
        })
        .collect();
    let named: Vec<(&str, &RocCurve)> = curves.iter().map(|(n, r)| (n.as_str(), r)).collect();
    let mut written = Vec::new();
    for ext in ["png", "svg"] {
        let path = dir.join(format!("confusion_matrix.{ext}"));
        plot_confusion_matrix(&path, &cm)?;
        written.push(path);
        if !named.is_empty() {
            let path = dir.join(format!("roc.{ext}"));
            plot_roc(&path, &named)?;
            written.push(path);
        }
    }
    Ok(written)
}

/// A line chart of `series` with a legend.
pub fn plot_lines(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series<'_>],
) -> Result<()> {
    let points = series.iter().flat_map(|(_, s)| s.iter());
    let (xs, ys): (Vec<f64>, Vec<f64>) = points
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .copied()
        .unzip();
    if xs.is_empty() {
        return Err(Error::invalid("plot_lines", "no finite points to plot"));
    }
    let (x0, x1) = padded(&xs, 0.0);
    let (y0, y1) = padded(&ys, 0.05);
    render(
        path,
        (800, 500),
        &Lines {
            title,
            x_label,
            y_label,
            series,
            x: x0..x1,
            y: y0..y1,
        },
    )
}

struct Lines<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    series: &'a [Series<'a>],
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
}

impl Figure for Lines<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Fallible {
        let mut chart = axes(root, self.title, self.x.clone(), self.y.clone())?;
        chart
            .configure_mesh()
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .draw()
            .map_err(text)?;
        for (i, (name, s)) in self.series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(s.iter().copied(), color.stroke_width(2)))
                .map_err(text)?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}

/// ROC curves (one per name) with the chance diagonal; the legend gives each AUC.
pub fn plot_roc(path: &Path, curves: &[(&str, &RocCurve)]) -> Result<()> {
    if curves.is_empty() {
        return Err(Error::invalid("plot_roc", "no curves to plot"));
    }
    let labelled = curves
        .iter()
        .map(|(name, c)| Ok((format!("{name} (AUC {:.3})", c.auc()?), *c)))
        .collect::<Result<Vec<_>>>()?;
    render(path, (600, 600), &Roc(labelled))
}

struct Roc<'a>(Vec<(String, &'a RocCurve)>);

impl Figure for Roc<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Fallible {
        let mut chart = axes(root, "ROC curve", -0.01..1.01, -0.01..1.01)?;
        chart
            .configure_mesh()
            .x_desc("false positive rate")
            .y_desc("true positive rate")
            .draw()
            .map_err(text)?;
        chart
            .draw_series(LineSeries::new(
                [(0.0, 0.0), (1.0, 1.0)],
                RGBColor(160, 160, 160).stroke_width(1),
            ))
            .map_err(text)?;
        for (i, (name, c)) in self.0.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let pts: Vec<(f64, f64)> = c.fpr.iter().copied().zip(c.tpr.iter().copied()).collect();
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(text)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    }
}

/// A heatmap of `cm` (rows: true label, top to bottom; columns: predicted),
/// shaded by each row's fraction, with the counts written in the cells.
pub fn plot_confusion_matrix(path: &Path, cm: &ConfusionMatrix) -> Result<()> {
    let n = cm.labels().len();
    if n == 0 {
        return Err(Error::invalid(
            "plot_confusion_matrix",
            "the matrix is empty",
        ));
    }
    let side = (60 * n as u32 + 160).clamp(360, 1200);
    render(path, (side, side), &Heatmap(cm))
}

struct Heatmap<'a>(&'a ConfusionMatrix);

impl Figure for Heatmap<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Fallible {
        let cm = self.0;
        let n = cm.labels().len();
        let frac = cm.normalized();
        let mut chart = axes(root, "Confusion matrix", 0.0..n as f64, 0.0..n as f64)?;
        // Labels sit at cell centres; rows run top to bottom.
        let label_at = |v: f64| -> String {
            let k = v.floor();
            if (v - k - 0.5).abs() < 1e-6 && (k as usize) < n {
                cm.labels()[k as usize].to_string()
            } else {
                String::new()
            }
        };
        let col_label = |v: &f64| label_at(*v);
        let row_label = |v: &f64| label_at(n as f64 - v);
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(2 * n + 1)
            .y_labels(2 * n + 1)
            .x_label_formatter(&col_label)
            .y_label_formatter(&row_label)
            .label_style(("sans-serif", 15))
            .x_desc("predicted label")
            .y_desc("true label")
            .draw()
            .map_err(text)?;
        for (i, row) in cm.counts().iter().enumerate() {
            let y = (n - 1 - i) as f64;
            for (j, &count) in row.iter().enumerate() {
                let f = frac[i][j];
                let shade = |full: u8| (255.0 - f * (255.0 - full as f64)).round() as u8;
                let fill = RGBColor(shade(8), shade(48), shade(107));
                let x = j as f64;
                chart
                    .draw_series([Rectangle::new([(x, y), (x + 1.0, y + 1.0)], fill.filled())])
                    .map_err(text)?;
                let ink = if f > 0.5 { WHITE } else { BLACK };
                let style = ("sans-serif", 16)
                    .into_font()
                    .color(&ink)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                chart
                    .draw_series([Text::new(count.to_string(), (x + 0.5, y + 0.5), style)])
                    .map_err(text)?;
            }
        }
        Ok(())
    }
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A titled chart over the given ranges.
fn axes<'a, DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
) -> std::result::Result<Chart<'a, DB>, String> {
    ChartBuilder::on(root)
        .caption(title, ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(60)
        .build_cartesian_2d(x, y)
        .map_err(text)
}

fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    position: SeriesLabelPosition,
) -> Fallible {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(position)
        .draw()
        .map_err(text)
}

type Fallible = std::result::Result<(), String>;

/// Something drawable on any plotters backend.
trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Fallible;
}

/// Draws `figure` with the backend the extension asks for (`.png` or `.svg`).
fn render(path: &Path, size: (u32, u32), figure: &impl Figure) -> Result<()> {
    register_fonts();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    }
    let fail = |msg: String| Error::Io {
        path: path.display().to_string(),
        msg,
    };
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => {
            let root = BitMapBackend::new(path, size).into_drawing_area();
            root.fill(&WHITE).map_err(text).map_err(fail)?;
            figure.draw(&root).map_err(fail)?;
            root.present().map_err(text).map_err(fail)
        }
        Some("svg") => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            root.fill(&WHITE).map_err(text).map_err(fail)?;
            figure.draw(&root).map_err(fail)?;
            root.present().map_err(text).map_err(fail)
        }
        _ => Err(Error::invalid(
            "plot",
            format!("{}: the file name must end in .png or .svg", path.display()),
        )),
    }
}

/// Makes the embedded DejaVu Sans the "sans-serif" family (once).
fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Cannot fail for a valid TrueType file; if it did, text would be
        // missing and drawing would report the error.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// The range of `v`, widened by `pad` of its span (or by 1 when flat).
fn padded(v: &[f64], pad: f64) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = hi - lo;
    if span <= 0.0 {
        (lo - 1.0, hi + 1.0)
    } else {
        (lo - pad * span, hi + pad * span)
    }
}

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        msg: e.to_string(),
    }
}
