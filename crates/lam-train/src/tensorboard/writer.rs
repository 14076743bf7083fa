//! [`SummaryWriter`]: PyTorch's `torch.utils.tensorboard.SummaryWriter`
//! for lam — one event file per writer in a log directory, each value
//! written (and flushed) as it is added, so TensorBoard shows a run while
//! it trains.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use lam_core::{Error, Result, Tensor};

use super::proto::Message;
use super::record::frame;
use super::summary::{self, HParam, Histogram};

/// The clock that stamps each event (seconds since the Unix epoch).
pub type Clock = Box<dyn FnMut() -> f64 + Send>;

/// Writes TensorBoard event files (see the module docs).
pub struct SummaryWriter {
    path: PathBuf,
    file: File,
    clock: Clock,
}

impl SummaryWriter {
    /// A new event file in `log_dir` (created if needed), named as
    /// TensorFlow names them: `events.out.tfevents.<seconds>.<host>.<pid>.<n>`.
    pub fn new(log_dir: impl AsRef<Path>) -> Result<SummaryWriter> {
        SummaryWriter::with_clock(log_dir, Box::new(now))
    }

    /// As [`SummaryWriter::new`], with events stamped by `clock` (for
    /// reproducible files).
    pub fn with_clock(log_dir: impl AsRef<Path>, mut clock: Clock) -> Result<SummaryWriter> {
        static WRITERS: AtomicUsize = AtomicUsize::new(0);
        let dir = log_dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, &e))?;
        let started = clock();
        let name = format!(
            "events.out.tfevents.{}.{}.{}.{}",
            started as u64,
            host_name(),
            std::process::id(),
            WRITERS.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        let file = File::create(&path).map_err(|e| io_error(&path, &e))?;
        let mut writer = SummaryWriter { path, file, clock };
        writer.write(&summary::file_version(started))?;
        Ok(writer)
    }

    /// The event file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A scalar (`add_scalar`), stored as a 32-bit float as TensorBoard does.
    pub fn add_scalar(&mut self, tag: &str, value: f64, step: i64) -> Result<()> {
        self.add(step, vec![summary::scalar(tag, value as f32)])
    }

    /// A histogram of `values` in 30 equal-width buckets (`add_histogram`).
    pub fn add_histogram(&mut self, tag: &str, values: &[f32], step: i64) -> Result<()> {
        self.add_histogram_with(tag, &Histogram::of(values, 30)?, step)
    }

    /// A histogram of a tensor's values (weights, gradients), on any device.
    pub fn add_histogram_tensor(&mut self, tag: &str, t: &Tensor, step: i64) -> Result<()> {
        self.add_histogram(tag, &t.to_vec()?, step)
    }

    /// A histogram already bucketed.
    pub fn add_histogram_with(&mut self, tag: &str, h: &Histogram, step: i64) -> Result<()> {
        self.add(step, vec![summary::histogram(tag, h)])
    }

    /// An image from a PNG file's bytes (a plot or heat map lam wrote).
    pub fn add_image_png(&mut self, tag: &str, png: &[u8], step: i64) -> Result<()> {
        let (width, height, colorspace) = png_header(png).ok_or_else(|| {
            Error::invalid(
                "add_image_png",
                format!("{tag}: the bytes are not a PNG image"),
            )
        })?;
        self.add(
            step,
            vec![summary::image(tag, height, width, colorspace, png)],
        )
    }

    /// An image from a PNG file.
    pub fn add_image_file(&mut self, tag: &str, path: impl AsRef<Path>, step: i64) -> Result<()> {
        let path = path.as_ref();
        let png = std::fs::read(path).map_err(|e| io_error(path, &e))?;
        self.add_image_png(tag, &png, step)
            .map_err(|_| Error::Format {
                path: path.display().to_string(),
                msg: "not a PNG image".into(),
            })
    }

    /// An image from a `[C, H, W]` tensor of values in `[0, 1]` with 1
    /// (grey), 3 (RGB) or 4 (RGBA) channels, as PyTorch's `add_image`.
    pub fn add_image(&mut self, tag: &str, image: &Tensor, step: i64) -> Result<()> {
        let dims = image.dims().to_vec();
        let (c, h, w) = match dims.as_slice() {
            &[c, h, w] if matches!(c, 1 | 3 | 4) && h > 0 && w > 0 => (c, h, w),
            _ => {
                return Err(Error::shape(
                    "add_image",
                    "[C, H, W] with C = 1, 3 or 4 and H, W ≥ 1",
                    &dims,
                ))
            }
        };
        let chw = image.to_vec()?;
        // [C, H, W] floats → [H, W, C] bytes, rounded as PyTorch does (×255, clipped).
        let mut pixels = vec![0u8; c * h * w];
        for (i, p) in pixels.iter_mut().enumerate() {
            let (y, x, ch) = (i / (w * c), i / c % w, i % c);
            *p = (chw[(ch * h + y) * w + x] * 255.0)
                .round()
                .clamp(0.0, 255.0) as u8;
        }
        let png = encode_png(&pixels, w as u32, h as u32, c)?;
        self.add_image_png(tag, &png, step)
    }

    /// Text, shown in TensorBoard's text tab (`add_text`; Markdown).
    pub fn add_text(&mut self, tag: &str, text: &str, step: i64) -> Result<()> {
        self.add(step, vec![summary::text(tag, text)])
    }

    /// One run's hyper-parameters and final metrics (`add_hparams`): the
    /// hparams plugin's records, then each metric as a scalar at step 0, so
    /// TensorBoard's HPARAMS tab lists the run with its values.
    pub fn add_hparams(
        &mut self,
        hparams: &[(&str, HParam)],
        metrics: &[(&str, f64)],
    ) -> Result<()> {
        let tags: Vec<&str> = metrics.iter().map(|(t, _)| *t).collect();
        for value in summary::hparams(hparams, &tags) {
            self.add(0, vec![value])?;
        }
        for (tag, v) in metrics {
            self.add_scalar(tag, *v, 0)?;
        }
        Ok(())
    }

    /// Several values in one event.
    fn add(&mut self, step: i64, values: Vec<Message>) -> Result<()> {
        let wall_time = (self.clock)();
        self.write(&summary::event(wall_time, step, values))
    }

    fn write(&mut self, event: &[u8]) -> Result<()> {
        self.file
            .write_all(&frame(event))
            .map_err(|e| io_error(&self.path, &e))
    }
}

