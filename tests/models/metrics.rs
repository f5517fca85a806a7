//! Semantic-ID metrics, the TIGER collision suffix and the report outputs, against hand-computed
//! values and brute-force references. CPU only.

use semid::metrics::codes::{self, Clusters, SizeBin, SizeDist, SizeRun};
use semid::metrics::drift;
use semid::metrics::{compare_json, compare_table, plot, Metrics, MetricsInput};
use semid::quant::dedup::dedup_suffix;
use semid::rng::Rng;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

fn close(a: f64, b: f64, tol: f64, what: &str) {
    assert!((a - b).abs() <= tol, "{what}: got {a}, want {b}");
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("semid-metrics-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Random codes `[items, levels]` with a chosen skew: each level draws from `k` codes, but with
/// probability `skew` from code 0.
fn random_codes(items: usize, sizes: &[usize], skew: f64, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(items * sizes.len());
    for _ in 0..items {
        for &k in sizes {
            let c = if rng.uniform() < skew {
                0
            } else {
                rng.below(k)
            };
            out.push(c as u32);
        }
    }
    out
}

// ----- code-usage statistics ---------------------------------------------------------------

#[test]
fn utilization_counts_used_codes() {
    // 5 items, 2 levels; level 1 uses codes {0, 2} of 4, level 2 uses {1} of 3.
    let codes = [0u32, 1, 2, 1, 0, 1, 2, 1, 2, 1];
    let c1 = codes::code_counts(&codes, 2, 0, 4);
    let c2 = codes::code_counts(&codes, 2, 1, 3);
    assert_eq!(c1, vec![2, 0, 3, 0]);
    assert_eq!(c2, vec![0, 5, 0]);
    close(codes::utilization(&c1), 0.5, 0.0, "util level 1");
    close(codes::utilization(&c2), 1.0 / 3.0, 1e-15, "util level 2");
    let m = Metrics::compute("u", &MetricsInput::new(&codes, &[4, 3])).unwrap();
    assert_eq!(m.per_level[0].used_codes, 2);
    close(m.per_level[0].utilization, 0.5, 0.0, "metrics util 1");
    assert_eq!(m.per_level[1].used_codes, 1);
    close(m.per_level[1].max_code_share, 1.0, 0.0, "max share 2");
}

#[test]
fn entropy_uniform_degenerate_and_hand_value() {
    let uniform = [5u64, 5, 5, 5];
    close(codes::entropy_bits(&uniform), 2.0, 1e-12, "uniform bits");
    close(
        codes::normalized_entropy(&uniform),
        1.0,
        1e-12,
        "uniform norm",
    );
    let degenerate = [0u64, 10, 0, 0];
    close(
        codes::entropy_bits(&degenerate),
        0.0,
        0.0,
        "degenerate bits",
    );
    close(
        codes::normalized_entropy(&degenerate),
        0.0,
        0.0,
        "degenerate norm",
    );
    // p = (1/4, 1/4, 1/2): H = 1.5 bits; over k = 4 codes, H / ln 4 = 1.5 / 2.
    let skewed = [1u64, 1, 2, 0];
    close(codes::entropy_bits(&skewed), 1.5, 1e-12, "skewed bits");
    close(
        codes::normalized_entropy(&skewed),
        0.75,
        1e-12,
        "skewed norm",
    );
    // Uniform over 256 codes: 8 bits.
    let big = vec![3u64; 256];
    close(codes::entropy_bits(&big), 8.0, 1e-12, "256 bits");
    // k = 1 is defined as 1; all-zero counts give 0.
    close(codes::normalized_entropy(&[7]), 1.0, 0.0, "k = 1");
    close(codes::entropy_bits(&[0, 0]), 0.0, 0.0, "empty");
}

#[test]
fn gini_equal_one_hot_hand_and_brute_force() {
    close(codes::gini(&[4, 4, 4, 4]), 0.0, 1e-12, "equal");
    close(codes::gini(&[0, 0, 9, 0]), 0.75, 1e-12, "one-hot k=4");
    close(
        codes::gini(&[0u64; 9].iter().chain(&[1]).copied().collect::<Vec<_>>()),
        0.9,
        1e-12,
        "one-hot k=10",
    );
    // Σ_i Σ_j |c_i − c_j| = 20 for (0, 0, 1, 3); / (2 · 4 · 4) = 0.625.
    close(codes::gini(&[3, 0, 1, 0]), 0.625, 1e-12, "hand");
    close(codes::gini(&[0, 0]), 0.0, 0.0, "all zero");
    let mut rng = Rng::new(7);
    for trial in 0..20 {
        let k = 1 + rng.below(40);
        let counts: Vec<u64> = (0..k).map(|_| rng.below(50) as u64).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            continue;
        }
        let mut abs = 0f64;
        for &a in &counts {
            for &b in &counts {
                abs += (a as f64 - b as f64).abs();
            }
        }
        let want = abs / (2.0 * k as f64 * total as f64);
        close(
            codes::gini(&counts),
            want,
            1e-12,
            &format!("random {trial}"),
        );
    }
}

#[test]
fn std_and_top_share() {
    close(codes::count_std(&[1, 3]), 1.0, 1e-12, "std");
    close(codes::count_std(&[2, 2, 2]), 0.0, 0.0, "std equal");
    assert_eq!(codes::top_codes(256, 0.01), 3);
    assert_eq!(codes::top_codes(100, 0.01), 1);
    assert_eq!(codes::top_codes(4, 0.01), 1);
    assert_eq!(codes::top_codes(201, 0.01), 3);
    // k = 4: the top 1% is one code, the largest (5 of 10 items).
    close(
        codes::top_share(&[1, 5, 2, 2], 0.01),
        0.5,
        1e-12,
        "top share",
    );
    // k = 250: top 3 codes; counts 10, 9, 8 then 1 each for 247 codes: 27 / 274.
    let mut counts = vec![1u64; 250];
    counts[17] = 10;
    counts[100] = 9;
    counts[249] = 8;
    close(
        codes::top_share(&counts, 0.01),
        27.0 / 274.0,
        1e-12,
        "k = 250",
    );
}

#[test]
fn collisions_by_hand() {
    // Tuples: (0,0) (0,0) (0,1) (1,1) (0,0) (1,1) (2,0): (0,0) ×3, (1,1) ×2.
    let codes = [0u32, 0, 0, 0, 0, 1, 1, 1, 0, 0, 1, 1, 2, 0];
    let m = Metrics::compute("c", &MetricsInput::new(&codes, &[3, 2])).unwrap();
    assert_eq!(m.items, 7);
    assert_eq!(m.collisions.distinct, 4);
    assert_eq!(m.collisions.collided_items, 5);
    assert_eq!(m.collisions.groups, 2);
    assert_eq!(m.collisions.largest, 3);
    close(m.collision_rate, 5.0 / 7.0, 1e-15, "rate");
    // Prefix clusters: level 1 by first code: {0: 4, 1: 2, 2: 1}.
    assert_eq!(m.per_level[0].prefix.sizes.sorted_desc(), vec![4, 2, 1]);
    assert_eq!(m.per_level[1].prefix.sizes.sorted_desc(), vec![3, 2, 1, 1]);
    // Level-2 code alone: code 0 ×4, code 1 ×3.
    assert_eq!(m.per_level[1].code.sizes.sorted_desc(), vec![4, 3]);

    // All unique: no collisions.
    let unique = [0u32, 1, 1, 0, 1, 1];
    let m = Metrics::compute("u", &MetricsInput::new(&unique, &[2, 2])).unwrap();
    assert_eq!(m.collisions.collided_items, 0);
    assert_eq!(m.collisions.groups, 0);
    assert_eq!(m.collisions.largest, 1);
    assert_eq!(m.collisions.distinct, 3);
}

#[test]
fn prefix_clusters_match_tuple_grouping() {
    let sizes = [3usize, 4, 2];
    let codes = random_codes(300, &sizes, 0.3, 11);
    let prefixes = codes::prefix_clusters(&codes, 3);
    for (l, cl) in prefixes.iter().enumerate() {
        let mut want: HashMap<&[u32], usize> = HashMap::new();
        for row in codes.chunks_exact(3) {
            *want.entry(&row[..=l]).or_insert(0) += 1;
        }
        assert_eq!(cl.count, want.len(), "level {l} clusters");
        // Same cluster id ⇔ same prefix.
        for (i, a) in codes.chunks_exact(3).enumerate().step_by(7) {
            for (j, b) in codes.chunks_exact(3).enumerate() {
                assert_eq!(
                    cl.ids[i] == cl.ids[j],
                    a[..=l] == b[..=l],
                    "level {l}, items {i} {j}"
                );
            }
        }
        let mut got = cl.sizes();
        got.sort_unstable();
        let mut w: Vec<u64> = want.values().map(|&n| n as u64).collect();
        w.sort_unstable();
        assert_eq!(got, w);
    }
}

#[test]
fn size_distribution_runs_histogram_median() {
    let d = SizeDist::from_sizes(&[3, 1, 1, 5, 0, 2]);
    assert_eq!(d.clusters, 5);
    assert_eq!(d.items, 12);
    assert_eq!(d.max, 5);
    assert_eq!(d.median, 2);
    assert_eq!(d.singletons, 2);
    assert_eq!(
        d.runs,
        vec![
            SizeRun { size: 5, count: 1 },
            SizeRun { size: 3, count: 1 },
            SizeRun { size: 2, count: 1 },
            SizeRun { size: 1, count: 2 },
        ]
    );
    assert_eq!(
        d.histogram,
        vec![
            SizeBin {
                lo: 1,
                hi: 1,
                clusters: 2,
                items: 2
            },
            SizeBin {
                lo: 2,
                hi: 3,
                clusters: 2,
                items: 5
            },
            SizeBin {
                lo: 4,
                hi: 7,
                clusters: 1,
                items: 5
            },
        ]
    );
    assert_eq!(d.sorted_desc(), vec![5, 3, 2, 1, 1]);
    assert_eq!(
        d.rank_size_points(),
        vec![(1, 5), (2, 3), (3, 2), (4, 1), (5, 1)]
    );
    // Even count: lower median of (1, 2, 8, 9) is 2.
    assert_eq!(SizeDist::from_sizes(&[9, 1, 8, 2]).median, 2);
    let empty = SizeDist::from_sizes(&[0, 0]);
    assert_eq!(
        (empty.clusters, empty.max, empty.histogram.len()),
        (0, 0, 0)
    );
}

// ----- drift ------------------------------------------------------------------------------

/// Brute-force mean within-cluster cosine: per cluster the mean over ordered pairs i ≠ j;
/// aggregated by items and by pairs over clusters of ≥ 2 items.
fn brute_cohesion(x: &[f32], dim: usize, ids: &[u32]) -> (Option<f64>, Option<f64>) {
    let cos = |i: usize, j: usize| {
        let (a, b) = (&x[i * dim..(i + 1) * dim], &x[j * dim..(j + 1) * dim]);
        let ab: f64 = a.iter().zip(b).map(|(&u, &v)| u as f64 * v as f64).sum();
        let aa: f64 = a.iter().map(|&u| u as f64 * u as f64).sum();
        let bb: f64 = b.iter().map(|&v| v as f64 * v as f64).sum();
        if aa == 0.0 || bb == 0.0 {
            0.0
        } else {
            ab / (aa.sqrt() * bb.sqrt())
        }
    };
    let mut groups: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, &c) in ids.iter().enumerate() {
        groups.entry(c).or_default().push(i);
    }
    let (mut inum, mut iden, mut pnum, mut pden) = (0f64, 0f64, 0f64, 0f64);
    for members in groups.values() {
        let n = members.len();
        if n < 2 {
            continue;
        }
        let mut s = 0f64;
        for &i in members {
            for &j in members {
                if i != j {
                    s += cos(i, j);
                }
            }
        }
        let pairs = (n * (n - 1)) as f64;
        inum += n as f64 * s / pairs;
        iden += n as f64;
        pnum += s;
        pden += pairs;
    }
    if iden == 0.0 {
        (None, None)
    } else {
        (Some(inum / iden), Some(pnum / pden))
    }
}

