//! A retrieval run in a folder (`semid retrieve train` / `eval` / `recommend`): the protocol
//! built from a log, the model (SASRec on item IDs, or TIGER on a tokenizer run's semantic IDs)
//! trained with a checkpoint after every epoch, and the outputs: `retriever.safetensors` (the
//! resumable checkpoint while training, the finished model after), `metrics.json` (validation
//! and test Recall/NDCG at 5/10/20 with cold targets apart, the popularity baseline on the
//! same users, the fit, per-user decoding latency, the protocol and every setting). The
//! folder follows the tokenizers' rules ([`crate::io::run_dir`]).

use super::decode::invalid_id_stats;
use super::fit::{
    evaluate, fit, ranked_lists, score_lists, FitConfig, FitState, FitSummary, Hooks, Progress,
    SeqModel,
};
use super::protocol::{EvalSplit, RetrievalConfig, SeqProtocol};
use super::sasrec::{SasRec, SasRecConfig};
use super::sid::SidTable;
use super::tiger::{Tiger, TigerConfig};
use crate::data::types::Interactions;
use crate::error::{Error, Result};
use crate::io::checkpoint::{Checkpoint, CheckpointMeta};
use crate::io::run_dir::{prepare_out, written_files, OutMode, RunManifest};
use crate::io::write_atomic;
use crate::io::NamedTensor;
use crate::metrics::retrieval::RetrievalMetrics;
use crate::optim::OptimizerState;
use crate::rank::load_code_tables;
use crate::Gpu;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The manifest kind of a retrieval run.
pub const KIND: &str = "retrieve";
/// The model file of a run folder.
pub const FILE: &str = "retriever.safetensors";
/// The metrics file of a run folder.
pub const METRICS: &str = "metrics.json";
const METHOD: &str = "retriever";
const OPT: &str = "train.optimizer.";
const BEST: &str = "best.";

/// Which retriever.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum RetrieverKind {
    /// SASRec on item IDs, full-catalogue softmax.
    Sasrec,
    /// TIGER-style generative retrieval on semantic IDs.
    Tiger,
}

/// Every setting of a retrieval run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrieverConfig {
    /// The model.
    pub model: RetrieverKind,
    /// The tokenizer family whose IDs TIGER decodes (needed when the runs hold several).
    pub family: Option<String>,
    /// The protocol.
    pub protocol: RetrievalConfig,
    /// Training.
    pub fit: FitConfig,
    /// SASRec's settings.
    pub sasrec: SasRecConfig,
    /// TIGER's settings.
    pub tiger: TigerConfig,
}

impl Default for RetrieverConfig {
    fn default() -> Self {
        RetrieverConfig {
            model: RetrieverKind::Sasrec,
            family: None,
            protocol: RetrievalConfig::default(),
            fit: FitConfig::default(),
            sasrec: SasRecConfig::default(),
            tiger: TigerConfig::default(),
        }
    }
}

impl RetrieverConfig {
    /// Reads settings from a TOML file (unknown keys are errors).
    pub fn load(path: &Path) -> Result<RetrieverConfig> {
        crate::config::load_toml(path)
    }

    /// The settings as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("retriever settings serialise")
    }

    /// A label for tables, e.g. `tiger(rqvae)` or `sasrec`.
    pub fn label(&self) -> String {
        match (self.model, &self.family) {
            (RetrieverKind::Sasrec, _) => "sasrec".into(),
            (RetrieverKind::Tiger, Some(f)) => format!("tiger({f})"),
            (RetrieverKind::Tiger, None) => "tiger".into(),
        }
    }
}

/// The decoding figures of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecodeStats {
    /// Users ranked on the test split.
    pub users: usize,
    /// Seconds for all of them (ranking the full catalogue for SASRec, the beam for TIGER).
    pub seconds: f64,
    /// Milliseconds per user.
    pub ms_per_user: f64,
}

