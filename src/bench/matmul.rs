//! `matmul` and `matmul_nt` workloads (BENCH.md).
//!
//! - `matmul`: C = A·B, A and B 1024×1024 (`--quick`: 256×256).
//! - `matmul_nt`: C = A·Bᵀ, A 65,536×256, B 1,024×256 (`--quick`: A 4,096×256), the
//!   codebook-distance form. The full output is 256 MiB, bound in row ranges.
//!
//! Inputs come from `Rng::new(1)` and are uploaded, and the output allocated, before the clock
//! starts; each timed run records the product and waits for the GPU (`Gpu::sync`).

use super::{record, time_runs, BenchOptions, Workload};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::kernels::matmul::{matmul_into, MatmulOpts};
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::{json, Value};

/// The matmul workloads.
pub fn workloads() -> Vec<Workload> {
    vec![
        Workload {
            name: "matmul",
            about: "C = A·B, 1024×1024 by 1024×1024, GFLOP/s",
            run: run_matmul,
        },
        Workload {
            name: "matmul_nt",
            about: "C = A·Bᵀ, A 65,536×256, B 1,024×256, GFLOP/s",
            run: run_matmul_nt,
        },
    ]
}

/// Times `C = op(A)·op(B)` for A stored `a_shape` and B stored `b_shape`; returns the JSON line.
fn bench_product(
    gpu: &Gpu,
    opts: &BenchOptions,
    workload: &str,
    a_shape: [usize; 2],
    b_shape: [usize; 2],
    trans_b: bool,
) -> Result<Value> {
    let mut rng = Rng::new(1);
    let av = rng.uniform_vec(a_shape[0] * a_shape[1], -1.0, 1.0);
    let bv = rng.uniform_vec(b_shape[0] * b_shape[1], -1.0, 1.0);
    let a = Tensor::from_slice(gpu, &av, &a_shape)?;
    let b = Tensor::from_slice(gpu, &bv, &b_shape)?;
    let (m, k) = (a_shape[0], a_shape[1]);
    let n = if trans_b { b_shape[0] } else { b_shape[1] };
    let out = Tensor::empty(gpu, &[m, n])?;
    gpu.sync()?;
    let mm = MatmulOpts::new().trans_b(trans_b);
    let timing = time_runs(opts.reps, || {
        matmul_into(&a, &b, &mm, &out)?;
        gpu.sync()
    })?;
    let flops = 2.0 * m as f64 * n as f64 * k as f64;
    Ok(record(
        gpu,
        workload,
        &timing,
        opts.quick,
        json!({ "gflops": flops / timing.median_s / 1e9 }),
    ))
}

fn run_matmul(gpu: &Gpu, opts: &BenchOptions) -> Result<Value> {
    let s = if opts.quick { 256 } else { 1024 };
    bench_product(gpu, opts, "matmul", [s, s], [s, s], false)
}

fn run_matmul_nt(gpu: &Gpu, opts: &BenchOptions) -> Result<Value> {
    let rows = if opts.quick { 4096 } else { 65_536 };
    bench_product(gpu, opts, "matmul_nt", [rows, 256], [1024, 256], true)
}
