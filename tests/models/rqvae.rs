//! RQ-VAE: one training step against a plain-Rust reference, k-means initialisation, dead-code
//! re-seeding, reproducibility, checkpoints and resume, and — on the synthetic data — a better
//! reconstruction than RQ-KMeans at the same code budget with every code in use.
use crate::common;
use common::*;
use semid::data::synth::{generate, SynthConfig};
use semid::metrics::{Metrics, MetricsInput};
use semid::quant::any::AnyTokenizer;
use semid::quant::cluster::{self, KMeansOptions};
use semid::quant::rqvae::{OptimizerKind, RqVae, RqVaeConfig, RqVaeTrainer};
use semid::quant::tokenizer::{FitHooks, Tokenizer};
use semid::rng::Rng;
use semid::{RqKMeans, RqKMeansConfig, Tensor};

fn mse(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        / a.len() as f64
}

/// A small model on `dim`-wide data, quick enough for many fits.
fn small_cfg(seed: u64) -> RqVaeConfig {
    RqVaeConfig {
        hidden: vec![32],
        latent: 8,
        levels: 3,
        k: 8,
        batch_size: 64,
        epochs: 3,
        seed,
        lr: 3e-3,
        ..Default::default()
    }
}

fn blobs(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    let centres: Vec<f32> = (0..10 * d).map(|_| r.normal() as f32 * 2.0).collect();
    (0..n * d)
        .map(|i| centres[(i / d % 10) * d + i % d] + r.normal() as f32 * 0.5)
        .collect()
}

// ---- plain-Rust reference of one step -------------------------------------------------------

struct Lin {
    w: Vec<f64>,
    b: Vec<f64>,
    fi: usize,
    fo: usize,
}

fn lin(p: &[semid::io::NamedTensor], name: &str) -> Lin {
    let get = |n: &str| {
        p.iter()
            .find(|t| t.name == n)
            .unwrap_or_else(|| panic!("{n}"))
    };
    let w = get(&format!("{name}.weight"));
    let b = get(&format!("{name}.bias"));
    Lin {
        w: w.data.iter().map(|v| *v as f64).collect(),
        b: b.data.iter().map(|v| *v as f64).collect(),
        fi: w.shape[1],
        fo: w.shape[0],
    }
}

fn fwd(l: &Lin, x: &[f64], relu: bool) -> Vec<f64> {
    let n = x.len() / l.fi;
    let mut y = vec![0.0; n * l.fo];
    for i in 0..n {
        for o in 0..l.fo {
            let mut s = l.b[o];
            for j in 0..l.fi {
                s += x[i * l.fi + j] * l.w[o * l.fi + j];
            }
            y[i * l.fo + o] = if relu { s.max(0.0) } else { s };
        }
    }
    y
}

/// Given dY (after the activation's mask is applied: dZ), the weight/bias gradients and dX.
fn bwd(l: &Lin, x: &[f64], dz: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let n = x.len() / l.fi;
    let (mut dw, mut db, mut dx) = (vec![0.0; l.fo * l.fi], vec![0.0; l.fo], vec![0.0; n * l.fi]);
    for i in 0..n {
        for o in 0..l.fo {
            let g = dz[i * l.fo + o];
            db[o] += g;
            for j in 0..l.fi {
                dw[o * l.fi + j] += g * x[i * l.fi + j];
                dx[i * l.fi + j] += g * l.w[o * l.fi + j];
            }
        }
    }
    (dw, db, dx)
}

fn relu_mask(dy: &[f64], y: &[f64]) -> Vec<f64> {
    dy.iter()
        .zip(y)
        .map(|(g, v)| if *v > 0.0 { *g } else { 0.0 })
        .collect()
}

