//! Layer normalisation.

use super::{Init, ParamStore};
use crate::autograd::{Graph, Var};
use crate::error::Result;
use crate::kernels::norm::LAYERNORM_EPS;

/// PyTorch's `nn.LayerNorm(dim)`: `{name}.weight` (ones) and `{name}.bias` (zeros) of `[dim]`
/// when affine.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    /// Name of the scale, if affine.
    pub weight: Option<String>,
    /// Name of the shift, if affine.
    pub bias: Option<String>,
    /// Normalised width.
    pub dim: usize,
    /// Added to the variance.
    pub eps: f32,
}

impl LayerNorm {
    /// Creates the parameters (when `affine`) with PyTorch's default eps.
    pub fn new(store: &mut ParamStore, name: &str, dim: usize, affine: bool) -> Result<LayerNorm> {
        let (weight, bias) = if affine {
            let w = format!("{name}.weight");
            let b = format!("{name}.bias");
            store.init(&w, &[dim], Init::Ones, dim, dim)?;
            store.init(&b, &[dim], Init::Zeros, dim, dim)?;
            (Some(w), Some(b))
        } else {
            (None, None)
        };
        Ok(LayerNorm {
            weight,
            bias,
            dim,
            eps: LAYERNORM_EPS,
        })
    }

    /// Normalises the last dimension of `x`.
    pub fn forward(&self, g: &Graph, store: &ParamStore, x: &Var) -> Result<Var> {
        let w = self
            .weight
            .as_deref()
            .map(|n| g.param(store, n))
            .transpose()?;
        let b = self
            .bias
            .as_deref()
            .map(|n| g.param(store, n))
            .transpose()?;
        g.layernorm(x, w.as_ref(), b.as_ref(), self.eps)
    }
}
