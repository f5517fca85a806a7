//! `mcca_step` and `din_step` workloads (BENCH.md, issue 12): one training step of a ranker.
//!
//! `mcca_step`: MCCA, batch 512, history 20 (every sample's history full), three families
//! (two modalities and the joint one) of 3 × 256 codes plus IDs for 3,883 items (ML-1M's
//! catalogue), embeddings 64-d, activation units 256 → 80 → 40 → 1, prediction MLP
//! 384 → 200 → 80 → 1, Adam. `din_step`: DIN over IDs only, same shapes. The log and codes are
//! random (`Rng::new(1)`); the step is the ranker's own ([`Ranker::train_step`]): batch layout
//! on the CPU, uploads, forward, backward and the update; a timed run waits for the GPU.
//! `samples_per_s` is the batch over the median; `ml1m_epoch_s` is an epoch of ML-1M's 800,169
//! training samples at that rate. `--quick`: batch 64.

use super::{dispatch_figures, merge, record, time_runs, BenchOptions, Workload};
use crate::data::types::{Interaction, Interactions};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::optim::Adam;
use crate::rank::{
    CodeTables, FamilyCodes, ModelKind, ProtocolConfig, RankProtocol, Ranker, RankerConfig,
    SplitName,
};
use crate::rng::Rng;
use serde_json::{json, Value};
use std::path::PathBuf;

/// ML-1M's catalogue and training split, the sizes the goals are stated for.
pub(super) const ITEMS: usize = 3883;
pub(super) const ML1M_TRAIN: f64 = 800_169.0;

/// The ranker workloads.
pub fn workloads() -> Vec<Workload> {
    vec![
        Workload {
            name: "mcca_step",
            about: "one MCCA training step: batch 512, history 20, 3 families × 3 × 256 codes + IDs of 3,883 items, 64-d",
            run: mcca_step,
        },
        Workload {
            name: "din_step",
            about: "one DIN (item IDs) training step: batch 512, history 20, 3,883 items, 64-d",
            run: din_step,
        },
    ]
}

/// A random log where every user has enough positives for full histories, and random codes.
pub(super) fn bench_data(batch: usize) -> Result<(RankProtocol, CodeTables)> {
    let mut rng = Rng::new(1);
    let users = batch.div_ceil(8) * 2;
    let mut rows = Vec::new();
    for u in 0..users {
        for t in 0..80 {
            rows.push(Interaction {
                user: u as u32,
                item: rng.below(ITEMS) as u32,
                label: if rng.uniform() < 0.6 { 5.0 } else { 1.0 },
                timestamp: (t * users + u) as i64,
            });
        }
    }
    let log = Interactions {
        users: (0..users).map(|u| format!("u{u}")).collect(),
        items: (0..ITEMS).map(|i| format!("i{i}")).collect(),
        rows,
    };
    let p = RankProtocol::build(&log, &ProtocolConfig::default())?;
    let families = ["text", "audio", "joint"]
        .iter()
        .map(|f| FamilyCodes {
            family: f.to_string(),
            run: PathBuf::from("bench"),
            levels: 3,
            k: vec![256; 3],
            table: (0..ITEMS * 3).map(|_| rng.below(256) as u32).collect(),
        })
        .collect();
    Ok((
        p,
        CodeTables {
            n_items: ITEMS,
            families,
        },
    ))
}

/// The first `batch` training samples with a full history of 20 (the later events of each
/// user).
pub(super) fn full_history_samples(p: &RankProtocol, batch: usize) -> Vec<usize> {
    (0..p.len(SplitName::Train))
        .filter(|&i| p.history(SplitName::Train, i).len() == 20)
        .take(batch)
        .collect()
}

fn ranker_step(gpu: &Gpu, opts: &BenchOptions, name: &str, model: ModelKind) -> Result<Value> {
    let batch = if opts.quick { 64 } else { 512 };
    let (p, codes) = bench_data(batch)?;
    let cfg = RankerConfig {
        model,
        batch_size: batch,
        seed: 1,
        ..Default::default()
    };
    let mut ranker = Ranker::new(gpu, &cfg, ITEMS, 20, Some(&codes))?;
    let full = full_history_samples(&p, batch);
    let mut opt = Adam::new(cfg.lr);
    ranker.train_step(&mut opt, &p, &full)?;
    gpu.sync()?;
    let t = time_runs(opts.reps, || {
        ranker.train_step(&mut opt, &p, &full)?;
        gpu.sync()
    })?;
    let dispatch = dispatch_figures(gpu, opts.reps, || {
        ranker.train_step(&mut opt, &p, &full).map(|_| ())
    })?;
    let sps = full.len() as f64 / t.median_s;
    Ok(record(
        gpu,
        name,
        &t,
        opts.quick,
        merge(
            json!({
                "samples_per_s": sps,
                "ml1m_epoch_s": ML1M_TRAIN / sps,
                "batch": full.len(), "history": 20, "items": ITEMS, "dim": cfg.dim,
                "families": ranker.families.len(), "levels": 3, "k": 256,
                "params": ranker.store.num_elements(),
            }),
            dispatch,
        ),
    ))
}

fn mcca_step(gpu: &Gpu, opts: &BenchOptions) -> Result<Value> {
    ranker_step(gpu, opts, "mcca_step", ModelKind::Mcca)
}

fn din_step(gpu: &Gpu, opts: &BenchOptions) -> Result<Value> {
    ranker_step(gpu, opts, "din_step", ModelKind::Din)
}
