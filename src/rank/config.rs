//! The ranker's settings: which model, the shapes the papers give, and a documented default for
//! every choice they leave open (NOTES.md §1.5–1.6, §6). `semid config --rank` prints them as
//! TOML; `semid rank train --config FILE` reads a file in that layout, omitted keys keeping
//! their defaults.

use super::finetune::FinetuneConfig;
use crate::error::{Error, Result};
use crate::kernels::matmul::Activation;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The ranking model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// DIN over item-ID embeddings only.
    Din,
    /// DIN whose item embedding is the ID embedding plus the sum of one family's per-level
    /// semantic-ID embeddings (the PSRQ paper's Table 3).
    DinSid,
    /// MCCA: per-modality and modal-joint semantic-ID histories attended with the target's
    /// joint embedding as the shared query, plus the ID branch (the PSRQ paper's §4.2).
    Mcca,
}

impl ModelKind {
    /// The name in configs, manifests and reports.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Din => "din",
            ModelKind::DinSid => "din-sid",
            ModelKind::Mcca => "mcca",
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// MCCA's ablations (the PSRQ paper's Table 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Ablation {
    /// The full model.
    Full,
    /// Without modality-specific codes: only the joint family's history (and the ID branch).
    WoMsc,
    /// Without modal-joint codes: no joint family and no shared query; each modality's history
    /// is queried by the target's embedding of that same modality, and the prediction MLP reads
    /// the target's modality embeddings where the full model reads its joint one.
    WoMjc,
}

impl Ablation {
    /// The name in configs and reports.
    pub fn name(self) -> &'static str {
        match self {
            Ablation::Full => "full",
            Ablation::WoMsc => "wo-msc",
            Ablation::WoMjc => "wo-mjc",
        }
    }
}

/// How the activation unit's outputs weigh the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttentionWeights {
    /// DIN's choice: the raw outputs, masked to zero on padding, not normalised, so the pooled
    /// vector's norm carries how strongly the history matches the target.
    Raw,
    /// A softmax over each row's valid positions (MMCTR-Bench's adaptation); a row with no
    /// history pools to zero.
    Softmax,
}

/// The activation of the hidden layers (activation unit and prediction MLP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HiddenAct {
    /// max(x, 0).
    Relu,
    /// Logistic sigmoid (DIN's original activation unit used PReLU/Dice; sigmoid is the
    /// classic smooth choice).
    Sigmoid,
    /// GELU (erf form).
    Gelu,
    /// Hyperbolic tangent.
    Tanh,
}

impl HiddenAct {
    /// The fused matmul activation.
    pub fn activation(self) -> Activation {
        match self {
            HiddenAct::Relu => Activation::Relu,
            HiddenAct::Sigmoid => Activation::Sigmoid,
            HiddenAct::Gelu => Activation::Gelu,
            HiddenAct::Tanh => Activation::Tanh,
        }
    }
}

/// Every setting of a ranker and its training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RankerConfig {
    /// The model (default `din`).
    pub model: ModelKind,
    /// MCCA's ablation (default `full`; must be `full` for the DIN models).
    pub ablation: Ablation,
    /// Families of semantic IDs to embed, by name (`<family>` of a run's `codes_<family>.npy`).
    /// `din-sid`: exactly one. `mcca`: the modality families, then the joint family last
    /// (`wo-mjc` names no joint family). Empty (the default): taken from the code tables —
    /// `din-sid` needs exactly one family there; `mcca` takes the family named `joint` (or
    /// `mmq`) as the joint one and every other family, in run order, as a modality.
    pub families: Vec<String>,
    /// Width of every embedding, d' (the paper: 64).
    pub dim: usize,
    /// Hidden widths of the activation unit over `[e_j, q, e_j − q, e_j ⊙ q]` (DIN: 80, 40;
    /// the output is one weight).
    pub attention_hidden: Vec<usize>,
    /// Hidden widths of the prediction MLP (DIN: 200, 80; the output is one logit).
    pub mlp_hidden: Vec<usize>,
    /// Activation of every hidden layer (default `relu`; the papers do not say).
    pub activation: HiddenAct,
    /// How attention outputs weigh the history (default `raw`, DIN's choice).
    pub weights: AttentionWeights,
    /// One activation unit shared by MCCA's semantic-ID histories instead of one per history
    /// (default false; the paper does not say; the ID branch always has its own).
    pub shared_attention: bool,
    /// Embedding tables start uniform in `±embedding_init` (default 0.05: Keras' default
    /// `Embedding` initialiser, the paper's TensorFlow 2 setting). Never-trained rows (items with
    /// no training event) keep this small noise.
    pub embedding_init: f32,
    /// Samples per training step (the paper: 512 on its larger sets).
    pub batch_size: usize,
    /// Adam's learning rate (default 1e-3).
    pub lr: f32,
    /// Adam's decoupled weight decay (default 0).
    pub weight_decay: f32,
    /// Passes over the training split (the paper: 1).
    pub epochs: usize,
    /// With more than one epoch: stop when validation AUC has not improved for this many epochs,
    /// and keep the epoch with the best validation AUC (default 1).
    pub patience: usize,
    /// Seed of the initialisation and the per-epoch sample order.
    pub seed: u64,
    /// Write a resumable checkpoint every this many steps within an epoch, and at each epoch's
    /// end (default 500; 0: at epoch ends only).
    pub checkpoint_steps: usize,
    /// Samples per forward pass when scoring (default 4,096; does not change a score).
    pub eval_batch_size: usize,
    /// Behaviour-aware fine-tuning of the tokenizer of one embedded family (default none: the
    /// codes are fixed). `semid rank train --finetune-tokenizer RUN` sets it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finetune: Option<FinetuneConfig>,
}

