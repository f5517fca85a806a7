//! What every retriever shares: the [`SeqModel`] interface, the seeded, resumable fit with
//! early stopping on validation Recall@10, and full-catalogue evaluation.
//!
//! Epoch `e` visits the model's training examples in a permutation seeded by `(seed, e)` alone,
//! so a run resumed at an epoch boundary sees the batches the uninterrupted one saw. Losses are
//! read back in windows (one readback per 64 steps) by the same watcher as the tokenizers,
//! which stops a diverged run at the first non-finite loss. After every `eval_every` epochs
//! the model ranks the validation targets; the best epoch's parameters are kept and restored at
//! the end, and training stops after `patience` evaluations without improvement. The test
//! split is never looked at during a fit.

use super::protocol::{EvalSplit, SeqProtocol};
use crate::error::Result;
use crate::io::NamedTensor;
use crate::metrics::retrieval::{RetrievalMetrics, DEFAULT_KS};
use crate::nn::ParamStore;
use crate::optim::{Adam, Optimizer, OptimizerState};
use crate::quant::epochs::{epoch_rng, LossWatch};
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// A sequential recommender: trained on `(user, end)` examples, ranking the catalogue.
pub trait SeqModel {
    /// The parameters.
    fn store(&self) -> &ParamStore;
    /// The parameters, for updates.
    fn store_mut(&mut self) -> &mut ParamStore;
    /// The training examples `(user, end)`: the model learns from `train_seq(user)[..end]`.
    fn examples(&self, p: &SeqProtocol) -> Vec<(u32, u32)>;
    /// One step on `batch`, recorded and submitted; the loss `[1]` returned unread.
    fn train_step(
        &mut self,
        opt: &mut dyn Optimizer,
        p: &SeqProtocol,
        batch: &[(u32, u32)],
        step: u64,
    ) -> Result<Tensor>;
    /// The top `k` `(item, score)` of each user for `split`, best first, seen items filtered
    /// as the protocol says.
    fn rank(
        &self,
        p: &SeqProtocol,
        split: EvalSplit,
        users: &[u32],
        k: usize,
    ) -> Result<Vec<Vec<(u32, f32)>>>;
}

/// The training settings shared by the retrievers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FitConfig {
    /// Most epochs.
    pub epochs: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f32,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f32,
    /// Global gradient-norm clip (0 = none).
    pub clip: f32,
    /// Validate after every this many epochs.
    pub eval_every: usize,
    /// Stop after this many validations without a better Recall@10.
    pub patience: usize,
    /// Users ranked per evaluation batch.
    pub eval_batch: usize,
    /// Seed of initialisation, dropout and example order.
    pub seed: u64,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig {
            epochs: 50,
            batch_size: 128,
            lr: 1e-3,
            weight_decay: 0.0,
            clip: 1.0,
            eval_every: 1,
            patience: 5,
            eval_batch: 256,
            seed: 1,
        }
    }
}

/// Where a fit stands, for a progress display.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// Epoch under way (0-based).
    pub epoch: usize,
    /// Epochs planned.
    pub epochs: usize,
    /// Steps of this epoch done.
    pub step: usize,
    /// Steps per epoch.
    pub steps: usize,
    /// Last loss window's mean.
    pub loss: Option<f64>,
    /// Validation Recall@10 so far, one per evaluation.
    pub valid_recall10: Vec<f64>,
}

/// Everything a resumable checkpoint holds besides the parameters.
#[derive(Clone, Debug, Default)]
pub struct FitState {
    /// Epochs finished.
    pub epoch: usize,
    /// Steps done in all.
    pub steps: u64,
    /// Adam's state.
    pub optimizer: OptimizerState,
    /// `(epoch, Recall@10)` of each validation.
    pub valid: Vec<(usize, f64)>,
    /// The best validation's epoch and parameters.
    pub best: Option<(usize, Vec<NamedTensor>)>,
    /// Whether early stopping ended the fit.
    pub stopped: bool,
}

/// What a fit did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitSummary {
    /// `(epoch, validation Recall@10)`.
    pub valid_recall10: Vec<(usize, f64)>,
    /// The epoch whose parameters were kept (1-based count of epochs trained).
    pub best_epoch: usize,
    /// Steps in all.
    pub steps: u64,
    /// Whether early stopping ended it.
    pub stopped_early: bool,
    /// Training examples per epoch.
    pub examples: usize,
    /// Seconds of training (this process).
    pub train_seconds: f64,
}

/// Callbacks of [`fit`].
pub struct Hooks<'a> {
    /// Called after every step and evaluation.
    pub progress: &'a mut dyn FnMut(&Progress),
    /// Called at every epoch end with the state to save.
    pub checkpoint: &'a mut dyn FnMut(&ParamStore, &FitState) -> Result<()>,
    /// A state to resume from (parameters already loaded into the model).
    pub resume: Option<FitState>,
}

