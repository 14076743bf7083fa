//! Bad input returns an error that names what was expected and what was
//! found — never a panic. One test per error kind.

mod common;

use lam::prelude::*;

/// Asserts `r` is an error whose message mentions every one of `needles`.
fn expect_err<T: std::fmt::Debug>(r: lam::Result<T>, needles: &[&str]) {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => {
            let msg = e.to_string();
            for n in needles {
                assert!(msg.contains(n), "error {msg:?} does not mention {n:?}");
            }
        }
    }
}

conformance!(wrong_shapes, |dev| {
    let a = Tensor::zeros(&[2, 3], dev)?;
    let b = Tensor::zeros(&[4, 5], dev)?;
    expect_err(a.matmul(&b), &["matmul", "[4, 5]"]);
    expect_err(a.add(&Tensor::zeros(&[4], dev)?), &["add", "[2, 3]", "[4]"]);
    expect_err(a.reshape(&[4, 2]), &["reshape", "6 elements", "[4, 2]"]);
    expect_err(a.reshape(&[-1, 4]), &["reshape"]);
    expect_err(
        Tensor::from_vec(vec![1.0; 5], &[2, 3], dev),
        &["5 values", "[2, 3]", "6"],
    );
    expect_err(a.broadcast_to(&[3, 3]), &["broadcast_to", "[3, 3]"]);
    expect_err(Tensor::cat(&[a.clone(), b.clone()], 0), &["cat", "[4, 5]"]);
    expect_err(Tensor::stack(&[a.clone(), b.clone()], 0), &["stack"]);
    expect_err(a.narrow(1, 2, 5), &["narrow", "exceeds"]);
    expect_err(a.permute(&[0, 0]), &["permute"]);
    let targets = Tensor::from_vec_i32(vec![0, 1, 1], &[3], dev)?;
    expect_err(a.cross_entropy(&targets), &["cross_entropy", "[2]", "[3]"]);
    expect_err(
        a.sum(&[], false)?.backward_with(&Tensor::zeros(&[2], dev)?),
        &["backward"],
    );
    Ok(())
});

conformance!(wrong_ranks, |dev| {
    let v = Tensor::zeros(&[3], dev)?;
    expect_err(v.t(), &["rank", "at least 2", "[3]"]);
    expect_err(
        v.cross_entropy(&Tensor::from_vec_i32(vec![0], &[1], dev)?),
        &["rank", "[3]"],
    );
    expect_err(Tensor::scalar(1.0, dev)?.matmul(&v), &["matmul", "rank"]);
    let idx = Tensor::from_vec_i32(vec![0, 1], &[1, 2], dev)?;
    expect_err(v.index_select(0, &idx), &["index_select", "rank", "[1, 2]"]);
    expect_err(v.to_vec2(), &["to_vec2", "rank"]);
    expect_err(v.sum(&[3], false), &["sum", "3"]);
    Ok(())
});

/// Layers state their accepted shapes in one vocabulary (`dims2`,
/// `batched`, `rank_in`, `expect_min_rank`, `expect_shape`,
/// `check_operands`); each error names the op, the layout expected and
/// the shape found.
#[test]
fn layer_shape_errors_name_the_layout() {
    use lam::nn::functional as F;
    let dev = Device::cpu();
    let t = |shape: &[usize]| Tensor::zeros(shape, &dev).expect("zeros");
    let x = t(&[2, 3]);
    expect_err(
        F::linear(&x, &t(&[3]), None),
        &["linear", "rank 2 (weight [out, in])", "[3]"],
    );
    expect_err(
        F::linear(&x, &t(&[4, 3]), Some(&t(&[3]))),
        &["linear", "a bias of shape [4]", "[3]"],
    );
    expect_err(
        F::conv2d(&t(&[3, 3]), &t(&[1, 1, 2, 2]), None, 1, 0, 1, 1),
        &["conv2d", "4 ([N, C, H, W]) or 3 ([C, H, W])", "[3, 3]"],
    );
    expect_err(
        F::conv2d(&t(&[1, 1, 3, 3]), &t(&[1, 1, 2]), None, 1, 0, 1, 1),
        &["conv2d", "rank 4 (weight [out, in/groups, kernel...])"],
    );
    expect_err(
        F::prelu(&x, &t(&[3, 1])),
        &["prelu", "0 (one weight) or 1 (weight [num_parameters])"],
    );
    expect_err(
        F::batch_norm(&t(&[3]), None, None, None, None, true, 0.1, 1e-5),
        &["batch_norm", "at least 2 ([N, C, *])", "[3]"],
    );
    expect_err(
        F::embedding(
            &Tensor::from_vec_i32(vec![0], &[1], &dev).expect("indices"),
            &t(&[4]),
            None,
        ),
        &["embedding", "weight [num_embeddings, dim]"],
    );
    expect_err(
        F::gru_cell(
            &t(&[2, 3]),
            &t(&[2, 4]),
            &t(&[12, 3, 1]),
            &t(&[12, 4]),
            None,
            None,
        ),
        &[
            "gru_cell",
            "weight_ih [gates·hidden, input_size]",
            "[12, 3, 1]",
        ],
    );
    let labels = Tensor::from_vec_i32(vec![0; 6], &[2, 3], &dev).expect("labels");
    expect_err(
        F::linear(&labels, &t(&[4, 3]), None),
        &["linear", "float32", "int32"],
    );
}

