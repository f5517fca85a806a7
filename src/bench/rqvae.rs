//! `rqvae_step` workload (BENCH.md): one training step of an RQ-VAE on a fixed batch.
//!
//! Encoder 768→512→256→128→32 with ReLU between layers (no bias), decoder the mirror, three
//! residual codebooks of 256×32, nearest code by squared L2, the straight-through estimator on
//! the quantized latent, loss = MSE(reconstruction, input) + Σ_levels (‖sg(r)−e‖² +
//! 0.25·‖r−sg(e)‖²) (means), plain SGD with lr 1e-3 over every weight and codebook; input
//! 1,024×768 from `Rng::new(1)`, fixed across steps. The step is the tokenizer's own
//! ([`RqVaeTrainer::step`]); the codebooks are initialised by k-means on the batch's latents
//! before the clock starts, as the tokenizer does on its first batch. A timed run records the
//! step and waits for the GPU (`Gpu::sync`). `--quick`: batch 256, input 256.

use super::{dispatch_figures, merge, record, time_runs, BenchOptions, Workload};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::quant::rqvae::{OptimizerKind, RqVaeConfig, RqVaeTrainer};
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::{json, Value};

/// The RQ-VAE workloads.
pub fn workloads() -> Vec<Workload> {
    vec![Workload {
        name: "rqvae_step",
        about: "one RQ-VAE training step (768→512→256→128→32, 3×256 codes, SGD), batch 1,024",
        run: rqvae_step,
    }]
}

/// The benchmark's model: BENCH.md's `rqvae_step`.
pub fn bench_config() -> RqVaeConfig {
    RqVaeConfig {
        hidden: vec![512, 256, 128],
        latent: 32,
        bias: false,
        levels: 3,
        k: 256,
        beta: 0.25,
        optimizer: OptimizerKind::Sgd,
        lr: 1e-3,
        seed: 1,
        dead_code_steps: 0,
        ..Default::default()
    }
}

fn rqvae_step(gpu: &Gpu, opts: &BenchOptions) -> Result<Value> {
    let (batch, dim) = if opts.quick { (256, 256) } else { (1024, 768) };
    let cfg = bench_config();
    let mut rng = Rng::new(1);
    let x = Tensor::from_slice(gpu, &rng.normal_vec(batch * dim), &[batch, dim])?;
    let mut trainer = RqVaeTrainer::new(gpu, dim, &cfg)?;
    trainer.init_codebooks(&x)?;
    gpu.sync()?;
    let t = time_runs(opts.reps, || {
        trainer.step(&x)?;
        gpu.sync()
    })?;
    let dispatch = dispatch_figures(gpu, opts.reps, || trainer.step(&x).map(|_| ()))?;
    Ok(record(
        gpu,
        "rqvae_step",
        &t,
        opts.quick,
        merge(
            json!({
                "items_per_s": batch as f64 / t.median_s,
                "batch": batch, "dims": dim, "levels": cfg.levels, "k": cfg.k, "latent": cfg.latent,
            }),
            dispatch,
        ),
    ))
}
