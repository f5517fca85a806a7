//! `semid report`: the metrics of one or more runs side by side, as a table and an SVG;
//! tokenizer runs by family, ranking runs (`semid rank`) one row per setting over seeds.

use semid::metrics::{compare_table, plot::write_rank_size_svg, Metrics};
use std::path::PathBuf;

/// Arguments of `semid report`.
#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// Run folders written by `semid tokenize`, or by `semid rank train|eval` (each holds a
    /// metrics.json); ranking runs that differ only in their seed are one row, mean ± std.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Write the cluster-size SVG of all runs here.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Print the metrics as JSON instead of a table (ranking runs print a Markdown table).
    #[arg(long)]
    pub json: bool,
}

/// The manifest of `dir` when it holds a ranking run (kind `rank` or `rank-eval`).
fn rank_manifest(dir: &std::path::Path) -> anyhow::Result<Option<semid::io::run_dir::RunManifest>> {
    Ok(semid::io::run_dir::RunManifest::read(dir)?
        .filter(|m| m.kind == "rank" || m.kind == "rank-eval"))
}

/// `semid report` over ranking runs.
fn rank_report(a: &ReportArgs) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    for r in &a.runs {
        let Some(m) = rank_manifest(r)? else {
            anyhow::bail!(
                "{}: not a ranking run; report tokenizer runs and ranking runs separately",
                r.display()
            );
        };
        if !m.complete {
            anyhow::bail!(
                "{}: the ranking run has not finished; finish it with `semid rank train --resume`",
                r.display()
            );
        }
        runs.push(semid::rank::read_metrics(r)?);
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&runs).map_err(|e| anyhow::anyhow!("{e}"))?
        );
    } else {
        print!("{}", semid::rank::markdown(&semid::rank::rank_rows(&runs)));
    }
    Ok(())
}

/// Reads every family's metrics of a run folder.
pub fn read_run(dir: &std::path::Path) -> anyhow::Result<Vec<Metrics>> {
    let p = dir.join("metrics.json");
    let text = std::fs::read_to_string(&p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
    let v: Vec<Metrics> =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
    Ok(v)
}

/// Runs `semid report`.
pub fn run(a: &ReportArgs) -> anyhow::Result<()> {
    if rank_manifest(&a.runs[0])?.is_some() {
        return rank_report(a);
    }
    let mut all = Vec::new();
    for r in &a.runs {
        all.extend(read_run(r)?);
    }
    let refs: Vec<&Metrics> = all.iter().collect();
    if a.json {
        println!("{}", semid::metrics::compare_json(&refs));
    } else {
        println!("{}", compare_table(&refs));
    }
    if let Some(svg) = &a.svg {
        write_rank_size_svg(svg, &refs)?;
        eprintln!("wrote {}", svg.display());
    }
    Ok(())
}