/// Trains `model` on `p` (module docs).
pub fn fit(
    model: &mut dyn SeqModel,
    p: &SeqProtocol,
    cfg: &FitConfig,
    hooks: Hooks<'_>,
) -> Result<FitSummary> {
    let examples = model.examples(p);
    let bs = cfg.batch_size.clamp(1, examples.len().max(1));
    let steps = examples.len().div_ceil(bs);
    let mut opt = Adam::adamw(cfg.lr, cfg.weight_decay);
    if cfg.clip > 0.0 {
        opt = opt.clip_grad_norm(cfg.clip);
    }
    let mut st = hooks.resume.unwrap_or_default();
    if !st.optimizer.tensors.is_empty() {
        opt.import_state(model.store(), &st.optimizer)?;
    }
    let mut watch = LossWatch::new("retrieve");
    let started = Instant::now();
    let mut last = None;
    let recalls = |st: &FitState| st.valid.iter().map(|v| v.1).collect::<Vec<_>>();
    while st.epoch < cfg.epochs && !st.stopped {
        let mut order = examples.clone();
        epoch_rng(cfg.seed, st.epoch).shuffle(&mut order);
        for (i, chunk) in order.chunks(bs).enumerate() {
            let loss = model.train_step(&mut opt, p, chunk, st.steps)?;
            st.steps += 1;
            if let Some(l) = watch.push(st.epoch, loss)? {
                last = Some(l);
            }
            (hooks.progress)(&Progress {
                epoch: st.epoch,
                epochs: cfg.epochs,
                step: i + 1,
                steps,
                loss: last,
                valid_recall10: recalls(&st),
            });
        }
        if let Some(l) = watch.check()? {
            last = Some(l);
        }
        st.epoch += 1;
        if st.epoch.is_multiple_of(cfg.eval_every.max(1)) || st.epoch == cfg.epochs {
            let m = evaluate(model, p, EvalSplit::Valid, cfg.eval_batch)?;
            let r = m.recall_at(10).unwrap_or(0.0);
            st.valid.push((st.epoch, r));
            let best = st.best.as_ref().map(|(e, _)| {
                st.valid
                    .iter()
                    .find(|v| v.0 == *e)
                    .map_or(f64::MIN, |v| v.1)
            });
            if best.is_none_or(|b| r > b) {
                st.best = Some((st.epoch, model.store().to_named()?));
            }
            let best_epoch = st.best.as_ref().map_or(st.epoch, |b| b.0);
            let since = st.valid.iter().filter(|v| v.0 > best_epoch).count();
            st.stopped = since >= cfg.patience.max(1);
            (hooks.progress)(&Progress {
                epoch: st.epoch,
                epochs: cfg.epochs,
                step: steps,
                steps,
                loss: last,
                valid_recall10: recalls(&st),
            });
        }
        st.optimizer = opt.export_state()?;
        (hooks.checkpoint)(model.store(), &st)?;
    }
    let best_epoch = match &st.best {
        Some((e, params)) => {
            for t in params {
                model.store_mut().set(&t.name, &t.data)?;
            }
            *e
        }
        None => st.epoch,
    };
    Ok(FitSummary {
        valid_recall10: st.valid.clone(),
        best_epoch,
        steps: st.steps,
        stopped_early: st.stopped && st.epoch < cfg.epochs,
        examples: examples.len(),
        train_seconds: started.elapsed().as_secs_f64(),
    })
}

/// A ranked list: `(item, score)`, best first.
pub type Ranked = Vec<(u32, f32)>;

/// The ranked lists (K = 20) of every held-out user on `split`, in batches of `batch` users.
pub fn ranked_lists(
    model: &dyn SeqModel,
    p: &SeqProtocol,
    split: EvalSplit,
    batch: usize,
) -> Result<(Vec<u32>, Vec<Ranked>)> {
    let users = p.eval_users();
    let k = *DEFAULT_KS.iter().max().unwrap_or(&20);
    let mut lists = Vec::with_capacity(users.len());
    for chunk in users.chunks(batch.max(1)) {
        lists.extend(model.rank(p, split, chunk, k)?);
    }
    Ok((users, lists))
}

/// Recall/NDCG at 5, 10, 20 of `model` on `split` over every held-out user, cold targets apart.
pub fn evaluate(
    model: &dyn SeqModel,
    p: &SeqProtocol,
    split: EvalSplit,
    batch: usize,
) -> Result<RetrievalMetrics> {
    let (users, lists) = ranked_lists(model, p, split, batch)?;
    score_lists(p, split, &users, &lists)
}

/// Scores ranked lists of `users` on `split`.
pub fn score_lists(
    p: &SeqProtocol,
    split: EvalSplit,
    users: &[u32],
    lists: &[Vec<(u32, f32)>],
) -> Result<RetrievalMetrics> {
    let targets: Vec<u32> = users
        .iter()
        .map(|&u| p.target(split, u as usize).unwrap_or(u32::MAX))
        .collect();
    let cold: Vec<bool> = targets.iter().map(|&t| p.is_cold(t)).collect();
    let ids: Vec<Vec<u32>> = lists
        .iter()
        .map(|l| l.iter().map(|x| x.0).collect())
        .collect();
    RetrievalMetrics::compute(&ids, &targets, &cold, &DEFAULT_KS)
}

/// The `k` best `(item, score)` of `scores` (one per item), best first, ties to the lower
/// item, skipping `seen` items.
pub fn top_k_filtered(scores: &[f32], k: usize, seen: &[u32]) -> Vec<(u32, f32)> {
    let mut skip = std::collections::HashSet::with_capacity(seen.len());
    skip.extend(seen.iter().copied());
    let mut idx: Vec<u32> = (0..scores.len() as u32)
        .filter(|i| !skip.contains(i))
        .collect();
    let cmp = |a: &u32, b: &u32| {
        scores[*b as usize]
            .total_cmp(&scores[*a as usize])
            .then(a.cmp(b))
    };
    if idx.len() > k {
        idx.select_nth_unstable_by(k, cmp);
        idx.truncate(k);
    }
    idx.sort_by(cmp);
    idx.into_iter().map(|i| (i, scores[i as usize])).collect()
}