#[test]
fn cohesion_matches_brute_force_pairwise() {
    let mut rng = Rng::new(3);
    for &(items, dim, nclusters) in &[
        (1usize, 5usize, 1usize),
        (2, 1, 1),
        (97, 13, 9),
        (150, 32, 40),
    ] {
        let mut x = rng.normal_vec(items * dim);
        // Shift so cosines are not all near 0, and zero one row.
        x.iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v += 0.5 * ((i % dim) as f32 / dim as f32));
        if items > 10 {
            x[5 * dim..6 * dim].iter_mut().for_each(|v| *v = 0.0);
        }
        let ids: Vec<u32> = (0..items).map(|_| rng.below(nclusters) as u32).collect();
        let cl = Clusters::from_keys(ids.iter().copied());
        let unit = drift::normalize_rows(&x, dim);
        let got = drift::cohesion(&unit, dim, &cl).unwrap();
        let (wi, wp) = brute_cohesion(&x, dim, &ids);
        match (got.item_weighted, wi) {
            (Some(g), Some(w)) => close(g, w, 1e-6, &format!("item-weighted {items}x{dim}")),
            (g, w) => assert_eq!(g, w, "item-weighted {items}x{dim}"),
        }
        match (got.pair_weighted, wp) {
            (Some(g), Some(w)) => close(g, w, 1e-6, &format!("pair-weighted {items}x{dim}")),
            (g, w) => assert_eq!(g, w, "pair-weighted {items}x{dim}"),
        }
    }
}

