//! `semid rank train` / `semid rank eval`: DIN and MCCA on semantic IDs, judged by AUC, cold
//! AUC, GAUC and logloss ([`semid::rank`]).

use super::{progress, Cli};
use semid::data::movielens::{load_ml100k, load_ml1m};
use semid::data::{load_interactions, load_item_embeddings, EmbeddingInput, Interactions};
use semid::io::run_dir::OutMode;
use semid::rank::{
    eval_run, train_run, Ablation, ModelKind, ProtocolConfig, RankData, RankMetricsFile,
    RankerConfig,
};
use semid::Gpu;
use std::path::PathBuf;

/// Arguments of `semid rank`.
#[derive(clap::Args, Debug)]
pub struct RankArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: RankCommand,
}

/// `semid rank` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum RankCommand {
    /// Train a ranker and score the validation and test splits.
    Train(TrainArgs),
    /// Score a finished ranking run again (e.g. on another machine or semid version).
    Eval(EvalArgs),
}

/// The log and protocol of a ranking run.
#[derive(clap::Args, Debug)]
pub struct DataArgs {
    /// The rated log: CSV/TSV with user, item, rating or label and timestamp, or a RecBole
    /// `.inter` file.
    #[arg(long, conflicts_with = "dataset")]
    pub interactions: Option<PathBuf>,
    /// A fetched MovieLens data set instead of `--interactions`: ml-1m or ml-100k.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Where `semid data fetch` put the data.
    #[arg(long, env = "SEMID_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Finished tokenizer runs whose semantic IDs to embed, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub codes: Vec<PathBuf>,
    /// A label at least this is positive. Default: 4 for ratings (the papers' ML-1M rule),
    /// 1 when every label is 0 or 1 (click logs such as `semid synth`'s).
    #[arg(long)]
    pub positive_threshold: Option<f32>,
    /// The most recent positives a history holds. Default: 20 for `train`, the training run's
    /// for `eval` (whose ranker was built for that width).
    #[arg(long)]
    pub history: Option<usize>,
    /// Items with fewer training events than this are cold. Default: 30 for `train` (the
    /// paper's threshold), the training run's for `eval`.
    #[arg(long)]
    pub cold_min_train: Option<usize>,
}

/// Arguments of `semid rank train`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// The data.
    #[command(flatten)]
    pub data: DataArgs,
    /// The model.
    #[arg(long, value_enum)]
    pub model: Option<ModelKind>,
    /// MCCA's ablation.
    #[arg(long, value_enum)]
    pub ablation: Option<Ablation>,
    /// Families to embed, comma-separated (din-sid: one; mcca: modalities, then the joint one).
    #[arg(long, value_delimiter = ',')]
    pub families: Vec<String>,
    /// Ranker settings (TOML, `semid config --rank`); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Epochs (more than one: early stopping on validation AUC).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Seed of initialisation and sample order.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Adam's learning rate.
    #[arg(long)]
    pub lr: Option<f32>,
    /// Samples per step.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Output folder (must be empty unless --resume or --overwrite).
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in --out from its checkpoint.
    #[arg(long, conflicts_with = "overwrite")]
    pub resume: bool,
    /// Replace the run in --out.
    #[arg(long)]
    pub overwrite: bool,
    /// Fine-tune this finished tokenizer run (rqvae or mmq) with the ranker: behaviour-aware
    /// fine-tuning through soft indexing. The tuned tokenizer is written as a tokenizer run
    /// into `--out`/tokenizer; its codes are embedded whether or not --codes names the run.
    #[arg(long, requires = "embeddings")]
    pub finetune_tokenizer: Option<PathBuf>,
    /// With --finetune-tokenizer: the embeddings the run was fitted on, as for `semid tokenize`.
    #[arg(long, value_delimiter = ',')]
    pub embeddings: Vec<String>,
    /// With --finetune-tokenizer: item ids of the embeddings, one a line.
    #[arg(long)]
    pub ids: Option<PathBuf>,
    /// With --finetune-tokenizer: the family to tune (needed when the run has several).
    #[arg(long)]
    pub finetune_family: Option<String>,
    /// With --finetune-tokenizer: τ of the soft index (default 0.1).
    #[arg(long)]
    pub tau: Option<f32>,
    /// With --finetune-tokenizer: Adam's learning rate for the tokenizer (default 1e-4).
    #[arg(long)]
    pub finetune_lr: Option<f32>,
}

