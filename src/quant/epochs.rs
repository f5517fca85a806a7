//! The epoch loop of the learned tokenizers (RQ-VAE, MMQ): seeded shuffled mini-batches,
//! progress, and a checkpoint every few epochs.

use crate::error::Result;
use crate::gpu::Gpu;
use crate::quant::tokenizer::FitHooks;
use crate::rng::Rng;
use crate::tensor::Tensor;

/// How a learned tokenizer walks over its items.
#[derive(Clone, Copy)]
pub(crate) struct EpochPlan {
    /// Epochs in all.
    pub epochs: usize,
    /// Rows per step (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// Seed of the batch order.
    pub seed: u64,
    /// Call the checkpoint hook every this many epochs (0 = never; not after the last).
    pub checkpoint_every: usize,
    /// The first epoch to run (epochs before it were done before a resume).
    pub start: usize,
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

/// Runs epochs `plan.start..plan.epochs` over the rows: `progress(epoch,
/// epochs)` before each epoch, `step(trainer, batch)` for each batch of one epoch's seeded
/// permutation, and `checkpoint(trainer, epochs_done)` every `plan.checkpoint_every` epochs.
pub(crate) fn run_epochs<T>(
    rows: &TrainRows<'_>,
    plan: &EpochPlan,
    trainer: &mut T,
    progress: &mut dyn FnMut(usize, usize),
    mut step: impl FnMut(&mut T, &Tensor) -> Result<()>,
    mut checkpoint: impl FnMut(&mut T, usize) -> Result<()>,
) -> Result<()> {
    let (gpu, x, dim) = (rows.gpu, rows.x, rows.dim);
    let n = x.len() / dim.max(1);
    let bs = plan.batch_size.min(n).max(1);
    let mut batch = Vec::with_capacity(bs * dim);
    for epoch in plan.start..plan.epochs {
        progress(epoch, plan.epochs);
        let mut order: Vec<usize> = (0..n).collect();
        epoch_rng(plan.seed, epoch).shuffle(&mut order);
        for chunk in order.chunks(bs) {
            batch.clear();
            for &i in chunk {
                batch.extend_from_slice(&x[i * dim..(i + 1) * dim]);
            }
            let xb = Tensor::from_slice(gpu, &batch, &[chunk.len(), dim])?;
            step(trainer, &xb)?;
        }
        let done = epoch + 1;
        if plan.checkpoint_every > 0 && done % plan.checkpoint_every == 0 && done < plan.epochs {
            checkpoint(trainer, done)?;
        }
    }
    Ok(())
}

/// What the shared fit loop ([`fit_epochs`]) needs of a learned tokenizer's trainer.
pub(crate) trait EpochTrainer {
    /// The fitted model a snapshot gives.
    type Model;
    /// One recorded training step on a batch, with its dead-code bookkeeping (or a flush).
    fn train_batch(&mut self, xb: &Tensor) -> Result<()>;
    /// Whether the codebooks still wait for their k-means initialisation.
    fn needs_init(&self) -> bool;
    /// Initialises the codebooks from a batch.
    fn init_codebooks(&mut self, xb: &Tensor) -> Result<()>;
    /// The model so far, marked with `epochs_done`, given the training items.
    fn snapshot(&self, epochs_done: usize, x: &[f32]) -> Result<Self::Model>;
}

/// The fit of a learned tokenizer after its trainer is built (and loaded when resuming, from a
/// model that had trained `resumed` epochs): runs the remaining epochs with checkpoints,
/// initialises the codebooks from the first batch if no step ran, and returns the model marked
/// with the epochs it has trained.
pub(crate) fn fit_epochs<T: EpochTrainer>(
    rows: &TrainRows<'_>,
    plan: &EpochPlan,
    trainer: &mut T,
    resumed: Option<usize>,
    hooks: FitHooks<'_, T::Model>,
) -> Result<T::Model> {
    let plan = EpochPlan {
        start: resumed.map_or(0, |e| e.min(plan.epochs)),
        ..*plan
    };
    let on_level = hooks.on_level;
    run_epochs(
        rows,
        &plan,
        trainer,
        hooks.progress,
        |t, xb| t.train_batch(xb),
        |t, done| on_level(&t.snapshot(done, rows.x)?),
    )?;
    if trainer.needs_init() {
        // No step ran (zero epochs): still initialise the codebooks so the codes mean
        // something.
        let n = rows.x.len() / rows.dim.max(1);
        let bs = plan.batch_size.min(n);
        let head = &rows.x[..bs * rows.dim];
        trainer.init_codebooks(&Tensor::from_slice(rows.gpu, head, &[bs, rows.dim])?)?;
    }
    (hooks.progress)(plan.epochs, plan.epochs);
    trainer.snapshot(plan.epochs.max(resumed.unwrap_or(0)), rows.x)
}
