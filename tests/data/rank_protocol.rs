//! The ranking protocol of issue 12 on hand-made logs: split sizes and order, histories, cold
//! flags, the empty-split error.

use semid::data::{Interaction, Interactions};
use semid::rank::{ProtocolConfig, RankProtocol, SplitName};
use semid::Error;

/// A log from `(user, item, rating, timestamp)` rows; users `u0..`, items `i0..`.
fn log(n_users: usize, n_items: usize, rows: &[(u32, u32, f32, i64)]) -> Interactions {
    Interactions {
        users: (0..n_users).map(|u| format!("u{u}")).collect(),
        items: (0..n_items).map(|i| format!("i{i}")).collect(),
        rows: rows
            .iter()
            .map(|&(user, item, label, timestamp)| Interaction {
                user,
                item,
                label,
                timestamp,
            })
            .collect(),
    }
}

fn all_histories(p: &RankProtocol, split: SplitName) -> Vec<Vec<u32>> {
    (0..p.len(split))
        .map(|i| p.history(split, i).to_vec())
        .collect()
}

#[test]
fn split_is_floor_of_the_fractions_in_timestamp_then_row_order() {
    // 12 events, timestamps with ties; rows 0..12. Order by (timestamp, row):
    // t=1: rows 3, 7; t=2: rows 0, 1, 11; t=5: rows 2, 4, 5; t=9: rows 6, 8, 9, 10.
    let ts = [2, 2, 5, 1, 5, 5, 9, 1, 9, 9, 9, 2];
    let rows: Vec<_> = ts.iter().map(|&t| (0, 0, 5.0, t)).collect();
    let inter = log(1, 1, &rows);
    let cfg = ProtocolConfig {
        valid_frac: 0.25,
        test_frac: 0.1,
        ..ProtocolConfig::default()
    };
    let p = RankProtocol::build(&inter, &cfg).unwrap();
    // test = floor(1.2) = 1, valid = floor(3) = 3, train = the remaining 8.
    assert_eq!(
        (
            p.len(SplitName::Train),
            p.len(SplitName::Valid),
            p.len(SplitName::Test)
        ),
        (8, 3, 1)
    );
    assert_eq!(p.rows(SplitName::Train), [3, 7, 0, 1, 11, 2, 4, 5]);
    assert_eq!(p.rows(SplitName::Valid), [6, 8, 9]);
    assert_eq!(p.rows(SplitName::Test), [10]);
}

#[test]
fn default_split_is_80_10_10_and_matches_the_temporal_split() {
    let rows: Vec<_> = (0..1000)
        .map(|r| (0, 0, 3.0, (r * 7919 % 13) as i64))
        .collect();
    let inter = log(1, 1, &rows);
    let p = RankProtocol::build(&inter, &ProtocolConfig::default()).unwrap();
    assert_eq!(
        (
            p.len(SplitName::Train),
            p.len(SplitName::Valid),
            p.len(SplitName::Test)
        ),
        (800, 100, 100)
    );
    let s = semid::data::splits::temporal_split(&inter, 0.1, 0.1).unwrap();
    let ts = |split| -> Vec<i64> {
        p.rows(split)
            .iter()
            .map(|&r| inter.rows[r as usize].timestamp)
            .collect()
    };
    let ts_of = |v: &[Interaction]| -> Vec<i64> { v.iter().map(|e| e.timestamp).collect() };
    assert_eq!(ts(SplitName::Train), ts_of(&s.train));
    assert_eq!(ts(SplitName::Test), ts_of(&s.test));
}

#[test]
fn a_fraction_stored_below_its_decimal_value_still_gets_its_share() {
    // 100 · 0.57 is 56.99999999999999 in f64; the split takes 57 events, not 56.
    let rows: Vec<_> = (0..100).map(|r| (0, 0, 5.0, r)).collect();
    let cfg = ProtocolConfig {
        valid_frac: 0.2,
        test_frac: 0.57,
        ..ProtocolConfig::default()
    };
    let p = RankProtocol::build(&log(1, 1, &rows), &cfg).unwrap();
    assert_eq!(p.len(SplitName::Test), 57);
    assert_eq!(p.len(SplitName::Valid), 20);
}

