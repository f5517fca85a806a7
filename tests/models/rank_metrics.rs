//! Ranking metrics against brute-force references, `predictions.csv` round trips, and the
//! alignment of tokenizer runs' codes to a log.

use semid::io::run_dir::RunManifest;
use semid::metrics::ranking::{auc, gauc, logloss, RankingMetrics};
use semid::rank::{
    load_code_tables, metrics_of, metrics_per_split, read_predictions, write_predictions,
    ColdItems, Prediction, SplitName,
};
use semid::rng::Rng;
use semid::Error;
use std::path::{Path, PathBuf};

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("semid-rank-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// O(n²) AUC: over all (positive, negative) pairs, 1 when the positive scores higher, ½ on a
/// tie.
fn brute_auc(labels: &[f32], scores: &[f32]) -> Option<f64> {
    let (mut wins, mut pairs) = (0.0f64, 0u64);
    for (i, &li) in labels.iter().enumerate() {
        for (j, &lj) in labels.iter().enumerate() {
            if li == 1.0 && lj == 0.0 {
                pairs += 1;
                wins += match scores[i].partial_cmp(&scores[j]).unwrap() {
                    std::cmp::Ordering::Greater => 1.0,
                    std::cmp::Ordering::Equal => 0.5,
                    std::cmp::Ordering::Less => 0.0,
                };
            }
        }
    }
    (pairs > 0).then(|| wins / pairs as f64)
}

fn brute_gauc(users: &[u32], labels: &[f32], scores: &[f32]) -> (Option<f64>, usize) {
    let mut ids: Vec<u32> = users.to_vec();
    ids.sort();
    ids.dedup();
    let (mut num, mut den, mut n) = (0.0, 0.0, 0);
    for u in ids {
        let idx: Vec<usize> = (0..users.len()).filter(|&i| users[i] == u).collect();
        let l: Vec<f32> = idx.iter().map(|&i| labels[i]).collect();
        let s: Vec<f32> = idx.iter().map(|&i| scores[i]).collect();
        if let Some(a) = brute_auc(&l, &s) {
            num += a * idx.len() as f64;
            den += idx.len() as f64;
            n += 1;
        }
    }
    ((den > 0.0).then(|| num / den), n)
}

/// Seeded samples with many ties: scores from 7 levels (including -0.0 and 0.0, which tie).
fn tied_samples(n: usize, seed: u64) -> (Vec<u32>, Vec<f32>, Vec<f32>) {
    let mut rng = Rng::new(seed);
    let levels = [-2.5f32, -1.0, -0.0, 0.0, 0.5, 1.0, 3.0];
    let (mut users, mut labels, mut scores) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        users.push(rng.below(12) as u32);
        let s = levels[rng.below(levels.len())];
        // Positives lean to higher scores so the AUC is away from ½.
        let p = if s > 0.0 { 0.7 } else { 0.3 };
        labels.push(if rng.uniform() < p { 1.0 } else { 0.0 });
        scores.push(s);
    }
    (users, labels, scores)
}

#[test]
fn auc_with_ties_equals_the_brute_force_pair_count_on_seeded_data() {
    for seed in 0..20 {
        let n = 50 + 37 * seed as usize;
        let (_, labels, scores) = tied_samples(n, seed);
        let got = auc(&labels, &scores).unwrap().unwrap();
        let want = brute_auc(&labels, &scores).unwrap();
        assert!((got - want).abs() < 1e-12, "seed {seed}: {got} vs {want}");
    }
}

#[test]
fn gauc_equals_the_event_weighted_brute_force_mean_of_per_user_aucs() {
    for seed in 0..10 {
        let (users, labels, scores) = tied_samples(300, 100 + seed);
        let g = gauc(&users, &labels, &scores).unwrap();
        let (want, n) = brute_gauc(&users, &labels, &scores);
        assert_eq!(g.users, n, "seed {seed}");
        assert!(
            (g.value.unwrap() - want.unwrap()).abs() < 1e-12,
            "seed {seed}"
        );
    }
}

