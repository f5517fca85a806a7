//! The ranking protocol of issue 12 on a rated log (MovieLens-1M: `label` holds the rating).
//!
//! - **Samples.** Every event is a sample; its label is 1 when the rating is at least
//!   [`ProtocolConfig::positive_threshold`] (4), else 0.
//! - **Order.** Events are ordered by `(timestamp, row)`, `row` being the event's position in
//!   [`Interactions::rows`] (its line in the file): a stable sort, so events with the same
//!   timestamp keep their order in the log. Every other rule below uses this one total order.
//! - **Split.** In that order, globally: the last `⌊n · test_frac⌋` events are the test split,
//!   the `⌊n · valid_frac⌋` before them the validation split, the rest (`n` minus both, so the
//!   rounding surplus) the training split. With the defaults (0.1, 0.1) that is "first 80%,
//!   next 10%, last 10%"; ML-1M's 1,000,209 ratings give 800,169 / 100,020 / 100,020. The
//!   products are snapped to the nearest integer when within `1e-9` of it, so a fraction such
//!   as 0.57 (stored as 0.56999…) still gives `⌊100 · 0.57⌋ = 57`, not 56. An empty split is
//!   an [`Error::EmptySplit`] naming the split and the counts.
//! - **History.** The history of an event is the user's last ≤ `H` ([`ProtocolConfig::history`],
//!   20) *positive* events strictly before it **in the `(timestamp, row)` order**, oldest first.
//!   Events of every split count: a test event's history holds the user's earlier positive
//!   validation and test events too, since their labels are in the past when it happens.
//!   Two events of a user with the same timestamp: the later row sees the earlier one (when
//!   positive), never the other way round. See [`RankProtocol::build`] for why.
//! - **Cold items.** An item is cold when it has fewer than
//!   [`ProtocolConfig::cold_min_train`] (30) training events, positive or negative; items of
//!   the vocabulary that no training event names (count 0) are cold. Every sample carries the
//!   flag of its item ([`Batch::cold`]); cold AUC is computed over the flagged samples.
//!
//! Storage is linear in the events: each user's positive items once, in order, and per sample
//! the end of its history in that list (a history is a window of at most `H` entries ending
//! there), so the ML-1M protocol takes about 20 MB instead of a 1M × 20 table. On ML-1M the
//! defaults give positive rates 0.579 / 0.578 / 0.544 (train / validation / test), 1,210
//! cold items, cold shares 1.4% / 1.6% / 2.9% and mean histories 17.7 / 18.0 / 19.7.
//! [`RankProtocol::batch`] expands a batch into the padded `[batch, H]` array a model reads.

use crate::data::types::Interactions;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Range;

/// The padding value of [`Batch::hist`] past a row's [`Batch::hist_len`]. It is item 0, a real
/// item index, so an embedding gather never reads out of bounds; models mask padded positions
/// by the lengths, never by this value.
pub const HIST_PAD: u32 = 0;

/// One of the three splits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitName {
    /// The first events in time.
    Train,
    /// The events after training.
    Valid,
    /// The last events in time.
    Test,
}

impl SplitName {
    /// The three splits in time order.
    pub const ALL: [SplitName; 3] = [SplitName::Train, SplitName::Valid, SplitName::Test];

    /// `train`, `valid` or `test`: the name in `predictions.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            SplitName::Train => "train",
            SplitName::Valid => "valid",
            SplitName::Test => "test",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for SplitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SplitName {
    type Err = Error;
    /// Parses `train`, `valid` (or `validation`) and `test`.
    fn from_str(s: &str) -> Result<SplitName> {
        match s {
            "train" => Ok(SplitName::Train),
            "valid" | "validation" => Ok(SplitName::Valid),
            "test" => Ok(SplitName::Test),
            _ => Err(Error::Invalid(format!(
                "`{}` is not a split (train, valid, test)",
                crate::data::fileio::snippet(s)
            ))),
        }
    }
}

/// Settings of the protocol, with the defaults (the PSRQ paper's ML-1M setting).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProtocolConfig {
    /// A rating at least this is a positive sample (label 1); below it, a negative one.
    pub positive_threshold: f32,
    /// Share of the events, in time order just before the test events, that form the
    /// validation split (count rounded down).
    pub valid_frac: f64,
    /// Share of the events, the last in time order, that form the test split (rounded down).
    pub test_frac: f64,
    /// `H`: the most positive events a history holds (the most recent ones).
    pub history: usize,
    /// An item with fewer training events than this (positive or negative) is cold.
    pub cold_min_train: usize,
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        ProtocolConfig {
            positive_threshold: 4.0,
            valid_frac: 0.1,
            test_frac: 0.1,
            history: 20,
            cold_min_train: 30,
        }
    }
}

