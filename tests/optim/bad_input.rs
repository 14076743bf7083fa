//! Bad hyper-parameters and parameter lists are errors, and a rejected
//! step changes nothing.

use lam::optim::{clip_grad_norm, clip_grad_value, Adagrad, Adam, AdamW, Optimizer, RmsProp, Sgd};
use lam::{Error, Result, Tensor};

use super::cpu;

#[test]
fn bad_hyper_parameters_and_parameter_lists_are_errors() -> Result<()> {
    let dev = cpu();
    let p = Tensor::ones(&[2], &dev)?.requires_grad_()?;
    p.set_grad(Some(Tensor::ones(&[2], &dev)?))?;
    let ps = vec![p.clone()];
    let msg = |r: Result<()>| r.unwrap_err().to_string();
    assert!(msg(Sgd::new(ps.clone(), -0.1)?.step()).contains("lr"));
    assert!(msg(Sgd::new(ps.clone(), 0.1)?.nesterov(true).step()).contains("momentum"));
    assert!(msg(Sgd::new(ps.clone(), 0.1)?
        .momentum(0.9)
        .dampening(0.1)
        .nesterov(true)
        .step())
    .contains("dampening"));
    assert!(msg(Adam::new(ps.clone(), 0.1)?.betas(1.0, 0.999).step()).contains("beta1"));
    assert!(msg(AdamW::new(ps.clone(), 0.1)?.eps(f32::NAN).step()).contains("eps"));
    assert!(msg(RmsProp::new(ps.clone(), 0.1)?.alpha(-1.0).step()).contains("alpha"));
    assert!(msg(Adagrad::new(ps.clone(), 0.1)?.lr_decay(-1.0).step()).contains("lr_decay"));
    assert!(msg(Adam::new(ps.clone(), 0.1)?.l1(-1.0).step()).contains("l1"));
    assert_eq!(
        p.to_vec()?,
        vec![1.0, 1.0],
        "a rejected step changed the parameter"
    );
    assert!(Sgd::new(vec![], 0.1).is_err());
    assert!(Adam::new(vec![p.clone(), p.clone()], 0.1)
        .unwrap_err()
        .to_string()
        .contains("more than once"));
    let labels = Tensor::from_vec_i32(vec![1], &[1], &dev)?;
    assert!(matches!(
        Sgd::new(vec![labels], 0.1),
        Err(Error::DTypeMismatch { .. })
    ));
    assert!(clip_grad_norm(&ps, 1.0, 0.0).is_err());
    assert!(clip_grad_norm(&ps, -1.0, 2.0).is_err());
    assert!(clip_grad_value(&ps, -1.0).is_err());
    // No gradients at all: a total norm of 0 and nothing to clip.
    p.zero_grad();
    assert_eq!(clip_grad_norm(&ps, 1.0, 2.0)?.item()?, 0.0);
    Ok(())
}