#[test]
fn hand_computed_aucs() {
    // All scores equal: every pair is a tie.
    assert_eq!(
        auc(&[1.0, 0.0, 1.0, 0.0, 0.0], &[0.3; 5]).unwrap(),
        Some(0.5)
    );
    // Perfect and reversed rankings.
    assert_eq!(
        auc(&[0.0, 0.0, 1.0, 1.0], &[1.0, 2.0, 3.0, 4.0]).unwrap(),
        Some(1.0)
    );
    assert_eq!(
        auc(&[1.0, 1.0, 0.0, 0.0], &[1.0, 2.0, 3.0, 4.0]).unwrap(),
        Some(0.0)
    );
    // -0.0 and 0.0 are the same score.
    assert_eq!(auc(&[1.0, 0.0], &[-0.0, 0.0]).unwrap(), Some(0.5));
    // One positive above one of two negatives, tied with the other: (1 + ½) / 2.
    assert_eq!(auc(&[1.0, 0.0, 0.0], &[2.0, 1.0, 2.0]).unwrap(), Some(0.75));
}

#[test]
fn a_missing_class_gives_no_auc_and_no_user_in_gauc() {
    assert_eq!(auc(&[1.0, 1.0], &[0.1, 0.2]).unwrap(), None);
    assert_eq!(auc(&[0.0, 0.0], &[0.1, 0.2]).unwrap(), None);
    assert_eq!(auc(&[], &[]).unwrap(), None);
    // User 0 has both labels (AUC 1, 2 events); user 1 only positives: left out.
    let g = gauc(
        &[0, 0, 1, 1, 1],
        &[0.0, 1.0, 1.0, 1.0, 1.0],
        &[0.0, 1.0, 0.0, 0.0, 0.0],
    )
    .unwrap();
    assert_eq!((g.value, g.users, g.samples), (Some(1.0), 1, 2));
    let g = gauc(&[0, 1], &[0.0, 1.0], &[0.0, 1.0]).unwrap();
    assert_eq!((g.value, g.users), (None, 0));
}

#[test]
fn gauc_weights_each_user_by_its_events() {
    // User 0: 2 events, AUC 1. User 1: 4 events, AUC 0.  (2·1 + 4·0) / 6 = 1/3.
    let users = [0, 0, 1, 1, 1, 1];
    let labels = [0.0, 1.0, 1.0, 1.0, 0.0, 0.0];
    let scores = [0.0, 1.0, 0.0, 0.0, 1.0, 2.0];
    let g = gauc(&users, &labels, &scores).unwrap();
    assert_eq!(g.value, Some(1.0 / 3.0));
}

#[test]
fn logloss_is_stable_and_matches_the_probability_form() {
    let labels = [1.0f32, 0.0, 1.0, 0.0];
    let logits = [0.0f32, 2.0, -1.5, -3.0];
    let want: f64 = labels
        .iter()
        .zip(&logits)
        .map(|(&y, &x)| {
            let y = f64::from(y);
            let p = 1.0 / (1.0 + (-f64::from(x)).exp());
            -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
        })
        .sum::<f64>()
        / 4.0;
    assert!((logloss(&labels, &logits).unwrap() - want).abs() < 1e-14);
    // Far logits: the loss is the logit's size (a naive form gives inf or 0·inf = NaN).
    assert!((logloss(&[0.0], &[100.0]).unwrap() - 100.0).abs() < 1e-12);
    assert!((logloss(&[1.0], &[-1000.0]).unwrap() - 1000.0).abs() < 1e-9);
    assert!(logloss(&[1.0], &[1000.0]).unwrap() < 1e-300);
    assert!((logloss(&[0.0, 1.0], &[0.0, 0.0]).unwrap() - std::f64::consts::LN_2).abs() < 1e-15);
}

