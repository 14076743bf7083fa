//! TensorBoard logs: event files that `tensorboard --logdir DIR` shows,
//! written as PyTorch's `torch.utils.tensorboard.SummaryWriter` writes
//! them.
//!
//! - [`SummaryWriter`]: scalars, histograms (of weights and gradients),
//!   images (PNG plots and heat maps, or `[C, H, W]` tensors), text and
//!   hyper-parameters, one event file per writer.
//! - [`TensorBoardLogger`]: a trainer callback that logs each epoch.
//! - [`read_events`]: the events of a file, framing and CRCs checked.
//!
//! An event file (`events.out.tfevents.*`) is a sequence of TFRecords
//! ([`record`]: length, masked CRC-32C, data, masked CRC-32C), each an
//! `Event` protocol buffer (`summary.rs`, encoded by [`proto`]); the first
//! names the format (`brain.Event:2`).

mod logger;
pub mod proto;
mod read;
pub mod record;
mod summary;
mod writer;

pub use logger::TensorBoardLogger;
pub use read::{read_events, Event, Value, ValueData};
pub use summary::{HParam, Histogram};
pub use writer::{Clock, SummaryWriter};
