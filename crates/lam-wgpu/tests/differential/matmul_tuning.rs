//! Matmul autotuning on real devices: off, it keeps the size rule; on, it
//! times a class once, saves the choice, and a second device reads it back;
//! a corrupt cache file is ignored and rewritten. Products stay correct
//! against the CPU throughout. Shapes are tiny (software adapters are slow).

use std::path::{Path, PathBuf};

use lam_core::{Backend, DType, Device, Layout};
use lam_wgpu::{
    autotune_matmul, matmul_kernel_for, GpuOptions, MatmulKernel, MatmulOptions, MatmulPrecision,
};

use super::{on_every_gpu, pair};
use crate::common::*;

/// A fresh directory for one test on one adapter.
fn temp_dir(test: &str, dev: &Device) -> PathBuf {
    let tag: String = dev
        .name()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(40)
        .collect();
    let dir = std::env::temp_dir().join(format!("lam-{test}-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A private device on `shared`'s adapter with autotuning `on` and its
/// cache in `dir`.
fn tuned_device(shared: &Device, on: bool, dir: &Path) -> Device {
    private_device(
        shared,
        GpuOptions {
            matmul: MatmulOptions {
                autotune: Some(on),
                cache_dir: Some(dir.to_path_buf()),
                ..MatmulOptions::default()
            },
            ..GpuOptions::default()
        },
    )
}

/// The cache files in `dir`.
fn cache_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.expect("entry").path()).collect())
        .unwrap_or_default()
}

/// `[m, k] x [k, n]` on `dev` against the CPU.
fn check_product(dev: &Device, cpu: &dyn Backend, m: usize, k: usize, n: usize) {
    let gpu = dev.backend();
    let (ga, ca) = pair(gpu, cpu, &values(m * k, 11, -1.0, 1.0));
    let (gb, cb) = pair(gpu, cpu, &values(k * n, 12, -1.0, 1.0));
    let (la, lb) = (
        Layout::contiguous(&[1, m, k]),
        Layout::contiguous(&[1, k, n]),
    );
    let got = gpu.matmul((&ga, &la), (&gb, &lb)).expect("gpu matmul");
    let want = cpu.matmul((&ca, &la), (&cb, &lb)).expect("cpu matmul");
    assert_close(
        &format!("tuned matmul {m}x{k}x{n}"),
        &down(gpu, &got, &[1, m, n]),
        &down(cpu, &want, &[1, m, n]),
        1e-6 * k as f32 * 4.0,
        1e-5,
    );
}

#[test]
fn autotune_off_keeps_the_size_rule_and_writes_nothing() {
    on_every_gpu("autotune off", |shared, cpu| {
        let dir = temp_dir("tune-off", shared);
        let dev = tuned_device(shared, false, &dir);
        let kernel =
            |b, m, k, n| matmul_kernel_for(&dev, DType::F32, [b, m, k, n]).expect("a GPU device");
        assert_eq!(kernel(1, 64, 64, 64), MatmulKernel::Tile64);
        // 64 tiles of 128 x 128: the large kernel.
        assert_eq!(kernel(64, 256, 32, 256), MatmulKernel::Tile128);
        assert_eq!(kernel(1, 256, 32, 256), MatmulKernel::Tile64);
        check_product(&dev, cpu, 33, 20, 17);
        assert!(cache_files(&dir).is_empty(), "nothing tuned, nothing saved");
    });
}

#[test]
fn a_forced_large_tile_kernel_runs_the_products_it_fits_and_tile64_the_rest() {
    on_every_gpu("forced large tiles", |shared, cpu| {
        let forced = |kernel| GpuOptions {
            matmul: MatmulOptions {
                kernel: Some(kernel),
                autotune: Some(false),
                ..MatmulOptions::default()
            },
            ..GpuOptions::default()
        };
        let narrow = private_device(shared, forced(MatmulKernel::Tile128x64));
        let large = private_device(shared, forced(MatmulKernel::Tile128));
        let kernel = |dev: &Device, [m, k, n]: [usize; 3]| {
            matmul_kernel_for(dev, DType::F32, [1, m, k, n]).expect("a GPU device")
        };
        // 128 x 64 tiles take 192 columns; 128 x 128 tiles do not.
        assert_eq!(kernel(&narrow, [128, 32, 192]), MatmulKernel::Tile128x64);
        assert_eq!(kernel(&large, [128, 32, 192]), MatmulKernel::Tile64);
        assert_eq!(kernel(&narrow, [256, 32, 256]), MatmulKernel::Tile128x64);
        // Rows not a multiple of 128, columns not of 64, K not of 16.
        for shape in [[192, 32, 192], [128, 32, 96], [128, 24, 192]] {
            assert_eq!(kernel(&narrow, shape), MatmulKernel::Tile64, "{shape:?}");
        }
        for [m, k, n] in [[128, 32, 192], [128, 24, 192]] {
            check_product(&narrow, cpu, m, k, n);
        }
    });
}

