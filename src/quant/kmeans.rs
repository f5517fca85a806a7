//! k-means on the GPU (Lloyd's algorithm), with a plain f64 CPU reference.
//!
//! One Lloyd iteration is: assign every point to its nearest centroid (the fused codebook
//! search of [`crate::kernels::codebook`], or the capacity-constrained greedy of
//! [`KMeansConfig::balanced`]), then recompute each centroid as the mean of its members. The
//! update is deterministic with no float atomics: the assignment is stable-sorted by cluster
//! (GPU radix sort), so every cluster's members form one segment in point order, and one
//! workgroup per cluster sums its segment in that order ([`crate::kernels::kmeans`]). The same
//! seed therefore gives the same result bit for bit.
//!
//! Each iteration reads back one small buffer: the per-block inertia sums, each cluster's count,
//! member distance sum, centroid shift and old norm (plus the point distances when
//! [`EmptyPolicy::FarthestPoint`] needs them). The balanced variant also reads back candidate
//! lists for its greedy pass (see [`KMeansConfig::balanced`]).
//!
//! Stopping: after iteration i (i ≥ 2) when the relative change of the inertia is below `tol`,
//! or after any iteration when the relative centroid shift √(Σ‖c_new − c_old‖² / Σ‖c_old‖²) is
//! below `tol`; at the latest after `max_iters` iterations. A final assignment against the
//! returned centroids gives `assign` and `inertia`.

use crate::error::{Error, Result};
use crate::gpu::{BufRange, Gpu};
pub use crate::kernels::codebook::Metric;
use crate::kernels::codebook::{self, SearchOptions};
use crate::kernels::kmeans as kern;
use crate::kernels::{movement, sort};
use crate::rng::Rng;
use crate::tensor::{DType, Tensor};

/// How the centroids start.
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    /// k-means++ seeding, seeded by [`KMeansConfig::seed`]: the first center uniformly at random,
    /// then each next one with probability proportional to its distance (squared L2, or 1 − cos)
    /// to the nearest chosen center.
    KMeansPlusPlus,
    /// The first k points (BENCH.md's `kmeans` workload).
    FirstK,
    /// Given centroids, row-major `[k, d]` (normalised for cosine).
    Centroids(Vec<f32>),
}

/// What to do with a cluster that ends an update with no members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmptyPolicy {
    /// Split the most populous cluster (ties to the lower index) in two along a seeded random
    /// direction, a tenth of its RMS radius to each side.
    SplitLargest,
    /// Move the empty centroid onto the point farthest from its centroid (ties to the lower
    /// point index; each point used once).
    FarthestPoint,
    /// Keep the previous centroid.
    Keep,
}

/// Configuration of [`kmeans`] and [`kmeans_cpu`].
#[derive(Clone, Debug)]
pub struct KMeansConfig {
    /// Number of clusters.
    pub k: usize,
    /// Most Lloyd iterations.
    pub max_iters: usize,
    /// Relative tolerance of the stopping tests (0 runs all `max_iters`).
    pub tol: f64,
    /// Seed of k-means++ and of cluster splits.
    pub seed: u64,
    /// Initial centroids.
    pub init: Init,
    /// Distance: squared L2, or cosine (spherical k-means: centroids are renormalised means).
    pub metric: Metric,
    /// Capacity-constrained assignment: each cluster holds at most ⌈n/k⌉ points. Points are
    /// taken in order of their best candidate distance (ties to the lower point index), each to
    /// its nearest cluster with room among its 16 nearest; points whose candidates are all full
    /// are deferred to another pass that searches only the clusters with room. Deterministic;
    /// reads back the candidate lists of each pass.
    pub balanced: bool,
    /// Empty-cluster repair.
    pub empty: EmptyPolicy,
}

impl KMeansConfig {
    /// k clusters, 25 iterations, tol 1e-4, seed 0, k-means++, squared L2, unbalanced,
    /// [`EmptyPolicy::SplitLargest`].
    pub fn new(k: usize) -> Self {
        KMeansConfig {
            k,
            max_iters: 25,
            tol: 1e-4,
            seed: 0,
            init: Init::KMeansPlusPlus,
            metric: Metric::L2,
            balanced: false,
            empty: EmptyPolicy::SplitLargest,
        }
    }
}

