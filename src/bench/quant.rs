//! `codebook_search` and `kmeans` workloads (BENCH.md).

use super::{record, time_runs, BenchOptions, Workload};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::kernels::codebook::{self, Metric, SearchOptions};
use crate::quant::kmeans::{self, EmptyPolicy, Init, KMeansConfig};
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::{json, Value};

/// The quantization workloads.
pub fn workloads() -> Vec<Workload> {
    vec![
        Workload {
            name: "codebook_search",
            about: "nearest code by squared L2 and by cosine: 65,536 queries × 256 dims, 1,024 codes",
            run: codebook_search,
        },
        Workload {
            name: "kmeans",
            about: "Lloyd's k-means, squared L2, first-K init, empty clusters kept: 20,000 × 256, K 256, 10 iterations",
            run: kmeans_bench,
        },
    ]
}

/// `codebook_search`: index of the best code per query, L2 then cosine. Each timed run ends with
/// the indices read back. `median_s` etc. are the L2 run's (field `timed`).
fn codebook_search(gpu: &Gpu, opts: &BenchOptions) -> Result<Value> {
    let (n, k, d) = if opts.quick {
        (4096, 256, 256)
    } else {
        (65_536, 1024, 256)
    };
    let mut rng = Rng::new(1);
    let x = Tensor::from_slice(gpu, &rng.normal_vec(n * d), &[n, d])?;
    let c = Tensor::from_slice(gpu, &rng.normal_vec(k * d), &[k, d])?;
    gpu.sync()?;
    let run = |metric: Metric| {
        time_runs(opts.reps, || {
            let r = codebook::nearest_with(&x, &c, None, &SearchOptions::metric(metric))?;
            r.index.to_u32()?;
            Ok(())
        })
    };
    let l2 = run(Metric::L2)?;
    let cos = run(Metric::Cosine)?;
    let mq = |s: f64| n as f64 / s / 1e6;
    Ok(record(
        gpu,
        "codebook_search",
        &l2,
        opts.quick,
        json!({
            "mqps_l2": mq(l2.median_s),
            "mqps_cosine": mq(cos.median_s),
            "cosine_median_s": cos.median_s,
            "cosine_min_s": cos.min_s,
            "cosine_max_s": cos.max_s,
            "timed": "l2",
            "queries": n, "codes": k, "dims": d,
        }),
    ))
}

/// `kmeans`: 10 Lloyd iterations from the first K points, squared L2, empty clusters kept, no
/// early stop. A run is the whole fit (ending with its readbacks); `s_per_iter` = median / 10.
fn kmeans_bench(gpu: &Gpu, opts: &BenchOptions) -> Result<Value> {
    let (n, k, d, iters) = if opts.quick {
        (4000, 64, 256, 10)
    } else {
        (20_000, 256, 256, 10)
    };
    let mut rng = Rng::new(1);
    let x = Tensor::from_slice(gpu, &rng.normal_vec(n * d), &[n, d])?;
    gpu.sync()?;
    let cfg = KMeansConfig {
        k,
        max_iters: iters,
        tol: 0.0,
        seed: 1,
        init: Init::FirstK,
        metric: Metric::L2,
        balanced: false,
        empty: EmptyPolicy::Keep,
    };
    let mut done = 0;
    let t = time_runs(opts.reps, || {
        let r = kmeans::kmeans(gpu, &x, &cfg)?;
        done = r.iters;
        Ok(())
    })?;
    Ok(record(
        gpu,
        "kmeans",
        &t,
        opts.quick,
        json!({
            "s_per_iter": t.median_s / done.max(1) as f64,
            "iters": done,
            "points": n, "k": k, "dims": d,
        }),
    ))
}
