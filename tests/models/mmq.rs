//! MMQ: one step's loss terms against a plain-Rust (f64) reference, gradients by finite
//! differences where the forward value is differentiable and by formula where the
//! straight-through estimator routes them, reproducibility, checkpoints and resume, bad
//! settings, and learning on synthetic multimodal data with every code in use.
use crate::common;
use common::*;
use semid::data::synth::{generate, SynthConfig};
use semid::io::NamedTensor;
use semid::pipeline::joint_input;
use semid::quant::any::AnyTokenizer;
use semid::quant::cluster::MetricKind;
use semid::quant::mmq::{codebook_name, Expert, Layout, Mmq, MmqConfig, MmqTrainer, ModalitySpec};
use semid::quant::tokenizer::{FitHooks, Tokenizer};
use semid::Tensor;

fn mods() -> Vec<ModalitySpec> {
    vec![ModalitySpec::new("a", 5), ModalitySpec::new("b", 3)]
}

/// Tiny networks with a hidden layer in every expert (so the orthogonality rows concatenate
/// two weight matrices) and in the decoders.
fn tiny_cfg() -> MmqConfig {
    MmqConfig {
        expert_hidden: vec![3],
        latent: 4,
        decoder_hidden: vec![6],
        k: 5,
        kmeans_init: false,
        dead_code_steps: 0,
        ..Default::default()
    }
}

// ---- plain-Rust reference (f64) -------------------------------------------------------------

fn get<'a>(p: &'a [NamedTensor], n: &str) -> &'a [f32] {
    &p.iter()
        .find(|t| t.name == n)
        .unwrap_or_else(|| panic!("{n}"))
        .data
}

/// `name`'s MLP (ReLU between layers, biases) on `rows` rows of `x`.
fn mlp(p: &[NamedTensor], name: &str, widths: &[usize], x: &[f64], rows: usize) -> Vec<f64> {
    let mut h = x.to_vec();
    let layers = widths.len() - 1;
    for l in 0..layers {
        let (fi, fo) = (widths[l], widths[l + 1]);
        let w = get(p, &format!("{name}.{}.weight", 2 * l));
        let bias_name = format!("{name}.{}.bias", 2 * l);
        let b = p.iter().find(|t| t.name == bias_name).map(|t| &t.data);
        let mut y = vec![0f64; rows * fo];
        for r in 0..rows {
            for o in 0..fo {
                let mut s = b.map_or(0.0, |b| b[o] as f64);
                for i in 0..fi {
                    s += w[o * fi + i] as f64 * h[r * fi + i];
                }
                y[r * fo + o] = if l + 1 < layers { s.max(0.0) } else { s };
            }
        }
        h = y;
    }
    h
}

struct Reference {
    loss: f64,
    recon: f64,
    aux: f64,
    ortho: f64,
    vq: f64,
    codes: Vec<Vec<u32>>,
    latents: Vec<Vec<f64>>,
}

fn cols(x: &[f64], rows: usize, width: usize, a: usize, b: usize) -> Vec<f64> {
    (0..rows)
        .flat_map(|r| x[r * width + a..r * width + b].to_vec())
        .collect()
}

