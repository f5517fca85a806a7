//! Train / validation / test splits of an interaction log, and seeded negative sampling.
//!
//! Every split is deterministic. "Time order" means the order of `(timestamp, row position)`:
//! events with equal timestamps keep their order in the log. Split events keep the user and
//! item numbering of the source [`Interactions`].

use super::types::{Interaction, Interactions};
use crate::error::{Error, Result};
use crate::rng::Rng;

/// The events of a split, each set in time order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Split {
    /// Training events.
    pub train: Vec<Interaction>,
    /// Validation events.
    pub valid: Vec<Interaction>,
    /// Test events.
    pub test: Vec<Interaction>,
}

/// A split with its cold items reported apart.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ColdSplit {
    /// The cold items, ascending.
    pub cold_items: Vec<u32>,
    /// Warm training, validation and test events (no validation or test event names a cold
    /// item).
    pub warm: Split,
    /// Validation events on cold items.
    pub cold_valid: Vec<Interaction>,
    /// Test events on cold items.
    pub cold_test: Vec<Interaction>,
}

/// Fails if an event's user or item index is outside the log's vocabularies.
fn check_indices(inter: &Interactions) -> Result<()> {
    let (nu, ni) = (inter.users.len(), inter.items.len());
    match inter
        .rows
        .iter()
        .find(|e| e.user as usize >= nu || e.item as usize >= ni)
    {
        Some(e) => Err(Error::Invalid(format!(
            "event (user {}, item {}) is outside {nu} users x {ni} items",
            e.user, e.item
        ))),
        None => Ok(()),
    }
}

/// Row positions of `rows` sorted by `(timestamp, position)`.
fn time_order(rows: &[Interaction]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..rows.len()).collect();
    idx.sort_by_key(|&i| (rows[i].timestamp, i));
    idx
}

fn leave_one_out_rows(rows: &[Interaction], n_users: usize, min_events: usize) -> Split {
    let mut per_user: Vec<Vec<usize>> = vec![Vec::new(); n_users];
    for i in time_order(rows) {
        per_user[rows[i].user as usize].push(i);
    }
    let mut role = vec![0u8; rows.len()];
    for events in per_user.iter().filter(|e| e.len() >= min_events) {
        role[events[events.len() - 1]] = 2;
        role[events[events.len() - 2]] = 1;
    }
    let mut s = Split::default();
    for i in time_order(rows) {
        match role[i] {
            0 => s.train.push(rows[i]),
            1 => s.valid.push(rows[i]),
            _ => s.test.push(rows[i]),
        }
    }
    s
}

/// Leave-one-out by time: for each user with at least `min_events` events, the last event goes
/// to test and the one before it to validation, the rest to train; users with fewer events stay
/// wholly in train. `min_events` must be at least 3, so every held-out user keeps one
/// training event.
pub fn leave_one_out(inter: &Interactions, min_events: usize) -> Result<Split> {
    if min_events < 3 {
        return Err(Error::Invalid(format!(
            "leave-one-out needs min_events >= 3 (one train, one validation, one test), got {min_events}"
        )));
    }
    check_indices(inter)?;
    Ok(leave_one_out_rows(
        &inter.rows,
        inter.users.len(),
        min_events,
    ))
}

/// Global temporal split by fraction: all events in time order, the last `test_frac` of them
/// to test, the `valid_frac` before those to validation, the rest to train (counts rounded
/// down). Both fractions must be in `[0, 1)` with a sum below 1.
pub fn temporal_split(inter: &Interactions, valid_frac: f64, test_frac: f64) -> Result<Split> {
    let ok = |f: f64| (0.0..1.0).contains(&f);
    if !ok(valid_frac) || !ok(test_frac) || valid_frac + test_frac >= 1.0 {
        return Err(Error::Invalid(format!(
            "temporal split fractions must be in [0, 1) with a sum below 1, got valid {valid_frac}, test {test_frac}"
        )));
    }
    let n = inter.rows.len();
    let n_test = (n as f64 * test_frac) as usize;
    let n_valid = (n as f64 * valid_frac) as usize;
    let order = time_order(&inter.rows);
    let (train_end, valid_end) = (n - n_test - n_valid, n - n_test);
    let take = |r: std::ops::Range<usize>| order[r].iter().map(|&i| inter.rows[i]).collect();
    Ok(Split {
        train: take(0..train_end),
        valid: take(train_end..valid_end),
        test: take(valid_end..n),
    })
}

