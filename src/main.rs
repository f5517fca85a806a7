//! The `semid` binary: parses arguments and dispatches to `cli`.

mod cli;

use clap::Parser;

fn main() {
    // Mesa's Vulkan drivers probe Wayland and print an error when XDG_RUNTIME_DIR is unset
    // (headless machines, CI); semid never opens a window, so any folder will do.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    let args = cli::Cli::parse();
    if let Err(e) = cli::run(args) {
        eprintln!("semid: error: {e:#}");
        std::process::exit(1);
    }
}