fn reference(layout: &Layout, p: &[NamedTensor], x: &[f32]) -> Reference {
    let cfg = &layout.config;
    let (dim, lat, k) = (layout.dim(), cfg.latent, cfg.k);
    let rows = x.len() / dim;
    let x: Vec<f64> = x.iter().map(|v| *v as f64).collect();
    let parts: Vec<Vec<f64>> = (0..layout.modalities.len())
        .map(|m| {
            let (a, b) = layout.columns(m);
            cols(&x, rows, dim, a, b)
        })
        .collect();
    let experts = layout.experts();
    let mut latents = Vec::new();
    let mut codes = Vec::new();
    let mut quantized = Vec::new();
    let mut vq = 0.0;
    for (t, e) in experts.iter().enumerate() {
        let input = match e {
            Expert::Shared(_) => &x,
            Expert::Specific { m, .. } => &parts[*m],
        };
        let mut z = mlp(
            p,
            &layout.expert_name(*e),
            &layout.expert_widths(*e),
            input,
            rows,
        );
        let mut cb: Vec<f32> = get(p, &codebook_name(t)).to_vec();
        if cfg.spherical {
            for r in z.chunks_mut(lat) {
                // A zero latent (all hidden units off) stays zero, as F.normalize leaves it.
                let n = r.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
                r.iter_mut().for_each(|v| *v /= n);
            }
            for r in cb.chunks_mut(lat) {
                let n = r.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
                r.iter_mut().for_each(|v| *v = (*v as f64 / n) as f32);
            }
        }
        let mut c_t = Vec::new();
        let mut q_t = Vec::new();
        for r in 0..rows {
            let zr = &z[r * lat..(r + 1) * lat];
            let zn = zr.iter().map(|v| v * v).sum::<f64>().sqrt();
            let (mut best, mut best_cos) = (0usize, f64::NEG_INFINITY);
            for j in 0..k {
                let c: Vec<f64> = cb[j * lat..(j + 1) * lat]
                    .iter()
                    .map(|v| *v as f64)
                    .collect();
                let cn = c.iter().map(|v| v * v).sum::<f64>().sqrt();
                let cos = zr.iter().zip(&c).map(|(a, b)| a * b).sum::<f64>() / (zn * cn);
                if cos > best_cos {
                    best = j;
                    best_cos = cos;
                }
            }
            c_t.push(best as u32);
            for j in 0..lat {
                let e = cb[best * lat + j] as f64;
                vq += (zr[j] - e).powi(2) / rows as f64;
                q_t.push(e);
            }
        }
        latents.push(z);
        codes.push(c_t);
        quantized.push(q_t);
    }
    let nsp = cfg.specific_experts;
    let gates: Vec<Vec<f64>> = (0..layout.modalities.len())
        .map(|m| {
            let logits = mlp(
                p,
                &format!("gate.{m}"),
                &layout.gate_widths(m),
                &parts[m],
                rows,
            );
            let mut g = vec![0f64; rows * nsp];
            for r in 0..rows {
                let row = &logits[r * nsp..(r + 1) * nsp];
                let mx = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let s: f64 = row.iter().map(|v| (v - mx).exp()).sum();
                for i in 0..nsp {
                    g[r * nsp + i] = (row[i] - mx).exp() / s;
                }
            }
            g
        })
        .collect();
    let mut fused = vec![0f64; rows * lat];
    let mut modal = vec![vec![0f64; rows * lat]; layout.modalities.len()];
    for (t, e) in experts.iter().enumerate() {
        for r in 0..rows {
            for j in 0..lat {
                let q = quantized[t][r * lat + j];
                match *e {
                    Expert::Shared(_) => fused[r * lat + j] += q,
                    Expert::Specific { m, i } => {
                        let v = gates[m][r * nsp + i] * q;
                        fused[r * lat + j] += v;
                        modal[m][r * lat + j] += v;
                    }
                }
            }
        }
    }
    let sq = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(u, v)| (u - v).powi(2)).sum::<f64>();
    let xh = mlp(p, "decoder", &layout.decoder_widths(), &fused, rows);
    let recon = sq(&xh, &x) / rows as f64;
    let mut aux = 0.0;
    for m in 0..layout.modalities.len() {
        let xm = mlp(
            p,
            &format!("aux_decoder.{m}"),
            &layout.aux_decoder_widths(m),
            &modal[m],
            rows,
        );
        aux += sq(&xm, &parts[m]) / rows as f64;
    }
    // Orthogonality per group: flattened weights of each expert, normalised, Gram − I.
    let mut groups: Vec<Vec<Vec<f64>>> = vec![Vec::new(); 1 + layout.modalities.len()];
    for e in &experts {
        let name = layout.expert_name(*e);
        let mut v = Vec::new();
        for l in 0..layout.expert_widths(*e).len() - 1 {
            v.extend(
                get(p, &format!("{name}.{}.weight", 2 * l))
                    .iter()
                    .map(|w| *w as f64),
            );
        }
        let n = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        v.iter_mut().for_each(|a| *a /= n);
        match e {
            Expert::Shared(_) => groups[0].push(v),
            Expert::Specific { m, .. } => groups[1 + m].push(v),
        }
    }
    let mut ortho = 0.0;
    for g in groups.iter().filter(|g| g.len() >= 2) {
        for (i, a) in g.iter().enumerate() {
            for (j, b) in g.iter().enumerate() {
                let dot: f64 = a.iter().zip(b).map(|(u, v)| u * v).sum();
                ortho += (dot - if i == j { 1.0 } else { 0.0 }).powi(2);
            }
        }
    }
    let loss = cfg.recon_weight as f64 * recon
        + cfg.aux_weight as f64 * aux
        + cfg.ortho_weight as f64 * ortho
        + (cfg.codebook_weight + cfg.commitment_weight) as f64 * vq;
    Reference {
        loss,
        recon,
        aux,
        ortho,
        vq,
        codes,
        latents,
    }
}

