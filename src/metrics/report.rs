//! The [`Metrics`] report: computation from codes (+ embeddings, reconstructions, labels),
//! JSON and a printed table, for one method or several side by side.

use super::codes::{self, Clusters, Collisions, SizeDist};
use super::drift::{self, Cohesion};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt::{self, Write as _};
use std::path::Path;

/// The share of codes counted as "the largest" in [`LevelMetrics::top1pct_share`].
pub const TOP_FRACTION: f64 = 0.01;

/// What the metrics are computed from. Only the codes and codebook sizes are required; each
/// optional input switches on the metrics that need it.
#[derive(Clone, Copy, Debug)]
pub struct MetricsInput<'a> {
    /// Codes, row-major `[items, levels]`.
    pub codes: &'a [u32],
    /// Codebook size of each level; its length is the level count.
    pub sizes: &'a [usize],
    /// Original embeddings `[items, dim]` (for cohesion and reconstruction metrics).
    pub embeddings: Option<&'a [f32]>,
    /// Width of `embeddings`.
    pub dim: usize,
    /// One cumulative reconstruction `[items, dim]` per level: the sum of the centroids (or the
    /// decoded vector) after levels `1..=l`. Needs `embeddings`.
    pub reconstructions: Option<&'a [Vec<f32>]>,
    /// One label per item (genre, category, true cluster), for purity.
    pub labels: Option<&'a [u32]>,
}

impl<'a> MetricsInput<'a> {
    /// Codes `[items, sizes.len()]` alone.
    pub fn new(codes: &'a [u32], sizes: &'a [usize]) -> Self {
        MetricsInput {
            codes,
            sizes,
            embeddings: None,
            dim: 0,
            reconstructions: None,
            labels: None,
        }
    }
    /// Adds the original embeddings `[items, dim]`.
    pub fn with_embeddings(mut self, embeddings: &'a [f32], dim: usize) -> Self {
        self.embeddings = Some(embeddings);
        self.dim = dim;
        self
    }
    /// Adds the cumulative reconstruction of every level.
    pub fn with_reconstructions(mut self, reconstructions: &'a [Vec<f32>]) -> Self {
        self.reconstructions = Some(reconstructions);
        self
    }
    /// Adds item labels.
    pub fn with_labels(mut self, labels: &'a [u32]) -> Self {
        self.labels = Some(labels);
        self
    }
}

/// Statistics of one grouping of the items at one level: either the PREFIX clusters (items
/// sharing codes `1..=l`) or the clusters of the level-`l` code alone.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupStats {
    /// Sizes of the non-empty clusters.
    pub sizes: SizeDist,
    /// Mean within-cluster cosine of the original embeddings (see [`super::drift`]); `None`
    /// without embeddings.
    pub cohesion: Option<Cohesion>,
    /// Label purity; `None` without labels.
    pub purity: Option<f64>,
}

/// The metrics of one level (codes `l`, 1-based).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LevelMetrics {
    /// Level, from 1.
    pub level: usize,
    /// Codebook size `k`.
    pub codebook_size: usize,
    /// Codes used by at least one item.
    pub used_codes: usize,
    /// `used_codes / k`.
    pub utilization: f64,
    /// Entropy of the code-usage distribution, in bits.
    pub entropy_bits: f64,
    /// Entropy over its maximum, `H / ln k` (1 = uniform; defined as 1 when `k = 1`).
    pub entropy_norm: f64,
    /// Gini coefficient of the code counts over all `k` codes, unused ones included
    /// (0 = equal, `(k−1)/k` = one code takes all).
    pub gini: f64,
    /// Population standard deviation of the code counts over all `k` codes.
    pub count_std: f64,
    /// `count_std` over the mean count `items / k` (coefficient of variation; scale-free).
    pub count_cv: f64,
    /// Share of items in the `top1pct_codes` most used codes.
    pub top1pct_share: f64,
    /// `ceil(k / 100)`, at least 1: how many codes `top1pct_share` counts.
    pub top1pct_codes: usize,
    /// Share of items in the most used code.
    pub max_code_share: f64,
    /// Mean over items of cos(x, reconstruction after this level); `None` without
    /// reconstructions.
    pub recon_cosine: Option<f64>,
    /// Mean over items of ‖x − reconstruction‖²; `None` without reconstructions.
    pub recon_sq_error: Option<f64>,
    /// Clusters of the prefix tuple (codes `1..=l`).
    pub prefix: GroupStats,
    /// Clusters of this level's code alone (its sizes are the non-zero code counts).
    pub code: GroupStats,
}

