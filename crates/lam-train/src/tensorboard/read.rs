//! Reading event files back ([`read_events`]): every record's framing and
//! CRCs are checked, and the values lam writes (and PyTorch's scalars,
//! histograms, images, text and plugin summaries) are decoded. For tests,
//! and for programs that want the numbers of a logged run.

use std::path::Path;

use lam_core::{Error, Result};

use super::proto::{doubles, fields, Wire};
use super::record::unframe;
use super::summary::Histogram;
use super::writer::io_error;

/// One decoded `Event`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub wall_time: f64,
    /// The step.
    pub step: i64,
    /// `"brain.Event:2"` in a file's first event.
    pub file_version: Option<String>,
    /// The summary's values.
    pub values: Vec<Value>,
}

/// One `Summary.Value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// The tag.
    pub tag: String,
    /// What it holds.
    pub data: ValueData,
}

/// What a value holds.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueData {
    /// `simple_value`.
    Scalar(f32),
    /// `histo`.
    Histogram(Histogram),
    /// `image`: its size, colorspace and PNG bytes.
    Image {
        /// Height in pixels.
        height: u32,
        /// Width in pixels.
        width: u32,
        /// 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA.
        colorspace: u32,
        /// The encoded image.
        png: Vec<u8>,
    },
    /// A text summary's string.
    Text(String),
    /// Another plugin's summary (hparams): the plugin and its content.
    Plugin {
        /// The plugin's name.
        name: String,
        /// Its encoded content.
        content: Vec<u8>,
    },
    /// Anything else.
    Other,
}

/// Every event of an event file.
pub fn read_events(path: impl AsRef<Path>) -> Result<Vec<Event>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| io_error(path, &e))?;
    let name = path.display().to_string();
    unframe(&bytes, &name)?
        .into_iter()
        .enumerate()
        .map(|(i, record)| {
            event(record).map_err(|e| Error::Format {
                path: name.clone(),
                msg: format!("record {i}: {e}"),
            })
        })
        .collect()
}

fn event(bytes: &[u8]) -> Result<Event> {
    let mut e = Event {
        wall_time: 0.0,
        step: 0,
        file_version: None,
        values: Vec::new(),
    };
    for (field, w) in fields(bytes)? {
        match (field, w) {
            (1, Wire::Fixed64(b)) => e.wall_time = f64::from_bits(b),
            (2, Wire::Varint(v)) => e.step = v as i64,
            (3, Wire::Bytes(b)) => e.file_version = Some(string(b)),
            (5, Wire::Bytes(summary)) => {
                for (f, w) in fields(summary)? {
                    if let (1, Wire::Bytes(v)) = (f, w) {
                        e.values.push(value(v)?);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(e)
}

fn value(bytes: &[u8]) -> Result<Value> {
    let mut tag = String::new();
    let mut data = ValueData::Other;
    let mut plugin = None;
    for (field, w) in fields(bytes)? {
        match (field, w) {
            (1, Wire::Bytes(b)) => tag = string(b),
            (2, Wire::Fixed32(b)) => data = ValueData::Scalar(f32::from_bits(b)),
            (4, Wire::Bytes(b)) => data = image(b)?,
            (5, Wire::Bytes(b)) => data = ValueData::Histogram(histogram(b)?),
            (8, Wire::Bytes(b)) => data = text(b)?,
            (9, Wire::Bytes(b)) => plugin = plugin_data(b)?,
            _ => {}
        }
    }
    if let (ValueData::Other, Some((name, content))) = (&data, plugin) {
        data = ValueData::Plugin { name, content };
    }
    Ok(Value { tag, data })
}

fn image(bytes: &[u8]) -> Result<ValueData> {
    let (mut height, mut width, mut colorspace, mut png) = (0, 0, 0, Vec::new());
    for (field, w) in fields(bytes)? {
        match (field, w) {
            (1, Wire::Varint(v)) => height = v as u32,
            (2, Wire::Varint(v)) => width = v as u32,
            (3, Wire::Varint(v)) => colorspace = v as u32,
            (4, Wire::Bytes(b)) => png = b.to_vec(),
            _ => {}
        }
    }
    Ok(ValueData::Image {
        height,
        width,
        colorspace,
        png,
    })
}

fn histogram(bytes: &[u8]) -> Result<Histogram> {
    let mut h = Histogram {
        min: 0.0,
        max: 0.0,
        num: 0.0,
        sum: 0.0,
        sum_squares: 0.0,
        bucket_limit: Vec::new(),
        bucket: Vec::new(),
    };
    for (field, w) in fields(bytes)? {
        match (field, w) {
            (1, Wire::Fixed64(b)) => h.min = f64::from_bits(b),
            (2, Wire::Fixed64(b)) => h.max = f64::from_bits(b),
            (3, Wire::Fixed64(b)) => h.num = f64::from_bits(b),
            (4, Wire::Fixed64(b)) => h.sum = f64::from_bits(b),
            (5, Wire::Fixed64(b)) => h.sum_squares = f64::from_bits(b),
            (6, Wire::Bytes(b)) => h.bucket_limit.extend(doubles(b)),
            (6, Wire::Fixed64(b)) => h.bucket_limit.push(f64::from_bits(b)),
            (7, Wire::Bytes(b)) => h.bucket.extend(doubles(b)),
            (7, Wire::Fixed64(b)) => h.bucket.push(f64::from_bits(b)),
            _ => {}
        }
    }
    Ok(h)
}

/// The first `string_val` of a `TensorProto`.
fn text(bytes: &[u8]) -> Result<ValueData> {
    for (field, w) in fields(bytes)? {
        if let (8, Wire::Bytes(b)) = (field, w) {
            return Ok(ValueData::Text(string(b)));
        }
    }
    Ok(ValueData::Other)
}

/// `SummaryMetadata.plugin_data`'s name and content.
fn plugin_data(bytes: &[u8]) -> Result<Option<(String, Vec<u8>)>> {
    for (field, w) in fields(bytes)? {
        if let (1, Wire::Bytes(pd)) = (field, w) {
            let (mut name, mut content) = (String::new(), Vec::new());
            for (f, w) in fields(pd)? {
                match (f, w) {
                    (1, Wire::Bytes(b)) => name = string(b),
                    (2, Wire::Bytes(b)) => content = b.to_vec(),
                    _ => {}
                }
            }
            return Ok(Some((name, content)));
        }
    }
    Ok(None)
}

fn string(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
