//! `semid retrieve train` / `eval` / `recommend`: generative retrieval on semantic IDs (TIGER)
//! and the SASRec baseline, judged by Recall/NDCG over the full catalogue
//! ([`semid::retrieval`]).

use super::{progress, Cli};
use semid::data::movielens::{load_ml100k, load_ml1m};
use semid::data::{load_interactions, Interactions};
use semid::io::run_dir::OutMode;
use semid::retrieval::{
    eval_run, load_run, train_run, EvalSplit, RetrieveData, RetrieveMetricsFile, RetrieverConfig,
    RetrieverKind,
};
use semid::Gpu;
use std::path::PathBuf;

/// Arguments of `semid retrieve`.
#[derive(clap::Args, Debug)]
pub struct RetrieveArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: RetrieveCommand,
}

/// `semid retrieve` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum RetrieveCommand {
    /// Train a retriever and score validation and test (Recall/NDCG@5/10/20).
    Train(TrainArgs),
    /// Score a finished run again (e.g. with another beam width, or unconstrained).
    Eval(EvalArgs),
    /// Recommend items to users of the log after everything they did.
    Recommend(RecommendArgs),
}

/// The log and the semantic IDs.
#[derive(clap::Args, Debug)]
pub struct DataArgs {
    /// The interaction log (CSV/TSV with user, item, rating or label, timestamp; or RecBole
    /// `.inter`). Every event is an interaction.
    #[arg(long, conflicts_with = "dataset")]
    pub interactions: Option<PathBuf>,
    /// A fetched MovieLens data set instead: ml-1m or ml-100k.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Where `semid data fetch` put the data.
    #[arg(long, env = "SEMID_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Finished tokenizer runs whose semantic IDs TIGER decodes, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub codes: Vec<PathBuf>,
}

/// Arguments of `semid retrieve train`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// The data.
    #[command(flatten)]
    pub data: DataArgs,
    /// The model (default sasrec; tiger needs --codes).
    #[arg(long, value_enum)]
    pub model: Option<RetrieverKind>,
    /// The family of the runs TIGER decodes (needed when they hold several).
    #[arg(long)]
    pub family: Option<String>,
    /// Settings (TOML with sections protocol, fit, sasrec, tiger); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Most items of history the model reads (default 20; 200 for the SASRec reference).
    #[arg(long)]
    pub history: Option<usize>,
    /// Keep items the user has seen in the ranked lists.
    #[arg(long)]
    pub keep_seen: bool,
    /// Most epochs (early stopping on validation Recall@10).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Adam's learning rate.
    #[arg(long)]
    pub lr: Option<f32>,
    /// Examples per step.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Beams of TIGER's decoding.
    #[arg(long)]
    pub beams: Option<usize>,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in --out from its last epoch.
    #[arg(long, conflicts_with = "overwrite")]
    pub resume: bool,
    /// Replace the run in --out.
    #[arg(long)]
    pub overwrite: bool,
}

/// Arguments of `semid retrieve eval`.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// The finished run.
    #[arg(long)]
    pub run: PathBuf,
    /// The data it was trained on.
    #[command(flatten)]
    pub data: DataArgs,
    /// TIGER: beams.
    #[arg(long)]
    pub beams: Option<usize>,
    /// TIGER: decode without the trie (reports how many generated IDs are no item).
    #[arg(long)]
    pub unconstrained: bool,
    /// Output folder (metrics.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace the evaluation in --out.
    #[arg(long)]
    pub overwrite: bool,
}

/// Arguments of `semid retrieve recommend`.
#[derive(clap::Args, Debug)]
pub struct RecommendArgs {
    /// The finished run.
    #[arg(long)]
    pub run: PathBuf,
    /// The data it was trained on.
    #[command(flatten)]
    pub data: DataArgs,
    /// User ids of the log, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub user: Vec<String>,
    /// Items per user.
    #[arg(short, long, default_value_t = 10)]
    pub k: usize,
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

fn print_metrics(m: &RetrieveMetricsFile) {
    println!(
        "{:<16} {:>6} {:>8} {:>8} {:>8} {:>8} {:>10} {:>6}",
        "model", "split", "R@5", "R@10", "N@5", "N@10", "cold R@10", "users"
    );
    let f = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.4}"));
    let rows = [
        (m.label.as_str(), "valid", &m.valid),
        (m.label.as_str(), "test", &m.test),
        ("popularity", "valid", &m.popularity[0]),
        ("popularity", "test", &m.popularity[1]),
    ];
    for (name, split, r) in rows {
        let cold = r.cold_recall.iter().find(|c| c.0 == 10).and_then(|c| c.1);
        println!(
            "{:<16} {:>6} {:>8} {:>8} {:>8} {:>8} {:>10} {:>6}",
            name,
            split,
            f(r.recall_at(5)),
            f(r.recall_at(10)),
            f(r.ndcg_at(5)),
            f(r.ndcg_at(10)),
            f(cold),
            r.users
        );
    }
    println!(
        "test ranking: {} users in {:.1} s ({:.2} ms per user)",
        m.decode.users, m.decode.seconds, m.decode.ms_per_user
    );
}

