//! The messages an event file holds, as TensorBoard's protos define them
//! (`tensorboard/compat/proto/{event,summary,histogram,tensor}.proto` and
//! the hparams plugin's `plugin_data.proto`), encoded with [`Message`]
//! field by field in field-number order, as PyTorch's `SummaryWriter`
//! writes them:
//!
//! | value | `Summary.Value` fields |
//! |-------|------------------------|
//! | scalar | `tag` (1), `simple_value` (2) |
//! | image | `tag`, `image` (4): height, width, colorspace, PNG bytes |
//! | histogram | `tag`, `histo` (5): min, max, num, sum, sum of squares, bucket limits and counts |
//! | text | `tag + "/text_summary"`, `tensor` (8): one `DT_STRING`, `metadata` (9): plugin `text` |
//! | hparams | `_hparams_/experiment`, `.../session_start_info`, `.../session_end_info`: plugin `hparams` |

use lam_core::{Error, Result};

use super::proto::Message;

/// The first record of every event file.
pub(crate) fn file_version(wall_time: f64) -> Vec<u8> {
    Message::new()
        .double(1, wall_time)
        .string(3, "brain.Event:2")
        // source_metadata { writer }
        .message(10, Message::new().string(1, "lam"))
        .into_bytes()
}

/// An `Event` holding one `Summary` of `values`.
pub(crate) fn event(wall_time: f64, step: i64, values: Vec<Message>) -> Vec<u8> {
    let summary = values
        .into_iter()
        .fold(Message::new(), |s, v| s.message(1, v));
    Message::new()
        .double(1, wall_time)
        .int(2, step)
        .message(5, summary)
        .into_bytes()
}

pub(crate) fn scalar(tag: &str, value: f32) -> Message {
    Message::new().string(1, tag).float(2, value)
}

/// `colorspace`: 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA.
pub(crate) fn image(tag: &str, height: u32, width: u32, colorspace: u32, png: &[u8]) -> Message {
    let image = Message::new()
        .int(1, i64::from(height))
        .int(2, i64::from(width))
        .int(3, i64::from(colorspace))
        .bytes(4, png, false);
    Message::new().string(1, tag).message(4, image)
}

pub(crate) fn histogram(tag: &str, h: &Histogram) -> Message {
    let histo = Message::new()
        .double(1, h.min)
        .double(2, h.max)
        .double(3, h.num)
        .double(4, h.sum)
        .double(5, h.sum_squares)
        .packed_doubles(6, &h.bucket_limit)
        .packed_doubles(7, &h.bucket);
    Message::new().string(1, tag).message(5, histo)
}

pub(crate) fn text(tag: &str, text: &str) -> Message {
    const DT_STRING: i64 = 7;
    let shape = Message::new().message(2, Message::new().int(1, 1));
    let tensor = Message::new()
        .int(1, DT_STRING)
        .message(2, shape)
        .bytes(8, text.as_bytes(), true);
    Message::new()
        .string(1, &format!("{tag}/text_summary"))
        .message(8, tensor)
        .message(9, plugin("text", &[]))
}

/// A hyper-parameter's value.
#[derive(Debug, Clone, PartialEq)]
pub enum HParam {
    /// A number (learning rate, hidden size).
    Number(f64),
    /// A word (optimizer name).
    Text(String),
    /// A switch.
    Bool(bool),
}

/// The hparams plugin's three summaries: the experiment (each
/// hyper-parameter's name and type, each metric's tag), the session's
/// values, and its end (status success).
pub(crate) fn hparams(values: &[(&str, HParam)], metrics: &[&str]) -> Vec<Message> {
    // DataType: 1 string, 2 bool, 3 float64.
    let infos = values.iter().fold(Message::new(), |m, (name, v)| {
        let kind = match v {
            HParam::Text(_) => 1,
            HParam::Bool(_) => 2,
            HParam::Number(_) => 3,
        };
        m.message(4, Message::new().string(1, name).int(4, kind))
    });
    let experiment = metrics.iter().fold(infos, |m, tag| {
        m.message(5, Message::new().message(1, Message::new().string(2, tag)))
    });
    let session = values.iter().fold(Message::new(), |m, (name, v)| {
        // google.protobuf.Value: number 2, string 3, bool 4.
        let value = match v {
            HParam::Number(x) => Message::new().double(2, *x),
            HParam::Text(s) => Message::new().bytes(3, s.as_bytes(), true),
            HParam::Bool(b) => Message::new().int(4, i64::from(*b)),
        };
        m.message(1, Message::new().string(1, name).message(2, value))
    });
    let end = Message::new().int(1, 1);
    [
        ("experiment", Message::new().message(2, experiment)),
        ("session_start_info", Message::new().message(3, session)),
        ("session_end_info", Message::new().message(4, end)),
    ]
    .into_iter()
    .map(|(what, content)| {
        Message::new()
            .string(1, &format!("_hparams_/{what}"))
            .message(9, plugin("hparams", &content.into_bytes()))
    })
    .collect()
}

/// `SummaryMetadata { plugin_data { plugin_name, content } }`.
fn plugin(name: &str, content: &[u8]) -> Message {
    Message::new().message(1, Message::new().string(1, name).bytes(2, content, false))
}

/// A histogram as TensorBoard stores it: bucket `i` counts the values in
/// `(bucket_limit[i-1], bucket_limit[i]]`; the first bucket, empty, marks
/// the left edge (PyTorch's layout).
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// How many values.
    pub num: f64,
    /// Their sum.
    pub sum: f64,
    /// The sum of their squares.
    pub sum_squares: f64,
    /// Each bucket's right edge.
    pub bucket_limit: Vec<f64>,
    /// Each bucket's count.
    pub bucket: Vec<f64>,
}

impl Histogram {
    /// `bins` equal-width buckets from the smallest to the largest value
    /// (a unit-wide bucket around a constant), as `numpy.histogram` counts
    /// them: the last bucket includes its right edge.
    pub fn of(values: &[f32], bins: usize) -> Result<Histogram> {
        if values.is_empty() {
            return Err(Error::Empty { op: "histogram" });
        }
        if bins == 0 {
            return Err(Error::invalid("histogram", "bins must be ≥ 1"));
        }
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            return Err(Error::invalid(
                "histogram",
                format!("values must be finite, found {v}"),
            ));
        }
        let xs: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
        let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = if max > min {
            (min, max)
        } else {
            (min - 0.5, max + 0.5)
        };
        let width = (hi - lo) / bins as f64;
        let edges: Vec<f64> = (0..=bins).map(|i| lo + width * i as f64).collect();
        let mut counts = vec![0.0; bins + 1];
        for &x in &xs {
            let i = (((x - lo) / width).floor() as usize).min(bins - 1);
            counts[i + 1] += 1.0;
        }
        Ok(Histogram {
            min,
            max,
            num: xs.len() as f64,
            sum: xs.iter().sum(),
            sum_squares: xs.iter().map(|x| x * x).sum(),
            bucket_limit: edges,
            bucket: counts,
        })
    }
}