/// What `metrics.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RetrieveMetricsFile {
    /// `sasrec` or `tiger(<family>)`.
    pub label: String,
    /// Every setting.
    pub config: RetrieverConfig,
    /// Users, items, held-out users, cold items.
    pub protocol: Value,
    /// The fit (absent for `retrieve eval`).
    pub fit: Option<FitSummary>,
    /// Validation metrics.
    pub valid: RetrievalMetrics,
    /// Test metrics.
    pub test: RetrievalMetrics,
    /// Popularity (most training events first, seen items filtered alike) on the same users.
    pub popularity: [RetrievalMetrics; 2],
    /// Test-split ranking time.
    pub decode: DecodeStats,
    /// The semantic IDs TIGER decodes: positions, vocabulary per position, collided items.
    pub sid: Option<Value>,
    /// The tokenizer runs the IDs came from.
    pub codes: Vec<PathBuf>,
    /// TIGER decoding without the trie: how many generated IDs (all beams' hits on the test
    /// split) name no item.
    pub invalid: Option<InvalidRate>,
}

/// The invalid-ID rate of unconstrained decoding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InvalidRate {
    /// Hits returned over all users.
    pub total: usize,
    /// Of those, token sequences that are no item.
    pub invalid: usize,
    /// `invalid / total`.
    pub rate: f64,
}

/// A model of either kind.
pub enum AnyRetriever {
    /// SASRec.
    Sasrec(Box<SasRec>),
    /// TIGER.
    Tiger(Box<Tiger>),
}

impl AnyRetriever {
    /// As the fit and evaluation see it.
    pub fn model(&self) -> &dyn SeqModel {
        match self {
            AnyRetriever::Sasrec(m) => m.as_ref(),
            AnyRetriever::Tiger(m) => m.as_ref(),
        }
    }

    /// Mutably.
    pub fn model_mut(&mut self) -> &mut dyn SeqModel {
        match self {
            AnyRetriever::Sasrec(m) => m.as_mut(),
            AnyRetriever::Tiger(m) => m.as_mut(),
        }
    }
}

/// The data of a run: the log and, for TIGER, the tokenizer runs holding its IDs.
pub struct RetrieveData<'a> {
    /// The interaction log.
    pub log: &'a Interactions,
    /// Finished tokenizer runs (TIGER).
    pub codes: Vec<PathBuf>,
}