/// Result of [`kmeans`].
#[derive(Clone, Debug)]
pub struct KMeans {
    /// Centroids, F32 `[k, d]`.
    pub centroids: Tensor,
    /// Cluster of every point, against the returned centroids.
    pub assign: Vec<u32>,
    /// Lloyd iterations run.
    pub iters: usize,
    /// Sum of the points' distances to their centroids (squared L2, or 1 − cos).
    pub inertia: f64,
    /// Empty clusters repaired over all iterations.
    pub empty_repaired: usize,
}

/// Result of [`kmeans_cpu`].
#[derive(Clone, Debug)]
pub struct KMeansCpu {
    /// Centroids, row-major `[k, d]`.
    pub centroids: Vec<f64>,
    /// Cluster of every point.
    pub assign: Vec<u32>,
    /// Lloyd iterations run.
    pub iters: usize,
    /// Sum of the points' distances to their centroids.
    pub inertia: f64,
    /// Empty clusters repaired.
    pub empty_repaired: usize,
}

/// Candidates per point of the balanced assignment.
const BALANCED_CANDIDATES: usize = 16;

fn validate(n: usize, d: usize, cfg: &KMeansConfig) -> Result<()> {
    if d == 0 {
        return Err(Error::shape("kmeans", "points have 0 dimensions"));
    }
    if cfg.k == 0 {
        return Err(Error::Invalid("kmeans: k must be at least 1".into()));
    }
    if n < cfg.k {
        return Err(Error::Invalid(format!(
            "kmeans: {n} points cannot form {} clusters (need n >= k)",
            cfg.k
        )));
    }
    if !cfg.tol.is_finite() || cfg.tol < 0.0 {
        return Err(Error::Invalid(format!(
            "kmeans: tol must be finite and >= 0, got {}",
            cfg.tol
        )));
    }
    if let Init::Centroids(c) = &cfg.init {
        if c.len() != cfg.k * d {
            return Err(Error::shape(
                "kmeans",
                format!(
                    "initial centroids hold {} values, need k·d = {}",
                    c.len(),
                    cfg.k * d
                ),
            ));
        }
    }
    if n > u32::MAX as usize / 2 || cfg.k > u32::MAX as usize / 4 {
        return Err(Error::Invalid(format!(
            "kmeans: {n} points or {} clusters exceed 32-bit indexing",
            cfg.k
        )));
    }
    Ok(())
}

/// The shared decision logic of the GPU and CPU versions, so that both take the same steps.
mod plan {
    use super::*;

    /// Whether to stop after an iteration.
    pub fn converged(prev: Option<f64>, inertia: f64, shift2: f64, old2: f64, tol: f64) -> bool {
        let by_inertia =
            prev.is_some_and(|p| (p - inertia).abs() < tol * p.abs().max(f64::MIN_POSITIVE));
        let by_shift = (shift2 / old2.max(f64::MIN_POSITIVE)).sqrt() < tol;
        by_inertia || by_shift
    }

    /// A k-means++ draw as an f32 in [0, 1).
    pub fn draw(rng: &mut Rng) -> f32 {
        (rng.uniform() as f32).min(1.0 - f32::EPSILON / 2.0)
    }

    /// One split of [`EmptyPolicy::SplitLargest`]: (donor, empty, scale, direction).
    pub struct Split {
        pub donor: usize,
        pub empty: usize,
        pub scale: f32,
        pub dir: Vec<f32>,
    }

    /// Plans the splits for the empty clusters in index order; counts and member distance sums
    /// are updated as each split halves its donor.
    pub fn splits(
        counts: &mut [u64],
        sse: &mut [f64],
        d: usize,
        metric: Metric,
        rng: &mut Rng,
    ) -> Vec<Split> {
        let empties: Vec<usize> = (0..counts.len()).filter(|&c| counts[c] == 0).collect();
        let mut out = Vec::new();
        for e in empties {
            let donor = (0..counts.len()).fold(0, |b, c| if counts[c] > counts[b] { c } else { b });
            if counts[donor] < 2 {
                break;
            }
            let per_point = sse[donor] / counts[donor] as f64;
            // RMS radius (cosine: chord length from 1 − cos); a tenth of it along the direction.
            let radius = match metric {
                Metric::L2 => per_point.max(0.0).sqrt(),
                Metric::Cosine => (2.0 * per_point.max(0.0)).sqrt(),
            };
            let scale = (0.1 * radius / (d as f64).sqrt()) as f32;
            let dir = rng.normal_vec(d);
            let moved = counts[donor] / 2;
            counts[donor] -= moved;
            counts[e] = moved;
            sse[donor] /= 2.0;
            sse[e] = sse[donor];
            out.push(Split {
                donor,
                empty: e,
                scale,
                dir,
            });
        }
        out
    }