#[test]
fn cohesion_hand_values() {
    // Cluster A: two identical directions (cos 1); cluster B: two orthogonal (cos 0) and one
    // opposite of the first (cos −1 to it, 0 to the second): pairs 0, −1, 0 → mean −1/3.
    // C: a singleton, excluded.
    let x = [
        1.0f32, 0.0, // A
        2.0, 0.0, // A
        0.0, 1.0, // B
        1.0, 0.0, // B
        -3.0, 0.0, // B
        5.0, 5.0, // C
    ];
    let ids = [0u32, 0, 1, 1, 1, 2];
    let cl = Clusters::from_keys(ids.iter().copied());
    let c = drift::cohesion(&drift::normalize_rows(&x, 2), 2, &cl).unwrap();
    // Item-weighted: (2 · 1 + 3 · (−1/3)) / 5 = 1/5; pair-weighted: (2 · 1 + 6 · (−1/3)) / 8 = 0.
    close(c.item_weighted.unwrap(), 0.2, 1e-12, "item-weighted");
    close(c.pair_weighted.unwrap(), 0.0, 1e-12, "pair-weighted");
    assert_eq!((c.clustered_items, c.clusters), (5, 2));
    // All singletons: no value.
    let single = Clusters::from_keys(0..6u32);
    let c = drift::cohesion(&drift::normalize_rows(&x, 2), 2, &single).unwrap();
    assert_eq!(
        (c.item_weighted, c.pair_weighted, c.clustered_items),
        (None, None, 0)
    );
}

