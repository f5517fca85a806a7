//! A ranker on disk: `ranker.safetensors`, one file that is both the resumable checkpoint
//! during training and the finished model after it (the tokenizers' checkpoints work the same
//! way, [`crate::io::checkpoint`]).
//!
//! Tensors: the parameters under their own names (`id.weight`, `sid.<family>.<level>.weight`,
//! `att.<branch>.<layer>.{weight,bias}`, `mlp.<layer>.{weight,bias}`: PyTorch `state_dict`
//! names), and while unfinished Adam's state under `train.optimizer.*` and the best epoch's
//! parameters under `best.*`. Metadata: method `ranker`, the [`RankerConfig`] (families
//! resolved), the protocol's settings, a fingerprint of the data (every sample's user, item and
//! label in order, the split bounds and the code tables), and the state: items, history
//! width, the families' levels and codebook sizes, whether finished, and the fit's position.

use super::codes::{CodeTables, FamilyCodes};
use super::config::RankerConfig;
use super::model::Ranker;
use super::protocol::{ProtocolConfig, RankProtocol, SplitName};
use super::train::{FitState, EXTRA_PREFIX};
use crate::error::{Error, Result};
use crate::io::checkpoint::{Checkpoint, CheckpointMeta};
use crate::io::NamedTensor;
use crate::optim::OptimizerState;
use crate::Gpu;
use serde_json::{json, Value};
use std::path::Path;

/// The method name in a ranker's checkpoint.
pub const METHOD: &str = "ranker";
/// The file name in a run folder.
pub const FILE: &str = "ranker.safetensors";
const OPT: &str = "train.optimizer.";
const BEST: &str = "best.";

/// A stable fingerprint of what a ranker is trained and judged on: the protocol's samples and
/// split bounds and the code tables of `families`.
pub fn data_fingerprint(p: &RankProtocol, families: &[FamilyCodes]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for s in SplitName::ALL {
        eat(&(p.len(s) as u64).to_le_bytes());
        eat(bytemuck::cast_slice(p.users(s)));
        eat(bytemuck::cast_slice(p.items(s)));
        eat(bytemuck::cast_slice(p.labels(s)));
    }
    for f in families {
        eat(f.family.as_bytes());
        for &k in &f.k {
            eat(&(k as u64).to_le_bytes());
        }
        eat(bytemuck::cast_slice(&f.table));
    }
    format!("{h:016x}")
}

/// What a loaded `ranker.safetensors` holds besides the parameters.
#[derive(Clone, Debug)]
pub struct SavedRanker {
    /// The ranker's settings.
    pub config: RankerConfig,
    /// The protocol it was trained under.
    pub protocol: ProtocolConfig,
    /// The data fingerprint ([`data_fingerprint`]).
    pub fingerprint: String,
    /// Items it embeds.
    pub n_items: usize,
    /// History width.
    pub history: usize,
    /// Whether training finished (the parameters are the final model).
    pub finished: bool,
    /// The fit's state when unfinished.
    pub fit: Option<FitState>,
    /// The parameters.
    pub params: Vec<NamedTensor>,
}

fn fit_json(st: &FitState) -> Value {
    json!({
        "epoch": st.epoch,
        "step": st.step,
        "total_steps": st.total_steps,
        "optimizer_steps": st.optimizer.steps,
        "valid_auc": st.valid_auc,
        "best_epoch": st.best.as_ref().map(|(e, _)| *e),
        "stopped": st.stopped,
        "extra_steps": st.extra.steps,
    })
}

/// Writes `ranker` to `path` (write-then-rename): with `fit` a resumable checkpoint, without it
/// the finished model.
pub fn save(
    path: &Path,
    ranker: &Ranker,
    protocol: &ProtocolConfig,
    fingerprint: &str,
    fit: Option<&FitState>,
) -> Result<()> {
    let mut tensors = ranker.store.to_named()?;
    if let Some(st) = fit {
        tensors.extend(st.optimizer.tensors.iter().map(|t| NamedTensor {
            name: format!("{OPT}{}", t.name),
            ..t.clone()
        }));
        tensors.extend(st.extra.tensors.iter().cloned());
        if let Some((_, best)) = &st.best {
            tensors.extend(best.iter().map(|t| NamedTensor {
                name: format!("{BEST}{}", t.name),
                ..t.clone()
            }));
        }
    }
    let families: Vec<Value> = ranker
        .families
        .iter()
        .map(|f| json!({"family": f.family, "levels": f.levels, "k": f.k}))
        .collect();
    let meta = CheckpointMeta {
        method: METHOD.into(),
        config: serde_json::to_value(&ranker.config).map_err(|e| Error::Invalid(e.to_string()))?,
        fingerprint: fingerprint.into(),
        semid_version: env!("CARGO_PKG_VERSION").into(),
        state: json!({
            "protocol": protocol,
            "n_items": ranker.n_items,
            "history": ranker.history,
            "families": families,
            "finished": fit.is_none(),
            "fit": fit.map(fit_json),
        }),
    };
    Checkpoint { meta, tensors }.save(path)
}

