//! The retrieval protocol (issue 14): leave-one-out by time over every interaction.
//!
//! - **Interactions.** Every event of the log is an interaction, whatever its rating: retrieval
//!   predicts *what* a user watches next, not whether they liked it. A click log's
//!   0-labelled impressions are dropped ([`RetrievalConfig::min_label`]).
//! - **Order.** Each user's events are ordered by `(timestamp, row)` (row = position in the log),
//!   the same total order as the ranking protocol.
//! - **Split.** A user with at least [`RetrievalConfig::min_events`] (3) events gives their last
//!   event to test and the one before it to validation; the rest is their training sequence.
//!   Users with fewer events only train.
//! - **Histories.** The validation target's history is the training sequence; the test target's
//!   is the training sequence plus the validation item. Models read at most the last `H` items
//!   of a history ([`RetrievalConfig::history`]: 20 for TIGER, 200 for SASRec at the
//!   generative-recommenders protocol).
//! - **Ranking.** Every catalogue item is a candidate (never sampled negatives). With
//!   [`RetrievalConfig::filter_seen`] the items of the history are removed from a user's ranked
//!   list before the cut at K (a target the user had already seen is then a miss; MovieLens
//!   holds one rating per user and item, so there it never happens).
//! - **Cold items.** A target item with fewer than [`RetrievalConfig::cold_min_train`] (30)
//!   training events is cold; its users are also scored apart.

use crate::data::types::Interactions;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The settings of the protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrievalConfig {
    /// Users with fewer events than this only train (at least 3: one train, one valid, one test).
    pub min_events: usize,
    /// The most recent items a model reads.
    pub history: usize,
    /// Items with fewer training events than this are cold.
    pub cold_min_train: usize,
    /// Remove history items from a ranked list before the cut at K.
    pub filter_seen: bool,
    /// Events with a label below this are not interactions. `None` (the default) decides by
    /// the log: 1 when every label is 0 or 1 (a click log, whose 0-labelled impressions were
    /// not watched), else 0 (every rating counts, as for MovieLens).
    pub min_label: Option<f32>,
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        RetrievalConfig {
            min_events: 3,
            history: 20,
            cold_min_train: 30,
            filter_seen: true,
            min_label: None,
        }
    }
}

/// Which held-out event a user is scored on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvalSplit {
    /// The second-to-last event.
    Valid,
    /// The last event.
    Test,
    /// After the last event: what to recommend now (no target; the history is everything).
    Next,
}

impl EvalSplit {
    /// `valid` or `test`.
    pub fn as_str(self) -> &'static str {
        match self {
            EvalSplit::Valid => "valid",
            EvalSplit::Test => "test",
            EvalSplit::Next => "next",
        }
    }
}

/// Per-user sequences and held-out targets of one log.
#[derive(Clone, Debug)]
pub struct SeqProtocol {
    config: RetrievalConfig,
    n_items: usize,
    /// Each user's events, time order (train, then valid, then test for held-out users).
    seqs: Vec<Vec<u32>>,
    /// Whether the user's last two events are held out.
    held_out: Vec<bool>,
    train_counts: Vec<u32>,
}

impl SeqProtocol {
    /// Builds the protocol of `inter` (module docs).
    pub fn build(inter: &Interactions, config: &RetrievalConfig) -> Result<SeqProtocol> {
        if config.min_events < 3 {
            return Err(Error::Invalid(format!(
                "retrieval: min_events must be at least 3 (one train, one valid, one test event), not {}",
                config.min_events
            )));
        }
        if config.history == 0 {
            return Err(Error::Invalid(
                "retrieval: history must be at least 1".into(),
            ));
        }
        let (nu, ni) = (inter.users.len(), inter.items.len());
        let binary = inter.rows.iter().all(|r| r.label == 0.0 || r.label == 1.0);
        let min_label = config.min_label.unwrap_or(if binary { 1.0 } else { 0.0 });
        let mut order: Vec<usize> = (0..inter.rows.len()).collect();
        order.sort_by_key(|&i| (inter.rows[i].timestamp, i));
        let mut seqs: Vec<Vec<u32>> = vec![Vec::new(); nu];
        for i in order {
            let e = &inter.rows[i];
            if e.user as usize >= nu || e.item as usize >= ni {
                return Err(Error::Invalid(format!(
                    "retrieval: event {i} (user {}, item {}) is outside {nu} users x {ni} items",
                    e.user, e.item
                )));
            }
            if e.label >= min_label {
                seqs[e.user as usize].push(e.item);
            }
        }
        let held_out: Vec<bool> = seqs.iter().map(|s| s.len() >= config.min_events).collect();
        if !held_out.iter().any(|&h| h) {
            return Err(Error::Invalid(format!(
                "retrieval: no user has {} events, so nothing is held out for validation and test",
                config.min_events
            )));
        }
        let mut train_counts = vec![0u32; ni];
        for (s, &h) in seqs.iter().zip(&held_out) {
            for &it in &s[..s.len() - if h { 2 } else { 0 }] {
                train_counts[it as usize] += 1;
            }
        }
        Ok(SeqProtocol {
            config: config.clone(),
            n_items: ni,
            seqs,
            held_out,
            train_counts,
        })
    }

