//! RQ-KMeans and PSRQ: encode/decode consistency, checkpoints, resume, and the faithful PSRQ
//! update rule.
use crate::common;
use common::*;
use semid::quant::any::AnyTokenizer;
use semid::quant::psrq::{Psrq, PsrqConfig};
use semid::quant::rq_kmeans::{RqKMeans, RqKMeansConfig};
use semid::quant::tokenizer::{FitHooks, Tokenizer};

/// Points around 12 well-spread centres, with smaller structure inside.
fn blobs(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut r = semid::rng::Rng::new(seed);
    let centres: Vec<f32> = (0..12 * d).map(|_| r.normal() as f32 * 4.0).collect();
    let mut x = Vec::with_capacity(n * d);
    for i in 0..n {
        let c = i % 12;
        for j in 0..d {
            x.push(centres[c * d + j] + r.normal() as f32 * 0.7);
        }
    }
    x
}

fn rq_cfg() -> RqKMeansConfig {
    RqKMeansConfig {
        levels: 3,
        k: 8,
        seed: 5,
        ..Default::default()
    }
}

fn psrq_cfg() -> PsrqConfig {
    PsrqConfig {
        levels: 3,
        k: 8,
        seed: 5,
        ..Default::default()
    }
}

fn sq_err(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum()
}

#[test]
fn encoding_the_training_items_gives_their_training_codes() {
    let (n, d) = (600, 16);
    let x = blobs(n, d, 1);
    let g = gpu();
    let (rq, codes) = RqKMeans::fit(&g, &x, d, &rq_cfg()).unwrap();
    assert_eq!(rq.encode(&g, &x).unwrap(), codes);
    let (ps, codes) = Psrq::fit(&g, &x, d, &psrq_cfg()).unwrap();
    assert_eq!(ps.encode(&g, &x).unwrap(), codes);
    assert_eq!(codes.items(), n);
    assert_eq!(codes.levels, 3);
}

#[test]
fn each_level_reduces_the_reconstruction_error() {
    let (n, d) = (600, 16);
    let x = blobs(n, d, 2);
    let g = gpu();
    for tok in [
        AnyTokenizer::RqKMeans(RqKMeans::fit(&g, &x, d, &rq_cfg()).unwrap().0),
        AnyTokenizer::Psrq(Psrq::fit(&g, &x, d, &psrq_cfg()).unwrap().0),
    ] {
        let codes = tok.encode(&g, &x).unwrap();
        let recs = tok.level_reconstructions(&codes).unwrap();
        let errs: Vec<f64> = recs.iter().map(|r| sq_err(r, &x)).collect();
        assert!(
            errs[0] < sq_err(&vec![0.0; n * d], &x),
            "{}: {errs:?}",
            tok.method()
        );
        for w in errs.windows(2) {
            assert!(w[1] < w[0], "{}: errors {errs:?}", tok.method());
        }
        assert_eq!(tok.decode(&codes).unwrap(), recs[2]);
    }
}

#[test]
fn psrq_follows_the_faithful_update_rule() {
    // Level 2 clusters [X_2 ⊕ (X − X_2)] with X_2 = X − C_1[j_1]; its centroid's first half is
    // the mean level-2 residual of its members, its second half their mean prefix C_1[j_1].
    let (n, d) = (600, 8);
    let x = blobs(n, d, 3);
    let g = gpu();
    let (ps, codes) = Psrq::fit(&g, &x, d, &psrq_cfg()).unwrap();
    assert_eq!(ps.codebooks[0].len(), 8 * d);
    assert_eq!(ps.codebooks[1].len(), 8 * 2 * d);
    let c1 = &ps.codebooks[0];
    let c2 = &ps.codebooks[1];
    let mut sums = vec![0f64; 8 * 2 * d];
    let mut counts = [0usize; 8];
    for i in 0..n {
        let (j1, j2) = (codes.item(i)[0] as usize, codes.item(i)[1] as usize);
        counts[j2] += 1;
        for t in 0..d {
            let prefix = c1[j1 * d + t];
            sums[j2 * 2 * d + t] += (x[i * d + t] - prefix) as f64;
            sums[j2 * 2 * d + d + t] += prefix as f64;
        }
    }
    for j in 0..8 {
        if counts[j] == 0 {
            continue;
        }
        for t in 0..2 * d {
            let mean = sums[j * 2 * d + t] / counts[j] as f64;
            let got = c2[j * 2 * d + t] as f64;
            assert!(
                (mean - got).abs() < 1e-3 * (1.0 + mean.abs()),
                "cluster {j} coord {t}: {got} vs {mean}"
            );
        }
    }
    // Reconstruction after level 2 = C_1[j_1] + C_2[j_2][:d].
    let recs = ps.level_reconstructions(&codes).unwrap();
    for i in [0, 17, n - 1] {
        let (j1, j2) = (codes.item(i)[0] as usize, codes.item(i)[1] as usize);
        for t in 0..d {
            let want = c1[j1 * d + t] + c2[j2 * 2 * d + t];
            assert!((recs[1][i * d + t] - want).abs() < 1e-5);
        }
    }
}

