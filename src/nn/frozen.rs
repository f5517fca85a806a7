//! A trained MLP's weights for inference only: run on the GPU (fused matmul + bias +
//! activation per layer) or on the CPU (plain Rust, for a loaded model with no device).
//!
//! Fitted tokenizers keep their weights on the CPU as [`NamedTensor`]s (what checkpoints
//! hold); [`FrozenMlp::from_named`] picks one MLP's layers out of them by the names
//! [`crate::nn::Mlp`] gives, and [`FrozenMlp::upload`] puts them on a device for a batch of
//! forward passes.

use super::Activation;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::io::checkpoint::NamedTensor;
use crate::kernels::elementwise::{unary, Unary};
use crate::kernels::matmul::{matmul, MatmulOpts};
use crate::tensor::Tensor;

/// One Linear layer: `W [out, in]`, optional bias `[out]`.
#[derive(Clone, Debug)]
struct Layer {
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
    fan_in: usize,
    fan_out: usize,
}

/// The weights of an MLP laid out as [`crate::nn::Mlp`] names them, for inference.
#[derive(Clone, Debug)]
pub struct FrozenMlp {
    layers: Vec<Layer>,
    act: Activation,
}

impl FrozenMlp {
    /// Picks the layers of the MLP `name` with layer `widths` (input first) out of `params`:
    /// `{name}.{k}.weight` (and `.bias` when `bias`), `k = 2·i` with an activation, `i`
    /// without one — [`crate::nn::Mlp`]'s names. Checks every shape.
    pub fn from_named(
        params: &[NamedTensor],
        name: &str,
        widths: &[usize],
        bias: bool,
        act: Activation,
    ) -> Result<FrozenMlp> {
        if widths.len() < 2 {
            return Err(Error::Invalid(format!(
                "{name}: an MLP needs at least two widths, not {widths:?}"
            )));
        }
        let stride = if act == Activation::None { 1 } else { 2 };
        let find = |n: String, shape: Vec<usize>| -> Result<Vec<f32>> {
            match params.iter().find(|t| t.name == n) {
                Some(t) if t.shape == shape && t.data.len() == shape.iter().product::<usize>() => {
                    Ok(t.data.clone())
                }
                Some(t) => Err(Error::Invalid(format!(
                    "parameter `{n}` has shape {:?}, expected {shape:?}",
                    t.shape
                ))),
                None => Err(Error::Invalid(format!("parameter `{n}` is missing"))),
            }
        };
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                let k = i * stride;
                Ok(Layer {
                    weight: find(format!("{name}.{k}.weight"), vec![w[1], w[0]])?,
                    bias: if bias {
                        Some(find(format!("{name}.{k}.bias"), vec![w[1]])?)
                    } else {
                        None
                    },
                    fan_in: w[0],
                    fan_out: w[1],
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(FrozenMlp { layers, act })
    }

    /// Input width.
    pub fn in_features(&self) -> usize {
        self.layers[0].fan_in
    }

    /// Output width.
    pub fn out_features(&self) -> usize {
        self.layers[self.layers.len() - 1].fan_out
    }

    /// Uploads the weights to `gpu`.
    pub fn upload(&self, gpu: &Gpu) -> Result<GpuMlp> {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                let w = Tensor::from_slice(gpu, &l.weight, &[l.fan_out, l.fan_in])?;
                let b = match &l.bias {
                    Some(b) => Some(Tensor::from_slice(gpu, b, &[l.fan_out])?),
                    None => None,
                };
                Ok((w, b))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(GpuMlp {
            layers,
            act: self.act,
        })
    }

    /// The forward pass of `x` (rows of width [`FrozenMlp::in_features`]) in plain Rust (f32;
    /// the GPU's summation order is not reproduced bit for bit).
    pub fn forward_cpu(&self, x: &[f32]) -> Vec<f32> {
        let n = x.len() / self.in_features().max(1);
        let mut out = Vec::with_capacity(n * self.out_features());
        for row in x.chunks_exact(self.in_features()) {
            let mut h = row.to_vec();
            let last = self.layers.len() - 1;
            for (j, l) in self.layers.iter().enumerate() {
                let y = (0..l.fan_out)
                    .map(|o| {
                        let w = &l.weight[o * l.fan_in..(o + 1) * l.fan_in];
                        let mut s: f32 = w.iter().zip(&h).map(|(a, b)| a * b).sum();
                        if let Some(b) = &l.bias {
                            s += b[o];
                        }
                        if j < last {
                            self.act.cpu(s)
                        } else {
                            s
                        }
                    })
                    .collect();
                h = y;
            }
            out.extend_from_slice(&h);
        }
        out
    }
}

/// An MLP's weights on a device (see [`FrozenMlp::upload`]).
pub struct GpuMlp {
    layers: Vec<(Tensor, Option<Tensor>)>,
    act: Activation,
}

impl GpuMlp {
    /// The forward pass of `x` `[rows, in]`: one fused matmul (+ bias + activation) per layer,
    /// no activation after the last, exactly as [`crate::autograd::Graph::linear`] computes
    /// the training forward value.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        let last = self.layers.len() - 1;
        for (i, (w, b)) in self.layers.iter().enumerate() {
            let act = if i < last { self.act } else { Activation::None };
            let mut o = MatmulOpts::new().trans_b(true);
            if let Some(b) = b {
                o = o.bias(b);
            }
            h = if act == Activation::Gelu {
                unary(&matmul(&h, w, &o)?, Unary::Gelu)?
            } else {
                matmul(&h, w, &o.act(act))?
            };
        }
        Ok(h)
    }
}
