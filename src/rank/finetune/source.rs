//! Where a fine-tuning run starts and what it leaves: the tokenizer of a finished run with
//! the embeddings it was fitted on (checked by fingerprint), and at the end the tuned
//! tokenizer written as a tokenizer run of its own (`tokenizer/` in the ranking run's folder)
//! with `finetune.json`: how many items' codes changed, per token, and the code metrics before
//! and after.

use super::step::{FineTuner, TunedInputs};
use crate::config::SemidConfig;
use crate::data::ItemEmbeddings;
use crate::error::{Error, Result};
use crate::io::run_dir::{prepare_out, written_files, OutMode, RunManifest};
use crate::io::{fingerprint, write_atomic};
use crate::metrics::Metrics;
use crate::pipeline::{checkpoint_path, families, finish_family, write_outputs, RUN_CONFIG};
use crate::quant::any::AnyTokenizer;
use crate::quant::codes::Codes;
use crate::quant::tokenizer::Tokenizer;
use crate::Gpu;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The folder, inside a ranking run's, of the tuned tokenizer's run.
pub const TOKENIZER_DIR: &str = "tokenizer";
/// The summary file of a fine-tuning, in [`TOKENIZER_DIR`].
pub const SUMMARY: &str = "finetune.json";
/// The manifest kind of a fine-tuned tokenizer run: an ordinary tokenizer run (of the tuned
/// family alone), which `semid eval`, `--codes` and `semid tokenize --resume` read as any.
pub const KIND: &str = "tokenize";

/// A finished tokenizer run's family, loaded for fine-tuning.
#[derive(Clone, Debug)]
pub struct Source {
    /// The run folder.
    pub run: PathBuf,
    /// The run's settings (`config.toml`).
    pub config: SemidConfig,
    /// The family tuned.
    pub family: String,
    /// Its fitted tokenizer.
    pub tokenizer: AnyTokenizer,
    /// Item ids of the embeddings, the rows of [`TunedInputs::data`].
    pub ids: Vec<String>,
    /// The family's input rows and where the log's items are among them.
    pub input: TunedInputs,
}

/// What `finetune.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinetuneSummary {
    /// The tokenizer run fine-tuned.
    pub source_run: PathBuf,
    /// The family tuned.
    pub family: String,
    /// Its method (`mmq`, `rqvae`).
    pub method: String,
    /// The fine-tuning settings.
    pub settings: super::FinetuneConfig,
    /// Items encoded (every item of the embeddings).
    pub items: usize,
    /// Items whose code changed at each token.
    pub changed_per_token: Vec<usize>,
    /// Items whose code changed at some token.
    pub changed_items: usize,
    /// Code metrics before fine-tuning (the source tokenizer's codes, no collision suffix).
    pub before: Metrics,
    /// Code metrics after.
    pub after: Metrics,
}

