//! The tokenize pipeline: per-modality IDs (S^t, S^a, …) and the modal-joint IDs (S^o) — or,
//! for MMQ, one ID over all modalities — with checkpoints, resume, collision suffixes, metrics
//! and outputs: what `semid tokenize` runs.
//!
//! Modal-joint input (PSRQ paper §4.1, NOTES.md §1.3): the paper writes `X^o = X^t ⊕ X^a` with
//! both modalities d-wide. semid L2-normalises each modality's rows first (when
//! `joint.normalize`, the default) and then concatenates them, so modalities of different widths
//! (e.g. 768-d text and 512-d audio) weigh the same in the joint distance.

use crate::config::{Method, SemidConfig};
use crate::data::{ItemEmbeddings, Modality};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::io::fingerprint;
use crate::io::run_dir::{prepare_out, written_files, OutMode, RunManifest};
use crate::metrics::{Metrics, MetricsInput};
use crate::quant::any::AnyTokenizer;
use crate::quant::codes::Codes;
use crate::quant::dedup::dedup_suffix;
use crate::quant::mmq::{Mmq, ModalitySpec};
use crate::quant::psrq::Psrq;
use crate::quant::rq_kmeans::RqKMeans;
use crate::quant::rqvae::RqVae;
use crate::quant::tokenizer::{FitHooks, Tokenizer};
use std::path::{Path, PathBuf};

/// One family of semantic IDs: a modality, or the modal-joint input.
pub struct FamilyInput {
    /// `text`, `audio`, …, or `joint`.
    pub name: String,
    /// Input width.
    pub dim: usize,
    /// `items × dim` values.
    pub data: Vec<f32>,
    /// The modalities whose columns make up each row, in order.
    pub parts: Vec<ModalitySpec>,
}

pub use crate::metrics::drift::normalize_rows;

/// The modal-joint input: each modality's rows (L2-normalised when `normalize`) concatenated.
pub fn joint_input(mods: &[&Modality], normalize: bool) -> FamilyInput {
    let n = mods.first().map_or(0, |m| m.rows());
    let dim: usize = mods.iter().map(|m| m.dim).sum();
    let parts: Vec<Vec<f32>> = mods
        .iter()
        .map(|m| {
            if normalize {
                normalize_rows(&m.data, m.dim)
            } else {
                m.data.clone()
            }
        })
        .collect();
    let mut data = Vec::with_capacity(n * dim);
    for i in 0..n {
        for (m, p) in mods.iter().zip(&parts) {
            data.extend_from_slice(&p[i * m.dim..(i + 1) * m.dim]);
        }
    }
    FamilyInput {
        name: "joint".into(),
        dim,
        data,
        parts: mods
            .iter()
            .map(|m| ModalitySpec::new(&m.name, m.dim))
            .collect(),
    }
}

/// The families to tokenize: every modality, then the joint input when there are several
/// modalities and `joint.enabled`. MMQ tokenizes all modalities at once: one family `mmq`,
/// the modalities side by side (L2-normalised when `joint.normalize`).
pub fn families(emb: &ItemEmbeddings, cfg: &SemidConfig) -> Vec<FamilyInput> {
    if cfg.method == Method::Mmq {
        let mods: Vec<&Modality> = emb.modalities.iter().collect();
        let mut f = joint_input(&mods, cfg.joint.normalize);
        f.name = "mmq".into();
        return vec![f];
    }
    let mut v: Vec<FamilyInput> = emb
        .modalities
        .iter()
        .map(|m| FamilyInput {
            name: m.name.clone(),
            dim: m.dim,
            data: m.data.clone(),
            parts: vec![ModalitySpec::new(&m.name, m.dim)],
        })
        .collect();
    if cfg.joint.enabled && emb.modalities.len() > 1 {
        let mods: Vec<&Modality> = emb.modalities.iter().collect();
        v.push(joint_input(&mods, cfg.joint.normalize));
    }
    v
}

/// Options of a tokenize run.
pub struct RunOptions<'a> {
    /// Output folder (checkpoints, codes, metrics).
    pub out: &'a Path,
    /// How the run may use `out`: a new run needs it empty, `Overwrite` clears an earlier
    /// run's folder, `Resume` continues from the checkpoints there (which must match the
    /// method, data and settings).
    pub mode: OutMode,
    /// Labels per item (genres, true clusters) for purity.
    pub labels: Option<&'a [u32]>,
    /// Progress: (family, levels done, levels in all).
    pub progress: &'a mut dyn FnMut(&str, usize, usize),
}

