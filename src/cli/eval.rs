//! `semid eval`: encodes items with a finished run's tokenizers (no retraining) and reports the
//! metrics of their codes — e.g. new or held-out items.

use super::{tokenize::labels_for, Cli};
use semid::data::{load_item_embeddings, EmbeddingInput};
use semid::io::run_dir::OutMode;
use semid::pipeline::encode_with_run;
use semid::Gpu;
use std::path::PathBuf;

/// Arguments of `semid eval`.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// A run folder written by `semid tokenize`.
    #[arg(long)]
    pub run: PathBuf,
    /// Embedding files of the items to encode, as for `semid tokenize` (same modality names).
    #[arg(long, value_delimiter = ',', required = true)]
    pub embeddings: Vec<String>,
    /// Item ids, one a line.
    #[arg(long)]
    pub ids: Option<PathBuf>,
    /// Item table with labels, for purity.
    #[arg(long)]
    pub items: Option<PathBuf>,
    /// Output folder for the codes and metrics (not the run folder).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an earlier eval's outputs in `--out`.
    #[arg(long)]
    pub overwrite: bool,
}

/// Runs `semid eval`.
pub fn run(cli: &Cli, a: &EvalArgs) -> anyhow::Result<()> {
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
    let results = encode_with_run(
        &gpu,
        &a.run,
        &emb,
        labels.as_deref(),
        &a.out,
        OutMode::from_flags(false, a.overwrite)?,
    )?;
    let all: Vec<&semid::metrics::Metrics> = results.iter().map(|r| &r.metrics).collect();
    if !cli.quiet {
        println!("{}", semid::metrics::compare_table(&all));
        println!(
            "codes and metrics of {} items in {}",
            emb.len(),
            a.out.display()
        );
    }
    Ok(())
}
