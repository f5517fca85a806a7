//! A ranking run in a folder (`semid rank train` / `semid rank eval`): the protocol built from
//! a log, the codes of finished tokenizer runs, the ranker trained with resumable checkpoints,
//! and the outputs — `ranker.safetensors`, `predictions.csv` (validation and test samples:
//! `split,user,item,label,score`, the score a logit) and `metrics.json` (per split AUC, cold
//! AUC, GAUC, logloss and counts; the settings, the protocol's counts, the fit's validation
//! AUC per epoch). The folder follows the tokenizers' rules ([`crate::io::run_dir`]): a
//! manifest, `--overwrite` / `--resume`, every file written then renamed.

use super::baseline::{popularity_metrics, BaselineMetrics};
use super::checkpoint::{self, data_fingerprint, FILE};
use super::codes::{load_code_tables, CodeTables};
use super::config::RankerConfig;
use super::finetune::{
    load_source, write_tuned_run, FineTuner, FinetuneConfig, FinetuneSummary, Source, TOKENIZER_DIR,
};
use super::predictions::{split_predictions, write_predictions, Prediction};
use super::protocol::{ProtocolConfig, ProtocolSummary, RankProtocol, SplitName};
use super::train::{FitHooks, FitProgress, FitReport};
use crate::data::types::Interactions;
use crate::data::ItemEmbeddings;
use crate::error::{Error, Result};
use crate::io::atomic::write_atomic;
use crate::io::run_dir::{prepare_out, written_files, OutMode, RunManifest};
use crate::io::settings_diff::check_same_settings;
use crate::metrics::ranking::RankingMetrics;
use crate::quant::any::AnyTokenizer;
use crate::quant::tokenizer::Tokenizer;
use crate::Gpu;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The manifest kind of a ranking run.
pub const KIND: &str = "rank";
/// The metrics file of a run folder.
pub const METRICS: &str = "metrics.json";
/// The predictions file of a run folder.
pub const PREDICTIONS: &str = "predictions.csv";

/// The fit part of [`RankMetricsFile`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitSummary {
    /// Validation AUC after each epoch.
    pub valid_auc: Vec<f64>,
    /// The epoch (1-based) whose parameters were kept.
    pub best_epoch: usize,
    /// Training steps.
    pub steps: u64,
    /// Whether early stopping ended training.
    pub stopped_early: bool,
    /// Wall seconds of this invocation's training (a resumed run counts its own part).
    pub seconds: f64,
}

/// `metrics.json` of a ranking run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankMetricsFile {
    /// `din`, `din-sid`, `mcca`, `mcca/wo-msc`, …
    pub model: String,
    /// The ranker's settings (families resolved).
    pub config: RankerConfig,
    /// The tokenizer runs whose codes were embedded.
    pub codes: Vec<PathBuf>,
    /// The protocol's settings and counts.
    pub protocol: ProtocolSummary,
    /// How training went (absent for `rank eval` of a finished run).
    pub fit: Option<FitSummary>,
    /// Metrics of the validation and test splits.
    pub valid: RankingMetrics,
    /// Metrics of the test split.
    pub test: RankingMetrics,
    /// The popularity baseline on the same splits ([`super::baseline`]); absent in files
    /// written before it was added.
    #[serde(default)]
    pub popularity: Option<BaselineMetrics>,
    /// What fine-tuning did to the tokenizer (runs that tuned one): codes changed per token,
    /// code metrics before and after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finetune: Option<FinetuneSummary>,
}

/// What a ranking run reads.
#[derive(Clone, Debug)]
pub struct RankData<'a> {
    /// The rated log.
    pub log: &'a Interactions,
    /// The protocol's settings.
    pub protocol: ProtocolConfig,
    /// Finished tokenizer runs whose codes to embed (none for `din`).
    pub code_runs: Vec<PathBuf>,
    /// The tokenizer run to fine-tune with the ranker ([`super::finetune`]; the settings say
    /// how: [`RankerConfig::finetune`]) and the embeddings it was fitted on. Its codes are
    /// embedded whether or not `code_runs` names it.
    pub finetune: Option<(PathBuf, &'a ItemEmbeddings)>,
}

