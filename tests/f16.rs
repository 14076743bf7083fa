//! The `F16` dtype on every device: casts bit for bit as IEEE 754 (against
//! PyTorch's fixture, and the `half` crate over random bit patterns),
//! copies, views and joins of half tensors, the `F16` product against
//! PyTorch's, gradients through casts, `F16` checkpoints, and the ops that
//! compute in `f32` or refuse half precision with an error naming them.

mod common;

use lam::checkpoint::{load_tensors, save_tensors};
use lam::{f16, DType, Device, Error, Result, Tensor};
use serde_json::Value;

fn fixture() -> Value {
    common::fixture::read("f16/f16.json")
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_i64().expect("an integer"))
        .collect()
}

fn halves_of(bits: &[i64]) -> Vec<f16> {
    bits.iter().map(|&b| f16::from_bits(b as u16)).collect()
}

/// An error unless every `actual` half has the bits of `expected` (any NaN
/// matching any NaN), naming the first difference.
fn same_halves(what: &str, inputs: &[f32], actual: &[f16], expected: &[f16]) -> Result<()> {
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let same = a.to_bits() == e.to_bits() || (a.is_nan() && e.is_nan());
        if !same {
            return Err(Error::invalid(
                "f16 test",
                format!(
                    "{what}: element {i} ({:e}, bits {:#010x}) became {:#06x}, expected {:#06x}",
                    inputs[i],
                    inputs[i].to_bits(),
                    a.to_bits(),
                    e.to_bits()
                ),
            ));
        }
    }
    if actual.len() != expected.len() {
        return Err(Error::invalid(
            "f16 test",
            format!("{what}: lengths differ"),
        ));
    }
    Ok(())
}

/// `a` and `b` as f32 bits, NaN equal to NaN.
fn same_f32(what: &str, actual: &[f32], expected: &[f32]) -> Result<()> {
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        if a.to_bits() != e.to_bits() && !(a.is_nan() && e.is_nan()) {
            return Err(Error::invalid(
                "f16 test",
                format!("{what}: element {i} is {a:e}, expected {e:e}"),
            ));
        }
    }
    Ok(())
}

/// A seeded stream of 32-bit patterns (a 64-bit LCG's high halves).
fn patterns(n: usize, seed: u64) -> Vec<u32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 32) as u32
        })
        .collect()
}

conformance!(casts_round_as_pytorch_does, |dev| {
    let casts = &fixture()["casts"];
    let inputs: Vec<f32> = ints(&casts["f32_bits"])
        .iter()
        .map(|&b| f32::from_bits(b as u32))
        .collect();
    assert!(inputs.len() >= 240, "the fixture lost its cases");
    let x = Tensor::from_slice(&inputs, &[inputs.len()], dev)?;
    let h = x.to_dtype(DType::F16)?;
    assert_eq!(h.dtype(), DType::F16);
    let want = halves_of(&ints(&casts["f16_bits"]));
    same_halves("f32 -> f16", &inputs, &h.to_vec_f16()?, &want)?;
    // Halves back to f32: exact.
    let bits = ints(&casts["half_bits"]);
    let halves = halves_of(&bits);
    let wide = Tensor::from_f16(&halves, &[halves.len()], dev)?.to_dtype(DType::F32)?;
    let want: Vec<f32> = ints(&casts["half_as_f32_bits"])
        .iter()
        .map(|&b| f32::from_bits(b as u32))
        .collect();
    same_f32("f16 -> f32", &wide.to_vec()?, &want)
});

