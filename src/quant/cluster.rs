//! The tokenizers' door to GPU k-means and codebook search, with serialisable settings.

use crate::error::Result;
use crate::gpu::Gpu;
use crate::kernels::codebook;
use crate::quant::kmeans as km;
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Initialisation of k-means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InitMethod {
    /// k-means++ seeding, seeded.
    #[serde(rename = "kmeans++")]
    KMeansPlusPlus,
    /// The first k points.
    FirstK,
}

/// Distance of k-means and of code assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetricKind {
    /// Squared Euclidean distance.
    L2,
    /// Cosine (spherical k-means: unit-norm centroids).
    Cosine,
}

/// What to do with a cluster that loses all its points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmptyRepair {
    /// Split the largest cluster.
    SplitLargest,
    /// Re-seed from the point farthest from its centroid.
    FarthestPoint,
    /// Leave it empty.
    Keep,
}

/// k-means settings shared by the tokenizers (the papers say only "K-means"; these defaults
/// are semid's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KMeansOptions {
    /// Iteration cap.
    pub max_iters: usize,
    /// Stop when the relative change of the inertia falls below this.
    pub tol: f64,
    /// Initialisation.
    pub init: InitMethod,
    /// Distance.
    pub metric: MetricKind,
    /// Capacity-constrained clusters (at most ceil(n/k) points each): fewer collisions.
    pub balanced: bool,
    /// Empty-cluster repair.
    pub empty: EmptyRepair,
}

impl Default for KMeansOptions {
    fn default() -> Self {
        KMeansOptions {
            max_iters: 50,
            tol: 1e-4,
            init: InitMethod::KMeansPlusPlus,
            metric: MetricKind::L2,
            balanced: false,
            empty: EmptyRepair::SplitLargest,
        }
    }
}

/// Centroids and assignment of one k-means run.
pub struct Fit {
    /// `k × d` centroids.
    pub centroids: Vec<f32>,
    /// The cluster of each point.
    pub assign: Vec<u32>,
}

fn kernel_metric(m: MetricKind) -> codebook::Metric {
    match m {
        MetricKind::L2 => codebook::Metric::L2,
        MetricKind::Cosine => codebook::Metric::Cosine,
    }
}

fn config(o: &KMeansOptions, k: usize, seed: u64) -> km::KMeansConfig {
    km::KMeansConfig {
        k,
        max_iters: o.max_iters,
        tol: o.tol,
        seed,
        init: match o.init {
            InitMethod::KMeansPlusPlus => km::Init::KMeansPlusPlus,
            InitMethod::FirstK => km::Init::FirstK,
        },
        metric: kernel_metric(o.metric),
        balanced: o.balanced,
        empty: match o.empty {
            EmptyRepair::SplitLargest => km::EmptyPolicy::SplitLargest,
            EmptyRepair::FarthestPoint => km::EmptyPolicy::FarthestPoint,
            EmptyRepair::Keep => km::EmptyPolicy::Keep,
        },
    }
}

/// Runs k-means on `n × d` points.
pub fn fit(
    gpu: &Gpu,
    x: &[f32],
    n: usize,
    d: usize,
    k: usize,
    o: &KMeansOptions,
    seed: u64,
) -> Result<Fit> {
    fit_with_progress(gpu, x, (n, d), k, o, seed, &mut |_, _| {})
}

/// [`fit`] on `n × d` points (`shape`), calling `on_iter(iterations done, max_iters)` after
/// each iteration.
pub fn fit_with_progress(
    gpu: &Gpu,
    x: &[f32],
    (n, d): (usize, usize),
    k: usize,
    o: &KMeansOptions,
    seed: u64,
    on_iter: &mut dyn FnMut(usize, usize),
) -> Result<Fit> {
    let t = Tensor::from_slice(gpu, x, &[n, d])?;
    let r = km::kmeans_with_progress(gpu, &t, &config(o, k, seed), on_iter)?;
    Ok(Fit {
        centroids: r.centroids.to_vec()?,
        assign: r.assign,
    })
}

/// The nearest of `k` codes for each of `n × d` points; ties to the lower index.
pub fn assign(
    gpu: &Gpu,
    x: &[f32],
    n: usize,
    d: usize,
    codes: &[f32],
    k: usize,
    metric: MetricKind,
) -> Result<Vec<u32>> {
    let xt = Tensor::from_slice(gpu, x, &[n, d])?;
    let ct = Tensor::from_slice(gpu, codes, &[k, d])?;
    codebook::nearest(&xt, &ct, kernel_metric(metric))?
        .index
        .to_u32()
}
