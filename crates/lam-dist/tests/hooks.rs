//! The autograd extension points lam-dist is built on (lam-core's
//! post-accumulate-grad hooks, end-of-backward callbacks and custom ops).

use std::sync::{Arc, Mutex};

use lam::autograd::{custom_op, queue_callback};
use lam::prelude::*;

fn leaf(values: &[f32]) -> Tensor {
    Tensor::from_vec(values.to_vec(), &[values.len()], &Device::cpu())
        .unwrap()
        .requires_grad_()
        .unwrap()
}

#[test]
fn a_hook_sees_the_leafs_summed_gradient_once_before_earlier_layers_finish() {
    let (w1, w2) = (leaf(&[1.0, 2.0]), leaf(&[3.0, 4.0]));
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let first = w1.clone();
    let _h2 = w2.register_post_accumulate_grad_hook(move |t| {
        // w2 is read twice; its hook runs once, with both contributions,
        // while w1 (read earlier in the forward pass) has no gradient yet.
        l.lock()
            .unwrap()
            .push(("w2", t.grad().unwrap().to_vec()?, first.grad().is_none()));
        Ok(())
    });
    let l = log.clone();
    let _h1 = w1.register_post_accumulate_grad_hook(move |t| {
        l.lock()
            .unwrap()
            .push(("w1", t.grad().unwrap().to_vec()?, true));
        Ok(())
    });
    let h = w1.mul_scalar(2.0).unwrap();
    let y = h.mul(&w2).unwrap().add(&w2).unwrap().sum_all().unwrap();
    y.backward().unwrap();
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0], ("w2", vec![3.0, 5.0], true));
    assert_eq!(log[1], ("w1", vec![6.0, 8.0], true));
}

#[test]
fn callbacks_run_after_every_hook_and_only_inside_backward() {
    assert!(queue_callback(|| Ok(())).is_err());
    let w = leaf(&[1.0]);
    let log = Arc::new(Mutex::new(Vec::<&str>::new()));
    let l = log.clone();
    let handle = w.register_post_accumulate_grad_hook(move |_| {
        l.lock().unwrap().push("hook");
        let l = l.clone();
        queue_callback(move || {
            l.lock().unwrap().push("callback");
            Ok(())
        })
    });
    w.mul_scalar(3.0)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(*log.lock().unwrap(), vec!["hook", "callback"]);
    handle.remove();
    w.mul_scalar(3.0)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(log.lock().unwrap().len(), 2, "a removed hook ran");
}

#[test]
fn an_error_from_a_callback_is_backwards_error() {
    let w = leaf(&[1.0]);
    let _h = w.register_post_accumulate_grad_hook(|_| {
        queue_callback(|| Err(Error::Distributed("peer lost".into())))
    });
    let e = w
        .sum_all()
        .unwrap()
        .mul_scalar(1.0)
        .unwrap()
        .backward()
        .unwrap_err();
    assert!(e.to_string().contains("peer lost"), "{e}");
}

#[test]
fn a_custom_op_uses_its_gradient_rule_and_checks_its_arity() {
    let x = leaf(&[1.0, 2.0]);
    let value = no_grad(|| x.mul_scalar(2.0)).unwrap();
    let y = custom_op("double", &value, &[&x], |g| {
        Ok(vec![Some(g.mul_scalar(2.0)?)])
    })
    .unwrap();
    assert_eq!(y.to_vec().unwrap(), vec![2.0, 4.0]);
    y.sum_all().unwrap().backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec().unwrap(), vec![2.0, 2.0]);

    let bad = custom_op("bad", &value, &[&x], |_| Ok(vec![])).unwrap();
    let e = bad.sum_all().unwrap().backward().unwrap_err();
    assert!(
        e.to_string().contains("returned 0 gradients for 1 inputs"),
        "{e}"
    );
}
