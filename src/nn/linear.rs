//! A fully connected layer.

use super::{Activation, Init, ParamStore};
use crate::autograd::{Graph, Var};
use crate::error::Result;

/// `y = act(x·Wᵀ + b)` with W `[out, in]` (PyTorch's layout) under `{name}.weight` and the
/// optional bias `[out]` under `{name}.bias`.
#[derive(Clone, Debug)]
pub struct Linear {
    /// Name of the weight parameter.
    pub weight: String,
    /// Name of the bias parameter, if any.
    pub bias: Option<String>,
    /// Input width.
    pub in_features: usize,
    /// Output width.
    pub out_features: usize,
}

impl Linear {
    /// Creates the parameters in `store`: the weight by `init` (fan-in `in_features`, fan-out
    /// `out_features`), the bias as zeros — or `U(±1/sqrt(in))` when `init` is
    /// [`Init::TorchLinear`], PyTorch's own default.
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
        init: Init,
    ) -> Result<Linear> {
        let weight = format!("{name}.weight");
        store.init(
            &weight,
            &[out_features, in_features],
            init,
            in_features,
            out_features,
        )?;
        let bias = if bias {
            let b = format!("{name}.bias");
            let binit = if init == Init::TorchLinear {
                Init::TorchLinear
            } else {
                Init::Zeros
            };
            store.init(&b, &[out_features], binit, in_features, out_features)?;
            Some(b)
        } else {
            None
        };
        Ok(Linear {
            weight,
            bias,
            in_features,
            out_features,
        })
    }

    /// `x·Wᵀ + b` for x `[.., in]`.
    pub fn forward(&self, g: &Graph, store: &ParamStore, x: &Var) -> Result<Var> {
        self.forward_act(g, store, x, Activation::None)
    }

    /// `act(x·Wᵀ + b)`, fused into one matmul kernel (see [`Graph::linear`]).
    pub fn forward_act(
        &self,
        g: &Graph,
        store: &ParamStore,
        x: &Var,
        act: Activation,
    ) -> Result<Var> {
        let w = g.param(store, &self.weight)?;
        let b = match &self.bias {
            Some(n) => Some(g.param(store, n)?),
            None => None,
        };
        g.linear(x, &w, b.as_ref(), act)
    }
}
