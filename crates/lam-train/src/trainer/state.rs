//! What a run must remember across epochs and across a restart: the best
//! monitored value and its epoch, the early-stopping counter, the history
//! ([`RunState`], stored as metadata strings in `last.safetensors`), and
//! the best weights ([`Snapshot`], in memory and in `best.safetensors`).

use std::collections::BTreeMap;
use std::path::Path;

use lam_core::checkpoint::{load_tensors, save_model};
use lam_core::nn::Module;
use lam_core::{DType, Device, Error, Result, Tensor};

use super::history::History;

const HISTORY: &str = "lam_train.history";
const BEST: &str = "lam_train.best";
const BEST_EPOCH: &str = "lam_train.best_epoch";
const BAD_EPOCHS: &str = "lam_train.bad_epochs";
const STOPPED: &str = "lam_train.stopped";

/// The run's bookkeeping between epochs.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct RunState {
    pub(crate) history: History,
    pub(crate) best: Option<f64>,
    pub(crate) best_epoch: Option<u64>,
    pub(crate) bad_epochs: u64,
    pub(crate) stopped: bool,
}

impl RunState {
    /// As checkpoint metadata. Numbers use Rust's shortest round-trip form,
    /// so they read back bit for bit.
    pub(crate) fn to_metadata(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert(HISTORY.into(), self.history.to_jsonl());
        if let (Some(b), Some(e)) = (self.best, self.best_epoch) {
            m.insert(BEST.into(), b.to_string());
            m.insert(BEST_EPOCH.into(), e.to_string());
        }
        m.insert(BAD_EPOCHS.into(), self.bad_epochs.to_string());
        m.insert(STOPPED.into(), u8::from(self.stopped).to_string());
        m
    }

    /// Reads what [`RunState::to_metadata`] wrote; `path` names the file in errors.
    pub(crate) fn from_metadata(m: &BTreeMap<String, String>, path: &Path) -> Result<RunState> {
        let bad = |key: &str| Error::Format {
            path: path.display().to_string(),
            msg: format!("metadata `{key}` is missing or malformed: not a lam-train checkpoint"),
        };
        let history = m.get(HISTORY).ok_or_else(|| bad(HISTORY))?;
        let history = History::from_jsonl(history).map_err(|e| Error::Format {
            path: path.display().to_string(),
            msg: format!("metadata `{HISTORY}`: {e}"),
        })?;
        let parse_opt = |key: &str| -> Result<Option<String>> { Ok(m.get(key).cloned()) };
        // A NaN best would compare false against every epoch after it.
        let best = parse_opt(BEST)?
            .map(|s| {
                s.parse::<f64>()
                    .ok()
                    .filter(|v| !v.is_nan())
                    .ok_or_else(|| bad(BEST))
            })
            .transpose()?;
        let best_epoch = parse_opt(BEST_EPOCH)?
            .map(|s| s.parse::<u64>().map_err(|_| bad(BEST_EPOCH)))
            .transpose()?;
        let bad_epochs = m
            .get(BAD_EPOCHS)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(BAD_EPOCHS))?;
        let stopped = m
            .get(STOPPED)
            .map(|s| s == "1")
            .ok_or_else(|| bad(STOPPED))?;
        Ok(RunState {
            history,
            best,
            best_epoch,
            bad_epochs,
            stopped,
        })
    }
}

/// A host copy of a model's parameters and buffers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Snapshot(Vec<(String, Vec<usize>, HostData)>);

#[derive(Debug, Clone, PartialEq)]
enum HostData {
    F32(Vec<f32>),
    I32(Vec<i32>),
    F16(Vec<lam::f16>),
}

impl Snapshot {
    /// Copies `model`'s state now.
    pub(crate) fn take(model: &dyn Module) -> Result<Snapshot> {
        Snapshot::of(&model.state_dict())
    }

    /// Reads a `best.safetensors` written by [`Snapshot::save`].
    pub(crate) fn load(path: &Path, device: &Device) -> Result<Snapshot> {
        Snapshot::of(&load_tensors(path, device)?.tensors)
    }

    fn of(tensors: &[(String, Tensor)]) -> Result<Snapshot> {
        tensors
            .iter()
            .map(|(name, t)| {
                let data = match t.dtype() {
                    DType::F32 => HostData::F32(t.to_vec()?),
                    DType::I32 => HostData::I32(t.to_vec_i32()?),
                    DType::F16 => HostData::F16(t.to_vec_f16()?),
                };
                Ok((name.clone(), t.shape(), data))
            })
            .collect::<Result<_>>()
            .map(Snapshot)
    }

    /// Writes `model` (holding these values) as `best.safetensors`.
    pub(crate) fn save(model: &dyn Module, path: &Path) -> Result<()> {
        save_model(model, path)
    }

    /// Copies the values back into `model`, in place; every tensor must match.
    pub(crate) fn restore(&self, model: &dyn Module) -> Result<()> {
        let state = model.state_dict();
        let mut updates = Vec::with_capacity(state.len());
        for (name, target) in &state {
            let found = self.0.iter().find(|(n, _, _)| n == name);
            let Some((_, shape, data)) = found.filter(|(_, s, _)| s == target.dims()) else {
                return Err(Error::invalid(
                    "restore best weights",
                    format!(
                        "the saved weights have no tensor `{name}` of shape {:?}",
                        target.dims()
                    ),
                ));
            };
            let value = match data {
                HostData::F32(v) => Tensor::from_slice(v, shape, &target.device())?,
                HostData::I32(v) => Tensor::from_vec_i32(v.clone(), shape, &target.device())?,
                HostData::F16(v) => Tensor::from_f16(v, shape, &target.device())?,
            };
            updates.push((target.clone(), value));
        }
        for (target, value) in updates {
            target.set_data(&value)?;
        }
        Ok(())
    }
}