fn scalar(t: &Tensor) -> f64 {
    t.to_vec().unwrap()[0] as f64
}

fn close(got: f64, want: f64, rel: f64, what: &str) {
    assert!(
        (got - want).abs() <= rel * want.abs().max(1e-3),
        "{what}: got {got}, want {want}"
    );
}

#[test]
fn one_step_matches_a_plain_rust_reference() {
    one_step_case(false);
}

#[test]
fn one_spherical_step_matches_a_plain_rust_reference() {
    one_step_case(true);
}

fn one_step_case(spherical: bool) {
    let cfg = MmqConfig {
        spherical,
        ..tiny_cfg()
    };
    let tr = MmqTrainer::new(&gpu(), &cfg, &mods()).unwrap();
    let layout = tr.layout().clone();
    assert_eq!(layout.tokens(), 6, "2 shared + 2 per modality");
    let x = rand_vec(7 * layout.dim(), 3);
    let p = tr.store().to_named().unwrap();
    let want = reference(&layout, &p, &x);
    let (out, grads) = tr
        .forward_backward(&upload(&x, &[7, layout.dim()]))
        .unwrap();
    for (t, idx) in out.indices.iter().enumerate() {
        assert_eq!(idx.to_u32().unwrap(), want.codes[t], "codes of token {t}");
    }
    close(scalar(&out.recon), want.recon, 1e-4, "recon");
    close(scalar(&out.aux), want.aux, 1e-4, "aux");
    close(scalar(&out.ortho), want.ortho, 1e-4, "ortho");
    close(scalar(&out.vq), want.vq, 1e-4, "vq");
    close(scalar(&out.loss), want.loss, 1e-4, "loss");
    assert!(
        want.ortho > 1e-4,
        "the orthogonality term is not trivially zero"
    );

    // Finite differences where the forward value is differentiable (the decoders and gates
    // see the quantized latent directly); codes must not change under the perturbation.
    let h = 1e-3f32;
    let checks = [
        ("decoder.0.weight", 5),
        ("decoder.2.weight", 11),
        ("decoder.2.bias", 2),
        ("gate.0.0.weight", 3),
        ("gate.1.0.bias", 1),
        ("aux_decoder.0.2.weight", 7),
        ("aux_decoder.1.0.bias", 4),
    ];
    for (name, i) in checks {
        let g = grads.param(name).unwrap().to_vec().unwrap()[i] as f64;
        let eval = |delta: f32| {
            let mut q = p.clone();
            q.iter_mut().find(|t| t.name == name).unwrap().data[i] += delta;
            let r = reference(&layout, &q, &x);
            assert_eq!(r.codes, want.codes, "{name}[{i}]: codes moved");
            r.loss
        };
        let fd = (eval(h) - eval(-h)) / (2.0 * h as f64);
        assert!(
            (g - fd).abs() <= 2e-3 * fd.abs().max(1e-2),
            "{name}[{i}]: autograd {g}, finite difference {fd}"
        );
    }

    // The codebooks get only the codebook term (the STE routes the reconstruction around
    // them): d/dC_t[c] = codebook_weight · 2/B · Σ_{i: c_i = c} (C_t[c] − z_i), raw codes.
    let lat = cfg.latent;
    for t in [0, 3, 5].into_iter().filter(|_| !spherical) {
        let cb = get(&p, &codebook_name(t));
        let mut want_g = vec![0f64; cfg.k * lat];
        for (r, &c) in want.codes[t].iter().enumerate() {
            for j in 0..lat {
                want_g[c as usize * lat + j] += cfg.codebook_weight as f64 * 2.0 / 7.0
                    * (cb[c as usize * lat + j] as f64 - want.latents[t][r * lat + j]);
            }
        }
        let got = grads.param(&codebook_name(t)).unwrap().to_vec().unwrap();
        let want_f: Vec<f32> = want_g.iter().map(|v| *v as f32).collect();
        assert_close(&got, &want_f, 1e-5, 1e-4, &format!("codebook {t} gradient"));
    }
    // Every expert gets a gradient (through the STE).
    for e in layout.experts() {
        let n = format!("{}.0.weight", layout.expert_name(e));
        let g = grads.param(&n).unwrap().to_vec().unwrap();
        assert!(g.iter().any(|v| *v != 0.0), "{n} has no gradient");
    }
}

