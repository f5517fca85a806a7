//! Fused nearest-code search and top-k against a plain CPU reference (f64).

use crate::common;
use common::*;

use semid::kernels::codebook::{
    add_code_penalty, code_terms, nearest, nearest_into, nearest_with, top_k, top_k_with, Metric,
    SearchOptions, Tile, MAX_TOP_K,
};
use semid::{DType, Tensor};

const TILES: [Tile; 4] = [Tile::Auto, Tile::Wide, Tile::Medium, Tile::Small];

/// CPU distances of one query to every code, in f64.
fn cpu_dists(x: &[f32], codes: &[f32], d: usize, metric: Metric) -> Vec<f64> {
    let xn: f64 = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
    codes
        .chunks(d)
        .map(|c| match metric {
            Metric::L2 => x
                .iter()
                .zip(c)
                .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
                .sum(),
            Metric::Cosine => {
                let cn: f64 = c.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
                if xn == 0.0 || cn == 0.0 {
                    1.0
                } else {
                    let dot: f64 = x.iter().zip(c).map(|(&a, &b)| a as f64 * b as f64).sum();
                    1.0 - dot / (xn * cn)
                }
            }
        })
        .collect()
}

/// Tolerance on distance comparisons for one query: f32 rounding of ‖x‖² + ‖c‖² − 2x·c.
fn tol(x: &[f32], codes: &[f32], d: usize, metric: Metric) -> f64 {
    match metric {
        Metric::L2 => {
            let xn: f64 = x.iter().map(|&v| (v as f64).powi(2)).sum();
            let cmax = codes
                .chunks(d)
                .map(|c| c.iter().map(|&v| (v as f64).powi(2)).sum::<f64>())
                .fold(0.0, f64::max);
            1e-5 * (xn + cmax) * (d as f64).sqrt() + 1e-6
        }
        Metric::Cosine => 1e-5 * (d as f64).sqrt() + 1e-6,
    }
}

/// Checks one query's GPU answer against the CPU: the chosen index must be the CPU argmin
/// (lower index on ties) unless the two distances are within rounding; the reported distance
/// must match the CPU distance of the chosen code.
fn check_best(q: usize, got_i: u32, got_d: f32, dists: &[f64], t: f64, what: &str) {
    let mut best = 0;
    for (j, &v) in dists.iter().enumerate() {
        if v < dists[best] {
            best = j;
        }
    }
    let gi = got_i as usize;
    assert!(
        gi < dists.len(),
        "{what}: query {q}: index {gi} out of range"
    );
    if gi != best {
        assert!(
            (dists[gi] - dists[best]).abs() <= t,
            "{what}: query {q}: got code {gi} at {}, CPU best is {best} at {}",
            dists[gi],
            dists[best]
        );
    }
    assert!(
        (got_d as f64 - dists[gi].max(0.0)).abs() <= t,
        "{what}: query {q}: distance {got_d}, CPU {}",
        dists[gi]
    );
    assert!(
        got_d >= 0.0 && got_d.is_finite(),
        "{what}: query {q}: distance {got_d}"
    );
}

fn check_nearest(n: usize, k: usize, d: usize, metric: Metric, tile: Tile, seed: u64) {
    let x = rand_vec(n * d, seed);
    let c = rand_vec(k * d, seed + 1);
    let xt = upload(&x, &[n, d]);
    let ct = upload(&c, &[k, d]);
    let opts = SearchOptions { metric, tile };
    let r = nearest_with(&xt, &ct, None, &opts).unwrap();
    assert_eq!(r.index.shape(), &[n]);
    assert_eq!(r.index.dtype(), DType::U32);
    let gi = r.index.to_u32().unwrap();
    let gd = r.dist.to_vec().unwrap();
    let what = format!("{n}x{k}x{d} {metric:?} {tile:?}");
    for q in 0..n {
        let xq = &x[q * d..(q + 1) * d];
        let ds = cpu_dists(xq, &c, d, metric);
        check_best(q, gi[q], gd[q], &ds, tol(xq, &c, d, metric), &what);
    }
}

#[test]
fn nearest_matches_cpu_at_awkward_shapes() {
    let shapes = [
        (1, 1, 1),
        (37, 61, 29),
        (37, 61, 32),
        (5, 1, 7),
        (100, 3, 4),
        (70, 33, 13),
        (33, 17, 8),
        (300, 70, 6),
    ];
    for (i, &(n, k, d)) in shapes.iter().enumerate() {
        for metric in [Metric::L2, Metric::Cosine] {
            for tile in TILES {
                check_nearest(n, k, d, metric, tile, 10 + i as u64);
            }
        }
    }
}