/// Global temporal split at timestamps: events before `valid_from` to train, from `valid_from`
/// up to (not including) `test_from` to validation, from `test_from` on to test.
pub fn temporal_split_at(inter: &Interactions, valid_from: i64, test_from: i64) -> Result<Split> {
    if valid_from > test_from {
        return Err(Error::Invalid(format!(
            "valid_from ({valid_from}) must not be after test_from ({test_from})"
        )));
    }
    let mut s = Split::default();
    for i in time_order(&inter.rows) {
        let e = inter.rows[i];
        if e.timestamp < valid_from {
            s.train.push(e);
        } else if e.timestamp < test_from {
            s.valid.push(e);
        } else {
            s.test.push(e);
        }
    }
    Ok(s)
}

/// Cold items by count: items (of `0..n_items`) with fewer than `min_train` training events in
/// `split` are cold. Their training events stay in train; their validation and test events
/// move to `cold_valid` / `cold_test`, so warm and cold metrics are reported apart.
pub fn cold_by_train_count(split: &Split, n_items: usize, min_train: usize) -> Result<ColdSplit> {
    let mut count = vec![0usize; n_items];
    for e in split.train.iter().chain(&split.valid).chain(&split.test) {
        if e.item as usize >= n_items {
            return Err(Error::Invalid(format!(
                "event names item {} but there are {n_items} items",
                e.item
            )));
        }
    }
    for e in &split.train {
        count[e.item as usize] += 1;
    }
    let cold: Vec<bool> = count.iter().map(|&c| c < min_train).collect();
    let part = |v: &[Interaction]| -> (Vec<Interaction>, Vec<Interaction>) {
        v.iter().partition(|e| !cold[e.item as usize])
    };
    let (valid, cold_valid) = part(&split.valid);
    let (test, cold_test) = part(&split.test);
    Ok(ColdSplit {
        cold_items: (0..n_items as u32).filter(|&i| cold[i as usize]).collect(),
        warm: Split {
            train: split.train.clone(),
            valid,
            test,
        },
        cold_valid,
        cold_test,
    })
}

/// Cold items held out entirely: a seeded random `frac` of the items that have events
/// (rounded, at least one when `frac > 0`) is removed from training. The warm events are split
/// leave-one-out (`min_events`, see [`leave_one_out`]). The held-out items are split in two
/// disjoint halves: all events on the first `k / 2` (in the seeded order) go to `cold_valid`,
/// all events on the rest to `cold_test`. No cold item appears in `warm`.
pub fn hold_out_items(
    inter: &Interactions,
    frac: f64,
    seed: u64,
    min_events: usize,
) -> Result<ColdSplit> {
    if !(0.0..1.0).contains(&frac) {
        return Err(Error::Invalid(format!(
            "held-out item fraction must be in [0, 1), got {frac}"
        )));
    }
    if min_events < 3 {
        return Err(Error::Invalid(format!(
            "leave-one-out needs min_events >= 3, got {min_events}"
        )));
    }
    check_indices(inter)?;
    let n_items = inter.items.len();
    let mut seen = vec![false; n_items];
    for e in &inter.rows {
        seen[e.item as usize] = true;
    }
    let mut active: Vec<u32> = (0..n_items as u32).filter(|&i| seen[i as usize]).collect();
    Rng::new(seed).shuffle(&mut active);
    let k = ((active.len() as f64 * frac).round() as usize).max(usize::from(frac > 0.0));
    let k = k.min(active.len());
    // 0 = warm, 1 = cold validation, 2 = cold test.
    let mut class = vec![0u8; n_items];
    for (j, &i) in active[..k].iter().enumerate() {
        class[i as usize] = if j < k / 2 { 1 } else { 2 };
    }
    let order = time_order(&inter.rows);
    let mut warm_rows = Vec::new();
    let (mut cold_valid, mut cold_test) = (Vec::new(), Vec::new());
    for i in order {
        let e = inter.rows[i];
        match class[e.item as usize] {
            0 => warm_rows.push(e),
            1 => cold_valid.push(e),
            _ => cold_test.push(e),
        }
    }
    let mut cold_items = active[..k].to_vec();
    cold_items.sort_unstable();
    Ok(ColdSplit {
        cold_items,
        warm: leave_one_out_rows(&warm_rows, inter.users.len(), min_events),
        cold_valid,
        cold_test,
    })
}

