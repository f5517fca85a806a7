//! Ranking metrics of a click model, computed exactly on the CPU: AUC, cold AUC, GAUC and
//! logloss (issue 12).
//!
//! - **AUC** is the Mann–Whitney statistic: the probability that a random positive scores
//!   above a random negative, ties counting one half. It is computed from midranks (sort by
//!   score, each group of equal scores gets the mean of its ranks), with the rank sums in
//!   integers (doubled midranks are integers), so the only rounding is the final division.
//!   Equal scores are equal under `==`: `-0.0` and `0.0` tie.
//! - **GAUC** is the mean of the per-user AUCs over the users that have both a positive and
//!   a negative sample, each weighted by that user's number of samples (DIN's definition;
//!   users with one class have no AUC and drop out, their samples too).
//! - **Logloss** is the mean binary cross-entropy of `sigmoid(logit)`, computed from the logit
//!   as `max(x, 0) − x·y + log1p(exp(−|x|))` in f64, so a logit of ±100 costs 100, not `inf`.
//! - **Cold AUC** is the AUC over the samples flagged cold.
//!
//! Labels are 0.0 or 1.0 (anything else is an error). Scores must be finite: a NaN would sort
//! arbitrarily and make the AUC meaningless, so it is refused with the index of the first one.
//! An AUC with no positive or no negative sample is `None` (JSON `null`), not an error, since
//! a small cold set may well hold one class only.
//!
//! ```
//! use semid::metrics::ranking::{auc, RankingMetrics};
//! assert_eq!(auc(&[0.0, 1.0, 0.0, 1.0], &[0.1, 0.4, 0.4, 0.9]).unwrap(), Some(0.875));
//! let m = RankingMetrics::compute(&[0, 0, 1, 1], &[0.0, 1.0, 0.0, 1.0], &[-1.0, 1.0, 2.0, 3.0], &[false; 4]).unwrap();
//! assert_eq!((m.gauc, m.users_in_gauc), (Some(1.0), 2));
//! ```

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Fails unless `labels` and `scores` have the same length, every label is 0 or 1 and every
/// score is finite.
fn check(what: &str, labels: &[f32], scores: &[f32]) -> Result<()> {
    if labels.len() != scores.len() {
        return Err(Error::shape(
            "ranking metrics",
            format!(
                "{what}: {} labels but {} scores",
                labels.len(),
                scores.len()
            ),
        ));
    }
    if let Some(i) = labels.iter().position(|&l| l != 0.0 && l != 1.0) {
        return Err(Error::Invalid(format!(
            "{what}: label {i} is {}; labels must be 0 or 1",
            labels[i]
        )));
    }
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        return Err(Error::Invalid(format!(
            "{what}: score {i} is {}; scores must be finite (did the model diverge?)",
            scores[i]
        )));
    }
    Ok(())
}

/// AUC of `(score, positive)` pairs, reordered in place; `None` with one class only. The
/// pairs are known finite.
fn auc_pairs(pairs: &mut [(f32, bool)]) -> Option<f64> {
    let pos = pairs.iter().filter(|p| p.1).count() as u128;
    let neg = pairs.len() as u128 - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    pairs.sort_unstable_by(|a, b| a.0.partial_cmp(&b.0).expect("finite scores"));
    // Sum over positives of twice their midrank: a tie group at sorted positions i..j holds
    // ranks i+1..=j, whose mean doubled is i + 1 + j, an integer.
    let mut rank2_sum: u128 = 0;
    let mut i = 0;
    while i < pairs.len() {
        let mut j = i + 1;
        while j < pairs.len() && pairs[j].0 == pairs[i].0 {
            j += 1;
        }
        let group_pos = pairs[i..j].iter().filter(|p| p.1).count() as u128;
        rank2_sum += group_pos * (i as u128 + 1 + j as u128);
        i = j;
    }
    // U = R − P(P+1)/2, AUC = U / (P·N); both doubled to stay in integers.
    let u2 = rank2_sum - pos * (pos + 1);
    Some(u2 as f64 / (2 * pos * neg) as f64)
}

/// Exact AUC with ties averaged; `Ok(None)` when there is no positive or no negative sample.
/// Errors on mismatched lengths, labels other than 0/1, or non-finite scores.
pub fn auc(labels: &[f32], scores: &[f32]) -> Result<Option<f64>> {
    check("auc", labels, scores)?;
    let mut pairs: Vec<(f32, bool)> = scores
        .iter()
        .zip(labels)
        .map(|(&s, &l)| (s, l == 1.0))
        .collect();
    Ok(auc_pairs(&mut pairs))
}

/// GAUC and how many users it averages over.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gauc {
    /// The sample-weighted mean of per-user AUCs; `None` when no user has both labels.
    pub value: Option<f64>,
    /// Users with both labels (those the mean runs over).
    pub users: usize,
    /// Samples of those users (the sum of the weights).
    pub samples: usize,
}

