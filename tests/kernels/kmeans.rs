//! GPU k-means against planted clusters and the f64 CPU reference, and its kernels against
//! plain CPU code.

use crate::common;
use common::*;

use semid::kernels::kmeans as kern;
use semid::kernels::movement::gather_rows;
use semid::kernels::sort::{lower_bounds, sort_indices};
use semid::quant::kmeans::{kmeans, kmeans_cpu, EmptyPolicy, Init, KMeansConfig, Metric};
use semid::rng::Rng;
use semid::{DType, Tensor};

/// `k` well-separated blobs of the given sizes in `d` dims: (points, true labels). Blob centers
/// are 10 apart or more, noise σ = 0.2. Points are shuffled, then one point of each blob is
/// moved to the front (so the first k points seed every blob).
fn blobs(sizes: &[usize], d: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
    blobs_noise(sizes, d, seed, 0.2)
}

fn blobs_noise(sizes: &[usize], d: usize, seed: u64, noise: f32) -> (Vec<f32>, Vec<usize>) {
    let mut rng = Rng::new(seed);
    let k = sizes.len();
    let centers: Vec<Vec<f32>> = (0..k)
        .map(|c| {
            (0..d)
                .map(|j| if j == c % d { 10.0 * (1 + c / d) as f32 } else { 0.0 } + rng.uniform_f32(-1.0, 1.0))
                .collect()
        })
        .collect();
    let mut pts: Vec<(Vec<f32>, usize)> = Vec::new();
    for (c, &s) in sizes.iter().enumerate() {
        for _ in 0..s {
            pts.push((
                centers[c]
                    .iter()
                    .map(|&m| m + noise * rng.normal() as f32)
                    .collect(),
                c,
            ));
        }
    }
    rng.shuffle(&mut pts);
    for c in 0..k {
        let at = pts.iter().skip(c).position(|p| p.1 == c).unwrap() + c;
        pts.swap(c, at);
    }
    (
        pts.iter().flat_map(|p| p.0.clone()).collect(),
        pts.iter().map(|p| p.1).collect(),
    )
}

/// Whether two labelings define the same partition.
fn same_partition(a: &[u32], b: &[usize]) -> bool {
    let mut map = std::collections::HashMap::new();
    let mut back = std::collections::HashMap::new();
    a.iter()
        .zip(b)
        .all(|(&x, &y)| *map.entry(x).or_insert(y) == y && *back.entry(y).or_insert(x) == x)
}

fn counts(assign: &[u32], k: usize) -> Vec<usize> {
    let mut c = vec![0; k];
    for &a in assign {
        c[a as usize] += 1;
    }
    c
}

fn cfg(k: usize) -> KMeansConfig {
    KMeansConfig {
        seed: 3,
        ..KMeansConfig::new(k)
    }
}

#[test]
fn planted_clusters_are_recovered() {
    for &(d, metric) in &[
        (7, Metric::L2),
        (16, Metric::L2),
        (7, Metric::Cosine),
        (12, Metric::Cosine),
    ] {
        let sizes = [40, 23, 61, 37, 29];
        let (x, truth) = blobs(&sizes, d, 11);
        let xt = upload(&x, &[truth.len(), d]);
        for init in [Init::KMeansPlusPlus, Init::FirstK] {
            let c = KMeansConfig {
                metric,
                init: init.clone(),
                ..cfg(5)
            };
            let r = kmeans(&gpu(), &xt, &c).unwrap();
            assert!(
                same_partition(&r.assign, &truth),
                "d {d} {metric:?} {init:?}: {:?}",
                counts(&r.assign, 5)
            );
            assert!(r.iters >= 1 && r.iters <= c.max_iters);
            let cpu = kmeans_cpu(&x, d, &c).unwrap();
            assert!(
                same_partition(&cpu.assign, &truth),
                "CPU d {d} {metric:?} {init:?}"
            );
            assert!(
                (r.inertia - cpu.inertia).abs() <= 1e-3 * cpu.inertia.max(1.0),
                "{} vs {}",
                r.inertia,
                cpu.inertia
            );
        }
    }
}