#[test]
fn non_finite_scores_bad_labels_and_mismatched_lengths_are_refused() {
    let e = auc(&[1.0, 0.0, 1.0], &[0.1, f32::NAN, 0.3]).unwrap_err();
    assert!(e.to_string().contains("score 1 is NaN"), "{e}");
    let e = logloss(&[1.0], &[f32::INFINITY]).unwrap_err();
    assert!(e.to_string().contains("score 0 is inf"), "{e}");
    let e = auc(&[2.0, 0.0], &[0.1, 0.2]).unwrap_err();
    assert!(e.to_string().contains("label 0 is 2"), "{e}");
    assert!(auc(&[1.0], &[0.1, 0.2]).is_err());
    assert!(RankingMetrics::compute(&[0], &[1.0], &[0.5], &[]).is_err());
    assert!(RankingMetrics::compute(&[], &[], &[], &[]).is_err());
}

#[test]
fn ranking_metrics_gather_auc_cold_auc_gauc_logloss_and_write_json() {
    let users = [0, 0, 1, 1, 2];
    let labels = [0.0, 1.0, 1.0, 0.0, 1.0];
    let logits = [-1.0, 1.0, 0.5, 0.5, 2.0];
    let cold = [false, true, false, true, true];
    let m = RankingMetrics::compute(&users, &labels, &logits, &cold).unwrap();
    assert_eq!(m.auc, brute_auc(&labels, &logits));
    // Cold samples: labels [1, 0, 1], scores [1, 0.5, 2] → AUC 1.
    assert_eq!(m.cold_auc, Some(1.0));
    // User 0: AUC 1 (2 events); user 1: tie, 0.5 (2 events); user 2: one class.
    assert_eq!(m.gauc, Some(0.75));
    assert_eq!((m.n, m.n_cold, m.users_in_gauc), (5, 3, 2));
    assert_eq!(m.logloss, logloss(&labels, &logits).unwrap());
    let json: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
    assert_eq!(json["cold_auc"], 1.0);
    assert_eq!(json["users_in_gauc"], 2);
    let none = RankingMetrics::compute(&[0, 0], &[1.0, 0.0], &[0.1, 0.2], &[true, false]).unwrap();
    assert!(
        none.to_json().contains("\"cold_auc\": null"),
        "{}",
        none.to_json()
    );
}

fn sample_predictions() -> Vec<Prediction> {
    let p = |split, user: &str, item: &str, label, score| Prediction {
        split,
        user: user.into(),
        item: item.into(),
        label,
        score,
    };
    vec![
        p(
            SplitName::Train,
            "u1",
            "American President, The (1995)",
            true,
            0.1,
        ),
        p(SplitName::Train, "u1", "say \"hi\"", false, -0.3),
        p(SplitName::Train, "u,2", " edge ", true, 1e-38),
        p(
            SplitName::Valid,
            "u1",
            "American President, The (1995)",
            false,
            0.1 + 0.2,
        ),
        p(SplitName::Test, "u1", "say \"hi\"", true, f32::MAX),
        p(SplitName::Test, "u1", "never\nseen", false, -7.0e-45),
        p(
            SplitName::Test,
            "u,2",
            "American President, The (1995)",
            false,
            1.0 / 3.0,
        ),
    ]
}

#[test]
fn predictions_csv_round_trips_ids_with_commas_quotes_and_exact_scores() {
    let d = tmp_dir("roundtrip");
    let path = d.join("predictions.csv");
    let preds = sample_predictions();
    write_predictions(&path, &preds).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with(
            "split,user,item,label,score\ntrain,u1,\"American President, The (1995)\",1,0.1\n"
        ),
        "{text}"
    );
    let back = read_predictions(&path).unwrap();
    assert_eq!(back, preds);
    for (a, b) in back.iter().zip(&preds) {
        assert_eq!(a.score.to_bits(), b.score.to_bits());
    }
    let leftovers: Vec<_> = std::fs::read_dir(&d).unwrap().collect();
    assert_eq!(
        leftovers.len(),
        1,
        "only predictions.csv, no temporary file"
    );
}