/// GAUC: the mean of per-user AUCs (ties averaged) over users with both labels, each weighted
/// by its number of samples. `users` are any ids (indices of a vocabulary).
pub fn gauc(users: &[u32], labels: &[f32], scores: &[f32]) -> Result<Gauc> {
    check("gauc", labels, scores)?;
    if users.len() != labels.len() {
        return Err(Error::shape(
            "ranking metrics",
            format!("gauc: {} users but {} labels", users.len(), labels.len()),
        ));
    }
    let mut by_user: Vec<(u32, f32, bool)> = users
        .iter()
        .zip(scores.iter().zip(labels))
        .map(|(&u, (&s, &l))| (u, s, l == 1.0))
        .collect();
    by_user.sort_unstable_by_key(|t| t.0);
    let (mut weighted, mut n_users, mut n_samples) = (0.0f64, 0usize, 0usize);
    let mut pairs = Vec::new();
    for group in by_user.chunk_by(|a, b| a.0 == b.0) {
        pairs.clear();
        pairs.extend(group.iter().map(|t| (t.1, t.2)));
        if let Some(a) = auc_pairs(&mut pairs) {
            weighted += a * group.len() as f64;
            n_users += 1;
            n_samples += group.len();
        }
    }
    Ok(Gauc {
        value: (n_samples > 0).then(|| weighted / n_samples as f64),
        users: n_users,
        samples: n_samples,
    })
}

/// Mean binary cross-entropy of `sigmoid(logits)` against `labels`, from the logits in the
/// stable form `max(x, 0) − x·y + log1p(exp(−|x|))`, accumulated in f64. Errors on an empty
/// input, mismatched lengths, labels other than 0/1, or non-finite logits.
pub fn logloss(labels: &[f32], logits: &[f32]) -> Result<f64> {
    check("logloss", labels, logits)?;
    if labels.is_empty() {
        return Err(Error::Invalid("logloss of no samples".into()));
    }
    let sum: f64 = logits
        .iter()
        .zip(labels)
        .map(|(&x, &y)| {
            let (x, y) = (f64::from(x), f64::from(y));
            x.max(0.0) - x * y + (-x.abs()).exp().ln_1p()
        })
        .sum();
    Ok(sum / labels.len() as f64)
}

/// The ranking metrics of one set of samples (a split), as `predictions.csv` and the reports
/// give them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankingMetrics {
    /// AUC over all samples; `None` with one class only.
    pub auc: Option<f64>,
    /// AUC over the cold samples; `None` when they hold one class only (or none).
    pub cold_auc: Option<f64>,
    /// Sample-weighted mean per-user AUC; `None` when no user has both labels.
    pub gauc: Option<f64>,
    /// Mean binary cross-entropy of the probabilities `sigmoid(score)`.
    pub logloss: f64,
    /// Samples.
    pub n: usize,
    /// Cold samples.
    pub n_cold: usize,
    /// Users with both labels, over which GAUC is taken.
    pub users_in_gauc: usize,
}

impl RankingMetrics {
    /// All the metrics of samples given as parallel slices: the user of each sample (any
    /// ids), its label (0/1), its logit (the model's score before the sigmoid) and whether
    /// its item is cold. Errors on mismatched lengths, no samples, labels other than 0/1, or
    /// a non-finite logit.
    pub fn compute(
        users: &[u32],
        labels: &[f32],
        logits: &[f32],
        cold: &[bool],
    ) -> Result<RankingMetrics> {
        if cold.len() != labels.len() {
            return Err(Error::shape(
                "ranking metrics",
                format!("{} cold flags but {} labels", cold.len(), labels.len()),
            ));
        }
        let ll = logloss(labels, logits)?;
        let g = gauc(users, labels, logits)?;
        let (mut cold_labels, mut cold_scores) = (Vec::new(), Vec::new());
        for ((&l, &s), _) in labels.iter().zip(logits).zip(cold).filter(|(_, &c)| c) {
            cold_labels.push(l);
            cold_scores.push(s);
        }
        Ok(RankingMetrics {
            auc: auc(labels, logits)?,
            cold_auc: auc(&cold_labels, &cold_scores)?,
            gauc: g.value,
            logloss: ll,
            n: labels.len(),
            n_cold: cold_labels.len(),
            users_in_gauc: g.users,
        })
    }

    /// The metrics as pretty-printed JSON (`null` for an AUC that does not exist).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("RankingMetrics holds only numbers")
    }
}

impl std::fmt::Display for RankingMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let o = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.4}"));
        write!(
            f,
            "auc {} cold_auc {} gauc {} logloss {:.4} (n {}, cold {}, users in gauc {})",
            o(self.auc),
            o(self.cold_auc),
            o(self.gauc),
            self.logloss,
            self.n,
            self.n_cold,
            self.users_in_gauc
        )
    }
}