    /// (empty cluster, point) pairs of [`EmptyPolicy::FarthestPoint`].
    pub fn farthest(counts: &[u64], dist: &[f64]) -> Vec<(usize, usize)> {
        let empties: Vec<usize> = (0..counts.len()).filter(|&c| counts[c] == 0).collect();
        if empties.is_empty() {
            return Vec::new();
        }
        let mut order: Vec<usize> = (0..dist.len()).collect();
        order.sort_by(|&a, &b| dist[b].total_cmp(&dist[a]).then(a.cmp(&b)));
        empties.into_iter().zip(order).collect()
    }

    /// One pass of the balanced greedy. `lists[i]` are the candidates (cluster, distance) of
    /// `pending[i]`, nearest first. Returns the points still unassigned.
    pub fn greedy(
        pending: &[usize],
        lists: &[Vec<(u32, f64)>],
        cap: &mut [u64],
        assign: &mut [u32],
        dist: &mut [f64],
    ) -> Vec<usize> {
        let key = |i: usize| lists[i].first().map_or(f64::INFINITY, |e| e.1);
        let mut order: Vec<usize> = (0..pending.len()).collect();
        order.sort_by(|&a, &b| key(a).total_cmp(&key(b)).then(pending[a].cmp(&pending[b])));
        let mut left = Vec::new();
        for i in order {
            let pt = pending[i];
            match lists[i]
                .iter()
                .find(|&&(c, dd)| (c as usize) < cap.len() && dd.is_finite() && cap[c as usize] > 0)
            {
                Some(&(c, dd)) => {
                    cap[c as usize] -= 1;
                    assign[pt] = c;
                    dist[pt] = dd;
                }
                None => left.push(pt),
            }
        }
        left.sort_unstable();
        left
    }
}

// ------------------------------------------------------------------------------------------
// GPU

/// Runs k-means on the GPU. `x` is F32 `[n, d]`; needs n ≥ k.
pub fn kmeans(gpu: &Gpu, x: &Tensor, cfg: &KMeansConfig) -> Result<KMeans> {
    kmeans_with_progress(gpu, x, cfg, &mut |_, _| {})
}

