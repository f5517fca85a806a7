//! Statistics of the codes alone: code-usage distributions per level (utilisation, entropy,
//! the hourglass measures of Kuai et al. 2024), prefix clusters and full-tuple collisions.
//!
//! Codes are row-major `[items, levels]`; level `l` (0-based here) has `sizes[l]` codes.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Checks a code matrix against its per-level codebook sizes and returns the item count.
///
/// Errors when there are no levels, a codebook size is 0, the length is not a multiple of the
/// level count, or a code is out of its level's range.
pub fn check_codes(codes: &[u32], sizes: &[usize]) -> Result<usize> {
    let levels = sizes.len();
    if levels == 0 {
        return Err(Error::shape("metrics", "no levels: `sizes` is empty"));
    }
    if let Some(l) = sizes.iter().position(|&k| k == 0) {
        return Err(Error::Invalid(format!(
            "codebook size of level {} is 0",
            l + 1
        )));
    }
    if !codes.len().is_multiple_of(levels) {
        return Err(Error::shape(
            "metrics",
            format!("{} codes is not a multiple of {levels} levels", codes.len()),
        ));
    }
    let items = codes.len() / levels;
    for (i, row) in codes.chunks_exact(levels).enumerate() {
        for (l, (&c, &k)) in row.iter().zip(sizes).enumerate() {
            if c as usize >= k {
                return Err(Error::Invalid(format!(
                    "item {i}, level {}: code {c} is out of range for a codebook of {k}",
                    l + 1
                )));
            }
        }
    }
    Ok(items)
}

/// How many items use each code of one level (`k` counts, zeros included).
pub fn code_counts(codes: &[u32], levels: usize, level: usize, k: usize) -> Vec<u64> {
    let mut counts = vec![0u64; k];
    for row in codes.chunks_exact(levels) {
        counts[row[level] as usize] += 1;
    }
    counts
}

/// Fraction of the `counts.len()` codes used by at least one item.
pub fn utilization(counts: &[u64]) -> f64 {
    if counts.is_empty() {
        return 0.0;
    }
    counts.iter().filter(|&&c| c > 0).count() as f64 / counts.len() as f64
}

/// Shannon entropy of the distribution `counts / Σ counts`, in nats (0 when all counts are 0).
pub fn entropy_nats(counts: &[u64]) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let n = total as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.ln()
        })
        .sum::<f64>()
        .max(0.0)
}

/// Shannon entropy in bits.
pub fn entropy_bits(counts: &[u64]) -> f64 {
    entropy_nats(counts) / std::f64::consts::LN_2
}

/// Entropy divided by its maximum `ln k`, with `k = counts.len()`: 1 for uniform use of all
/// codes, 0 when one code takes every item. With `k = 1` the only distribution is both, and the
/// value is defined as 1.
pub fn normalized_entropy(counts: &[u64]) -> f64 {
    if counts.len() <= 1 {
        return 1.0;
    }
    entropy_nats(counts) / (counts.len() as f64).ln()
}

/// Gini coefficient of the counts over all `k` codes, unused codes included:
/// `G = Σ_i Σ_j |c_i − c_j| / (2 k Σ c)`. 0 for equal counts; `(k − 1)/k` when one code takes
/// every item. 0 when all counts are 0.
pub fn gini(counts: &[u64]) -> f64 {
    let k = counts.len();
    let total: u64 = counts.iter().sum();
    if k == 0 || total == 0 {
        return 0.0;
    }
    let mut sorted = counts.to_vec();
    sorted.sort_unstable();
    // With ascending c_(i), i = 1..k: G = 2 Σ i c_(i) / (k Σ c) − (k + 1)/k.
    let weighted: f64 = sorted
        .iter()
        .enumerate()
        .map(|(i, &c)| (i + 1) as f64 * c as f64)
        .sum();
    let kf = k as f64;
    (2.0 * weighted / (kf * total as f64) - (kf + 1.0) / kf).max(0.0)
}

/// Population standard deviation of the counts over all `k` codes (unused codes count as 0).
pub fn count_std(counts: &[u64]) -> f64 {
    if counts.is_empty() {
        return 0.0;
    }
    let k = counts.len() as f64;
    let mean = counts.iter().sum::<u64>() as f64 / k;
    let var = counts
        .iter()
        .map(|&c| (c as f64 - mean).powi(2))
        .sum::<f64>()
        / k;
    var.sqrt()
}