#[test]
fn purity_by_hand() {
    // Clusters {0,1,2}, {3,4}, {5}; labels 7,7,8 | 1,2 | 3 → majorities 2 + 1 + 1 = 4 of 6.
    let cl = Clusters::from_keys([0u32, 0, 0, 1, 1, 2]);
    close(
        drift::purity(&cl, &[7, 7, 8, 1, 2, 3]).unwrap(),
        4.0 / 6.0,
        1e-15,
        "purity",
    );
    close(
        drift::purity(&cl, &[1, 1, 1, 2, 2, 9]).unwrap(),
        1.0,
        0.0,
        "pure",
    );
    assert!(drift::purity(&cl, &[1, 2]).is_err());
}

/// Four genres in 2-D (directions 0°, 90°, 180°, 270°), 3 items each, coded so that level 2
/// alone mixes genres (as RQ does in the PSRQ paper's Fig. 1) while the prefix keeps them apart.
fn genre_case() -> (Vec<u32>, Vec<f32>, Vec<u32>) {
    let dirs = [(1.0f32, 0.0f32), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)];
    let (mut codes, mut x, mut labels) = (vec![], vec![], vec![]);
    for (g, &(a, b)) in dirs.iter().enumerate() {
        for i in 0..3 {
            let s = 1.0 + i as f32;
            x.extend_from_slice(&[a * s, b * s]);
            labels.push(g as u32);
            // Level 1: genres {0,1} → code 0, {2,3} → code 1. Level 2: code g % 2 + i % 2 · 2.
            codes.push((g / 2) as u32);
            codes.push(((g % 2) + 2 * (i % 2)) as u32);
        }
    }
    (codes, x, labels)
}

