//! MMQ's settings (with the paper's values where it gives them) and the layout of its experts,
//! tokens and parameters over the input modalities.

use crate::error::{Error, Result};
use crate::quant::cluster::{KMeansOptions, MetricKind};
use crate::quant::rqvae::ActivationKind;
use serde::{Deserialize, Serialize};

/// MMQ settings. α, β, γ, the expert counts and the cosine quantizer are the paper's
/// (NOTES.md §2.2); the paper gives no widths, optimizer or schedule, so those are semid's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MmqConfig {
    /// Shared experts N_s, each fed every modality concatenated (default 2).
    pub shared_experts: usize,
    /// Modality-specific experts per modality, N_t = N_v = … (default 2), mixed by a softmax gate.
    pub specific_experts: usize,
    /// Hidden widths inside each expert (default none: one Linear map, the paper's `W_i`).
    pub expert_hidden: Vec<usize>,
    /// Whether the experts' Linear layers have biases (default false: the paper's experts are
    /// weight matrices `W_i`).
    pub expert_bias: bool,
    /// Width of every expert's latent and of every code (default 256, the width of the paper's
    /// input embeddings).
    pub latent: usize,
    /// Hidden widths of each modality's gate network (default none: `softmax(W e_m + b)`).
    pub gate_hidden: Vec<usize>,
    /// Hidden widths of the decoder and of the modality decoders (default `[512]`).
    pub decoder_hidden: Vec<usize>,
    /// Activation between layers (default ReLU; none after the last layer of any network).
    pub activation: ActivationKind,
    /// Codes per expert codebook (default 100, the paper's public-data setting; 3,000 in its
    /// industrial one).
    pub k: usize,
    /// Code assignment (default cosine, the paper's; L2 is its ablation and applies with
    /// `spherical = false` — between unit vectors L2 orders codes as the cosine does).
    pub metric: MetricKind,
    /// Quantize on the unit sphere (default true): each latent and each code is L2-normalised
    /// before the search and the VQ terms, and the fused latent sums unit codes. The cosine
    /// search picks the same codes either way; what changes is training: raw codes must chase
    /// latents whose norms grow, and on the synthetic data code use collapsed to about a third
    /// for several epochs before dead-code re-seeding restored it, while unit codes trained
    /// steadily (see the module docs). `false` quantizes to the raw codes.
    pub spherical: bool,
    /// α, weight of the reconstruction of the concatenated input (default 12).
    pub recon_weight: f32,
    /// β, weight of the per-modality auxiliary reconstructions (default 10).
    pub aux_weight: f32,
    /// γ, weight of the orthogonal regularisation of the expert weights (default 0.005).
    pub ortho_weight: f32,
    /// Weight of the codebook term `‖sg(z) − e‖²` (default 1; the paper names no codebook
    /// update, see the module docs).
    pub codebook_weight: f32,
    /// Weight of the commitment term `‖z − sg(e)‖²` (default 0.25, as VQ-VAE).
    pub commitment_weight: f32,
    /// Adam learning rate (default 1e-3).
    pub lr: f32,
    /// Items per step (default 1,024).
    pub batch_size: usize,
    /// Passes over the items (default 100).
    pub epochs: usize,
    /// Seed of the weights, the batch order, k-means and dead-code re-seeding.
    pub seed: u64,
    /// Initialise each codebook by k-means (with [`MmqConfig::metric`]) on its expert's latents
    /// of the first batch (default true); otherwise `U(±1/k)`.
    pub kmeans_init: bool,
    /// Settings of the initialising k-means (codebook t uses seed `seed + t`).
    pub kmeans: KMeansOptions,
    /// Re-seed a code unused for this many consecutive steps (default 20; 0 = never).
    pub dead_code_steps: usize,
    /// Call the checkpoint hook every this many epochs (default 10; 0 = never).
    pub checkpoint_every: usize,
}

