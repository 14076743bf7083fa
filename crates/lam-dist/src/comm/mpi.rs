//! The MPI transport, for processes started by `mpirun`, `mpiexec` or
//! `srun`. MPI is initialised on the communication thread (thread level
//! `FUNNELED`: only that thread ever calls MPI) and finalised when the
//! communicator's last handle drops after a clean run.
//!
//! Sums are MPI's two halves of a ring all-reduce, reduce-scatter then
//! all-gather, on a buffer padded to a multiple of the world size: each
//! element is summed on exactly one rank and copied to the others, so every
//! rank holds the same bits whatever algorithm the MPI library picks.
//! Maxima are exact in any order and use `MPI_Allreduce`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lam_core::{Error, Result};
use mpi::collective::SystemOperation;
use mpi::datatype::Equivalence;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, *};

use super::worker::{Transport, Worker};
use super::{Communicator, Reduction};

/// MPI can be initialised once per process.
static STARTED: AtomicBool = AtomicBool::new(false);

/// The world communicator, on a new communication thread.
pub(crate) fn communicator(timeout: Duration) -> Result<Communicator> {
    if STARTED.swap(true, Ordering::SeqCst) {
        return Err(Error::Distributed(
            "MPI was already started in this process (it can be started once): keep the first \
             communicator for the program's life"
                .into(),
        ));
    }
    let (worker, rank, size) = Worker::spawn(Box::new(|| {
        let (universe, _level) = mpi::initialize_with_threading(mpi::Threading::Funneled)
            .ok_or_else(|| Error::Distributed("MPI could not be initialised".into()))?;
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        let transport = MpiTransport {
            world,
            _universe: universe,
        };
        Ok((Box::new(transport) as Box<dyn Transport>, rank, size))
    }))?;
    Ok(Communicator::new(
        rank,
        size,
        "mpi",
        timeout,
        Some(worker),
        None,
    ))
}

struct MpiTransport {
    world: SimpleCommunicator,
    // Dropped last: finalises MPI.
    _universe: mpi::environment::Universe,
}

impl MpiTransport {
    /// Ring all-reduce as reduce-scatter + all-gather (see the module docs).
    fn sum<T: Equivalence + Copy + Default>(&self, values: &mut [T]) -> Result<()> {
        let size = self.world.size() as usize;
        let chunk = values.len().div_ceil(size);
        if chunk > i32::MAX as usize {
            return Err(Error::Distributed(format!(
                "a sum of {} values exceeds what one MPI call can send",
                values.len()
            )));
        }
        let mut padded = vec![T::default(); chunk * size];
        padded[..values.len()].copy_from_slice(values);
        let mut mine = vec![T::default(); chunk];
        self.world
            .reduce_scatter_block_into(&padded[..], &mut mine[..], SystemOperation::sum());
        self.world.all_gather_into(&mine[..], &mut padded[..]);
        values.copy_from_slice(&padded[..values.len()]);
        Ok(())
    }
}

impl Transport for MpiTransport {
    fn sum_f32(&mut self, values: &mut [f32]) -> Result<()> {
        self.sum(values)
    }

    fn reduce_f64(&mut self, values: &mut [f64], op: Reduction) -> Result<()> {
        match op {
            Reduction::Sum => self.sum(values),
            Reduction::Max => {
                let mine = values.to_vec();
                self.world
                    .all_reduce_into(&mine[..], values, SystemOperation::max());
                Ok(())
            }
        }
    }

    fn broadcast(&mut self, bytes: &mut [u8], root: usize) -> Result<()> {
        self.world
            .process_at_rank(root as i32)
            .broadcast_into(bytes);
        Ok(())
    }
}
