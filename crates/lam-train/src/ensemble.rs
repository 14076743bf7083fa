//! Ensembles of classifiers: several trained models voting on each sample.
//!
//! [`Ensemble`] combines its members' outputs by [`Voting::Soft`] (the
//! mean of their softmax probabilities) or [`Voting::Hard`] (each member
//! votes for its arg-max class; the class with most votes wins, ties going
//! to the smallest class index, as scikit-learn's `VotingClassifier`).
//! It is itself a [`Module`]: `forward` returns the log of the ensemble's
//! class probabilities, so `argmax`, accuracy and cross-entropy work on it
//! as on any classifier, and its members' parameters appear under `0.`,
//! `1.`, ... in its `state_dict`.
//!
//! Binary members — one logit per sample, `[N, 1]` or `[N]`, as trained
//! with BCEWithLogits — vote with their sigmoid probabilities (soft) or
//! their `logit > 0` classes (hard); `predict_proba` gives `[1 − p, p]`
//! rows as scikit-learn's, and `forward` the logit of `p` in the members'
//! shape, so the ensemble is scored and trained like its members.
//!
//! [`average_probabilities`] and [`majority_vote`] do the same on
//! predictions already computed on the host.

use lam_core::nn::{join, Entry, Module, Visit};
use lam_core::{no_grad, Error, Result, Tensor};

/// How members' outputs are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Voting {
    /// Average the members' softmax probabilities.
    Soft,
    /// Majority vote of the members' predicted classes.
    Hard,
}

/// Classifiers that vote (see the module docs).
pub struct Ensemble {
    members: Vec<Box<dyn Module>>,
    voting: Voting,
}

impl Ensemble {
    /// An ensemble of at least one member; each maps `x` to logits `[N, C]`.
    pub fn new(members: Vec<Box<dyn Module>>, voting: Voting) -> Result<Ensemble> {
        if members.is_empty() {
            return Err(Error::Empty {
                op: "Ensemble::new",
            });
        }
        Ok(Ensemble { members, voting })
    }

    /// The same members combined by `voting`.
    pub fn with_voting(mut self, voting: Voting) -> Ensemble {
        self.voting = voting;
        self
    }

    /// How the members are combined.
    pub fn voting(&self) -> Voting {
        self.voting
    }

    /// The members.
    pub fn members(&self) -> &[Box<dyn Module>] {
        &self.members
    }

    /// The combined class probabilities `[N, C]` (vote fractions for hard
    /// voting; `C = 2` for binary members).
    pub fn predict_proba(&self, x: &Tensor) -> Result<Tensor> {
        let outputs = self.outputs(x)?;
        match self.positive_probability(&outputs)? {
            Some(p) => Tensor::stack(&[p.neg()?.add_scalar(1.0)?, p], 1),
            None => self.combine(&outputs),
        }
    }

    /// The ensemble's class for each row of `x`.
    pub fn predict(&self, x: &Tensor) -> Result<Vec<i32>> {
        no_grad(|| self.predict_proba(x)?.argmax(-1, false)?.to_vec_i32())
    }

    /// The combined class probabilities of `[N, C]` member outputs.
    fn combine(&self, outputs: &[Tensor]) -> Result<Tensor> {
        let (n, c) = (outputs[0].dims()[0], outputs[0].dims()[1]);
        match self.voting {
            Voting::Soft => {
                let mut sum = outputs[0].softmax(-1)?;
                for o in &outputs[1..] {
                    sum = sum.add(&o.softmax(-1)?)?;
                }
                sum.div_scalar(outputs.len() as f32)
            }
            Voting::Hard => {
                let votes = outputs
                    .iter()
                    .map(|o| o.argmax(-1, false)?.to_vec_i32())
                    .collect::<Result<Vec<_>>>()?;
                let mut frac = vec![0.0f32; n * c];
                for member in &votes {
                    for (i, &k) in member.iter().enumerate() {
                        frac[i * c + k as usize] += 1.0 / votes.len() as f32;
                    }
                }
                Tensor::from_vec(frac, &[n, c], &outputs[0].device())
            }
        }
    }