impl Default for RankerConfig {
    fn default() -> Self {
        RankerConfig {
            model: ModelKind::Din,
            ablation: Ablation::Full,
            families: Vec::new(),
            dim: 64,
            attention_hidden: vec![80, 40],
            mlp_hidden: vec![200, 80],
            activation: HiddenAct::Relu,
            weights: AttentionWeights::Raw,
            shared_attention: false,
            embedding_init: 0.05,
            batch_size: 512,
            lr: 1e-3,
            weight_decay: 0.0,
            epochs: 1,
            patience: 1,
            seed: 42,
            checkpoint_steps: 500,
            eval_batch_size: 4096,
            finetune: None,
        }
    }
}

impl RankerConfig {
    /// Checks the settings that do not depend on the data.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(format!("ranker settings: {m}")));
        if self.model != ModelKind::Mcca && self.ablation != Ablation::Full {
            return bad(format!(
                "ablation `{}` is an MCCA ablation; model `{}` has none",
                self.ablation.name(),
                self.model
            ));
        }
        if self.dim == 0 || self.batch_size == 0 || self.eval_batch_size == 0 {
            return bad("dim, batch_size and eval_batch_size must be at least 1".into());
        }
        if self.attention_hidden.contains(&0) || self.mlp_hidden.contains(&0) {
            return bad("hidden widths must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr must be a positive number, not {}", self.lr));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!(
                "weight_decay must be ≥ 0, not {}",
                self.weight_decay
            ));
        }
        if !(self.embedding_init.is_finite() && self.embedding_init > 0.0) {
            return bad(format!(
                "embedding_init must be positive, not {}",
                self.embedding_init
            ));
        }
        if self.patience == 0 {
            return bad("patience must be at least 1".into());
        }
        if let Some(ft) = &self.finetune {
            if self.model == ModelKind::Din {
                return bad(
                    "din embeds no semantic IDs, so it has no tokenizer to fine-tune".into(),
                );
            }
            ft.check()?;
        }
        Ok(())
    }

    /// Reads a TOML file of these settings (omitted keys keep their defaults, unknown keys are
    /// errors naming the line).
    pub fn load(path: &std::path::Path) -> Result<RankerConfig> {
        let cfg: RankerConfig = crate::config::load_toml(path)?;
        cfg.check()?;
        Ok(cfg)
    }

    /// The settings as TOML (`semid config --rank`).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("ranker settings serialise")
    }

    /// The label of a run in reports: `mcca`, `mcca/wo-msc`, `din-sid`; `+ft(tau=…)` when it
    /// fine-tunes its tokenizer (`din-sid+ft(tau=0.1)`).
    pub fn label(&self) -> String {
        let base = match self.ablation {
            Ablation::Full => self.model.name().to_string(),
            a => format!("{}/{}", self.model.name(), a.name()),
        };
        match &self.finetune {
            Some(ft) => format!("{base}+ft(tau={})", ft.tau),
            None => base,
        }
    }
}
