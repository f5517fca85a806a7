//! Split invariants: time order per user, disjointness, cold items, negatives, determinism.

use semid::data::splits::{
    cold_by_train_count, hold_out_items, leave_one_out, temporal_split, temporal_split_at,
};
use semid::data::{Interaction, Interactions, NegativeSampler, Split};
use semid::rng::Rng;
use semid::Error;
use std::collections::{HashMap, HashSet};

/// A random log: `users` users with 1..=12 events each over `items` items, timestamps with
/// ties, rows shuffled so that file order is not time order.
fn log(users: usize, items: usize, seed: u64) -> Interactions {
    let mut rng = Rng::new(seed);
    let mut rows = Vec::new();
    for u in 0..users {
        let n = 1 + rng.below(12);
        for _ in 0..n {
            rows.push(Interaction {
                user: u as u32,
                item: rng.below(items) as u32,
                label: 1.0,
                timestamp: rng.below(50) as i64,
            });
        }
    }
    rng.shuffle(&mut rows);
    Interactions {
        users: (0..users).map(|u| format!("u{u}")).collect(),
        items: (0..items).map(|i| format!("i{i}")).collect(),
        rows,
    }
}

/// A multiset of events, to check that a split is a partition of the log.
fn bag(rows: &[Interaction]) -> HashMap<(u32, u32, i64), usize> {
    let mut m = HashMap::new();
    for r in rows {
        *m.entry((r.user, r.item, r.timestamp)).or_insert(0) += 1;
    }
    m
}

fn all(s: &Split) -> Vec<Interaction> {
    s.train
        .iter()
        .chain(&s.valid)
        .chain(&s.test)
        .copied()
        .collect()
}

fn per_user(rows: &[Interaction]) -> HashMap<u32, Vec<Interaction>> {
    let mut m: HashMap<u32, Vec<Interaction>> = HashMap::new();
    for r in rows {
        m.entry(r.user).or_default().push(*r);
    }
    m
}

