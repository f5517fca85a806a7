//! `semid demo`: the whole path on a fresh machine — fetch MovieLens-1M and the MiniLM encoder
//! (synthesize when offline), embed the titles on semid's engine, fit semantic IDs with PSRQ and
//! with the RQ-KMeans baseline, and report them side by side; then the same on the synthetic
//! multimodal data set, whose two modalities also give the modal-joint IDs.

use super::{embed::embed_table, progress, tokenize::run_with, Cli};
use semid::config::{Method, SemidConfig};
use semid::data::fetch::{fetch, Source};
use semid::data::movielens::load_ml1m;
use semid::data::synth::{generate, SynthConfig};
use semid::data::{ItemEmbeddings, Modality};
use semid::embed::{DEFAULT_BATCH_SIZE, DEFAULT_MAX_TOKENS, DEFAULT_TEMPLATE};
use semid::io::run_dir::OutMode;
use semid::metrics::Metrics;
use semid::Gpu;
use std::path::{Path, PathBuf};

/// Where the demo's data comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoSource {
    /// MovieLens-1M when it can be fetched, and the synthetic data set.
    Auto,
    /// MovieLens-1M only (fails when it cannot be fetched).
    Movielens,
    /// The synthetic multimodal data set only (offline).
    Synth,
}

/// Arguments of `semid demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Output folder.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    /// Data source.
    #[arg(long, value_enum, default_value = "auto")]
    pub source: DemoSource,
    /// Where `semid data fetch` puts the data and the model.
    #[arg(long, env = "SEMID_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Items of the synthetic data set.
    #[arg(long, default_value_t = 4000)]
    pub items: usize,
    /// Codes per level (the paper uses 64, 128 or 256; a few thousand items want fewer).
    #[arg(long, default_value_t = 64)]
    pub k: usize,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Fits RQ-KMeans and PSRQ on `emb` into `out/<method>` and returns both methods' metrics.
fn compare(
    cli: &Cli,
    gpu: &Gpu,
    emb: &ItemEmbeddings,
    labels: Option<&[u32]>,
    a: &DemoArgs,
    out: &Path,
) -> anyhow::Result<Vec<Metrics>> {
    let mut all = Vec::new();
    for method in [Method::RqKmeans, Method::Psrq] {
        let mut cfg = SemidConfig {
            method,
            ..Default::default()
        };
        cfg.psrq.k = a.k;
        cfg.rq_kmeans.k = a.k;
        cfg.psrq.seed = a.seed;
        cfg.rq_kmeans.seed = a.seed;
        let dir = out.join(method.name());
        run_with(cli, gpu, emb, &cfg, &dir, OutMode::Overwrite, labels)?;
        all.extend(super::report::read_run(&dir)?);
    }
    let refs: Vec<&Metrics> = all.iter().collect();
    semid::metrics::plot::write_rank_size_svg(&out.join("clusters_compare.svg"), &refs)?;
    Ok(all)
}

/// MovieLens-1M titles embedded with MiniLM, or the reason they are not available.
fn movielens(cli: &Cli, gpu: &Gpu, a: &DemoArgs) -> anyhow::Result<(ItemEmbeddings, Vec<u32>)> {
    for s in [Source::Ml1m, Source::MiniLm] {
        let f = fetch(&a.data_dir, s)?;
        progress::note(
            cli.quiet,
            format!(
                "semid demo: {} {}",
                s.name(),
                if f.downloaded {
                    "downloaded and verified"
                } else {
                    "already present"
                }
            ),
        );
    }
    let ml = load_ml1m(&a.data_dir.join("ml-1m"))?;
    let dir = a.out.join("movielens");
    let x = embed_table(
        cli,
        gpu,
        &a.data_dir.join("minilm"),
        &ml.items,
        DEFAULT_TEMPLATE,
        DEFAULT_MAX_TOKENS,
        DEFAULT_BATCH_SIZE,
        true,
        "text",
        &dir,
    )?;
    let dim = x.len() / ml.items.ids.len().max(1);
    let labels = ml.items.labels.clone().unwrap_or_default();
    Ok((
        ItemEmbeddings {
            ids: ml.items.ids.clone(),
            modalities: vec![Modality {
                name: "text".into(),
                dim,
                data: x,
            }],
        },
        labels,
    ))
}

/// Runs `semid demo`.
pub fn run(cli: &Cli, a: &DemoArgs) -> anyhow::Result<()> {
    let gpu = Gpu::new(&cli.gpu_options())?;
    progress::note(
        cli.quiet,
        format!(
            "semid demo: adapter {} ({})",
            gpu.adapter().name,
            gpu.adapter().backend
        ),
    );
    let mut sections = Vec::new();
    if a.source != DemoSource::Synth {
        match movielens(cli, &gpu, a) {
            Ok((emb, labels)) => {
                let l = (!labels.is_empty()).then_some(labels.as_slice());
                let m = compare(cli, &gpu, &emb, l, a, &a.out.join("movielens"))?;
                sections.push((
                    "MovieLens-1M titles (MiniLM text embeddings, labels = first genre)",
                    m,
                ));
            }
            Err(e) if a.source == DemoSource::Auto => progress::note(
                cli.quiet,
                format!("semid demo: MovieLens unavailable ({e:#}); using synthetic data only"),
            ),
            Err(e) => return Err(e),
        }
    }
    if a.source != DemoSource::Movielens {
        let synth = generate(&SynthConfig {
            items: a.items,
            seed: a.seed,
            ..Default::default()
        })?;
        let dir = a.out.join("synth");
        synth.save(&dir.join("data"))?;
        let labels = synth.items.labels.clone();
        let m = compare(cli, &gpu, &synth.embeddings, labels.as_deref(), a, &dir)?;
        sections.push((
            "synthetic multimodal data (text 768-d, audio 512-d; labels = true top cluster)",
            m,
        ));
    }
    for (title, m) in &sections {
        let refs: Vec<&Metrics> = m.iter().collect();
        println!(
            "\n== RQ-KMeans vs PSRQ: {title}\n{}",
            semid::metrics::compare_table(&refs)
        );
    }
    println!(
        "report: {} (metrics.json, codes.csv and clusters_*.svg per run)",
        a.out.display()
    );
    Ok(())
}
