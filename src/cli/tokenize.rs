//! `semid tokenize`: fits a tokenizer per modality (and the modal-joint input) and writes the
//! semantic IDs, checkpoints, metrics and plots.

use super::{progress, Cli};
use semid::config::{Method, SemidConfig};
use semid::data::{load_item_embeddings, load_item_table, EmbeddingInput};
use semid::io::run_dir::OutMode;
use semid::pipeline::{tokenize, RunOptions};
use semid::quant::rq_kmeans::progress_units;
use semid::Gpu;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Arguments of `semid tokenize`.
#[derive(clap::Args, Debug)]
pub struct TokenizeArgs {
    /// Tokenizer (overrides the config file).
    #[arg(long, value_enum)]
    pub method: Option<Method>,
    /// Embedding files, one per modality, comma-separated; `NAME=PATH` names the modality
    /// (`text=t.npy,audio=a.npy`), else the file stem is used. `.npy` (f32/f16), `.safetensors`
    /// (one tensor per modality) or `.csv`.
    #[arg(long, value_delimiter = ',', required = true)]
    pub embeddings: Vec<String>,
    /// Item ids, one a line, in the row order of the embeddings (not needed for CSV with ids).
    #[arg(long)]
    pub ids: Option<PathBuf>,
    /// Item table whose label column (genre, class, category or label) gives purity metrics.
    #[arg(long)]
    pub items: Option<PathBuf>,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// TOML config (see `semid config`); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Levels (overrides the config; not for MMQ, whose ID has one token per expert).
    #[arg(long)]
    pub levels: Option<usize>,
    /// Training epochs of the learned tokenizers, RQ-VAE and MMQ (overrides the config).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Codes per level (overrides the config).
    #[arg(long)]
    pub k: Option<usize>,
    /// Seed (overrides the config).
    #[arg(long)]
    pub seed: Option<u64>,
    /// PSRQ: weight of the prefix half of the feature (1 = the paper).
    #[arg(long)]
    pub prefix_weight: Option<f32>,
    /// Do not fit the modal-joint IDs.
    #[arg(long)]
    pub no_joint: bool,
    /// Continue the run in `--out` from its checkpoints (every setting that changes the
    /// result must match them).
    #[arg(long)]
    pub resume: bool,
    /// Replace the earlier run in `--out`: its files are deleted first (only a folder that a
    /// semid run wrote is ever cleared).
    #[arg(long)]
    pub overwrite: bool,
}

/// Applies the flags over the config file.
pub fn build_config(a: &TokenizeArgs) -> anyhow::Result<SemidConfig> {
    let mut cfg = match &a.config {
        Some(p) => SemidConfig::load(p)?,
        None => SemidConfig::default(),
    };
    if let Some(m) = a.method {
        cfg.method = m;
    }
    if let Some(l) = a.levels {
        if cfg.method == Method::Mmq {
            anyhow::bail!(
                "--levels does not apply to mmq: its ID has one token per expert (set \
                 mmq.shared_experts and mmq.specific_experts in the config)"
            );
        }
        cfg.psrq.levels = l;
        cfg.rq_kmeans.levels = l;
        cfg.rqvae.levels = l;
    }
    if let Some(k) = a.k {
        cfg.psrq.k = k;
        cfg.rq_kmeans.k = k;
        cfg.rqvae.k = k;
        cfg.mmq.k = k;
    }
    if let Some(e) = a.epochs {
        cfg.rqvae.epochs = e;
        cfg.mmq.epochs = e;
    }
    if let Some(s) = a.seed {
        cfg.psrq.seed = s;
        cfg.rq_kmeans.seed = s;
        cfg.rqvae.seed = s;
        cfg.mmq.seed = s;
    }
    if let Some(w) = a.prefix_weight {
        cfg.psrq.prefix_weight = w;
    }
    if a.no_joint {
        cfg.joint.enabled = false;
    }
    Ok(cfg)
}