/// Number of codes in the "largest `frac`" of a codebook of `k`: `ceil(frac · k)`, at least 1.
pub fn top_codes(k: usize, frac: f64) -> usize {
    ((frac * k as f64).ceil() as usize).clamp(1, k.max(1))
}

/// Share of the items held by the `top_codes(k, frac)` most used codes.
pub fn top_share(counts: &[u64], frac: f64) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let mut sorted = counts.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let n = top_codes(counts.len(), frac);
    sorted[..n].iter().sum::<u64>() as f64 / total as f64
}

/// A grouping of items into clusters with dense ids `0..count`, numbered in order of first
/// appearance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clusters {
    /// Cluster id of each item.
    pub ids: Vec<u32>,
    /// Number of clusters.
    pub count: usize,
}

impl Clusters {
    /// Groups items by an arbitrary u32 key per item (e.g. one level's code).
    pub fn from_keys(keys: impl IntoIterator<Item = u32>) -> Clusters {
        let mut map: HashMap<u32, u32> = HashMap::new();
        let ids: Vec<u32> = keys
            .into_iter()
            .map(|key| {
                let next = map.len() as u32;
                *map.entry(key).or_insert(next)
            })
            .collect();
        Clusters {
            ids,
            count: map.len(),
        }
    }

    /// Refines these clusters by one more key per item: items stay together only when they
    /// share both the old cluster and the new key. Used to extend a prefix by one level.
    pub fn refine(&self, keys: impl IntoIterator<Item = u32>) -> Clusters {
        let mut map: HashMap<u64, u32> = HashMap::new();
        let ids: Vec<u32> = self
            .ids
            .iter()
            .zip(keys)
            .map(|(&parent, key)| {
                let next = map.len() as u32;
                *map.entry(((parent as u64) << 32) | key as u64)
                    .or_insert(next)
            })
            .collect();
        Clusters {
            ids,
            count: map.len(),
        }
    }

    /// Item count of every cluster, by id.
    pub fn sizes(&self) -> Vec<u64> {
        let mut sizes = vec![0u64; self.count];
        for &id in &self.ids {
            sizes[id as usize] += 1;
        }
        sizes
    }

    /// Items ordered by cluster (counting sort, item order kept within a cluster), with the
    /// offsets of each cluster's run: cluster `c` is `order[offsets[c]..offsets[c + 1]]`.
    pub fn members(&self) -> (Vec<usize>, Vec<u32>) {
        let mut offsets = vec![0usize; self.count + 1];
        for &id in &self.ids {
            offsets[id as usize + 1] += 1;
        }
        for c in 0..self.count {
            offsets[c + 1] += offsets[c];
        }
        let mut cursor = offsets.clone();
        let mut order = vec![0u32; self.ids.len()];
        for (i, &id) in self.ids.iter().enumerate() {
            order[cursor[id as usize]] = i as u32;
            cursor[id as usize] += 1;
        }
        (offsets, order)
    }
}

/// The prefix clusters of every level: entry `l` (0-based) groups items by codes `0..=l`, so
/// the last entry groups by the full tuple.
pub fn prefix_clusters(codes: &[u32], levels: usize) -> Vec<Clusters> {
    let mut out: Vec<Clusters> = Vec::with_capacity(levels);
    for l in 0..levels {
        let keys = codes.chunks_exact(levels).map(|row| row[l]);
        let next = match out.last() {
            None => Clusters::from_keys(keys),
            Some(prev) => prev.refine(keys),
        };
        out.push(next);
    }
    out
}

/// Collision statistics of a grouping (usually the full code tuple).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collisions {
    /// Number of distinct keys (tuples).
    pub distinct: usize,
    /// Items that share their key with at least one other item.
    pub collided_items: usize,
    /// Keys held by two or more items.
    pub groups: usize,
    /// Size of the largest group (1 when all keys are unique, 0 with no items).
    pub largest: usize,
}