/// The result of one family.
pub struct FamilyResult {
    /// Family name.
    pub name: String,
    /// The fitted tokenizer.
    pub tokenizer: AnyTokenizer,
    /// The semantic codes (without the collision suffix).
    pub codes: Codes,
    /// The codes with the collision suffix level, when `dedup` is on.
    pub final_codes: Codes,
    /// Metrics of the semantic levels.
    pub metrics: Metrics,
    /// Checkpoint path.
    pub checkpoint: PathBuf,
}

/// Checkpoint path of a family in `out`.
///
/// Fails when `family` cannot be part of a file name (see [`crate::data::names`]): a name
/// that slipped past the input checks still never reaches a path outside `out`.
pub fn checkpoint_path(out: &Path, family: &str) -> Result<PathBuf> {
    crate::data::names::check_family_name(family)?;
    Ok(out.join(format!("tokenizer_{family}.safetensors")))
}

/// Settings that may differ between a checkpoint of `method` and the run resuming it: how
/// long to train and how often to save (`epochs`, `checkpoint_every` of the learned
/// tokenizers; `levels` of the k-means methods, which fit one level after another, so more
/// levels continue a run and fewer are refused by the fit). Any other change would give a
/// model that no single setting describes.
pub fn resume_may_differ(method: Method) -> &'static [&'static str] {
    match method {
        Method::Psrq | Method::RqKmeans => &["levels"],
        Method::Rqvae | Method::Mmq => &["epochs", "checkpoint_every"],
    }
}

/// The settings of `cfg`'s method as JSON, as checkpoints store them.
fn method_config_json(cfg: &SemidConfig) -> Result<serde_json::Value> {
    let v = match cfg.method {
        Method::Psrq => serde_json::to_value(&cfg.psrq),
        Method::RqKmeans => serde_json::to_value(&cfg.rq_kmeans),
        Method::Rqvae => serde_json::to_value(&cfg.rqvae),
        Method::Mmq => serde_json::to_value(&cfg.mmq),
    };
    v.map_err(|e| Error::Invalid(format!("config: {e}")))
}

/// Fits (or resumes) one family's tokenizer, checkpointing after every level.
pub fn fit_family(
    gpu: &Gpu,
    fam: &FamilyInput,
    cfg: &SemidConfig,
    opts: &mut RunOptions<'_>,
) -> Result<FamilyResult> {
    let fp = fingerprint(&fam.data, &[fam.data.len() / fam.dim.max(1), fam.dim]);
    let ck = checkpoint_path(opts.out, &fam.name)?;
    let resume = if opts.mode == OutMode::Resume && ck.exists() {
        let (tok, meta) = AnyTokenizer::load(&ck)?;
        meta.check_resumable(&ck, cfg.method.name(), &fp)?;
        crate::io::settings_diff::check_same_settings(
            &ck,
            cfg.method.name(),
            &meta.config,
            &method_config_json(cfg)?,
            resume_may_differ(cfg.method),
        )?;
        Some(tok)
    } else {
        None
    };
    let name = fam.name.clone();
    let mut progress = |d: usize, t: usize| (opts.progress)(&name, d, t);
    let (tokenizer, codes) = match cfg.method {
        Method::Psrq => {
            let resume = match resume {
                Some(AnyTokenizer::Psrq(t)) => Some(t),
                Some(_) => None,
                None => None,
            };
            let mut on_level = |t: &Psrq| AnyTokenizer::Psrq(t.clone()).save(&ck, &fp);
            let (t, c) = Psrq::fit_with(
                gpu,
                &fam.data,
                fam.dim,
                &cfg.psrq,
                FitHooks {
                    progress: &mut progress,
                    resume,
                    on_level: &mut on_level,
                },
            )?;
            (AnyTokenizer::Psrq(t), c)
        }
        Method::RqKmeans => {
            let resume = match resume {
                Some(AnyTokenizer::RqKMeans(t)) => Some(t),
                Some(_) => None,
                None => None,
            };
            let mut on_level = |t: &RqKMeans| AnyTokenizer::RqKMeans(t.clone()).save(&ck, &fp);
            let (t, c) = RqKMeans::fit_with(
                gpu,
                &fam.data,
                fam.dim,
                &cfg.rq_kmeans,
                FitHooks {
                    progress: &mut progress,
                    resume,
                    on_level: &mut on_level,
                },
            )?;
            (AnyTokenizer::RqKMeans(t), c)
        }
        Method::Rqvae => {
            let resume = match resume {
                Some(AnyTokenizer::RqVae(t)) => Some(t),
                Some(_) => None,
                None => None,
            };
            let mut on_level = |t: &RqVae| AnyTokenizer::RqVae(t.clone()).save(&ck, &fp);
            let (t, c) = RqVae::fit_with(
                gpu,
                &fam.data,
                fam.dim,
                &cfg.rqvae,
                FitHooks {
                    progress: &mut progress,
                    resume,
                    on_level: &mut on_level,
                },
            )?;
            (AnyTokenizer::RqVae(t), c)
        }
        Method::Mmq => {
            let resume = match resume {
                Some(AnyTokenizer::Mmq(t)) => Some(t),
                Some(_) => None,
                None => None,
            };
            let mut on_level = |t: &Mmq| AnyTokenizer::Mmq(t.clone()).save(&ck, &fp);
            let (t, c) = Mmq::fit_with(
                gpu,
                &fam.data,
                &fam.parts,
                &cfg.mmq,
                FitHooks {
                    progress: &mut progress,
                    resume,
                    on_level: &mut on_level,
                },
            )?;
            (AnyTokenizer::Mmq(t), c)
        }
    };
    tokenizer.save(&ck, &fp)?;
    finish_family(gpu, fam, cfg, tokenizer, codes, opts.labels, ck)
}