#[test]
fn nearest_finds_exact_matches() {
    // Queries that are copies of codes must find them (distance 0, cosine distance 0).
    let (k, d) = (50, 12);
    let c = rand_vec(k * d, 3);
    let order: Vec<usize> = (0..k).rev().collect();
    let x: Vec<f32> = order
        .iter()
        .flat_map(|&j| c[j * d..(j + 1) * d].to_vec())
        .collect();
    for metric in [Metric::L2, Metric::Cosine] {
        for tile in TILES {
            let r = nearest_with(
                &upload(&x, &[k, d]),
                &upload(&c, &[k, d]),
                None,
                &SearchOptions { metric, tile },
            )
            .unwrap();
            let gi = r.index.to_u32().unwrap();
            let gd = r.dist.to_vec().unwrap();
            for (q, &j) in order.iter().enumerate() {
                assert_eq!(gi[q] as usize, j, "{metric:?} {tile:?} query {q}");
                assert!(gd[q] < 1e-4, "{metric:?} {tile:?} query {q}: {}", gd[q]);
            }
        }
    }
}

#[test]
fn ties_go_to_the_lower_index() {
    // Three copies of a 16-code book: every best distance is shared by j, j + 16, j + 32.
    let (base, d, n) = (16, 9, 45);
    let c0 = rand_vec(base * d, 5);
    let c: Vec<f32> = c0.iter().chain(&c0).chain(&c0).copied().collect();
    let x = rand_vec(n * d, 6);
    for metric in [Metric::L2, Metric::Cosine] {
        for tile in TILES {
            let r = nearest_with(
                &upload(&x, &[n, d]),
                &upload(&c, &[3 * base, d]),
                None,
                &SearchOptions { metric, tile },
            )
            .unwrap();
            let gi = r.index.to_u32().unwrap();
            for q in 0..n {
                let ds = cpu_dists(&x[q * d..(q + 1) * d], &c0, d, metric);
                let best = (0..base).fold(0, |b, j| if ds[j] < ds[b] { j } else { b });
                assert_eq!(gi[q] as usize, best, "{metric:?} {tile:?} query {q}");
            }
        }
        // Top-k lists order equal distances by index.
        let r = top_k(&upload(&x, &[n, d]), &upload(&c, &[3 * base, d]), 6, metric).unwrap();
        let gi = r.index.to_u32().unwrap();
        for q in 0..n {
            let l = &gi[q * 6..q * 6 + 6];
            assert_eq!(l[1], l[0] + 16, "{metric:?} query {q}: {l:?}");
            assert_eq!(l[2], l[0] + 32, "{metric:?} query {q}: {l:?}");
            assert_eq!(l[4], l[3] + 16, "{metric:?} query {q}: {l:?}");
            assert_eq!(l[5], l[3] + 32, "{metric:?} query {q}: {l:?}");
            assert!(l[0] < 16 && l[3] < 16);
        }
    }
    // All codes identical: index 0 everywhere.
    let c = vec![0.5f32; 40 * d];
    for tile in TILES {
        let r = nearest_with(
            &upload(&x, &[n, d]),
            &upload(&c, &[40, d]),
            None,
            &SearchOptions {
                metric: Metric::L2,
                tile,
            },
        )
        .unwrap();
        assert!(
            r.index.to_u32().unwrap().iter().all(|&i| i == 0),
            "{tile:?}"
        );
    }
}

fn check_top_k(n: usize, k: usize, d: usize, kk: usize, metric: Metric, seed: u64) {
    let x = rand_vec(n * d, seed);
    let c = rand_vec(k * d, seed + 1);
    let r = top_k(&upload(&x, &[n, d]), &upload(&c, &[k, d]), kk, metric).unwrap();
    assert_eq!(r.index.shape(), &[n, kk]);
    let gi = r.index.to_u32().unwrap();
    let gd = r.dist.to_vec().unwrap();
    for q in 0..n {
        let xq = &x[q * d..(q + 1) * d];
        let ds = cpu_dists(xq, &c, d, metric);
        let t = tol(xq, &c, d, metric);
        let mut order: Vec<usize> = (0..k).collect();
        order.sort_by(|&a, &b| ds[a].total_cmp(&ds[b]).then(a.cmp(&b)));
        let list = &gi[q * kk..(q + 1) * kk];
        let mut seen = std::collections::HashSet::new();
        for (pos, &j) in list.iter().enumerate() {
            let j = j as usize;
            assert!(
                j < k && seen.insert(j),
                "{metric:?} query {q}: bad list {list:?}"
            );
            let want = order[pos];
            if j != want {
                assert!(
                    (ds[j] - ds[want]).abs() <= t,
                    "{metric:?} {n}x{k}x{d} top-{kk} query {q} pos {pos}: got {j} ({}), want {want} ({})",
                    ds[j],
                    ds[want]
                );
            }
            assert!((gd[q * kk + pos] as f64 - ds[j].max(0.0)).abs() <= t);
            if pos > 0 {
                assert!(
                    gd[q * kk + pos] >= gd[q * kk + pos - 1],
                    "query {q}: not sorted"
                );
            }
        }
    }
}