#[test]
fn same_seed_gives_identical_results() {
    let (x, truth) = blobs(&[50, 50, 50, 50, 50, 50], 9, 21);
    let xt = upload(&x, &[truth.len(), 9]);
    for metric in [Metric::L2, Metric::Cosine] {
        for balanced in [false, true] {
            // Fewer clusters than blobs and a short run: the result depends on the seeding.
            let c = KMeansConfig {
                metric,
                balanced,
                max_iters: 4,
                tol: 0.0,
                seed: 99,
                ..KMeansConfig::new(4)
            };
            let a = kmeans(&gpu(), &xt, &c).unwrap();
            let b = kmeans(&gpu(), &xt, &c).unwrap();
            assert_eq!(a.assign, b.assign);
            assert_eq!(a.iters, b.iters);
            assert_eq!(a.inertia.to_bits(), b.inertia.to_bits());
            let (ca, cb) = (a.centroids.to_vec().unwrap(), b.centroids.to_vec().unwrap());
            assert!(
                ca.iter().zip(&cb).all(|(p, q)| p.to_bits() == q.to_bits()),
                "{metric:?} {balanced}"
            );
        }
    }
}

#[test]
fn gpu_matches_cpu_reference_on_the_same_init() {
    // Overlapping blobs (σ 2 around centers 10 apart), so the iterations move many points.
    for &(d, metric, k) in &[
        (13, Metric::L2, 7),
        (16, Metric::L2, 7),
        (13, Metric::Cosine, 6),
        (32, Metric::Cosine, 9),
    ] {
        let mut rng = Rng::new(40 + d as u64);
        let n = 301;
        let centers: Vec<f32> = (0..5 * d).map(|_| rng.uniform_f32(-5.0, 5.0)).collect();
        let x: Vec<f32> = (0..n)
            .flat_map(|i| {
                let c = i % 5;
                (0..d)
                    .map(|j| centers[c * d + j] + 2.0 * rng.normal() as f32)
                    .collect::<Vec<_>>()
            })
            .collect();
        let xt = upload(&x, &[n, d]);
        for init in [Init::FirstK, Init::KMeansPlusPlus] {
            let c = KMeansConfig {
                metric,
                init: init.clone(),
                max_iters: 6,
                tol: 0.0,
                ..cfg(k)
            };
            let g = kmeans(&gpu(), &xt, &c).unwrap();
            let r = kmeans_cpu(&x, d, &c).unwrap();
            let what = format!("d {d} {metric:?} {init:?}");
            assert_eq!(g.assign, r.assign, "{what}");
            assert_eq!(g.iters, r.iters, "{what}");
            let gc = g.centroids.to_vec().unwrap();
            let rc: Vec<f32> = r.centroids.iter().map(|&v| v as f32).collect();
            assert_close(&gc, &rc, 1e-4, 1e-4, &what);
            assert!(
                (g.inertia - r.inertia).abs() <= 1e-4 * r.inertia,
                "{what}: {} vs {}",
                g.inertia,
                r.inertia
            );
        }
    }
}

#[test]
fn empty_clusters_are_repaired() {
    let sizes = [30, 30, 30];
    let d = 5;
    let (x, truth) = blobs(&sizes, d, 31);
    let n = truth.len();
    let xt = upload(&x, &[n, d]);
    // Initial centroids: a point of blob 0 twice (the copy can win no point: ties go to the
    // lower index) and a point of blob 1. Blob 2 has no centroid.
    let p0 = truth.iter().position(|&t| t == 0).unwrap();
    let p1 = truth.iter().position(|&t| t == 1).unwrap();
    let init: Vec<f32> = [p0, p0, p1]
        .iter()
        .flat_map(|&p| x[p * d..(p + 1) * d].to_vec())
        .collect();
    for policy in [
        EmptyPolicy::SplitLargest,
        EmptyPolicy::FarthestPoint,
        EmptyPolicy::Keep,
    ] {
        for metric in [Metric::L2, Metric::Cosine] {
            let c = KMeansConfig {
                init: Init::Centroids(init.clone()),
                empty: policy,
                metric,
                max_iters: 20,
                ..cfg(3)
            };
            let g = kmeans(&gpu(), &xt, &c).unwrap();
            let r = kmeans_cpu(&x, d, &c).unwrap();
            let what = format!("{policy:?} {metric:?}");
            assert_eq!(g.assign, r.assign, "{what}");
            assert_eq!(g.empty_repaired, r.empty_repaired, "{what}");
            let cnt = counts(&g.assign, 3);
            match policy {
                EmptyPolicy::Keep => assert_eq!(g.empty_repaired, 0, "{what}"),
                _ => {
                    assert!(g.empty_repaired >= 1, "{what}");
                    assert!(cnt.iter().all(|&c| c > 0), "{what}: {cnt:?}");
                }
            }
            if policy == EmptyPolicy::FarthestPoint {
                // The farthest point lies in the uncovered blob, so all three are recovered.
                assert!(same_partition(&g.assign, &truth), "{what}: {cnt:?}");
            }
        }
    }
}