/// Fits every family of `emb` and writes the outputs into `opts.out`:
/// `codes.csv` (item id, then one column per level per family), `codes_<family>.npy` (u32),
/// `tokenizer_<family>.safetensors`, `metrics.json`, `metrics.txt` and `clusters_<family>.svg`
/// (with the `plots` feature).
pub fn tokenize(
    gpu: &Gpu,
    emb: &ItemEmbeddings,
    cfg: &SemidConfig,
    opts: &mut RunOptions<'_>,
) -> Result<Vec<FamilyResult>> {
    if emb.is_empty() {
        return Err(Error::Invalid("no items to tokenize".into()));
    }
    if let Some(l) = opts.labels {
        if l.len() != emb.len() {
            return Err(Error::Invalid(format!(
                "{} labels for {} items",
                l.len(),
                emb.len()
            )));
        }
    }
    let fams = families(emb, cfg);
    for f in &fams {
        crate::data::names::check_family_name(&f.name)?;
    }
    let mut manifest = RunManifest::new(
        "tokenize",
        cfg.method.name(),
        fams.iter().map(|f| f.name.clone()).collect(),
    );
    if let Some(old) = prepare_out(opts.out, opts.mode)? {
        old.check_same_run(opts.out, &manifest)?;
    }
    manifest.write(opts.out)?;
    let mut results = Vec::new();
    for fam in fams {
        results.push(fit_family(gpu, &fam, cfg, opts)?);
    }
    write_outputs(opts.out, &emb.ids, &results)?;
    crate::io::write_atomic(
        &opts.out.join(RUN_CONFIG),
        toml::to_string_pretty(cfg)
            .map_err(|e| Error::Invalid(format!("config: {e}")))?
            .as_bytes(),
    )?;
    manifest.complete = true;
    manifest.files = written_files(opts.out)?;
    manifest.write(opts.out)?;
    Ok(results)
}

/// The settings of a run, saved beside its outputs so `semid eval` encodes new items the same
/// way.
pub const RUN_CONFIG: &str = "config.toml";

/// Encodes items with the tokenizers of a finished run (no retraining), computes their metrics
/// and writes the same outputs as [`tokenize`] into `out`.
pub fn encode_with_run(
    gpu: &Gpu,
    run: &Path,
    emb: &ItemEmbeddings,
    labels: Option<&[u32]>,
    out: &Path,
    mode: OutMode,
) -> Result<Vec<FamilyResult>> {
    if crate::io::run_dir::same_folder(run, out) {
        return Err(Error::Invalid(format!(
            "--out {} is the run folder itself; eval writes codes and metrics that would \
             replace the run's own, so give another folder",
            out.display()
        )));
    }
    let cfg = SemidConfig::load(&run.join(RUN_CONFIG))?;
    if let Some(m) = RunManifest::read(run)? {
        if !m.complete {
            return Err(Error::Invalid(format!(
                "{}: the run did not finish (its manifest says so); finish it with \
                 `semid tokenize --resume` first",
                run.display()
            )));
        }
    }
    let fams = families(emb, &cfg);
    let mut manifest = RunManifest::new(
        "eval",
        cfg.method.name(),
        fams.iter().map(|f| f.name.clone()).collect(),
    );
    if mode == OutMode::Resume {
        return Err(Error::Invalid("eval has nothing to resume".into()));
    }
    prepare_out(out, mode)?;
    manifest.write(out)?;
    let mut results = Vec::new();
    for fam in fams {
        let ck = checkpoint_path(run, &fam.name)?;
        if !ck.exists() {
            return Err(Error::Invalid(format!(
                "{}: the run has no tokenizer for family `{}` (its families come from the \
                 modalities it was fitted on)",
                ck.display(),
                fam.name
            )));
        }
        let (mut tokenizer, _) = AnyTokenizer::load(&ck)?;
        tokenizer.set_gpu(gpu);
        if tokenizer.dim() != fam.dim {
            return Err(Error::shape(
                "eval",
                format!(
                    "family `{}` is {}-wide here but {} was fitted on width {}",
                    fam.name,
                    fam.dim,
                    ck.display(),
                    tokenizer.dim()
                ),
            ));
        }
        if let AnyTokenizer::Mmq(m) = &tokenizer {
            if m.modalities != fam.parts {
                return Err(Error::Invalid(format!(
                    "{}: the run's MMQ was fitted on the modalities {} (in this order), not {}",
                    ck.display(),
                    describe(&m.modalities),
                    describe(&fam.parts)
                )));
            }
        }
        let codes = tokenizer.encode(gpu, &fam.data)?;
        results.push(finish_family(
            gpu, &fam, &cfg, tokenizer, codes, labels, ck,
        )?);
    }
    write_outputs(out, &emb.ids, &results)?;
    manifest.complete = true;
    manifest.files = written_files(out)?;
    manifest.write(out)?;
    Ok(results)
}