/// Arguments of `semid rank eval`.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// The finished ranking run.
    #[arg(long)]
    pub run: PathBuf,
    /// The data (the same log and codes it was trained on).
    #[command(flatten)]
    pub data: DataArgs,
    /// Score even when the data or codes differ from the training run's.
    #[arg(long)]
    pub other_data: bool,
    /// Output folder (predictions.csv, metrics.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace the evaluation in --out.
    #[arg(long)]
    pub overwrite: bool,
}

fn load_log(a: &DataArgs) -> anyhow::Result<Interactions> {
    Ok(match (&a.interactions, a.dataset.as_deref()) {
        (Some(p), _) => load_interactions(p)?,
        (None, Some("ml-1m")) => load_ml1m(&a.data_dir.join("ml-1m"))?.interactions,
        (None, Some("ml-100k")) => load_ml100k(&a.data_dir.join("ml-100k"))?.interactions,
        (None, Some(d)) => anyhow::bail!("unknown data set `{d}`: use ml-1m or ml-100k"),
        (None, None) => anyhow::bail!("give --interactions FILE or --dataset ml-1m|ml-100k"),
    })
}

fn protocol(a: &DataArgs, log: &Interactions) -> ProtocolConfig {
    let binary = log.rows.iter().all(|r| r.label == 0.0 || r.label == 1.0);
    let d = ProtocolConfig::default();
    ProtocolConfig {
        positive_threshold: a
            .positive_threshold
            .unwrap_or(if binary { 1.0 } else { 4.0 }),
        history: a.history.unwrap_or(d.history),
        cold_min_train: a.cold_min_train.unwrap_or(d.cold_min_train),
        ..d
    }
}

fn print_metrics(m: &RankMetricsFile) {
    let f = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.4}"));
    println!(
        "{:<14} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "model", "split", "auc", "cold_auc", "gauc", "logloss", "samples"
    );
    let mut rows = vec![
        (m.model.as_str(), "valid", &m.valid),
        (&m.model, "test", &m.test),
    ];
    if let Some(p) = &m.popularity {
        rows.push(("popularity", "valid", &p.valid));
        rows.push(("popularity", "test", &p.test));
    }
    for (model, split, s) in rows {
        println!(
            "{:<14} {:>8} {:>8} {:>8} {:>8} {:>8.4} {:>8}",
            model,
            split,
            f(s.auc),
            f(s.cold_auc),
            f(s.gauc),
            s.logloss,
            s.n
        );
    }
}

/// Runs `semid rank`.
pub fn run(cli: &Cli, a: &RankArgs) -> anyhow::Result<()> {
    match &a.command {
        RankCommand::Train(t) => train(cli, t),
        RankCommand::Eval(e) => eval(cli, e),
    }
}