/// The orthogonality penalty alone (every other weight zero) is differentiable in the expert
/// weights: autograd against finite differences of the reference, for a one- and a two-layer
/// weight of shared and specific experts.
#[test]
fn orthogonality_gradient_matches_finite_differences() {
    let cfg = MmqConfig {
        recon_weight: 0.0,
        aux_weight: 0.0,
        codebook_weight: 0.0,
        commitment_weight: 0.0,
        ortho_weight: 1.0,
        ..tiny_cfg()
    };
    let tr = MmqTrainer::new(&gpu(), &cfg, &mods()).unwrap();
    let layout = tr.layout().clone();
    let x = rand_vec(5 * layout.dim(), 8);
    let p = tr.store().to_named().unwrap();
    let (out, grads) = tr
        .forward_backward(&upload(&x, &[5, layout.dim()]))
        .unwrap();
    let want = reference(&layout, &p, &x);
    close(scalar(&out.loss), want.ortho, 1e-4, "loss = ortho");
    let h = 1e-3f32;
    for (name, i) in [
        ("shared.0.0.weight", 4),
        ("shared.1.2.weight", 2),
        ("specific.0.1.0.weight", 7),
        ("specific.1.0.2.weight", 5),
    ] {
        let g = grads.param(name).unwrap().to_vec().unwrap()[i] as f64;
        let eval = |delta: f32| {
            let mut q = p.clone();
            q.iter_mut().find(|t| t.name == name).unwrap().data[i] += delta;
            reference(&layout, &q, &x).loss
        };
        let fd = (eval(h) - eval(-h)) / (2.0 * h as f64);
        assert!(
            (g - fd).abs() <= 2e-3 * fd.abs().max(1e-2),
            "{name}[{i}]: autograd {g}, finite difference {fd}"
        );
    }
}