/// [`kmeans`], calling `on_iter(iterations done, max_iters)` after each Lloyd iteration (the
/// iteration's statistics are read back anyway, so this costs nothing).
pub fn kmeans_with_progress(
    gpu: &Gpu,
    x: &Tensor,
    cfg: &KMeansConfig,
    on_iter: &mut dyn FnMut(usize, usize),
) -> Result<KMeans> {
    if x.dtype() != DType::F32 || x.rank() != 2 {
        return Err(Error::shape(
            "kmeans",
            format!("x must be F32 [n, d], got {x:?}"),
        ));
    }
    let (n, d) = (x.rows(), x.cols());
    validate(n, d, cfg)?;
    let k = cfg.k;
    let lim = gpu.kernel_limits();
    if (n as u64) * 4 > lim.max_storage_binding || (k * d) as u64 * 4 > lim.max_storage_binding {
        return Err(Error::TooLarge {
            what: format!("k-means of {n} points into {k} × {d} centroids"),
            bytes: (n as u64 * 4).max((k * d) as u64 * 4),
            limit_name: "max_storage_buffer_binding_size",
            limit: lim.max_storage_binding,
        });
    }
    let mut rng = Rng::new(cfg.seed);
    let mut cent = init_gpu(gpu, x, cfg, &mut rng)?;
    let opts = SearchOptions::metric(cfg.metric);
    let assign = Tensor::empty_typed(gpu, &[n], DType::U32)?;
    let dist = Tensor::empty(gpu, &[n])?;
    let nbp = kern::block_count(n);
    let pad = |v: usize| v.div_ceil(64) * 64;
    let off_stats = pad(nbp);
    let off_dist = off_stats + pad(4 * k);
    let farthest = cfg.empty == EmptyPolicy::FarthestPoint;
    let words = off_dist + if farthest { n } else { 0 };
    let stats = Tensor::empty_typed(gpu, &[words], DType::U32)?;
    let region = |off: usize, len: usize| BufRange {
        buf: stats.buffer(),
        offset: off as u64 * 4,
        size: len as u64 * 4,
    };
    let mut prev = None;
    let mut iters = 0;
    let mut repaired = 0;
    while iters < cfg.max_iters {
        let (assign_t, dist_t) = assign_gpu(gpu, x, &cent, cfg, &opts, &assign, &dist)?;
        kern::block_sums_into(&dist_t, region(0, nbp))?;
        // Members of each cluster, in point order: a stable sort of the assignment. Its keys
        // are below k, so the bound is k − 1 (k = 256 then takes one radix pass, not two).
        let (sorted, perm) = sort::sort_indices(&assign_t, k.saturating_sub(1))?;
        let starts = sort::lower_bounds(&sorted, k + 1)?;
        let sums = kern::centroid_sums(x, &perm, &starts, k)?;
        let new = Tensor::empty(gpu, &[k, d])?;
        kern::centroid_finish(
            &sums,
            &cent,
            &perm,
            &starts,
            &dist_t,
            cfg.metric,
            &new,
            region(off_stats, 4 * k),
        )?;
        if farthest {
            gpu.copy(
                dist_t.buffer(),
                0,
                stats.buffer(),
                off_dist as u64 * 4,
                n as u64 * 4,
            );
        }
        let words: Vec<u32> =
            bytemuck::pod_collect_to_vec(&gpu.read(stats.buffer(), 0, words as u64 * 4)?);
        let inertia: f64 = words[..nbp].iter().map(|&w| f32::from_bits(w) as f64).sum();
        let cs = &words[off_stats..off_stats + 4 * k];
        let mut counts: Vec<u64> = (0..k).map(|c| cs[4 * c] as u64).collect();
        let mut sse: Vec<f64> = (0..k)
            .map(|c| f32::from_bits(cs[4 * c + 1]) as f64)
            .collect();
        let shift2: f64 = (0..k).map(|c| f32::from_bits(cs[4 * c + 2]) as f64).sum();
        let old2: f64 = (0..k).map(|c| f32::from_bits(cs[4 * c + 3]) as f64).sum();
        match cfg.empty {
            EmptyPolicy::Keep => {}
            EmptyPolicy::SplitLargest => {
                for s in plan::splits(&mut counts, &mut sse, d, cfg.metric, &mut rng) {
                    let dir = Tensor::from_slice(gpu, &s.dir, &[d])?;
                    kern::split(&new, s.donor, s.empty, &dir, s.scale, cfg.metric)?;
                    repaired += 1;
                }
            }
            EmptyPolicy::FarthestPoint => {
                let dd: Vec<f64> = words[off_dist..off_dist + n]
                    .iter()
                    .map(|&w| f32::from_bits(w) as f64)
                    .collect();
                let pairs = plan::farthest(&counts, &dd);
                if !pairs.is_empty() {
                    let flat: Vec<u32> = pairs
                        .iter()
                        .flat_map(|&(c, p)| [c as u32, p as u32])
                        .collect();
                    let pt = Tensor::from_u32(gpu, &flat, &[pairs.len(), 2])?;
                    kern::set_rows(x, &pt, &new, cfg.metric)?;
                    repaired += pairs.len();
                }
            }
        }
        cent = new;
        iters += 1;
        on_iter(iters, cfg.max_iters);
        let stop = plan::converged(prev, inertia, shift2, old2, cfg.tol);
        prev = Some(inertia);
        if stop {
            break;
        }
    }
    // Final assignment against the returned centroids: one readback of [partials | assign].
    let (assign_t, dist_t) = assign_gpu(gpu, x, &cent, cfg, &opts, &assign, &dist)?;
    let fin = Tensor::empty_typed(gpu, &[pad(nbp) + n], DType::U32)?;
    kern::block_sums_into(
        &dist_t,
        BufRange {
            buf: fin.buffer(),
            offset: 0,
            size: nbp as u64 * 4,
        },
    )?;
    gpu.copy(
        assign_t.buffer(),
        0,
        fin.buffer(),
        pad(nbp) as u64 * 4,
        n as u64 * 4,
    );
    let words: Vec<u32> = bytemuck::pod_collect_to_vec(&gpu.read(fin.buffer(), 0, fin.bytes())?);
    let inertia = words[..nbp].iter().map(|&w| f32::from_bits(w) as f64).sum();
    Ok(KMeans {
        centroids: cent,
        assign: words[pad(nbp)..].to_vec(),
        iters,
        inertia,
        empty_repaired: repaired,
    })
}