#[test]
fn top_k_matches_cpu_sort() {
    for (i, &(n, k, d, kk)) in [
        (1, 1, 1, 1),
        (37, 61, 29, 5),
        (37, 61, 32, 61),
        (9, 200, 16, 64),
        (70, 33, 13, 1),
        (13, 100, 3, 17),
    ]
    .iter()
    .enumerate()
    {
        for metric in [Metric::L2, Metric::Cosine] {
            check_top_k(n, k, d, kk, metric, 40 + i as u64);
        }
    }
}

#[test]
fn top_k_first_entry_is_nearest() {
    let (n, k, d) = (150, 90, 20);
    let x = upload(&rand_vec(n * d, 8), &[n, d]);
    let c = upload(&rand_vec(k * d, 9), &[k, d]);
    for metric in [Metric::L2, Metric::Cosine] {
        let a = nearest(&x, &c, metric).unwrap();
        let b = top_k(&x, &c, 7, metric).unwrap();
        let ai = a.index.to_u32().unwrap();
        let bi = b.index.to_u32().unwrap();
        let ad = a.dist.to_vec().unwrap();
        let bd = b.dist.to_vec().unwrap();
        for q in 0..n {
            assert_eq!(ai[q], bi[q * 7], "{metric:?} query {q}");
            assert_eq!(ad[q], bd[q * 7], "{metric:?} query {q}");
        }
    }
}