#[test]
fn one_sgd_step_matches_a_plain_rust_reference() {
    let g = gpu();
    let (n, dim, hid, lat, k, levels, beta, lr) = (7usize, 6, 5, 3, 4, 2, 0.25f64, 0.1f32);
    let cfg = RqVaeConfig {
        hidden: vec![hid],
        latent: lat,
        levels,
        k,
        beta: beta as f32,
        optimizer: OptimizerKind::Sgd,
        lr,
        kmeans_init: false,
        dead_code_steps: 0,
        seed: 9,
        ..Default::default()
    };
    let x = rand_vec(n * dim, 4);
    let xt = upload(&x, &[n, dim]);
    let mut tr = RqVaeTrainer::new(&g, dim, &cfg).unwrap();
    // Codebooks near the latents so that several codes are chosen.
    let z0 = tr.latents(&xt).unwrap().to_vec().unwrap();
    let mut rng = Rng::new(3);
    let c0: Vec<f32> = (0..k * lat)
        .map(|i| z0[i] + 0.05 * rng.normal() as f32)
        .collect();
    let c1: Vec<f32> = (0..k * lat).map(|_| 0.05 * rng.normal() as f32).collect();
    tr.store_mut().set("codebook.0", &c0).unwrap();
    tr.store_mut().set("codebook.1", &c1).unwrap();
    let before = tr.store().to_named().unwrap();
    let out = tr.step(&xt).unwrap();
    let loss = out.loss.to_vec().unwrap()[0] as f64;
    let after = tr.store().to_named().unwrap();

    // Reference forward.
    let xd: Vec<f64> = x.iter().map(|v| *v as f64).collect();
    let (e0, e2) = (lin(&before, "encoder.0"), lin(&before, "encoder.2"));
    let (d0, d2) = (lin(&before, "decoder.0"), lin(&before, "decoder.2"));
    let h = fwd(&e0, &xd, true);
    let z = fwd(&e2, &h, false);
    let cbs: Vec<Vec<f64>> = [&c0, &c1]
        .iter()
        .map(|c| c.iter().map(|v| *v as f64).collect())
        .collect();
    let mut r = z.clone();
    let mut zq = vec![0.0; n * lat];
    let mut dz = vec![0.0; n * lat];
    let mut dc = vec![vec![0.0; k * lat]; levels];
    let mut ref_loss = 0.0;
    let m = (n * lat) as f64;
    for l in 0..levels {
        let cb = &cbs[l];
        let idx: Vec<usize> = (0..n)
            .map(|i| {
                let d = |c: usize| -> f64 {
                    (0..lat)
                        .map(|t| (r[i * lat + t] - cb[c * lat + t]).powi(2))
                        .sum()
                };
                (0..k).min_by(|&a, &b| d(a).total_cmp(&d(b))).unwrap()
            })
            .collect();
        let got = out.indices[l].to_u32().unwrap();
        assert_eq!(
            got,
            idx.iter().map(|&v| v as u32).collect::<Vec<_>>(),
            "level {l}"
        );
        let mut sq = 0.0;
        for i in 0..n {
            for t in 0..lat {
                let e = cb[idx[i] * lat + t];
                let diff = r[i * lat + t] - e;
                sq += diff * diff;
                // Commitment: β·mean‖r − sg(e)‖² → z (r depends on z with unit Jacobian).
                dz[i * lat + t] += 2.0 * beta * diff / m;
                // Codebook: mean‖sg(r) − e‖² → the chosen code.
                dc[l][idx[i] * lat + t] -= 2.0 * diff / m;
                zq[i * lat + t] += e;
                r[i * lat + t] = diff;
            }
        }
        ref_loss += (1.0 + beta) * sq / m;
    }
    let hd = fwd(&d0, &zq, true);
    let xh = fwd(&d2, &hd, false);
    let nx = (n * dim) as f64;
    ref_loss += xh
        .iter()
        .zip(&xd)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        / nx;
    assert!(
        (loss - ref_loss).abs() < 1e-4 * (1.0 + ref_loss),
        "{loss} vs {ref_loss}"
    );
    // Reference backward: decoder, straight-through into z, encoder.
    let dxh: Vec<f64> = xh
        .iter()
        .zip(&xd)
        .map(|(a, b)| 2.0 * (a - b) / nx)
        .collect();
    let (g_d2w, g_d2b, dhd) = bwd(&d2, &hd, &dxh);
    let (g_d0w, g_d0b, dzq) = bwd(&d0, &zq, &relu_mask(&dhd, &hd));
    for (a, b) in dz.iter_mut().zip(&dzq) {
        *a += b;
    }
    let (g_e2w, g_e2b, dh) = bwd(&e2, &h, &dz);
    let (g_e0w, g_e0b, _) = bwd(&e0, &xd, &relu_mask(&dh, &h));
    let want: Vec<(&str, &Vec<f64>)> = vec![
        ("encoder.0.weight", &g_e0w),
        ("encoder.0.bias", &g_e0b),
        ("encoder.2.weight", &g_e2w),
        ("encoder.2.bias", &g_e2b),
        ("decoder.0.weight", &g_d0w),
        ("decoder.0.bias", &g_d0b),
        ("decoder.2.weight", &g_d2w),
        ("decoder.2.bias", &g_d2b),
        ("codebook.0", &dc[0]),
        ("codebook.1", &dc[1]),
    ];
    for (name, grad) in want {
        let b = before.iter().find(|t| t.name == name).unwrap();
        let a = after.iter().find(|t| t.name == name).unwrap();
        let expect: Vec<f32> = b
            .data
            .iter()
            .zip(grad)
            .map(|(p, g)| (*p as f64 - lr as f64 * g) as f32)
            .collect();
        assert_close(&a.data, &expect, 1e-5, 1e-4, name);
        // The update is not vacuous.
        assert!(grad.iter().any(|v| v.abs() > 1e-6), "{name}: zero gradient");
    }
}