/// Initial centroids on the GPU.
fn init_gpu(gpu: &Gpu, x: &Tensor, cfg: &KMeansConfig, rng: &mut Rng) -> Result<Tensor> {
    let (n, d) = (x.rows(), x.cols());
    let k = cfg.k;
    let cent = Tensor::empty(gpu, &[k, d])?;
    match &cfg.init {
        Init::Centroids(c) => return Tensor::from_slice(gpu, c, &[k, d]),
        Init::FirstK => {
            let pairs: Vec<u32> = (0..k as u32).flat_map(|i| [i, i]).collect();
            match cfg.metric {
                Metric::L2 => gpu.copy(x.buffer(), 0, cent.buffer(), 0, (k * d) as u64 * 4),
                Metric::Cosine => kern::set_rows(
                    x,
                    &Tensor::from_u32(gpu, &pairs, &[k, 2])?,
                    &cent,
                    cfg.metric,
                )?,
            }
        }
        Init::KMeansPlusPlus => {
            let first = rng.below(n) as u32;
            kern::set_rows(
                x,
                &Tensor::from_u32(gpu, &[0, first], &[1, 2])?,
                &cent,
                cfg.metric,
            )?;
            let mind = Tensor::empty(gpu, &[n])?;
            let parts = Tensor::empty(gpu, &[kern::block_count(n)])?;
            let pair = Tensor::empty_typed(gpu, &[1, 2], DType::U32)?;
            for s in 1..k {
                kern::pp_update(x, &cent, s - 1, &mind, s == 1, cfg.metric)?;
                kern::block_sums_into(&mind, parts.range())?;
                kern::pp_pick(&parts, &mind, plan::draw(rng), s, &pair)?;
                kern::set_rows(x, &pair, &cent, cfg.metric)?;
            }
        }
    }
    Ok(cent)
}

/// One assignment step: nearest centroid, or the balanced greedy. Returns (assign, dist).
fn assign_gpu(
    gpu: &Gpu,
    x: &Tensor,
    cent: &Tensor,
    cfg: &KMeansConfig,
    opts: &SearchOptions,
    assign: &Tensor,
    dist: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let terms = codebook::code_terms(cent, cfg.metric)?;
    if !cfg.balanced {
        codebook::nearest_into(x, cent, Some(&terms), opts, assign, dist)?;
        return Ok((assign.clone(), dist.clone()));
    }
    let (n, k) = (x.rows(), cfg.k);
    let m = BALANCED_CANDIDATES.min(k);
    let mut cap = vec![n.div_ceil(k) as u64; k];
    let mut a = vec![0u32; n];
    let mut dd = vec![0f64; n];
    let mut pending: Vec<usize> = (0..n).collect();
    let mut first = true;
    while !pending.is_empty() {
        let (q, t);
        if first {
            q = x.clone();
            t = terms.clone();
        } else {
            let idx: Vec<u32> = pending.iter().map(|&p| p as u32).collect();
            q = movement::gather_rows(x, &Tensor::from_u32(gpu, &idx, &[idx.len()])?)?;
            t = terms.deep_clone()?;
            let pen: Vec<f32> = cap
                .iter()
                .map(|&c| if c == 0 { f32::INFINITY } else { 0.0 })
                .collect();
            codebook::add_code_penalty(&t, &Tensor::from_slice(gpu, &pen, &[k])?)?;
        }
        first = false;
        let r = codebook::top_k_with(&q, cent, m, Some(&t), opts)?;
        // One readback of both lists.
        let bytes = r.index.bytes();
        let both = gpu.alloc(2 * bytes, "balanced candidate lists")?;
        gpu.copy(r.index.buffer(), 0, &both, 0, bytes);
        gpu.copy(r.dist.buffer(), 0, &both, bytes, bytes);
        let words: Vec<u32> = bytemuck::pod_collect_to_vec(&gpu.read(&both, 0, 2 * bytes)?);
        let cnt = pending.len();
        let lists: Vec<Vec<(u32, f64)>> = (0..cnt)
            .map(|i| {
                (0..m)
                    .map(|j| {
                        (
                            words[i * m + j],
                            f32::from_bits(words[cnt * m + i * m + j]) as f64,
                        )
                    })
                    .collect()
            })
            .collect();
        pending = plan::greedy(&pending, &lists, &mut cap, &mut a, &mut dd);
    }
    let df: Vec<f32> = dd.iter().map(|&v| v as f32).collect();
    Ok((
        Tensor::from_u32(gpu, &a, &[n])?,
        Tensor::from_slice(gpu, &df, &[n])?,
    ))
}