/// Runs `semid retrieve`.
pub fn run(cli: &Cli, a: &RetrieveArgs) -> anyhow::Result<()> {
    match &a.command {
        RetrieveCommand::Train(t) => train(cli, t),
        RetrieveCommand::Eval(e) => eval(cli, e),
        RetrieveCommand::Recommend(r) => recommend(cli, r),
    }
}

fn train(cli: &Cli, a: &TrainArgs) -> anyhow::Result<()> {
    let mut cfg = match &a.config {
        Some(p) => RetrieverConfig::load(p)?,
        None => RetrieverConfig::default(),
    };
    if let Some(m) = a.model {
        cfg.model = m;
    }
    if a.family.is_some() {
        cfg.family = a.family.clone();
    }
    if let Some(h) = a.history {
        cfg.protocol.history = h;
    }
    if a.keep_seen {
        cfg.protocol.filter_seen = false;
    }
    if let Some(e) = a.epochs {
        cfg.fit.epochs = e;
    }
    if let Some(s) = a.seed {
        cfg.fit.seed = s;
    }
    if let Some(l) = a.lr {
        cfg.fit.lr = l;
    }
    if let Some(b) = a.batch_size {
        cfg.fit.batch_size = b;
    }
    if let Some(b) = a.beams {
        cfg.tiger.beams = b;
    }
    let mode = OutMode::from_flags(a.resume, a.overwrite)?;
    let log = load_log(&a.data)?;
    let data = RetrieveData {
        log: &log,
        codes: a.data.codes.clone(),
    };
    let gpu = Gpu::new(&cli.gpu_options())?;
    let label = cfg.label();
    let pb = progress::bar(0, &label, cli.quiet);
    let mut on_step = |p: &semid::retrieval::Progress| {
        pb.set_length((p.steps * p.epochs) as u64);
        pb.set_position((p.epoch.min(p.epochs) * p.steps + p.step) as u64);
        let loss = p.loss.map_or(String::new(), |l| format!(" loss {l:.4}"));
        let r = p
            .valid_recall10
            .last()
            .map_or(String::new(), |v| format!(" valid R@10 {v:.4}"));
        pb.set_message(format!("{label} epoch {}{loss}{r}", p.epoch + 1));
    };
    let m = train_run(&gpu, &data, &cfg, &a.out, mode, &mut on_step)?;
    pb.finish_and_clear();
    print_metrics(&m);
    progress::note(
        cli.quiet,
        format!(
            "wrote {} (retriever.safetensors, metrics.json)",
            a.out.display()
        ),
    );
    Ok(())
}

fn eval(cli: &Cli, a: &EvalArgs) -> anyhow::Result<()> {
    let mode = OutMode::from_flags(false, a.overwrite)?;
    let log = load_log(&a.data)?;
    let data = RetrieveData {
        log: &log,
        codes: a.data.codes.clone(),
    };
    let gpu = Gpu::new(&cli.gpu_options())?;
    let saved = semid::retrieval::read_metrics(&a.run).ok();
    let beams = a
        .beams
        .or(saved.as_ref().map(|m| m.config.tiger.beams))
        .unwrap_or(20);
    let beam = (a.beams.is_some() || a.unconstrained).then_some((beams, !a.unconstrained));
    let m = eval_run(&gpu, &a.run, &data, beam, &a.out, mode)?;
    print_metrics(&m);
    if let Some(inv) = &m.invalid {
        println!(
            "unconstrained decoding: {} of {} generated IDs ({:.2}%) are no item",
            inv.invalid,
            inv.total,
            100.0 * inv.rate
        );
    }
    Ok(())
}

fn recommend(cli: &Cli, a: &RecommendArgs) -> anyhow::Result<()> {
    let log = load_log(&a.data)?;
    let data = RetrieveData {
        log: &log,
        codes: a.data.codes.clone(),
    };
    let gpu = Gpu::new(&cli.gpu_options())?;
    let (model, p, _) = load_run(&gpu, &a.run, &data)?;
    let mut users = Vec::with_capacity(a.user.len());
    for id in &a.user {
        let u = log
            .users
            .iter()
            .position(|x| x == id)
            .ok_or_else(|| anyhow::anyhow!("--user `{id}` is not a user of the log"))?;
        users.push(u as u32);
    }
    let lists = model.model().rank(&p, EvalSplit::Next, &users, a.k)?;
    println!("user,rank,item,score");
    for (id, list) in a.user.iter().zip(&lists) {
        for (r, (item, score)) in list.iter().enumerate() {
            println!(
                "{},{},{},{score}",
                semid::io::csv::csv_field(id),
                r + 1,
                semid::io::csv::csv_field(&log.items[*item as usize])
            );
        }
    }
    Ok(())
}
