//! The TOML configuration: every hyperparameter, with the papers' defaults.
//!
//! `semid config --method M` prints the defaults of method M; `--config FILE` reads a file in
//! the same layout, where any omitted key keeps its default.

use crate::error::{Error, Result};
use crate::quant::mmq::MmqConfig;
use crate::quant::psrq::PsrqConfig;
use crate::quant::rq_kmeans::RqKMeansConfig;
use crate::quant::rqvae::RqVaeConfig;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Tokenization methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Residual k-means (the papers' baseline).
    RqKmeans,
    /// Progressive semantic residual quantization (PSRQ).
    Psrq,
    /// Residual-quantized autoencoder (RQ-VAE), TIGER's learned tokenizer.
    Rqvae,
    /// Multimodal mixture-of-quantization (MMQ): shared and modality-specific experts, one
    /// token each, over all modalities at once.
    Mmq,
}

impl Method {
    /// The method's name as written in configs and checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            Method::RqKmeans => "rq-kmeans",
            Method::Psrq => "psrq",
            Method::Rqvae => "rqvae",
            Method::Mmq => "mmq",
        }
    }
}

/// How the modal-joint input of PSRQ (S^o) is formed from several modalities; MMQ's input is
/// formed the same way (`normalize` applies, `enabled` does not).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JointConfig {
    /// Also tokenize the concatenated modalities (the modal-joint IDs S^o).
    pub enabled: bool,
    /// L2-normalise each modality's rows before concatenating, so modalities of different
    /// widths weigh the same.
    pub normalize: bool,
}

impl Default for JointConfig {
    fn default() -> Self {
        JointConfig {
            enabled: true,
            normalize: true,
        }
    }
}

/// Every hyperparameter of a tokenize run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct SemidConfig {
    /// Which tokenizer to fit.
    pub method: Method,
    /// Append a deduplicating suffix level when items share a full code (as TIGER does).
    pub dedup: bool,
    /// Settings of the modal-joint IDs.
    pub joint: JointConfig,
    /// PSRQ settings.
    pub psrq: PsrqConfig,
    /// RQ-KMeans settings.
    pub rq_kmeans: RqKMeansConfig,
    /// RQ-VAE settings.
    pub rqvae: RqVaeConfig,
    /// MMQ settings.
    pub mmq: MmqConfig,
}

impl Default for SemidConfig {
    fn default() -> Self {
        SemidConfig {
            method: Method::Psrq,
            dedup: true,
            joint: JointConfig::default(),
            psrq: PsrqConfig::default(),
            rq_kmeans: RqKMeansConfig::default(),
            rqvae: RqVaeConfig::default(),
            mmq: MmqConfig::default(),
        }
    }
}

/// Reads a TOML settings file into `T`; a parse error names the file and the line.
pub fn load_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    toml::from_str(&text).map_err(|e| Error::Data {
        file: path.to_path_buf(),
        row: e
            .span()
            .map(|s| text[..s.start].lines().count().max(1))
            .unwrap_or(0),
        field: "toml".into(),
        message: e.message().to_string(),
    })
}

impl SemidConfig {
    /// Reads a TOML file; omitted keys keep their defaults, unknown keys are errors.
    pub fn load(path: &Path) -> Result<SemidConfig> {
        load_toml(path)
    }

    /// The TOML text of the settings that matter for `method` (the defaults when fresh).
    pub fn to_toml_for(&self, method: Method) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        struct Psrq<'a> {
            method: Method,
            dedup: bool,
            joint: &'a JointConfig,
            psrq: &'a PsrqConfig,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        struct Rq<'a> {
            method: Method,
            dedup: bool,
            joint: &'a JointConfig,
            rq_kmeans: &'a RqKMeansConfig,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        struct Vae<'a> {
            method: Method,
            dedup: bool,
            joint: &'a JointConfig,
            rqvae: &'a RqVaeConfig,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        struct Mmq<'a> {
            method: Method,
            dedup: bool,
            joint: &'a JointConfig,
            mmq: &'a MmqConfig,
        }
        let r = match method {
            Method::Psrq => toml::to_string_pretty(&Psrq {
                method,
                dedup: self.dedup,
                joint: &self.joint,
                psrq: &self.psrq,
            }),
            Method::RqKmeans => toml::to_string_pretty(&Rq {
                method,
                dedup: self.dedup,
                joint: &self.joint,
                rq_kmeans: &self.rq_kmeans,
            }),
            Method::Rqvae => toml::to_string_pretty(&Vae {
                method,
                dedup: self.dedup,
                joint: &self.joint,
                rqvae: &self.rqvae,
            }),
            Method::Mmq => toml::to_string_pretty(&Mmq {
                method,
                dedup: self.dedup,
                joint: &self.joint,
                mmq: &self.mmq,
            }),
        };
        r.unwrap_or_else(|e| format!("# could not render the config: {e}\n"))
    }
}
