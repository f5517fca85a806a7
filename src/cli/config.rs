//! `semid config`: prints the default configuration of a method as TOML.

use semid::config::{Method, SemidConfig};
use std::path::PathBuf;

/// Arguments of `semid config`.
#[derive(clap::Args, Debug)]
pub struct ConfigArgs {
    /// The method whose settings to print.
    #[arg(long, value_enum, default_value = "psrq")]
    pub method: Method,
    /// Print this file's settings (defaults filled in) instead of the defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print the ranker's settings (`semid rank train --config`) instead of a tokenizer's.
    #[arg(long)]
    pub rank: bool,
}

/// Runs `semid config`.
pub fn run(a: &ConfigArgs) -> anyhow::Result<()> {
    if a.rank {
        let cfg = match &a.config {
            Some(p) => semid::rank::RankerConfig::load(p)?,
            None => semid::rank::RankerConfig::default(),
        };
        print!("{}", cfg.to_toml());
        return Ok(());
    }
    let cfg = match &a.config {
        Some(p) => SemidConfig::load(p)?,
        None => SemidConfig::default(),
    };
    print!("{}", cfg.to_toml_for(a.method));
    Ok(())
}
