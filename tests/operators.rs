//! The arithmetic operators and the reduction spellings are the named ops
//! under PyTorch's syntax: same values, same gradients, same errors.

use lam::prelude::*;

fn t(data: &[f32], shape: &[usize]) -> Result<Tensor> {
    Tensor::from_vec(data.to_vec(), shape, &Device::cpu())
}

#[test]
fn operators_equal_the_named_ops() -> Result<()> {
    let a = t(&[1.0, -2.0, 3.5, 4.0, 0.5, -6.0], &[2, 3])?;
    let b = t(&[0.5, 2.0, -1.0], &[3])?; // broadcast over rows
    let same = |x: Result<Tensor>, y: Result<Tensor>| -> Result<()> {
        assert_eq!(x?.to_vec()?, y?.to_vec()?);
        Ok(())
    };
    same(&a + &b, a.add(&b))?;
    same(&a - &b, a.sub(&b))?;
    same(&a * &b, a.mul(&b))?;
    same(&a / &b, a.div(&b))?;
    same(a.clone() + b.clone(), a.add(&b))?;
    same(&a * b.clone(), a.mul(&b))?;
    same(a.clone() / &b, a.div(&b))?;
    same(-&a, a.neg())?;
    same(-a.clone(), a.neg())?;
    // Scalars: float and integer literals.
    same(&a + 1.5, a.add_scalar(1.5))?;
    same(&a - 2, a.sub_scalar(2.0))?;
    same(&a * 2.0, a.mul_scalar(2.0))?;
    same(&a / 4, a.div_scalar(4.0))?;
    same(2.0 * &a, a.mul_scalar(2.0))?;
    same(3 + &a, a.add_scalar(3.0))?;
    same(a.clone() * 0.5, a.mul_scalar(0.5))?;
    // Scalar first: `1 - x` and a true division `1 / x`, as PyTorch's.
    same(1.0 - &a, a.neg()?.add_scalar(1.0))?;
    let reciprocal = (1.0 / &b)?.to_vec()?;
    assert_eq!(reciprocal, vec![1.0 / 0.5, 1.0 / 2.0, 1.0 / -1.0]);
    let thirds = (1 / &t(&[3.0], &[1])?)?.to_vec()?;
    assert_eq!(thirds, vec![1.0_f32 / 3.0]);
    Ok(())
}

#[test]
fn operators_differentiate_like_the_ops() -> Result<()> {
    let x = t(&[1.0, 2.0, -3.0], &[3])?.requires_grad_()?;
    let w = t(&[0.5, -1.0, 2.0], &[3])?.requires_grad_()?;
    // y = sum((2x - w) * x / 4 + 1 - (-w))
    let y = ((&((&(&(2.0 * &x)? - &w)? * &x)? / 4)? + 1)? - &(-&w)?)?.sum_all()?;
    y.backward()?;
    // dy/dx = (4x - w) / 4, dy/dw = -x / 4 + 1
    let gx = x.grad().expect("x has a gradient").to_vec()?;
    let gw = w.grad().expect("w has a gradient").to_vec()?;
    assert_eq!(
        gx,
        vec![(4.0 - 0.5) / 4.0, (8.0 + 1.0) / 4.0, (-12.0 - 2.0) / 4.0]
    );
    assert_eq!(gw, vec![0.75, 0.5, 1.75]);
    Ok(())
}

#[test]
fn operators_return_errors_not_panics() -> Result<()> {
    let a = t(&[1.0; 6], &[2, 3])?;
    let b = t(&[1.0; 4], &[4])?;
    let err = (&a + &b).expect_err("shapes do not broadcast");
    assert!(err.to_string().contains("[4]"), "{err}");
    let ids = Tensor::from_vec_i32(vec![1, 2], &[2], &Device::cpu())?;
    assert_eq!(
        (&ids * 2.0).map(|_| ()).map_err(|e| e.to_string()),
        ids.mul_scalar(2.0).map(|_| ()).map_err(|e| e.to_string())
    );
    Ok(())
}

#[test]
fn reductions_take_one_dim_or_several() -> Result<()> {
    let x = t(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
    assert_eq!(x.sum(-1, false)?.to_vec()?, vec![6.0, 15.0]);
    assert_eq!(x.sum(-1, false)?.to_vec()?, x.sum(&[-1], false)?.to_vec()?);
    assert_eq!(x.sum(&[0, 1], false)?.item()?, 21.0);
    assert_eq!(x.sum(&vec![0], true)?.dims(), &[1, 3]);
    let dims: &[isize] = &[1];
    assert_eq!(x.mean(dims, false)?.to_vec()?, vec![2.0, 5.0]);
    assert_eq!(x.max(0, false)?.to_vec()?, vec![4.0, 5.0, 6.0]);
    assert_eq!(x.min(1, true)?.dims(), &[2, 1]);
    assert_eq!(x.var(1, false, false)?.dims(), &[2]);
    assert_eq!(x.logsumexp(-1, false)?.dims(), &[2]);
    assert_eq!(x.sum(&[], false)?.item()?, 21.0);
    Ok(())
}