#[test]
fn balanced_clusters_respect_capacity() {
    // One blob holds most points; balanced k-means must still cap every cluster at ⌈n/k⌉.
    // Wide blobs, so that no two points' best distances are within f32 rounding (the greedy
    // order must agree with the f64 reference).
    let d = 6;
    let (x, truth) = blobs_noise(&[150, 20, 17, 14], d, 51, 1.5);
    let n = truth.len();
    let xt = upload(&x, &[n, d]);
    for metric in [Metric::L2, Metric::Cosine] {
        for k in [4, 7] {
            let c = KMeansConfig {
                balanced: true,
                metric,
                max_iters: 8,
                ..cfg(k)
            };
            let g = kmeans(&gpu(), &xt, &c).unwrap();
            let cap = n.div_ceil(k);
            let cnt = counts(&g.assign, k);
            assert!(
                cnt.iter().all(|&v| v <= cap),
                "{metric:?} k {k}: {cnt:?} over {cap}"
            );
            assert_eq!(cnt.iter().sum::<usize>(), n);
            let r = kmeans_cpu(&x, d, &c).unwrap();
            assert_eq!(g.assign, r.assign, "{metric:?} k {k}");
            // Unbalanced k-means puts far more than the cap in the big blob.
            let u = kmeans(
                &gpu(),
                &xt,
                &KMeansConfig {
                    balanced: false,
                    ..c.clone()
                },
            )
            .unwrap();
            assert!(
                counts(&u.assign, k).iter().any(|&v| v > cap),
                "{metric:?} k {k}"
            );
        }
    }
    // Equal planted blobs of exactly n/k points are recovered exactly.
    let (x, truth) = blobs(&[25, 25, 25, 25], d, 52);
    let c = KMeansConfig {
        balanced: true,
        ..cfg(4)
    };
    let g = kmeans(&gpu(), &upload(&x, &[100, d]), &c).unwrap();
    assert!(same_partition(&g.assign, &truth));
}

#[test]
fn spherical_kmeans_has_unit_centroids() {
    let d = 10;
    let (x, truth) = blobs(&[33, 41, 27, 19], d, 61);
    let n = truth.len();
    for init in [Init::KMeansPlusPlus, Init::FirstK] {
        let c = KMeansConfig {
            metric: Metric::Cosine,
            init,
            ..cfg(4)
        };
        let g = kmeans(&gpu(), &upload(&x, &[n, d]), &c).unwrap();
        let cent = g.centroids.to_vec().unwrap();
        for r in cent.chunks(d) {
            let norm: f32 = r.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
        }
        assert!(same_partition(&g.assign, &truth));
    }
}

#[test]
fn awkward_sizes_run() {
    // k = 1, k = n, d = 1, n = 1.
    for &(n, d, k) in &[(1, 1, 1), (37, 1, 1), (29, 3, 29), (61, 29, 5)] {
        let x = rand_vec(n * d, 70 + n as u64);
        let xt = upload(&x, &[n, d]);
        for metric in [Metric::L2, Metric::Cosine] {
            for balanced in [false, true] {
                let c = KMeansConfig {
                    metric,
                    balanced,
                    init: Init::FirstK,
                    max_iters: 5,
                    ..cfg(k)
                };
                let g = kmeans(&gpu(), &xt, &c).unwrap();
                let r = kmeans_cpu(&x, d, &c).unwrap();
                assert_eq!(
                    g.assign, r.assign,
                    "{n}x{d} k {k} {metric:?} balanced {balanced}"
                );
                assert_eq!(g.centroids.shape(), &[k, d]);
                if k == n && metric == Metric::L2 {
                    assert!(
                        g.inertia < 1e-9,
                        "every point its own cluster: {}",
                        g.inertia
                    );
                }
            }
        }
    }
}