#[test]
fn level_two_drift_prefix_vs_code() {
    let (codes, x, labels) = genre_case();
    let input = MetricsInput::new(&codes, &[2, 4])
        .with_embeddings(&x, 2)
        .with_labels(&labels);
    let m = Metrics::compute("genres", &input).unwrap();
    // Global: 12 unit vectors at 4 directions, 3 each. Σ x̂ = 0 → (0 − 12)/(12 · 11) = −1/11.
    close(m.global_cosine.unwrap(), -1.0 / 11.0, 1e-9, "global");
    close(
        m.label_baseline_purity.unwrap(),
        0.25,
        0.0,
        "baseline purity",
    );
    assert_eq!(m.label_count, Some(4));
    // Level 1 clusters {genre 0, 1} and {2, 3}: each has 6 items, 3 at 0° and 3 at 90°:
    // ‖Σ‖² = 9 + 9 = 18 → (18 − 6)/30 = 0.4; purity 3/6 = 0.5.
    let l1 = &m.per_level[0];
    close(
        l1.prefix.cohesion.unwrap().item_weighted.unwrap(),
        0.4,
        1e-9,
        "L1 prefix",
    );
    close(l1.prefix.purity.unwrap(), 0.5, 0.0, "L1 purity");
    // Level-1 prefix and code groupings coincide.
    assert_eq!(l1.prefix, l1.code);
    // Level 2 prefix (g/2, g%2 + 2(i%2)): each genre splits into {i=0,2} and {i=1}: clusters of
    // 2 identical directions (cos 1) and singletons. Cohesion 1, purity 1.
    let l2 = &m.per_level[1];
    close(
        l2.prefix.cohesion.unwrap().item_weighted.unwrap(),
        1.0,
        1e-9,
        "L2 prefix",
    );
    close(l2.prefix.purity.unwrap(), 1.0, 0.0, "L2 prefix purity");
    assert_eq!(l2.prefix.sizes.sorted_desc(), vec![2, 2, 2, 2, 1, 1, 1, 1]);
    // Level-2 code alone: code c = g%2 + 2(i%2) groups genres g and g+2 (opposite directions).
    // Codes 0, 1 (i even): 4 items, 2 at θ and 2 at θ+180° → Σ = 0 → (0 − 4)/12 = −1/3.
    // Codes 2, 3 (i = 1): 2 items, opposite → −1. Item-weighted: (8 · −1/3 + 4 · −1)/12 = −5/9.
    close(
        l2.code.cohesion.unwrap().item_weighted.unwrap(),
        -5.0 / 9.0,
        1e-9,
        "L2 code",
    );
    // Pair-weighted: (2 · 12 · −1/3 + 2 · 2 · −1) / (24 + 4) = −12/28.
    close(
        l2.code.cohesion.unwrap().pair_weighted.unwrap(),
        -12.0 / 28.0,
        1e-9,
        "L2 code pairs",
    );
    // Code purity: codes 0, 1: majority 2 of 4; codes 2, 3: 1 of 2 → (2+2+1+1)/12 = 0.5.
    close(l2.code.purity.unwrap(), 0.5, 0.0, "L2 code purity");
    let t = m.table();
    assert!(t.contains("genres") && t.contains("-0.556"), "{t}");
}

