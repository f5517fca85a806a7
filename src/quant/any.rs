//! `AnyTokenizer`: a fitted tokenizer of any method, saved to and loaded from checkpoints.

use super::codes::Codes;
use super::mmq::{Mmq, MmqConfig, ModalitySpec};
use super::psrq::{Psrq, PsrqConfig};
use super::rq_kmeans::{RqKMeans, RqKMeansConfig};
use super::rqvae::{RqVae, RqVaeConfig};
use super::tokenizer::{NamedTensor, Tokenizer};
use super::train_state::TrainState;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::io::{Checkpoint, CheckpointMeta};
use std::path::Path;

/// A fitted tokenizer of any method.
#[derive(Clone, Debug)]
pub enum AnyTokenizer {
    /// RQ-KMeans.
    RqKMeans(RqKMeans),
    /// PSRQ.
    Psrq(Psrq),
    /// RQ-VAE.
    RqVae(RqVae),
    /// MMQ.
    Mmq(Mmq),
}

impl AnyTokenizer {
    fn inner(&self) -> &dyn Tokenizer {
        match self {
            AnyTokenizer::RqKMeans(t) => t,
            AnyTokenizer::Psrq(t) => t,
            AnyTokenizer::RqVae(t) => t,
            AnyTokenizer::Mmq(t) => t,
        }
    }

    /// Gives the tokenizer a device for decoding (RQ-VAE and MMQ use one: their decoders run
    /// on the GPU when they have one, else on the CPU).
    pub fn set_gpu(&mut self, gpu: &Gpu) {
        match self {
            AnyTokenizer::RqVae(t) => t.set_gpu(gpu),
            AnyTokenizer::Mmq(t) => t.set_gpu(gpu),
            _ => {}
        }
    }

    /// Number of fitted levels.
    pub fn levels_fitted(&self) -> usize {
        match self {
            AnyTokenizer::RqKMeans(t) => t.codebooks.len(),
            AnyTokenizer::Psrq(t) => t.codebooks.len(),
            AnyTokenizer::RqVae(t) => t.config.levels,
            AnyTokenizer::Mmq(t) => t.layout().tokens(),
        }
    }

    /// Number of configured levels.
    pub fn levels_configured(&self) -> usize {
        match self {
            AnyTokenizer::RqKMeans(t) => t.config.levels,
            AnyTokenizer::Psrq(t) => t.config.levels,
            AnyTokenizer::RqVae(t) => t.config.levels,
            AnyTokenizer::Mmq(t) => t.layout().tokens(),
        }
    }

    /// Saves as a checkpoint (write-then-rename) with the data fingerprint.
    pub fn save(&self, path: &Path, fingerprint: &str) -> Result<()> {
        let mut state = serde_json::json!({
            "dim": self.dim(),
            "levels_fitted": self.levels_fitted(),
        });
        match self {
            AnyTokenizer::RqVae(t) => state["epochs_done"] = serde_json::json!(t.epochs_done),
            AnyTokenizer::Mmq(t) => {
                state["epochs_done"] = serde_json::json!(t.epochs_done);
                state["modalities"] = serde_json::json!(t.modalities);
            }
            _ => {}
        }
        let mut tensors = self.tensors();
        if let Some(ts) = self.train_state() {
            state["train"] = ts.json();
            tensors.extend(ts.tensors());
        }
        Checkpoint {
            meta: CheckpointMeta {
                method: self.method().to_string(),
                config: self.config_json(),
                fingerprint: fingerprint.to_string(),
                semid_version: env!("CARGO_PKG_VERSION").to_string(),
                state,
            },
            tensors,
        }
        .save(path)
    }

    /// The training state a learned tokenizer carries (to resume exactly).
    pub fn train_state(&self) -> Option<&TrainState> {
        match self {
            AnyTokenizer::RqVae(t) => t.train_state.as_ref(),
            AnyTokenizer::Mmq(t) => t.train_state.as_ref(),
            _ => None,
        }
    }