/// Warns when the learned tokenizer would train for zero epochs (its codebooks are then only
/// the k-means initialisation, which is rarely what was meant).
fn warn_untrained(cli: &Cli, cfg: &SemidConfig) {
    let epochs = match cfg.method {
        Method::Rqvae => cfg.rqvae.epochs,
        Method::Mmq => cfg.mmq.epochs,
        _ => return,
    };
    if epochs == 0 && !cli.quiet {
        eprintln!(
            "semid: warning: {} with 0 epochs trains nothing: the codes come from the \
             untrained encoder and the k-means initialisation of the codebooks",
            cfg.method.name()
        );
    }
}

/// Labels aligned to `ids` from an item table.
pub fn labels_for(items: &Path, ids: &[String]) -> anyhow::Result<Option<Vec<u32>>> {
    let table = load_item_table(items)?;
    let Some(labels) = table.labels else {
        return Ok(None);
    };
    let pos: HashMap<&str, u32> = table
        .ids
        .iter()
        .zip(&labels)
        .map(|(i, l)| (i.as_str(), *l))
        .collect();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        match pos.get(id.as_str()) {
            Some(l) => out.push(*l),
            None => anyhow::bail!(
                "{}: item `{id}` of the embeddings is missing",
                items.display()
            ),
        }
    }
    Ok(Some(out))
}

/// Runs `semid tokenize`.
pub fn run(cli: &Cli, a: &TokenizeArgs) -> anyhow::Result<()> {
    let cfg = build_config(a)?;
    let mode = OutMode::from_flags(a.resume, a.overwrite)?;
    warn_untrained(cli, &cfg);
    let inputs = a
        .embeddings
        .iter()
        .map(|s| s.parse::<EmbeddingInput>())
        .collect::<Result<Vec<_>, _>>()?;
    let emb = load_item_embeddings(&inputs, a.ids.as_deref())?;
    let labels = match &a.items {
        Some(p) => labels_for(p, &emb.ids)?,
        None => None,
    };
    let gpu = Gpu::new(&cli.gpu_options())?;
    run_with(cli, &gpu, &emb, &cfg, &a.out, mode, labels.as_deref())
}

/// Fits, writes and prints a summary; shared with `semid demo`.
pub fn run_with(
    cli: &Cli,
    gpu: &Gpu,
    emb: &semid::data::ItemEmbeddings,
    cfg: &SemidConfig,
    out: &Path,
    mode: OutMode,
    labels: Option<&[u32]>,
) -> anyhow::Result<()> {
    // Progress steps per family: k-means iterations for the k-means methods, epochs for
    // RQ-VAE and MMQ.
    let levels = match cfg.method {
        Method::Psrq => progress_units(cfg.psrq.levels, &cfg.psrq.kmeans).1,
        Method::RqKmeans => progress_units(cfg.rq_kmeans.levels, &cfg.rq_kmeans.kmeans).1,
        Method::Rqvae => cfg.rqvae.epochs,
        Method::Mmq => cfg.mmq.epochs,
    };
    let fams = semid::pipeline::families(emb, cfg).len();
    let pb = progress::bar((fams * levels) as u64, cfg.method.name(), cli.quiet);
    let mut done_before = 0usize;
    let mut last_family = String::new();
    let mut on_progress = |fam: &str, done: usize, total: usize| {
        if fam != last_family {
            if !last_family.is_empty() {
                done_before += total;
            }
            last_family = fam.to_string();
        }
        pb.set_message(format!("{} {fam}", cfg.method.name()));
        pb.set_position((done_before + done) as u64);
    };
    let results = tokenize(
        gpu,
        emb,
        cfg,
        &mut RunOptions {
            out,
            mode,
            labels,
            progress: &mut on_progress,
        },
    )?;
    pb.finish_and_clear();
    let all: Vec<&semid::metrics::Metrics> = results.iter().map(|r| &r.metrics).collect();
    if !cli.quiet {
        println!("{}", semid::metrics::compare_table(&all));
        for r in &results {
            println!(
                "{}: {} items, {} levels{}; checkpoint {}",
                r.name,
                r.codes.items(),
                r.codes.levels,
                if r.final_codes.levels > r.codes.levels {
                    format!(
                        " + collision suffix (up to {})",
                        r.final_codes.sizes.last().copied().unwrap_or(1)
                    )
                } else {
                    String::new()
                },
                r.checkpoint.display()
            );
        }
        println!("outputs in {}", out.display());
    }
    Ok(())
}