impl Collisions {
    /// Collision statistics from cluster sizes.
    pub fn from_sizes(sizes: &[u64]) -> Collisions {
        let mut c = Collisions::default();
        for &s in sizes.iter().filter(|&&s| s > 0) {
            c.distinct += 1;
            c.largest = c.largest.max(s as usize);
            if s > 1 {
                c.groups += 1;
                c.collided_items += s as usize;
            }
        }
        c
    }
}

/// One run of equal cluster sizes: `count` clusters of `size` items each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeRun {
    /// Items per cluster.
    pub size: u64,
    /// Number of clusters of that size.
    pub count: u64,
}

/// One bin of the log2 size histogram: clusters with `lo <= size <= hi` (`lo = 2^b`,
/// `hi = 2^(b+1) − 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeBin {
    /// Smallest size in the bin.
    pub lo: u64,
    /// Largest size in the bin.
    pub hi: u64,
    /// Clusters in the bin.
    pub clusters: u64,
    /// Items in those clusters.
    pub items: u64,
}

/// The distribution of cluster sizes (non-empty clusters only), stored compactly as runs of
/// equal sizes in descending size order. [`SizeDist::sorted_desc`] expands it to the full
/// sorted list; the rank-size curve is that list against rank 1, 2, ...
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SizeDist {
    /// Non-empty clusters.
    pub clusters: u64,
    /// Items over all clusters.
    pub items: u64,
    /// Largest size (0 when empty).
    pub max: u64,
    /// Median size (the lower middle one for an even count; 0 when empty).
    pub median: u64,
    /// Clusters of exactly one item.
    pub singletons: u64,
    /// Runs of equal sizes, largest size first.
    pub runs: Vec<SizeRun>,
    /// Log2-binned histogram, smallest bin first, empty bins included up to the largest.
    pub histogram: Vec<SizeBin>,
}

impl SizeDist {
    /// The distribution of the non-zero entries of `sizes`.
    pub fn from_sizes(sizes: &[u64]) -> SizeDist {
        let mut sorted: Vec<u64> = sizes.iter().copied().filter(|&s| s > 0).collect();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let mut runs: Vec<SizeRun> = Vec::new();
        for &s in &sorted {
            match runs.last_mut() {
                Some(r) if r.size == s => r.count += 1,
                _ => runs.push(SizeRun { size: s, count: 1 }),
            }
        }
        let max = sorted.first().copied().unwrap_or(0);
        let nbins = if max == 0 {
            0
        } else {
            (64 - max.leading_zeros()) as usize
        };
        let mut histogram: Vec<SizeBin> = (0..nbins)
            .map(|b| SizeBin {
                lo: 1u64 << b,
                hi: (1u64 << b) * 2 - 1,
                clusters: 0,
                items: 0,
            })
            .collect();
        for r in &runs {
            let b = (63 - r.size.leading_zeros()) as usize;
            histogram[b].clusters += r.count;
            histogram[b].items += r.count * r.size;
        }
        let median = if sorted.is_empty() {
            0
        } else {
            // Ascending median = descending element at index len - 1 - (len - 1) / 2.
            sorted[sorted.len() - 1 - (sorted.len() - 1) / 2]
        };
        SizeDist {
            clusters: sorted.len() as u64,
            items: sorted.iter().sum(),
            max,
            median,
            singletons: runs.iter().filter(|r| r.size == 1).map(|r| r.count).sum(),
            runs,
            histogram,
        }
    }

    /// Every cluster size, largest first.
    pub fn sorted_desc(&self) -> Vec<u64> {
        self.runs
            .iter()
            .flat_map(|r| std::iter::repeat_n(r.size, r.count as usize))
            .collect()
    }

    /// The corners of the rank-size step curve, `(rank, size)` with ranks from 1: each run
    /// contributes its first and last rank. Enough to draw the curve exactly.
    pub fn rank_size_points(&self) -> Vec<(u64, u64)> {
        let mut pts = Vec::with_capacity(self.runs.len() * 2);
        let mut rank = 1u64;
        for r in &self.runs {
            pts.push((rank, r.size));
            if r.count > 1 {
                pts.push((rank + r.count - 1, r.size));
            }
            rank += r.count;
        }
        pts
    }
}