#[test]
fn autotune_saves_choices_that_a_second_device_reads() {
    on_every_gpu("autotune", |shared, cpu| {
        let dir = temp_dir("tune-on", shared);
        let dev = tuned_device(shared, true, &dir);
        // The first product of a class times the candidates.
        check_product(&dev, cpu, 33, 20, 17);
        let files = cache_files(&dir);
        assert_eq!(files.len(), 1, "one cache file per adapter: {files:?}");
        let tuned = autotune_matmul(&dev, &[[1, 64, 32, 64], [2, 8, 4, 8]]).expect("autotune");
        assert_eq!(tuned.len(), 2);
        let text = std::fs::read_to_string(&files[0]).expect("the cache file");
        for (class, kernel) in &tuned {
            assert!(
                text.contains(&format!("\"{class}\": \"{}\"", kernel.name())),
                "{class} -> {kernel:?} saved in {text}"
            );
        }
        let again = tuned_device(shared, true, &dir);
        assert_eq!(
            matmul_kernel_for(&again, DType::F32, [1, 64, 32, 64]).expect("a GPU device"),
            tuned[0].1
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn cached_choices_are_used_and_a_corrupt_cache_is_rewritten() {
    on_every_gpu("autotune cache", |shared, cpu| {
        let dir = temp_dir("tune-cache", shared);
        let dev = tuned_device(shared, true, &dir);
        // One 128-tile: the size rule says Tile64; the cache will say Tile128.
        let [(class, _)] =
            <[_; 1]>::try_from(autotune_matmul(&dev, &[[1, 128, 16, 128]]).expect("autotune"))
                .expect("one answer");
        let file = cache_files(&dir).pop().expect("a cache file");
        let planted = format!(r#"{{"format": 4, "choices": {{"{class}": "tile128"}}}}"#);
        std::fs::write(&file, planted).expect("write the cache");
        let dev = tuned_device(shared, true, &dir);
        assert_eq!(
            matmul_kernel_for(&dev, DType::F32, [1, 128, 16, 128]).expect("a GPU device"),
            MatmulKernel::Tile128
        );
        check_product(&dev, cpu, 128, 16, 128);

        std::fs::write(&file, "{\"format\": 1, \"choi").expect("corrupt the cache");
        let dev = tuned_device(shared, true, &dir);
        assert_eq!(
            matmul_kernel_for(&dev, DType::F32, [1, 128, 16, 128]).expect("a GPU device"),
            MatmulKernel::Tile64,
            "a corrupt cache reads as empty"
        );
        check_product(&dev, cpu, 128, 16, 128);
        let text = std::fs::read_to_string(&file).expect("the cache file");
        assert!(
            text.contains(&class) && text.contains("\"format\": 4"),
            "rewritten after tuning: {text}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// The cooperative kernels round their inputs to f16: exact for `F16`
/// operands, which they take at the default precision (as PyTorch's
/// autocast products run on tensor cores), while `F32` operands need
/// `MatmulPrecision::High`. Where no adapter has cooperative matrices (Mesa
/// before 25: CI's lavapipe) the kernel is reported and skipped; lavapipe
/// from Mesa 26 offers 8 x 8 x 8 ones.
#[test]
fn cooperative_kernels_take_f16_products_at_every_precision() {
    on_every_gpu("cooperative kernels and precision", |shared, _| {
        for precision in [MatmulPrecision::Highest, MatmulPrecision::High] {
            let opts = GpuOptions {
                matmul: MatmulOptions {
                    kernel: Some(MatmulKernel::Coop),
                    precision,
                    autotune: Some(false),
                    ..MatmulOptions::default()
                },
                ..GpuOptions::default()
            };
            let dev = match try_private_device(shared, opts) {
                Ok(dev) => dev,
                Err(e) => {
                    eprintln!("cooperative kernels skipped: {e}");
                    return;
                }
            };
            let kernel = |dtype| matmul_kernel_for(&dev, dtype, [1, 64, 64, 64]).expect("a GPU");
            assert_eq!(kernel(DType::F16), MatmulKernel::Coop, "{precision:?}");
            let f32_kernel = if precision == MatmulPrecision::High {
                MatmulKernel::Coop
            } else {
                MatmulKernel::Tile64
            };
            assert_eq!(kernel(DType::F32), f32_kernel, "{precision:?}");
        }
    });
}
