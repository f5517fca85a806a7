//! Training and scoring a [`Ranker`] on a [`RankProtocol`].
//!
//! One step: the batch's indices and masks are uploaded, forward, backward and the Adam update
//! are recorded and submitted together (`Gpu::flush`, no wait); losses are read back once per
//! 64 steps ([`crate::quant::epochs`]' watcher), which also stops a diverged run at the first
//! non-finite loss. Epoch `e` visits the training samples in a permutation seeded by
//! `(seed, e)` alone, so a run resumed from a checkpoint taken after any step sees exactly the
//! batches the uninterrupted run saw and ends bit for bit where it would have.
//!
//! With more than one epoch, validation AUC is computed after each; training stops when it has
//! not improved for [`RankerConfig::patience`](super::RankerConfig::patience) epochs and the
//! parameters of the best epoch are restored. The test split is never looked at here.

use super::model::Ranker;
use super::protocol::{RankProtocol, SplitName};
use crate::autograd::Graph;
use crate::error::{Error, Result};
use crate::io::NamedTensor;
use crate::metrics::ranking::{auc, RankingMetrics};
use crate::optim::{Adam, Optimizer, OptimizerState};
use crate::quant::epochs::{epoch_rng, LossWatch};
use std::time::Instant;

/// Where a fit stands, for a progress display.
#[derive(Clone, Debug, PartialEq)]
pub struct FitProgress {
    /// Epoch (0-based) under way.
    pub epoch: usize,
    /// Epochs planned.
    pub epochs: usize,
    /// Steps of this epoch done.
    pub step: usize,
    /// Steps in an epoch.
    pub steps: usize,
    /// Training samples per second since this fit (or resume) started.
    pub samples_per_s: f64,
    /// Mean loss of the last window of steps read back, if any yet.
    pub loss: Option<f64>,
    /// Validation AUC of each finished epoch.
    pub valid_auc: Vec<f64>,
}

/// Everything a resumable checkpoint holds besides the parameters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FitState {
    /// Epoch under way (equal to the epochs run when finished).
    pub epoch: usize,
    /// Steps of that epoch done.
    pub step: usize,
    /// Steps done in all.
    pub total_steps: u64,
    /// Adam's state.
    pub optimizer: OptimizerState,
    /// Validation AUC after each finished epoch.
    pub valid_auc: Vec<f64>,
    /// The best epoch so far (0-based) and its parameters (kept only with more than one epoch).
    pub best: Option<(usize, Vec<NamedTensor>)>,
    /// Whether early stopping ended the fit.
    pub stopped: bool,
    /// What the step rule keeps besides the ranker ([`StepRule::state`]; fine-tuning: the
    /// tokenizer's parameters and optimizer state, tensor names beginning with
    /// [`EXTRA_PREFIX`], and its optimizer's step counts).
    pub extra: OptimizerState,
}

/// The name prefix of every tensor a [`StepRule`] keeps in a checkpoint.
pub const EXTRA_PREFIX: &str = "ft.";

/// How a fit takes its steps: [`PlainSteps`] trains the ranker alone; behaviour-aware
/// fine-tuning ([`super::finetune`]) also trains the tokenizer whose codes it embeds.
pub trait StepRule {
    /// One training step on samples `idx` of the training split, recorded and submitted; the
    /// loss `[1]` is returned unread.
    fn step(
        &mut self,
        ranker: &mut Ranker,
        opt: &mut dyn Optimizer,
        p: &RankProtocol,
        idx: &[usize],
    ) -> Result<crate::Tensor>;
    /// Called before each validation and at the end (fine-tuning re-encodes the items so the
    /// ranker scores with the tuned codes).
    fn sync_codes(&mut self, _ranker: &mut Ranker) -> Result<()> {
        Ok(())
    }
    /// Everything to checkpoint besides the ranker: tensors named with [`EXTRA_PREFIX`] first,
    /// and step counts.
    fn state(&self) -> Result<OptimizerState> {
        Ok(OptimizerState::default())
    }
    /// The parameters a best epoch keeps besides the ranker's, names beginning with
    /// [`EXTRA_PREFIX`].
    fn best_params(&self) -> Result<Vec<NamedTensor>> {
        Ok(Vec::new())
    }
    /// Restores what [`StepRule::state`] gave, or the parameters [`StepRule::best_params`]
    /// gave (then without counters).
    fn restore(&mut self, _ranker: &mut Ranker, _state: &OptimizerState) -> Result<()> {
        Ok(())
    }
}

