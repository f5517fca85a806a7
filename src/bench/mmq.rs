//! `mmq_step` workload (semid's own, beside BENCH.md's): one MMQ training step with the
//! defaults on two modalities.
//!
//! Text 768-d and audio 512-d rows (L2-normalised, as the pipeline feeds them), batch 1,024,
//! `MmqConfig::default()` (2 shared + 2×2 specific bias-free Linear experts into 256-d latents,
//! 6 cosine codebooks of 100 unit codes, decoders latent → 512 → width, orthogonality over the
//! flattened expert weights, Adam). The codebooks are initialised by k-means on the batch's
//! latents before the clock starts; dead codes are not tracked, so a timed run is the recorded
//! step and a wait for the GPU (`Gpu::sync`). `--quick`: batch 256, widths 96 and 64.

use super::{dispatch_figures, merge, record, time_runs, BenchOptions, Workload};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::pipeline::normalize_rows;
use crate::quant::mmq::{MmqConfig, MmqTrainer, ModalitySpec};
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::{json, Value};

/// The MMQ workloads.
pub fn workloads() -> Vec<Workload> {
    vec![Workload {
        name: "mmq_step",
        about: "one MMQ training step (defaults: 6 experts, 6×100 cosine codes), text 768 + audio 512, batch 1,024",
        run: mmq_step,
    }]
}

/// `n` random rows of a `dt`-wide text and a `da`-wide audio embedding side by side, each
/// L2-normalised as the pipeline feeds MMQ (`Rng::new(seed)`).
pub(super) fn two_modalities(n: usize, dt: usize, da: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let text = normalize_rows(&rng.normal_vec(n * dt), dt);
    let audio = normalize_rows(&rng.normal_vec(n * da), da);
    let mut rows = Vec::with_capacity(n * (dt + da));
    for i in 0..n {
        rows.extend_from_slice(&text[i * dt..(i + 1) * dt]);
        rows.extend_from_slice(&audio[i * da..(i + 1) * da]);
    }
    rows
}

fn mmq_step(gpu: &Gpu, opts: &BenchOptions) -> Result<Value> {
    let (batch, dt, da) = if opts.quick {
        (256, 96, 64)
    } else {
        (1024, 768, 512)
    };
    let cfg = MmqConfig {
        seed: 1,
        dead_code_steps: 0,
        ..Default::default()
    };
    let mods = [
        ModalitySpec::new("text", dt),
        ModalitySpec::new("audio", da),
    ];
    let rows = two_modalities(batch, dt, da, 1);
    let x = Tensor::from_slice(gpu, &rows, &[batch, dt + da])?;
    let mut trainer = MmqTrainer::new(gpu, &cfg, &mods)?;
    trainer.init_codebooks(&x)?;
    gpu.sync()?;
    let t = time_runs(opts.reps, || {
        trainer.step(&x)?;
        gpu.sync()
    })?;
    let dispatch = dispatch_figures(gpu, opts.reps, || trainer.step(&x).map(|_| ()))?;
    Ok(record(
        gpu,
        "mmq_step",
        &t,
        opts.quick,
        merge(
            json!({
                "items_per_s": batch as f64 / t.median_s,
                "batch": batch, "dims": [dt, da], "tokens": trainer.layout().tokens(),
                "k": cfg.k, "latent": cfg.latent,
            }),
            dispatch,
        ),
    ))
}
