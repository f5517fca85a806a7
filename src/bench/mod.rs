//! `semid bench`: the workloads of BENCH.md, timed the same way every time, as JSON lines.
//!
//! Rules (BENCH.md): f32 data from a seeded generator (seed 1), inputs uploaded before the clock
//! starts, one warm-up run, then at least 5 timed runs each ending with the GPU work finished.

pub mod embed;
mod finetune;
pub mod matmul;
pub mod mmq;
pub mod quant;
pub mod rank;
mod retrieval;
pub mod rqvae;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use serde_json::{json, Map, Value};
use std::time::Instant;

/// Options shared by every workload.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Timed repetitions (at least 5 for reported figures).
    pub reps: usize,
    /// Smaller shapes for smoke tests; marked `"quick":true` in the output.
    pub quick: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            reps: 5,
            quick: false,
        }
    }
}

/// Median, min and max of timed runs, in seconds.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Median seconds.
    pub median_s: f64,
    /// Fastest run.
    pub min_s: f64,
    /// Slowest run.
    pub max_s: f64,
    /// Number of timed runs.
    pub reps: usize,
}

/// Runs `f` once to warm up, then `reps` timed times. `f` must end with the GPU work finished
/// (a readback or [`Gpu::sync`]).
pub fn time_runs(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<Timing> {
    f()?;
    let mut t = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let start = Instant::now();
        f()?;
        t.push(start.elapsed().as_secs_f64());
    }
    t.sort_by(|a, b| a.total_cmp(b));
    Ok(Timing {
        median_s: t[t.len() / 2],
        min_s: t[0],
        max_s: t[t.len() - 1],
        reps: t.len(),
    })
}

/// What a training step costs in dispatches: records the step `runs` times (at least 3), each
/// time counting its dispatches and timing the recording alone (CPU work: shape checks,
/// uniform and bind-group creation, encoding), then waits for the GPU outside the clock.
/// Returns `dispatches_per_step` and `record_us_per_dispatch` (median recording time over the
/// dispatch count), the figures by which issue 10's dispatch-path work is judged.
pub fn dispatch_figures(
    gpu: &Gpu,
    runs: usize,
    mut record_step: impl FnMut() -> Result<()>,
) -> Result<Value> {
    let mut times = Vec::new();
    let mut count = 0;
    for _ in 0..runs.max(3) {
        gpu.sync()?;
        let d0 = gpu.dispatches();
        let start = Instant::now();
        record_step()?;
        times.push(start.elapsed().as_secs_f64());
        count = gpu.dispatches() - d0;
        gpu.sync()?;
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let median = times[times.len() / 2];
    Ok(json!({
        "dispatches_per_step": count,
        "record_us_per_dispatch": median * 1e6 / count.max(1) as f64,
    }))
}

/// Merges the fields of `extra` (a JSON object) into `base` (a JSON object).
pub fn merge(mut base: Value, extra: Value) -> Value {
    if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
        b.extend(e);
    }
    base
}

/// One JSON line of results, with the fields BENCH.md requires.
pub fn record(gpu: &Gpu, workload: &str, timing: &Timing, quick: bool, figures: Value) -> Value {
    let mut m = Map::new();
    m.insert("workload".into(), json!(workload));
    m.insert("adapter".into(), json!(gpu.adapter().name));
    m.insert("backend".into(), json!(gpu.adapter().backend));
    m.insert("reps".into(), json!(timing.reps));
    m.insert("median_s".into(), json!(timing.median_s));
    m.insert("min_s".into(), json!(timing.min_s));
    m.insert("max_s".into(), json!(timing.max_s));
    if quick {
        m.insert("quick".into(), json!(true));
    }
    if let Value::Object(f) = figures {
        m.extend(f);
    }
    Value::Object(m)
}

/// A benchmark workload.
pub struct Workload {
    /// Name used on the command line.
    pub name: &'static str,
    /// What it measures.
    pub about: &'static str,
    /// Runs it and returns one JSON object.
    pub run: fn(&Gpu, &BenchOptions) -> Result<Value>,
}

/// Every workload semid implements, in BENCH.md order.
pub fn workloads() -> Vec<Workload> {
    let mut v = Vec::new();
    v.extend(matmul::workloads());
    v.extend(quant::workloads());
    v.extend(rqvae::workloads());
    v.extend(mmq::workloads());
    v.extend(rank::workloads());
    v.extend(finetune::workloads());
    v.extend(retrieval::workloads());
    v.extend(embed::workloads());
    v
}

/// Runs one workload by name.
pub fn run(gpu: &Gpu, name: &str, opts: &BenchOptions) -> Result<Value> {
    let all = workloads();
    match all.iter().find(|w| w.name == name) {
        Some(w) => (w.run)(gpu, opts),
        None => Err(Error::Invalid(format!(
            "unknown workload `{name}`; available: {}",
            all.iter().map(|w| w.name).collect::<Vec<_>>().join(", ")
        ))),
    }
}