#[test]
fn checkpoints_round_trip_and_resume_gives_the_same_fit() {
    let (n, d) = (400, 12);
    let x = blobs(n, d, 4);
    let g = gpu();
    let dir = std::env::temp_dir().join(format!("semid-tok-{}", std::process::id()));
    let (full, codes) = Psrq::fit(&g, &x, d, &psrq_cfg()).unwrap();
    let p = dir.join("psrq.safetensors");
    AnyTokenizer::Psrq(full.clone()).save(&p, "fp").unwrap();
    let (back, meta) = AnyTokenizer::load(&p).unwrap();
    assert_eq!(meta.method, "psrq");
    assert_eq!(back.encode(&g, &x).unwrap(), codes);

    // Stop after two levels (checkpointed by the hook), then resume to three.
    let two = PsrqConfig {
        levels: 2,
        ..psrq_cfg()
    };
    let partial_path = dir.join("partial.safetensors");
    let mut saved = 0;
    {
        let mut progress = |_: usize, _: usize| {};
        let mut on_level = |t: &Psrq| {
            saved += 1;
            AnyTokenizer::Psrq(t.clone()).save(&partial_path, "fp")
        };
        Psrq::fit_with(
            &g,
            &x,
            d,
            &two,
            FitHooks {
                progress: &mut progress,
                resume: None,
                on_level: &mut on_level,
            },
        )
        .unwrap();
    }
    assert_eq!(saved, 2);
    let (partial, _) = AnyTokenizer::load(&partial_path).unwrap();
    let AnyTokenizer::Psrq(partial) = partial else {
        panic!("method")
    };
    assert_eq!(partial.codebooks.len(), 2);
    let (resumed, rcodes) = FitHooks::none(|mut h| {
        h.resume = Some(partial);
        Psrq::fit_with(&g, &x, d, &psrq_cfg(), h)
    })
    .unwrap();
    assert_eq!(rcodes, codes);
    assert_eq!(resumed.codebooks, full.codebooks);

    let (rq, rq_codes) = RqKMeans::fit(&g, &x, d, &rq_cfg()).unwrap();
    let q = dir.join("rq.safetensors");
    AnyTokenizer::RqKMeans(rq).save(&q, "fp").unwrap();
    let (rq_back, _) = AnyTokenizer::load(&q).unwrap();
    assert_eq!(rq_back.encode(&g, &x).unwrap(), rq_codes);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_shapes_are_errors() {
    let g = gpu();
    let e = Psrq::fit(&g, &[1.0; 10], 3, &psrq_cfg())
        .unwrap_err()
        .to_string();
    assert!(e.contains("not whole rows"), "{e}");
    let x = blobs(100, 4, 5);
    let (ps, _) = Psrq::fit(&g, &x, 4, &psrq_cfg()).unwrap();
    let e = ps.encode(&g, &x[..7]).unwrap_err().to_string();
    assert!(e.contains("not whole rows"), "{e}");
}

#[test]
fn metrics_judge_the_encoded_items() {
    let (n, d) = (600, 16);
    let x = blobs(n, d, 6);
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 12).collect();
    let g = gpu();
    let (ps, _) = Psrq::fit(&g, &x, d, &psrq_cfg()).unwrap();
    let m = ps.metrics(&g, &x, Some(&labels)).unwrap();
    assert_eq!(m.items, n);
    assert_eq!(m.per_level.len(), 3);
    // The 12 planted blobs are found by 8 codes: level-1 purity well above the 1/12 baseline.
    let p1 = m.per_level[0].code.purity.unwrap();
    assert!(p1 > 0.5, "purity {p1}");
    let rc: Vec<f64> = m
        .per_level
        .iter()
        .map(|l| l.recon_cosine.unwrap())
        .collect();
    assert!(rc[0] < rc[2] && rc[2] > 0.9, "{rc:?}");
}