#[test]
fn bad_configs_are_errors() {
    let xt = upload(&rand_vec(20, 1), &[5, 4]);
    assert!(kmeans(&gpu(), &xt, &cfg(6)).is_err(), "n < k");
    assert!(
        kmeans_cpu(&rand_vec(20, 1), 4, &cfg(6)).is_err(),
        "n < k (CPU)"
    );
    assert!(kmeans(&gpu(), &xt, &cfg(0)).is_err(), "k = 0");
    assert!(
        kmeans(
            &gpu(),
            &xt,
            &KMeansConfig {
                tol: -1.0,
                ..cfg(2)
            }
        )
        .is_err(),
        "tol < 0"
    );
    let bad = KMeansConfig {
        init: Init::Centroids(vec![0.0; 7]),
        ..cfg(2)
    };
    assert!(kmeans(&gpu(), &xt, &bad).is_err(), "wrong init length");
    let xi = Tensor::from_u32(&gpu(), &[0; 20], &[5, 4]).unwrap();
    assert!(kmeans(&gpu(), &xi, &cfg(2)).is_err(), "u32 points");
    let x3 = upload(&rand_vec(24, 1), &[2, 3, 4]);
    assert!(kmeans(&gpu(), &x3, &cfg(2)).is_err(), "rank 3");
}

// ------------------------------------------------------------------------------------------
// Kernels

#[test]
fn block_sums_are_sequential_f32_sums() {
    for n in [1, 37, 256, 257, 5000] {
        let v = rand_vec(n, n as u64);
        let got = kern::block_sums(&upload(&v, &[n]))
            .unwrap()
            .to_vec()
            .unwrap();
        let want: Vec<f32> = v
            .chunks(256)
            .map(|c| c.iter().fold(0f32, |s, &a| s + a))
            .collect();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.to_bits(), w.to_bits(), "n {n}");
        }
    }
}

#[test]
fn centroid_kernels_match_cpu_with_more_than_65535_clusters() {
    // 70,000 clusters: the per-cluster kernels run 70,000 workgroups.
    let (n, d, k) = (90_000, 3, 70_000);
    let mut rng = Rng::new(8);
    let x = rand_vec(n * d, 9);
    let assign: Vec<u32> = (0..n).map(|_| rng.below(k) as u32).collect();
    let dist = rand_vec(n, 10).iter().map(|v| v.abs()).collect::<Vec<_>>();
    let old = rand_vec(k * d, 11);
    let xt = upload(&x, &[n, d]);
    let at = Tensor::from_u32(&gpu(), &assign, &[n]).unwrap();
    let (sorted, perm) = sort_indices(&at, k).unwrap();
    let starts = lower_bounds(&sorted, k + 1).unwrap();
    let sums = kern::centroid_sums(&xt, &perm, &starts, k).unwrap();
    let new = Tensor::empty(&gpu(), &[k, d]).unwrap();
    let stats = Tensor::empty_typed(&gpu(), &[4 * k], DType::U32).unwrap();
    kern::centroid_finish(
        &sums,
        &upload(&old, &[k, d]),
        &perm,
        &starts,
        &upload(&dist, &[n]),
        Metric::L2,
        &new,
        stats.range(),
    )
    .unwrap();
    let new = new.to_vec().unwrap();
    let stats = stats.to_u32().unwrap();
    let mut cnt = vec![0u32; k];
    let mut sum = vec![0f64; k * d];
    let mut sse = vec![0f64; k];
    for i in 0..n {
        let c = assign[i] as usize;
        cnt[c] += 1;
        sse[c] += dist[i] as f64;
        for j in 0..d {
            sum[c * d + j] += x[i * d + j] as f64;
        }
    }
    for c in 0..k {
        assert_eq!(stats[4 * c], cnt[c], "count of {c}");
        assert!(
            (f32::from_bits(stats[4 * c + 1]) as f64 - sse[c]).abs() < 1e-5,
            "sse of {c}"
        );
        for j in 0..d {
            let want = if cnt[c] == 0 {
                old[c * d + j] as f64
            } else {
                sum[c * d + j] / cnt[c] as f64
            };
            assert!(
                (new[c * d + j] as f64 - want).abs() < 1e-5,
                "centroid {c} dim {j}"
            );
        }
    }
    assert!(
        cnt.contains(&0),
        "some clusters are empty and keep their centroid"
    );
}