#[test]
fn codebooks_start_from_residual_kmeans_of_the_first_batch() {
    let g = gpu();
    let (n, d) = (200, 12);
    let cfg = small_cfg(4);
    let x = blobs(n, d, 1);
    let xt = upload(&x, &[n, d]);
    let mut tr = RqVaeTrainer::new(&g, d, &cfg).unwrap();
    assert!(tr.needs_init());
    let z = tr.latents(&xt).unwrap().to_vec().unwrap();
    tr.init_codebooks(&xt).unwrap();
    assert!(!tr.needs_init());
    let lat = cfg.latent;
    let mut residual = z;
    for l in 0..cfg.levels {
        let fit = cluster::fit(
            &g,
            &residual,
            n,
            lat,
            cfg.k,
            &KMeansOptions::default(),
            cfg.seed + l as u64,
        )
        .unwrap();
        let got = tr
            .store()
            .get(&format!("codebook.{l}"))
            .unwrap()
            .to_vec()
            .unwrap();
        assert_eq!(got, fit.centroids, "level {l}");
        for (i, &c) in fit.assign.iter().enumerate() {
            for t in 0..lat {
                residual[i * lat + t] -= fit.centroids[c as usize * lat + t];
            }
        }
    }
    // Fewer rows than codes cannot seed the codebooks.
    let few = upload(&x[..5 * d], &[5, d]);
    let mut tr = RqVaeTrainer::new(&g, d, &cfg).unwrap();
    assert!(tr.init_codebooks(&few).is_err());
}

