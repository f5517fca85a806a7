//! The `semid` command line: argument parsing and one module per command.

mod bench;
mod config;
mod data;
mod demo;
mod embed;
mod eval;
mod info;
mod progress;
mod rank;
mod report;
mod retrieve;
mod synth;
mod tokenize;

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
    /// The whole path: data, PSRQ and RQ-KMeans semantic IDs, and a side-by-side report.
    Demo(demo::DemoArgs),
    /// Generate the synthetic multimodal data set with its ground truth.
    Synth(synth::SynthArgs),
    /// Fetch real data sets and the text encoder.
    Data(data::DataArgs),
    /// Embed item texts with the MiniLM encoder on semid's engine.
    Embed(embed::EmbedArgs),
    /// Fit semantic IDs for item embeddings.
    Tokenize(tokenize::TokenizeArgs),
    /// Encode items with a finished run's tokenizers and report their metrics.
    Eval(eval::EvalArgs),
    /// Train and evaluate rankers (DIN, DIN + semantic IDs, MCCA) on semantic IDs.
    Rank(rank::RankArgs),
    /// Train and evaluate retrievers (TIGER on semantic IDs, SASRec) by Recall/NDCG.
    Retrieve(retrieve::RetrieveArgs),
    /// Compare the metrics of tokenize runs.
    Report(report::ReportArgs),
    /// Print the default configuration of a method as TOML.
    Config(config::ConfigArgs),
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
        Command::Demo(a) => demo::run(&cli, a),
        Command::Synth(a) => synth::run(&cli, a),
        Command::Data(a) => data::run(&cli, a),
        Command::Embed(a) => embed::run(&cli, a),
        Command::Tokenize(a) => tokenize::run(&cli, a),
        Command::Eval(a) => eval::run(&cli, a),
        Command::Rank(a) => rank::run(&cli, a),
        Command::Retrieve(a) => retrieve::run(&cli, a),
        Command::Report(a) => report::run(a),
        Command::Config(a) => config::run(a),
    }
}