#[test]
fn reconstruction_cosine_and_error() {
    let mut rng = Rng::new(5);
    let (items, dim) = (20, 6);
    let x = rng.normal_vec(items * dim);
    let codes: Vec<u32> = (0..items * 2).map(|i| (i % 3) as u32).collect();
    let same = x.clone();
    let neg: Vec<f32> = x.iter().map(|v| -2.0 * v).collect();
    let recons = vec![neg.clone(), same];
    let input = MetricsInput::new(&codes, &[3, 3])
        .with_embeddings(&x, dim)
        .with_reconstructions(&recons);
    let m = Metrics::compute("r", &input).unwrap();
    close(m.per_level[0].recon_cosine.unwrap(), -1.0, 1e-9, "opposite");
    close(m.per_level[1].recon_cosine.unwrap(), 1.0, 1e-9, "identical");
    close(
        m.per_level[1].recon_sq_error.unwrap(),
        0.0,
        0.0,
        "identical error",
    );
    // ‖x − (−2x)‖² = 9‖x‖², averaged over items.
    let want = 9.0 * x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / items as f64;
    close(
        m.per_level[0].recon_sq_error.unwrap(),
        want,
        1e-9 * want,
        "error",
    );
    // A hand value: x = (1, 0), r = (1, 1) → cos = 1/√2.
    let c = drift::mean_row_cosine(&[1.0, 0.0], &[1.0, 1.0], 2).unwrap();
    close(c, std::f64::consts::FRAC_1_SQRT_2, 1e-12, "hand cos");
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let codes = [0u32, 1, 1, 0];
    assert!(Metrics::compute("e", &MetricsInput::new(&codes, &[])).is_err());
    assert!(Metrics::compute("e", &MetricsInput::new(&codes, &[2, 0])).is_err());
    assert!(Metrics::compute("e", &MetricsInput::new(&codes, &[2, 2, 2])).is_err());
    assert!(Metrics::compute("e", &MetricsInput::new(&codes, &[2, 1])).is_err()); // code 1 ≥ 1
    let x = [0f32; 6];
    let m = MetricsInput::new(&codes, &[2, 2]);
    assert!(Metrics::compute("e", &m.with_embeddings(&x, 2)).is_err()); // 2 items × 2 = 4 ≠ 6
    assert!(Metrics::compute("e", &m.with_embeddings(&x, 0)).is_err());
    assert!(Metrics::compute("e", &m.with_labels(&[1])).is_err());
    let recons = vec![vec![0f32; 4]];
    assert!(Metrics::compute("e", &m.with_reconstructions(&recons)).is_err()); // no embeddings
    let x4 = [1f32; 4];
    assert!(Metrics::compute(
        "e",
        &m.with_embeddings(&x4, 2).with_reconstructions(&recons)
    )
    .is_err()); // 1 ≠ 2 levels
                // No items at all is fine.
    let m = Metrics::compute("empty", &MetricsInput::new(&[], &[4, 4])).unwrap();
    assert_eq!(
        (m.items, m.collisions.distinct, m.collision_rate),
        (0, 0, 0.0)
    );
    assert!(dedup_suffix(&codes, 0).is_err());
    assert!(dedup_suffix(&codes, 3).is_err());
}

#[test]
fn hourglass_at_the_middle_level() {
    // Level 2 concentrates: 90% of items on code 0; levels 1 and 3 near uniform.
    let items = 4000;
    let mut rng = Rng::new(9);
    let mut codes = Vec::new();
    for _ in 0..items {
        codes.push(rng.below(64) as u32);
        codes.push(if rng.uniform() < 0.9 {
            0
        } else {
            rng.below(64) as u32
        });
        codes.push(rng.below(64) as u32);
    }
    let m = Metrics::compute("hg", &MetricsInput::new(&codes, &[64, 64, 64])).unwrap();
    assert_eq!(m.middle_level, 2);
    let mid = m.hourglass().unwrap();
    assert_eq!(mid.level, 2);
    for other in [&m.per_level[0], &m.per_level[2]] {
        assert!(mid.entropy_norm < other.entropy_norm - 0.3);
        assert!(mid.gini > other.gini + 0.5);
        assert!(mid.count_std > 5.0 * other.count_std);
        assert!(mid.top1pct_share > 0.85 && other.top1pct_share < 0.05);
    }
    assert_eq!(mid.top1pct_codes, 1);
    // Middle of 4 levels is 2; of 1 level is 1.
    let four = random_codes(10, &[2, 2, 2, 2], 0.0, 1);
    assert_eq!(
        Metrics::compute("4", &MetricsInput::new(&four, &[2; 4]))
            .unwrap()
            .middle_level,
        2
    );
    let one = random_codes(10, &[2], 0.0, 1);
    assert_eq!(
        Metrics::compute("1", &MetricsInput::new(&one, &[2]))
            .unwrap()
            .middle_level,
        1
    );
}

