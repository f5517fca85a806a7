//! The tokenizer being fine-tuned: a fitted MMQ or RQ-VAE loaded into its trainer (whose
//! parameters live on the GPU), recorded into the ranker's graph and read back as a fitted
//! model for encoding and for the tokenizer run it becomes.

use crate::autograd::Graph;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::ParamStore;
use crate::quant::any::AnyTokenizer;
use crate::quant::codes::Codes;
use crate::quant::mmq::MmqTrainer;
use crate::quant::rqvae::RqVaeTrainer;
use crate::quant::soft::SoftForward;
use crate::quant::tokenizer::Tokenizer;
use crate::tensor::Tensor;

/// A learned tokenizer whose parameters a fine-tuning step updates.
pub enum TunedTokenizer {
    /// MMQ: one token per expert, cosine scores.
    Mmq(Box<MmqTrainer>),
    /// RQ-VAE: one token per residual level, L2 scores.
    RqVae(Box<RqVaeTrainer>),
}

impl std::fmt::Debug for TunedTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TunedTokenizer::Mmq(t) => write!(f, "TunedTokenizer::Mmq({t:?})"),
            TunedTokenizer::RqVae(t) => write!(f, "TunedTokenizer::RqVae({t:?})"),
        }
    }
}

/// Why a k-means tokenizer (RQ-KMeans, PSRQ) cannot be tuned.
pub(crate) fn not_tunable(tok: &AnyTokenizer) -> Error {
    Error::Invalid(format!(
        "a {} tokenizer cannot be fine-tuned: its codebooks come from k-means, with no encoder \
         for the ranking loss to reach (fine-tune an rqvae or mmq run)",
        tok.method()
    ))
}

impl TunedTokenizer {
    /// The fitted `tok` on `gpu`, ready to be tuned. Only the learned tokenizers can be: the
    /// k-means ones (RQ-KMeans, PSRQ) have no encoder for a gradient to reach.
    pub fn new(gpu: &Gpu, tok: &AnyTokenizer) -> Result<TunedTokenizer> {
        match tok {
            AnyTokenizer::Mmq(m) => {
                let mut t = MmqTrainer::new(gpu, &m.config, &m.modalities)?;
                t.load(m)?;
                Ok(TunedTokenizer::Mmq(Box::new(t)))
            }
            AnyTokenizer::RqVae(m) => {
                let mut t = RqVaeTrainer::new(gpu, m.dim, &m.config)?;
                t.load(m)?;
                Ok(TunedTokenizer::RqVae(Box::new(t)))
            }
            other => Err(not_tunable(other)),
        }
    }

    /// The method name (`mmq`, `rqvae`).
    pub fn method(&self) -> &'static str {
        match self {
            TunedTokenizer::Mmq(_) => "mmq",
            TunedTokenizer::RqVae(_) => "rqvae",
        }
    }

    /// The parameters.
    pub fn store(&self) -> &ParamStore {
        match self {
            TunedTokenizer::Mmq(t) => t.store(),
            TunedTokenizer::RqVae(t) => t.store(),
        }
    }

    /// The parameters, for the optimizer.
    pub fn store_mut(&mut self) -> &mut ParamStore {
        match self {
            TunedTokenizer::Mmq(t) => t.store_mut(),
            TunedTokenizer::RqVae(t) => t.store_mut(),
        }
    }

    /// Records the soft assignments, hard codes and reconstruction terms of the items `x`.
    pub fn soft_forward(&self, g: &Graph, x: &Tensor, inv_tau: f32) -> Result<SoftForward> {
        match self {
            TunedTokenizer::Mmq(t) => t.soft_forward(g, x, inv_tau),
            TunedTokenizer::RqVae(t) => t.soft_forward(g, x, inv_tau),
        }
    }

    /// The tokenizer as it stands, as a fitted model marked with the `epochs` of its first
    /// stage (no training state: the fine-tuned model is finished). MMQ's mean gates are
    /// averaged over the items `x` (`n × dim`), the items it is fine-tuned for.
    pub fn model(&self, x: &[f32], epochs: usize) -> Result<AnyTokenizer> {
        Ok(match self {
            TunedTokenizer::Mmq(t) => {
                let mut m = t.snapshot(epochs, x)?;
                m.train_state = None;
                AnyTokenizer::Mmq(m)
            }
            TunedTokenizer::RqVae(t) => {
                let mut m = t.snapshot(epochs)?;
                m.train_state = None;
                AnyTokenizer::RqVae(m)
            }
        })
    }

    /// The codes of the items `x` (`n × dim`) under the current parameters.
    pub fn encode(&self, gpu: &Gpu, x: &[f32]) -> Result<Codes> {
        self.model(x, 0)?.encode(gpu, x)
    }
}