impl Default for MmqConfig {
    fn default() -> Self {
        MmqConfig {
            shared_experts: 2,
            specific_experts: 2,
            expert_hidden: Vec::new(),
            expert_bias: false,
            latent: 256,
            gate_hidden: Vec::new(),
            decoder_hidden: vec![512],
            activation: ActivationKind::Relu,
            k: 100,
            metric: MetricKind::Cosine,
            spherical: true,
            recon_weight: 12.0,
            aux_weight: 10.0,
            ortho_weight: 0.005,
            codebook_weight: 1.0,
            commitment_weight: 0.25,
            lr: 1e-3,
            batch_size: 1024,
            epochs: 100,
            seed: 0,
            kmeans_init: true,
            kmeans: KMeansOptions {
                metric: MetricKind::Cosine,
                ..KMeansOptions::default()
            },
            dead_code_steps: 20,
            checkpoint_every: 10,
        }
    }
}

impl MmqConfig {
    /// Checks every setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(format!("mmq: {m}")));
        if self.shared_experts + self.specific_experts == 0 {
            return bad("there must be at least one shared or specific expert".into());
        }
        if self.k == 0 || self.latent == 0 || self.batch_size == 0 {
            return bad("k, latent and batch_size must be positive".into());
        }
        if self.k > u32::MAX as usize {
            return bad(format!("k = {} is too large", self.k));
        }
        for (what, h) in [
            ("expert_hidden", &self.expert_hidden),
            ("gate_hidden", &self.gate_hidden),
            ("decoder_hidden", &self.decoder_hidden),
        ] {
            if h.contains(&0) {
                return bad(format!("{what} widths must be positive: {h:?}"));
            }
        }
        for (what, v) in [
            ("recon_weight", self.recon_weight),
            ("aux_weight", self.aux_weight),
            ("ortho_weight", self.ortho_weight),
            ("codebook_weight", self.codebook_weight),
            ("commitment_weight", self.commitment_weight),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{what} must be a finite value ≥ 0, not {v}"));
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr must be a finite value > 0, not {}", self.lr));
        }
        Ok(())
    }
}

/// One input modality: its name and width, in the order of the input's columns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModalitySpec {
    /// Name (`text`, `audio`, `image`, …).
    pub name: String,
    /// Width.
    pub dim: usize,
}

impl ModalitySpec {
    /// A modality `name` of width `dim`.
    pub fn new(name: &str, dim: usize) -> ModalitySpec {
        ModalitySpec {
            name: name.to_string(),
            dim,
        }
    }
}

/// Which expert a token comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expert {
    /// Shared expert `i`.
    Shared(usize),
    /// Specific expert `i` of modality `m`.
    Specific {
        /// Modality index.
        m: usize,
        /// Expert index within the modality.
        i: usize,
    },
}

/// The experts, tokens and parameter names of an MMQ model over some modalities.
///
/// Tokens (the positions of the semantic ID) come in expert order: the shared experts, then
/// each modality's specific experts. Parameter names (PyTorch style, as [`crate::nn::Mlp`]
/// writes them): `shared.{i}.*`, `specific.{m}.{i}.*`, `gate.{m}.*`, `decoder.*`,
/// `aux_decoder.{m}.*` and `codebook.{t}` `[k, latent]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// The settings.
    pub config: MmqConfig,
    /// The modalities, in column order.
    pub modalities: Vec<ModalitySpec>,
}

impl Layout {
    /// Checks the settings and the modalities.
    pub fn new(config: &MmqConfig, modalities: &[ModalitySpec]) -> Result<Layout> {
        config.validate()?;
        if modalities.is_empty() {
            return Err(Error::Invalid(
                "mmq: at least one modality is needed".into(),
            ));
        }
        if let Some(m) = modalities.iter().find(|m| m.dim == 0) {
            return Err(Error::Invalid(format!(
                "mmq: modality `{}` has width 0",
                m.name
            )));
        }
        Ok(Layout {
            config: config.clone(),
            modalities: modalities.to_vec(),
        })
    }