#[test]
fn metrics_per_split_from_the_file_equal_the_metrics_computed_directly() {
    let d = tmp_dir("per-split");
    let path = d.join("predictions.csv");
    let preds = sample_predictions();
    write_predictions(&path, &preds).unwrap();
    // Recounted from the train rows with threshold 2: "American President…" has 1 train row,
    // `say "hi"` 1, ` edge ` 1, "never\nseen" 0: all cold.
    let m = metrics_per_split(&path, &ColdItems::FromTrainRows { min_train: 2 }).unwrap();
    assert_eq!(
        m.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        [SplitName::Train, SplitName::Valid, SplitName::Test]
    );
    let test = &m[2].1;
    let direct = RankingMetrics::compute(
        &[0, 0, 1],
        &[1.0, 0.0, 0.0],
        &[f32::MAX, -7.0e-45, 1.0 / 3.0],
        &[true, true, true],
    )
    .unwrap();
    assert_eq!(test, &direct);
    assert_eq!(test.auc, Some(1.0));
    // With an explicit cold set, only that item is cold.
    let ids = ColdItems::Ids(["never\nseen".to_string()].into_iter().collect());
    let m = metrics_of(&preds, &ids).unwrap();
    assert_eq!((m[2].1.n_cold, m[2].1.cold_auc), (1, None));
    // A file without train rows cannot recount.
    let e = metrics_of(&preds[3..], &ColdItems::FromTrainRows { min_train: 2 }).unwrap_err();
    assert!(e.to_string().contains("no train rows"), "{e}");
}

#[test]
fn bad_predictions_files_name_the_file_line_and_field() {
    let d = tmp_dir("bad");
    let cases = [
        ("split,user,item,label\n", 1, "header"),
        (
            "split,user,item,label,score\ntest,u,i,1,0.5\nvalid,u,i,2,0.5\n",
            3,
            "label",
        ),
        ("split,user,item,label,score\nfinal,u,i,1,0.5\n", 2, "split"),
        ("split,user,item,label,score\ntest,u,i,1,nan\n", 2, "score"),
        ("split,user,item,label,score\ntest,u,i,1,1e39\n", 2, "score"),
        ("split,user,item,label,score\ntest,,i,1,0.5\n", 2, "user"),
        ("split,user,item,label,score\ntest,u,i,1\n", 2, "record"),
        (
            "split,user,item,label,score\ntest,u,\"open,1,0.5\n",
            2,
            "record",
        ),
    ];
    for (k, (text, row, field)) in cases.iter().enumerate() {
        let path = d.join(format!("p{k}.csv"));
        std::fs::write(&path, text).unwrap();
        match read_predictions(&path).unwrap_err() {
            Error::Data {
                file,
                row: r,
                field: f,
                ..
            } => {
                assert_eq!(file, path, "case {k}");
                assert_eq!((r, f.as_str()), (*row, *field), "case {k}");
            }
            other => panic!("case {k}: expected a data error, got {other}"),
        }
    }
    let mut preds = sample_predictions();
    preds[1].score = f32::NAN;
    let path = d.join("nan.csv");
    let e = write_predictions(&path, &preds).unwrap_err();
    assert!(e.to_string().contains("prediction 1"), "{e}");
    assert!(!path.exists());
}

/// A finished run folder as `semid tokenize` writes it: manifest, `codes.csv`,
/// `codes_<family>.npy`, `metrics.json` (codebook sizes of the semantic levels).
/// A family of a fake run: name, codebook sizes of the semantic levels, codes per item.
type FakeFamily<'a> = (&'a str, Vec<usize>, Vec<Vec<u32>>);

