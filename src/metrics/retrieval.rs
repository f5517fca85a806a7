//! Judging a retriever (issue 14): Recall@K and NDCG@K with one held-out item per user,
//! computed on the CPU from each user's ranked list.
//!
//! With a single relevant item the definitions reduce to: Recall@K (= HR@K) is 1 when the target
//! is among the first K of the list, else 0; NDCG@K is `1 / log2(rank + 2)` for the target's
//! 0-based rank `rank < K`, else 0 (the ideal DCG is 1). Both are averaged over users. A list may
//! be shorter than K (a beam returns at most its width): a target past its end is a miss.
//!
//! ```
//! use semid::metrics::retrieval::RetrievalMetrics;
//! let lists = vec![vec![3, 1, 2], vec![0, 1]];
//! let m = RetrievalMetrics::compute(&lists, &[1, 5], &[false, true], &[2, 5]).unwrap();
//! assert_eq!(m.recall[0], (2, 0.5)); // user 0 hits at rank 1, user 1 misses
//! assert!((m.ndcg[1].1 - 0.5 / 3f64.log2()).abs() < 1e-12);
//! ```

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The default cut-offs: 5, 10 and 20 (the largest K a beam of 20 can fill).
pub const DEFAULT_KS: [usize; 3] = [5, 10, 20];

/// Recall and NDCG at each K over all users, and over the users whose target is cold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetrievalMetrics {
    /// Users scored.
    pub users: usize,
    /// Users whose target is cold.
    pub cold_users: usize,
    /// `(K, Recall@K)`, K ascending.
    pub recall: Vec<(usize, f64)>,
    /// `(K, NDCG@K)`.
    pub ndcg: Vec<(usize, f64)>,
    /// `(K, Recall@K)` over the cold users (`None` when there are none).
    pub cold_recall: Vec<(usize, Option<f64>)>,
    /// `(K, NDCG@K)` over the cold users.
    pub cold_ndcg: Vec<(usize, Option<f64>)>,
}

/// The 0-based position of `target` in `list`, if present.
pub fn rank_of(list: &[u32], target: u32) -> Option<usize> {
    list.iter().position(|&x| x == target)
}

/// NDCG@K of one user with one relevant item at `rank`.
pub fn ndcg_at(rank: Option<usize>, k: usize) -> f64 {
    match rank {
        Some(r) if r < k => 1.0 / ((r + 2) as f64).log2(),
        _ => 0.0,
    }
}

impl RetrievalMetrics {
    /// Scores ranked `lists` (one per user) against `targets`, with `cold` flags per user, at
    /// cut-offs `ks` (each ≥ 1).
    pub fn compute(
        lists: &[Vec<u32>],
        targets: &[u32],
        cold: &[bool],
        ks: &[usize],
    ) -> Result<RetrievalMetrics> {
        if lists.len() != targets.len() || cold.len() != targets.len() {
            return Err(Error::shape(
                "retrieval metrics",
                format!(
                    "{} lists, {} targets and {} cold flags must be one per user",
                    lists.len(),
                    targets.len(),
                    cold.len()
                ),
            ));
        }
        if ks.contains(&0) {
            return Err(Error::Invalid(
                "retrieval metrics: K must be at least 1".into(),
            ));
        }
        let mut ks = ks.to_vec();
        ks.sort_unstable();
        ks.dedup();
        let ranks: Vec<Option<usize>> = lists
            .iter()
            .zip(targets)
            .map(|(l, &t)| rank_of(l, t))
            .collect();
        let mean = |sel: &dyn Fn(usize) -> bool, f: &dyn Fn(Option<usize>) -> f64| {
            let (mut s, mut n) = (0.0, 0usize);
            for (u, &r) in ranks.iter().enumerate() {
                if sel(u) {
                    s += f(r);
                    n += 1;
                }
            }
            (n > 0).then(|| s / n as f64)
        };
        let all = |_: usize| true;
        let is_cold = |u: usize| cold[u];
        let hit = |k: usize| move |r: Option<usize>| f64::from(matches!(r, Some(r) if r < k));
        let gain = |k: usize| move |r: Option<usize>| ndcg_at(r, k);
        Ok(RetrievalMetrics {
            users: targets.len(),
            cold_users: cold.iter().filter(|&&c| c).count(),
            recall: ks
                .iter()
                .map(|&k| (k, mean(&all, &hit(k)).unwrap_or(0.0)))
                .collect(),
            ndcg: ks
                .iter()
                .map(|&k| (k, mean(&all, &gain(k)).unwrap_or(0.0)))
                .collect(),
            cold_recall: ks.iter().map(|&k| (k, mean(&is_cold, &hit(k)))).collect(),
            cold_ndcg: ks.iter().map(|&k| (k, mean(&is_cold, &gain(k)))).collect(),
        })
    }

    /// Recall@K, if K was computed.
    pub fn recall_at(&self, k: usize) -> Option<f64> {
        self.recall.iter().find(|(kk, _)| *kk == k).map(|p| p.1)
    }

    /// NDCG@K, if K was computed.
    pub fn ndcg_at(&self, k: usize) -> Option<f64> {
        self.ndcg.iter().find(|(kk, _)| *kk == k).map(|p| p.1)
    }
}