impl ProtocolConfig {
    /// Fails on a non-finite threshold, or fractions outside `[0, 1)` or summing to 1 or
    /// more.
    pub fn check(&self) -> Result<()> {
        if !self.positive_threshold.is_finite() {
            return Err(Error::Invalid(format!(
                "rank protocol: the positive threshold must be finite, got {}",
                self.positive_threshold
            )));
        }
        let ok = |f: f64| (0.0..1.0).contains(&f);
        if !ok(self.valid_frac) || !ok(self.test_frac) || self.valid_frac + self.test_frac >= 1.0 {
            return Err(Error::Invalid(format!(
                "rank protocol: split fractions must be in [0, 1) with a sum below 1, got valid {}, test {}",
                self.valid_frac, self.test_frac
            )));
        }
        Ok(())
    }
}

/// `⌊n · frac⌋`, snapped to the nearest integer when within `1e-9` of it (relative), so that
/// a decimal fraction stored a hair below its value does not lose an event.
fn floor_share(n: usize, frac: f64) -> usize {
    let x = n as f64 * frac;
    let r = x.round();
    if (x - r).abs() <= 1e-9 * r.max(1.0) {
        r as usize
    } else {
        x.floor() as usize
    }
}

/// One expanded batch of samples, laid out for a model.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// `H`, the width of [`Batch::hist`].
    pub history: usize,
    /// Target item index per sample.
    pub items: Vec<u32>,
    /// User index per sample.
    pub users: Vec<u32>,
    /// 1.0 (positive) or 0.0 per sample.
    pub labels: Vec<f32>,
    /// Row-major `[batch, H]`: each row's history, oldest first, left-aligned, then
    /// [`HIST_PAD`] to the right.
    pub hist: Vec<u32>,
    /// Valid entries of each row of `hist` (0 to `H`).
    pub hist_len: Vec<u32>,
    /// Whether each sample's item is cold.
    pub cold: Vec<bool>,
}

/// The counts of one split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitSummary {
    /// Which split.
    pub split: SplitName,
    /// Samples.
    pub samples: usize,
    /// Positive samples.
    pub positives: usize,
    /// `positives / samples`.
    pub positive_rate: f64,
    /// Samples on cold items.
    pub cold_samples: usize,
    /// `cold_samples / samples`.
    pub cold_share: f64,
    /// Mean history length (0 to `H`).
    pub mean_history: f64,
    /// Samples with an empty history.
    pub empty_history: usize,
}

/// What the protocol made of a log; printed by `Display` as a small table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProtocolSummary {
    /// The settings.
    pub config: ProtocolConfig,
    /// Events (= samples).
    pub events: usize,
    /// Users of the vocabulary.
    pub users: usize,
    /// Items of the vocabulary.
    pub items: usize,
    /// Cold items of the vocabulary (never-seen items included).
    pub cold_items: usize,
    /// Train, validation, test.
    pub splits: Vec<SplitSummary>,
}

impl fmt::Display for ProtocolSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        writeln!(
            f,
            "{} events, {} users, {} items ({} cold: fewer than {} training events); label = rating >= {}; history <= {} positives",
            self.events, self.users, self.items, self.cold_items, c.cold_min_train,
            c.positive_threshold, c.history
        )?;
        writeln!(
            f,
            "{:<6} {:>10} {:>9} {:>8} {:>10} {:>8} {:>9}",
            "split", "samples", "pos.rate", "cold", "cold.share", "mean.H", "empty.H"
        )?;
        for s in &self.splits {
            writeln!(
                f,
                "{:<6} {:>10} {:>9.4} {:>8} {:>10.4} {:>8.3} {:>9}",
                s.split.as_str(),
                s.samples,
                s.positive_rate,
                s.cold_samples,
                s.cold_share,
                s.mean_history,
                s.empty_history
            )?;
        }
        Ok(())
    }
}

/// The protocol built from one log: samples in `(timestamp, row)` order, the three splits as
/// consecutive ranges of that order, histories and cold flags.
#[derive(Clone, Debug, PartialEq)]
pub struct RankProtocol {
    config: ProtocolConfig,
    n_users: usize,
    /// `[0, train end, validation end, n]` in sample positions.
    bounds: [usize; 4],
    /// Per sample (position in the order): the event's row in the log.
    rows: Vec<u32>,
    users: Vec<u32>,
    items: Vec<u32>,
    labels: Vec<f32>,
    /// Per sample: the exclusive end of its history in `pos_items` (the user's positives
    /// strictly before it end there).
    hist_end: Vec<u32>,
    /// Per user `u`: its positives are `pos_items[user_start[u]..user_start[u + 1]]`, in order.
    user_start: Vec<u32>,
    pos_items: Vec<u32>,
    /// Training events per item.
    train_count: Vec<u32>,
    cold: Vec<bool>,
}