    /// The settings.
    pub fn config(&self) -> &RetrievalConfig {
        &self.config
    }

    /// Catalogue size.
    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// Users of the log.
    pub fn n_users(&self) -> usize {
        self.seqs.len()
    }

    /// A user's training sequence, time order.
    pub fn train_seq(&self, user: usize) -> &[u32] {
        let s = &self.seqs[user];
        &s[..s.len() - if self.held_out[user] { 2 } else { 0 }]
    }

    /// The users scored on `split`, ascending.
    pub fn eval_users(&self) -> Vec<u32> {
        (0..self.seqs.len() as u32)
            .filter(|&u| self.held_out[u as usize])
            .collect()
    }

    /// The held-out item of `user` on `split` (None for a train-only user).
    pub fn target(&self, split: EvalSplit, user: usize) -> Option<u32> {
        if !self.held_out[user] {
            return None;
        }
        let s = &self.seqs[user];
        match split {
            EvalSplit::Valid => Some(s[s.len() - 2]),
            EvalSplit::Test => Some(s[s.len() - 1]),
            EvalSplit::Next => None,
        }
    }

    /// Everything `user` did before the `split` target, time order (not cut to `H`).
    pub fn history(&self, split: EvalSplit, user: usize) -> &[u32] {
        let s = &self.seqs[user];
        match (self.held_out[user], split) {
            (_, EvalSplit::Next) | (false, _) => s,
            (true, EvalSplit::Valid) => &s[..s.len() - 2],
            (true, EvalSplit::Test) => &s[..s.len() - 1],
        }
    }

    /// The last at most `H` items of [`Self::history`]: what a model reads.
    pub fn window(&self, split: EvalSplit, user: usize) -> &[u32] {
        let h = self.history(split, user);
        &h[h.len().saturating_sub(self.config.history)..]
    }

    /// The items to drop from `user`'s ranked list on `split`: their whole history when
    /// [`RetrievalConfig::filter_seen`], else none.
    pub fn seen(&self, split: EvalSplit, user: usize) -> &[u32] {
        if self.config.filter_seen {
            self.history(split, user)
        } else {
            &[]
        }
    }

    /// Training events per item.
    pub fn train_counts(&self) -> &[u32] {
        &self.train_counts
    }

    /// Whether item `i` is cold.
    pub fn is_cold(&self, item: u32) -> bool {
        (self.train_counts[item as usize] as usize) < self.config.cold_min_train
    }

    /// Next-item training examples `(user, t)`: predict `train_seq(user)[t]` from the items
    /// before it, for every `t ≥ 1`, users ascending then `t` ascending.
    pub fn train_examples(&self) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        for u in 0..self.seqs.len() {
            for t in 1..self.train_seq(u).len() {
                out.push((u as u32, t as u32));
            }
        }
        out
    }

    /// Items ranked by training count, most first (ties: lower index): the popularity baseline.
    pub fn popularity(&self) -> Vec<u32> {
        let mut idx: Vec<u32> = (0..self.n_items as u32).collect();
        idx.sort_by_key(|&i| (std::cmp::Reverse(self.train_counts[i as usize]), i));
        idx
    }
}
