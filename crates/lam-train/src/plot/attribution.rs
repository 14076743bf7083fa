//! Pictures of attributions: [`plot_heatmaps`] draws each explained image
//! beside its attribution map (red where a pixel raised the explained
//! output, blue where it lowered it, white for nothing, each map scaled by
//! its largest magnitude), and [`plot_importances`] draws feature
//! importances as horizontal bars, largest first, with ± one standard
//! deviation as error bars.

use std::path::Path;

use lam_core::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{axes, render, text, Fallible, Figure};

/// One image and its attribution, both `height × width` values, row-major.
#[derive(Debug, Clone, Copy)]
pub struct Explained<'a> {
    /// The panel's caption (true and predicted class, say).
    pub label: &'a str,
    /// The input, shown in grey from its smallest (black) to its largest (white) value.
    pub image: &'a [f32],
    /// The attribution of each pixel.
    pub attribution: &'a [f32],
}

/// One row per sample: the image, then its attribution map.
pub fn plot_heatmaps(
    path: &Path,
    height: usize,
    width: usize,
    samples: &[Explained<'_>],
) -> Result<()> {
    if samples.is_empty() || height == 0 || width == 0 {
        return Err(Error::invalid("plot_heatmaps", "nothing to draw"));
    }
    for s in samples {
        for (what, v) in [("image", s.image), ("attribution", s.attribution)] {
            if v.len() != height * width {
                return Err(Error::invalid(
                    "plot_heatmaps",
                    format!(
                        "{}: the {what} has {} values, a {height}×{width} picture needs {}",
                        s.label,
                        v.len(),
                        height * width
                    ),
                ));
            }
        }
    }
    let panel = 280u32;
    let size = (2 * panel, panel * samples.len() as u32);
    render(
        path,
        size,
        &HeatMaps {
            height,
            width,
            samples,
        },
    )
}

struct HeatMaps<'a> {
    height: usize,
    width: usize,
    samples: &'a [Explained<'a>],
}

impl Figure for HeatMaps<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Fallible {
        let rows = root.split_evenly((self.samples.len(), 2));
        for (s, pair) in self.samples.iter().zip(rows.chunks(2)) {
            let scale = s.image.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let floor = s.image.iter().copied().fold(f32::INFINITY, f32::min);
            let span = if scale > floor { scale - floor } else { 1.0 };
            let grey = |v: f32| {
                let g = (255.0 * (v - floor) / span).round().clamp(0.0, 255.0) as u8;
                RGBColor(g, g, g)
            };
            self.pixels(&pair[0], s.label, s.image, grey)?;
            let peak = s.attribution.iter().fold(0.0f32, |m, a| m.max(a.abs()));
            let peak = if peak > 0.0 { peak } else { 1.0 };
            let diverging = |a: f32| {
                let t = (a.abs() / peak).min(1.0);
                let fade = (255.0 * (1.0 - t)).round() as u8;
                if a >= 0.0 {
                    RGBColor(255, fade, fade)
                } else {
                    RGBColor(fade, fade, 255)
                }
            };
            self.pixels(&pair[1], "attribution", s.attribution, diverging)?;
        }
        Ok(())
    }
}

impl HeatMaps<'_> {
    /// `values` as a grid of cells, row 0 at the top.
    fn pixels<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        title: &str,
        values: &[f32],
        color: impl Fn(f32) -> RGBColor,
    ) -> Fallible {
        let (h, w) = (self.height as f64, self.width as f64);
        let mut chart = axes(area, title, 0.0..w, 0.0..h)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .disable_axes()
            .draw()
            .map_err(text)?;
        let cells = values.iter().enumerate().map(|(i, &v)| {
            let (row, col) = ((i / self.width) as f64, (i % self.width) as f64);
            Rectangle::new(
                [(col, h - row - 1.0), (col + 1.0, h - row)],
                color(v).filled(),
            )
        });
        chart.draw_series(cells).map_err(text)?;
        Ok(())
    }
}

/// Horizontal bars of `mean` per feature, largest at the top, with error
/// bars of ± `std` (permutation importances, say).
pub fn plot_importances(
    path: &Path,
    title: &str,
    names: &[&str],
    mean: &[f64],
    std: &[f64],
) -> Result<()> {
    if names.is_empty() || names.len() != mean.len() || names.len() != std.len() {
        return Err(Error::invalid(
            "plot_importances",
            format!(
                "need one mean and one std per feature: {} names, {} means, {} stds",
                names.len(),
                mean.len(),
                std.len()
            ),
        ));
    }
    if let Some(v) = mean.iter().chain(std).find(|v| !v.is_finite()) {
        return Err(Error::invalid(
            "plot_importances",
            format!("values must be finite, found {v}"),
        ));
    }
    let mut order: Vec<usize> = (0..names.len()).collect();
    // Drawn bottom-up: smallest first, so the largest ends on top.
    order.sort_by(|&a, &b| mean[a].total_cmp(&mean[b]));
    let bars: Vec<(&str, f64, f64)> = order.iter().map(|&i| (names[i], mean[i], std[i])).collect();
    let height = (28 * bars.len() as u32 + 140).clamp(300, 1400);
    render(path, (760, height), &Bars { title, bars })
}

struct Bars<'a> {
    title: &'a str,
    bars: Vec<(&'a str, f64, f64)>,
}

impl Figure for Bars<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Fallible {
        let lo = self.bars.iter().map(|(_, m, s)| m - s).fold(0.0, f64::min);
        let hi = self.bars.iter().map(|(_, m, s)| m + s).fold(0.0, f64::max);
        let pad = 0.05 * (hi - lo).max(1e-12);
        let n = self.bars.len();
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, ("sans-serif", 24))
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(230)
            .build_cartesian_2d(lo - pad..hi + pad, 0.0..n as f64)
            .map_err(text)?;
        let label = |v: &f64| {
            let k = v.floor();
            if (v - k - 0.5).abs() < 1e-6 && (k as usize) < n {
                self.bars[k as usize].0.to_string()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(2 * n + 1)
            .y_label_formatter(&label)
            .x_desc("importance")
            .draw()
            .map_err(text)?;
        let fill = RGBColor(70, 130, 180);
        for (i, (_, m, s)) in self.bars.iter().enumerate() {
            let y = i as f64;
            chart
                .draw_series([Rectangle::new(
                    [(0.0, y + 0.15), (*m, y + 0.85)],
                    fill.filled(),
                )])
                .map_err(text)?;
            let (a, b, mid) = (m - s, m + s, y + 0.5);
            let ink = BLACK.stroke_width(2);
            chart
                .draw_series([
                    PathElement::new(vec![(a, mid), (b, mid)], ink),
                    PathElement::new(vec![(a, mid - 0.2), (a, mid + 0.2)], ink),
                    PathElement::new(vec![(b, mid - 0.2), (b, mid + 0.2)], ink),
                ])
                .map_err(text)?;
        }
        Ok(())
    }
}