#[test]
fn one_modality_and_no_specific_experts_work() {
    let g = gpu();
    let x = rand_vec(40 * 6, 9);
    let one = vec![ModalitySpec::new("text", 6)];
    let cfg = MmqConfig {
        epochs: 2,
        batch_size: 16,
        ..tiny_cfg()
    };
    let (m, codes) = Mmq::fit(&g, &x, &one, &cfg).unwrap();
    assert_eq!(codes.levels, 4);
    assert_eq!(m.encode(&g, &x).unwrap(), codes);
    // Experts with biases: the biases are trained, saved and used when encoding.
    let biased = MmqConfig {
        expert_bias: true,
        ..cfg.clone()
    };
    let (m, codes) = Mmq::fit(&g, &x, &one, &biased).unwrap();
    assert!(m.param("shared.0.0.bias").is_some());
    assert_eq!(m.encode(&g, &x).unwrap(), codes);
    let shared_only = MmqConfig {
        specific_experts: 0,
        ..cfg.clone()
    };
    let (m, codes) = Mmq::fit(&g, &x, &one, &shared_only).unwrap();
    assert_eq!(codes.levels, 2);
    assert!(m.gate_means.is_empty());
    let recs = m.level_reconstructions(&codes).unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].len(), x.len());
}

#[test]
fn same_seed_same_model_and_codes() {
    let g = gpu();
    let x = rand_vec(60 * 8, 4);
    let cfg = MmqConfig {
        epochs: 3,
        batch_size: 16,
        kmeans_init: true,
        dead_code_steps: 2,
        ..tiny_cfg()
    };
    let (a, ca) = Mmq::fit(&g, &x, &mods(), &cfg).unwrap();
    let (b, cb) = Mmq::fit(&g, &x, &mods(), &cfg).unwrap();
    assert_eq!(ca, cb);
    for (pa, pb) in a.params.iter().zip(&b.params) {
        assert_eq!(pa.data, pb.data, "{}", pa.name);
    }
    assert_eq!(a.gate_means, b.gate_means);
    let (c, _) = Mmq::fit(&g, &x, &mods(), &MmqConfig { seed: 1, ..cfg }).unwrap();
    assert_ne!(a.params[0].data, c.params[0].data);
}

