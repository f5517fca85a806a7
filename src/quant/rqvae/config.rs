//! RQ-VAE settings: TIGER's architecture and training defaults (NOTES.md §3).

use crate::error::{Error, Result};
use crate::kernels::matmul::Activation;
use crate::quant::cluster::KMeansOptions;
use serde::{Deserialize, Serialize};

/// Activation between the layers of the encoder and decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActivationKind {
    /// max(x, 0) (TIGER).
    Relu,
    /// GELU (erf form).
    Gelu,
    /// Hyperbolic tangent.
    Tanh,
    /// Logistic sigmoid.
    Sigmoid,
}

impl ActivationKind {
    /// The matmul epilogue activation.
    pub fn activation(self) -> Activation {
        match self {
            ActivationKind::Relu => Activation::Relu,
            ActivationKind::Gelu => Activation::Gelu,
            ActivationKind::Tanh => Activation::Tanh,
            ActivationKind::Sigmoid => Activation::Sigmoid,
        }
    }
}

/// Optimizer of the RQ-VAE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// Adam (β 0.9 / 0.999, ε 1e-8), PyTorch semantics.
    Adam,
    /// Plain SGD.
    Sgd,
}

/// RQ-VAE settings; the defaults are TIGER's architecture (NOTES.md §3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RqVaeConfig {
    /// Hidden widths of the encoder, input side first (default `[512, 256, 128]`); the decoder
    /// mirrors them.
    pub hidden: Vec<usize>,
    /// Width of the latent and of every code (default 32).
    pub latent: usize,
    /// Activation between layers (default ReLU; none after the last layer).
    pub activation: ActivationKind,
    /// Whether the Linear layers have biases (default true).
    pub bias: bool,
    /// Number of levels (default 3).
    pub levels: usize,
    /// Codes per level (default 256).
    pub k: usize,
    /// Commitment weight β (default 0.25).
    pub beta: f32,
    /// Optimizer (default Adam; see the module docs).
    pub optimizer: OptimizerKind,
    /// Learning rate (default 1e-3).
    pub lr: f32,
    /// Items per step (default 1,024; the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// Passes over the items (default 100; TIGER trains far longer).
    pub epochs: usize,
    /// Seed of the weights, the batch order, k-means and dead-code re-seeding.
    pub seed: u64,
    /// Initialise the codebooks by residual k-means on the first batch's latents (default
    /// true); otherwise `U(±1/k)` as in VQ-VAE.
    pub kmeans_init: bool,
    /// Settings of the initialising k-means (level l uses seed `seed + l`).
    pub kmeans: KMeansOptions,
    /// Re-seed a code unused for this many consecutive steps (default 20; 0 = never).
    pub dead_code_steps: usize,
    /// Call the checkpoint hook every this many epochs (default 10; 0 = never; the pipeline
    /// also saves at the end).
    pub checkpoint_every: usize,
}

impl Default for RqVaeConfig {
    fn default() -> Self {
        RqVaeConfig {
            hidden: vec![512, 256, 128],
            latent: 32,
            activation: ActivationKind::Relu,
            bias: true,
            levels: 3,
            k: 256,
            beta: 0.25,
            optimizer: OptimizerKind::Adam,
            lr: 1e-3,
            batch_size: 1024,
            epochs: 100,
            seed: 0,
            kmeans_init: true,
            kmeans: KMeansOptions::default(),
            dead_code_steps: 20,
            checkpoint_every: 10,
        }
    }
}

impl RqVaeConfig {
    /// Checks every setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(format!("rqvae: {m}")));
        if self.levels == 0 || self.k == 0 || self.latent == 0 {
            return bad("levels, k and latent must be positive".into());
        }
        if self.hidden.contains(&0) {
            return bad(format!("hidden widths must be positive: {:?}", self.hidden));
        }
        if self.batch_size == 0 {
            return bad("batch_size must be positive".into());
        }
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return bad(format!(
                "beta must be a finite value ≥ 0, not {}",
                self.beta
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr must be a finite value > 0, not {}", self.lr));
        }
        if self.k > u32::MAX as usize {
            return bad(format!("k = {} is too large", self.k));
        }
        Ok(())
    }

    /// Layer widths of the encoder: `[dim, hidden.., latent]`.
    pub fn encoder_widths(&self, dim: usize) -> Vec<usize> {
        let mut w = vec![dim];
        w.extend(&self.hidden);
        w.push(self.latent);
        w
    }

    /// Layer widths of the decoder: `[latent, hidden reversed.., dim]`.
    pub fn decoder_widths(&self, dim: usize) -> Vec<usize> {
        let mut w = vec![self.latent];
        w.extend(self.hidden.iter().rev());
        w.push(dim);
        w
    }
}

/// Name of level `l`'s codebook parameter.
pub fn codebook_name(l: usize) -> String {
    format!("codebook.{l}")
}