/// The semantic IDs of `family` (or the only family) of `runs`, aligned to the log's items.
pub fn load_sid(
    runs: &[PathBuf],
    family: Option<&str>,
    items: &[String],
) -> Result<(String, SidTable)> {
    if runs.is_empty() {
        return Err(Error::Invalid(
            "tiger decodes semantic IDs: name a finished tokenizer run with --codes".into(),
        ));
    }
    let tables = load_code_tables(runs, items)?;
    let f = match family {
        Some(name) => tables.family(name)?,
        None => match tables.families.as_slice() {
            [one] => one,
            many => {
                return Err(Error::Invalid(format!(
                    "the runs hold {} families ({}); choose one with --family",
                    many.len(),
                    many.iter()
                        .map(|f| f.family.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        },
    };
    Ok((f.family.clone(), SidTable::from_family(f)?))
}

/// A stable fingerprint of the sequences and IDs a model is trained on.
fn fingerprint(p: &SeqProtocol, sid: Option<&SidTable>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(&(p.n_items() as u64).to_le_bytes());
    for u in 0..p.n_users() {
        let s = p.history(EvalSplit::Next, u);
        eat(&(s.len() as u64).to_le_bytes());
        eat(bytemuck::cast_slice(s));
    }
    if let Some(s) = sid {
        eat(bytemuck::cast_slice(&s.codes));
    }
    format!("{h:016x}")
}

fn build_model(
    gpu: &Gpu,
    cfg: &RetrieverConfig,
    p: &SeqProtocol,
    sid: Option<SidTable>,
) -> Result<AnyRetriever> {
    let h = cfg.protocol.history;
    Ok(match (cfg.model, sid) {
        (RetrieverKind::Sasrec, _) => AnyRetriever::Sasrec(Box::new(SasRec::new(
            gpu,
            &cfg.sasrec,
            p.n_items(),
            h,
            cfg.fit.seed,
        )?)),
        (RetrieverKind::Tiger, Some(sid)) => {
            AnyRetriever::Tiger(Box::new(Tiger::new(gpu, &cfg.tiger, sid, h, cfg.fit.seed)?))
        }
        (RetrieverKind::Tiger, None) => {
            return Err(Error::Invalid(
                "tiger needs semantic IDs (--codes RUN)".into(),
            ))
        }
    })
}

fn save(
    path: &Path,
    store: &crate::nn::ParamStore,
    cfg: &RetrieverConfig,
    fp: &str,
    st: Option<&FitState>,
) -> Result<()> {
    let mut tensors = store.to_named()?;
    if let Some(st) = st {
        tensors.extend(st.optimizer.tensors.iter().map(|t| NamedTensor {
            name: format!("{OPT}{}", t.name),
            ..t.clone()
        }));
        if let Some((_, best)) = &st.best {
            tensors.extend(best.iter().map(|t| NamedTensor {
                name: format!("{BEST}{}", t.name),
                ..t.clone()
            }));
        }
    }
    let fit = st.map(|s| {
        json!({
            "epoch": s.epoch, "steps": s.steps, "optimizer_steps": s.optimizer.steps,
            "valid": s.valid, "best_epoch": s.best.as_ref().map(|b| b.0), "stopped": s.stopped,
        })
    });
    let meta = CheckpointMeta {
        method: METHOD.into(),
        config: serde_json::to_value(cfg).map_err(|e| Error::Invalid(e.to_string()))?,
        fingerprint: fp.into(),
        semid_version: env!("CARGO_PKG_VERSION").into(),
        state: json!({ "finished": st.is_none(), "fit": fit }),
    };
    Checkpoint { meta, tensors }.save(path)
}

/// A checkpoint read back: settings, fingerprint, parameters and (unfinished) fit state.
struct Saved {
    config: RetrieverConfig,
    fingerprint: String,
    params: Vec<NamedTensor>,
    fit: Option<FitState>,
}

fn load(path: &Path) -> Result<Saved> {
    let ck = Checkpoint::load(path)?;
    let bad = |what: &str| Error::Checkpoint {
        path: path.to_path_buf(),
        message: format!("`{what}` is missing or malformed: not a semid retriever checkpoint"),
    };
    if ck.meta.method != METHOD {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            message: format!("was written by `{}`, not by a retriever", ck.meta.method),
        });
    }
    let config: RetrieverConfig =
        serde_json::from_value(ck.meta.config.clone()).map_err(|_| bad("config"))?;
    let s = &ck.meta.state;
    let finished = s["finished"].as_bool().ok_or_else(|| bad("finished"))?;
    let (mut params, mut opt, mut best) = (Vec::new(), Vec::new(), Vec::new());
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
        } else {
            params.push(t);
        }
    }
    let fit = if finished {
        None
    } else {
        let f = &s["fit"];
        let best_epoch = f["best_epoch"].as_u64().map(|e| e as usize);
        Some(FitState {
            epoch: f["epoch"].as_u64().ok_or_else(|| bad("epoch"))? as usize,
            steps: f["steps"].as_u64().ok_or_else(|| bad("steps"))?,
            optimizer: OptimizerState {
                tensors: opt,
                steps: serde_json::from_value(f["optimizer_steps"].clone())
                    .map_err(|_| bad("optimizer_steps"))?,
            },
            valid: serde_json::from_value(f["valid"].clone()).map_err(|_| bad("valid"))?,
            best: best_epoch.map(|e| (e, best)),
            stopped: f["stopped"].as_bool().ok_or_else(|| bad("stopped"))?,
        })
    };
    Ok(Saved {
        config,
        fingerprint: ck.meta.fingerprint,
        params,
        fit,
    })
}

fn set_params(m: &mut AnyRetriever, params: &[NamedTensor], path: &Path) -> Result<()> {
    let store = m.model_mut().store_mut();
    for t in params {
        if !store.contains(&t.name) {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                message: format!("holds `{}`, which this model does not have", t.name),
            });
        }
        store.set(&t.name, &t.data)?;
    }
    Ok(())
}

fn popularity(p: &SeqProtocol, split: EvalSplit, users: &[u32]) -> Result<RetrievalMetrics> {
    let pop = p.popularity();
    let lists: Vec<Vec<(u32, f32)>> = users
        .iter()
        .map(|&u| {
            let seen: std::collections::HashSet<u32> =
                p.seen(split, u as usize).iter().copied().collect();
            pop.iter()
                .filter(|i| !seen.contains(i))
                .take(20)
                .map(|&i| (i, 0.0))
                .collect()
        })
        .collect();
    score_lists(p, split, users, &lists)
}

