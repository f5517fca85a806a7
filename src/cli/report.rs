//! `semid report`: the metrics of one or more runs side by side, as a table and an SVG.

use semid::metrics::{compare_table, plot::write_rank_size_svg, Metrics};
use std::path::PathBuf;

/// Arguments of `semid report`.
#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// Run folders written by `semid tokenize` (each holds a metrics.json).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Write the cluster-size SVG of all runs here.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Print the metrics as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
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