impl RankData<'_> {
    /// The code runs, with the fine-tuned one added when absent.
    fn runs(&self) -> Vec<PathBuf> {
        let mut runs = self.code_runs.clone();
        if let Some((r, _)) = &self.finetune {
            if !runs
                .iter()
                .any(|c| crate::io::run_dir::same_folder(c, r) || c == r)
            {
                runs.push(r.clone());
            }
        }
        runs
    }

    fn build(&self) -> Result<(RankProtocol, Option<CodeTables>)> {
        let p = RankProtocol::build(self.log, &self.protocol)?;
        let runs = self.runs();
        let codes = if runs.is_empty() {
            None
        } else {
            Some(load_code_tables(&runs, &self.log.items)?)
        };
        Ok((p, codes))
    }
}

/// Scores the validation and test splits: their predictions and the run's `metrics.json`.
fn score_run(
    ranker: &super::Ranker,
    p: &RankProtocol,
    data: &RankData<'_>,
    fit: Option<FitSummary>,
) -> Result<(Vec<Prediction>, RankMetricsFile)> {
    let mut preds = Vec::new();
    let mut metrics = Vec::new();
    for split in [SplitName::Valid, SplitName::Test] {
        let s = ranker.score(p, split)?;
        metrics.push(RankingMetrics::compute(
            p.users(split),
            p.labels(split),
            &s,
            &p.cold_flags(split),
        )?);
        preds.extend(split_predictions(p, data.log, split, &s)?);
    }
    let test = metrics.pop().expect("two splits");
    let valid = metrics.pop().expect("two splits");
    let m = RankMetricsFile {
        model: ranker.config.label(),
        config: ranker.config.clone(),
        codes: data.code_runs.clone(),
        protocol: p.summary(),
        fit,
        valid,
        test,
        popularity: Some(popularity_metrics(p)?),
        finetune: None,
    };
    Ok((preds, m))
}

fn write_outputs(out: &Path, preds: &[Prediction], m: &RankMetricsFile) -> Result<()> {
    write_predictions(&out.join(PREDICTIONS), preds)?;
    let text = serde_json::to_string_pretty(m).map_err(|e| Error::Invalid(e.to_string()))?;
    write_atomic(&out.join(METRICS), format!("{text}\n").as_bytes())
}

fn finish_manifest(out: &Path, mut manifest: RunManifest) -> Result<()> {
    manifest.complete = true;
    manifest.files = written_files(out)?;
    manifest.write(out)
}