fn protocol_json(p: &SeqProtocol) -> Value {
    let users = p.eval_users();
    let cold_items = (0..p.n_items() as u32).filter(|&i| p.is_cold(i)).count();
    json!({
        "users": p.n_users(), "items": p.n_items(), "held_out_users": users.len(),
        "train_events": p.train_counts().iter().map(|&c| c as u64).sum::<u64>(),
        "cold_items": cold_items, "settings": p.config(),
        "split": "leave-one-out by (timestamp, row): last event test, the one before validation",
    })
}

fn score(
    m: &AnyRetriever,
    p: &SeqProtocol,
    cfg: &RetrieverConfig,
    fit_summary: Option<FitSummary>,
    codes: &[PathBuf],
) -> Result<RetrieveMetricsFile> {
    let valid = evaluate(m.model(), p, EvalSplit::Valid, cfg.fit.eval_batch)?;
    let t0 = Instant::now();
    let (users, lists) = ranked_lists(m.model(), p, EvalSplit::Test, cfg.fit.eval_batch)?;
    let secs = t0.elapsed().as_secs_f64();
    let test = score_lists(p, EvalSplit::Test, &users, &lists)?;
    let mut invalid = None;
    if let AnyRetriever::Tiger(t) = m {
        if !t.config().constrained {
            let mut all = Vec::with_capacity(users.len());
            for chunk in users.chunks(cfg.fit.eval_batch.max(1)) {
                all.extend(t.decode_users(p, EvalSplit::Test, chunk)?);
            }
            let st = invalid_id_stats(&all);
            invalid = Some(InvalidRate {
                total: st.hits,
                invalid: st.invalid,
                rate: st.rate(),
            });
        }
    }
    let sid = match m {
        AnyRetriever::Tiger(t) => Some(json!({
            "positions": t.sid().positions(), "vocab": t.sid().vocab, "collided_items": t.sid().collided_items,
        })),
        AnyRetriever::Sasrec(_) => None,
    };
    Ok(RetrieveMetricsFile {
        label: cfg.label(),
        config: cfg.clone(),
        protocol: protocol_json(p),
        fit: fit_summary,
        valid,
        test,
        popularity: [
            popularity(p, EvalSplit::Valid, &users)?,
            popularity(p, EvalSplit::Test, &users)?,
        ],
        decode: DecodeStats {
            users: users.len(),
            seconds: secs,
            ms_per_user: 1e3 * secs / users.len().max(1) as f64,
        },
        sid,
        codes: codes.to_vec(),
        invalid,
    })
}

fn write_metrics(out: &Path, m: &RetrieveMetricsFile) -> Result<()> {
    let mut s = serde_json::to_string_pretty(m).map_err(|e| Error::Invalid(e.to_string()))?;
    s.push('\n');
    write_atomic(&out.join(METRICS), s.as_bytes())
}

/// Trains a retriever into `out` and scores validation and test; with [`OutMode::Resume`] a
/// checkpoint there continues from its last finished epoch when the settings that change the
/// result match (`fit.epochs`, `patience` and `eval_batch` may differ).
pub fn train_run(
    gpu: &Gpu,
    data: &RetrieveData<'_>,
    cfg: &RetrieverConfig,
    out: &Path,
    mode: OutMode,
    progress: &mut dyn FnMut(&Progress),
) -> Result<RetrieveMetricsFile> {
    let p = SeqProtocol::build(data.log, &cfg.protocol)?;
    let mut cfg = cfg.clone();
    let sid = match cfg.model {
        RetrieverKind::Tiger => {
            let (fam, sid) = load_sid(&data.codes, cfg.family.as_deref(), &data.log.items)?;
            cfg.family = Some(fam);
            Some(sid)
        }
        RetrieverKind::Sasrec => None,
    };
    let fp = fingerprint(&p, sid.as_ref());
    let mut model = build_model(gpu, &cfg, &p, sid)?;
    let found = prepare_out(out, mode)?;
    let manifest = RunManifest::new(KIND, &cfg.label(), cfg.family.iter().cloned().collect());
    if let Some(m) = &found {
        m.check_same_run(out, &manifest)?;
    }
    let path = out.join(FILE);
    let mut resume = None;
    if mode == OutMode::Resume && path.exists() {
        let saved = load(&path)?;
        if saved.fingerprint != fp {
            return Err(Error::Checkpoint {
                path,
                message: format!(
                    "was trained on other data (fingerprint {}, this data {fp})",
                    saved.fingerprint
                ),
            });
        }
        let mut same = saved.config.clone();
        same.fit.epochs = cfg.fit.epochs;
        same.fit.patience = cfg.fit.patience;
        same.fit.eval_batch = cfg.fit.eval_batch;
        if same != cfg {
            return Err(Error::Invalid(format!(
                "{}: cannot resume: the checkpoint's settings differ from this run's (only epochs, patience and eval_batch may change); use --overwrite",
                out.display()
            )));
        }
        set_params(&mut model, &saved.params, &path)?;
        resume = Some(saved.fit.unwrap_or_default()).filter(|f| f.epoch > 0 || f.steps > 0);
        if resume.is_none() {
            return Err(Error::Invalid(format!(
                "{}: this run has finished; score it with `semid retrieve eval --run {}`",
                out.display(),
                out.display()
            )));
        }
    }
    manifest.write(out)?;
    let cfg = cfg;
    let mut ck =
        |store: &crate::nn::ParamStore, st: &FitState| save(&path, store, &cfg, &fp, Some(st));
    let summary = fit(
        model.model_mut(),
        &p,
        &cfg.fit,
        Hooks {
            progress,
            checkpoint: &mut ck,
            resume,
        },
    )?;
    let m = score(&model, &p, &cfg, Some(summary), &data.codes)?;
    save(&path, model.model().store(), &cfg, &fp, None)?;
    write_metrics(out, &m)?;
    finish(out, manifest)?;
    Ok(m)
}