    /// Width of the concatenated input.
    pub fn dim(&self) -> usize {
        self.modalities.iter().map(|m| m.dim).sum()
    }

    /// Column range of modality `m` in the input.
    pub fn columns(&self, m: usize) -> (usize, usize) {
        let start: usize = self.modalities[..m].iter().map(|s| s.dim).sum();
        (start, start + self.modalities[m].dim)
    }

    /// The expert behind each token, in token order.
    pub fn experts(&self) -> Vec<Expert> {
        let mut v: Vec<Expert> = (0..self.config.shared_experts)
            .map(Expert::Shared)
            .collect();
        for m in 0..self.modalities.len() {
            v.extend((0..self.config.specific_experts).map(|i| Expert::Specific { m, i }));
        }
        v
    }

    /// Number of tokens (the length of the semantic ID).
    pub fn tokens(&self) -> usize {
        self.config.shared_experts + self.modalities.len() * self.config.specific_experts
    }

    /// Readable name of token `t`'s expert: `shared.0`, `text.1`, ….
    pub fn token_label(&self, t: usize) -> String {
        match self.experts()[t] {
            Expert::Shared(i) => format!("shared.{i}"),
            Expert::Specific { m, i } => format!("{}.{i}", self.modalities[m].name),
        }
    }

    /// Parameter prefix of an expert.
    pub fn expert_name(&self, e: Expert) -> String {
        match e {
            Expert::Shared(i) => format!("shared.{i}"),
            Expert::Specific { m, i } => format!("specific.{m}.{i}"),
        }
    }

    /// Layer widths of an expert: `[input, expert_hidden.., latent]`.
    pub fn expert_widths(&self, e: Expert) -> Vec<usize> {
        let input = match e {
            Expert::Shared(_) => self.dim(),
            Expert::Specific { m, .. } => self.modalities[m].dim,
        };
        widths(input, &self.config.expert_hidden, self.config.latent)
    }

    /// Layer widths of modality `m`'s gate: `[dim_m, gate_hidden.., specific_experts]`.
    pub fn gate_widths(&self, m: usize) -> Vec<usize> {
        widths(
            self.modalities[m].dim,
            &self.config.gate_hidden,
            self.config.specific_experts,
        )
    }

    /// Layer widths of the decoder: `[latent, decoder_hidden.., dim]`.
    pub fn decoder_widths(&self) -> Vec<usize> {
        widths(self.config.latent, &self.config.decoder_hidden, self.dim())
    }

    /// Layer widths of modality `m`'s decoder: `[latent, decoder_hidden.., dim_m]`.
    pub fn aux_decoder_widths(&self, m: usize) -> Vec<usize> {
        widths(
            self.config.latent,
            &self.config.decoder_hidden,
            self.modalities[m].dim,
        )
    }

    /// Whether modalities have specific experts (and so gates and modality decoders).
    pub fn has_specific(&self) -> bool {
        self.config.specific_experts > 0
    }
}

fn widths(input: usize, hidden: &[usize], output: usize) -> Vec<usize> {
    let mut w = vec![input];
    w.extend(hidden);
    w.push(output);
    w
}

/// Name of token `t`'s codebook parameter.
pub fn codebook_name(t: usize) -> String {
    format!("codebook.{t}")
}

/// Name of modality `m`'s gate network.
pub fn gate_name(m: usize) -> String {
    format!("gate.{m}")
}

/// Name of modality `m`'s auxiliary decoder.
pub fn aux_decoder_name(m: usize) -> String {
    format!("aux_decoder.{m}")
}

/// Name of modality `m`'s mean gate (saved with a fitted model, for decoding from codes alone).
pub fn gate_mean_name(m: usize) -> String {
    format!("gate_mean.{m}")
}