#[test]
fn chunked_kernels_handle_x_above_the_binding_limit() {
    // 133,000 × 256 floats = 136 MB: the kernels walk x in two row chunks.
    let (n, d, k) = (133_000, 256, 3);
    let x = rand_vec(n * d, 12);
    let xt = upload(&x, &[n, d]);
    assert!(xt.bytes() > gpu().kernel_limits().max_storage_binding);
    let assign: Vec<u32> = (0..n).map(|i| (i % 7 % k) as u32).collect();
    let at = Tensor::from_u32(&gpu(), &assign, &[n]).unwrap();
    let (sorted, perm) = sort_indices(&at, k).unwrap();
    let starts = lower_bounds(&sorted, k + 1).unwrap();
    let sums = kern::centroid_sums(&xt, &perm, &starts, k)
        .unwrap()
        .to_vec()
        .unwrap();
    for c in 0..k {
        for j in [0, 1, 77, 255] {
            let want: f64 = (0..n)
                .filter(|&i| assign[i] as usize == c)
                .map(|i| x[i * d + j] as f64)
                .sum();
            assert!(
                (sums[c * d + j] as f64 - want).abs() < 1e-2,
                "cluster {c} dim {j}: {} vs {want}",
                sums[c * d + j]
            );
        }
    }
    // Rows from both chunks.
    let rows = [0u32, 5, 70_000, 132_999];
    let idx = Tensor::from_u32(&gpu(), &rows, &[4]).unwrap();
    let g = gather_rows(&xt, &idx).unwrap().to_vec().unwrap();
    let want: Vec<f32> = rows
        .iter()
        .flat_map(|&r| x[r as usize * d..(r as usize + 1) * d].to_vec())
        .collect();
    assert_eq!(g, want);
    let pairs = Tensor::from_u32(&gpu(), &[0, 132_999, 1, 3, 2, 70_001], &[3, 2]).unwrap();
    let c = Tensor::zeros(&gpu(), &[3, d]).unwrap();
    kern::set_rows(&xt, &pairs, &c, Metric::L2).unwrap();
    let got = c.to_vec().unwrap();
    for (t, &src) in [132_999usize, 3, 70_001].iter().enumerate() {
        assert_eq!(&got[t * d..(t + 1) * d], &x[src * d..(src + 1) * d]);
    }
    // k-means++ distances over both chunks.
    let mind = Tensor::empty(&gpu(), &[n]).unwrap();
    kern::pp_update(&xt, &c, 0, &mind, true, Metric::L2).unwrap();
    let m = mind.to_vec().unwrap();
    for i in [0usize, 66_000, 132_999] {
        let want: f64 = (0..d)
            .map(|j| (x[i * d + j] as f64 - x[132_999 * d + j] as f64).powi(2))
            .sum();
        assert!(
            (m[i] as f64 - want).abs() < 1e-3 * want.max(1.0),
            "point {i}"
        );
    }
    assert_eq!(m[132_999], 0.0);
}

// ------------------------------------------------------------------------------------------
// Loops longer than llvmpipe runs (65,535 iterations per invocation): the launchers split them.

/// Per-cluster f64 sums of the rows of `x` by `assign`.
fn cluster_sums_cpu(x: &[f32], d: usize, assign: &[u32], k: usize) -> Vec<f32> {
    let mut sum = vec![0f64; k * d];
    for (i, &c) in assign.iter().enumerate() {
        for j in 0..d {
            sum[c as usize * d + j] += x[i * d + j] as f64;
        }
    }
    sum.into_iter().map(|v| v as f32).collect()
}

#[test]
fn centroid_sums_of_clusters_longer_than_a_loop_limit() {
    // 200,000 points, 9 in 10 in cluster 0: one workgroup used to walk 180,000 members and
    // stopped after 65,535 (d 4 gave a sum of -91.6 for -282.8). Vec4 and scalar rows, and a
    // width above 256 values (more than one pass over the columns per member).
    let n = 200_000;
    let assign: Vec<u32> = (0..n).map(|i| (i % 10 == 9) as u32).collect();
    let at = Tensor::from_u32(&gpu(), &assign, &[n]).unwrap();
    let (sorted, perm) = sort_indices(&at, 2).unwrap();
    let starts = lower_bounds(&sorted, 3).unwrap();
    assert_eq!(starts.to_u32().unwrap(), vec![0, 180_000, 200_000]);
    for d in [4, 3, 260] {
        let x = rand_vec(n * d, 60 + d as u64);
        let sums = kern::centroid_sums(&upload(&x, &[n, d]), &perm, &starts, 2).unwrap();
        let want = cluster_sums_cpu(&x, d, &assign, 2);
        // f32 sums of up to 180,000 values in [-1, 1): error well under 0.05.
        assert_close(&sums.to_vec().unwrap(), &want, 0.05, 0.0, &format!("d {d}"));
    }
}

