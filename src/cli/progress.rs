//! Progress bars (indicatif) that stay silent with `--quiet` or when stderr is not a terminal
//! would make a mess (indicatif hides itself there).

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar over `total` steps with rate and ETA, or a hidden one when `quiet`.
pub fn bar(total: u64, what: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg:>14} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} ({per_sec}, ETA {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// Prints a one-line notice on stderr unless `quiet`.
pub fn note(quiet: bool, msg: impl AsRef<str>) {
    if !quiet {
        eprintln!("{}", msg.as_ref());
    }
}