/// Trains a ranker into `out` and scores the validation and test splits; `progress` sees every
/// step. With [`OutMode::Resume`], a checkpoint there continues (bit for bit) when every
/// setting that changes the result matches (`epochs`, `patience`, `checkpoint_steps` and
/// `eval_batch_size` may differ).
pub fn train_run(
    gpu: &Gpu,
    data: &RankData<'_>,
    cfg: &RankerConfig,
    out: &Path,
    mode: OutMode,
    progress: &mut dyn FnMut(&FitProgress),
) -> Result<RankMetricsFile> {
    cfg.check()?;
    let (p, mut codes) = data.build()?;
    let mut cfg = cfg.clone();
    let source =
        match (&cfg.finetune, &data.finetune) {
            (None, None) => None,
            (Some(ft), Some((run, emb))) => {
                let src = load_source(run, &ft.family, emb, &data.log.items)?;
                cfg.finetune = Some(FinetuneConfig {
                    family: src.family.clone(),
                    ..ft.clone()
                });
                tuned_codes(gpu, codes.as_mut(), &src)?;
                Some(src)
            }
            (Some(_), None) => return Err(Error::Invalid(
                "fine-tuning settings without a tokenizer run to tune (--finetune-tokenizer RUN)"
                    .into(),
            )),
            (None, Some(_)) => {
                return Err(Error::Invalid(
                    "a tokenizer run to fine-tune without fine-tuning settings".into(),
                ))
            }
        };
    let cfg = &cfg;
    let mut ranker = super::Ranker::new(gpu, cfg, p.n_items(), p.config().history, codes.as_ref())?;
    let mut tuner = match (&source, &cfg.finetune) {
        (Some(src), Some(ft)) => {
            let fam = ranker
                .families
                .iter()
                .position(|f| f.family == src.family)
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "the ranker does not embed the family `{}` it would fine-tune (it embeds [{}])",
                        src.family,
                        ranker.config.families.join(", ")
                    ))
                })?;
            let epochs = match &src.tokenizer {
                AnyTokenizer::Mmq(m) => m.epochs_done,
                AnyTokenizer::RqVae(m) => m.epochs_done,
                _ => 0,
            };
            Some(FineTuner::new(
                gpu,
                &src.tokenizer,
                ft,
                fam,
                epochs,
                src.input.clone(),
            )?)
        }
        _ => None,
    };
    let fp = data_fingerprint(&p, &ranker.families);
    let found = prepare_out(out, mode)?;
    let manifest = RunManifest::new(KIND, &ranker.config.label(), ranker.config.families.clone());
    if let Some(m) = &found {
        m.check_same_run(out, &manifest)?;
    }
    let ck_path = out.join(FILE);
    let (mut resume, mut finished) = (None, false);
    if mode == OutMode::Resume && ck_path.exists() {
        let saved = checkpoint::load(&ck_path)?;
        if saved.finished && tuner.is_some() {
            return Err(Error::Invalid(format!(
                "{}: this fine-tuning run has finished; score it with `semid rank eval --run {} \
                 --codes {}`",
                out.display(),
                out.display(),
                out.join(TOKENIZER_DIR).display()
            )));
        }
        if saved.fingerprint != fp {
            return Err(Error::Checkpoint {
                path: ck_path,
                message: format!(
                    "was trained on other data or codes (fingerprint {}, this data {fp})",
                    saved.fingerprint
                ),
            });
        }
        let now =
            serde_json::to_value(&ranker.config).map_err(|e| Error::Invalid(e.to_string()))?;
        let was = serde_json::to_value(&saved.config).map_err(|e| Error::Invalid(e.to_string()))?;
        check_same_settings(
            &ck_path,
            "rank",
            &was,
            &now,
            &["epochs", "patience", "checkpoint_steps", "eval_batch_size"],
        )?;
        let pw =
            serde_json::to_value(&saved.protocol).map_err(|e| Error::Invalid(e.to_string()))?;
        let pn = serde_json::to_value(&data.protocol).map_err(|e| Error::Invalid(e.to_string()))?;
        check_same_settings(&ck_path, "protocol", &pw, &pn, &[])?;
        ranker = saved.ranker(gpu, codes.as_ref())?;
        ranker.config = cfg.clone();
        ranker.config.families = saved.config.families.clone();
        // A finished run keeps no optimizer state, so it is scored again, never trained further.
        finished = saved.finished;
        resume = saved.fit;
    }
    manifest.write(out)?;
    let started = Instant::now();
    let report = if finished {
        None
    } else {
        let pcfg = data.protocol.clone();
        let fpc = fp.clone();
        let mut ck = |r: &super::Ranker, st: &super::FitState| {
            checkpoint::save(&ck_path, r, &pcfg, &fpc, Some(st))
        };
        let hooks = FitHooks {
            progress,
            checkpoint: &mut ck,
            resume,
        };
        Some(match tuner.as_mut() {
            Some(t) => ranker.fit_with(&p, hooks, t)?,
            None => ranker.fit(&p, hooks)?,
        })
    };
    let mut tuned = None;
    if let (Some(t), Some(src)) = (&tuner, &source) {
        let (summary, final_codes) = write_tuned_run(gpu, out, src, t)?;
        ranker.set_codes(t.family(), t.log_table(&final_codes))?;
        tuned = Some(summary);
    }
    let fit = report.map(|r: FitReport| FitSummary {
        valid_auc: r.valid_auc,
        best_epoch: r.best_epoch + 1,
        steps: r.steps,
        stopped_early: r.stopped_early,
        seconds: started.elapsed().as_secs_f64(),
    });
    let (preds, mut m) = score_run(&ranker, &p, data, fit)?;
    m.codes = data.runs();
    m.finetune = tuned;
    // A tuned run is judged on its tuned codes (`rank eval --codes <out>/tokenizer`).
    let fp = match &tuner {
        Some(_) => data_fingerprint(&p, &ranker.families),
        None => fp,
    };
    checkpoint::save(&ck_path, &ranker, &data.protocol, &fp, None)?;
    write_outputs(out, &preds, &m)?;
    finish_manifest(out, manifest)?;
    Ok(m)
}

