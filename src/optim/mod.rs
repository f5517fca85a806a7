//! Optimizers over a [`ParamStore`] and the [`Grads`] of one backward pass.
//!
//! Each parameter is updated by ONE fused WGSL kernel (`shaders/optim.wgsl`) that reads its
//! gradient and state and writes the parameter and state in place. Clipping by global norm
//! ([`Sgd::clip_grad_norm`], [`Adam::clip_grad_norm`]) sums the squares of every gradient on
//! the GPU first; each update kernel then derives PyTorch's factor
//! `min(1, max_norm / (‖g‖ + 1e-6))` from that sum itself, so nothing is read back and a
//! training step stays one submission.
//!
//! Parameters that are frozen or that got no gradient are skipped (their state untouched),
//! as PyTorch skips parameters whose `.grad` is `None`.

mod adam;
mod clip;
mod sgd;

pub use adam::Adam;
pub use clip::{global_grad_norm, grad_sum_sq};
pub use sgd::Sgd;

use crate::autograd::Grads;
use crate::error::{Error, Result};
use crate::nn::{Param, ParamStore};
use crate::tensor::Tensor;

/// An optimizer's per-parameter state, read back for a checkpoint: tensors named
/// `{kind}.{parameter}` (Adam: `m.` and `v.`; SGD: `momentum.`) and each parameter's step count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimizerState {
    /// The state tensors.
    pub tensors: Vec<crate::io::NamedTensor>,
    /// Updates applied to each parameter.
    pub steps: std::collections::BTreeMap<String, u64>,
}

impl OptimizerState {
    /// The tensor `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<&crate::io::NamedTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// Reads a state tensor back (for [`Optimizer::export_state`]).
pub(crate) fn named(name: String, t: &Tensor) -> Result<crate::io::NamedTensor> {
    Ok(crate::io::NamedTensor {
        name,
        shape: t.shape().to_vec(),
        data: t.to_vec()?,
    })
}

/// Uploads the state tensor `name` for `param` of `store`, checking its size.
pub(crate) fn restore(
    store: &ParamStore,
    state: &OptimizerState,
    name: &str,
    param: &Param,
) -> Result<Tensor> {
    let t = state
        .tensor(name)
        .ok_or_else(|| Error::Invalid(format!("optimizer state: tensor `{name}` is missing")))?;
    if t.data.len() != param.value.numel() {
        return Err(Error::shape(
            "optimizer state",
            format!(
                "`{name}` has {} values for parameter `{}` of shape {:?}",
                t.data.len(),
                param.name,
                param.value.shape()
            ),
        ));
    }
    Tensor::from_slice(store.gpu(), &t.data, param.value.shape())
}

/// An optimizer: one in-place update of every trainable parameter that has a gradient.
pub trait Optimizer {
    /// Records the update kernels (nothing is submitted or read back).
    fn step(&mut self, store: &mut ParamStore, grads: &Grads) -> Result<()>;
    /// The learning rate.
    fn lr(&self) -> f32;
    /// Sets the learning rate (for schedules).
    fn set_lr(&mut self, lr: f32);
    /// The per-parameter state, read back (for checkpoints).
    fn export_state(&self) -> Result<OptimizerState>;
    /// Replaces the state with `state` for the parameters of `store` (a resumed run then
    /// continues exactly where the exported one stood).
    fn import_state(&mut self, store: &ParamStore, state: &OptimizerState) -> Result<()>;
}

/// The (parameter, gradient) pairs an optimizer updates, in store order.
pub(crate) fn updates<'a>(
    store: &'a ParamStore,
    grads: &'a Grads,
) -> Result<Vec<(&'a Param, &'a Tensor)>> {
    let mut out = Vec::new();
    for p in store.iter() {
        if !p.trainable {
            continue;
        }
        if let Some(g) = grads.param(&p.name) {
            if g.numel() != p.value.numel() {
                return Err(Error::shape(
                    "optimizer step",
                    format!(
                        "gradient {:?} for parameter `{}` of shape {:?}",
                        g.shape(),
                        p.name,
                        p.value.shape()
                    ),
                ));
            }
            out.push((p, g));
        }
    }
    Ok(out)
}
