//! The `semid` binary: parses arguments and dispatches to `cli`.

mod cli;

use clap::Parser;

fn main() {
    // Mesa's Vulkan drivers probe Wayland and print an error when XDG_RUNTIME_DIR is unset
    // (headless machines, CI); semid never opens a window, so any folder will do.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    quiet_on_closed_stdout();
    let args = cli::Cli::parse();
    if let Err(e) = cli::run(args) {
        eprintln!("semid: error: {}", error_text(&e));
        std::process::exit(1);
    }
}

/// `semid info | head -1` closes stdout early; Rust's `println!` then panics ("failed printing
/// to stdout: Broken pipe", exit 101). Like other Unix tools, semid ends quietly instead, with
/// the status a shell reports for a writer stopped by SIGPIPE (141). Every other panic keeps
/// the default report.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if payload.starts_with("failed printing to stdout") && payload.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// The error and its causes, each cause once: a library error that already quotes its
/// source (an I/O error's OS message, say) does not get it repeated after a colon.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}