fn finish(out: &Path, mut manifest: RunManifest) -> Result<()> {
    manifest.complete = true;
    manifest.files = written_files(out)?;
    manifest.write(out)
}

/// A finished run's model, rebuilt on `data` (which must be what it was trained on).
pub fn load_run(
    gpu: &Gpu,
    run: &Path,
    data: &RetrieveData<'_>,
) -> Result<(AnyRetriever, SeqProtocol, RetrieverConfig)> {
    let path = run.join(FILE);
    let saved = load(&path)?;
    if saved.fit.is_some() {
        return Err(Error::Invalid(format!(
            "{}: the run has not finished training; continue it with `semid retrieve train --resume`",
            run.display()
        )));
    }
    let cfg = saved.config;
    let p = SeqProtocol::build(data.log, &cfg.protocol)?;
    let sid = match cfg.model {
        RetrieverKind::Tiger => {
            Some(load_sid(&data.codes, cfg.family.as_deref(), &data.log.items)?.1)
        }
        RetrieverKind::Sasrec => None,
    };
    let fp = fingerprint(&p, sid.as_ref());
    if fp != saved.fingerprint {
        return Err(Error::Checkpoint {
            path,
            message: format!(
                "was trained on other data (fingerprint {}, this data {fp}): pass the log and --codes it was trained with",
                saved.fingerprint
            ),
        });
    }
    let mut model = build_model(gpu, &cfg, &p, sid)?;
    set_params(&mut model, &saved.params, &path)?;
    Ok((model, p, cfg))
}

/// Scores a finished run again into `out`, optionally with other beam settings (TIGER: the
/// beam width and whether decoding is constrained — unconstrained runs report the invalid-ID
/// rate in the test metrics' place of the missing items).
pub fn eval_run(
    gpu: &Gpu,
    run: &Path,
    data: &RetrieveData<'_>,
    beam: Option<(usize, bool)>,
    out: &Path,
    mode: OutMode,
) -> Result<RetrieveMetricsFile> {
    let (mut model, p, mut cfg) = load_run(gpu, run, data)?;
    if let (Some((beams, constrained)), AnyRetriever::Tiger(t)) = (beam, &mut model) {
        t.set_beam(beams, constrained);
        cfg.tiger.beams = beams;
        cfg.tiger.constrained = constrained;
    }
    prepare_out(out, mode)?;
    let manifest = RunManifest::new(
        "retrieve-eval",
        &cfg.label(),
        cfg.family.iter().cloned().collect(),
    );
    manifest.write(out)?;
    let m = score(&model, &p, &cfg, None, &data.codes)?;
    write_metrics(out, &m)?;
    finish(out, manifest)?;
    Ok(m)
}

/// Reads a run's `metrics.json`.
pub fn read_metrics(run: &Path) -> Result<RetrieveMetricsFile> {
    let path = run.join(METRICS);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
}
