//! The settings of behaviour-aware fine-tuning (part of a ranker's settings when it tunes its
//! tokenizer).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Behaviour-aware fine-tuning settings: the loss `rank_weight · L_rank + recon_weight ·
/// L_recon + aux_weight · L_aux` (the paper: 1, α' = 0.5, β' = 0.5), the soft index's
/// temperature and the tokenizer's optimizer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FinetuneConfig {
    /// The family whose tokenizer is tuned (one of the ranker's; empty: the only family of the
    /// fine-tuned run the ranker embeds). Resolved when the run starts.
    pub family: String,
    /// τ of `softmax(p / τ)` (default 0.1; the paper gives none: a larger τ spreads the
    /// gradient over more codes).
    pub tau: f32,
    /// Weight of the ranking loss (default 1).
    pub rank_weight: f32,
    /// α', weight of the tokenizer's reconstruction term (default 0.5, the paper).
    pub recon_weight: f32,
    /// β', weight of MMQ's auxiliary reconstruction terms (default 0.5, the paper; RQ-VAE has
    /// none).
    pub aux_weight: f32,
    /// Adam learning rate of the tokenizer (default 1e-4; the ranker keeps its own).
    pub lr: f32,
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        FinetuneConfig {
            family: String::new(),
            tau: 0.1,
            rank_weight: 1.0,
            recon_weight: 0.5,
            aux_weight: 0.5,
            lr: 1e-4,
        }
    }
}

impl FinetuneConfig {
    /// Checks every setting.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(format!("fine-tuning settings: {m}")));
        if !(self.tau.is_finite() && self.tau > 0.0) {
            return bad(format!("tau must be a positive number, not {}", self.tau));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr must be a positive number, not {}", self.lr));
        }
        for (what, v) in [
            ("rank_weight", self.rank_weight),
            ("recon_weight", self.recon_weight),
            ("aux_weight", self.aux_weight),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{what} must be a finite value ≥ 0, not {v}"));
            }
        }
        Ok(())
    }
}