    /// Every member's output for `x`, checked to be `[N, C]` logits or one
    /// logit per sample, the same for all members.
    fn outputs(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let outputs = self
            .members
            .iter()
            .map(|m| m.forward(x))
            .collect::<Result<Vec<_>>>()?;
        let first = outputs[0].dims().to_vec();
        if !matches!(first.as_slice(), [_] | [_, _]) {
            return Err(Error::shape(
                "Ensemble",
                "member outputs of shape [N, C] or [N] (one logit per sample)",
                &first,
            ));
        }
        if let Some(o) = outputs.iter().find(|o| o.dims() != first) {
            return Err(Error::shape(
                "Ensemble",
                format!("every member to output {first:?}"),
                o.dims(),
            ));
        }
        Ok(outputs)
    }

    /// For binary members (one logit per sample), the ensemble's
    /// probability of class 1, `[N]`: the mean sigmoid (soft) or the
    /// fraction of members whose logit is > 0 (hard). `None` for `[N, C ≥ 2]`.
    fn positive_probability(&self, outputs: &[Tensor]) -> Result<Option<Tensor>> {
        let n = outputs[0].dims()[0];
        if outputs[0].numel() != n {
            return Ok(None);
        }
        let mut sum: Option<Tensor> = None;
        for o in outputs {
            let o = o.reshape(&[n as isize])?;
            let p = match self.voting {
                Voting::Soft => o.sigmoid()?,
                Voting::Hard => o.gt_scalar(0.0)?,
            };
            sum = Some(match sum {
                Some(s) => s.add(&p)?,
                None => p,
            });
        }
        let Some(sum) = sum else {
            return Ok(None);
        };
        sum.div_scalar(outputs.len() as f32).map(Some)
    }
}

impl Module for Ensemble {
    /// `log` of the ensemble's probabilities (clamped away from 0); for
    /// binary members the logit of the probability of class 1, in the
    /// members' output shape.
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        let outputs = self.outputs(input)?;
        if let Some(p) = self.positive_probability(&outputs)? {
            // Clamped so that unanimous hard votes give a finite logit (±16).
            let p = p.clamp(1e-7, 1.0 - 1e-7)?;
            let logit = p.log()?.sub(&p.neg()?.add_scalar(1.0)?.log()?)?;
            let shape: Vec<isize> = outputs[0].dims().iter().map(|&d| d as isize).collect();
            return logit.reshape(&shape);
        }
        self.combine(&outputs)?.clamp(1e-12, 1.0)?.log()
    }
}

impl Visit for Ensemble {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        for (i, m) in self.members.iter().enumerate() {
            m.visit(&join(prefix, &i.to_string()), f);
        }
    }
}

/// The mean of several `[N, C]` row-major probability tables.
pub fn average_probabilities(tables: &[Vec<f32>]) -> Result<Vec<f32>> {
    let Some(first) = tables.first() else {
        return Err(Error::Empty {
            op: "average_probabilities",
        });
    };
    if let Some(t) = tables.iter().find(|t| t.len() != first.len()) {
        return Err(Error::invalid(
            "average_probabilities",
            format!("tables of {} and {} values", first.len(), t.len()),
        ));
    }
    let k = tables.len() as f64;
    Ok((0..first.len())
        .map(|i| (tables.iter().map(|t| t[i] as f64).sum::<f64>() / k) as f32)
        .collect())
}

/// The most-voted class per sample among several members' predictions
/// (classes `0..n_classes`; ties go to the smallest class).
pub fn majority_vote(predictions: &[Vec<i32>], n_classes: usize) -> Result<Vec<i32>> {
    let Some(first) = predictions.first() else {
        return Err(Error::Empty {
            op: "majority_vote",
        });
    };
    if predictions.iter().any(|p| p.len() != first.len()) {
        return Err(Error::invalid(
            "majority_vote",
            "members predicted different numbers of samples",
        ));
    }
    let mut out = Vec::with_capacity(first.len());
    for i in 0..first.len() {
        let mut counts = vec![0usize; n_classes];
        for p in predictions {
            let k = p[i];
            if k < 0 || k as usize >= n_classes {
                return Err(Error::invalid(
                    "majority_vote",
                    format!("class {k} is outside 0..{n_classes}"),
                ));
            }
            counts[k as usize] += 1;
        }
        let best = counts
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)));
        out.push(best.map_or(0, |(k, _)| k as i32));
    }
    Ok(out)
}
