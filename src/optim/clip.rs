//! Global gradient norms, on the GPU.

use super::updates;
use crate::autograd::Grads;
use crate::error::Result;
use crate::kernels::elementwise::{unary, Unary};
use crate::kernels::optim::sum_of_squares;
use crate::nn::ParamStore;
use crate::tensor::Tensor;

/// Σ g² over the gradients of every trainable parameter of `store` (those an optimizer would
/// update), as a one-element GPU tensor; `None` when there are none.
pub fn grad_sum_sq(store: &ParamStore, grads: &Grads) -> Result<Option<Tensor>> {
    let ups = updates(store, grads)?;
    if ups.is_empty() {
        return Ok(None);
    }
    let gs: Vec<&Tensor> = ups.iter().map(|(_, g)| *g).collect();
    Ok(Some(sum_of_squares(&gs)?))
}

/// The global L2 norm of every parameter gradient in `grads`, as a one-element GPU tensor
/// (read it back only when you want to log it); zero when there are none.
pub fn global_grad_norm(grads: &Grads) -> Result<Option<Tensor>> {
    let gs: Vec<&Tensor> = grads.params().map(|(_, g)| g).collect();
    if gs.is_empty() {
        return Ok(None);
    }
    Ok(Some(unary(&sum_of_squares(&gs)?, Unary::Sqrt)?))
}