fn train(cli: &Cli, a: &TrainArgs) -> anyhow::Result<()> {
    let mut cfg = match &a.config {
        Some(p) => RankerConfig::load(p)?,
        None => RankerConfig::default(),
    };
    if let Some(m) = a.model {
        cfg.model = m;
    }
    if let Some(x) = a.ablation {
        cfg.ablation = x;
    }
    if !a.families.is_empty() {
        cfg.families = a.families.clone();
    }
    if let Some(e) = a.epochs {
        cfg.epochs = e;
    }
    if let Some(s) = a.seed {
        cfg.seed = s;
    }
    if let Some(l) = a.lr {
        cfg.lr = l;
    }
    if let Some(b) = a.batch_size {
        cfg.batch_size = b;
    }
    let ft_flags = a.finetune_family.is_some() || a.tau.is_some() || a.finetune_lr.is_some();
    if a.finetune_tokenizer.is_none() && (ft_flags || !a.embeddings.is_empty()) {
        anyhow::bail!(
            "--embeddings, --finetune-family, --tau and --finetune-lr go with \
             --finetune-tokenizer RUN"
        );
    }
    if a.finetune_tokenizer.is_some() {
        let mut ft = cfg.finetune.take().unwrap_or_default();
        if let Some(f) = &a.finetune_family {
            ft.family = f.clone();
        }
        if let Some(t) = a.tau {
            ft.tau = t;
        }
        if let Some(l) = a.finetune_lr {
            ft.lr = l;
        }
        cfg.finetune = Some(ft);
    }
    let mode = OutMode::from_flags(a.resume, a.overwrite)?;
    let log = load_log(&a.data)?;
    let emb = match &a.finetune_tokenizer {
        Some(_) => {
            let inputs = a
                .embeddings
                .iter()
                .map(|s| s.parse::<EmbeddingInput>())
                .collect::<Result<Vec<_>, _>>()?;
            Some(load_item_embeddings(&inputs, a.ids.as_deref())?)
        }
        None => None,
    };
    let data = RankData {
        log: &log,
        protocol: protocol(&a.data, &log),
        code_runs: a.data.codes.clone(),
        finetune: a.finetune_tokenizer.clone().zip(emb.as_ref()),
    };
    let gpu = Gpu::new(&cli.gpu_options())?;
    let pb = progress::bar(0, &cfg.label(), cli.quiet);
    let mut on_step = |p: &semid::rank::FitProgress| {
        pb.set_length((p.steps * p.epochs) as u64);
        pb.set_position((p.epoch.min(p.epochs) * p.steps + p.step) as u64);
        let loss = p.loss.map_or(String::new(), |l| format!(" loss {l:.4}"));
        let auc = p
            .valid_auc
            .last()
            .map_or(String::new(), |v| format!(" valid AUC {v:.4}"));
        pb.set_message(format!(
            "{} {:.0} samples/s{loss}{auc}",
            cfg.label(),
            p.samples_per_s
        ));
    };
    let m = train_run(&gpu, &data, &cfg, &a.out, mode, &mut on_step)?;
    pb.finish_and_clear();
    print_metrics(&m);
    if let Some(ft) = &m.finetune {
        println!(
            "fine-tuned {} `{}`: {} of {} items changed codes (per token {:?}); utilisation \
             per token before {:?}, after {:?}",
            ft.method,
            ft.family,
            ft.changed_items,
            ft.items,
            ft.changed_per_token,
            ft.before
                .per_level
                .iter()
                .map(|l| (l.utilization * 100.0).round() / 100.0)
                .collect::<Vec<_>>(),
            ft.after
                .per_level
                .iter()
                .map(|l| (l.utilization * 100.0).round() / 100.0)
                .collect::<Vec<_>>(),
        );
    }
    progress::note(
        cli.quiet,
        format!(
            "wrote {} (ranker.safetensors, predictions.csv, metrics.json{})",
            a.out.display(),
            if m.finetune.is_some() {
                ", tokenizer/"
            } else {
                ""
            }
        ),
    );
    Ok(())
}

fn eval(cli: &Cli, a: &EvalArgs) -> anyhow::Result<()> {
    let mode = OutMode::from_flags(false, a.overwrite)?;
    let log = load_log(&a.data)?;
    let saved = semid::rank::checkpoint::load(&a.run.join(semid::rank::checkpoint::FILE))?;
    if let Some(h) = a.data.history.filter(|&h| h != saved.protocol.history) {
        anyhow::bail!(
            "--history {h}: the ranker in {} was trained on histories of {} positives and \
             scores only those; leave --history out",
            a.run.display(),
            saved.protocol.history
        );
    }
    let data = RankData {
        log: &log,
        // The protocol the ranker was trained under, unless flags say otherwise.
        protocol: ProtocolConfig {
            positive_threshold: a
                .data
                .positive_threshold
                .unwrap_or(saved.protocol.positive_threshold),
            cold_min_train: a
                .data
                .cold_min_train
                .unwrap_or(saved.protocol.cold_min_train),
            ..saved.protocol.clone()
        },
        code_runs: a.data.codes.clone(),
        finetune: None,
    };
    let gpu = Gpu::new(&cli.gpu_options())?;
    let m = eval_run(&gpu, &a.run, &data, &a.out, mode, a.other_data)?;
    print_metrics(&m);
    Ok(())
}