/// `text (768), audio (512)`.
fn describe(mods: &[ModalitySpec]) -> String {
    mods.iter()
        .map(|m| format!("{} ({})", m.name, m.dim))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Metrics and the collision suffix of one family's codes.
pub fn finish_family(
    gpu: &Gpu,
    fam: &FamilyInput,
    cfg: &SemidConfig,
    tokenizer: AnyTokenizer,
    codes: Codes,
    labels: Option<&[u32]>,
    checkpoint: PathBuf,
) -> Result<FamilyResult> {
    let recs = tokenizer.input_reconstructions(gpu, &fam.data, &codes)?;
    let sizes = codes.sizes.clone();
    let mut input = MetricsInput::new(&codes.data, &sizes)
        .with_embeddings(&fam.data, fam.dim)
        .with_reconstructions(&recs);
    if let Some(l) = labels {
        input = input.with_labels(l);
    }
    let metrics = Metrics::compute(&format!("{}:{}", cfg.method.name(), fam.name), &input)?;
    let final_codes = if cfg.dedup {
        let d = dedup_suffix(&codes.data, codes.levels)?;
        let mut sizes = codes.sizes.clone();
        sizes.push(d.suffix_size);
        Codes::new(d.levels, sizes, d.codes)?
    } else {
        codes.clone()
    };
    Ok(FamilyResult {
        name: fam.name.clone(),
        tokenizer,
        codes,
        final_codes,
        metrics,
        checkpoint,
    })
}

/// Writes codes (CSV and npy), metrics (JSON and text) and the cluster-size SVGs.
pub fn write_outputs(out: &Path, ids: &[String], results: &[FamilyResult]) -> Result<()> {
    use std::io::Write;
    for r in results {
        crate::data::names::check_family_name(&r.name)?;
    }
    crate::io::atomic::write_atomic_with(&out.join("codes.csv"), |w| {
        write!(w, "item_id")?;
        for r in results {
            for l in 0..r.final_codes.levels {
                write!(w, ",{}_l{}", r.name, l + 1)?;
            }
        }
        writeln!(w)?;
        for (i, id) in ids.iter().enumerate() {
            write!(w, "{}", crate::io::csv_field(id))?;
            for r in results {
                for c in r.final_codes.item(i) {
                    write!(w, ",{c}")?;
                }
            }
            writeln!(w)?;
        }
        Ok(())
    })?;
    for r in results {
        crate::data::npy::write_npy_u32(
            &out.join(format!("codes_{}.npy", r.name)),
            &[r.final_codes.items(), r.final_codes.levels],
            &r.final_codes.data,
        )?;
        #[cfg(feature = "plots")]
        r.metrics
            .write_svg(&out.join(format!("clusters_{}.svg", r.name)))?;
    }
    let all: Vec<&Metrics> = results.iter().map(|r| &r.metrics).collect();
    crate::io::write_atomic(
        &out.join("metrics.json"),
        crate::metrics::compare_json(&all).as_bytes(),
    )?;
    let mut text = String::new();
    for m in &all {
        text.push_str(&m.table());
        text.push('\n');
    }
    crate::io::write_atomic(&out.join("metrics.txt"), text.as_bytes())?;
    Ok(())
}
