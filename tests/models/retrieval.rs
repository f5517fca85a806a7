//! Generative retrieval: the leave-one-out protocol, Recall/NDCG against hand-computed cases,
//! semantic IDs with their suffix, full-catalogue top-k with seen filtering, and TIGER's own
//! beam search against exact enumeration on a catalogue the beam covers.

use crate::common::gpu;
use semid::data::types::{Interaction, Interactions};
use semid::metrics::retrieval::{ndcg_at, RetrievalMetrics};
use semid::retrieval::decode::{beam_search, exact_search, BeamConfig};
use semid::retrieval::fit::top_k_filtered;
use semid::retrieval::{
    fit, EvalSplit, FitConfig, Hooks, RetrievalConfig, SasRec, SasRecConfig, SeqModel, SeqProtocol,
    SidTable, Tiger, TigerConfig,
};

/// A log from `(user, item, label, time)` rows over 3 users and 6 items.
fn log(rows: &[(u32, u32, f32, i64)]) -> Interactions {
    Interactions {
        users: (0..3).map(|u| format!("u{u}")).collect(),
        items: (0..6).map(|i| format!("i{i}")).collect(),
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

#[test]
fn leave_one_out_holds_out_the_last_two_events_by_time_and_row() {
    // User 0: 4 events out of order in the file, two at the same time (row order decides).
    // User 1: 2 events (train only). User 2: 3 events, one with label 0.
    let l = log(&[
        (0, 3, 5.0, 30),
        (0, 1, 4.0, 10),
        (1, 2, 1.0, 5),
        (0, 4, 3.0, 20),
        (0, 5, 2.0, 20),
        (1, 0, 1.0, 6),
        (2, 1, 1.0, 1),
        (2, 2, 0.0, 2),
        (2, 3, 1.0, 3),
    ]);
    let p = SeqProtocol::build(&l, &RetrievalConfig::default()).unwrap();
    assert_eq!(p.train_seq(0), &[1, 4]);
    assert_eq!(p.target(EvalSplit::Valid, 0), Some(5));
    assert_eq!(p.target(EvalSplit::Test, 0), Some(3));
    assert_eq!(p.history(EvalSplit::Test, 0), &[1, 4, 5]);
    assert_eq!(p.history(EvalSplit::Next, 0), &[1, 4, 5, 3]);
    assert_eq!(p.train_seq(1), &[2, 0]);
    assert_eq!(p.target(EvalSplit::Test, 1), None);
    assert_eq!(p.eval_users(), vec![0, 2]);
    // Every event is an interaction by default; a click log drops its 0 labels.
    assert_eq!(p.train_seq(2), &[1]);
    let clicks = RetrievalConfig {
        min_label: Some(1.0),
        ..Default::default()
    };
    let pc = SeqProtocol::build(&l, &clicks).unwrap();
    assert_eq!(pc.eval_users(), vec![0], "user 2 keeps only 2 clicks");
    // Training counts exclude held-out events; item 1 is trained on twice.
    assert_eq!(p.train_counts(), &[1, 2, 1, 0, 1, 0]);
    assert_eq!(p.popularity()[..3], [1, 0, 2]);
    assert_eq!(p.train_examples(), vec![(0, 1), (1, 1)]);
    let short = RetrievalConfig {
        history: 2,
        ..Default::default()
    };
    let ps = SeqProtocol::build(&l, &short).unwrap();
    assert_eq!(ps.window(EvalSplit::Test, 0), &[4, 5]);
    assert_eq!(
        ps.seen(EvalSplit::Test, 0),
        &[1, 4, 5],
        "seen is the whole history"
    );
}

#[test]
fn a_log_where_nobody_has_three_events_is_refused() {
    let l = log(&[(0, 1, 1.0, 1), (0, 2, 1.0, 2)]);
    let e = SeqProtocol::build(&l, &RetrievalConfig::default()).unwrap_err();
    assert!(e.to_string().contains("no user has 3 events"), "{e}");
    let bad = RetrievalConfig {
        min_events: 2,
        ..Default::default()
    };
    assert!(SeqProtocol::build(&l, &bad).is_err());
}

#[test]
fn recall_and_ndcg_match_hand_computed_values() {
    // User 0 hits at rank 0, user 1 at rank 3, user 2 misses, user 3's list is shorter than K.
    let lists = vec![vec![7, 1], vec![0, 1, 2, 9], vec![4, 5, 6], vec![8]];
    let targets = [7, 9, 3, 2];
    let cold = [false, true, true, false];
    let m = RetrievalMetrics::compute(&lists, &targets, &cold, &[10, 1, 4]).unwrap();
    assert_eq!(m.recall, vec![(1, 0.25), (4, 0.5), (10, 0.5)]);
    let n4 = (1.0 + 1.0 / 5f64.log2()) / 4.0;
    assert!((m.ndcg_at(4).unwrap() - n4).abs() < 1e-12);
    assert_eq!(m.ndcg_at(1), Some(0.25));
    assert_eq!(m.cold_users, 2);
    assert_eq!(m.cold_recall[1], (4, Some(0.5)));
    assert_eq!(ndcg_at(Some(0), 1), 1.0);
    assert_eq!(ndcg_at(Some(3), 3), 0.0);
    assert!(RetrievalMetrics::compute(&lists, &targets[..3], &cold, &[1]).is_err());
    assert!(RetrievalMetrics::compute(&lists, &targets, &cold, &[0]).is_err());
}

#[test]
fn top_k_breaks_ties_to_the_lower_item_and_skips_seen_items() {
    let scores = [0.5, 2.0, 0.5, 3.0, -1.0];
    assert_eq!(
        top_k_filtered(&scores, 3, &[]),
        vec![(3, 3.0), (1, 2.0), (0, 0.5)]
    );
    assert_eq!(
        top_k_filtered(&scores, 3, &[3, 0]),
        vec![(1, 2.0), (2, 0.5), (4, -1.0)]
    );
    assert_eq!(top_k_filtered(&scores, 9, &[]).len(), 5);
}

#[test]
fn semantic_ids_get_a_collision_suffix_and_level_offsets() {
    // Items 0 and 2 share (1, 0).
    let s = SidTable::new(&[1, 0, 0, 1, 1, 0], &[2, 3]).unwrap();
    assert_eq!(s.codes, vec![1, 0, 0, 0, 1, 0, 1, 0, 1]);
    assert_eq!(
        (s.vocab.clone(), s.offset.clone()),
        (vec![2, 3, 2], vec![0, 2, 5])
    );
    assert_eq!(s.tokens(2).collect::<Vec<_>>(), vec![1, 2, 6]);
    assert_eq!(s.collided_items, 2);
    let e = SidTable::new(&[1, 3], &[2, 3]).unwrap_err().to_string();
    assert!(e.contains("item row 0") && e.contains("level 1"), "{e}");
}

fn tiny_tiger(seed: u64) -> (Tiger, SeqProtocol) {
    let rows: Vec<(u32, u32, f32, i64)> = (0..3u32)
        .flat_map(|u| (0..5u32).map(move |t| (u, (u + t) % 6, 1.0, t as i64)))
        .collect();
    let p = SeqProtocol::build(&log(&rows), &RetrievalConfig::default()).unwrap();
    let sid = SidTable::new(&[0, 0, 0, 1, 1, 0, 1, 1, 2, 0, 2, 1], &[3, 2]).unwrap();
    let cfg = TigerConfig {
        d_model: 16,
        enc_layers: 1,
        dec_layers: 1,
        heads: 2,
        head_dim: 8,
        d_ff: 32,
        dropout: 0.0,
        beams: 8,
        constrained: true,
    };
    (Tiger::new(&gpu(), &cfg, sid, 4, seed).unwrap(), p)
}

#[test]
fn tiger_beam_search_equals_exact_scoring_when_the_beam_covers_the_catalogue() {
    let (model, p) = tiny_tiger(3);
    let users = p.eval_users();
    let windows: Vec<&[u32]> = users
        .iter()
        .map(|&u| p.window(EvalSplit::Test, u as usize))
        .collect();
    let mut sc = model.scorer(&windows).unwrap();
    let beam = beam_search(
        model.trie(),
        &mut sc,
        users.len(),
        &BeamConfig {
            beams: 8,
            constrained: true,
        },
    )
    .unwrap();
    let mut sc = model.scorer(&windows).unwrap();
    let exact = exact_search(model.trie(), &mut sc, users.len(), 8).unwrap();
    for (u, (b, e)) in beam.iter().zip(&exact).enumerate() {
        assert_eq!(b.len(), 6, "user {u}: every item is found");
        let bi: Vec<_> = b.iter().map(|h| h.item).collect();
        let ei: Vec<_> = e.iter().map(|h| h.item).collect();
        assert_eq!(bi, ei, "user {u}");
        for (x, y) in b.iter().zip(e) {
            assert!(
                (x.log_prob - y.log_prob).abs() < 1e-4,
                "user {u}: {x:?} vs {y:?}"
            );
        }
        let total: f64 = b.iter().map(|h| (h.log_prob as f64).exp()).sum();
        assert!(
            (total - 1.0).abs() < 1e-3,
            "user {u}: the items' probabilities sum to {total}"
        );
    }
}

#[test]
fn a_seeded_tiger_fit_repeats_exactly_and_ranks_only_real_items() {
    let run = || {
        let (mut model, p) = tiny_tiger(5);
        let cfg = FitConfig {
            epochs: 3,
            batch_size: 4,
            lr: 1e-2,
            seed: 2,
            ..Default::default()
        };
        let mut losses = Vec::new();
        let s = fit(
            &mut model,
            &p,
            &cfg,
            Hooks {
                progress: &mut |pr| losses.extend(pr.loss),
                checkpoint: &mut |_, _| Ok(()),
                resume: None,
            },
        )
        .unwrap();
        let ranked = model.rank(&p, EvalSplit::Test, &p.eval_users(), 3).unwrap();
        (s.valid_recall10, model.store.to_named().unwrap(), ranked)
    };
    let (a, b) = (run(), run());
    assert_eq!(a.1, b.1, "same seed, same parameters");
    assert_eq!(a.2, b.2);
    assert_eq!(a.0.len(), 3);
    for list in &a.2 {
        assert!(list.len() <= 3 && list.iter().all(|x| x.0 < 6));
    }
}

#[test]
fn sasrec_ranks_the_full_catalogue_minus_seen_items() {
    let rows: Vec<(u32, u32, f32, i64)> = (0..3u32)
        .flat_map(|u| (0..4u32).map(move |t| (u, (2 * u + t) % 6, 1.0, t as i64)))
        .collect();
    let p = SeqProtocol::build(&log(&rows), &RetrievalConfig::default()).unwrap();
    let cfg = SasRecConfig {
        d_model: 8,
        layers: 1,
        heads: 2,
        d_ff: 16,
        dropout: 0.1,
    };
    let mut m = SasRec::new(&gpu(), &cfg, 6, 3, 1).unwrap();
    let fc = FitConfig {
        epochs: 2,
        batch_size: 2,
        ..Default::default()
    };
    fit(
        &mut m,
        &p,
        &fc,
        Hooks {
            progress: &mut |_| {},
            checkpoint: &mut |_, _| Ok(()),
            resume: None,
        },
    )
    .unwrap();
    let users = p.eval_users();
    let lists = m.rank(&p, EvalSplit::Test, &users, 6).unwrap();
    for (&u, l) in users.iter().zip(&lists) {
        let seen = p.seen(EvalSplit::Test, u as usize);
        assert_eq!(l.len(), 6 - seen.len(), "user {u}");
        assert!(l.iter().all(|x| !seen.contains(&x.0)));
        assert!(l.windows(2).all(|w| w[0].1 >= w[1].1), "best first");
    }
}
