//! `cargo bench`: the BENCH.md workloads, the same code `semid bench` runs, as JSON lines.
//!
//! `cargo bench` runs every workload at full size; `cargo bench -- NAME…` runs those whose
//! names contain one of the NAMEs; `--quick` uses the smoke-test shapes and `--reps N` sets
//! the timed repetitions (default 5, after one warm-up). The adapter is chosen as by the CLI
//! (`SEMID_ADAPTER`, `WGPU_BACKEND`). Numbers go to stdout, one JSON object a line, so a run
//! can be kept and compared (`cargo bench > bench.jsonl`).

use semid::bench::{self, BenchOptions};
use semid::{Gpu, GpuOptions};

fn main() {
    if let Err(e) = run() {
        eprintln!("cargo bench: error: {e}");
        std::process::exit(1);
    }
}

fn run() -> semid::Result<()> {
    let mut opts = BenchOptions::default();
    let mut filters = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            // cargo passes `--bench`; libtest's other flags mean nothing here.
            "--bench" | "--nocapture" => {}
            "--quick" => opts.quick = true,
            "--reps" => {
                let v = args.next().unwrap_or_default();
                opts.reps = v
                    .parse()
                    .map_err(|_| semid::Error::Invalid(format!("--reps {v:?}: not a count")))?;
            }
            f if !f.starts_with('-') => filters.push(f.to_string()),
            _ => {}
        }
    }
    let gpu = Gpu::new(&GpuOptions::default())?;
    for w in bench::workloads() {
        if !filters.is_empty() && !filters.iter().any(|f| w.name.contains(f.as_str())) {
            continue;
        }
        eprintln!("{}: {}", w.name, w.about);
        let v = (w.run)(&gpu, &opts)?;
        println!("{v}");
    }
    Ok(())
}