/// Replaces the tuned family's codes in `codes` by its tokenizer's own encoding (the semantic
/// levels without a collision suffix, [`super::finetune`]).
fn tuned_codes(gpu: &Gpu, codes: Option<&mut CodeTables>, src: &Source) -> Result<()> {
    let tables = codes.ok_or_else(|| Error::Invalid("fine-tuning needs code tables".into()))?;
    let mut tok = src.tokenizer.clone();
    tok.set_gpu(gpu);
    let all = tok.encode(gpu, &src.input.data)?;
    let table = src.input.log_table(&all);
    let f = tables
        .families
        .iter_mut()
        .find(|f| f.family == src.family)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "the code tables lack the tuned family `{}`",
                src.family
            ))
        })?;
    f.levels = all.levels;
    f.k = all.sizes.clone();
    f.table = table;
    Ok(())
}

/// Scores a finished ranking run (`run`, a folder `train_run` wrote) on `data` again and writes
/// `predictions.csv` and `metrics.json` into `out` (a new folder, or one `mode` allows). The
/// data must be what it was trained on (same fingerprint), unless `allow_other_data`.
pub fn eval_run(
    gpu: &Gpu,
    run: &Path,
    data: &RankData<'_>,
    out: &Path,
    mode: OutMode,
    allow_other_data: bool,
) -> Result<RankMetricsFile> {
    let saved = checkpoint::load(&run.join(FILE))?;
    if !saved.finished {
        return Err(Error::Invalid(format!(
            "{}: the ranker there has not finished training; finish it with `semid rank train \
             --resume`",
            run.display()
        )));
    }
    if crate::io::run_dir::same_folder(run, out) {
        return Err(Error::Invalid(format!(
            "--out {} is the run folder itself; choose another folder",
            out.display()
        )));
    }
    let (p, codes) = data.build()?;
    let ranker = saved.ranker(gpu, codes.as_ref())?;
    let fp = data_fingerprint(&p, &ranker.families);
    if fp != saved.fingerprint && !allow_other_data {
        return Err(Error::Invalid(format!(
            "{}: the ranker was trained on other data or codes (fingerprint {}, this data {fp}); \
             pass --other-data to score it anyway",
            run.display(),
            saved.fingerprint
        )));
    }
    let found = prepare_out(out, mode)?;
    let manifest = RunManifest::new(
        "rank-eval",
        &ranker.config.label(),
        ranker.config.families.clone(),
    );
    if let Some(m) = &found {
        m.check_same_run(out, &manifest)?;
    }
    manifest.write(out)?;
    let (preds, m) = score_run(&ranker, &p, data, None)?;
    write_outputs(out, &preds, &m)?;
    finish_manifest(out, manifest)?;
    Ok(m)
}

/// Reads a run's `metrics.json`.
pub fn read_metrics(run: &Path) -> Result<RankMetricsFile> {
    let path = run.join(METRICS);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Data {
        file: path.clone(),
        row: e.line(),
        field: "metrics".into(),
        message: format!("not a ranking run's metrics: {e}"),
    })
}
