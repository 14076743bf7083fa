//! Random fills reproduce the CPU's counter-based streams (uniform bits
//! exactly), and grids past 65535 workgroups fold correctly.

use lam_core::backend::Distribution;
use lam_core::Layout;

use super::on_every_gpu;
use crate::common::*;

#[test]
fn random_fills_reproduce_the_cpu_streams() {
    on_every_gpu("random", |dev, cpu| {
        let gpu = dev.backend();
        for (n, seed) in [(1, 0u64), (17, 7), (4099, 0xdead_beef_0123_4567)] {
            // Uniform [0, 1) is the rng's bits exactly.
            let dist = Distribution::Uniform {
                low: 0.0,
                high: 1.0,
            };
            let got = down(gpu, &gpu.fill_random(n, dist, seed).unwrap(), &[n]);
            let want = down(cpu, &cpu.fill_random(n, dist, seed).unwrap(), &[n]);
            assert_eq!(got, want, "uniform01 bits, n {n} seed {seed}");
            let dist = Distribution::Uniform {
                low: -3.0,
                high: 5.0,
            };
            let got = down(gpu, &gpu.fill_random(n, dist, seed).unwrap(), &[n]);
            let want = down(cpu, &cpu.fill_random(n, dist, seed).unwrap(), &[n]);
            assert_close(&format!("uniform n {n}"), &got, &want, 1e-6, 1e-6);
            let dist = Distribution::Normal {
                mean: 1.0,
                std: 2.0,
            };
            let got = down(gpu, &gpu.fill_random(n, dist, seed).unwrap(), &[n]);
            let want = down(cpu, &cpu.fill_random(n, dist, seed).unwrap(), &[n]);
            assert_close(&format!("normal n {n}"), &got, &want, 2e-5, 2e-5);
        }
    });
}

#[test]
fn grids_beyond_65535_workgroups_fold_correctly() {
    // 65_536 * 256 + 3 elements need a folded 2-d grid; read back only the
    // tail (a contiguous narrowed view) to keep the transfer small.
    on_every_gpu("folded grid", |dev, cpu| {
        let gpu = dev.backend();
        let n = 65_536 * 256 + 3;
        let dist = Distribution::Uniform {
            low: 0.0,
            high: 1.0,
        };
        let g = gpu.fill_random(n, dist, 5).unwrap();
        let tail = Layout::contiguous(&[n]).narrow(0, n - 300, 300).unwrap();
        let got = gpu.read_f32((&g, &tail)).unwrap();
        let want: Vec<f32> = (n - 300..n)
            .map(|i| lam_core::rng::uniform01(5, i as u32))
            .collect();
        assert_eq!(got, want);
        let _ = cpu;
    });
}