#[test]
fn labels_are_rating_at_least_the_threshold() {
    let rows = [
        (0, 0, 4.0, 0),
        (0, 0, 3.9, 1),
        (0, 0, 5.0, 2),
        (0, 0, 1.0, 3),
    ];
    let cfg = ProtocolConfig {
        valid_frac: 0.25,
        test_frac: 0.25,
        ..ProtocolConfig::default()
    };
    let p = RankProtocol::build(&log(1, 1, &rows), &cfg).unwrap();
    assert_eq!(p.labels(SplitName::Train), [1.0, 0.0]);
    assert_eq!(p.labels(SplitName::Valid), [1.0]);
    assert_eq!(p.labels(SplitName::Test), [0.0]);
}

#[test]
fn histories_hold_only_earlier_positives_of_the_same_user_capped_at_h_oldest_first() {
    // user 0: positives at t=0 (i1), t=1 (i2), negative t=2 (i3), positives t=3 (i4), t=4 (i5);
    // user 1 interleaved, its own history starts empty.
    let rows = [
        (0, 1, 5.0, 0),
        (1, 9, 5.0, 0),
        (0, 2, 4.0, 1),
        (0, 3, 1.0, 2),
        (1, 8, 2.0, 2),
        (0, 4, 5.0, 3),
        (0, 5, 5.0, 4),
        (1, 7, 5.0, 5),
        (0, 6, 2.0, 6),
        (1, 6, 5.0, 7),
    ];
    let cfg = ProtocolConfig {
        history: 3,
        valid_frac: 0.2,
        test_frac: 0.2,
        ..ProtocolConfig::default()
    };
    let p = RankProtocol::build(&log(2, 10, &rows), &cfg).unwrap();
    assert_eq!(
        all_histories(&p, SplitName::Train),
        [
            vec![],     // u0 t=0
            vec![],     // u1 t=0
            vec![1],    // u0 t=1
            vec![1, 2], // u0 t=2
            vec![9],    // u1 t=2 (its own positive only)
            vec![1, 2], // u0 t=3: the negative i3 is not history
        ]
    );
    // validation: u0 t=4, u1 t=5; test: u0 t=6, u1 t=7. The cap keeps the last 3.
    assert_eq!(
        all_histories(&p, SplitName::Valid),
        [vec![1, 2, 4], vec![9]]
    );
    // The test events see the earlier validation positives (i5 of u0 at t=4, i7 of u1 at t=5).
    assert_eq!(
        all_histories(&p, SplitName::Test),
        [vec![2, 4, 5], vec![9, 7]]
    );
}

#[test]
fn with_equal_timestamps_only_the_earlier_row_is_strictly_before() {
    // Three positive events of one user at the same second, rows 0, 1, 2 (items 10, 11, 12),
    // then one later event. Row 1 sees row 0, row 2 sees rows 0 and 1, row 0 sees nothing.
    let rows = [
        (0, 10, 5.0, 100),
        (0, 11, 5.0, 100),
        (0, 12, 5.0, 100),
        (0, 13, 5.0, 50),
        (0, 14, 1.0, 200),
    ];
    let cfg = ProtocolConfig {
        valid_frac: 0.2,
        test_frac: 0.2,
        ..ProtocolConfig::default()
    };
    let p = RankProtocol::build(&log(1, 15, &rows), &cfg).unwrap();
    assert_eq!(p.rows(SplitName::Train), [3, 0, 1]);
    assert_eq!(
        all_histories(&p, SplitName::Train),
        [vec![], vec![13], vec![13, 10]]
    );
    assert_eq!(all_histories(&p, SplitName::Valid), [vec![13, 10, 11]]);
    assert_eq!(all_histories(&p, SplitName::Test), [vec![13, 10, 11, 12]]);
}