/// Reads `path` back.
pub fn load(path: &Path) -> Result<SavedRanker> {
    let ck = Checkpoint::load(path)?;
    let bad = |what: &str| Error::Checkpoint {
        path: path.to_path_buf(),
        message: format!("`{what}` is missing or malformed: not a semid ranker checkpoint"),
    };
    if ck.meta.method != METHOD {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            message: format!("was written by `{}`, not by a ranker", ck.meta.method),
        });
    }
    let config: RankerConfig =
        serde_json::from_value(ck.meta.config.clone()).map_err(|_| bad("config"))?;
    let s = &ck.meta.state;
    let protocol: ProtocolConfig =
        serde_json::from_value(s["protocol"].clone()).map_err(|_| bad("protocol"))?;
    let n_items = s["n_items"].as_u64().ok_or_else(|| bad("n_items"))? as usize;
    let history = s["history"].as_u64().ok_or_else(|| bad("history"))? as usize;
    let finished = s["finished"].as_bool().ok_or_else(|| bad("finished"))?;
    let (mut params, mut opt, mut best, mut extra) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for t in ck.tensors {
        if let Some(n) = t.name.strip_prefix(OPT) {
            opt.push(NamedTensor {
                name: n.into(),
                ..t
            });
        } else if let Some(n) = t.name.strip_prefix(BEST) {
            best.push(NamedTensor {
                name: n.into(),
                ..t
            });
        } else if t.name.starts_with(EXTRA_PREFIX) {
            extra.push(t);
        } else {
            params.push(t);
        }
    }
    let fit = if finished {
        None
    } else {
        let f = &s["fit"];
        let num = |k: &str| f[k].as_u64().ok_or_else(|| bad(k));
        let best_epoch = match &f["best_epoch"] {
            Value::Null => None,
            v => Some(v.as_u64().ok_or_else(|| bad("best_epoch"))? as usize),
        };
        Some(FitState {
            epoch: num("epoch")? as usize,
            step: num("step")? as usize,
            total_steps: num("total_steps")?,
            optimizer: OptimizerState {
                tensors: opt,
                steps: serde_json::from_value(f["optimizer_steps"].clone())
                    .map_err(|_| bad("optimizer_steps"))?,
            },
            valid_auc: serde_json::from_value(f["valid_auc"].clone())
                .map_err(|_| bad("valid_auc"))?,
            best: best_epoch.map(|e| (e, best)),
            stopped: f["stopped"].as_bool().ok_or_else(|| bad("stopped"))?,
            extra: OptimizerState {
                tensors: extra,
                steps: match &f["extra_steps"] {
                    Value::Null => Default::default(),
                    v => serde_json::from_value(v.clone()).map_err(|_| bad("extra_steps"))?,
                },
            },
        })
    };
    Ok(SavedRanker {
        config,
        protocol,
        fingerprint: ck.meta.fingerprint,
        n_items,
        history,
        finished,
        fit,
        params,
    })
}

impl SavedRanker {
    /// Rebuilds the ranker on `gpu` with the saved parameters; `codes` must hold the families
    /// it was trained with (same levels and codebook sizes).
    pub fn ranker(&self, gpu: &Gpu, codes: Option<&CodeTables>) -> Result<Ranker> {
        let mut r = Ranker::new(gpu, &self.config, self.n_items, self.history, codes)?;
        for t in &self.params {
            if !r.store.contains(&t.name) {
                return Err(Error::Invalid(format!(
                    "the saved ranker has a parameter `{}` this ranker lacks: the codes differ \
                     from those it was trained with",
                    t.name
                )));
            }
            let have = r.store.get(&t.name).expect("checked").shape().to_vec();
            if have != t.shape {
                return Err(Error::Invalid(format!(
                    "the saved parameter `{}` is {:?}, this ranker's {:?}: the codes differ \
                     from those it was trained with",
                    t.name, t.shape, have
                )));
            }
            r.store.set(&t.name, &t.data)?;
        }
        if self.params.len() != r.store.len() {
            return Err(Error::Invalid(format!(
                "the saved ranker has {} parameters, this one {}",
                self.params.len(),
                r.store.len()
            )));
        }
        Ok(r)
    }
}
