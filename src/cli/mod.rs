//! The `semid` command line: argument parsing and one module per command.

mod bench;
mod info;

use clap::{Parser, Subcommand};

/// semid: semantic IDs from multimodal item embeddings, on any GPU.
#[derive(Parser, Debug)]
#[command(name = "semid", version, about, long_about = None)]
pub struct Cli {
    /// Use the adapter whose name contains NAME (see `semid info --all`).
    #[arg(long, global = true, env = "SEMID_ADAPTER")]
    pub adapter: Option<String>,
    /// Print less: no progress bars or notices.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show the adapter, backend, driver, limits and features semid uses.
    Info(info::InfoArgs),
    /// Run the BENCH.md workloads and print JSON lines.
    Bench(bench::BenchArgs),
}

impl Cli {
    /// GPU options from the global flags.
    pub fn gpu_options(&self) -> semid::GpuOptions {
        semid::GpuOptions {
            adapter: self.adapter.clone(),
            quiet: self.quiet,
            ..Default::default()
        }
    }
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Info(a) => info::run(&cli, a),
        Command::Bench(a) => bench::run(&cli, a),
    }
}
