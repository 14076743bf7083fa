//! The tape frees what it no longer needs, as PyTorch's does: an op's result
//! is not kept alive by the ops that read it (only by the values their
//! gradient rules saved), and `backward` drops each rule, with what it saved,
//! as soon as it has run — so a second backward through the same graph is an
//! error unless the first one retained the graph.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use lam::prelude::*;
use lam::BackendStorage;

use crate::conformance;

/// Sets its flag when dropped: captured by a gradient rule, it tells when
/// the rule (and what it saved) was freed.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// `2 x`, recorded as a custom op whose rule holds a [`DropFlag`].
fn doubled(x: &Tensor, freed: &Arc<AtomicBool>) -> lam::Result<Tensor> {
    let flag = DropFlag(freed.clone());
    let y = lam::no_grad(|| x.mul_scalar(2.0))?;
    lam::autograd::custom_op("doubled", &y, &[x], move |g| {
        let _keep = &flag;
        Ok(vec![Some(g.mul_scalar(2.0)?)])
    })
}

/// A handle on a tensor's buffer that does not keep it alive.
fn buffer(t: &Tensor) -> Weak<dyn BackendStorage> {
    Arc::downgrade(&t.storage())
}

conformance!(
    results_read_by_later_ops_are_freed_with_their_handles,
    |dev| {
        let x = Tensor::rand(&[4, 5], dev)?.requires_grad_()?;
        // `+ 1` saves nothing for its gradient, so nothing but `a` holds `a`.
        let a = x.add_scalar(1.0)?;
        let a_buffer = buffer(&a);
        let b = a.add_scalar(1.0)?.mul_scalar(3.0)?;
        drop(a);
        assert!(
            a_buffer.upgrade().is_none(),
            "the graph kept an intermediate result no gradient rule saved"
        );
        b.sum(&[], false)?.backward()?;
        crate::common::close(&x.grad().expect("grad").to_vec()?, &[3.0; 20], 0.0);
        Ok(())
    }
);

conformance!(backward_frees_saved_values_as_it_goes, |dev| {
    let x = Tensor::rand(&[4, 5], dev)?.requires_grad_()?;
    // `exp` saves its output for its gradient.
    let e = x.exp()?;
    let saved = buffer(&e);
    let freed = Arc::new(AtomicBool::new(false));
    let loss = doubled(&e, &freed)?.sum(&[], false)?;
    drop(e);
    assert!(saved.upgrade().is_some(), "exp's rule keeps its output");
    // The leaf's hook runs after every rule of the pass: by then both rules
    // and what they saved are gone, though `loss` still holds the graph.
    let seen = Arc::new(AtomicBool::new(false));
    let (f, s) = (freed.clone(), seen.clone());
    x.register_post_accumulate_grad_hook(move |_| {
        s.store(f.load(Ordering::SeqCst), Ordering::SeqCst);
        Ok(())
    });
    loss.backward()?;
    assert!(seen.load(Ordering::SeqCst), "a rule outlived its run");
    assert!(
        saved.upgrade().is_none(),
        "exp's saved output outlived backward"
    );
    let want: Vec<f32> = x.exp()?.mul_scalar(2.0)?.to_vec()?;
    crate::common::close(&x.grad().expect("grad").to_vec()?, &want, 1e-6);
    Ok(())
});

conformance!(second_backward_needs_a_retained_graph, |dev| {
    let x = Tensor::rand(&[3], dev)?.requires_grad_()?;
    let freed = Arc::new(AtomicBool::new(false));
    let loss = doubled(&x.square()?, &freed)?.sum(&[], false)?;
    loss.backward_retain_graph()?;
    assert!(
        !freed.load(Ordering::SeqCst),
        "a retained graph lost a rule"
    );
    // A retained graph runs again, and the gradients accumulate.
    loss.backward()?;
    assert!(
        freed.load(Ordering::SeqCst),
        "the last backward kept its rules"
    );
    let want: Vec<f32> = x.mul_scalar(8.0)?.to_vec()?;
    crate::common::close(&x.grad().expect("grad").to_vec()?, &want, 1e-6);
    let err = loss
        .backward()
        .expect_err("a third backward through a freed graph");
    let msg = err.to_string();
    assert!(
        msg.contains("second time") && msg.contains("backward_retain_graph"),
        "{msg}"
    );
    // backward_with has the same two forms.
    let y = x.square()?;
    let g = Tensor::ones(&[3], dev)?;
    y.backward_with_retain_graph(&g)?;
    y.backward_with(&g)?;
    assert!(y.backward_with(&g).is_err());
    Ok(())
});

#[test]
fn dropping_a_long_unrolled_graph_does_not_overflow_the_stack() {
    use lam::DeviceExt;
    // Each step's node holds the one before: dropped recursively, a chain
    // this long would need far more stack than a test thread has.
    let x = Tensor::zeros(&[1], &Device::cpu())
        .and_then(|x| x.requires_grad_())
        .expect("leaf");
    let mut y = x.clone();
    for _ in 0..200_000 {
        y = y.add_scalar(1.0).expect("add");
    }
    drop(y);
}
