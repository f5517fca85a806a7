//! `semid bench`: runs BENCH.md workloads and prints one JSON object a line.

use super::Cli;
use semid::bench::{self, BenchOptions};
use semid::Gpu;

/// Arguments of `semid bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Workload to run (all when omitted): matmul, matmul_nt, codebook_search, kmeans, ...
    pub workload: Option<String>,
    /// Timed repetitions after one warm-up.
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Smaller shapes for a smoke test (marked `"quick":true`).
    #[arg(long)]
    pub quick: bool,
    /// A human table instead of JSON lines.
    #[arg(long)]
    pub table: bool,
    /// JSON lines (the default).
    #[arg(long, conflicts_with = "table")]
    pub json: bool,
    /// Also time every kernel on its own (each dispatch submitted and waited for alone) and
    /// print where the time goes, slowest first, to stderr. The workload's own timings are
    /// then meaningless (no batching) and are marked `"profiled":true`.
    #[arg(long)]
    pub profile: bool,
}

/// Runs `semid bench`.
pub fn run(cli: &Cli, a: &BenchArgs) -> anyhow::Result<()> {
    let gpu = Gpu::new(&cli.gpu_options())?;
    let opts = BenchOptions {
        reps: a.reps.max(1),
        quick: a.quick,
    };
    let names: Vec<&str> = match &a.workload {
        Some(w) => vec![w.as_str()],
        None => bench::workloads().iter().map(|w| w.name).collect(),
    };
    if a.table {
        println!(
            "{:<18} {:>10} {:>10} {:>10}  figures",
            "workload", "median_s", "min_s", "max_s"
        );
    }
    for name in names {
        gpu.set_profiling(a.profile)?;
        let mut v = bench::run(&gpu, name, &opts)?;
        if a.profile {
            v["profiled"] = serde_json::json!(true);
            print_profile(name, &gpu.profile());
            gpu.set_profiling(false)?;
        }
        if a.table {
            let figs: Vec<String> = v
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| {
                            ![
                                "workload", "adapter", "backend", "reps", "median_s", "min_s",
                                "max_s",
                            ]
                            .contains(&k.as_str())
                        })
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect()
                })
                .unwrap_or_default();
            println!(
                "{:<18} {:>10.4} {:>10.4} {:>10.4}  {}",
                name,
                v["median_s"].as_f64().unwrap_or(f64::NAN),
                v["min_s"].as_f64().unwrap_or(f64::NAN),
                v["max_s"].as_f64().unwrap_or(f64::NAN),
                figs.join(" ")
            );
        } else {
            println!("{}", serde_json::to_string(&v)?);
        }
    }
    Ok(())
}

/// The per-kernel table of `--profile`.
fn print_profile(name: &str, prof: &[(String, semid::gpu::KernelTime)]) {
    let total: f64 = prof.iter().map(|(_, t)| t.seconds).sum();
    eprintln!("{name}: {total:.3} s in kernels, each dispatch alone");
    eprintln!(
        "{:<40} {:>10} {:>10} {:>7}",
        "kernel", "dispatches", "seconds", "share"
    );
    for (k, t) in prof {
        eprintln!(
            "{:<40} {:>10} {:>10.4} {:>6.1}%",
            k,
            t.dispatches,
            t.seconds,
            100.0 * t.seconds / total.max(1e-12)
        );
    }
}