#[test]
fn leave_one_out_invariants() {
    let inter = log(200, 60, 1);
    let s = leave_one_out(&inter, 3).unwrap();
    assert_eq!(bag(&all(&s)), bag(&inter.rows), "a partition of the log");
    let counts = per_user(&inter.rows);
    let (train, valid, test) = (per_user(&s.train), per_user(&s.valid), per_user(&s.test));
    let mut held = 0;
    for (u, events) in &counts {
        let (v, t) = (
            valid.get(u).map_or(0, Vec::len),
            test.get(u).map_or(0, Vec::len),
        );
        if events.len() < 3 {
            assert_eq!(
                (v, t),
                (0, 0),
                "user {u} with {} events stays in train",
                events.len()
            );
            continue;
        }
        held += 1;
        assert_eq!((v, t), (1, 1));
        let (v, t) = (valid[u][0], test[u][0]);
        let latest_train = train[u].iter().map(|e| e.timestamp).max().unwrap();
        assert!(
            latest_train <= v.timestamp && v.timestamp <= t.timestamp,
            "user {u}"
        );
        // The test event is the user's latest.
        assert_eq!(
            t.timestamp,
            events.iter().map(|e| e.timestamp).max().unwrap()
        );
    }
    assert!(held > 100, "the test exercises held-out users ({held})");
    // Each set is in time order, and the split is deterministic.
    for set in [&s.train, &s.valid, &s.test] {
        assert!(set.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    }
    assert_eq!(leave_one_out(&inter, 3).unwrap(), s);
    // A higher threshold keeps more users in train.
    let s5 = leave_one_out(&inter, 5).unwrap();
    assert!(s5.test.len() < s.test.len());
    assert!(matches!(leave_one_out(&inter, 2), Err(Error::Invalid(_))));
}

#[test]
fn leave_one_out_breaks_timestamp_ties_by_file_order() {
    let ev = |item, t| Interaction {
        user: 0,
        item,
        label: 1.0,
        timestamp: t,
    };
    let inter = Interactions {
        users: vec!["u".into()],
        items: (0..4).map(|i| i.to_string()).collect(),
        rows: vec![ev(0, 5), ev(1, 5), ev(2, 5), ev(3, 1)],
    };
    let s = leave_one_out(&inter, 3).unwrap();
    assert_eq!(
        s.train.iter().map(|e| e.item).collect::<Vec<_>>(),
        vec![3, 0]
    );
    assert_eq!((s.valid[0].item, s.test[0].item), (1, 2));
}

#[test]
fn temporal_splits() {
    let inter = log(150, 40, 2);
    let n = inter.rows.len();
    let s = temporal_split(&inter, 0.1, 0.2).unwrap();
    assert_eq!(bag(&all(&s)), bag(&inter.rows));
    assert_eq!(
        (s.test.len(), s.valid.len()),
        ((n as f64 * 0.2) as usize, (n as f64 * 0.1) as usize)
    );
    let max_train = s.train.iter().map(|e| e.timestamp).max().unwrap();
    let min_valid = s.valid.iter().map(|e| e.timestamp).min().unwrap();
    let max_valid = s.valid.iter().map(|e| e.timestamp).max().unwrap();
    let min_test = s.test.iter().map(|e| e.timestamp).min().unwrap();
    assert!(max_train <= min_valid && max_valid <= min_test);
    assert_eq!(temporal_split(&inter, 0.1, 0.2).unwrap(), s);
    assert!(temporal_split(&inter, 0.5, 0.5).is_err());
    assert!(temporal_split(&inter, -0.1, 0.2).is_err());

    let s = temporal_split_at(&inter, 30, 40).unwrap();
    assert_eq!(bag(&all(&s)), bag(&inter.rows));
    assert!(s.train.iter().all(|e| e.timestamp < 30));
    assert!(s.valid.iter().all(|e| (30..40).contains(&e.timestamp)));
    assert!(s.test.iter().all(|e| e.timestamp >= 40));
    assert!(!s.train.is_empty() && !s.valid.is_empty() && !s.test.is_empty());
    assert!(temporal_split_at(&inter, 40, 30).is_err());
}

#[test]
fn cold_items_by_training_count() {
    let inter = log(120, 200, 3);
    let s = leave_one_out(&inter, 3).unwrap();
    let c = cold_by_train_count(&s, inter.items.len(), 2).unwrap();
    let mut train_count = vec![0; inter.items.len()];
    for e in &s.train {
        train_count[e.item as usize] += 1;
    }
    let cold: HashSet<u32> = c.cold_items.iter().copied().collect();
    for i in 0..inter.items.len() as u32 {
        assert_eq!(cold.contains(&i), train_count[i as usize] < 2, "item {i}");
    }
    assert!(c
        .cold_test
        .iter()
        .chain(&c.cold_valid)
        .all(|e| cold.contains(&e.item)));
    assert!(c
        .warm
        .test
        .iter()
        .chain(&c.warm.valid)
        .all(|e| !cold.contains(&e.item)));
    assert!(!c.cold_test.is_empty() && !c.warm.test.is_empty());
    assert_eq!(c.warm.train, s.train);
    assert_eq!(c.warm.test.len() + c.cold_test.len(), s.test.len());
    assert_eq!(c.warm.valid.len() + c.cold_valid.len(), s.valid.len());
}

#[test]
fn cold_items_held_out() {
    let inter = log(300, 100, 4);
    let c = hold_out_items(&inter, 0.2, 7, 3).unwrap();
    let cold: HashSet<u32> = c.cold_items.iter().copied().collect();
    let active: HashSet<u32> = inter.rows.iter().map(|e| e.item).collect();
    assert_eq!(
        c.cold_items.len(),
        (active.len() as f64 * 0.2).round() as usize
    );
    assert!(c.cold_items.iter().all(|i| active.contains(i)));
    // Held-out items are absent from every warm set; their events are all reported apart.
    assert!(all(&c.warm).iter().all(|e| !cold.contains(&e.item)));
    let cold_events: Vec<Interaction> = c.cold_valid.iter().chain(&c.cold_test).copied().collect();
    assert!(cold_events.iter().all(|e| cold.contains(&e.item)));
    let mut everything = all(&c.warm);
    everything.extend(&cold_events);
    assert_eq!(bag(&everything), bag(&inter.rows));
    // Validation and test cold items are disjoint.
    let cv: HashSet<u32> = c.cold_valid.iter().map(|e| e.item).collect();
    assert!(c.cold_test.iter().all(|e| !cv.contains(&e.item)));
    assert!(!cv.is_empty() && !c.cold_test.is_empty());
    // Warm part is leave-one-out: no test event precedes its user's train events.
    let train = per_user(&c.warm.train);
    for t in &c.warm.test {
        assert!(train[&t.user].iter().all(|e| e.timestamp <= t.timestamp));
    }
    // Deterministic per seed, different across seeds.
    assert_eq!(hold_out_items(&inter, 0.2, 7, 3).unwrap(), c);
    assert_ne!(
        hold_out_items(&inter, 0.2, 8, 3).unwrap().cold_items,
        c.cold_items
    );
    assert!(hold_out_items(&inter, 1.0, 7, 3).is_err());
    assert!(hold_out_items(&inter, 0.0, 7, 3)
        .unwrap()
        .cold_items
        .is_empty());
}

#[test]
fn negatives_are_never_positive_and_seeded() {
    let inter = log(80, 30, 5);
    let ns = NegativeSampler::new(inter.users.len(), inter.items.len(), &inter.rows).unwrap();
    let pos: HashSet<(u32, u32)> = inter.rows.iter().map(|e| (e.user, e.item)).collect();
    let k = 5;
    let neg = ns.sample_for(&inter.rows, k, 42).unwrap();
    assert_eq!(neg.len(), inter.rows.len() * k);
    for (e, chunk) in inter.rows.iter().zip(neg.chunks(k)) {
        for &i in chunk {
            assert!(
                !pos.contains(&(e.user, i)),
                "user {} got positive {i}",
                e.user
            );
            assert!(!ns.is_positive(e.user, i));
            assert!((i as usize) < inter.items.len());
        }
        let distinct: HashSet<u32> = chunk.iter().copied().collect();
        assert_eq!(distinct.len(), k, "negatives of one draw are distinct");
    }
    assert_eq!(ns.sample_for(&inter.rows, k, 42).unwrap(), neg);
    assert_ne!(ns.sample_for(&inter.rows, k, 43).unwrap(), neg);

    // A user with almost every item positive: the complement path, exhaustively.
    let ev = |item| Interaction {
        user: 0,
        item,
        label: 1.0,
        timestamp: 0,
    };
    let rows: Vec<Interaction> = (0..10).filter(|i| ![2, 5, 9].contains(i)).map(ev).collect();
    let ns = NegativeSampler::new(1, 10, &rows).unwrap();
    let mut got = ns.sample(0, 3, &mut Rng::new(1)).unwrap();
    got.sort();
    assert_eq!(got, vec![2, 5, 9]);
    assert!(matches!(
        ns.sample(0, 4, &mut Rng::new(1)),
        Err(Error::Invalid(_))
    ));
    assert!(
        NegativeSampler::new(1, 5, &rows).is_err(),
        "item outside the range"
    );
}