conformance!(
    casts_agree_with_ieee_over_random_and_all_bit_patterns,
    |dev| {
        // 40,000 random f32 bit patterns: every exponent, NaNs and infinities.
        let inputs: Vec<f32> = patterns(40_000, 9)
            .into_iter()
            .map(f32::from_bits)
            .collect();
        let h = Tensor::from_slice(&inputs, &[200, 200], dev)?.to_dtype(DType::F16)?;
        let want: Vec<f16> = inputs.iter().map(|&x| f16::from_f32(x)).collect();
        same_halves("f32 -> f16", &inputs, &h.to_vec_f16()?, &want)?;
        // Every half pattern to f32 and back.
        let all: Vec<f16> = (0..=u16::MAX).map(f16::from_bits).collect();
        let t = Tensor::from_f16(&all, &[256, 256], dev)?;
        let wide = t.to_dtype(DType::F32)?.to_vec()?;
        let want: Vec<f32> = all.iter().map(|h| h.to_f32()).collect();
        same_f32("f16 -> f32", &wide, &want)?;
        let back = t.to_dtype(DType::F32)?.to_dtype(DType::F16)?.to_vec_f16()?;
        same_halves("round trip", &want, &back, &all)?;
        // Integers go through f32, as PyTorch's; halves to integers truncate.
        let ints = [-70000, -2049, -1, 0, 1, 2049, 2051, 65504, 70000];
        let i = Tensor::from_vec_i32(ints.to_vec(), &[ints.len()], dev)?;
        let want: Vec<f16> = ints.iter().map(|&v| f16::from_f32(v as f32)).collect();
        let wide: Vec<f32> = ints.iter().map(|&v| v as f32).collect();
        same_halves(
            "i32 -> f16",
            &wide,
            &i.to_dtype(DType::F16)?.to_vec_f16()?,
            &want,
        )?;
        let h = Tensor::from_f16(
            &[2.5, -2.5, 0.75, 65504.0, -3.0].map(f16::from_f32),
            &[5],
            dev,
        )?;
        assert_eq!(
            h.to_dtype(DType::I32)?.to_vec_i32()?,
            vec![2, -2, 0, 65504, -3]
        );
        Ok(())
    }
);

conformance!(half_tensors_copy_view_and_join_like_f32_ones, |dev| {
    // Odd sizes, so views and joins start and end inside the words that
    // hold two halves on a GPU.
    let values: Vec<f32> = (0..15).map(|i| i as f32 * 0.5 - 3.0).collect();
    let x32 = Tensor::from_slice(&values, &[3, 5], dev)?;
    let x = x32.to_dtype(DType::F16)?;
    let y32 = Tensor::from_slice(&[7.0, 8.0, 9.0, 10.0, 11.0, 12.0], &[3, 2], dev)?;
    let y = y32.to_dtype(DType::F16)?;
    type View = fn(&Tensor, &Tensor) -> Result<Tensor>;
    let cases: [(&str, View); 8] = [
        ("transpose", |x, _| x.t()?.contiguous()),
        ("narrow", |x, _| x.narrow(1, 1, 3)?.contiguous()),
        ("cat dim 1", |x, y| Tensor::cat(&[x.clone(), y.clone()], 1)),
        ("cat dim 0", |x, y| {
            Tensor::cat(&[x.narrow(1, 0, 2)?, y.clone(), x.narrow(1, 3, 2)?], 0)
        }),
        ("stack", |x, _| Tensor::stack(&[x.get(0)?, x.get(2)?], 1)),
        ("expand", |_, y| {
            y.narrow(1, 1, 1)?.expand(&[3, 5])?.contiguous()
        }),
        ("permute", |x, _| {
            x.reshape(&[3, 5, 1])?.permute(&[2, 1, 0])?.contiguous()
        }),
        ("step", |x, _| x.t()?.narrow(0, 1, 3)?.t()?.contiguous()),
    ];
    for (name, op) in cases {
        let half = op(&x, &y)?;
        assert_eq!(half.dtype(), DType::F16, "{name}");
        let want = op(&x32, &y32)?.to_vec()?;
        if half.to_vec()? != want {
            return Err(Error::invalid(
                "f16 test",
                format!("{name}: {:?} != {want:?}", half.to_vec()?),
            ));
        }
    }
    // A move to the CPU keeps the dtype and the bits.
    let moved = x.to_device(&<Device as lam::DeviceExt>::cpu())?;
    assert_eq!(moved.dtype(), DType::F16);
    assert_eq!(moved.to_vec_f16()?, x.to_vec_f16()?);
    Ok(())
});

conformance!(f16_products_match_pytorch_within_an_ulp, |dev| {
    let cases = fixture()["matmul"].as_array().expect("cases").clone();
    assert_eq!(cases.len(), 3);
    let mut worst = 0i32;
    for case in &cases {
        let tensor = |v: &Value| -> Result<Tensor> {
            let shape: Vec<usize> = ints(&v["shape"]).iter().map(|&d| d as usize).collect();
            Tensor::from_f16(&halves_of(&ints(&v["bits"])), &shape, dev)
        };
        let (a, b) = (tensor(&case["a"])?, tensor(&case["b"])?);
        let a = if case["transpose_a"].as_bool() == Some(true) {
            a.t()?
        } else {
            a
        };
        let y = a.matmul(&b)?;
        assert_eq!(y.dtype(), DType::F16);
        let want = halves_of(&ints(&case["out"]["bits"]));
        for (got, want) in y.to_vec_f16()?.iter().zip(&want) {
            // Same sign: adjacent halves differ by one in their bits.
            let ulps = (got.to_bits() as i32 - want.to_bits() as i32).abs();
            worst = worst.max(ulps);
        }
    }
    if worst > 1 {
        return Err(Error::invalid(
            "f16 test",
            format!("an f16 product is {worst} ulps from PyTorch's"),
        ));
    }
    Ok(())
});