/// All metrics of one set of semantic IDs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Method name, e.g. `rq-kmeans` or `psrq`.
    pub name: String,
    /// Items.
    pub items: usize,
    /// Levels.
    pub levels: usize,
    /// Embedding width, when embeddings were given.
    pub dim: Option<usize>,
    /// Collisions of the full code tuple.
    pub collisions: Collisions,
    /// Items sharing their full tuple with another item, over items (0 with no items).
    pub collision_rate: f64,
    /// Mean pairwise cosine over all items: the "level 0" cohesion every level should beat.
    pub global_cosine: Option<f64>,
    /// Share of the most common label: the "level 0" purity.
    pub label_baseline_purity: Option<f64>,
    /// Distinct labels.
    pub label_count: Option<usize>,
    /// The middle level, `(levels + 1) / 2` (1-based), where the hourglass of Kuai et al. 2024
    /// shows: low entropy, high Gini, a few codes holding most items.
    pub middle_level: usize,
    /// One entry per level.
    pub per_level: Vec<LevelMetrics>,
}

fn check_matrix(what: &str, data: &[f32], items: usize, dim: usize) -> Result<()> {
    if data.len() != items * dim {
        return Err(Error::shape(
            "metrics",
            format!(
                "{what} has {} values, not {items} items × dim {dim}",
                data.len()
            ),
        ));
    }
    Ok(())
}

