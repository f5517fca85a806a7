//! `semid synth`: the synthetic multimodal data set (items, users, ground truth).

use super::Cli;
use semid::data::synth::{generate, SynthConfig};
use std::path::PathBuf;

/// Arguments of `semid synth`.
#[derive(clap::Args, Debug)]
pub struct SynthArgs {
    /// Output folder.
    #[arg(long, default_value = "out/synth")]
    pub out: PathBuf,
    /// Number of items.
    #[arg(long)]
    pub items: Option<usize>,
    /// Number of users.
    #[arg(long)]
    pub users: Option<usize>,
    /// Seed (same seed, same data).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Width of the text-like modality.
    #[arg(long)]
    pub text_dim: Option<usize>,
    /// Width of the audio-like modality.
    #[arg(long)]
    pub audio_dim: Option<usize>,
    /// A JSON file of generator settings (omitted keys keep their defaults).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Builds the generator settings from a file and flags.
pub fn config_from(a: &SynthArgs) -> anyhow::Result<SynthConfig> {
    let mut cfg = match &a.config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
        None => SynthConfig::default(),
    };
    if let Some(v) = a.items {
        cfg.items = v;
    }
    if let Some(v) = a.users {
        cfg.users = v;
    }
    if let Some(v) = a.seed {
        cfg.seed = v;
    }
    if let Some(v) = a.text_dim {
        cfg.text_dim = v;
    }
    if let Some(v) = a.audio_dim {
        cfg.audio_dim = v;
    }
    cfg.validate()?;
    Ok(cfg)
}

/// Runs `semid synth`.
pub fn run(cli: &Cli, a: &SynthArgs) -> anyhow::Result<()> {
    let cfg = config_from(a)?;
    let data = generate(&cfg)?;
    let files = data.save(&a.out)?;
    if !cli.quiet {
        eprintln!(
            "semid synth: {} items ({} modalities), {} users, {} interactions → {}",
            data.embeddings.len(),
            data.embeddings.modalities.len(),
            data.interactions.users.len(),
            data.interactions.rows.len(),
            a.out.display()
        );
        for f in files {
            eprintln!("  {}", f.display());
        }
    }
    Ok(())
}
