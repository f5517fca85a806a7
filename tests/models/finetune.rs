//! Behaviour-aware fine-tuning on a tiny model: the full loss's gradient against finite
//! differences where the loss is smooth, the ranking loss reaching the tokenizer's encoder and
//! codebooks through the soft index only, a step moving the tokenizer, and exact
//! re-encoding. (The soft index itself is checked in `kernels::autograd_gradcheck`; the
//! command line, resume and the written run in `cli::finetune`.)

use crate::common::*;
use semid::autograd::Graph;
use semid::data::{Interaction, Interactions};
use semid::quant::any::AnyTokenizer;
use semid::quant::mmq::{Mmq, MmqConfig, ModalitySpec};
use semid::quant::rqvae::{RqVae, RqVaeConfig};
use semid::quant::tokenizer::Tokenizer;
use semid::rank::finetune::{FineTuner, FinetuneConfig, TunedInputs};
use semid::rank::{
    CodeTables, FamilyCodes, ModelKind, ProtocolConfig, RankProtocol, Ranker, RankerConfig,
    SplitName, StepRule,
};

const ITEMS: usize = 12;

fn log() -> Interactions {
    let mut rows = Vec::new();
    let mut t = 0;
    for u in 0..6u32 {
        for j in 0..10u32 {
            let item = (u * 3 + j * 5) % ITEMS as u32;
            rows.push(Interaction {
                user: u,
                item,
                label: if (item + u).is_multiple_of(3) {
                    1.0
                } else {
                    5.0
                },
                timestamp: t,
            });
            t += 1;
        }
    }
    Interactions {
        users: (0..6).map(|u| format!("u{u}")).collect(),
        items: (0..ITEMS).map(|i| format!("i{i}")).collect(),
        rows,
    }
}

fn protocol() -> RankProtocol {
    let cfg = ProtocolConfig {
        history: 4,
        ..ProtocolConfig::default()
    };
    RankProtocol::build(&log(), &cfg).unwrap()
}

fn mmq(x: &[f32]) -> AnyTokenizer {
    let cfg = MmqConfig {
        latent: 4,
        k: 3,
        decoder_hidden: vec![5],
        batch_size: ITEMS,
        epochs: 2,
        ..MmqConfig::default()
    };
    let mods = [ModalitySpec::new("a", 3), ModalitySpec::new("b", 2)];
    AnyTokenizer::Mmq(Mmq::fit(&gpu(), x, &mods, &cfg).unwrap().0)
}

fn rqvae(x: &[f32]) -> AnyTokenizer {
    let cfg = RqVaeConfig {
        latent: 4,
        hidden: vec![6],
        k: 3,
        levels: 2,
        batch_size: ITEMS,
        epochs: 2,
        ..RqVaeConfig::default()
    };
    AnyTokenizer::RqVae(RqVae::fit(&gpu(), x, 5, &cfg).unwrap().0)
}

/// A DIN + SID ranker embedding `tok`'s codes, and the fine-tuner of `tok`.
fn setup(tok: &AnyTokenizer, x: &[f32], ft: &FinetuneConfig) -> (Ranker, FineTuner) {
    let gpu = gpu();
    let input = TunedInputs {
        data: x.to_vec(),
        dim: 5,
        rows: (0..ITEMS as u32).collect(),
    };
    let tuner = FineTuner::new(&gpu, tok, ft, 0, 2, input).unwrap();
    let codes = tuner.codes().unwrap();
    let tables = CodeTables {
        n_items: ITEMS,
        families: vec![FamilyCodes {
            family: "f".into(),
            run: "mem".into(),
            levels: codes.levels,
            k: codes.sizes.clone(),
            table: tuner.log_table(&codes),
        }],
    };
    let cfg = RankerConfig {
        model: ModelKind::DinSid,
        dim: 3,
        attention_hidden: vec![4],
        mlp_hidden: vec![4],
        finetune: Some(ft.clone()),
        ..RankerConfig::default()
    };
    (
        Ranker::new(&gpu, &cfg, ITEMS, 4, Some(&tables)).unwrap(),
        tuner,
    )
}

fn loss_of(r: &Ranker, t: &FineTuner, p: &RankProtocol, idx: &[usize]) -> f64 {
    let inp = r.inputs(&p.batch(SplitName::Train, idx).unwrap()).unwrap();
    let g = Graph::new(r.store.gpu());
    t.loss(&g, r, &inp).unwrap().0.value().to_vec().unwrap()[0] as f64
}