#[test]
fn codes_unused_for_the_window_are_reseeded_from_batch_residuals() {
    let g = gpu();
    let (n, d) = (128, 12);
    let cfg = RqVaeConfig {
        dead_code_steps: 3,
        ..small_cfg(2)
    };
    let x = blobs(n, d, 5);
    let xt = upload(&x, &[n, d]);
    let mut tr = RqVaeTrainer::new(&g, d, &cfg).unwrap();
    tr.init_codebooks(&xt).unwrap();
    // Push code 5 of level 1 far away: nothing will pick it.
    let mut cb = tr.store().get("codebook.1").unwrap().to_vec().unwrap();
    let lat = cfg.latent;
    cb[5 * lat..6 * lat].iter_mut().for_each(|v| *v = 1e4);
    tr.store_mut().set("codebook.1", &cb).unwrap();
    let mut reseeded_at = None;
    for step in 1..=4 {
        let out = tr.step(&xt).unwrap();
        let used: Vec<u32> = out.indices[1].to_u32().unwrap();
        assert!(!used.contains(&5), "step {step}: the far code was chosen");
        let n_reset = tr.reset_dead_codes(&out).unwrap();
        if n_reset > 0 {
            let row =
                tr.store().get("codebook.1").unwrap().to_vec().unwrap()[5 * lat..6 * lat].to_vec();
            let res = out.residuals[1].to_vec().unwrap();
            assert!(
                res.chunks(lat).any(|r| r == row.as_slice()),
                "the re-seeded code is a residual of the batch"
            );
            reseeded_at = Some(step);
            break;
        }
    }
    // Unused since the k-means init (step 0): dead once 3 steps have passed.
    assert_eq!(reseeded_at, Some(3));
}

#[test]
fn same_seed_same_model_and_codes() {
    let g = gpu();
    let (n, d) = (300, 16);
    let x = blobs(n, d, 7);
    let (a, ca) = RqVae::fit(&g, &x, d, &small_cfg(11)).unwrap();
    let (b, cb) = RqVae::fit(&g, &x, d, &small_cfg(11)).unwrap();
    assert_eq!(ca, cb);
    assert_eq!(a.params, b.params);
    assert_eq!(ca.items(), n);
    assert_eq!(ca.levels, 3);
    // Encoding the training items again gives their training codes.
    assert_eq!(a.encode(&g, &x).unwrap(), ca);
    let (c, _) = RqVae::fit(&g, &x, d, &small_cfg(12)).unwrap();
    assert_ne!(a.params, c.params);
}