impl RankProtocol {
    /// Builds the protocol (see the module docs for every rule).
    ///
    /// "Strictly before" is strictly earlier in the `(timestamp, row)` order, not "at an
    /// earlier timestamp". Why: the split is cut in this order, so with the same order for
    /// histories a training sample's history holds only training events (the split is a
    /// prefix), and every history is exactly the user's positive sequence up to the sample,
    /// as a sequential model replays it; ties are common in ML-1M (users rate in bursts: 529,046
    /// of its 1,000,209 ratings share their user and second with an earlier one), and "earlier
    /// timestamp" would make a burst's events blind to
    /// each other, shortening histories for reasons of clock resolution only. The price is
    /// that within a second the file order decides which of two events is first; it is
    /// deterministic and the same for every model compared.
    ///
    /// Errors: invalid settings, an event whose user or item is outside the vocabularies, a
    /// non-finite rating, more than `u32::MAX` events, and an empty split
    /// ([`Error::EmptySplit`]).
    pub fn build(inter: &Interactions, config: &ProtocolConfig) -> Result<RankProtocol> {
        config.check()?;
        let n = inter.rows.len();
        if n > u32::MAX as usize || inter.items.len() > u32::MAX as usize {
            return Err(Error::Invalid(format!(
                "rank protocol: {n} events over {} items; at most {} of each fit the u32 indices a model reads",
                inter.items.len(),
                u32::MAX
            )));
        }
        let (n_users, n_items) = (inter.users.len(), inter.items.len());
        for (row, e) in inter.rows.iter().enumerate() {
            if e.user as usize >= n_users || e.item as usize >= n_items {
                return Err(Error::Invalid(format!(
                    "rank protocol: event {row} (user {}, item {}) is outside {n_users} users x {n_items} items",
                    e.user, e.item
                )));
            }
            if !e.label.is_finite() {
                return Err(Error::Invalid(format!(
                    "rank protocol: event {row} has the rating {}; ratings must be finite",
                    e.label
                )));
            }
        }
        let n_test = floor_share(n, config.test_frac);
        let n_valid = floor_share(n, config.valid_frac);
        let n_train = n - n_test - n_valid;
        for (split, count) in [
            ("train", n_train),
            ("validation", n_valid),
            ("test", n_test),
        ] {
            if count == 0 {
                return Err(Error::EmptySplit {
                    split,
                    events: n,
                    train: n_train,
                    valid: n_valid,
                    test: n_test,
                });
            }
        }
        let bounds = [0, n_train, n_train + n_valid, n];

        // The one order: a stable sort by timestamp is the (timestamp, row) order.
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_by_key(|&r| inter.rows[r as usize].timestamp);

        let positive = |r: u32| inter.rows[r as usize].label >= config.positive_threshold;
        let mut user_start = vec![0u32; n_users + 1];
        for &r in &order {
            if positive(r) {
                user_start[inter.rows[r as usize].user as usize + 1] += 1;
            }
        }
        for u in 0..n_users {
            user_start[u + 1] += user_start[u];
        }
        let mut filled = vec![0u32; n_users];
        let mut pos_items = vec![0u32; user_start[n_users] as usize];
        let (mut users, mut items, mut labels, mut hist_end) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for &r in &order {
            let e = inter.rows[r as usize];
            let u = e.user as usize;
            let end = user_start[u] + filled[u];
            // The end is taken before the event itself joins the list: its history holds
            // only what came strictly before it.
            hist_end.push(end);
            let pos = positive(r);
            if pos {
                pos_items[end as usize] = e.item;
                filled[u] += 1;
            }
            users.push(e.user);
            items.push(e.item);
            labels.push(if pos { 1.0 } else { 0.0 });
        }
        let mut train_count = vec![0u32; n_items];
        for &i in &items[..n_train] {
            train_count[i as usize] += 1;
        }
        let cold = train_count
            .iter()
            .map(|&c| (c as usize) < config.cold_min_train)
            .collect();
        Ok(RankProtocol {
            config: config.clone(),
            n_users,
            bounds,
            rows: order,
            users,
            items,
            labels,
            hist_end,
            user_start,
            pos_items,
            train_count,
            cold,
        })
    }

    /// The settings it was built with.
    pub fn config(&self) -> &ProtocolConfig {
        &self.config
    }

    /// Samples in all splits.
    pub fn total(&self) -> usize {
        self.bounds[3]
    }

    /// The sample positions of `split` in the `(timestamp, row)` order: `0..train`,
    /// `train..train + valid`, then the rest.
    pub fn range(&self, split: SplitName) -> Range<usize> {
        self.bounds[split.index()]..self.bounds[split.index() + 1]
    }

