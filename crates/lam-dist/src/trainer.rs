//! The [`Communicator`] as lam-train's [`Replicas`], so a `Trainer` runs as
//! one replica of the group: `Trainer::new(&ddp, &mut opt, loss).distributed(comm.clone())`.

use lam_core::nn::Module;
use lam_core::Result;
use lam_train::trainer::{Reduce, Replicas};

use crate::comm::{Communicator, Reduction};
use crate::ddp::state::broadcast_state;

impl Replicas for Communicator {
    fn rank(&self) -> usize {
        Communicator::rank(self)
    }

    fn world_size(&self) -> usize {
        Communicator::world_size(self)
    }

    fn reduce(&self, values: &mut [f64], op: Reduce) -> Result<()> {
        let op = match op {
            Reduce::Sum => Reduction::Sum,
            Reduce::Max => Reduction::Max,
        };
        let out = self.reduce_f64(values.to_vec(), op)?;
        values.copy_from_slice(&out);
        Ok(())
    }

    fn broadcast_model(&self, model: &dyn Module) -> Result<()> {
        broadcast_state(model, self)
    }

    fn abort(&self, reason: &str) {
        Communicator::abort(self, reason)
    }
}