#[test]
fn cosine_with_zero_vectors_is_defined() {
    let d = 6;
    // Codes: a zero code first, then two others.
    let c = [
        vec![0.0; d],
        vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        vec![0.0, -2.0, 0.0, 0.0, 0.0, 1.0],
    ]
    .concat();
    // Queries: a zero query, one along code 1, one opposite code 1.
    let x = [
        vec![0.0; d],
        vec![3.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        vec![-1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    ]
    .concat();
    for tile in TILES {
        let r = nearest_with(
            &upload(&x, &[3, d]),
            &upload(&c, &[3, d]),
            None,
            &SearchOptions {
                metric: Metric::Cosine,
                tile,
            },
        )
        .unwrap();
        let gi = r.index.to_u32().unwrap();
        let gd = r.dist.to_vec().unwrap();
        assert!(gd.iter().all(|v| v.is_finite()), "{tile:?}: {gd:?}");
        // Zero query: every distance is 1, so the lowest index wins.
        assert_eq!((gi[0], gd[0]), (0, 1.0), "{tile:?}");
        assert_eq!(gi[1], 1, "{tile:?}");
        assert!(gd[1].abs() < 1e-6, "{tile:?}: {}", gd[1]);
        // Opposite of code 1 (distance 2); code 2 is orthogonal (1), the zero code is 1 too and
        // has the lower index.
        assert_eq!((gi[2], gd[2]), (0, 1.0), "{tile:?}");
    }
    let r = top_k(
        &upload(&x, &[3, d]),
        &upload(&c, &[3, d]),
        3,
        Metric::Cosine,
    )
    .unwrap();
    let gi = r.index.to_u32().unwrap();
    let gd = r.dist.to_vec().unwrap();
    assert_eq!(&gi[0..3], &[0, 1, 2]);
    assert_eq!(&gd[0..3], &[1.0, 1.0, 1.0]);
    assert_eq!(&gi[6..9], &[0, 2, 1]);
    assert_close(&gd[6..9], &[1.0, 1.0, 2.0], 1e-6, 0.0, "opposite query");
    // Zero codes' terms are (0, 0), not NaN.
    let t = code_terms(&upload(&c, &[3, d]), Metric::Cosine).unwrap();
    let t = t.to_vec().unwrap();
    assert_eq!(&t[0..2], &[0.0, 0.0]);
    assert!(t.iter().all(|v| v.is_finite()));
}

#[test]
fn batched_codebooks_match_per_batch_cpu() {
    for &(b, n, k, d) in &[
        (3, 37, 19, 12),
        (4, 5, 33, 7),
        (2, 300, 40, 16),
        (5, 1, 1, 1),
    ] {
        let x = rand_vec(b * n * d, 70);
        let c = rand_vec(b * k * d, 71);
        let xt = upload(&x, &[b, n, d]);
        let ct = upload(&c, &[b, k, d]);
        for metric in [Metric::L2, Metric::Cosine] {
            for tile in TILES {
                let r = nearest_with(&xt, &ct, None, &SearchOptions { metric, tile }).unwrap();
                assert_eq!(r.index.shape(), &[b, n]);
                let gi = r.index.to_u32().unwrap();
                let gd = r.dist.to_vec().unwrap();
                for bi in 0..b {
                    let cb = &c[bi * k * d..(bi + 1) * k * d];
                    for q in 0..n {
                        let row = bi * n + q;
                        let xq = &x[row * d..(row + 1) * d];
                        let ds = cpu_dists(xq, cb, d, metric);
                        let what =
                            format!("batched {b}x{n}x{k}x{d} {metric:?} {tile:?} batch {bi}");
                        check_best(q, gi[row], gd[row], &ds, tol(xq, cb, d, metric), &what);
                    }
                }
            }
            if k >= 3 {
                let kk = 3;
                let r = top_k(&xt, &ct, kk, metric).unwrap();
                assert_eq!(r.index.shape(), &[b, n, kk]);
                let gi = r.index.to_u32().unwrap();
                for bi in 0..b {
                    let cb = &c[bi * k * d..(bi + 1) * k * d];
                    for q in 0..n {
                        let row = bi * n + q;
                        let ds = cpu_dists(&x[row * d..(row + 1) * d], cb, d, metric);
                        let mut order: Vec<usize> = (0..k).collect();
                        order.sort_by(|&a, &b| ds[a].total_cmp(&ds[b]).then(a.cmp(&b)));
                        let got: Vec<usize> = gi[row * kk..(row + 1) * kk]
                            .iter()
                            .map(|&v| v as usize)
                            .collect();
                        assert_eq!(
                            got,
                            order[..kk].to_vec(),
                            "batched top-k batch {bi} query {q}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn more_than_65535_workgroups() {
    // 70,000 codebooks of one query each: one workgroup per codebook.
    let (b, k, d) = (70_000, 2, 3);
    let x = rand_vec(b * d, 90);
    let c = rand_vec(b * k * d, 91);
    let r = nearest(&upload(&x, &[b, 1, d]), &upload(&c, &[b, k, d]), Metric::L2).unwrap();
    let gi = r.index.to_u32().unwrap();
    let gd = r.dist.to_vec().unwrap();
    for i in 0..b {
        let cb = &c[i * k * d..(i + 1) * k * d];
        let xq = &x[i * d..(i + 1) * d];
        check_best(
            i,
            gi[i],
            gd[i],
            &cpu_dists(xq, cb, d, Metric::L2),
            tol(xq, cb, d, Metric::L2),
            "70k codebooks",
        );
    }
    // One shared codebook, 64 queries per workgroup: 4,194,305 queries need 65,537 workgroups.
    let n = 64 * 65_536 + 5;
    let x: Vec<f32> = (0..n).map(|i| (i % 1000) as f32 * 0.001).collect();
    let c = [0.25f32, 0.75];
    let r = nearest_with(
        &upload(&x, &[n, 1]),
        &upload(&c, &[2, 1]),
        None,
        &SearchOptions {
            metric: Metric::L2,
            tile: Tile::Small,
        },
    )
    .unwrap();
    let gi = r.index.to_u32().unwrap();
    for (i, (&g, &v)) in gi.iter().zip(&x).enumerate() {
        let want = if (v - 0.25).abs() <= (v - 0.75).abs() {
            0
        } else {
            1
        };
        assert_eq!(g, want, "query {i} ({v})");
    }
}

#[test]
fn queries_above_the_binding_limit() {
    // 133,000 × 256 floats = 136 MB, over the 128 MiB storage-binding limit.
    let (n, k, d) = (133_000, 5, 256);
    let x = rand_vec(n * d, 31);
    let c = rand_vec(k * d, 32);
    let xt = upload(&x, &[n, d]);
    assert!(xt.bytes() > common::gpu().kernel_limits().max_storage_binding);
    let ct = upload(&c, &[k, d]);
    for metric in [Metric::L2, Metric::Cosine] {
        let r = nearest(&xt, &ct, metric).unwrap();
        let gi = r.index.to_u32().unwrap();
        let gd = r.dist.to_vec().unwrap();
        for q in (0..n).step_by(97).chain(n - 50..n) {
            let xq = &x[q * d..(q + 1) * d];
            let ds = cpu_dists(xq, &c, d, metric);
            check_best(q, gi[q], gd[q], &ds, tol(xq, &c, d, metric), "large x");
        }
    }
    let r = top_k(&xt, &ct, 2, Metric::L2).unwrap();
    let gi = r.index.to_u32().unwrap();
    for q in (n - 1000..n).step_by(7) {
        let ds = cpu_dists(&x[q * d..(q + 1) * d], &c, d, Metric::L2);
        let mut order: Vec<usize> = (0..k).collect();
        order.sort_by(|&a, &b| ds[a].total_cmp(&ds[b]));
        assert_eq!(gi[2 * q] as usize, order[0], "query {q}");
    }
}

#[test]
fn penalties_exclude_codes() {
    let (n, k, d) = (40, 10, 8);
    let x = rand_vec(n * d, 12);
    let c = rand_vec(k * d, 13);
    let xt = upload(&x, &[n, d]);
    let ct = upload(&c, &[k, d]);
    let allowed = [1usize, 4, 7];
    let pen: Vec<f32> = (0..k)
        .map(|j| {
            if allowed.contains(&j) {
                0.0
            } else {
                f32::INFINITY
            }
        })
        .collect();
    for metric in [Metric::L2, Metric::Cosine] {
        let terms = code_terms(&ct, metric).unwrap();
        add_code_penalty(&terms, &upload(&pen, &[k])).unwrap();
        for tile in TILES {
            let r = nearest_with(&xt, &ct, Some(&terms), &SearchOptions { metric, tile }).unwrap();
            let gi = r.index.to_u32().unwrap();
            for q in 0..n {
                let ds = cpu_dists(&x[q * d..(q + 1) * d], &c, d, metric);
                let best = *allowed
                    .iter()
                    .min_by(|&&a, &&b| ds[a].total_cmp(&ds[b]))
                    .unwrap();
                assert_eq!(gi[q] as usize, best, "{metric:?} {tile:?} query {q}");
            }
        }
        // A top-5 list over 3 allowed codes ends in (u32::MAX, inf) entries.
        let r = top_k_with(&xt, &ct, 5, Some(&terms), &SearchOptions::metric(metric)).unwrap();
        let gi = r.index.to_u32().unwrap();
        let gd = r.dist.to_vec().unwrap();
        for q in 0..n {
            let l = &gi[q * 5..q * 5 + 5];
            assert!(
                l[..3].iter().all(|j| allowed.contains(&(*j as usize))),
                "{l:?}"
            );
            assert_eq!(&l[3..], &[u32::MAX, u32::MAX]);
            assert!(gd[q * 5 + 3].is_infinite() && gd[q * 5 + 4].is_infinite());
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    let x = upload(&rand_vec(12, 1), &[4, 3]);
    let c = upload(&rand_vec(8, 2), &[2, 4]);
    assert!(nearest(&x, &c, Metric::L2).is_err(), "dimension mismatch");
    let empty = Tensor::empty(&gpu(), &[0, 3]).unwrap();
    assert!(nearest(&x, &empty, Metric::L2).is_err(), "no codes");
    let c = upload(&rand_vec(6, 2), &[2, 3]);
    assert!(
        top_k(&x, &c, 3, Metric::L2).is_err(),
        "k above the number of codes"
    );
    assert!(top_k(&x, &c, 0, Metric::L2).is_err(), "k = 0");
    let big = upload(&rand_vec(3 * 100, 2), &[100, 3]);
    assert!(
        top_k(&x, &big, MAX_TOP_K + 1, Metric::L2).is_err(),
        "k above the maximum"
    );
    let xi = Tensor::from_u32(&gpu(), &[0; 12], &[4, 3]).unwrap();
    assert!(nearest(&xi, &c, Metric::L2).is_err(), "u32 queries");
    let c3 = upload(&rand_vec(2 * 2 * 3, 2), &[2, 2, 3]);
    assert!(
        nearest(&x, &c3, Metric::L2).is_err(),
        "batched codes need batched queries"
    );
    let x3 = upload(&rand_vec(3 * 4 * 3, 2), &[3, 4, 3]);
    assert!(
        nearest(&x3, &c3, Metric::L2).is_err(),
        "batch count mismatch"
    );
    let terms = code_terms(&c, Metric::L2).unwrap();
    let bad_terms = code_terms(&big, Metric::L2).unwrap();
    assert!(nearest_with(&x, &c, Some(&bad_terms), &SearchOptions::default()).is_err());
    // Outputs aliasing inputs are refused.
    let idx = Tensor::empty_typed(&gpu(), &[4], DType::U32).unwrap();
    assert!(nearest_into(&x, &c, Some(&terms), &SearchOptions::default(), &idx, &x).is_err());
    let dist = Tensor::empty(&gpu(), &[4]).unwrap();
    nearest_into(&x, &c, Some(&terms), &SearchOptions::default(), &idx, &dist).unwrap();
    // Zero queries give empty results.
    let none = Tensor::empty(&gpu(), &[0, 3]).unwrap();
    let r = nearest(&none, &c, Metric::L2).unwrap();
    assert_eq!(r.index.numel(), 0);
}

// ---------------------------------------------------------------------------------------------
// Codebooks longer than one dispatch may loop over (llvmpipe stops an invocation after 65,535
// loop iterations): the codes are searched in ranges that continue the running best.

#[test]
fn nearest_over_codebooks_longer_than_a_loop_limit() {
    // Each shape ran (k / tile width) · (d + 1) ≥ 70,000 steps per invocation in one dispatch
    // and answered codes from the first ~60% of the book (e.g. 60741 for a planted 69999).
    // Query 0 has exact copies at codes 5 and k - 1 (the lower index must win across ranges);
    // query 1 only at k - 1; the others are random.
    for (i, &(tile, d, k, metric)) in [
        (Tile::Wide, 31, 70_000, Metric::L2),
        (Tile::Medium, 28, 70_000, Metric::Cosine),
        (Tile::Small, 4, 140_000, Metric::L2),
        (Tile::Auto, 8, 140_000, Metric::L2),
    ]
    .iter()
    .enumerate()
    {
        let n = 5;
        let x = rand_vec(n * d, 70 + i as u64);
        let mut c = rand_vec(k * d, 80 + i as u64);
        for (q, at) in [(0, 5), (0, k - 1), (1, k - 1)] {
            c[at * d..(at + 1) * d].copy_from_slice(&x[q * d..(q + 1) * d]);
        }
        let r = nearest_with(
            &upload(&x, &[n, d]),
            &upload(&c, &[k, d]),
            None,
            &SearchOptions { metric, tile },
        )
        .unwrap();
        let gi = r.index.to_u32().unwrap();
        let gd = r.dist.to_vec().unwrap();
        let what = format!("{tile:?} d {d} k {k} {metric:?}");
        assert_eq!(gi[0], 5, "{what}: query 0");
        assert_eq!(gi[1], k as u32 - 1, "{what}: query 1");
        for q in 0..n {
            let xq = &x[q * d..(q + 1) * d];
            let ds = cpu_dists(xq, &c, d, metric);
            check_best(q, gi[q], gd[q], &ds, tol(xq, &c, d, metric), &what);
        }
    }
}

#[test]
fn top_k_over_codebooks_longer_than_a_loop_limit() {
    // Random data: 20,000 codes at top-1 and 2,000 at top-64 both exceeded the loop limit
    // in one dispatch (each list insertion is a loop), and got 8 of 16 and 10 of 16 first
    // entries wrong.
    check_top_k(16, 20_000, 8, 1, Metric::L2, 90);
    check_top_k(16, 2_000, 8, 64, Metric::L2, 91);
    check_top_k(9, 3_001, 12, 10, Metric::Cosine, 92);
    // The worst case for the lists: distances that fall with the code index, so every code is
    // inserted at the front and shifts the whole list.
    let (k, kk) = (3_000, 64);
    let x = vec![0f32; 4 * 4];
    let c: Vec<f32> = (0..k)
        .flat_map(|i| [(k - i) as f32 * 0.01, 0.0, 0.0, 0.0])
        .collect();
    let r = top_k(&upload(&x, &[4, 4]), &upload(&c, &[k, 4]), kk, Metric::L2).unwrap();
    let gi = r.index.to_u32().unwrap();
    let want: Vec<u32> = (0..kk).map(|j| (k - 1 - j) as u32).collect();
    for q in 0..4 {
        assert_eq!(&gi[q * kk..(q + 1) * kk], &want[..], "query {q}");
    }
}