#[test]
fn batches_pad_histories_to_h_and_give_lengths() {
    let rows = [
        (0, 1, 5.0, 0),
        (0, 2, 5.0, 1),
        (0, 3, 5.0, 2),
        (1, 4, 1.0, 3),
        (0, 5, 1.0, 4),
    ];
    let cfg = ProtocolConfig {
        history: 2,
        valid_frac: 0.2,
        test_frac: 0.2,
        ..ProtocolConfig::default()
    };
    let p = RankProtocol::build(&log(2, 6, &rows), &cfg).unwrap();
    let b = p.batch(SplitName::Train, &[2, 0, 1]).unwrap();
    assert_eq!(b.history, 2);
    assert_eq!(b.items, [3, 1, 2]);
    assert_eq!(b.users, [0, 0, 0]);
    assert_eq!(b.labels, [1.0, 1.0, 1.0]);
    assert_eq!(b.hist, [1, 2, 0, 0, 1, 0]);
    assert_eq!(b.hist_len, [2, 0, 1]);
    let t = p.batch(SplitName::Test, &[0]).unwrap();
    assert_eq!(
        (t.items, t.hist, t.hist_len),
        (vec![5], vec![2, 3], vec![2])
    );
    let e = p.batch(SplitName::Valid, &[1]).unwrap_err();
    assert!(
        e.to_string().contains("outside the valid split of 1"),
        "{e}"
    );
}

#[test]
fn cold_items_have_fewer_training_events_than_the_threshold_never_seen_ones_included() {
    // Train (first 6): item 0 three times (one positive), item 1 twice, item 2 once.
    // Item 3 appears only in test; item 4 never.
    let rows = [
        (0, 0, 5.0, 0),
        (0, 0, 1.0, 1),
        (1, 0, 2.0, 2),
        (1, 1, 5.0, 3),
        (0, 1, 5.0, 4),
        (1, 2, 5.0, 5),
        (0, 0, 5.0, 6),
        (0, 3, 5.0, 7),
    ];
    let cfg = ProtocolConfig {
        cold_min_train: 2,
        valid_frac: 0.125,
        test_frac: 0.125,
        ..ProtocolConfig::default()
    };
    let p = RankProtocol::build(&log(2, 5, &rows), &cfg).unwrap();
    assert_eq!(p.train_counts(), [3, 2, 1, 0, 0]);
    assert_eq!(p.cold_items(), [false, false, true, true, true]);
    assert_eq!(
        p.cold_flags(SplitName::Train),
        [false, false, false, false, false, true]
    );
    assert_eq!(p.cold_flags(SplitName::Valid), [false]);
    assert_eq!(p.cold_flags(SplitName::Test), [true]);
    let s = p.summary();
    assert_eq!(s.cold_items, 3);
    assert_eq!((s.splits[2].samples, s.splits[2].cold_samples), (1, 1));
    assert_eq!(s.splits[0].positives, 4);
    // Train histories: u0 [], u0 [0], u1 [], u1 [], u0 [0], u1 [1]: 3 of 6 empty, mean 3/6.
    assert_eq!(s.splits[0].empty_history, 3);
    assert_eq!(s.splits[0].mean_history, 0.5);
    let text = s.to_string();
    assert!(text.contains("3 cold"), "{text}");
    assert!(text.lines().count() == 5, "{text}");
}

#[test]
fn an_empty_split_is_a_typed_error_naming_the_split_and_the_counts() {
    let rows: Vec<_> = (0..9).map(|r| (0, 0, 5.0, r)).collect();
    let e = RankProtocol::build(&log(1, 1, &rows), &ProtocolConfig::default()).unwrap_err();
    match &e {
        Error::EmptySplit {
            split,
            events,
            train,
            valid,
            test,
        } => assert_eq!(
            (*split, *events, *train, *valid, *test),
            ("validation", 9, 9, 0, 0)
        ),
        other => panic!("expected EmptySplit, got {other}"),
    }
    assert!(e.to_string().contains("validation split"), "{e}");
    let cfg = ProtocolConfig {
        valid_frac: 0.5,
        test_frac: 0.5,
        ..ProtocolConfig::default()
    };
    assert!(RankProtocol::build(&log(1, 1, &rows), &cfg)
        .unwrap_err()
        .to_string()
        .contains("sum below 1"));
}

#[test]
fn out_of_range_events_and_non_finite_ratings_are_refused() {
    let mut inter = log(1, 1, &[(0, 0, 5.0, 0); 10]);
    inter.rows[3].item = 1;
    let e = RankProtocol::build(&inter, &ProtocolConfig::default()).unwrap_err();
    assert!(e.to_string().contains("event 3"), "{e}");
    let mut inter = log(1, 1, &[(0, 0, 5.0, 0); 10]);
    inter.rows[4].label = f32::NAN;
    let e = RankProtocol::build(&inter, &ProtocolConfig::default()).unwrap_err();
    assert!(e.to_string().contains("event 4"), "{e}");
}
