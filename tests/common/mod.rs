//! Shared test helpers: one default-limits device per test binary, CPU comparisons.
#![allow(dead_code)]

use semid::{Gpu, Tensor};
use std::sync::OnceLock;

/// The test device: wgpu's default limits, so kernels that exceed them fail here.
pub fn gpu() -> Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| Gpu::with_default_limits().expect("a GPU adapter (lavapipe on CI)"))
        .clone()
}

/// Seeded random values in [-1, 1).
pub fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    semid::rng::Rng::new(seed).uniform_vec(n, -1.0, 1.0)
}

/// Uploads a matrix.
pub fn upload(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(&gpu(), data, shape).unwrap()
}

/// Asserts `got` matches `want` elementwise within `atol + rtol·|want|`.
pub fn assert_close(got: &[f32], want: &[f32], atol: f32, rtol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = atol + rtol * w.abs();
        assert!(
            (g - w).abs() <= tol || (g.is_nan() && w.is_nan()),
            "{what}: element {i}: got {g}, want {w} (tol {tol})"
        );
    }
}

/// Relative error ‖got − want‖∞ / max(‖want‖∞, tiny).
pub fn max_rel_err(got: &[f32], want: &[f32]) -> f32 {
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
    got.iter()
        .zip(want)
        .fold(0f32, |m, (g, w)| m.max((g - w).abs()))
        / scale
}
