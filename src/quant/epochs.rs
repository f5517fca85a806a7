//! The fit of the learned tokenizers (RQ-VAE, MMQ): checks, resume, seeded shuffled
//! mini-batches, progress, and a checkpoint every few epochs.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::quant::tokenizer::FitHooks;
use crate::rng::Rng;
use crate::tensor::Tensor;

/// How a learned tokenizer walks over its items.
pub(crate) struct EpochPlan {
    /// Method name, for errors (`rqvae`, `mmq`).
    pub method: &'static str,
    /// Epochs in all.
    pub epochs: usize,
    /// Rows per step (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// Seed of the batch order.
    pub seed: u64,
    /// Call the checkpoint hook every this many epochs (0 = never; not after the last).
    pub checkpoint_every: usize,
    /// Codes per codebook when the first batch initialises them by k-means (it then needs at
    /// least that many rows), else `None`.
    pub kmeans_init_k: Option<usize>,
}

/// The items a learned tokenizer trains on: `x` holds `n × dim` values; batches go to `gpu`.
pub(crate) struct TrainRows<'a> {
    /// The device.
    pub gpu: &'a Gpu,
    /// Row-major values.
    pub x: &'a [f32],
    /// Row width.
    pub dim: usize,
}

/// The batch-order generator of `epoch` (independent of earlier epochs, so a resumed fit
/// sees the same batches).
pub(crate) fn epoch_rng(seed: u64, epoch: usize) -> Rng {
    Rng::new(seed ^ (epoch as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// What the shared fit loop ([`fit_epochs`]) needs of a learned tokenizer's trainer.
pub(crate) trait EpochTrainer {
    /// The fitted model a snapshot gives.
    type Model;
    /// Continues from a saved model; returns the epochs it had trained.
    fn resume_from(&mut self, model: &Self::Model) -> Result<usize>;
    /// One recorded training step on a batch, with its dead-code bookkeeping (or a flush);
    /// returns the step's loss (`[1]`, still on the GPU).
    fn train_batch(&mut self, xb: &Tensor) -> Result<Tensor>;
    /// Whether the codebooks still wait for their k-means initialisation.
    fn needs_init(&self) -> bool;
    /// Initialises the codebooks from a batch.
    fn init_codebooks(&mut self, xb: &Tensor) -> Result<()>;
    /// The model so far, marked with `epochs_done`, given the training items.
    fn snapshot(&self, epochs_done: usize, x: &[f32]) -> Result<Self::Model>;
}

/// The fit of a learned tokenizer once its trainer is built: checks the items against the
/// plan, resumes from `hooks.resume`, runs the remaining epochs (`progress(epoch, epochs)`
/// before each, one step per batch of the epoch's seeded permutation, `on_level` with a
/// snapshot every `checkpoint_every` epochs), initialises the codebooks from the first batch if
/// no step ran, and returns the model marked with the epochs it has trained.
pub(crate) fn fit_epochs<T: EpochTrainer>(
    rows: &TrainRows<'_>,
    plan: &EpochPlan,
    trainer: &mut T,
    hooks: FitHooks<'_, T::Model>,
) -> Result<T::Model> {
    let (gpu, x, dim) = (rows.gpu, rows.x, rows.dim);
    let n = x.len() / dim.max(1);
    if n == 0 {
        return Err(Error::Invalid(format!("{}: no items to fit", plan.method)));
    }
    let bs = plan.batch_size.min(n).max(1);
    if let (Some(k), None) = (plan.kmeans_init_k, &hooks.resume) {
        if bs < k {
            return Err(Error::Invalid(format!(
                "{}: the k-means initialisation of {k} codes needs a first batch of at least \
                 that many items, not {bs} (lower k, raise batch_size, or set kmeans_init = \
                 false)",
                plan.method
            )));
        }
    }
    let resumed = match &hooks.resume {
        Some(m) => Some(trainer.resume_from(m)?),
        None => None,
    };
    let mut batch = Vec::with_capacity(bs * dim);
    let mut watch = LossWatch::new(plan.method);
    // The first step initialises the codebooks from its batch (a full one: the first chunk of
    // an epoch has min(batch_size, n) ≥ k rows, checked above).
    for epoch in resumed.map_or(0, |e| e.min(plan.epochs))..plan.epochs {
        (hooks.progress)(epoch, plan.epochs);
        let mut order: Vec<usize> = (0..n).collect();
        epoch_rng(plan.seed, epoch).shuffle(&mut order);
        for chunk in order.chunks(bs) {
            batch.clear();
            for &i in chunk {
                batch.extend_from_slice(&x[i * dim..(i + 1) * dim]);
            }
            let loss =
                trainer.train_batch(&Tensor::from_slice(gpu, &batch, &[chunk.len(), dim])?)?;
            watch.push(epoch, loss)?;
        }
        // Before any checkpoint: a diverged model must never replace the last good one.
        watch.check()?;
        let done = epoch + 1;
        if plan.checkpoint_every > 0 && done % plan.checkpoint_every == 0 && done < plan.epochs {
            (hooks.on_level)(&trainer.snapshot(done, x)?)?;
        }
    }
    if trainer.needs_init() {
        // No step ran (zero epochs): still initialise the codebooks so the codes mean
        // something.
        trainer.init_codebooks(&Tensor::from_slice(gpu, &x[..bs * dim], &[bs, dim])?)?;
    }
    (hooks.progress)(plan.epochs, plan.epochs);
    trainer.snapshot(plan.epochs.max(resumed.unwrap_or(0)), x)
}

/// Steps whose losses are read back together: one small readback per this many steps keeps
/// the hot path free of per-step stalls, and a diverged run still stops within one window.
pub(crate) const LOSS_WINDOW: usize = 64;

/// Watches the training loss for NaN or infinity. RQ-VAE with a learning rate of 10 once
/// saved NaN weights, gave every item code 0 and exited 0; now the fit stops at the first
/// non-finite loss with an error naming the step, before the next checkpoint is written.
pub(crate) struct LossWatch {
    method: &'static str,
    /// `(epoch, step, loss)` not yet read back.
    pending: Vec<(usize, usize, Tensor)>,
    /// Steps taken in this fit (1-based in messages).
    steps: usize,
}

impl LossWatch {
    pub(crate) fn new(method: &'static str) -> LossWatch {
        LossWatch {
            method,
            pending: Vec::with_capacity(LOSS_WINDOW),
            steps: 0,
        }
    }

    /// Records a step's loss; reads the window back when it is full and then returns the
    /// window's mean loss.
    pub(crate) fn push(&mut self, epoch: usize, loss: Tensor) -> Result<Option<f64>> {
        self.steps += 1;
        self.pending.push((epoch, self.steps, loss));
        if self.pending.len() >= LOSS_WINDOW {
            return self.check();
        }
        Ok(None)
    }

    /// Reads the pending losses back (one readback) and fails at the first non-finite one;
    /// returns their mean (`None` when none were pending).
    pub(crate) fn check(&mut self) -> Result<Option<f64>> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        let refs: Vec<&Tensor> = self.pending.iter().map(|(_, _, t)| t).collect();
        let values = Tensor::read_all(&refs)?;
        for ((epoch, step, _), v) in self.pending.iter().zip(&values) {
            if let Some(x) = v.iter().find(|x| !x.is_finite()) {
                return Err(Error::Diverged {
                    method: self.method.to_string(),
                    epoch: epoch + 1,
                    step: *step,
                    value: *x,
                });
            }
        }
        let n = values.len() as f64;
        let mean = values
            .iter()
            .map(|v| v.iter().map(|&x| x as f64).sum::<f64>())
            .sum::<f64>()
            / n;
        self.pending.clear();
        Ok(Some(mean))
    }
}