    /// Samples in `split`.
    pub fn len(&self, split: SplitName) -> usize {
        self.range(split).len()
    }

    /// Users of the vocabulary.
    pub fn n_users(&self) -> usize {
        self.n_users
    }

    /// Items of the vocabulary.
    pub fn n_items(&self) -> usize {
        self.cold.len()
    }

    /// The log rows of `split`'s samples, in order (sample `i` of the split is event
    /// `rows(split)[i]` of the log).
    pub fn rows(&self, split: SplitName) -> &[u32] {
        &self.rows[self.range(split)]
    }

    /// The users of `split`'s samples.
    pub fn users(&self, split: SplitName) -> &[u32] {
        &self.users[self.range(split)]
    }

    /// The target items of `split`'s samples.
    pub fn items(&self, split: SplitName) -> &[u32] {
        &self.items[self.range(split)]
    }

    /// The labels (1.0 or 0.0) of `split`'s samples.
    pub fn labels(&self, split: SplitName) -> &[f32] {
        &self.labels[self.range(split)]
    }

    /// Whether each of `split`'s samples is on a cold item.
    pub fn cold_flags(&self, split: SplitName) -> Vec<bool> {
        self.items(split)
            .iter()
            .map(|&i| self.cold[i as usize])
            .collect()
    }

    /// Per item of the vocabulary: whether it is cold.
    pub fn cold_items(&self) -> &[bool] {
        &self.cold
    }

    /// Per item of the vocabulary: its training events (positive or negative).
    pub fn train_counts(&self) -> &[u32] {
        &self.train_count
    }

    /// The history of sample `i` of `split`: item indices, oldest first, at most `H`.
    /// Panics when `i` is out of range (like slice indexing); [`RankProtocol::batch`] checks.
    pub fn history(&self, split: SplitName, i: usize) -> &[u32] {
        let p = self.range(split).start + i;
        assert!(
            p < self.range(split).end,
            "sample {i} is outside the {split} split"
        );
        let end = self.hist_end[p] as usize;
        let begin = self.user_start[self.users[p] as usize] as usize;
        &self.pos_items[begin.max(end.saturating_sub(self.config.history))..end]
    }

    /// The samples `indices` of `split` (indices into the split, any order, repeats allowed)
    /// laid out for a model. An index outside the split is an error.
    pub fn batch(&self, split: SplitName, indices: &[usize]) -> Result<Batch> {
        let len = self.len(split);
        if let Some(&bad) = indices.iter().find(|&&i| i >= len) {
            return Err(Error::Invalid(format!(
                "batch: sample {bad} is outside the {split} split of {len} samples"
            )));
        }
        let h = self.config.history;
        let start = self.range(split).start;
        let mut b = Batch {
            history: h,
            items: Vec::with_capacity(indices.len()),
            users: Vec::with_capacity(indices.len()),
            labels: Vec::with_capacity(indices.len()),
            hist: vec![HIST_PAD; indices.len() * h],
            hist_len: Vec::with_capacity(indices.len()),
            cold: Vec::with_capacity(indices.len()),
        };
        for (row, &i) in indices.iter().enumerate() {
            let p = start + i;
            let hist = self.history(split, i);
            b.items.push(self.items[p]);
            b.users.push(self.users[p]);
            b.labels.push(self.labels[p]);
            b.hist[row * h..row * h + hist.len()].copy_from_slice(hist);
            b.hist_len.push(hist.len() as u32);
            b.cold.push(self.cold[self.items[p] as usize]);
        }
        Ok(b)
    }

    /// Counts per split: samples, positive rate, cold share, mean history length.
    pub fn summary(&self) -> ProtocolSummary {
        let splits = SplitName::ALL
            .iter()
            .map(|&s| {
                let samples = self.len(s);
                let positives = self.labels(s).iter().filter(|&&l| l > 0.5).count();
                let cold_samples = self.cold_flags(s).iter().filter(|&&c| c).count();
                let (mut total_h, mut empty) = (0usize, 0usize);
                for i in 0..samples {
                    let l = self.history(s, i).len();
                    total_h += l;
                    empty += usize::from(l == 0);
                }
                let share = |k: usize| k as f64 / samples.max(1) as f64;
                SplitSummary {
                    split: s,
                    samples,
                    positives,
                    positive_rate: share(positives),
                    cold_samples,
                    cold_share: share(cold_samples),
                    mean_history: share(total_h),
                    empty_history: empty,
                }
            })
            .collect();
        ProtocolSummary {
            config: self.config.clone(),
            events: self.total(),
            users: self.n_users,
            items: self.n_items(),
            cold_items: self.cold.iter().filter(|&&c| c).count(),
            splits,
        }
    }
}