/// `n` multiples of 1/16 in [-4, 4] (exact in f16; their products and sums
/// up to K = 130 exact in f32 in any order), a pure function of `seed`.
fn sixteenths(n: usize, seed: u64) -> Vec<f32> {
    patterns(n, seed)
        .into_iter()
        .map(|p| (p % 129) as f32 / 16.0 - 4.0)
        .collect()
}

/// The `[batch, m, n]` product of row-major `a` `[batch, m, k]` and `b`
/// `[k, n]` summed in f32 from +0 and rounded to f16 once.
fn rounded_product(a: &[f32], b: &[f32], [batch, m, k, n]: [usize; 4]) -> Vec<f16> {
    let mut out = Vec::with_capacity(batch * m * n);
    for bi in 0..batch {
        for i in 0..m {
            for j in 0..n {
                let row = &a[(bi * m + i) * k..][..k];
                let sum = (0..k).fold(0.0f32, |s, t| s + row[t] * b[t * n + j]);
                out.push(f16::from_f32(sum));
            }
        }
    }
    out
}

/// Halves of `values` (exact in f16) in a `shape` tensor on `dev`.
fn halves(values: &[f32], shape: &[usize], dev: &Device) -> Result<Tensor> {
    let h: Vec<f16> = values.iter().map(|&x| f16::from_f32(x)).collect();
    Tensor::from_f16(&h, shape, dev)
}

conformance!(f16_products_of_views_are_exact_sums_rounded_once, |dev| {
    // Products of halves summed exactly, so every device and kernel must
    // give the bits of the sum rounded once. A is plain, stored transposed,
    // or narrowed inside a NaN-padded buffer; B is one matrix broadcast
    // over the batch, or stored transposed.
    let sizes = [
        [1, 1, 1, 1],
        [2, 3, 17, 5],
        [1, 17, 130, 3],
        [3, 65, 3, 130],
        [2, 4, 0, 3],
        [2, 0, 3, 4],
    ];
    for (c, [batch, m, k, n]) in sizes.into_iter().enumerate() {
        let a = sixteenths(batch * m * k, 2 * c as u64 + 1);
        let b = sixteenths(k * n, 2 * c as u64 + 2);
        let want = rounded_product(&a, &b, [batch, m, k, n]);
        let at: Vec<f32> = (0..batch * m * k)
            .map(|e| {
                let (bi, t, i) = (e / (k * m), e / m % k, e % m);
                a[(bi * m + i) * k + t]
            })
            .collect();
        let padded: Vec<f32> = (0..batch * (m + 1) * (k + 2))
            .map(|e| {
                let (bi, i, t) = (e / ((m + 1) * (k + 2)), e / (k + 2) % (m + 1), e % (k + 2));
                if i >= 1 && (1..=k).contains(&t) {
                    a[(bi * m + i - 1) * k + t - 1]
                } else {
                    f32::NAN
                }
            })
            .collect();
        let bt: Vec<f32> = (0..k * n).map(|e| b[(e % k) * n + e / k]).collect();
        let a_views = [
            ("A", halves(&a, &[batch, m, k], dev)?),
            ("Aᵀ", halves(&at, &[batch, k, m], dev)?.transpose(1, 2)?),
            (
                "A narrowed",
                halves(&padded, &[batch, m + 1, k + 2], dev)?
                    .narrow(1, 1, m)?
                    .narrow(2, 1, k)?,
            ),
        ];
        let b_views = [
            (
                "B broadcast",
                halves(&b, &[1, k, n], dev)?.expand(&[batch as isize, k as isize, n as isize])?,
            ),
            ("Bᵀ", halves(&bt, &[n, k], dev)?.t()?),
        ];
        for (an, av) in &a_views {
            for (bn, bv) in &b_views {
                let y = av.matmul(bv)?;
                assert_eq!((y.dtype(), y.dims()), (DType::F16, &[batch, m, n][..]));
                let what = format!("{batch}x{m}x{k}x{n} {an} x {bn}");
                let sums: Vec<f32> = want.iter().map(|h| h.to_f32()).collect();
                same_halves(&what, &sums, &y.to_vec_f16()?, &want)?;
            }
        }
    }
    // NaN and infinities in the operands; 300 + 2 · 300 · 200 = 120,300
    // overflows f16 though every operand and product fits it.
    let (inf, nan) = (f32::INFINITY, f32::NAN);
    let a = [
        1.0, 2.0, 3.0, inf, 1.0, 0.0, nan, 1.0, 1.0, 300.0, 300.0, 300.0,
    ];
    let b = [
        1.0, inf, 1.0, 0.0, 1.0, 0.0, 200.0, nan, 1.0, -inf, 200.0, 0.0,
    ];
    let want = rounded_product(&a, &b, [1, 4, 3, 4]);
    let y = halves(&a, &[4, 3], dev)?.matmul(&halves(&b, &[3, 4], dev)?)?;
    let sums: Vec<f32> = want.iter().map(|h| h.to_f32()).collect();
    same_halves("NaN, infinities, overflow", &sums, &y.to_vec_f16()?, &want)
});

