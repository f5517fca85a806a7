//! Layers, the parameter store, the optimizers and training: an MLP learns a regression,
//! seeded runs repeat bit for bit, parameter files round-trip exactly with PyTorch names and
//! layouts, and every optimizer kernel matches a CPU reference (with clipping).
use crate::common;
use common::*;
use semid::autograd::{Grads, Graph};
use semid::kernels::optim as ko;
use semid::nn::{
    Activation, Dropout, Embedding, Init, LayerNorm, Linear, Mlp, MlpConfig, ParamStore,
};
use semid::optim::{global_grad_norm, grad_sum_sq, Adam, Optimizer, Sgd};
use semid::rng::Rng;
use semid::Tensor;
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("semid-nn-train-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

// ---------------------------------------------------------------------------------------------
// training

/// A fixed synthetic regression: y = sin(x·a) + 0.5·(x·b)², 256 samples of 8 features.
fn regression_data() -> (Vec<f32>, Vec<f32>) {
    let (n, d) = (256, 8);
    let mut rng = Rng::new(2024);
    let x = rng.normal_vec(n * d);
    let a = rng.normal_vec(d);
    let b = rng.normal_vec(d);
    let y = (0..n)
        .map(|i| {
            let row = &x[i * d..(i + 1) * d];
            let pa: f32 = row.iter().zip(&a).map(|(u, v)| u * v).sum::<f32>() / (d as f32).sqrt();
            let pb: f32 = row.iter().zip(&b).map(|(u, v)| u * v).sum::<f32>() / (d as f32).sqrt();
            pa.sin() + 0.5 * pb * pb
        })
        .collect();
    (x, y)
}

/// Trains a two-layer MLP (8 → 64 → 1, ReLU) with `opt` and returns the loss curve.
fn train(seed: u64, steps: usize, opt: &mut dyn Optimizer) -> Vec<f32> {
    let gpu = gpu();
    let (x, y) = regression_data();
    let xt = Tensor::from_slice(&gpu, &x, &[256, 8]).unwrap();
    let yt = Tensor::from_slice(&gpu, &y, &[256, 1]).unwrap();
    let mut store = ParamStore::new(&gpu, seed);
    let mlp = Mlp::new(
        &mut store,
        "net",
        &MlpConfig::new(&[8, 64, 1]).init(Init::KaimingUniform),
    )
    .unwrap();
    let mut curve = Vec::with_capacity(steps);
    for _ in 0..steps {
        let g = Graph::new(&gpu);
        let pred = mlp.forward(&g, &store, &g.input(&xt)).unwrap();
        let loss = g.mse(&pred, &g.input(&yt)).unwrap();
        let grads = g.backward(&loss).unwrap();
        opt.step(&mut store, &grads).unwrap();
        curve.push(loss.value().to_vec().unwrap()[0]);
    }
    curve
}

#[test]
fn two_layer_mlp_cuts_its_loss_by_90_percent() {
    let curve = train(7, 300, &mut Adam::new(1e-2));
    let (first, last) = (curve[0], *curve.last().unwrap());
    eprintln!("Adam: loss {first} -> {last}");
    assert!(first.is_finite() && last.is_finite());
    assert!(
        last <= 0.1 * first,
        "loss went from {first} to {last} ({:.1}% of the start)",
        100.0 * last / first
    );
    // SGD with momentum and clipping trains too.
    let curve = train(
        7,
        300,
        &mut Sgd::new(0.05).momentum(0.9).clip_grad_norm(5.0),
    );
    let (first, last) = (curve[0], *curve.last().unwrap());
    eprintln!("SGD: loss {first} -> {last}");
    assert!(last <= 0.1 * first, "SGD: loss went from {first} to {last}");
}

#[test]
fn same_seed_same_loss_curve_bit_for_bit() {
    let a = train(11, 25, &mut Adam::adamw(5e-3, 0.01).clip_grad_norm(1.0));
    let b = train(11, 25, &mut Adam::adamw(5e-3, 0.01).clip_grad_norm(1.0));
    assert_eq!(bits(&a), bits(&b), "same seed, same curve");
    let c = train(12, 25, &mut Adam::adamw(5e-3, 0.01).clip_grad_norm(1.0));
    assert_ne!(bits(&a), bits(&c), "another seed, another curve");
    // With dropout: seeded masks repeat too.
    let run = || {
        let gpu = gpu();
        let (x, y) = regression_data();
        let xt = Tensor::from_slice(&gpu, &x, &[256, 8]).unwrap();
        let yt = Tensor::from_slice(&gpu, &y, &[256, 1]).unwrap();
        let mut store = ParamStore::new(&gpu, 3);
        let l1 = Linear::new(&mut store, "l1", 8, 32, true, Init::TorchLinear).unwrap();
        let l2 = Linear::new(&mut store, "l2", 32, 1, true, Init::TorchLinear).unwrap();
        let drop = Dropout::new(0.2, 99).unwrap();
        let mut opt = Sgd::new(0.02).momentum(0.5);
        (0..10)
            .map(|_| {
                let g = Graph::new(&gpu);
                let h = l1
                    .forward_act(&g, &store, &g.input(&xt), Activation::Relu)
                    .unwrap();
                let h = drop.forward(&g, &h, true).unwrap();
                let p = l2.forward(&g, &store, &h).unwrap();
                let loss = g.mse(&p, &g.input(&yt)).unwrap();
                let grads = g.backward(&loss).unwrap();
                opt.step(&mut store, &grads).unwrap();
                loss.value().to_vec().unwrap()[0]
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(bits(&run()), bits(&run()), "dropout run repeats");
}

#[test]
fn a_whole_training_step_is_one_submission() {
    let gpu = semid::Gpu::with_default_limits().unwrap();
    let mut store = ParamStore::new(&gpu, 1);
    let mlp = Mlp::new(&mut store, "m", &MlpConfig::new(&[5, 7, 3])).unwrap();
    let ln = LayerNorm::new(&mut store, "ln", 3, true).unwrap();
    let emb = Embedding::new(&mut store, "emb", 4, 5, Init::Normal { std: 1.0 }).unwrap();
    let idx = Tensor::from_u32(&gpu, &[0, 3, 3, 1, 2, 0], &[6]).unwrap();
    let target = Tensor::from_slice(&gpu, &rand_vec(18, 3), &[6, 3]).unwrap();
    let mut opt = Adam::adamw(1e-3, 0.01).clip_grad_norm(0.5);
    gpu.sync().unwrap();
    for step in 0..3 {
        let before = gpu.submissions();
        let g = Graph::new(&gpu);
        let x = emb.forward(&g, &store, &idx).unwrap();
        let y = ln
            .forward(&g, &store, &mlp.forward(&g, &store, &x).unwrap())
            .unwrap();
        let loss = g.mse(&y, &g.input(&target)).unwrap();
        let grads = g.backward(&loss).unwrap();
        opt.step(&mut store, &grads).unwrap();
        assert_eq!(
            gpu.submissions(),
            before,
            "step {step}: nothing submitted yet"
        );
        let _ = loss.value().to_vec().unwrap();
        assert_eq!(gpu.submissions(), before + 1, "step {step}: one submission");
    }
}

// ---------------------------------------------------------------------------------------------
// layers

#[test]
fn linear_matches_cpu_and_uses_pytorch_layout() {
    let gpu = gpu();
    let mut store = ParamStore::new(&gpu, 5);
    let lin = Linear::new(&mut store, "fc", 13, 7, true, Init::XavierUniform).unwrap();
    assert_eq!(store.get("fc.weight").unwrap().shape(), &[7, 13]);
    assert_eq!(store.get("fc.bias").unwrap().shape(), &[7]);
    let w = store.get("fc.weight").unwrap().to_vec().unwrap();
    let bound = (6.0f32 / 20.0).sqrt();
    assert!(w.iter().all(|v| v.abs() <= bound));
    assert!(
        w.iter().any(|v| v.abs() > 0.5 * bound),
        "spread of the init"
    );
    assert!(store
        .get("fc.bias")
        .unwrap()
        .to_vec()
        .unwrap()
        .iter()
        .all(|&v| v == 0.0));
    store.set("fc.bias", &rand_vec(7, 9)).unwrap();
    let b = store.get("fc.bias").unwrap().to_vec().unwrap();
    let x = rand_vec(3 * 13, 10);
    let g = Graph::new(&gpu);
    let y = lin
        .forward_act(
            &g,
            &store,
            &g.input(&upload(&x, &[3, 13])),
            Activation::Tanh,
        )
        .unwrap();
    let got = y.value().to_vec().unwrap();
    let want: Vec<f32> = (0..3 * 7)
        .map(|k| {
            let (i, o) = (k / 7, k % 7);
            let s: f64 = (0..13)
                .map(|j| x[i * 13 + j] as f64 * w[o * 13 + j] as f64)
                .sum();
            (s + b[o] as f64).tanh() as f32
        })
        .collect();
    assert_close(&got, &want, 1e-5, 1e-5, "linear forward");
}

#[test]
fn initialisation_is_seeded_per_name() {
    let gpu = gpu();
    let mut a = ParamStore::new(&gpu, 17);
    a.init("x", &[3, 5], Init::KaimingNormal, 5, 3).unwrap();
    a.init("y", &[4], Init::TorchLinear, 5, 3).unwrap();
    let mut b = ParamStore::new(&gpu, 17);
    b.init("y", &[4], Init::TorchLinear, 5, 3).unwrap();
    b.init("x", &[3, 5], Init::KaimingNormal, 5, 3).unwrap();
    for n in ["x", "y"] {
        assert_eq!(
            bits(&a.get(n).unwrap().to_vec().unwrap()),
            bits(&b.get(n).unwrap().to_vec().unwrap()),
            "`{n}` does not depend on creation order"
        );
    }
    let mut c = ParamStore::new(&gpu, 18);
    c.init("x", &[3, 5], Init::KaimingNormal, 5, 3).unwrap();
    assert_ne!(
        a.get("x").unwrap().to_vec().unwrap(),
        c.get("x").unwrap().to_vec().unwrap()
    );
    assert!(
        a.init("x", &[1], Init::Zeros, 1, 1).is_err(),
        "duplicate name"
    );
    // Large-sample moments of the initialisers.
    let mut rng = Rng::new(1);
    let v = Init::KaimingNormal.sample(100_000, 50, 10, &mut rng);
    let var = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / v.len() as f64;
    assert!(
        (var - 2.0 / 50.0).abs() < 0.002,
        "kaiming normal variance {var}"
    );
    let v = Init::XavierUniform.sample(100_000, 50, 10, &mut rng);
    let bound = (6.0f64 / 60.0).sqrt();
    assert!(v.iter().all(|x| (*x as f64).abs() <= bound));
    let var = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / v.len() as f64;
    assert!(
        (var - bound * bound / 3.0).abs() < 0.002,
        "xavier uniform variance {var}"
    );
}

#[test]
fn mlp_names_follow_torch_sequential() {
    let gpu = gpu();
    let mut store = ParamStore::new(&gpu, 1);
    Mlp::new(
        &mut store,
        "encoder",
        &MlpConfig::new(&[768, 512, 256, 32]).bias(false),
    )
    .unwrap();
    assert_eq!(
        store.names(),
        vec!["encoder.0.weight", "encoder.2.weight", "encoder.4.weight"]
    );
    assert_eq!(store.get("encoder.2.weight").unwrap().shape(), &[256, 512]);
    let mut store = ParamStore::new(&gpu, 1);
    Mlp::new(
        &mut store,
        "lin",
        &MlpConfig::new(&[4, 3, 2]).act(Activation::None),
    )
    .unwrap();
    assert_eq!(
        store.names(),
        vec!["lin.0.weight", "lin.0.bias", "lin.1.weight", "lin.1.bias"]
    );
    assert!(Mlp::new(&mut store, "bad", &MlpConfig::new(&[4])).is_err());
}

#[test]
fn embedding_layernorm_and_dropout_layers() {
    let gpu = gpu();
    let mut store = ParamStore::new(&gpu, 2);
    let emb = Embedding::new(&mut store, "emb", 7, 5, Init::Normal { std: 1.0 }).unwrap();
    let ln = LayerNorm::new(&mut store, "ln", 5, true).unwrap();
    assert_eq!(
        store.get("ln.weight").unwrap().to_vec().unwrap(),
        vec![1.0; 5]
    );
    let idx = Tensor::from_u32(&gpu, &[6, 0, 6], &[3]).unwrap();
    let g = Graph::new(&gpu);
    let e = emb.forward(&g, &store, &idx).unwrap();
    let y = ln.forward(&g, &store, &e).unwrap();
    let loss = g.sum(&g.square(&y).unwrap()).unwrap();
    let grads = g.backward(&loss).unwrap();
    let table = store.get("emb.weight").unwrap().to_vec().unwrap();
    assert_eq!(&e.value().to_vec().unwrap()[..5], &table[30..35]);
    // Rows never looked up get zero gradient; looked-up ones get some.
    let gt = grads.param("emb.weight").unwrap().to_vec().unwrap();
    assert!(gt[5..30].iter().all(|&v| v == 0.0));
    assert!(gt[30..35].iter().any(|&v| v != 0.0));
    // d/dbeta of Σ y² is 2·Σ_rows y.
    let yv = y.value().to_vec().unwrap();
    let gb = grads.param("ln.bias").unwrap().to_vec().unwrap();
    for j in 0..5 {
        let want: f32 = (0..3).map(|i| 2.0 * yv[i * 5 + j]).sum();
        assert!((gb[j] - want).abs() < 1e-4);
    }
    // Dropout: eval is the identity, training masks repeat per seed and stream.
    let d1 = Dropout::new(0.5, 4).unwrap();
    let d2 = Dropout::new(0.5, 4).unwrap();
    let x = g.input(&upload(&vec![1.0; 64], &[8, 8]));
    assert!(d1
        .forward(&g, &x, false)
        .unwrap()
        .value()
        .same_storage(x.value()));
    let a = d1.forward(&g, &x, true).unwrap().value().to_vec().unwrap();
    let b = d2.forward(&g, &x, true).unwrap().value().to_vec().unwrap();
    let c = d1.forward(&g, &x, true).unwrap().value().to_vec().unwrap();
    assert_eq!(a, b, "same seed, same first mask");
    assert_ne!(a, c, "the next call draws a new mask");
    assert_eq!(d1.calls(), 2);
    assert!(a.iter().all(|&v| v == 0.0 || v == 2.0));
    assert!(Dropout::new(1.0, 0).is_err());
}

// ---------------------------------------------------------------------------------------------
// parameter files

#[test]
fn save_and_load_round_trip_exactly_with_torch_names() {
    let gpu = gpu();
    let mut store = ParamStore::new(&gpu, 9);
    Mlp::new(&mut store, "encoder", &MlpConfig::new(&[13, 7, 3])).unwrap();
    LayerNorm::new(&mut store, "norm", 3, true).unwrap();
    Embedding::new(&mut store, "codebook", 5, 3, Init::Normal { std: 1.0 }).unwrap();
    // Awkward values: subnormals, negative zero, extremes.
    store
        .set("norm.bias", &[f32::MIN_POSITIVE / 4.0, -0.0, f32::MAX])
        .unwrap();
    let path = tmp("params.safetensors");
    store.save(&path).unwrap();

    // The file is plain safetensors: F32, PyTorch names and [out, in] layouts, format "pt".
    let bytes = std::fs::read(&path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let m = meta.metadata().clone().unwrap();
    assert_eq!(m.get("format").map(String::as_str), Some("pt"));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(|s| s.to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "codebook.weight",
            "encoder.0.bias",
            "encoder.0.weight",
            "encoder.2.bias",
            "encoder.2.weight",
            "norm.bias",
            "norm.weight"
        ]
    );
    let w = st.tensor("encoder.0.weight").unwrap();
    assert_eq!(w.shape(), &[7, 13]);
    assert_eq!(w.dtype(), safetensors::Dtype::F32);
    let want = store.get("encoder.0.weight").unwrap().to_vec().unwrap();
    assert_eq!(
        bits(&bytemuck::pod_collect_to_vec::<u8, f32>(w.data())),
        bits(&want)
    );

    // Load into a differently seeded store with the same layers: bit-exact.
    let mut other = ParamStore::new(&gpu, 1234);
    Mlp::new(&mut other, "encoder", &MlpConfig::new(&[13, 7, 3])).unwrap();
    LayerNorm::new(&mut other, "norm", 3, true).unwrap();
    Embedding::new(&mut other, "codebook", 5, 3, Init::Normal { std: 1.0 }).unwrap();
    let storage_before = other.get("encoder.0.weight").unwrap().clone();
    other.load(&path).unwrap();
    for p in store.iter() {
        assert_eq!(
            bits(&p.value.to_vec().unwrap()),
            bits(&other.get(&p.name).unwrap().to_vec().unwrap()),
            "{}",
            p.name
        );
    }
    assert!(
        other
            .get("encoder.0.weight")
            .unwrap()
            .same_storage(&storage_before),
        "loaded in place"
    );
    // A store built from the file alone.
    let fresh = ParamStore::from_file(&gpu, &path, 0).unwrap();
    assert_eq!(fresh.len(), store.len());
    assert_eq!(
        bits(&fresh.get("norm.bias").unwrap().to_vec().unwrap()),
        bits(&[f32::MIN_POSITIVE / 4.0, -0.0, f32::MAX])
    );

    // Strictness: a missing parameter, a wrong shape, an unknown tensor.
    let mut more = ParamStore::new(&gpu, 1);
    Mlp::new(&mut more, "encoder", &MlpConfig::new(&[13, 7, 3])).unwrap();
    assert!(
        more.load(&path).is_err(),
        "file has tensors the store lacks"
    );
    let mut wrong = ParamStore::new(&gpu, 1);
    Mlp::new(&mut wrong, "encoder", &MlpConfig::new(&[13, 8, 3])).unwrap();
    LayerNorm::new(&mut wrong, "norm", 3, true).unwrap();
    Embedding::new(&mut wrong, "codebook", 5, 3, Init::Zeros).unwrap();
    let before = wrong.get("encoder.0.weight").unwrap().to_vec().unwrap();
    assert!(wrong.load(&path).is_err(), "shape mismatch");
    assert_eq!(
        wrong.get("encoder.0.weight").unwrap().to_vec().unwrap(),
        before,
        "a failed load changes nothing"
    );
    let mut extra = ParamStore::new(&gpu, 9);
    Mlp::new(&mut extra, "encoder", &MlpConfig::new(&[13, 7, 3])).unwrap();
    LayerNorm::new(&mut extra, "norm", 3, true).unwrap();
    Embedding::new(&mut extra, "codebook", 5, 3, Init::Zeros).unwrap();
    extra
        .init("decoder.0.weight", &[2, 2], Init::Zeros, 2, 2)
        .unwrap();
    assert!(
        extra.load(&path).is_err(),
        "parameter missing from the file"
    );
    assert!(ParamStore::from_file(&gpu, &tmp("missing.safetensors"), 0).is_err());
    std::fs::write(tmp("junk.safetensors"), b"not a file").unwrap();
    assert!(ParamStore::from_file(&gpu, &tmp("junk.safetensors"), 0).is_err());
}

// ---------------------------------------------------------------------------------------------
// optimizers against CPU references

const PSHAPES: &[&[usize]] = &[&[1, 1], &[3, 5], &[7, 13], &[13]];

/// A store with one parameter per shape in `PSHAPES` and the gradients `grad[k]` for each
/// (produced by a graph: L = Σ_k Σ p_k ⊙ grad_k, so dL/dp_k = grad_k exactly).
fn store_and_grads(seed: u64, grads: &[Vec<f32>]) -> (ParamStore, Grads, Vec<Vec<f32>>) {
    let gpu = gpu();
    let mut store = ParamStore::new(&gpu, seed);
    let mut values = Vec::new();
    for (k, s) in PSHAPES.iter().enumerate() {
        let n: usize = s.iter().product();
        let v = rand_vec(n, seed + k as u64);
        store.add_from(&format!("p{k}"), &v, s).unwrap();
        values.push(v);
    }
    let g = grads_for(&store, grads);
    (store, g, values)
}

fn grads_for(store: &ParamStore, grads: &[Vec<f32>]) -> Grads {
    let g = Graph::new(store.gpu());
    let mut total = None;
    for (k, s) in PSHAPES.iter().enumerate() {
        let p = g.param(store, &format!("p{k}")).unwrap();
        let w = g.input(&upload(&grads[k], s));
        let term = g.sum(&g.mul(&p, &w).unwrap()).unwrap();
        total = Some(match total {
            None => term,
            Some(t) => g.add(&t, &term).unwrap(),
        });
    }
    g.backward(&total.unwrap()).unwrap()
}

fn rand_grads(seed: u64, scale: f32) -> Vec<Vec<f32>> {
    PSHAPES
        .iter()
        .enumerate()
        .map(|(k, s)| {
            rand_vec(s.iter().product(), seed * 31 + k as u64)
                .iter()
                .map(|v| v * scale)
                .collect()
        })
        .collect()
}

fn sum_sq(grads: &[Vec<f32>]) -> f64 {
    grads
        .iter()
        .flatten()
        .map(|&v| (v as f64) * (v as f64))
        .sum()
}

#[test]
fn sgd_matches_cpu_with_and_without_clipping() {
    let configs: Vec<(&str, Sgd)> = vec![
        ("plain", Sgd::new(0.1)),
        ("weight decay", Sgd::new(0.1).weight_decay(0.05)),
        ("momentum", Sgd::new(0.1).momentum(0.9)),
        (
            "momentum dampening",
            Sgd::new(0.1).momentum(0.9).dampening(0.3),
        ),
        (
            "nesterov",
            Sgd::new(0.05)
                .momentum(0.8)
                .nesterov(true)
                .weight_decay(0.01),
        ),
        ("clipped", Sgd::new(0.1).clip_grad_norm(0.5)),
        (
            "clipped momentum",
            Sgd::new(0.1).momentum(0.9).clip_grad_norm(0.7),
        ),
        ("clip not binding", Sgd::new(0.1).clip_grad_norm(1e6)),
    ];
    for (ci, (name, mut opt)) in configs.into_iter().enumerate() {
        let grads0 = rand_grads(ci as u64, 2.0);
        let (mut store, _, mut cpu_p) = store_and_grads(100 + ci as u64, &grads0);
        let mut cpu_buf: Vec<Vec<f32>> = cpu_p.iter().map(|v| vec![0.0; v.len()]).collect();
        for step in 0..3 {
            let gr = rand_grads(10 * ci as u64 + step, 2.0);
            let grads = grads_for(&store, &gr);
            opt.step(&mut store, &grads).unwrap();
            let scale = match opt.clip_norm {
                Some(m) => ko::clip_scale_cpu(sum_sq(&gr), m),
                None => 1.0,
            };
            if name.starts_with("clipped") {
                assert!(scale < 0.5, "{name}: clipping must bind (scale {scale})");
            }
            for k in 0..PSHAPES.len() {
                ko::sgd_cpu(
                    &mut cpu_p[k],
                    &gr[k],
                    &mut cpu_buf[k],
                    step == 0,
                    &opt.hyper,
                    scale,
                );
                let got = store.get(&format!("p{k}")).unwrap().to_vec().unwrap();
                assert_close(
                    &got,
                    &cpu_p[k],
                    1e-6,
                    1e-5,
                    &format!("sgd {name}, step {step}, p{k} {:?}", PSHAPES[k]),
                );
            }
        }
    }
}

#[test]
fn adam_and_adamw_match_cpu_with_and_without_clipping() {
    let configs: Vec<(&str, Adam)> = vec![
        ("adam", Adam::new(1e-2)),
        ("adam l2", Adam::new(1e-2).weight_decay(0.1)),
        ("adamw", Adam::adamw(1e-2, 0.1)),
        ("adam betas eps", Adam::new(3e-2).betas(0.5, 0.9).eps(1e-3)),
        ("adam clipped", Adam::new(1e-2).clip_grad_norm(0.3)),
        ("adamw clipped", Adam::adamw(1e-2, 0.05).clip_grad_norm(0.3)),
    ];
    for (ci, (name, mut opt)) in configs.into_iter().enumerate() {
        let grads0 = rand_grads(50 + ci as u64, 1.5);
        let (mut store, _, mut cpu_p) = store_and_grads(200 + ci as u64, &grads0);
        let mut m: Vec<Vec<f32>> = cpu_p.iter().map(|v| vec![0.0; v.len()]).collect();
        let mut v = m.clone();
        for step in 1..=4u64 {
            let gr = rand_grads(100 * ci as u64 + step, 1.5);
            let grads = grads_for(&store, &gr);
            opt.step(&mut store, &grads).unwrap();
            let scale = match opt.clip_norm {
                Some(mx) => ko::clip_scale_cpu(sum_sq(&gr), mx),
                None => 1.0,
            };
            if name.ends_with("clipped") {
                assert!(scale < 0.5, "{name}: clipping must bind");
            }
            let h = ko::AdamHyper {
                lr: opt.lr,
                beta1: opt.beta1,
                beta2: opt.beta2,
                eps: opt.eps,
                weight_decay: opt.weight_decay,
                decoupled: opt.decoupled,
                step,
            };
            for k in 0..PSHAPES.len() {
                ko::adam_cpu(&mut cpu_p[k], &gr[k], &mut m[k], &mut v[k], &h, scale);
                let got = store.get(&format!("p{k}")).unwrap().to_vec().unwrap();
                assert_close(
                    &got,
                    &cpu_p[k],
                    1e-6,
                    1e-5,
                    &format!("{name}, step {step}, p{k} {:?}", PSHAPES[k]),
                );
                let (gm, gv, t) = opt.state(&format!("p{k}")).unwrap();
                assert_eq!(t, step);
                assert_close(&gm.to_vec().unwrap(), &m[k], 1e-7, 1e-5, "first moment");
                assert_close(&gv.to_vec().unwrap(), &v[k], 1e-8, 1e-5, "second moment");
            }
        }
    }
}

#[test]
fn optimizers_skip_frozen_and_gradless_parameters() {
    let gr = rand_grads(3, 1.0);
    let (mut store, _, vals) = store_and_grads(300, &gr);
    store.set_trainable("p1", false).unwrap();
    let grads = grads_for(&store, &gr);
    assert!(
        grads.param("p1").is_none(),
        "frozen parameters get no gradient"
    );
    store.add_from("unused", &[1.0, 2.0], &[2]).unwrap();
    let mut opt = Adam::new(0.1);
    opt.step(&mut store, &grads).unwrap();
    assert_eq!(store.get("p1").unwrap().to_vec().unwrap(), vals[1]);
    assert_eq!(
        store.get("unused").unwrap().to_vec().unwrap(),
        vec![1.0, 2.0]
    );
    assert!(opt.state("unused").is_none() && opt.state("p1").is_none());
    assert_ne!(store.get("p0").unwrap().to_vec().unwrap(), vals[0]);
}

#[test]
fn gradient_norms_on_the_gpu() {
    let gr = rand_grads(4, 3.0);
    let (store, grads, _) = store_and_grads(400, &gr);
    let want = sum_sq(&gr);
    let got = grad_sum_sq(&store, &grads)
        .unwrap()
        .unwrap()
        .to_vec()
        .unwrap()[0] as f64;
    assert!((got - want).abs() <= 1e-5 * want, "{got} vs {want}");
    let norm = global_grad_norm(&grads).unwrap().unwrap().to_vec().unwrap()[0] as f64;
    assert!((norm - want.sqrt()).abs() <= 1e-5 * want.sqrt());
    // Sizes around the 4096-element blocks.
    for n in [1usize, 4095, 4096, 4097, 3 * 4096 + 5] {
        let a = rand_vec(n, n as u64);
        let b = rand_vec(7, 1);
        let ta = upload(&a, &[n]);
        let tb = upload(&b, &[7]);
        let got = ko::sum_of_squares(&[&ta, &tb]).unwrap().to_vec().unwrap()[0] as f64;
        let want: f64 = a.iter().chain(&b).map(|&v| (v as f64).powi(2)).sum();
        assert!(
            (got - want).abs() <= 1e-5 * want,
            "n = {n}: {got} vs {want}"
        );
    }
}

#[test]
fn optimizer_kernels_more_than_65535_workgroups() {
    let n = 65_536 * 256 + 33;
    let p0 = rand_vec(n, 1);
    let g = rand_vec(n, 2);
    let (pt, gt) = (upload(&p0, &[n]), upload(&g, &[n]));
    let (mt, vt) = (
        Tensor::zeros(&gpu(), &[n]).unwrap(),
        Tensor::zeros(&gpu(), &[n]).unwrap(),
    );
    let gsq = ko::sum_of_squares(&[&gt]).unwrap();
    let h = ko::AdamHyper {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
        decoupled: true,
        step: 1,
    };
    ko::adam_step(
        &pt,
        &gt,
        &mt,
        &vt,
        &h,
        Some(ko::Clip {
            sum_sq: &gsq,
            max_norm: 100.0,
        }),
    )
    .unwrap();
    let got = pt.to_vec().unwrap();
    let total = gsq.to_vec().unwrap()[0] as f64;
    let scale = ko::clip_scale_cpu(total, 100.0);
    assert!(scale < 0.1);
    let mut want = p0.clone();
    let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
    ko::adam_cpu(&mut want, &g, &mut m, &mut v, &h, scale);
    assert_close(&got, &want, 1e-6, 1e-5, "adamw over 16.7M elements");
    // SGD with momentum over the same size.
    let pt = upload(&p0, &[n]);
    let buf = Tensor::empty(&gpu(), &[n]).unwrap();
    let hs = ko::SgdHyper {
        lr: 0.1,
        momentum: 0.9,
        dampening: 0.0,
        weight_decay: 0.0,
        nesterov: false,
    };
    ko::sgd_step(&pt, &gt, Some(&buf), true, &hs, None).unwrap();
    let got = pt.to_vec().unwrap();
    assert!(got
        .iter()
        .zip(p0.iter().zip(&g))
        .all(|(a, (p, g))| (a - (p - 0.1 * g)).abs() <= 1e-6));
    assert_eq!(
        buf.to_vec().unwrap(),
        g,
        "the first momentum buffer is the gradient"
    );
}

#[test]
fn optimizer_kernel_errors() {
    let p = upload(&[1.0, 2.0], &[2]);
    let g = upload(&[1.0], &[1]);
    let h = ko::SgdHyper {
        lr: 0.1,
        momentum: 0.9,
        dampening: 0.0,
        weight_decay: 0.0,
        nesterov: false,
    };
    assert!(ko::sgd_step(&p, &g, None, false, &h, None).is_err(), "size");
    let g = upload(&[1.0, 1.0], &[2]);
    assert!(
        ko::sgd_step(&p, &g, None, false, &h, None).is_err(),
        "momentum needs a buffer"
    );
    assert!(
        ko::sgd_step(&p, &p, None, false, &Sgd::new(0.1).hyper, None).is_err(),
        "aliasing"
    );
    let s = upload(&[1.0], &[1]);
    assert!(ko::sgd_step(
        &p,
        &g,
        None,
        false,
        &Sgd::new(0.1).hyper,
        Some(ko::Clip {
            sum_sq: &s,
            max_norm: 0.0
        })
    )
    .is_err());
    let z = upload(&[0.0, 0.0], &[2]);
    let mut ah = ko::AdamHyper {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        decoupled: false,
        step: 0,
    };
    assert!(
        ko::adam_step(&p, &g, &z, &upload(&[0.0, 0.0], &[2]), &ah, None).is_err(),
        "step 0"
    );
    ah.step = 1;
    assert!(
        ko::adam_step(&p, &g, &z, &z, &ah, None).is_err(),
        "shared moments"
    );
    let v = upload(&[0.0, 0.0], &[2]);
    let one = upload(&[1.0], &[1]);
    let clip_on = |s| {
        Some(ko::Clip {
            sum_sq: s,
            max_norm: 1.0,
        })
    };
    assert!(
        ko::adam_step(
            &one,
            &upload(&[1.0], &[1]),
            &upload(&[0.0], &[1]),
            &upload(&[0.0], &[1]),
            &ah,
            clip_on(&one)
        )
        .is_err(),
        "sum of squares aliases the parameter"
    );
    assert!(ko::adam_step(&p, &g, &z, &v, &ah, clip_on(&s)).is_ok());
}

// ---------------------------------------------------------------------------------------------
// the RQ-VAE pattern this engine is built for

/// Index of the nearest row of `codebook` `[k, d]` to each row of `r` by squared L2, all on
/// the GPU: argmin_j (‖c_j‖² − 2 r·c_j).
fn nearest_code(r: &Tensor, codebook: &Tensor) -> Tensor {
    use semid::kernels::elementwise::{binary, unary, Binary, Unary};
    use semid::kernels::matmul::{matmul, MatmulOpts};
    use semid::kernels::reduce::{argmin_rows, reduce_rows, RowReduce};
    let scores = matmul(r, codebook, &MatmulOpts::new().trans_b(true)).unwrap();
    let c_sq = reduce_rows(&unary(codebook, Unary::Square).unwrap(), RowReduce::Sum).unwrap();
    let d = binary(
        &c_sq,
        &scores,
        Binary::Axpby {
            alpha: 1.0,
            beta: -2.0,
        },
    )
    .unwrap();
    argmin_rows(&d).unwrap()
}

#[test]
fn rq_vae_step_with_straight_through_trains() {
    let gpu = gpu();
    let (n, d, latent, k, levels) = (128, 12, 4, 8, 2);
    let mut rng = Rng::new(5);
    let x: Vec<f32> = rng.normal_vec(n * d);
    let xt = Tensor::from_slice(&gpu, &x, &[n, d]).unwrap();
    let mut store = ParamStore::new(&gpu, 21);
    let enc = Mlp::new(
        &mut store,
        "encoder",
        &MlpConfig::new(&[d, 16, latent]).bias(false),
    )
    .unwrap();
    let dec = Mlp::new(
        &mut store,
        "decoder",
        &MlpConfig::new(&[latent, 16, d]).bias(false),
    )
    .unwrap();
    for l in 0..levels {
        store
            .init(
                &format!("codebook.{l}"),
                &[k, latent],
                Init::Normal { std: 0.5 },
                latent,
                k,
            )
            .unwrap();
    }
    let mut opt = Adam::new(1e-2);
    let mut curve = Vec::new();
    for _ in 0..60 {
        let g = Graph::new(&gpu);
        let xv = g.input(&xt);
        let z = enc.forward(&g, &store, &xv).unwrap();
        let mut r = z.clone();
        let mut zq: Option<semid::autograd::Var> = None;
        let mut loss = None;
        for l in 0..levels {
            let c = g.param(&store, &format!("codebook.{l}")).unwrap();
            let idx = nearest_code(r.value(), c.value());
            let e = g.gather_rows(&c, &idx).unwrap();
            let codebook_loss = g.mse(&g.detach(&r).unwrap(), &e).unwrap();
            let commit = g.mse(&r, &g.detach(&e).unwrap()).unwrap();
            let term = g
                .add(&codebook_loss, &g.scale(&commit, 0.25).unwrap())
                .unwrap();
            loss = Some(match loss {
                None => term,
                Some(t) => g.add(&t, &term).unwrap(),
            });
            r = g.sub(&r, &g.detach(&e).unwrap()).unwrap();
            zq = Some(match zq {
                None => e,
                Some(q) => g.add(&q, &e).unwrap(),
            });
        }
        let zq_st = g.straight_through(&z, &zq.unwrap()).unwrap();
        let recon = dec.forward(&g, &store, &zq_st).unwrap();
        let total = g.add(&loss.unwrap(), &g.mse(&recon, &xv).unwrap()).unwrap();
        let grads = g.backward(&total).unwrap();
        for name in [
            "encoder.0.weight",
            "decoder.2.weight",
            "codebook.0",
            "codebook.1",
        ] {
            assert!(grads.param(name).is_some(), "{name} gets a gradient");
        }
        opt.step(&mut store, &grads).unwrap();
        curve.push(total.value().to_vec().unwrap()[0]);
    }
    let (first, last) = (curve[0], *curve.last().unwrap());
    assert!(curve.iter().all(|v| v.is_finite()));
    assert!(last < 0.8 * first, "RQ-VAE loss {first} -> {last}");
}

/// An optimizer's exported state, imported into a fresh optimizer over a copy of the
/// parameters, continues the run exactly (SGD momentum buffers; Adam moments and steps).
#[test]
fn optimizer_state_export_and_import_continue_exactly() {
    type MakeOptimizer = fn() -> Box<dyn Optimizer>;
    let make: Vec<(&str, MakeOptimizer)> = vec![
        ("sgd momentum", || Box::new(Sgd::new(0.1).momentum(0.9))),
        ("adam", || Box::new(Adam::new(0.01))),
    ];
    for (what, new_opt) in make {
        let g1 = rand_grads(1, 1.0);
        let (mut a, grads, _) = store_and_grads(3, &g1);
        let mut opt_a = new_opt();
        opt_a.step(&mut a, &grads).unwrap();
        let g2 = grads_for(&a, &rand_grads(2, 1.0));
        opt_a.step(&mut a, &g2).unwrap();
        let state = opt_a.export_state().unwrap();
        assert_eq!(state.steps.len(), PSHAPES.len(), "{what}");
        // A second store with the same values, and a fresh optimizer given the state.
        let (mut b, _, _) = store_and_grads(99, &g1);
        for p in a.iter() {
            b.set(&p.name, &p.value.to_vec().unwrap()).unwrap();
        }
        let mut opt_b = new_opt();
        opt_b.import_state(&b, &state).unwrap();
        let g3 = rand_grads(3, 1.0);
        let (ga, gb) = (grads_for(&a, &g3), grads_for(&b, &g3));
        opt_a.step(&mut a, &ga).unwrap();
        opt_b.step(&mut b, &gb).unwrap();
        for (pa, pb) in a.iter().zip(b.iter()) {
            assert_eq!(
                bits(&pa.value.to_vec().unwrap()),
                bits(&pb.value.to_vec().unwrap()),
                "{what}: {}",
                pa.name
            );
        }
        assert_eq!(opt_a.export_state().unwrap(), opt_b.export_state().unwrap());
        // A state for other parameters is refused.
        let mut wrong = state.clone();
        wrong.steps.insert("nope".into(), 1);
        assert!(new_opt().import_state(&b, &wrong).is_err(), "{what}");
    }
}