#[test]
fn centroid_finish_sums_the_distances_of_millions_of_members() {
    // 4,300,000 members in one cluster: 64 invocations strided over them ran 67,188 steps each,
    // and the sum of the distances came out as 131,067 instead of 4,300,000.
    let n = 4_300_000;
    let gpu = gpu();
    let perm: Vec<u32> = (0..n as u32).collect();
    let dist: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.25).collect();
    let ones = n - 3;
    let starts = Tensor::from_u32(&gpu, &[0, ones as u32, n as u32], &[3]).unwrap();
    let new = Tensor::empty(&gpu, &[2, 1]).unwrap();
    let stats = Tensor::empty_typed(&gpu, &[8], DType::U32).unwrap();
    kern::centroid_finish(
        &upload(&[ones as f32, 3.0], &[2, 1]),
        &upload(&[0.0, 0.0], &[2, 1]),
        &Tensor::from_u32(&gpu, &perm, &[n]).unwrap(),
        &starts,
        &upload(&dist, &[n]),
        Metric::L2,
        &new,
        stats.range(),
    )
    .unwrap();
    let st = stats.to_u32().unwrap();
    assert_eq!((st[0], st[4]), (ones as u32, 3));
    for (c, range) in [(0, 0..ones), (1, ones..n)] {
        let want: f64 = dist[range].iter().map(|&v| v as f64).sum();
        let got = f32::from_bits(st[4 * c + 1]) as f64;
        assert!(
            (got - want).abs() <= 1e-5 * want.max(1.0),
            "cluster {c}: {got} vs {want}"
        );
    }
    assert_eq!(new.to_vec().unwrap(), vec![1.0, 1.0]);
}

#[test]
fn pp_pick_walks_super_blocks_of_a_large_mind() {
    // 300,000 points (1,172 blocks, 5 super-blocks of 256 blocks) with mass at three points.
    let n = 300_000;
    let mut mind = vec![0f32; n];
    mind[70_000] = 1.0;
    mind[150_000] = 2.0;
    mind[n - 1] = 3.0;
    let mt = upload(&mind, &[n]);
    let parts = kern::block_sums(&mt).unwrap();
    let pair = Tensor::empty_typed(&gpu(), &[2], DType::U32).unwrap();
    for (u, want) in [(0.1, 70_000), (0.4, 150_000), (0.9, n - 1), (0.0, 70_000)] {
        kern::pp_pick(&parts, &mt, u, 7, &pair).unwrap();
        assert_eq!(pair.to_u32().unwrap(), vec![7, want as u32], "u {u}");
    }
    // No mass: point floor(u·n).
    let zeros = upload(&vec![0f32; n], &[n]);
    let parts = kern::block_sums(&zeros).unwrap();
    kern::pp_pick(&parts, &zeros, 0.5, 1, &pair).unwrap();
    assert_eq!(pair.to_u32().unwrap(), vec![1, 150_000]);
}

#[test]
fn kmeans_with_a_cluster_of_150000_points_matches_cpu() {
    // The whole loop on 200,000 points in two blobs of 150,000 and 50,000.
    let (x, truth) = blobs(&[150_000, 50_000], 3, 80);
    let n = truth.len();
    let c = KMeansConfig {
        init: Init::FirstK,
        max_iters: 3,
        tol: 0.0,
        ..cfg(2)
    };
    let g = kmeans(&gpu(), &upload(&x, &[n, 3]), &c).unwrap();
    assert!(same_partition(&g.assign, &truth));
    let r = kmeans_cpu(&x, 3, &c).unwrap();
    let rc: Vec<f32> = r.centroids.iter().map(|&v| v as f32).collect();
    assert_close(&g.centroids.to_vec().unwrap(), &rc, 1e-4, 1e-4, "centroids");
}