#[test]
fn the_fine_tuning_loss_gradient_matches_finite_differences_where_the_loss_is_smooth() {
    // Smooth in the ranker's parameters and in the tokenizer's decoders and gates (the codes
    // stay put when they move); the encoder and codebooks act through the hard code, whose
    // surrogate gradient the soft-index check covers.
    let x = rand_vec(ITEMS * 5, 7);
    for tok in [mmq(&x), rqvae(&x)] {
        let ft = FinetuneConfig {
            tau: 0.5,
            ..FinetuneConfig::default()
        };
        let (mut r, mut t) = setup(&tok, &x, &ft);
        let p = protocol();
        let idx: Vec<usize> = (0..p.len(SplitName::Train).min(16)).collect();
        let inp = r.inputs(&p.batch(SplitName::Train, &idx).unwrap()).unwrap();
        let g = Graph::new(r.store.gpu());
        let grads = g.backward(&t.loss(&g, &r, &inp).unwrap().0).unwrap();
        let ranker_names: Vec<String> = r.store.iter().map(|p| p.name.clone()).collect();
        let tok_names: Vec<String> = t
            .tok
            .store()
            .iter()
            .map(|p| p.name.clone())
            .filter(|n| {
                n.starts_with("decoder") || n.starts_with("aux_decoder") || n.starts_with("gate")
            })
            .collect();
        assert!(!tok_names.is_empty());
        let h = 1e-2f32;
        let mut checked = 0;
        for (name, in_ranker) in ranker_names
            .iter()
            .map(|n| (n, true))
            .chain(tok_names.iter().map(|n| (n, false)))
        {
            let orig = if in_ranker {
                r.store.get(name).unwrap().to_vec().unwrap()
            } else {
                t.tok.store().get(name).unwrap().to_vec().unwrap()
            };
            let got = grads.param(name).map(|g| g.to_vec().unwrap());
            let n = orig.len();
            for &j in &[0, n / 2, n - 1] {
                let mut eval = |v: f32| {
                    let mut w = orig.clone();
                    w[j] = v;
                    if in_ranker {
                        r.store.set(name, &w).unwrap();
                    } else {
                        t.tok.store_mut().set(name, &w).unwrap();
                    }
                    loss_of(&r, &t, &p, &idx)
                };
                let fd = (eval(orig[j] + h) - eval(orig[j] - h)) / (2.0 * h as f64);
                eval(orig[j]);
                let g = got.as_ref().map_or(0.0, |g| g[j] as f64);
                assert!(
                    (g - fd).abs() <= 2e-3 + 0.05 * fd.abs(),
                    "{}: d/d{name}[{j}]: backward {g}, finite difference {fd}",
                    tok.method()
                );
                checked += 1;
            }
        }
        assert!(checked > 20);
    }
}

#[test]
fn the_ranking_loss_alone_reaches_the_encoder_and_the_codebooks_and_a_step_moves_them() {
    let x = rand_vec(ITEMS * 5, 8);
    for tok in [mmq(&x), rqvae(&x)] {
        // Only the ranking loss: whatever the tokenizer's encoder gets comes through the soft
        // index.
        let ft = FinetuneConfig {
            recon_weight: 0.0,
            aux_weight: 0.0,
            lr: 1e-2,
            ..FinetuneConfig::default()
        };
        let (mut r, mut t) = setup(&tok, &x, &ft);
        let p = protocol();
        let idx: Vec<usize> = (0..p.len(SplitName::Train)).collect();
        let inp = r.inputs(&p.batch(SplitName::Train, &idx).unwrap()).unwrap();
        let g = Graph::new(r.store.gpu());
        let grads = g.backward(&t.loss(&g, &r, &inp).unwrap().0).unwrap();
        let encoders: Vec<String> = t
            .tok
            .store()
            .iter()
            .map(|p| p.name.clone())
            .filter(|n| {
                n.starts_with("codebook")
                    || n.starts_with("shared")
                    || n.starts_with("specific")
                    || n.starts_with("encoder")
            })
            .collect();
        assert!(encoders.len() >= 2, "{encoders:?}");
        for n in &encoders {
            let gv = grads
                .param(n)
                .unwrap_or_else(|| panic!("{}: no gradient for {n}", tok.method()));
            let v = gv.to_vec().unwrap();
            assert!(
                v.iter().any(|x| x.abs() > 0.0),
                "{}: zero gradient for {n}",
                tok.method()
            );
        }
        // The decoders are not on the ranking path.
        if let Some(gd) = grads.param("decoder.0.weight") {
            assert!(gd.to_vec().unwrap().iter().all(|v| *v == 0.0));
        }
        let before = t.tok.store().to_named().unwrap();
        let codes_before = t.codes().unwrap();
        let mut opt = semid::optim::Adam::new(1e-3);
        for _ in 0..3 {
            t.step(&mut r, &mut opt, &p, &idx).unwrap();
        }
        let after = t.tok.store().to_named().unwrap();
        for (a, b) in before.iter().zip(&after) {
            if encoders.contains(&a.name) {
                assert_ne!(a.data, b.data, "{}: {} did not move", tok.method(), a.name);
            }
        }
        // Re-encoding is a pure function of the parameters.
        let (c1, c2) = (t.codes().unwrap(), t.codes().unwrap());
        assert_eq!(c1.data, c2.data);
        assert_eq!(c1.levels, codes_before.levels);
    }
}
