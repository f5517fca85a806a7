//! Semantic drift: how coherent each level's clusters are in the ORIGINAL embedding space, how
//! pure they are with respect to item labels, and how close the reconstructions are.
//!
//! # Within-cluster cosine
//!
//! With the rows normalised to unit length (x̂ = x/‖x‖; an all-zero row stays zero), the mean
//! cosine over the ordered pairs `i ≠ j` of a cluster `S` with `n = |S| ≥ 2` is
//!
//! ```text
//! c(S) = (‖Σ_{i∈S} x̂_i‖² − Σ_{i∈S} ‖x̂_i‖²) / (n (n − 1))
//! ```
//!
//! (`Σ ‖x̂_i‖² = n` unless some rows are zero), which costs one pass over the rows instead of
//! `n²` dot products. Sums are accumulated in f64. Singletons have no pairs and are left out.
//! Two aggregates over the clusters are reported:
//!
//! * **item-weighted** (the headline number): `Σ_S n_S c(S) / Σ_S n_S` over clusters with
//!   `n_S ≥ 2`, i.e. the mean over clustered items of their cluster's coherence. A single huge
//!   cluster counts by its items, not by its `n²` pairs.
//! * **pair-weighted**: `Σ_S n_S(n_S−1) c(S) / Σ_S n_S(n_S−1)`, the mean cosine over all
//!   within-cluster pairs; dominated by the largest clusters.

use super::codes::Clusters;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Rows scaled to unit L2 norm (an all-zero row stays zero). `x` is `[rows, dim]`.
///
/// The norm and the division are in f64: a row of subnormal f32 values (norm ~1e-40) has a
/// reciprocal norm past f32's range, and multiplying by an infinite f32 scale once turned such
/// rows into NaN metrics.
pub fn normalize_rows(x: &[f32], dim: usize) -> Vec<f32> {
    let mut out = x.to_vec();
    if dim == 0 {
        return out;
    }
    for row in out.chunks_exact_mut(dim) {
        let n2: f64 = row.iter().map(|&v| v as f64 * v as f64).sum();
        if n2 > 0.0 {
            let n = n2.sqrt();
            row.iter_mut().for_each(|v| *v = (*v as f64 / n) as f32);
        }
    }
    out
}

/// Mean within-cluster cosine of one grouping (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cohesion {
    /// Item-weighted mean within-cluster cosine; `None` when every cluster is a singleton.
    pub item_weighted: Option<f64>,
    /// Pair-weighted mean within-cluster cosine; `None` when every cluster is a singleton.
    pub pair_weighted: Option<f64>,
    /// Items in clusters of two or more (those the means are over).
    pub clustered_items: usize,
    /// Clusters of two or more items.
    pub clusters: usize,
}

/// Mean within-cluster cosine of `clusters` over unit rows `unit` (`[items, dim]`, from
/// [`normalize_rows`]).
pub fn cohesion(unit: &[f32], dim: usize, clusters: &Clusters) -> Result<Cohesion> {
    let items = clusters.ids.len();
    if dim == 0 || unit.len() != items * dim {
        return Err(Error::shape(
            "cohesion",
            format!("{} values is not {items} items × dim {dim}", unit.len()),
        ));
    }
    let (offsets, order) = clusters.members();
    let mut sum = vec![0f64; dim];
    let (mut item_num, mut pair_num, mut pair_den) = (0f64, 0f64, 0f64);
    let mut out = Cohesion::default();
    for c in 0..clusters.count {
        let members = &order[offsets[c]..offsets[c + 1]];
        let n = members.len();
        if n < 2 {
            continue;
        }
        sum.iter_mut().for_each(|s| *s = 0.0);
        let mut self_dots = 0f64;
        for &i in members {
            let row = &unit[i as usize * dim..(i as usize + 1) * dim];
            for (s, &v) in sum.iter_mut().zip(row) {
                *s += v as f64;
            }
            self_dots += row.iter().map(|&v| v as f64 * v as f64).sum::<f64>();
        }
        let total: f64 = sum.iter().map(|s| s * s).sum();
        let pairs = (n * (n - 1)) as f64;
        let pair_sum = total - self_dots;
        item_num += n as f64 * pair_sum / pairs;
        pair_num += pair_sum;
        pair_den += pairs;
        out.clustered_items += n;
        out.clusters += 1;
    }
    if out.clusters > 0 {
        out.item_weighted = Some(item_num / out.clustered_items as f64);
        out.pair_weighted = Some(pair_num / pair_den);
    }
    Ok(out)
}

/// Label purity of a grouping: the fraction of items whose label is the majority label of
/// their cluster (ties count once). Singletons are trivially pure and are included, so purity
/// rises to 1 as clusters shrink; read it with the cluster count. 0 with no items.
pub fn purity(clusters: &Clusters, labels: &[u32]) -> Result<f64> {
    let items = clusters.ids.len();
    if labels.len() != items {
        return Err(Error::shape(
            "purity",
            format!("{} labels for {items} items", labels.len()),
        ));
    }
    if items == 0 {
        return Ok(0.0);
    }
    let (offsets, order) = clusters.members();
    let mut majority_total = 0usize;
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for c in 0..clusters.count {
        let members = &order[offsets[c]..offsets[c + 1]];
        if members.len() == 1 {
            majority_total += 1;
            continue;
        }
        counts.clear();
        for &i in members {
            *counts.entry(labels[i as usize]).or_insert(0) += 1;
        }
        majority_total += counts.values().copied().max().unwrap_or(0);
    }
    Ok(majority_total as f64 / items as f64)
}

/// Mean over rows of cos(x_i, y_i) for two `[rows, dim]` matrices; a row pair where either row
/// is all zeros counts as cosine 0. 0 with no rows.
pub fn mean_row_cosine(x: &[f32], y: &[f32], dim: usize) -> Result<f64> {
    if dim == 0 || x.len() != y.len() || !x.len().is_multiple_of(dim) {
        return Err(Error::shape(
            "mean_row_cosine",
            format!(
                "lengths {} and {} do not form equal matrices of width {dim}",
                x.len(),
                y.len()
            ),
        ));
    }
    let rows = x.len() / dim;
    if rows == 0 {
        return Ok(0.0);
    }
    let total: f64 = x
        .chunks_exact(dim)
        .zip(y.chunks_exact(dim))
        .map(|(a, b)| {
            let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
            for (&u, &v) in a.iter().zip(b) {
                let (u, v) = (u as f64, v as f64);
                ab += u * v;
                aa += u * u;
                bb += v * v;
            }
            if aa > 0.0 && bb > 0.0 {
                ab / (aa.sqrt() * bb.sqrt())
            } else {
                0.0
            }
        })
        .sum();
    Ok(total / rows as f64)
}

/// Mean over rows of the squared L2 error ‖x_i − y_i‖². 0 with no rows.
pub fn mean_row_sq_error(x: &[f32], y: &[f32], dim: usize) -> Result<f64> {
    if dim == 0 || x.len() != y.len() || !x.len().is_multiple_of(dim) {
        return Err(Error::shape(
            "mean_row_sq_error",
            format!(
                "lengths {} and {} do not form equal matrices of width {dim}",
                x.len(),
                y.len()
            ),
        ));
    }
    let rows = x.len() / dim;
    if rows == 0 {
        return Ok(0.0);
    }
    let total: f64 = x
        .iter()
        .zip(y)
        .map(|(&u, &v)| (u as f64 - v as f64).powi(2))
        .sum();
    Ok(total / rows as f64)
}