// ----- dedup ------------------------------------------------------------------------------

#[test]
fn dedup_by_hand() {
    // Tuples (1,2) (3,4) (1,2) (5,6) (1,2) (3,4).
    let codes = [1u32, 2, 3, 4, 1, 2, 5, 6, 1, 2, 3, 4];
    let d = dedup_suffix(&codes, 2).unwrap();
    assert_eq!(d.levels, 3);
    assert_eq!(
        d.codes,
        vec![1, 2, 0, 3, 4, 0, 1, 2, 1, 5, 6, 0, 1, 2, 2, 3, 4, 1]
    );
    assert_eq!((d.collided_items, d.groups, d.suffix_size), (5, 2, 3));
    // No collisions: every suffix 0, suffix codebook 1.
    let d = dedup_suffix(&[0, 1, 2], 1).unwrap();
    assert_eq!(d.codes, vec![0, 0, 1, 0, 2, 0]);
    assert_eq!((d.collided_items, d.groups, d.suffix_size), (0, 0, 1));
    let d = dedup_suffix(&[], 3).unwrap();
    assert_eq!((d.codes.len(), d.levels, d.suffix_size), (0, 4, 1));
}

#[test]
fn dedup_makes_tuples_unique_and_keeps_the_rest() {
    let sizes = [4usize, 3, 2];
    let codes = random_codes(500, &sizes, 0.5, 21);
    let d = dedup_suffix(&codes, 3).unwrap();
    assert_eq!(d.codes.len(), 500 * 4);
    let before = Metrics::compute("before", &MetricsInput::new(&codes, &sizes)).unwrap();
    assert!(before.collisions.groups > 10, "test needs collisions");
    assert_eq!(d.collided_items, before.collisions.collided_items);
    assert_eq!(d.groups, before.collisions.groups);
    assert_eq!(d.suffix_size, before.collisions.largest);
    let mut seen = HashSet::new();
    let mut counts: HashMap<&[u32], usize> = HashMap::new();
    for row in codes.chunks_exact(3) {
        *counts.entry(row).or_insert(0) += 1;
    }
    let mut next: HashMap<&[u32], u32> = HashMap::new();
    for (old, new) in codes.chunks_exact(3).zip(d.codes.chunks_exact(4)) {
        assert_eq!(&new[..3], old, "prefix unchanged");
        assert!(seen.insert(new.to_vec()), "tuple {new:?} repeated");
        assert!((new[3] as usize) < d.suffix_size);
        if counts[old] == 1 {
            assert_eq!(new[3], 0, "non-colliding item changed");
        } else {
            let n = next.entry(old).or_insert(0);
            assert_eq!(new[3], *n, "suffix not in item order");
            *n += 1;
        }
    }
    let sizes4 = [4usize, 3, 2, d.suffix_size];
    let after = Metrics::compute("after", &MetricsInput::new(&d.codes, &sizes4)).unwrap();
    assert_eq!(after.collisions.collided_items, 0);
    assert_eq!(after.collisions.distinct, 500);
}

// ----- outputs ----------------------------------------------------------------------------