/// Seconds since the Unix epoch.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn host_name() -> String {
    let name = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .unwrap_or_default();
    let clean: String = name
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .collect();
    if clean.is_empty() {
        "localhost".into()
    } else {
        clean
    }
}

/// `(width, height, colorspace)` from a PNG's IHDR chunk.
fn png_header(png: &[u8]) -> Option<(u32, u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if png.len() < 26 || &png[..8] != SIGNATURE || &png[12..16] != b"IHDR" {
        return None;
    }
    let word = |at: usize| u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]);
    // Colour types: 0 grey, 2 RGB, 3 palette (shown as RGB), 4 grey + alpha, 6 RGBA.
    let colorspace = match png[25] {
        0 => 1,
        4 => 2,
        2 | 3 => 3,
        6 => 4,
        _ => return None,
    };
    Some((word(16), word(20), colorspace))
}

fn encode_png(pixels: &[u8], width: u32, height: u32, channels: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(match channels {
        1 => png::ColorType::Grayscale,
        3 => png::ColorType::Rgb,
        _ => png::ColorType::Rgba,
    });
    encoder.set_depth(png::BitDepth::Eight);
    let fail = |e: png::EncodingError| Error::invalid("add_image", e.to_string());
    let mut writer = encoder.write_header().map_err(fail)?;
    writer.write_image_data(pixels).map_err(fail)?;
    writer.finish().map_err(fail)?;
    Ok(out)
}

pub(crate) fn io_error(path: &Path, e: &std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        msg: e.to_string(),
    }
}
