//! A multi-layer perceptron.

use super::{Activation, Init, Linear, ParamStore};
use crate::autograd::{Graph, Var};
use crate::error::{Error, Result};

/// The shape and options of an [`Mlp`].
#[derive(Clone, Debug, PartialEq)]
pub struct MlpConfig {
    /// Layer widths, input first: `[768, 512, 256]` is two Linear layers.
    pub widths: Vec<usize>,
    /// Activation between layers.
    pub act: Activation,
    /// Whether the last layer is followed by the activation too.
    pub final_act: bool,
    /// Whether the Linear layers have biases.
    pub bias: bool,
    /// Weight initialisation.
    pub init: Init,
}

impl MlpConfig {
    /// `widths` with ReLU between layers (not after the last), biases, and PyTorch's default
    /// Linear initialisation.
    pub fn new(widths: &[usize]) -> MlpConfig {
        MlpConfig {
            widths: widths.to_vec(),
            act: Activation::Relu,
            final_act: false,
            bias: true,
            init: Init::TorchLinear,
        }
    }
    /// Sets the activation.
    pub fn act(mut self, act: Activation) -> Self {
        self.act = act;
        self
    }
    /// Sets whether the last layer is activated.
    pub fn final_act(mut self, on: bool) -> Self {
        self.final_act = on;
        self
    }
    /// Sets whether layers have biases.
    pub fn bias(mut self, on: bool) -> Self {
        self.bias = on;
        self
    }
    /// Sets the weight initialisation.
    pub fn init(mut self, init: Init) -> Self {
        self.init = init;
        self
    }
}

/// Linear layers with an activation between them (a fused matmul + bias + activation kernel
/// per layer).
///
/// Parameter names follow PyTorch's `nn.Sequential(Linear, Act, Linear, Act, …, Linear)`:
/// layer `i` is module `2·i` (`{name}.0.weight`, `{name}.2.weight`, …), or module `i` when
/// the activation is [`Activation::None`] (no activation modules). A PyTorch model built that
/// way loads the saved file with `load_state_dict`.
#[derive(Clone, Debug)]
pub struct Mlp {
    /// The layers, input first.
    pub layers: Vec<Linear>,
    /// Activation between layers.
    pub act: Activation,
    /// Whether the last layer is activated.
    pub final_act: bool,
}

impl Mlp {
    /// Creates the parameters of every layer in `store` under `name`.
    pub fn new(store: &mut ParamStore, name: &str, cfg: &MlpConfig) -> Result<Mlp> {
        if cfg.widths.len() < 2 || cfg.widths.contains(&0) {
            return Err(Error::Invalid(format!(
                "an MLP needs at least two non-zero widths, not {:?}",
                cfg.widths
            )));
        }
        let stride = if cfg.act == Activation::None { 1 } else { 2 };
        let layers = cfg
            .widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                Linear::new(
                    store,
                    &format!("{name}.{}", i * stride),
                    w[0],
                    w[1],
                    cfg.bias,
                    cfg.init,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Mlp {
            layers,
            act: cfg.act,
            final_act: cfg.final_act,
        })
    }

    /// Runs every layer on `x` `[.., widths[0]]`.
    pub fn forward(&self, g: &Graph, store: &ParamStore, x: &Var) -> Result<Var> {
        let mut h = x.clone();
        let last = self.layers.len() - 1;
        for (i, l) in self.layers.iter().enumerate() {
            let act = if i < last || self.final_act {
                self.act
            } else {
                Activation::None
            };
            h = l.forward_act(g, store, &h, act)?;
        }
        Ok(h)
    }
}
