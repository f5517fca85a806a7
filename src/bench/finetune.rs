//! `baf_step` workload (issue 13): one behaviour-aware fine-tuning step — MCCA trained with the
//! MMQ tokenizer of its joint family, through soft indexing.
//!
//! The ranker is `mcca_step`'s (batch 512, history 20, 3,883 items, 64-d, text and audio
//! families of 3 × 256 random codes) with the joint family replaced by an MMQ of the defaults
//! (`mmq_step`'s: text 768 + audio 512, 6 tokens of 100 cosine codes) over random normalised
//! rows of every item, its codebooks initialised by k-means. One step: the batch's distinct
//! items (about 3,800 of the 10,752 positions) through the tokenizer, the soft index of each
//! token, MCCA's loss, `L_rank + 0.5 L_recon + 0.5 L_aux`, backward and both Adam updates; a
//! timed run waits for the GPU. The goal (issue 13) compares it with `mmq_step` and
//! `mcca_step` of the same run: `median_s ≤ 1.5 × (mmq_step / 2 + mcca_step)`. `--quick`:
//! batch 64, widths 96 and 64.

use super::mmq::two_modalities;
use super::rank::{bench_data, full_history_samples, ITEMS, ML1M_TRAIN};
use super::{dispatch_figures, merge, record, time_runs, BenchOptions, Workload};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::optim::Adam;
use crate::quant::any::AnyTokenizer;
use crate::quant::mmq::{MmqConfig, MmqTrainer, ModalitySpec};
use crate::rank::finetune::{FineTuner, FinetuneConfig, TunedInputs};
use crate::rank::{FamilyCodes, ModelKind, Ranker, RankerConfig, SplitName, StepRule};
use crate::tensor::Tensor;
use serde_json::{json, Value};
use std::path::PathBuf;

/// The fine-tuning workloads.
pub fn workloads() -> Vec<Workload> {
    vec![Workload {
        name: "baf_step",
        about: "one behaviour-aware fine-tuning step: MCCA (batch 512, history 20) with its joint family's MMQ (defaults, text 768 + audio 512) tuned through soft indexing",
        run: baf_step,
    }]
}

fn baf_step(gpu: &Gpu, opts: &BenchOptions) -> Result<Value> {
    let (batch, dt, da) = if opts.quick {
        (64, 96, 64)
    } else {
        (512, 768, 512)
    };
    let (p, mut codes) = bench_data(batch)?;
    let rows = two_modalities(ITEMS, dt, da, 2);
    let mcfg = MmqConfig {
        seed: 1,
        dead_code_steps: 0,
        ..Default::default()
    };
    let mods = [
        ModalitySpec::new("text", dt),
        ModalitySpec::new("audio", da),
    ];
    let mut trainer = MmqTrainer::new(gpu, &mcfg, &mods)?;
    let first = 1024.min(ITEMS);
    trainer.init_codebooks(&Tensor::from_slice(
        gpu,
        &rows[..first * (dt + da)],
        &[first, dt + da],
    )?)?;
    let mut tok = trainer.snapshot(0, &rows)?;
    tok.train_state = None;
    let tok = AnyTokenizer::Mmq(tok);
    let input = TunedInputs {
        data: rows,
        dim: dt + da,
        rows: (0..ITEMS as u32).collect(),
    };
    let ft = FinetuneConfig::default();
    let mut tuner = FineTuner::new(gpu, &tok, &ft, 2, 0, input)?;
    let joint = tuner.codes()?;
    codes.families[2] = FamilyCodes {
        family: "mmq".into(),
        run: PathBuf::from("bench"),
        levels: joint.levels,
        k: joint.sizes.clone(),
        table: tuner.log_table(&joint),
    };
    let cfg = RankerConfig {
        model: ModelKind::Mcca,
        batch_size: batch,
        seed: 1,
        families: vec!["text".into(), "audio".into(), "mmq".into()],
        finetune: Some(ft),
        ..Default::default()
    };
    let mut ranker = Ranker::new(gpu, &cfg, ITEMS, 20, Some(&codes))?;
    let full = full_history_samples(&p, batch);
    let distinct = {
        let b = p.batch(SplitName::Train, &full)?;
        let mut v: Vec<u32> = b.hist.iter().chain(&b.items).copied().collect();
        v.sort_unstable();
        v.dedup();
        v.len()
    };
    let mut opt = Adam::new(cfg.lr);
    tuner.step(&mut ranker, &mut opt, &p, &full)?;
    gpu.sync()?;
    let t = time_runs(opts.reps, || {
        tuner.step(&mut ranker, &mut opt, &p, &full)?;
        gpu.sync()
    })?;
    let dispatch = dispatch_figures(gpu, opts.reps, || {
        tuner.step(&mut ranker, &mut opt, &p, &full).map(|_| ())
    })?;
    let sps = full.len() as f64 / t.median_s;
    Ok(record(
        gpu,
        "baf_step",
        &t,
        opts.quick,
        merge(
            json!({
                "samples_per_s": sps,
                "ml1m_epoch_s": ML1M_TRAIN / sps,
                "batch": full.len(), "history": 20, "items": ITEMS,
                "distinct_items": distinct, "dims": [dt, da], "tokens": 6, "k": mcfg.k,
                "params": ranker.store.num_elements() + tuner.tok.store().num_elements(),
            }),
            dispatch,
        ),
    ))
}