conformance!(out_of_range_indices, |dev| {
    // Indices wholly outside the dim are errors at the call on every device.
    // A mix of valid and invalid ones, which a GPU reports at the next
    // readback, is tested in tests/index_bounds.rs on private devices.
    let x = Tensor::zeros(&[3, 2], dev)?;
    let too_big = Tensor::from_vec_i32(vec![3, 4], &[2], dev)?;
    expect_err(
        x.index_select(0, &too_big),
        &["index_select", "3", "size 3"],
    );
    let negative = Tensor::from_vec_i32(vec![-1], &[1], dev)?;
    expect_err(x.index_select(1, &negative), &["index_select", "-1"]);
    let g = Tensor::from_vec_i32(vec![2, 2, 3], &[3, 1], dev)?;
    expect_err(x.gather(1, &g), &["gather", "2", "size 2"]);
    let targets = Tensor::from_vec_i32(vec![5, 5, 6], &[3], dev)?;
    expect_err(x.cross_entropy(&targets), &["cross_entropy", "5"]);
    expect_err(x.dim(2), &["dim", "2"]);
    Ok(())
});

conformance!(empty_inputs, |dev| {
    expect_err(Tensor::cat(&[], 0), &["cat", "empty"]);
    let empty = Tensor::zeros(&[0, 3], dev)?;
    expect_err(empty.max_all(), &["max", "empty"]);
    expect_err(empty.argmax(0, false), &["argmax", "empty"]);
    // Sums of nothing are zero, means NaN, and softmax of nothing is
    // nothing, as in NumPy and PyTorch.
    assert_eq!(empty.sum_all()?.item()?, 0.0);
    assert!(empty.mean_all()?.item()?.is_nan());
    assert_eq!(empty.softmax(0)?.dims(), [0, 3]);
    assert_eq!(empty.log_softmax(1)?.dims(), [0, 3]);
    Ok(())
});

conformance!(wrong_dtypes_and_arguments, |dev| {
    let labels = Tensor::from_vec_i32(vec![1, 2], &[2], dev)?;
    let x = Tensor::zeros(&[2, 3], dev)?;
    expect_err(labels.requires_grad_(), &["int32", "float32"]);
    expect_err(
        x.cross_entropy(&x.sum(&[1], false)?),
        &["cross_entropy", "int32"],
    );
    expect_err(
        x.index_select(0, &x.sum(&[1], false)?),
        &["index_select", "int32"],
    );
    expect_err(x.to_vec_i32(), &["to_vec_i32", "int32"]);
    expect_err(x.exp()?.backward(), &["scalar"]);
    expect_err(x.sum_all()?.backward(), &["does not require grad"]);
    expect_err(Tensor::arange(0.0, 1.0, 0.0, dev), &["arange", "step"]);
    expect_err(Tensor::randint(5, 5, &[2], dev), &["randint", "5..5"]);
    expect_err(Tensor::bernoulli(&[2], 1.5, dev), &["bernoulli", "1.5"]);
    expect_err(x.clamp(1.0, -1.0), &["clamp"]);
    expect_err(x.chunk(0, 0), &["chunk"]);
    expect_err(x.item(), &["item", "[2, 3]"]);
    Ok(())
});

#[test]
fn mismatched_devices() {
    let cpu = Device::cpu();
    let other = Device::new(std::sync::Arc::new(lam_cpu::CpuBackend::new()));
    let a = Tensor::zeros(&[2], &cpu).expect("zeros");
    let b = Tensor::zeros(&[2], &other).expect("zeros");
    expect_err(a.add(&b), &["different devices"]);
    expect_err(a.matmul(&b), &["different devices"]);
    expect_err(
        Tensor::cat(&[a.clone(), b.clone()], 0),
        &["different devices"],
    );
    let idx = Tensor::from_vec_i32(vec![0], &[1], &other).expect("idx");
    expect_err(a.index_select(0, &idx), &["different devices"]);
    // Moving makes them compatible.
    let moved = b.to_device(&cpu).expect("move");
    assert_eq!(
        a.add(&moved).expect("add").to_vec().expect("read"),
        vec![0.0, 0.0]
    );
}

conformance!(loose_index_bounds_are_confirmed, |dev| {
    // A column view keeps its parent's (looser) bounds; valid indices in it
    // must still be accepted. (An invalid one in such a view is an error at
    // the call on the CPU and at the next readback on a GPU:
    // tests/index_bounds.rs.)
    let pairs = Tensor::from_vec_i32(vec![0, 1, 9, 2], &[2, 2], dev)?;
    let items = pairs.narrow(1, 1, 1)?.squeeze(1)?;
    let table = Tensor::zeros(&[3, 2], dev)?;
    let picked = table.index_select(0, &items)?;
    assert_eq!(picked.dims(), &[2, 2]);
    assert_eq!(picked.to_vec()?, vec![0.0; 4]);
    Ok(())
});

/// `fn main() -> lam::Result<()>` prints an error with `Debug`: it is the
/// message, not the variant's fields.
#[test]
fn debug_prints_the_message() {
    let e = Error::shape("linear", "an input of shape [*, 3]", &[2, 4]);
    assert_eq!(format!("{e:?}"), e.to_string());
    assert_eq!(
        format!("{e:?}"),
        "linear: shape mismatch: expected an input of shape [*, 3], found [2, 4]"
    );
}

#[test]
fn io_errors_name_the_path_when_known() {
    let missing = std::path::Path::new("/nonexistent/lam/data.csv");
    let io = std::fs::read(missing).expect_err("no such file");
    let kind = io.to_string();
    let e = Error::io(missing, io);
    assert_eq!(
        e.to_string(),
        format!("io: /nonexistent/lam/data.csv: {kind}")
    );
    // `?` on a std::io::Result works too; the message has no path then.
    fn read() -> lam::Result<Vec<u8>> {
        Ok(std::fs::read("/nonexistent/lam/data.csv")?)
    }
    assert_eq!(
        read().expect_err("no such file").to_string(),
        format!("io: {kind}")
    );
}