#[test]
fn checkpoint_round_trip_cpu_decoder_and_resume() {
    let g = gpu();
    let x = rand_vec(50 * 8, 5);
    let cfg = MmqConfig {
        epochs: 2,
        batch_size: 25,
        ..tiny_cfg()
    };
    let (m, codes) = Mmq::fit(&g, &x, &mods(), &cfg).unwrap();
    assert_eq!(m.epochs_done, 2);
    let dir = std::env::temp_dir().join(format!("semid-mmq-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mmq.safetensors");
    AnyTokenizer::Mmq(m.clone()).save(&path, "fp").unwrap();
    let (loaded, meta) = AnyTokenizer::load(&path).unwrap();
    assert_eq!(meta.method, "mmq");
    assert_eq!(loaded.encode(&g, &x).unwrap(), codes);
    let AnyTokenizer::Mmq(loaded) = loaded else {
        panic!("not mmq")
    };
    assert_eq!(loaded.modalities, mods());
    assert_eq!(loaded.gate_means, m.gate_means);
    // Decoding from codes alone: the plain-Rust decoder (no device) matches the GPU one.
    let cpu = loaded.level_reconstructions(&codes).unwrap();
    let gpu_recs = m.level_reconstructions(&codes).unwrap();
    for (l, (c, w)) in cpu.iter().zip(&gpu_recs).enumerate() {
        assert_close(c, w, 1e-4, 1e-3, &format!("token {l}"));
    }
    // With the items' own gates the last reconstruction is the model's: the decoder of the
    // gated quantized latents (checked against the reference at the same parameters).
    let recs = m.input_reconstructions(&g, &x, &codes).unwrap();
    assert_eq!(recs.len(), 6);
    assert!(recs
        .last()
        .unwrap()
        .iter()
        .zip(&gpu_recs[5])
        .any(|(a, b)| (a - b).abs() > 1e-6));

    // Resume: a finished fit trains no further; a partial one continues to the configured
    // epoch count.
    let resumed = Mmq::fit_with(
        &g,
        &x,
        &mods(),
        &cfg,
        FitHooks {
            progress: &mut |_, _| {},
            resume: Some(m.clone()),
            on_level: &mut |_| Ok(()),
        },
    )
    .unwrap();
    assert_eq!(resumed.1, codes);
    let mut seen = Vec::new();
    let longer = MmqConfig { epochs: 4, ..cfg };
    let (more, _) = Mmq::fit_with(
        &g,
        &x,
        &mods(),
        &longer,
        FitHooks {
            progress: &mut |d, _| seen.push(d),
            resume: Some(m),
            on_level: &mut |_| Ok(()),
        },
    )
    .unwrap();
    assert_eq!(seen, vec![2, 3, 4]);
    assert_eq!(more.epochs_done, 4);
    // Loading a checkpoint with a tensor missing is a clear error.
    let mut broken = more.clone();
    broken.params.retain(|t| t.name != "decoder.0.weight");
    AnyTokenizer::Mmq(broken).save(&path, "fp").unwrap();
    let err = AnyTokenizer::load(&path).unwrap_err().to_string();
    assert!(err.contains("decoder.0.weight"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_settings_and_inputs_are_errors() {
    let g = gpu();
    let x = rand_vec(40 * 8, 6);
    let bad = |cfg: MmqConfig, what: &str| {
        let err = Mmq::fit(&g, &x, &mods(), &cfg).unwrap_err().to_string();
        assert!(err.contains(what), "{what}: {err}");
    };
    bad(
        MmqConfig {
            shared_experts: 0,
            specific_experts: 0,
            ..tiny_cfg()
        },
        "at least one",
    );
    bad(MmqConfig { k: 0, ..tiny_cfg() }, "positive");
    bad(
        MmqConfig {
            ortho_weight: f32::NAN,
            ..tiny_cfg()
        },
        "ortho_weight",
    );
    bad(
        MmqConfig {
            kmeans_init: true,
            k: 64,
            ..tiny_cfg()
        },
        "k-means initialisation",
    );
    let err = Mmq::fit(&g, &x[..x.len() - 3], &mods(), &tiny_cfg())
        .unwrap_err()
        .to_string();
    assert!(err.contains("whole rows"), "{err}");
    let err = Mmq::fit(&g, &x, &[], &tiny_cfg()).unwrap_err().to_string();
    assert!(err.contains("modality"), "{err}");
    let err = Mmq::fit(&g, &x, &[ModalitySpec::new("a", 0)], &tiny_cfg())
        .unwrap_err()
        .to_string();
    assert!(err.contains("width 0"), "{err}");
    // Resuming from a model over other modalities is refused.
    let (m, _) = Mmq::fit(
        &g,
        &x,
        &mods(),
        &MmqConfig {
            epochs: 1,
            ..tiny_cfg()
        },
    )
    .unwrap();
    let other = vec![ModalitySpec::new("a", 4), ModalitySpec::new("b", 4)];
    let err = Mmq::fit_with(
        &g,
        &x,
        &other,
        &tiny_cfg(),
        FitHooks {
            progress: &mut |_, _| {},
            resume: Some(m.clone()),
            on_level: &mut |_| Ok(()),
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("cannot continue"), "{err}");
    // Encoding rows of the wrong width.
    let err = m.encode(&g, &x[..7 * 5]).unwrap_err().to_string();
    assert!(err.contains("whole rows"), "{err}");
}

/// On the synthetic two-modality data the tokenizer learns: the reconstruction improves over
/// training, every codebook is (nearly) fully used, and the IDs are far more distinct than
/// any one token.
#[test]
fn learns_synthetic_multimodal_items_with_every_code_in_use() {
    let g = gpu();
    let data = generate(&SynthConfig {
        items: 1200,
        users: 10,
        text_dim: 96,
        audio_dim: 64,
        ..Default::default()
    })
    .unwrap();
    let mods_ref: Vec<_> = data.embeddings.modalities.iter().collect();
    let fam = joint_input(&mods_ref, true);
    let cfg = MmqConfig {
        latent: 32,
        decoder_hidden: vec![128],
        k: 16,
        batch_size: 200,
        epochs: 25,
        ..Default::default()
    };
    // The reconstruction error at initialisation (codebooks from k-means, nothing trained).
    let n0 = 200;
    let head = &fam.data[..n0 * fam.dim];
    let mut tr = MmqTrainer::new(&g, &cfg, &fam.parts).unwrap();
    let x0 = Tensor::from_slice(&g, head, &[n0, fam.dim]).unwrap();
    tr.init_codebooks(&x0).unwrap();
    let before = scalar(&tr.forward_backward(&x0).unwrap().0.recon);

    let (m, codes) = Mmq::fit(&g, &fam.data, &fam.parts, &cfg).unwrap();
    let labels: Vec<u32> = data.truth.cluster_path.iter().map(|p| p[0]).collect();
    let met = m.metrics(&g, &fam.data, Some(&labels)).unwrap();
    eprintln!("{}", met.table());
    for (t, l) in met.per_level.iter().enumerate() {
        assert!(
            l.utilization >= 0.9,
            "token {t}: utilisation {}",
            l.utilization
        );
    }
    let distinct: std::collections::HashSet<&[u32]> =
        (0..codes.items()).map(|i| codes.item(i)).collect();
    // Six parallel tokens of 16 codes: far more distinct IDs than one token could give (the
    // experts do not all learn one partition).
    assert!(distinct.len() > 100, "{} distinct IDs", distinct.len());
    let recs = m
        .input_reconstructions(&g, head, &m.encode(&g, head).unwrap())
        .unwrap();
    let after: f64 = recs
        .last()
        .unwrap()
        .iter()
        .zip(head)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        / n0 as f64;
    assert!(
        after < 0.5 * before,
        "reconstruction error {after} after training vs {before} at initialisation"
    );
    // The L2 quantizer is available as the paper's ablation.
    let l2 = MmqConfig {
        metric: MetricKind::L2,
        spherical: false,
        epochs: 2,
        ..cfg
    };
    let (_, c2) = Mmq::fit(&g, &fam.data, &fam.parts, &l2).unwrap();
    assert_eq!(c2.levels, 6);
}

/// A fit resumed from an epoch checkpoint (saved to a file and loaded back) gives the model of
/// a fit that ran straight through, bit for bit: the checkpoint keeps Adam's state, the step
/// count, the dead-code counters and the re-seeding generator.
#[test]
fn resuming_from_an_epoch_checkpoint_gives_the_uninterrupted_model() {
    let g = gpu();
    let x = rand_vec(60 * 8, 12);
    let cfg = MmqConfig {
        epochs: 4,
        batch_size: 16,
        checkpoint_every: 2,
        kmeans_init: true,
        dead_code_steps: 2,
        ..tiny_cfg()
    };
    let mut at2: Option<Mmq> = None;
    let mut keep = |m: &Mmq| {
        if m.epochs_done == 2 {
            at2 = Some(m.clone());
        }
        Ok(())
    };
    let (straight, codes) = Mmq::fit_with(
        &g,
        &x,
        &mods(),
        &cfg,
        FitHooks {
            progress: &mut |_, _| {},
            resume: None,
            on_level: &mut keep,
        },
    )
    .unwrap();
    let at2 = at2.expect("a checkpoint after epoch 2");
    assert!(at2.train_state.as_ref().unwrap().steps > 0);
    let path = std::env::temp_dir().join(format!("semid-mmq-resume-{}.st", std::process::id()));
    AnyTokenizer::Mmq(at2).save(&path, "fp").unwrap();
    let (AnyTokenizer::Mmq(loaded), _) = AnyTokenizer::load(&path).unwrap() else {
        panic!("not mmq")
    };
    let _ = std::fs::remove_file(&path);
    let (resumed, codes2) = Mmq::fit_with(
        &g,
        &x,
        &mods(),
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