fn fake_run(dir: &Path, ids: &[&str], families: &[FakeFamily]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut m = RunManifest::new(
        "tokenize",
        "psrq",
        families.iter().map(|f| f.0.to_string()).collect(),
    );
    m.complete = true;
    m.write(dir).unwrap();
    let mut csv = String::from("item_id");
    for (name, _, rows) in families {
        for l in 0..rows[0].len() {
            csv.push_str(&format!(",{name}_l{}", l + 1));
        }
    }
    csv.push('\n');
    for (i, id) in ids.iter().enumerate() {
        csv.push_str(&semid::io::csv_field(id));
        for (_, _, rows) in families {
            for c in &rows[i] {
                csv.push_str(&format!(",{c}"));
            }
        }
        csv.push('\n');
    }
    std::fs::write(dir.join("codes.csv"), csv).unwrap();
    let mut metrics = Vec::new();
    for (name, sizes, rows) in families {
        let levels = rows[0].len();
        let flat: Vec<u32> = rows.iter().flatten().copied().collect();
        semid::data::npy::write_npy_u32(
            &dir.join(format!("codes_{name}.npy")),
            &[ids.len(), levels],
            &flat,
        )
        .unwrap();
        let per_level: Vec<_> = sizes
            .iter()
            .map(|k| serde_json::json!({ "codebook_size": k }))
            .collect();
        metrics.push(serde_json::json!({ "name": format!("psrq:{name}"), "per_level": per_level }));
    }
    std::fs::write(
        dir.join("metrics.json"),
        serde_json::to_string(&metrics).unwrap(),
    )
    .unwrap();
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn codes_are_aligned_to_the_logs_item_order_with_k_per_level_and_the_dedup_suffix() {
    let d = tmp_dir("align");
    // Two semantic levels (k = 4, 3) + a collision suffix: items a and c collide.
    let text = vec![vec![1, 2, 0], vec![3, 0, 0], vec![1, 2, 1], vec![0, 1, 0]];
    fake_run(
        &d.join("run"),
        &["a", "b, quoted", "c", "extra"],
        &[
            ("text", vec![4, 3], text),
            ("audio", vec![2], vec![vec![1], vec![0], vec![1], vec![1]]),
        ],
    );
    let t = load_code_tables(&[d.join("run")], &ids(&["c", "a", "b, quoted"])).unwrap();
    assert_eq!(t.n_items, 3);
    let f = t.family("text").unwrap();
    assert_eq!((f.levels, f.k.clone()), (3, vec![4, 3, 2]));
    assert_eq!(f.table, [1, 2, 1, 1, 2, 0, 3, 0, 0]);
    assert_eq!(t.family("audio").unwrap().table, [1, 1, 0]);
    let e = t.select(&["text", "joint"]).unwrap_err();
    assert!(e.to_string().contains("no family `joint`"), "{e}");
    assert!(e.to_string().contains("text"), "{e}");
}

#[test]
fn items_with_interactions_but_no_codes_are_an_error_naming_them() {
    let d = tmp_dir("missing");
    fake_run(
        &d.join("run"),
        &["a", "b"],
        &[("text", vec![2], vec![vec![0], vec![1]])],
    );
    let e = load_code_tables(&[d.join("run")], &ids(&["a", "x", "b", "y"])).unwrap_err();
    match &e {
        Error::MissingCodes {
            missing,
            items,
            first,
            ..
        } => assert_eq!((*missing, *items, first.as_str()), (2, 4, "`x`, `y`")),
        other => panic!("expected MissingCodes, got {other}"),
    }
}

#[test]
fn combined_runs_must_cover_the_same_items_and_families_once() {
    let d = tmp_dir("combine");
    fake_run(
        &d.join("r1"),
        &["a", "b"],
        &[("text", vec![2], vec![vec![0], vec![1]])],
    );
    fake_run(
        &d.join("r2"),
        &["b", "a"],
        &[("audio", vec![2], vec![vec![1], vec![1]])],
    );
    fake_run(
        &d.join("r3"),
        &["a", "c"],
        &[("kg", vec![2], vec![vec![0], vec![1]])],
    );
    fake_run(
        &d.join("r4"),
        &["a", "b"],
        &[("text", vec![2], vec![vec![1], vec![1]])],
    );
    let t = load_code_tables(&[d.join("r1"), d.join("r2")], &ids(&["b"])).unwrap();
    assert_eq!(t.family("audio").unwrap().table, [1]);
    let e = load_code_tables(&[d.join("r1"), d.join("r3")], &ids(&["a"])).unwrap_err();
    assert!(e.to_string().contains("cover different items"), "{e}");
    assert!(e.to_string().contains("`b`"), "{e}");
    let e = load_code_tables(&[d.join("r1"), d.join("r4")], &ids(&["a"])).unwrap_err();
    assert!(e.to_string().contains("family `text` is in both"), "{e}");
}

#[test]
fn broken_run_folders_are_refused_with_the_file_named() {
    let d = tmp_dir("broken");
    // A family's npy missing.
    fake_run(
        &d.join("a"),
        &["x", "y"],
        &[("text", vec![2], vec![vec![0], vec![1]])],
    );
    std::fs::remove_file(d.join("a/codes_text.npy")).unwrap();
    let e = load_code_tables(&[d.join("a")], &ids(&["x"])).unwrap_err();
    assert!(e.to_string().contains("codes_text.npy"), "{e}");
    // codes.csv of another run than the npy.
    fake_run(
        &d.join("b"),
        &["x", "y"],
        &[("text", vec![2], vec![vec![0], vec![1]])],
    );
    semid::data::npy::write_npy_u32(&d.join("b/codes_text.npy"), &[2, 1], &[1, 1]).unwrap();
    let e = load_code_tables(&[d.join("b")], &ids(&["x"])).unwrap_err();
    assert!(e.to_string().contains("different runs"), "{e}");
    // A code not below its codebook size.
    fake_run(
        &d.join("c"),
        &["x", "y"],
        &[("text", vec![2], vec![vec![0], vec![2]])],
    );
    let e = load_code_tables(&[d.join("c")], &ids(&["x"])).unwrap_err();
    assert!(e.to_string().contains("not below 2"), "{e}");
    // An unfinished run.
    fake_run(&d.join("e"), &["x"], &[("text", vec![2], vec![vec![0]])]);
    let mut m = RunManifest::read(&d.join("e")).unwrap().unwrap();
    m.complete = false;
    m.write(&d.join("e")).unwrap();
    let e = load_code_tables(&[d.join("e")], &ids(&["x"])).unwrap_err();
    assert!(e.to_string().contains("did not finish"), "{e}");
    // A repeated id.
    fake_run(
        &d.join("f"),
        &["x", "x"],
        &[("text", vec![2], vec![vec![0], vec![1]])],
    );
    let e = load_code_tables(&[d.join("f")], &ids(&["x"])).unwrap_err();
    assert!(e.to_string().contains("repeats"), "{e}");
}

#[test]
fn the_codes_of_a_real_tokenize_run_load_and_match_its_results() {
    use semid::data::{ItemEmbeddings, Modality};
    use semid::pipeline::{tokenize, RunOptions};
    let d = tmp_dir("real-run");
    let out = d.join("run");
    let n = 40;
    let emb = ItemEmbeddings {
        ids: (0..n).map(|i| format!("movie, {i}")).collect(),
        modalities: vec![
            Modality {
                name: "text".into(),
                dim: 6,
                data: crate::common::rand_vec(n * 6, 1),
            },
            Modality {
                name: "genre".into(),
                dim: 4,
                data: crate::common::rand_vec(n * 4, 2),
            },
        ],
    };
    let mut cfg = semid::SemidConfig {
        method: semid::Method::RqKmeans,
        ..Default::default()
    };
    cfg.rq_kmeans.levels = 2;
    cfg.rq_kmeans.k = 3;
    let results = tokenize(
        &crate::common::gpu(),
        &emb,
        &cfg,
        &mut RunOptions {
            out: &out,
            mode: Default::default(),
            labels: None,
            progress: &mut |_, _, _| {},
        },
    )
    .unwrap();
    // The log names the items in reverse order and leaves the first five out.
    let log_ids: Vec<String> = emb.ids[5..].iter().rev().cloned().collect();
    let t = load_code_tables(&[&out], &log_ids).unwrap();
    let names: Vec<&str> = t.families.iter().map(|f| f.family.as_str()).collect();
    assert_eq!(names, ["text", "genre", "joint"]);
    for r in &results {
        let f = t.family(&r.name).unwrap();
        assert_eq!(f.k, r.final_codes.sizes, "{}", r.name);
        for (row, id) in log_ids.iter().enumerate() {
            let i = emb.ids.iter().position(|x| x == id).unwrap();
            assert_eq!(f.item(row), r.final_codes.item(i), "{} item {id}", r.name);
        }
    }
}