    /// Loads a checkpoint written by [`AnyTokenizer::save`].
    pub fn load(path: &Path) -> Result<(AnyTokenizer, CheckpointMeta)> {
        let ck = Checkpoint::load(path)?;
        let bad = |m: String| Error::Checkpoint {
            path: path.to_path_buf(),
            message: m,
        };
        let dim = ck.meta.state["dim"]
            .as_u64()
            .ok_or_else(|| bad("state has no input width `dim`".into()))?
            as usize;
        let levels = ck.meta.state["levels_fitted"]
            .as_u64()
            .ok_or_else(|| bad("state has no `levels_fitted`".into()))?
            as usize;
        let codebooks = (0..levels)
            .map(|l| {
                ck.tensor(&format!("codebook.{l}"))
                    .map(|t| t.data.clone())
                    .ok_or_else(|| bad(format!("tensor `codebook.{l}` is missing")))
            })
            .collect::<Result<Vec<_>>>()?;
        let tok = match ck.meta.method.as_str() {
            "rq-kmeans" => {
                let cfg: RqKMeansConfig = serde_json::from_value(ck.meta.config.clone())
                    .map_err(|e| bad(format!("config: {e}")))?;
                AnyTokenizer::RqKMeans(
                    RqKMeans::from_parts(cfg, dim, codebooks).map_err(|e| bad(e.to_string()))?,
                )
            }
            "psrq" => {
                let cfg: PsrqConfig = serde_json::from_value(ck.meta.config.clone())
                    .map_err(|e| bad(format!("config: {e}")))?;
                let scales = ck
                    .tensor("prefix_scales")
                    .map(|t| t.data.clone())
                    .ok_or_else(|| bad("tensor `prefix_scales` is missing".into()))?;
                AnyTokenizer::Psrq(
                    Psrq::from_parts(cfg, dim, codebooks, scales)
                        .map_err(|e| bad(e.to_string()))?,
                )
            }
            "rqvae" => {
                let cfg: RqVaeConfig = serde_json::from_value(ck.meta.config.clone())
                    .map_err(|e| bad(format!("config: {e}")))?;
                let epochs = ck.meta.state["epochs_done"]
                    .as_u64()
                    .ok_or_else(|| bad("state has no `epochs_done`".into()))?
                    as usize;
                AnyTokenizer::RqVae(
                    RqVae::from_parts(cfg, dim, ck.tensors.clone(), epochs)
                        .map_err(|e| bad(e.to_string()))?,
                )
            }
            "mmq" => {
                let cfg: MmqConfig = serde_json::from_value(ck.meta.config.clone())
                    .map_err(|e| bad(format!("config: {e}")))?;
                let modalities: Vec<ModalitySpec> =
                    serde_json::from_value(ck.meta.state["modalities"].clone())
                        .map_err(|e| bad(format!("state `modalities`: {e}")))?;
                for m in &modalities {
                    if let Some(p) = crate::data::names::name_problem(&m.name) {
                        return Err(bad(format!("modality name {:?}: {p}", m.name)));
                    }
                }
                let epochs = ck.meta.state["epochs_done"]
                    .as_u64()
                    .ok_or_else(|| bad("state has no `epochs_done`".into()))?
                    as usize;
                AnyTokenizer::Mmq(
                    Mmq::from_parts(cfg, modalities, ck.tensors.clone(), epochs)
                        .map_err(|e| bad(e.to_string()))?,
                )
            }
            m => return Err(bad(format!("unknown method `{m}`"))),
        };
        let mut tok = tok;
        let ts = TrainState::from_checkpoint(&ck.tensors, &ck.meta.state["train"])
            .map_err(|e| bad(e.to_string()))?;
        match &mut tok {
            AnyTokenizer::RqVae(t) => t.train_state = ts,
            AnyTokenizer::Mmq(t) => t.train_state = ts,
            _ => {}
        }
        Ok((tok, ck.meta))
    }
}

impl Tokenizer for AnyTokenizer {
    fn method(&self) -> &'static str {
        self.inner().method()
    }
    fn dim(&self) -> usize {
        self.inner().dim()
    }
    fn sizes(&self) -> Vec<usize> {
        self.inner().sizes()
    }
    fn encode(&self, gpu: &Gpu, x: &[f32]) -> Result<Codes> {
        self.inner().encode(gpu, x)
    }
    fn level_reconstructions(&self, codes: &Codes) -> Result<Vec<Vec<f32>>> {
        self.inner().level_reconstructions(codes)
    }
    fn input_reconstructions(&self, gpu: &Gpu, x: &[f32], codes: &Codes) -> Result<Vec<Vec<f32>>> {
        self.inner().input_reconstructions(gpu, x, codes)
    }
    fn tensors(&self) -> Vec<NamedTensor> {
        self.inner().tensors()
    }
    fn config_json(&self) -> serde_json::Value {
        self.inner().config_json()
    }
}
