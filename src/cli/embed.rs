//! `semid embed`: item text to embeddings with the MiniLM encoder on semid's own engine.

use super::{progress, Cli};
use semid::data::movielens::{load_ml100k, load_ml1m};
use semid::data::{load_item_table, ItemTable};
use semid::embed::{TextEmbedder, DEFAULT_BATCH_SIZE, DEFAULT_MAX_TOKENS, DEFAULT_TEMPLATE};
use semid::Gpu;
use std::path::{Path, PathBuf};

/// Arguments of `semid embed`.
#[derive(clap::Args, Debug)]
pub struct EmbedArgs {
    /// Item table (CSV/TSV with a header, or a RecBole `.item` file).
    #[arg(long, conflicts_with = "dataset")]
    pub items: Option<PathBuf>,
    /// A fetched MovieLens data set instead of `--items`: ml-1m or ml-100k.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Where `semid data fetch` put the data and the model.
    #[arg(long, env = "SEMID_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Model folder (model.safetensors, config.json, tokenizer.json); default DATA_DIR/minilm.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Text template over the item table's fields.
    #[arg(long, default_value = DEFAULT_TEMPLATE)]
    pub template: String,
    /// Longest token sequence (longer texts are truncated).
    #[arg(long, default_value_t = DEFAULT_MAX_TOKENS)]
    pub max_tokens: usize,
    /// Texts per batch (texts are batched by length).
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE)]
    pub batch: usize,
    /// Keep the raw mean-pooled vectors (no L2 normalisation).
    #[arg(long)]
    pub no_normalize: bool,
    /// Modality name: the output is OUT/NAME.npy.
    #[arg(long, default_value = "text")]
    pub name: String,
    /// Output folder (NAME.npy, ids.txt).
    #[arg(long)]
    pub out: PathBuf,
}

/// The item table of `--items` or `--dataset`.
pub fn item_table(a: &EmbedArgs) -> anyhow::Result<ItemTable> {
    match (&a.items, a.dataset.as_deref()) {
        (Some(p), _) => Ok(load_item_table(p)?),
        (None, Some("ml-1m")) => Ok(load_ml1m(&a.data_dir.join("ml-1m"))?.items),
        (None, Some("ml-100k")) => Ok(load_ml100k(&a.data_dir.join("ml-100k"))?.items),
        (None, Some(d)) => anyhow::bail!("unknown data set `{d}`: use ml-1m or ml-100k"),
        (None, None) => anyhow::bail!("give --items FILE or --dataset ml-1m|ml-100k"),
    }
}

/// Embeds `table` and writes OUT/NAME.npy and OUT/ids.txt; returns the embeddings.
#[allow(clippy::too_many_arguments)]
pub fn embed_table(
    cli: &Cli,
    gpu: &Gpu,
    model: &Path,
    table: &ItemTable,
    template: &str,
    max_tokens: usize,
    batch: usize,
    normalize: bool,
    name: &str,
    out: &Path,
) -> anyhow::Result<Vec<f32>> {
    let mut embedder = TextEmbedder::load(gpu, model)?;
    embedder.set_max_tokens(max_tokens)?;
    let pb = progress::bar(table.ids.len() as u64, "embedding", cli.quiet);
    let start = std::time::Instant::now();
    let x = embedder.embed_items(table, template, batch, normalize, &mut |done, _| {
        pb.set_position(done as u64)
    })?;
    pb.finish_and_clear();
    let dim = embedder.dim();
    semid::data::npy::write_npy_f32(
        &out.join(format!("{name}.npy")),
        &[table.ids.len(), dim],
        &x,
    )?;
    semid::data::embeddings::write_ids(&out.join("ids.txt"), &table.ids)?;
    progress::note(
        cli.quiet,
        format!(
            "semid embed: {} items → {}-d in {:.1} s; {}",
            table.ids.len(),
            dim,
            start.elapsed().as_secs_f64(),
            out.join(format!("{name}.npy")).display()
        ),
    );
    Ok(x)
}

/// Runs `semid embed`.
pub fn run(cli: &Cli, a: &EmbedArgs) -> anyhow::Result<()> {
    semid::data::names::check_modality_name(&a.name, "--name")?;
    let table = item_table(a)?;
    let model = a.model.clone().unwrap_or_else(|| a.data_dir.join("minilm"));
    let gpu = Gpu::new(&cli.gpu_options())?;
    embed_table(
        cli,
        &gpu,
        &model,
        &table,
        &a.template,
        a.max_tokens,
        a.batch,
        !a.no_normalize,
        &a.name,
        &a.out,
    )?;
    Ok(())
}