/// The ranker trained alone on fixed codes.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlainSteps;

impl StepRule for PlainSteps {
    fn step(
        &mut self,
        ranker: &mut Ranker,
        opt: &mut dyn Optimizer,
        p: &RankProtocol,
        idx: &[usize],
    ) -> Result<crate::Tensor> {
        ranker.train_step(opt, p, idx)
    }
}

/// Callbacks of [`Ranker::fit`].
pub struct FitHooks<'a> {
    /// Called after every step and at each epoch's end.
    pub progress: &'a mut dyn FnMut(&FitProgress),
    /// Called with the ranker and its state every `checkpoint_steps` steps and at each epoch's
    /// end (after its validation), to write a checkpoint.
    pub checkpoint: &'a mut dyn FnMut(&Ranker, &FitState) -> Result<()>,
    /// A state to continue from (the ranker's parameters must be the checkpoint's).
    pub resume: Option<FitState>,
}

/// What a fit did.
#[derive(Clone, Debug, PartialEq)]
pub struct FitReport {
    /// Validation AUC after each epoch run.
    pub valid_auc: Vec<f64>,
    /// The epoch (0-based) whose parameters the ranker holds now.
    pub best_epoch: usize,
    /// Steps run in all (resumed ones included).
    pub steps: u64,
    /// Whether early stopping ended it.
    pub stopped_early: bool,
}

impl Ranker {
    fn adam(&self) -> Adam {
        Adam::adamw(self.config.lr, self.config.weight_decay)
    }

    /// One training step on samples `idx` of the training split, recorded and submitted; the
    /// loss `[1]` is returned unread.
    pub fn train_step(
        &mut self,
        opt: &mut dyn Optimizer,
        p: &RankProtocol,
        idx: &[usize],
    ) -> Result<crate::Tensor> {
        let inp = self.inputs(&p.batch(SplitName::Train, idx)?)?;
        let g = Graph::new(self.store.gpu());
        let loss = self.loss(&g, &inp)?;
        let grads = g.backward(&loss)?;
        opt.step(&mut self.store, &grads)?;
        self.store.gpu().flush()?;
        Ok(loss.value().clone())
    }

    /// Trains on the training split as the settings say (module docs).
    pub fn fit(&mut self, p: &RankProtocol, hooks: FitHooks<'_>) -> Result<FitReport> {
        self.fit_with(p, hooks, &mut PlainSteps)
    }