/// Seeded negative sampling: items a user never interacted with.
#[derive(Clone, Debug)]
pub struct NegativeSampler {
    n_items: usize,
    /// Each user's positive items, sorted and unique.
    positives: Vec<Vec<u32>>,
}

impl NegativeSampler {
    /// A sampler over items `0..n_items` for users `0..n_users`, where `positives` are the
    /// events that make an item positive for its user (usually the whole log, so that no
    /// validation or test item is drawn as a negative).
    pub fn new(n_users: usize, n_items: usize, positives: &[Interaction]) -> Result<Self> {
        let mut pos = vec![Vec::new(); n_users];
        for e in positives {
            if e.user as usize >= n_users || e.item as usize >= n_items {
                return Err(Error::Invalid(format!(
                    "event (user {}, item {}) is outside {n_users} users x {n_items} items",
                    e.user, e.item
                )));
            }
            pos[e.user as usize].push(e.item);
        }
        for p in &mut pos {
            p.sort_unstable();
            p.dedup();
        }
        Ok(NegativeSampler {
            n_items,
            positives: pos,
        })
    }

    /// Whether `item` is a positive of `user`.
    pub fn is_positive(&self, user: u32, item: u32) -> bool {
        self.positives
            .get(user as usize)
            .is_some_and(|p| p.binary_search(&item).is_ok())
    }

    /// `k` distinct negatives for `user`, drawn from `rng`. Fails if the user has fewer than
    /// `k` non-positive items.
    pub fn sample(&self, user: u32, k: usize, rng: &mut Rng) -> Result<Vec<u32>> {
        let pos = self
            .positives
            .get(user as usize)
            .ok_or_else(|| Error::Invalid(format!("user {user} is out of range")))?;
        let free = self.n_items - pos.len();
        if k > free {
            return Err(Error::Invalid(format!(
                "user {user} has {free} non-positive items, {k} negatives asked"
            )));
        }
        if k * 2 <= free {
            // Rejection sampling while negatives are plentiful.
            let mut out: Vec<u32> = Vec::with_capacity(k);
            while out.len() < k {
                let i = rng.below(self.n_items) as u32;
                if pos.binary_search(&i).is_err() && !out.contains(&i) {
                    out.push(i);
                }
            }
            Ok(out)
        } else {
            // Partial Fisher-Yates over the complement.
            let mut cand: Vec<u32> = (0..self.n_items as u32)
                .filter(|i| pos.binary_search(i).is_err())
                .collect();
            for j in 0..k {
                let r = j + rng.below(cand.len() - j);
                cand.swap(j, r);
            }
            cand.truncate(k);
            Ok(cand)
        }
    }

    /// `k` negatives for the user of each event, row-major `[events.len(), k]`, from one
    /// generator seeded with `seed`: the same seed and events give the same negatives.
    pub fn sample_for(&self, events: &[Interaction], k: usize, seed: u64) -> Result<Vec<u32>> {
        let mut rng = Rng::new(seed);
        let mut out = Vec::with_capacity(events.len() * k);
        for e in events {
            out.extend(self.sample(e.user, k, &mut rng)?);
        }
        Ok(out)
    }
}