fn two_methods() -> (Metrics, Metrics) {
    let sizes = [16usize, 16, 16];
    let mut rng = Rng::new(4);
    let (items, dim) = (600, 8);
    let x = rng.normal_vec(items * dim);
    let labels: Vec<u32> = (0..items).map(|i| (i % 5) as u32).collect();
    let a = random_codes(items, &sizes, 0.0, 31);
    let b = random_codes(items, &sizes, 0.4, 32);
    let ma = Metrics::compute(
        "RQ",
        &MetricsInput::new(&a, &sizes)
            .with_embeddings(&x, dim)
            .with_labels(&labels),
    )
    .unwrap();
    let mb = Metrics::compute(
        "PSRQ",
        &MetricsInput::new(&b, &sizes)
            .with_embeddings(&x, dim)
            .with_labels(&labels),
    )
    .unwrap();
    (ma, mb)
}

#[test]
fn json_round_trip_and_table() {
    let (a, b) = two_methods();
    let json = a.to_json();
    assert!(json.contains("\"per_level\"") && json.contains("\"entropy_bits\""));
    let back = Metrics::from_json(&json).unwrap();
    assert_eq!(
        (back.items, back.levels, back.collisions),
        (a.items, a.levels, a.collisions)
    );
    assert_eq!(back.per_level.len(), 3);
    assert_eq!(back.per_level[1].prefix.sizes, a.per_level[1].prefix.sizes);
    close(
        back.per_level[2].gini,
        a.per_level[2].gini,
        1e-12,
        "gini round trip",
    );
    assert!(Metrics::from_json("{").is_err());
    let arr: serde_json::Value = serde_json::from_str(&compare_json(&[&a, &b])).unwrap();
    assert_eq!(arr.as_array().unwrap().len(), 2);

    let dir = tmp_dir("json");
    let path = dir.join("m.json");
    a.write_json(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), json);
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "temporary file left behind"
    );

    let t = compare_table(&[&a, &b]);
    // Header, 3 levels × 2 methods, 2 summaries, footnote.
    assert_eq!(t.lines().count(), 1 + 6 + 2 + 1, "{t}");
    assert!(t.lines().nth(1).unwrap().starts_with("RQ "), "{t}");
    assert!(t.lines().nth(2).unwrap().starts_with("PSRQ "), "{t}");
    assert!(t.contains("  2*"), "middle level starred:\n{t}");
    assert_eq!(format!("{a}"), a.table());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

/// Text elements whose content is exactly `label` (the SVG backend puts text on its own line).
fn count_text(svg: &str, label: &str) -> usize {
    svg.split('<')
        .filter(|t| {
            t.starts_with("text") && t.split_once('>').map(|(_, c)| c.trim()) == Some(label)
        })
        .count()
}

#[test]
fn svg_has_a_series_per_level() {
    let (a, b) = two_methods();
    let dir = tmp_dir("svg");
    let path = dir.join("sizes.svg");
    a.write_svg(&path).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(
        svg.starts_with("<svg") || svg.starts_with("<?xml"),
        "{}",
        &svg[..80]
    );
    assert!(svg.trim_end().ends_with("</svg>"));
    for l in 1..=3 {
        // One legend entry per level in each of the two panels.
        assert_eq!(count_text(&svg, &format!("L{l} (k=16)")), 2, "legend L{l}");
    }
    // Each panel: 3 series + 3 legend swatches are polylines (plus axes, which are lines).
    assert!(
        count(&svg, "<polyline") >= 2 * 6,
        "polylines: {}",
        count(&svg, "<polyline")
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "temporary file left behind"
    );

    let path2 = dir.join("compare.svg");
    plot::write_rank_size_svg(&path2, &[&a, &b]).unwrap();
    let svg = std::fs::read_to_string(&path2).unwrap();
    assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"));
    for l in 1..=3 {
        assert_eq!(count_text(&svg, &format!("RQ L{l}")), 2, "RQ L{l}");
        assert_eq!(count_text(&svg, &format!("PSRQ L{l}")), 2, "PSRQ L{l}");
    }
    assert!(svg.contains("RQ vs PSRQ"));
    assert!(plot::rank_size_svg(&[]).is_err());
    // A degenerate method (one cluster per level) still plots.
    let one = Metrics::compute("one", &MetricsInput::new(&[0, 0, 0, 0], &[1, 1])).unwrap();
    assert_eq!(
        count_text(&plot::rank_size_svg(&[&one]).unwrap(), "L2 (k=1)"),
        2
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