    /// [`Ranker::fit`] taking its steps by `rule`.
    pub fn fit_with(
        &mut self,
        p: &RankProtocol,
        hooks: FitHooks<'_>,
        rule: &mut dyn StepRule,
    ) -> Result<FitReport> {
        let cfg = self.config.clone();
        let n = p.len(SplitName::Train);
        let bs = cfg.batch_size.min(n).max(1);
        let steps = n.div_ceil(bs);
        let mut opt = self.adam();
        let mut st = hooks.resume.unwrap_or_default();
        if !st.optimizer.tensors.is_empty() {
            opt.import_state(&self.store, &st.optimizer)?;
        }
        if !st.extra.tensors.is_empty() {
            rule.restore(self, &st.extra)?;
        }
        let mut watch = LossWatch::new("rank");
        let started = Instant::now();
        let mut seen = 0usize;
        let mut last_loss = None;
        let progress_of = |st: &FitState, seen: usize, loss| FitProgress {
            epoch: st.epoch,
            epochs: cfg.epochs,
            step: st.step,
            steps,
            samples_per_s: seen as f64 / started.elapsed().as_secs_f64().max(1e-9),
            loss,
            valid_auc: st.valid_auc.clone(),
        };
        while st.epoch < cfg.epochs && !st.stopped {
            let mut order: Vec<usize> = (0..n).collect();
            epoch_rng(cfg.seed, st.epoch).shuffle(&mut order);
            let chunks: Vec<&[usize]> = order.chunks(bs).collect();
            while st.step < steps {
                let loss = rule.step(self, &mut opt, p, chunks[st.step])?;
                seen += chunks[st.step].len();
                st.step += 1;
                st.total_steps += 1;
                if let Some(l) = watch.push(st.epoch, loss)? {
                    last_loss = Some(l);
                }
                (hooks.progress)(&progress_of(&st, seen, last_loss));
                if cfg.checkpoint_steps > 0
                    && st.step.is_multiple_of(cfg.checkpoint_steps)
                    && st.step < steps
                {
                    if let Some(l) = watch.check()? {
                        last_loss = Some(l);
                    }
                    st.optimizer = opt.export_state()?;
                    st.extra = rule.state()?;
                    (hooks.checkpoint)(self, &st)?;
                }
            }
            if let Some(l) = watch.check()? {
                last_loss = Some(l);
            }
            rule.sync_codes(self)?;
            let v = self.valid_auc(p)?;
            st.valid_auc.push(v);
            let best_auc = st.best.as_ref().map(|(e, _)| st.valid_auc[*e]);
            if cfg.epochs > 1 && best_auc.is_none_or(|b| v > b) {
                let mut keep = self.store.to_named()?;
                keep.extend(rule.best_params()?);
                st.best = Some((st.epoch, keep));
            }
            let best_epoch = st.best.as_ref().map_or(st.epoch, |(e, _)| *e);
            if st.epoch - best_epoch >= cfg.patience {
                st.stopped = true;
            }
            st.epoch += 1;
            st.step = 0;
            st.optimizer = opt.export_state()?;
            st.extra = rule.state()?;
            (hooks.progress)(&progress_of(&st, seen, last_loss));
            (hooks.checkpoint)(self, &st)?;
        }
        let best_epoch = match &st.best {
            Some((e, params)) => {
                let (extra, own): (Vec<NamedTensor>, Vec<NamedTensor>) = params
                    .iter()
                    .cloned()
                    .partition(|t| t.name.starts_with(EXTRA_PREFIX));
                for t in &own {
                    self.store.set(&t.name, &t.data)?;
                }
                if !extra.is_empty() {
                    let params = OptimizerState {
                        tensors: extra,
                        steps: Default::default(),
                    };
                    rule.restore(self, &params)?;
                    rule.sync_codes(self)?;
                }
                *e
            }
            None => st.epoch.saturating_sub(1),
        };
        Ok(FitReport {
            valid_auc: st.valid_auc.clone(),
            best_epoch,
            steps: st.total_steps,
            stopped_early: st.stopped && st.epoch < cfg.epochs,
        })
    }

    fn valid_auc(&self, p: &RankProtocol) -> Result<f64> {
        let scores = self.score(p, SplitName::Valid)?;
        auc(p.labels(SplitName::Valid), &scores)?.ok_or_else(|| {
            Error::Invalid(
                "the validation split holds one label only: its AUC, which chooses the epoch, \
                 does not exist"
                    .into(),
            )
        })
    }

    /// The logits of every sample of `split`, in the protocol's order (one readback per
    /// [`RankerConfig::eval_batch_size`](super::RankerConfig::eval_batch_size) samples).
    pub fn score(&self, p: &RankProtocol, split: SplitName) -> Result<Vec<f32>> {
        let n = p.len(split);
        let mut out = Vec::with_capacity(n);
        let idx: Vec<usize> = (0..n).collect();
        for chunk in idx.chunks(self.config.eval_batch_size.max(1)) {
            let inp = self.inputs(&p.batch(split, chunk)?)?;
            let g = Graph::new(self.store.gpu());
            let logits = self.logits(&g, &inp)?;
            let v = logits.value().to_vec()?;
            if let Some(bad) = v.iter().position(|x| !x.is_finite()) {
                return Err(Error::Invalid(format!(
                    "ranker: the {split} sample {} scored {} (the model diverged)",
                    out.len() + bad,
                    v[bad]
                )));
            }
            out.extend(v);
        }
        Ok(out)
    }

    /// The metrics of `split` from [`Ranker::score`].
    pub fn evaluate(&self, p: &RankProtocol, split: SplitName) -> Result<RankingMetrics> {
        let s = self.score(p, split)?;
        RankingMetrics::compute(p.users(split), p.labels(split), &s, &p.cold_flags(split))
    }
}