#[test]
fn checkpoint_round_trip_and_cpu_decoder() {
    let g = gpu();
    let (n, d) = (300, 16);
    let x = blobs(n, d, 8);
    let (model, codes) = RqVae::fit(&g, &x, d, &small_cfg(3)).unwrap();
    let names: Vec<&str> = model.params.iter().map(|t| t.name.as_str()).collect();
    for want in [
        "encoder.0.weight",
        "encoder.0.bias",
        "encoder.2.weight",
        "decoder.0.weight",
        "decoder.2.bias",
        "codebook.0",
        "codebook.2",
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    assert_eq!(model.param("encoder.0.weight").unwrap().shape, vec![32, d]);
    assert_eq!(model.param("codebook.1").unwrap().shape, vec![8, 8]);
    let dir = std::env::temp_dir().join(format!("semid-rqvae-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tok.safetensors");
    AnyTokenizer::RqVae(model.clone())
        .save(&path, "fp")
        .unwrap();
    let (loaded, meta) = AnyTokenizer::load(&path).unwrap();
    assert_eq!(meta.method, "rqvae");
    let AnyTokenizer::RqVae(back) = &loaded else {
        panic!("not an RQ-VAE")
    };
    assert_eq!(back.params, model.params);
    assert_eq!(back.config, model.config);
    assert_eq!(back.epochs_done, 3);
    assert_eq!(loaded.encode(&g, &x).unwrap(), codes);
    // A loaded model decodes on the CPU; the GPU decoder agrees with it.
    let cpu = loaded.level_reconstructions(&codes).unwrap();
    let gpu_recs = model.level_reconstructions(&codes).unwrap();
    assert_eq!(cpu.len(), 3);
    for (c, gr) in cpu.iter().zip(&gpu_recs) {
        assert_eq!(c.len(), n * d);
        assert_close(gr, c, 1e-4, 1e-3, "GPU vs CPU decoder");
    }
    assert_eq!(model.decode(&codes).unwrap(), gpu_recs[2]);
    // A tensor missing from the file is an error, not a panic.
    let mut broken = model.params.clone();
    broken.retain(|t| t.name != "decoder.2.weight");
    assert!(RqVae::from_parts(model.config.clone(), d, broken, 3).is_err());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn resume_continues_from_the_saved_epoch() {
    let g = gpu();
    let (n, d) = (200, 16);
    let x = blobs(n, d, 9);
    let cfg = RqVaeConfig {
        epochs: 4,
        checkpoint_every: 2,
        ..small_cfg(5)
    };
    let mut saved = Vec::new();
    let mut calls = Vec::new();
    let (full, _) = {
        let mut p = |a: usize, b: usize| calls.push((a, b));
        let mut o = |t: &RqVae| {
            saved.push(t.clone());
            Ok(())
        };
        RqVae::fit_with(
            &g,
            &x,
            d,
            &cfg,
            FitHooks {
                progress: &mut p,
                resume: None,
                on_level: &mut o,
            },
        )
        .unwrap()
    };
    assert_eq!(calls, vec![(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]);
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].epochs_done, 2);
    assert_eq!(full.epochs_done, 4);
    let mut calls = Vec::new();
    let (resumed, codes) = {
        let mut p = |a: usize, b: usize| calls.push((a, b));
        let mut o = |_: &RqVae| Ok(());
        RqVae::fit_with(
            &g,
            &x,
            d,
            &cfg,
            FitHooks {
                progress: &mut p,
                resume: Some(saved[0].clone()),
                on_level: &mut o,
            },
        )
        .unwrap()
    };
    assert_eq!(calls, vec![(2, 4), (3, 4), (4, 4)]);
    assert_eq!(resumed.epochs_done, 4);
    assert_ne!(resumed.params, saved[0].params, "training continued");
    assert_eq!(codes.items(), n);
    // A model of another shape cannot be resumed.
    let other = RqVaeConfig {
        k: 4,
        ..cfg.clone()
    };
    let r = FitHooks::none(|mut h| {
        h.resume = Some(saved[0].clone());
        RqVae::fit_with(&g, &x, d, &other, h)
    });
    assert!(r.is_err());
}

#[test]
fn bad_settings_and_inputs_are_errors() {
    let g = gpu();
    let x = blobs(100, 16, 1);
    for cfg in [
        RqVaeConfig {
            levels: 0,
            ..small_cfg(1)
        },
        RqVaeConfig {
            k: 0,
            ..small_cfg(1)
        },
        RqVaeConfig {
            beta: f32::NAN,
            ..small_cfg(1)
        },
        RqVaeConfig {
            lr: 0.0,
            ..small_cfg(1)
        },
        RqVaeConfig {
            hidden: vec![0],
            ..small_cfg(1)
        },
        RqVaeConfig {
            batch_size: 0,
            ..small_cfg(1)
        },
        // The k-means initialisation needs a first batch of at least k items.
        RqVaeConfig {
            k: 101,
            ..small_cfg(1)
        },
        RqVaeConfig {
            batch_size: 7,
            ..small_cfg(1)
        },
    ] {
        assert!(RqVae::fit(&g, &x, 16, &cfg).is_err(), "{cfg:?}");
    }
    // Rows of the wrong width.
    assert!(RqVae::fit(&g, &x[..17], 16, &small_cfg(1)).is_err());
    let mut tr = RqVaeTrainer::new(&g, 16, &small_cfg(1)).unwrap();
    let wrong = Tensor::from_slice(&g, &x[..100 * 8], &[100, 8]).unwrap();
    assert!(tr.step(&wrong).is_err());
    let (m, codes) = RqVae::fit(&g, &x, 16, &small_cfg(1)).unwrap();
    assert!(m.encode(&g, &x[..15]).is_err());
    // Codes beyond the codebook are rejected by the decoder.
    let mut bad = codes.clone();
    bad.data[0] = 99;
    assert!(m.decode(&bad).is_err());
}

/// On the synthetic text embeddings (768-d from a 48-d latent through a random MLP), the
/// RQ-VAE reconstructs the items better than RQ-KMeans with the same code budget (3 levels of
/// 16 codes), measured in the original input space, and uses every code at every level.
#[test]
fn beats_rq_kmeans_reconstruction_on_synthetic_text() {
    let g = gpu();
    let data = generate(&SynthConfig {
        items: 1500,
        users: 20,
        seed: 1,
        ..Default::default()
    })
    .unwrap();
    let text = data.embeddings.modality("text").unwrap();
    let (x, d) = (&text.data, text.dim);
    let k = 16;
    let (rq, rq_codes) = RqKMeans::fit(
        &g,
        x,
        d,
        &RqKMeansConfig {
            k,
            seed: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let rq_err: Vec<f64> = rq
        .level_reconstructions(&rq_codes)
        .unwrap()
        .iter()
        .map(|r| mse(r, x))
        .collect();
    let cfg = RqVaeConfig {
        hidden: vec![256, 128],
        latent: 16,
        k,
        lr: 2e-3,
        batch_size: 128,
        epochs: 60,
        seed: 1,
        ..Default::default()
    };
    let (vae, codes) = RqVae::fit(&g, x, d, &cfg).unwrap();
    let recs = vae.level_reconstructions(&codes).unwrap();
    let vae_err: Vec<f64> = recs.iter().map(|r| mse(r, x)).collect();
    eprintln!("per-level MSE: RQ-VAE {vae_err:?}, RQ-KMeans {rq_err:?}");
    assert!(
        vae_err[2] < rq_err[2],
        "RQ-VAE {vae_err:?} vs RQ-KMeans {rq_err:?}"
    );
    // Every level refines the reconstruction.
    assert!(
        vae_err[1] < vae_err[0] && vae_err[2] < vae_err[1],
        "{vae_err:?}"
    );
    let m = Metrics::compute(
        "rqvae",
        &MetricsInput::new(&codes.data, &codes.sizes)
            .with_embeddings(x, d)
            .with_reconstructions(&recs),
    )
    .unwrap();
    for lm in &m.per_level {
        assert!(
            lm.utilization > 0.9,
            "level {}: utilization {}",
            lm.level,
            lm.utilization
        );
    }
    // Encoding is deterministic and gives the training codes.
    let again = vae.encode(&g, x).unwrap();
    assert_eq!(again, codes);
    assert_eq!(vae.encode(&g, x).unwrap(), again);
}

/// A fit resumed from an epoch checkpoint (through a file) equals one that ran straight
/// through, bit for bit (optimizer state, steps, dead-code counters and generator restored).
#[test]
fn resuming_from_an_epoch_checkpoint_gives_the_uninterrupted_model() {
    let g = gpu();
    let x = blobs(200, 12, 4);
    let cfg = RqVaeConfig {
        epochs: 4,
        checkpoint_every: 2,
        dead_code_steps: 2,
        ..small_cfg(5)
    };
    let mut at2: Option<RqVae> = None;
    let mut keep = |m: &RqVae| {
        if m.epochs_done == 2 {
            at2 = Some(m.clone());
        }
        Ok(())
    };
    let (straight, codes) = RqVae::fit_with(
        &g,
        &x,
        12,
        &cfg,
        FitHooks {
            progress: &mut |_, _| {},
            resume: None,
            on_level: &mut keep,
        },
    )
    .unwrap();
    let path = std::env::temp_dir().join(format!("semid-rqvae-resume-{}.st", std::process::id()));
    AnyTokenizer::RqVae(at2.expect("a checkpoint after epoch 2"))
        .save(&path, "fp")
        .unwrap();
    let (AnyTokenizer::RqVae(loaded), _) = AnyTokenizer::load(&path).unwrap() else {
        panic!("not rqvae")
    };
    let _ = std::fs::remove_file(&path);
    let (resumed, codes2) = RqVae::fit_with(
        &g,
        &x,
        12,
        &cfg,
        FitHooks {
            progress: &mut |_, _| {},
            resume: Some(loaded),
            on_level: &mut |_| Ok(()),
        },
    )
    .unwrap();
    assert_eq!(codes2, codes);
    for (a, b) in straight.params.iter().zip(&resumed.params) {
        assert_eq!(a.data, b.data, "{}", a.name);
    }
    assert_eq!(straight.train_state, resumed.train_state);
}
