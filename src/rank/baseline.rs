//! The popularity baseline every ranking run is held against: an item's smoothed rate of
//! positive training events, with no user information at all.
//!
//! A learned ranker that does not beat this has learned nothing about users: on MovieLens a
//! good film is rated highly by almost everyone, so item quality alone already gives an AUC far
//! above one half. The score is the logit of `(positives + m·r) / (events + m)`, with `r` the
//! training split's positive rate and `m` = [`PRIOR_EVENTS`] pseudo-events, so it is a
//! calibrated probability whose logloss means something, an item seen once is not ranked
//! first for one lucky positive, and a never-seen (cold) item scores the global rate.
//! Only the training split is counted: the validation and test labels are never seen.

use super::protocol::{RankProtocol, SplitName};
use crate::error::Result;
use crate::metrics::ranking::RankingMetrics;
use serde::{Deserialize, Serialize};

/// Pseudo-events of the prior that shrinks an item's positive rate toward the global one.
pub const PRIOR_EVENTS: f64 = 10.0;

/// Per-item logits of the popularity baseline fitted on a protocol's training split.
#[derive(Clone, Debug, PartialEq)]
pub struct Popularity {
    logits: Vec<f32>,
}

impl Popularity {
    /// Counts each item's training events and positives (labels are 0/1 in a protocol).
    pub fn fit(p: &RankProtocol) -> Popularity {
        let n = p.n_items();
        let (mut events, mut pos) = (vec![0u64; n], vec![0u64; n]);
        let items = p.items(SplitName::Train);
        let labels = p.labels(SplitName::Train);
        for (&i, &l) in items.iter().zip(labels) {
            events[i as usize] += 1;
            pos[i as usize] += (l > 0.5) as u64;
        }
        let total = items.len().max(1) as f64;
        let rate = (pos.iter().sum::<u64>() as f64 / total).clamp(1e-6, 1.0 - 1e-6);
        let logits = events
            .iter()
            .zip(&pos)
            .map(|(&e, &q)| {
                let r = (q as f64 + PRIOR_EVENTS * rate) / (e as f64 + PRIOR_EVENTS);
                let r = r.clamp(1e-6, 1.0 - 1e-6);
                (r / (1.0 - r)).ln() as f32
            })
            .collect();
        Popularity { logits }
    }

    /// The logit of every item of the vocabulary.
    pub fn item_logits(&self) -> &[f32] {
        &self.logits
    }

    /// The baseline's logits for the samples of `split`.
    pub fn score(&self, p: &RankProtocol, split: SplitName) -> Vec<f32> {
        p.items(split)
            .iter()
            .map(|&i| self.logits[i as usize])
            .collect()
    }
}

/// The popularity baseline's metrics on the validation and test splits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaselineMetrics {
    /// Validation split.
    pub valid: RankingMetrics,
    /// Test split.
    pub test: RankingMetrics,
}

/// Fits [`Popularity`] on `p` and scores both held-out splits.
pub fn popularity_metrics(p: &RankProtocol) -> Result<BaselineMetrics> {
    let pop = Popularity::fit(p);
    let m = |split| {
        RankingMetrics::compute(
            p.users(split),
            p.labels(split),
            &pop.score(p, split),
            &p.cold_flags(split),
        )
    };
    Ok(BaselineMetrics {
        valid: m(SplitName::Valid)?,
        test: m(SplitName::Test)?,
    })
}
