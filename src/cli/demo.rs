//! `semid demo`: the whole path on a fresh machine — data, tokenize with PSRQ and with the
//! RQ-KMeans baseline, and a side-by-side report.

use super::{progress, tokenize::run_with, Cli};
use semid::config::{Method, SemidConfig};
use semid::data::synth::{generate, SynthConfig};
use semid::Gpu;
use std::path::PathBuf;

/// Arguments of `semid demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Output folder.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    /// Items of the synthetic data set.
    #[arg(long, default_value_t = 4000)]
    pub items: usize,
    /// Codes per level (the paper uses 64, 128 or 256; smaller data wants fewer).
    #[arg(long, default_value_t = 64)]
    pub k: usize,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
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
    let synth = generate(&SynthConfig {
        items: a.items,
        seed: a.seed,
        ..Default::default()
    })?;
    let data_dir = a.out.join("synth");
    synth.save(&data_dir)?;
    progress::note(
        cli.quiet,
        format!(
            "semid demo: synthetic data set with {} items (text 768-d, audio 512-d) in {}",
            synth.embeddings.len(),
            data_dir.display()
        ),
    );
    let labels = synth.items.labels.clone();
    let mut runs = Vec::new();
    for method in [Method::RqKmeans, Method::Psrq] {
        let mut cfg = SemidConfig {
            method,
            ..Default::default()
        };
        cfg.psrq.k = a.k;
        cfg.rq_kmeans.k = a.k;
        cfg.psrq.seed = a.seed;
        cfg.rq_kmeans.seed = a.seed;
        let out = a.out.join(method.name());
        run_with(
            cli,
            &gpu,
            &synth.embeddings,
            &cfg,
            &out,
            false,
            labels.as_deref(),
        )?;
        runs.push(out);
    }
    let mut all = Vec::new();
    for r in &runs {
        all.extend(super::report::read_run(r)?);
    }
    let refs: Vec<&semid::metrics::Metrics> = all.iter().collect();
    let svg = a.out.join("clusters_compare.svg");
    semid::metrics::plot::write_rank_size_svg(&svg, &refs)?;
    println!(
        "RQ-KMeans vs PSRQ\n{}",
        semid::metrics::compare_table(&refs)
    );
    println!("report: {} and {}", a.out.display(), svg.display());
    Ok(())
}