impl Metrics {
    /// Computes every metric that the input allows. Errors on inconsistent shapes or codes out
    /// of range; never panics on user input.
    pub fn compute(name: &str, input: &MetricsInput) -> Result<Metrics> {
        let levels = input.sizes.len();
        let items = codes::check_codes(input.codes, input.sizes)?;
        let unit = match input.embeddings {
            Some(x) => {
                if input.dim == 0 {
                    return Err(Error::shape("metrics", "embedding dim is 0"));
                }
                check_matrix("embeddings", x, items, input.dim)?;
                Some(drift::normalize_rows(x, input.dim))
            }
            None => None,
        };
        if let Some(recons) = input.reconstructions {
            if input.embeddings.is_none() {
                return Err(Error::Invalid(
                    "reconstructions need the original embeddings".into(),
                ));
            }
            if recons.len() != levels {
                return Err(Error::shape(
                    "metrics",
                    format!("{} reconstructions for {levels} levels", recons.len()),
                ));
            }
            for (l, r) in recons.iter().enumerate() {
                check_matrix(&format!("reconstruction {}", l + 1), r, items, input.dim)?;
            }
        }
        if let Some(labels) = input.labels {
            if labels.len() != items {
                return Err(Error::shape(
                    "metrics",
                    format!("{} labels for {items} items", labels.len()),
                ));
            }
        }

        let group_stats = |clusters: &Clusters| -> Result<GroupStats> {
            Ok(GroupStats {
                sizes: SizeDist::from_sizes(&clusters.sizes()),
                cohesion: match &unit {
                    Some(u) => Some(drift::cohesion(u, input.dim, clusters)?),
                    None => None,
                },
                purity: match input.labels {
                    Some(labels) => Some(drift::purity(clusters, labels)?),
                    None => None,
                },
            })
        };

        let prefixes = codes::prefix_clusters(input.codes, levels);
        let mut per_level = Vec::with_capacity(levels);
        for (l, &k) in input.sizes.iter().enumerate() {
            let counts = codes::code_counts(input.codes, levels, l, k);
            let code_clusters =
                Clusters::from_keys(input.codes.chunks_exact(levels).map(|row| row[l]));
            let total = items as f64;
            let std = codes::count_std(&counts);
            let (recon_cosine, recon_sq_error) = match (input.embeddings, input.reconstructions) {
                (Some(x), Some(r)) => (
                    Some(drift::mean_row_cosine(x, &r[l], input.dim)?),
                    Some(drift::mean_row_sq_error(x, &r[l], input.dim)?),
                ),
                _ => (None, None),
            };
            per_level.push(LevelMetrics {
                level: l + 1,
                codebook_size: k,
                used_codes: counts.iter().filter(|&&c| c > 0).count(),
                utilization: codes::utilization(&counts),
                entropy_bits: codes::entropy_bits(&counts),
                entropy_norm: codes::normalized_entropy(&counts),
                gini: codes::gini(&counts),
                count_std: std,
                count_cv: if items > 0 {
                    std / (total / k as f64)
                } else {
                    0.0
                },
                top1pct_share: codes::top_share(&counts, TOP_FRACTION),
                top1pct_codes: codes::top_codes(k, TOP_FRACTION),
                max_code_share: if items > 0 {
                    counts.iter().copied().max().unwrap_or(0) as f64 / total
                } else {
                    0.0
                },
                recon_cosine,
                recon_sq_error,
                prefix: group_stats(&prefixes[l])?,
                code: group_stats(&code_clusters)?,
            });
        }

        let full = &prefixes[levels - 1];
        let collisions = Collisions::from_sizes(&full.sizes());
        let everything = Clusters {
            ids: vec![0; items],
            count: usize::from(items > 0),
        };
        let global_cosine = match &unit {
            Some(u) => drift::cohesion(u, input.dim, &everything)?.item_weighted,
            None => None,
        };
        let (label_baseline_purity, label_count) = match input.labels {
            Some(labels) => {
                let by_label = Clusters::from_keys(labels.iter().copied());
                let top = by_label.sizes().into_iter().max().unwrap_or(0);
                let base = if items > 0 {
                    top as f64 / items as f64
                } else {
                    0.0
                };
                (Some(base), Some(by_label.count))
            }
            None => (None, None),
        };
        let m = Metrics {
            name: name.to_string(),
            items,
            levels,
            dim: input.embeddings.map(|_| input.dim),
            collision_rate: if items > 0 {
                collisions.collided_items as f64 / items as f64
            } else {
                0.0
            },
            collisions,
            global_cosine,
            label_baseline_purity,
            label_count,
            middle_level: levels.div_ceil(2),
            per_level,
        };
        m.check_finite()?;
        Ok(m)
    }

    /// Fails when any metric is NaN or infinite, naming it: JSON writes such a value as
    /// `null`, which would read as "not measured". Inputs are finite by the time they get here,
    /// so this catches a numerical fault (once: subnormal rows normalised to infinity) rather
    /// than letting it reach `metrics.json`.
    pub fn check_finite(&self) -> Result<()> {
        let tree = toml::Value::try_from(self)
            .map_err(|e| Error::Invalid(format!("metrics of {}: {e}", self.name)))?;
        match first_non_finite(&tree, String::new()) {
            None => Ok(()),
            Some((path, v)) => Err(Error::Invalid(format!(
                "metrics of {}: `{path}` came out {v}; this is a semid bug, please report it \
                 with the input's shape",
                self.name
            ))),
        }
    }

    /// The metrics of the middle level (the hourglass level).
    pub fn hourglass(&self) -> Option<&LevelMetrics> {
        self.per_level.get(self.middle_level.checked_sub(1)?)
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self)
            .expect("Metrics holds only numbers, strings, options and vectors")
    }

    /// Parses [`Metrics::to_json`] output.
    pub fn from_json(text: &str) -> Result<Metrics> {
        serde_json::from_str(text).map_err(|e| Error::Invalid(format!("metrics JSON: {e}")))
    }

    /// Writes the JSON to `path` (write-then-rename, so readers never see a partial file).
    pub fn write_json(&self, path: &Path) -> Result<()> {
        super::write_atomic(path, self.to_json().as_bytes())
    }

    /// The printed table of this method.
    pub fn table(&self) -> String {
        compare_table(&[self])
    }

    /// Writes the rank-size SVG of this method (see [`super::plot`]).
    #[cfg(feature = "plots")]
    pub fn write_svg(&self, path: &Path) -> Result<()> {
        super::plot::write_rank_size_svg(path, &[self])
    }
}