/// Loads family `family` of the finished run `run` (empty: its only family) with the
/// embeddings `emb` it was fitted on, its rows aligned to the log's `items`.
pub fn load_source(
    run: &Path,
    family: &str,
    emb: &ItemEmbeddings,
    items: &[String],
) -> Result<Source> {
    let manifest = RunManifest::read(run)?.ok_or_else(|| {
        Error::Invalid(format!(
            "{}: not a tokenizer run (no manifest); pass the --out folder of `semid tokenize`",
            run.display()
        ))
    })?;
    if !manifest.complete {
        return Err(Error::Invalid(format!(
            "{}: the run did not finish; finish it with `semid tokenize --resume` first",
            run.display()
        )));
    }
    let family = match (family, manifest.families.as_slice()) {
        ("", [one]) => one.clone(),
        ("", many) => {
            return Err(Error::Invalid(format!(
                "{}: the run has the families [{}]; name the one to fine-tune with \
                 --finetune-family",
                run.display(),
                many.join(", ")
            )))
        }
        (f, all) if all.iter().any(|a| a == f) => f.to_string(),
        (f, all) => {
            return Err(Error::Invalid(format!(
                "{}: the run has no family `{f}` (it has [{}])",
                run.display(),
                all.join(", ")
            )))
        }
    };
    let config = SemidConfig::load(&run.join(RUN_CONFIG))?;
    let ck = checkpoint_path(run, &family)?;
    let (tokenizer, meta) = AnyTokenizer::load(&ck)?;
    // Checked here, before the ranker is built, so the reason is the first error a user sees.
    if !matches!(tokenizer, AnyTokenizer::Mmq(_) | AnyTokenizer::RqVae(_)) {
        return Err(Error::Invalid(format!(
            "{}: {}",
            ck.display(),
            super::tokenizer::not_tunable(&tokenizer)
        )));
    }
    let fam = families(emb, &config)
        .into_iter()
        .find(|f| f.name == family)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "the embeddings given make no family `{family}` under {}'s settings (pass the \
                 modalities it was fitted on)",
                run.display()
            ))
        })?;
    let n = emb.ids.len();
    if meta.fingerprint != fingerprint(&fam.data, &[n, fam.dim]) {
        return Err(Error::Invalid(format!(
            "{}: was fitted on other embeddings than these ({} items, family `{family}` {} \
             wide): pass the files the run was made from, in the same order",
            ck.display(),
            n,
            fam.dim
        )));
    }
    let by_id: HashMap<&str, u32> = emb
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i as u32))
        .collect();
    let rows = items
        .iter()
        .map(|id| {
            by_id.get(id.as_str()).copied().ok_or_else(|| {
                Error::Invalid(format!(
                    "the log's item `{id}` has no row in the embeddings of {}",
                    run.display()
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Source {
        run: run.to_path_buf(),
        config,
        family,
        tokenizer,
        ids: emb.ids.clone(),
        input: TunedInputs {
            data: fam.data,
            dim: fam.dim,
            rows,
        },
    })
}

/// Writes the tuned tokenizer of `ft` as a tokenizer run into `out/tokenizer` (codes of every
/// item, checkpoint, metrics, `config.toml` with `dedup = false`, `finetune.json`), and
/// returns the summary and the codes written.
pub fn write_tuned_run(
    gpu: &Gpu,
    out: &Path,
    src: &Source,
    ft: &FineTuner,
) -> Result<(FinetuneSummary, Codes)> {
    let dir = out.join(TOKENIZER_DIR);
    prepare_out(&dir, OutMode::Overwrite)?;
    let mut cfg = src.config.clone();
    // The collision suffix indexes one set of collisions; fine-tuning moves codes, so the
    // tuned run has the semantic levels only, as the ranker embedded them.
    cfg.dedup = false;
    let manifest = RunManifest::new(KIND, cfg.method.name(), vec![src.family.clone()]);
    manifest.write(&dir)?;
    let fam = crate::pipeline::FamilyInput {
        name: src.family.clone(),
        dim: src.input.dim,
        data: src.input.data.clone(),
        parts: match &src.tokenizer {
            AnyTokenizer::Mmq(m) => m.modalities.clone(),
            _ => Vec::new(),
        },
    };
    let ck = checkpoint_path(&dir, &src.family)?;
    let n = src.ids.len();
    let fp = fingerprint(&fam.data, &[n, fam.dim]);
    let mut before_tok = src.tokenizer.clone();
    before_tok.set_gpu(gpu);
    let before_codes = before_tok.encode(gpu, &fam.data)?;
    let before = finish_family(
        gpu,
        &fam,
        &cfg,
        before_tok,
        before_codes.clone(),
        None,
        ck.clone(),
    )?;
    let mut tuned = ft.model()?;
    tuned.set_gpu(gpu);
    tuned.save(&ck, &fp)?;
    let codes = tuned.encode(gpu, &fam.data)?;
    let after = finish_family(gpu, &fam, &cfg, tuned, codes.clone(), None, ck)?;
    let levels = codes.levels;
    let mut changed_per_token = vec![0usize; levels];
    let mut changed_items = 0;
    for i in 0..n {
        let (a, b) = (before_codes.item(i), codes.item(i));
        let mut any = false;
        for l in 0..levels {
            if a[l] != b[l] {
                changed_per_token[l] += 1;
                any = true;
            }
        }
        changed_items += any as usize;
    }
    let summary = FinetuneSummary {
        source_run: src.run.clone(),
        family: src.family.clone(),
        method: cfg.method.name().to_string(),
        settings: ft.settings().clone(),
        items: n,
        changed_per_token,
        changed_items,
        before: before.metrics.clone(),
        after: after.metrics.clone(),
    };
    write_outputs(&dir, &src.ids, std::slice::from_ref(&after))?;
    write_atomic(
        &dir.join(RUN_CONFIG),
        toml::to_string_pretty(&cfg)
            .map_err(|e| Error::Invalid(format!("config: {e}")))?
            .as_bytes(),
    )?;
    let text = serde_json::to_string_pretty(&summary).map_err(|e| Error::Invalid(e.to_string()))?;
    write_atomic(&dir.join(SUMMARY), format!("{text}\n").as_bytes())?;
    let mut manifest = manifest;
    manifest.complete = true;
    manifest.files = written_files(&dir)?;
    manifest.write(&dir)?;
    Ok((summary, codes))
}