// ------------------------------------------------------------------------------------------
// CPU reference

fn dist_cpu(x: &[f32], c: &[f64], metric: Metric) -> f64 {
    match metric {
        Metric::L2 => x.iter().zip(c).map(|(&a, &b)| (a as f64 - b).powi(2)).sum(),
        Metric::Cosine => {
            let xx: f64 = x.iter().map(|&a| (a as f64).powi(2)).sum();
            let cc: f64 = c.iter().map(|b| b * b).sum();
            if xx == 0.0 || cc == 0.0 {
                1.0
            } else {
                let xc: f64 = x.iter().zip(c).map(|(&a, b)| a as f64 * b).sum();
                (1.0 - xc / (xx.sqrt() * cc.sqrt())).max(0.0)
            }
        }
    }
}

fn normalize(v: &mut [f64]) {
    let s: f64 = v.iter().map(|a| a * a).sum();
    if s > 0.0 {
        let r = 1.0 / s.sqrt();
        v.iter_mut().for_each(|a| *a *= r);
    }
}

/// The CPU reference: the same algorithm in f64 (same seeding draws, stopping rules, empty
/// repairs and balanced greedy). `x` is row-major `[n, d]`.
pub fn kmeans_cpu(x: &[f32], d: usize, cfg: &KMeansConfig) -> Result<KMeansCpu> {
    if d == 0 || !x.len().is_multiple_of(d) {
        return Err(Error::shape(
            "kmeans_cpu",
            format!("{} values do not form rows of {d}", x.len()),
        ));
    }
    let n = x.len() / d;
    validate(n, d, cfg)?;
    let k = cfg.k;
    let metric = cfg.metric;
    let row = |i: usize| &x[i * d..(i + 1) * d];
    let mut rng = Rng::new(cfg.seed);
    let set_row = |c: &mut [f64], dst: usize, src: usize| {
        let r = &mut c[dst * d..(dst + 1) * d];
        for (o, &v) in r.iter_mut().zip(row(src)) {
            *o = v as f64;
        }
        if metric == Metric::Cosine {
            normalize(r);
        }
    };
    let mut cent = vec![0f64; k * d];
    match &cfg.init {
        Init::Centroids(c) => cent.iter_mut().zip(c).for_each(|(o, &v)| *o = v as f64),
        Init::FirstK => (0..k).for_each(|i| set_row(&mut cent, i, i)),
        Init::KMeansPlusPlus => {
            set_row(&mut cent, 0, rng.below(n));
            let mut mind = vec![f64::INFINITY; n];
            for s in 1..k {
                for (i, m) in mind.iter_mut().enumerate() {
                    *m = m.min(dist_cpu(row(i), &cent[(s - 1) * d..s * d], metric));
                }
                let u = plan::draw(&mut rng) as f64;
                let total: f64 = mind.iter().sum();
                let mut pick = ((u * n as f64) as usize).min(n - 1);
                if total > 0.0 {
                    let target = u * total;
                    let mut run = 0.0;
                    pick = (0..n).rev().find(|&i| mind[i] > 0.0).unwrap_or(0);
                    for (i, &m) in mind.iter().enumerate() {
                        run += m;
                        if run > target && m > 0.0 {
                            pick = i;
                            break;
                        }
                    }
                }
                set_row(&mut cent, s, pick);
            }
        }
    }
    let assign_step = |cent: &[f64]| -> (Vec<u32>, Vec<f64>) {
        let dists = |i: usize, avail: &dyn Fn(usize) -> bool| -> Vec<(u32, f64)> {
            (0..k)
                .filter(|&c| avail(c))
                .map(|c| {
                    (
                        c as u32,
                        dist_cpu(row(i), &cent[c * d..(c + 1) * d], metric),
                    )
                })
                .collect()
        };
        let mut a = vec![0u32; n];
        let mut dd = vec![0f64; n];
        if !cfg.balanced {
            for i in 0..n {
                let all = dists(i, &|_| true);
                let best = all
                    .iter()
                    .fold(all[0], |b, &e| if e.1 < b.1 { e } else { b });
                a[i] = best.0;
                dd[i] = best.1;
            }
            return (a, dd);
        }
        let m = BALANCED_CANDIDATES.min(k);
        let mut cap = vec![n.div_ceil(k) as u64; k];
        let mut pending: Vec<usize> = (0..n).collect();
        while !pending.is_empty() {
            let open = cap.clone();
            let lists: Vec<Vec<(u32, f64)>> = pending
                .iter()
                .map(|&i| {
                    let mut l = dists(i, &|c| open[c] > 0);
                    l.sort_by(|p, q| p.1.total_cmp(&q.1).then(p.0.cmp(&q.0)));
                    l.truncate(m);
                    l
                })
                .collect();
            pending = plan::greedy(&pending, &lists, &mut cap, &mut a, &mut dd);
        }
        (a, dd)
    };
    let mut prev = None;
    let mut iters = 0;
    let mut repaired = 0;
    while iters < cfg.max_iters {
        let (a, dd) = assign_step(&cent);
        let inertia: f64 = dd.iter().sum();
        let mut counts = vec![0u64; k];
        let mut sse = vec![0f64; k];
        let mut sums = vec![0f64; k * d];
        for i in 0..n {
            let c = a[i] as usize;
            counts[c] += 1;
            sse[c] += dd[i];
            for (s, &v) in sums[c * d..(c + 1) * d].iter_mut().zip(row(i)) {
                *s += v as f64;
            }
        }
        let mut new = cent.clone();
        let (mut shift2, mut old2) = (0.0, 0.0);
        for c in 0..k {
            let r = &mut new[c * d..(c + 1) * d];
            if counts[c] > 0 {
                for (o, s) in r.iter_mut().zip(&sums[c * d..(c + 1) * d]) {
                    *o = s / counts[c] as f64;
                }
                if metric == Metric::Cosine {
                    if r.iter().all(|&v| v == 0.0) {
                        r.copy_from_slice(&cent[c * d..(c + 1) * d]);
                    } else {
                        normalize(r);
                    }
                }
            }
            let old = &cent[c * d..(c + 1) * d];
            shift2 += r.iter().zip(old).map(|(a, b)| (a - b).powi(2)).sum::<f64>();
            old2 += old.iter().map(|v| v * v).sum::<f64>();
        }
        match cfg.empty {
            EmptyPolicy::Keep => {}
            EmptyPolicy::SplitLargest => {
                for s in plan::splits(&mut counts, &mut sse, d, metric, &mut rng) {
                    for j in 0..d {
                        let v = new[s.donor * d + j];
                        let delta = s.scale as f64 * s.dir[j] as f64;
                        new[s.donor * d + j] = v - delta;
                        new[s.empty * d + j] = v + delta;
                    }
                    if metric == Metric::Cosine {
                        normalize(&mut new[s.donor * d..(s.donor + 1) * d]);
                        normalize(&mut new[s.empty * d..(s.empty + 1) * d]);
                    }
                    repaired += 1;
                }
            }
            EmptyPolicy::FarthestPoint => {
                for (c, p) in plan::farthest(&counts, &dd) {
                    set_row(&mut new, c, p);
                    repaired += 1;
                }
            }
        }
        cent = new;
        iters += 1;
        let stop = plan::converged(prev, inertia, shift2, old2, cfg.tol);
        prev = Some(inertia);
        if stop {
            break;
        }
    }
    let (assign, dd) = assign_step(&cent);
    Ok(KMeansCpu {
        centroids: cent,
        assign,
        iters,
        inertia: dd.iter().sum(),
        empty_repaired: repaired,
    })
}