impl fmt::Display for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.table())
    }
}

/// Several methods as one JSON array.
pub fn compare_json(methods: &[&Metrics]) -> String {
    serde_json::to_string_pretty(methods)
        .expect("Metrics holds only numbers, strings, options and vectors")
}

fn opt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) => format!("{x:.digits$}"),
        None => "-".to_string(),
    }
}

/// One table for several methods (e.g. RQ-KMeans vs PSRQ): rows grouped by level, one row per
/// method, then one summary line per method. The middle (hourglass) level is starred.
///
/// Columns: `k`, used codes, utilisation, entropy in bits, `H/ln k`, Gini, share of the top 1%
/// of codes, prefix clusters, item-weighted within-cluster cosine for the prefix and the code
/// grouping (`coh.pre`, `coh.code`), label purity for both (`pur.pre`, `pur.code`) and the
/// reconstruction cosine.
pub fn compare_table(methods: &[&Metrics]) -> String {
    let name_w = methods
        .iter()
        .map(|m| m.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(6);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<name_w$} {:>4} {:>6} {:>6} {:>6} {:>7} {:>6} {:>6} {:>6} {:>8} {:>7} {:>8} {:>7} {:>8} {:>7}",
        "method", "lvl", "k", "used", "util", "H bits", "H/lnk", "gini", "top1%", "clusters",
        "coh.pre", "coh.code", "pur.pre", "pur.code", "rec.cos"
    );
    let max_levels = methods.iter().map(|m| m.levels).max().unwrap_or(0);
    for l in 0..max_levels {
        for m in methods {
            let Some(lm) = m.per_level.get(l) else {
                continue;
            };
            let star = if lm.level == m.middle_level { "*" } else { " " };
            let coh = |g: &GroupStats| opt(g.cohesion.and_then(|c| c.item_weighted), 3);
            let _ = writeln!(
                s,
                "{:<name_w$} {:>3}{} {:>6} {:>6} {:>6.3} {:>7.3} {:>6.3} {:>6.3} {:>6.3} {:>8} {:>7} {:>8} {:>7} {:>8} {:>7}",
                m.name,
                lm.level,
                star,
                lm.codebook_size,
                lm.used_codes,
                lm.utilization,
                lm.entropy_bits,
                lm.entropy_norm,
                lm.gini,
                lm.top1pct_share,
                lm.prefix.sizes.clusters,
                coh(&lm.prefix),
                coh(&lm.code),
                opt(lm.prefix.purity, 3),
                opt(lm.code.purity, 3),
                opt(lm.recon_cosine, 4),
            );
        }
    }
    for m in methods {
        let c = &m.collisions;
        let _ = write!(
            s,
            "{}: {} items, {} levels, {} distinct tuples; {} items collide in {} groups (rate {:.4}, largest {})",
            m.name, m.items, m.levels, c.distinct, c.collided_items, c.groups, m.collision_rate, c.largest
        );
        if let Some(g) = m.global_cosine {
            let _ = write!(s, "; global cos {g:.3}");
        }
        if let (Some(p), Some(n)) = (m.label_baseline_purity, m.label_count) {
            let _ = write!(s, "; {n} labels, majority share {p:.3}");
        }
        s.push('\n');
    }
    s.push_str("* middle level (hourglass); coh = item-weighted mean within-cluster cosine of the original embeddings\n");
    s
}

/// The first non-finite float in a value tree, with its path (`per_level.2.entropy_bits`).
fn first_non_finite(v: &toml::Value, path: String) -> Option<(String, f64)> {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        toml::Value::Float(x) if !x.is_finite() => Some((path, *x)),
        toml::Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| first_non_finite(x, join(&(i + 1).to_string()))),
        toml::Value::Table(t) => t.iter().find_map(|(k, x)| first_non_finite(x, join(k))),
        _ => None,
    }
}
