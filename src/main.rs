//! The `semid` binary: parses arguments and dispatches to `cli`.

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    if let Err(e) = cli::run(args) {
        eprintln!("semid: error: {e:#}");
        std::process::exit(1);
    }
}
