//! What a learned tokenizer's checkpoint keeps beside its weights so `--resume` continues
//! exactly: the step count, the optimizer's state, the dead-code counters and the re-seeding
//! generator. A fit resumed from an epoch checkpoint then gives the same model, bit for bit, as
//! one that ran straight through.

use crate::error::{Error, Result};
use crate::io::NamedTensor;
use crate::nn::ParamStore;
use crate::optim::{Optimizer, OptimizerState};
use crate::quant::dead_codes::DeadCodes;
use serde_json::{json, Value};

/// Prefix of the optimizer's tensors in a checkpoint.
const PREFIX: &str = "train.optimizer.";

/// The training state of a learned tokenizer at an epoch boundary.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainState {
    /// Steps taken.
    pub steps: u64,
    /// The optimizer's per-parameter state.
    pub optimizer: OptimizerState,
    /// When each code of each codebook was last used (dead-code re-seeding).
    pub last_used: Vec<Vec<u64>>,
    /// The re-seeding generator's state.
    pub rng: (u64, Option<f64>),
}

impl TrainState {
    /// Reads a trainer's state back: its step count, optimizer and dead-code tracker.
    pub(crate) fn capture(steps: u64, opt: &dyn Optimizer, dead: &DeadCodes) -> Result<TrainState> {
        let (last_used, rng) = dead.state();
        Ok(TrainState {
            steps,
            optimizer: opt.export_state()?,
            last_used,
            rng,
        })
    }

    /// Puts this state into a trainer's optimizer (over the parameters of `store`) and
    /// dead-code tracker; returns the step count.
    pub(crate) fn restore(
        &self,
        store: &ParamStore,
        opt: &mut dyn Optimizer,
        dead: &mut DeadCodes,
    ) -> Result<u64> {
        opt.import_state(store, &self.optimizer)?;
        dead.restore(&self.last_used, self.rng)?;
        Ok(self.steps)
    }

    /// The optimizer tensors under `train.optimizer.*`, for the checkpoint.
    pub fn tensors(&self) -> Vec<NamedTensor> {
        self.optimizer
            .tensors
            .iter()
            .map(|t| NamedTensor {
                name: format!("{PREFIX}{}", t.name),
                ..t.clone()
            })
            .collect()
    }

    /// The rest, as JSON for the checkpoint's metadata.
    pub fn json(&self) -> Value {
        json!({
            "steps": self.steps,
            "optimizer_steps": self.optimizer.steps,
            "last_used": self.last_used,
            "rng_state": self.rng.0,
            "rng_spare": self.rng.1,
        })
    }

    /// Reads a state written by [`TrainState::tensors`] and [`TrainState::json`]; `None` when
    /// the checkpoint has none (`json` is null).
    pub fn from_checkpoint(tensors: &[NamedTensor], json: &Value) -> Result<Option<TrainState>> {
        if json.is_null() {
            return Ok(None);
        }
        let bad = |what: &str| {
            Error::Invalid(format!("training state: `{what}` is missing or malformed"))
        };
        let steps = json["steps"].as_u64().ok_or_else(|| bad("steps"))?;
        let optimizer_steps = serde_json::from_value(json["optimizer_steps"].clone())
            .map_err(|_| bad("optimizer_steps"))?;
        let last_used =
            serde_json::from_value(json["last_used"].clone()).map_err(|_| bad("last_used"))?;
        let rng_state = json["rng_state"].as_u64().ok_or_else(|| bad("rng_state"))?;
        let rng_spare = match &json["rng_spare"] {
            Value::Null => None,
            v => Some(v.as_f64().ok_or_else(|| bad("rng_spare"))?),
        };
        let optimizer = OptimizerState {
            tensors: tensors
                .iter()
                .filter_map(|t| {
                    t.name.strip_prefix(PREFIX).map(|n| NamedTensor {
                        name: n.to_string(),
                        ..t.clone()
                    })
                })
                .collect(),
            steps: optimizer_steps,
        };
        Ok(Some(TrainState {
            steps,
            optimizer,
            last_used,
            rng: (rng_state, rng_spare),
        }))
    }
}