conformance!(
    gradients_through_f16_products_reach_f32_weights_as_f32,
    |dev| {
        let w = Tensor::from_slice(&[0.5, -1.0, 0.25, 2.0, 1.5, -0.75], &[3, 2], dev)?
            .requires_grad_()?;
        let x = Tensor::from_slice(&[1.0, 2.0, -1.0, 0.5, 0.0, 3.0], &[2, 3], dev)?;
        let y = x.to_dtype(DType::F16)?.matmul(&w.to_dtype(DType::F16)?)?;
        assert_eq!(y.dtype(), DType::F16);
        assert!(y.requires_grad());
        y.square()?.sum_all()?.backward()?;
        let g = w.grad().expect("a gradient");
        assert_eq!(g.dtype(), DType::F32);
        // d/dw sum((x w)^2) = 2 xᵀ (x w), every value exact in f16 here.
        let yv = x.matmul(&w.detach())?;
        let want = x.t()?.matmul(&yv)?.mul_scalar(2.0)?.to_vec()?;
        common::close(&g.to_vec()?, &want, 1e-3);
        Ok(())
    }
);

conformance!(ops_on_halves_compute_in_f32_or_name_themselves, |dev| {
    let x32 = Tensor::from_slice(&[-1.5, 0.25, 2.0, -0.125, 3.5, 1.0], &[2, 3], dev)?;
    let x = x32.to_dtype(DType::F16)?;
    // Every op computes in f32. Elementwise ops on halves return halves
    // rounded once from the f32 result, as PyTorch's; those on autocast's
    // float32 list (exp), reductions, softmax and losses return F32.
    type Op = fn(&Tensor) -> Result<Tensor>;
    let computed: [(&str, Op, DType); 9] = [
        ("relu", |t| t.relu(), DType::F16),
        ("gelu", |t| t.gelu(), DType::F16),
        ("add", |t| t.add(&t.t()?.t()?), DType::F16),
        ("mul_scalar", |t| t.mul_scalar(0.3), DType::F16),
        ("exp", |t| t.exp(), DType::F32),
        ("sum", |t| t.sum(1, false), DType::F32),
        ("max", |t| t.max(0, true), DType::F32),
        ("softmax", |t| t.softmax(-1), DType::F32),
        ("mse", |t| lam::loss::mse_loss(t, &t.relu()?), DType::F32),
    ];
    for (name, op, dtype) in computed {
        let y = op(&x)?;
        assert_eq!(y.dtype(), dtype, "{name}");
        let want = op(&x32)?;
        if dtype == DType::F16 {
            let bits = |v: Vec<f16>| v.iter().map(|h| h.to_bits()).collect::<Vec<_>>();
            let want = want.to_dtype(DType::F16)?.to_vec_f16()?;
            assert_eq!(bits(y.to_vec_f16()?), bits(want), "{name}: rounded once");
        } else {
            common::close(&y.to_vec()?, &want.to_vec()?, 1e-6);
        }
    }
    // Half with single precision promotes.
    assert_eq!(x.mul(&x32)?.dtype(), DType::F32);
    // Ops that move elements of f32 or i32 tensors refuse halves, by name.
    let idx = Tensor::from_vec_i32(vec![1, 0], &[2], dev)?;
    type Call<'a> = Box<dyn Fn() -> Result<Tensor> + 'a>;
    let refused: [(&str, Call); 6] = [
        ("index_select", Box::new(|| x.index_select(1, &idx))),
        (
            "gather",
            Box::new(|| x.gather(0, &Tensor::from_vec_i32(vec![0, 1, 1], &[1, 3], dev)?)),
        ),
        ("matmul", Box::new(|| x.matmul(&x32.t()?))),
        (
            "linear",
            Box::new(|| lam::nn::functional::linear(&x, &x32, None)),
        ),
        ("requires_grad_", Box::new(|| x.requires_grad_())),
        ("to_vec_i32", Box::new(|| x.to_vec_i32().map(|_| x.clone()))),
    ];
    for (name, op) in refused {
        let err = match op() {
            Ok(_) => panic!("{name} on float16 should be an error"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(name) && err.contains("float16"),
            "{name}: {err}"
        );
    }
    // Outside autocast, convolution and max pooling read an F16 image as
    // F32 too (under autocast a convolution returns F16: amp.rs).
    let image32 = Tensor::from_slice(
        &(0..32).map(|v| v as f32 * 0.25 - 3.0).collect::<Vec<_>>(),
        &[1, 2, 4, 4],
        dev,
    )?;
    let image = image32.to_dtype(DType::F16)?;
    let kernel = Tensor::from_slice(
        &(0..36).map(|v| (v % 5) as f32 - 2.0).collect::<Vec<_>>(),
        &[2, 2, 3, 3],
        dev,
    )?;
    let conv = |x: &Tensor| lam::nn::functional::conv2d(x, &kernel, None, 1, 1, 1, 1);
    let y = conv(&image)?;
    assert_eq!(y.dtype(), DType::F32);
    common::close(&y.to_vec()?, &conv(&image32)?.to_vec()?, 1e-5);
    let pool = |x: &Tensor| lam::nn::functional::max_pool2d(x, 2, 2, 0, 1);
    assert_eq!(pool(&image)?.to_vec()?, pool(&image32)?.to_vec()?);
    Ok(())
});

// Cross-entropy of F16 logits (read as halves where the backend can) is
// that of their F32 cast: the same loss, and the same gradient rounded to
// F16, bit for bit, on every device.
conformance!(cross_entropy_of_halves_is_that_of_their_f32_cast, |dev| {
    let gen = lam::Generator::new(5);
    let logits = Tensor::randn_with(&[37, 11], dev, &gen)?.mul_scalar(4.0)?;
    let targets = Tensor::from_vec_i32((0..37).map(|i| (i * 7) % 11).collect(), &[37], dev)?;
    // F16 tensors are not leaves: the F32 leaf's gradient is the F16
    // logits' gradient widened (exactly), so its bits are the halves'.
    let run = |cast_first: bool| -> Result<(u32, Vec<u32>)> {
        let w = logits.detach().requires_grad_()?;
        let x = w.to_dtype(DType::F16)?;
        let input = if cast_first {
            x.to_dtype(DType::F32)?
        } else {
            x
        };
        let loss = input.cross_entropy(&targets)?;
        assert_eq!(loss.dtype(), DType::F32);
        loss.mul_scalar(1024.0)?.backward()?;
        let g = w.grad().expect("a gradient").to_vec()?;
        // Every value a half: rounded to F16 on the way.
        assert!(g.iter().all(|&v| f16::from_f32(v).to_f32() == v));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect();
        Ok((loss.to_vec()?[0].to_bits(), bits(&g)))
    };
    assert_eq!(run(false)?, run(true)?);
    Ok(())
});

// An op on halves gives the gradient of f32 within f16 rounding.
conformance!(ops_on_halves_pass_gradients_back_to_f32, |dev| {
    let gen = lam::Generator::new(3);
    let x = Tensor::randn_with(&[4096], dev, &gen)?.requires_grad_()?;
    let y = x.to_dtype(DType::F16)?.gelu()?;
    assert_eq!(y.dtype(), DType::F16);
    y.sum_all()?.backward()?;
    let g16 = x.grad().expect("a gradient");
    assert_eq!(g16.dtype(), DType::F32);
    x.zero_grad();
    x.gelu()?.sum_all()?.backward()?;
    let g32 = x.grad().expect("a gradient").to_vec()?;
    common::close(&g16.to_vec()?, &g32, 2e-3);
    Ok(())
});

// What an op on halves keeps for its gradient is the halves, not f32
// copies: a GELU keeps its input, so a cast to F16 and the GELU hold two
// half buffers. (What is kept is lam-core's choice, the same on every
// device; a CPU device of its own counts exactly, with no other test's
// buffers.)
#[test]
fn ops_on_halves_keep_halves_for_their_gradients() -> Result<()> {
    let dev = Device::new(std::sync::Arc::new(lam_cpu::CpuBackend::new()));
    let x = Tensor::randn(&[4096], &dev)?.requires_grad_()?;
    let before = dev.stats().bytes_live;
    let y = x.to_dtype(DType::F16)?.gelu()?;
    assert_eq!(dev.stats().bytes_live - before, 2 * 4096 * 2);
    drop(y);
    Ok(())
}

conformance!(half_checkpoints_save_and_load_as_f16, |dev| {
    let dir = std::env::temp_dir().join(format!(
        "lam-f16-{}-{}",
        std::process::id(),
        dev.name().replace([' ', ':', '/', '(', ')'], "_")
    ));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let path = dir.join("half.safetensors");
    let values = [1.0, -2.5, 65504.0, 6e-8, f32::INFINITY, 0.333, -0.0];
    let h = Tensor::from_slice(&values, &[7], dev)?.to_dtype(DType::F16)?;
    let w = Tensor::from_slice(&[1.0, 2.0], &[2], dev)?;
    let tensors = vec![("half".to_string(), h.clone()), ("weight".to_string(), w)];
    save_tensors(&tensors, &Default::default(), &path)?;
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let header = String::from_utf8_lossy(&bytes[8..]);
    assert!(
        header.contains(r#""half":{"data_offsets":[0,14],"dtype":"F16","shape":[7]}"#),
        "{header}"
    );
    // 7 halves and 2 floats: 14 + 8 bytes of data after the header.
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    assert_eq!(bytes.len() - 8 - header_len, 22);
    let loaded = load_tensors(&path, dev)?;
    let (_, back) = &loaded.tensors[0];
    assert_eq!(back.dtype(), DType::F16);
    assert_eq!(back.to_vec_f16()?, h.to_vec_f16()?);
    assert_eq!(loaded.tensors[1].1.to_vec()?, vec![1.0, 2.0]);
    // And as torch.save's HalfStorage.
    let pth = dir.join("half.pth");
    save_tensors(&tensors, &Default::default(), &pth)?;
    let loaded = load_tensors(&pth, dev)?;
    let back = &loaded
        .tensors
        .iter()
        .find(|(n, _)| n == "half")
        .expect("half")
        .1;
    assert_eq!(back.dtype(), DType::F16);
    assert_eq!(back.to_vec_f16()?, h.to_vec_f16()?);
    std::fs::remove_dir_all(&dir).ok();
    // A file safetensors.torch wrote.
    let file = format!(
        "{}/../../fixtures/f16/torch_f16.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    let torch = load_tensors(&file, dev)?;
    let (name, t) = &torch.tensors[0];
    assert_eq!(
        (name.as_str(), t.dtype(), t.dims()),
        ("weight", DType::F16, &[2usize, 3][..])
    );
    let want = halves_of(&ints(&fixture()["safetensors"]["bits"]));
    assert_eq!(t.to_vec_f16()?, want);
    Ok(())
});

#[test]
fn half_buffers_take_two_bytes_per_element() -> Result<()> {
    let dev = <Device as lam::DeviceExt>::cpu();
    // The CPU's byte count is one per process and the other tests of this
    // binary allocate beside this one: one of a few tries sees only its own.
    let mut deltas = Vec::new();
    for _ in 0..20 {
        let before = dev.stats().bytes_live;
        let h = Tensor::zeros(&[1001], &dev)?.to_dtype(DType::F16)?;
        let zeros = Tensor::zeros(&[1001], &dev)?;
        let after = dev.stats().bytes_live;
        drop((h, zeros));
        deltas.push(after as i64 - before as i64);
        if deltas.last() == Some(&(1001 * 2 + 1001 * 4)) {
            break;
        }
    }
    assert_eq!(deltas.last(), Some(&(1001 * 2 + 1001 * 4)), "{deltas:?}");
    assert_eq!(DType::F16.size(), 2);
    assert_eq!(DType::F16.name(), "float16");
    Ok(())
}
