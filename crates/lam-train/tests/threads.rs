//! Training jobs move between threads: a `Trainer`, its optimizer (also as
//! a `Box<dyn Optimizer>`), scheduler, callbacks and loss are `Send`, and a
//! job run on a worker thread ends exactly where it ends on the caller's.

mod common;

use common::{blobs, cpu, weight_bits, Mlp};
use lam::loss::cross_entropy;
use lam::nn::Module;
use lam::optim::{Adam, Optimizer, Scheduler, Sgd, StepLr};
use lam::prelude::*;
use lam_train::data::DataLoader;
use lam_train::trainer::*;

fn require_send<T: Send>() {}

/// Fails to compile, rather than to run, if any of these loses `Send`.
#[test]
fn training_types_are_send() {
    require_send::<Trainer<'static>>();
    require_send::<Box<dyn Optimizer>>();
    require_send::<Box<dyn Scheduler>>();
    require_send::<Box<dyn Callback>>();
    require_send::<LossFn<'static>>();
    require_send::<DataLoader>();
    require_send::<FitReport>();
}

/// Counts finished epochs (a callback with state, moved along with its trainer).
struct Epochs(u64);

impl Callback for Epochs {
    fn on_epoch_end(&mut self, _record: &EpochRecord) -> Result<Control> {
        self.0 += 1;
        Ok(Control::Continue)
    }
}

/// A copy of `model`: same shapes, same values.
fn twin(model: &Mlp, dev: &Device) -> Result<Mlp> {
    let copy = Mlp::new(2, 8, 3, dev)?;
    for ((_, to), (_, from)) in copy.state_dict().iter().zip(model.state_dict()) {
        to.set_data(&from.detach().add_scalar(0.0)?)?;
    }
    Ok(copy)
}

fn config() -> TrainConfig {
    TrainConfig {
        epochs: 4,
        seed: 9,
        quiet: true,
        ..TrainConfig::default()
    }
}

#[test]
fn a_trainer_built_here_trains_on_a_spawned_thread() -> Result<()> {
    let dev = cpu();
    let train = DataLoader::new(blobs(20, 4), 8, &dev)?
        .shuffle(true)
        .seed(3);
    let here = Mlp::new(2, 8, 3, &dev)?;
    let there = twin(&here, &dev)?;
    assert_eq!(weight_bits(&here), weight_bits(&there));

    let mut opt_here = Adam::new(here.parameters(), 0.02)?;
    let report_here = Trainer::new(&here, &mut opt_here, cross_entropy)
        .config(config())
        .scheduler(StepLr::new(0.02, 2, 0.5)?)
        .fit(&train, None)?;

    // Built on this thread, moved whole into another, run there.
    let mut opt_there: Box<dyn Optimizer> = Box::new(Adam::new(there.parameters(), 0.02)?);
    let mut epochs = Epochs(0);
    let trainer = Trainer::new(&there, opt_there.as_mut(), cross_entropy)
        .config(config())
        .scheduler(StepLr::new(0.02, 2, 0.5)?)
        .callback(&mut epochs);
    let report_there = std::thread::scope(|s| {
        let job = s.spawn(move || {
            let mut trainer = trainer;
            trainer.fit(&train, None)
        });
        job.join().expect("the training thread does not panic")
    })?;

    assert_eq!(epochs.0, 4);
    assert_eq!(weight_bits(&there), weight_bits(&here));
    assert_eq!(opt_there.lr(), opt_here.lr());
    let losses =
        |r: &FitReport| -> Vec<f64> { r.history.records.iter().map(|e| e.train_loss).collect() };
    assert_eq!(losses(&report_there), losses(&report_here));
    Ok(())
}

#[test]
fn an_owned_job_runs_on_a_detached_thread() -> Result<()> {
    let dev = cpu();
    let model = Mlp::new(2, 8, 3, &dev)?;
    let opt: Box<dyn Optimizer> = Box::new(Sgd::new(model.parameters(), 0.1)?.momentum(0.9));
    let before = weight_bits(&model);
    // Model, optimizer and data move into a 'static thread and come back.
    let job = std::thread::spawn(move || -> Result<(Mlp, Box<dyn Optimizer>, FitReport)> {
        let mut opt = opt;
        let train = DataLoader::new(blobs(20, 5), 8, &dev)?;
        let report = Trainer::new(&model, opt.as_mut(), cross_entropy)
            .config(config())
            .fit(&train, None)?;
        Ok((model, opt, report))
    });
    let (model, opt, report) = job.join().expect("the training thread does not panic")?;
    assert_eq!(report.history.records.len(), 4);
    let h = &report.history.records;
    assert!(h[3].train_loss < h[0].train_loss, "{h:?}");
    assert_ne!(weight_bits(&model), before);
    assert_eq!(opt.params().len(), 4);
    Ok(())
}
