//! DIN's activation unit and attention pooling on the GPU against the plain four-block formula
//! in f64 (`activation_unit_cpu`), values and gradients (central finite differences of the f64
//! reference), on awkward shapes: rows with no history, full rows, widths that are no tile
//! multiple, both weightings.

use crate::common::gpu;
use semid::autograd::Graph;
use semid::nn::{Activation, ParamStore};
use semid::rank::attention::{activation_unit_cpu, CpuLayer};
use semid::rank::{ActivationUnit, AttentionWeights, HistoryContext};
use semid::Tensor;

struct Case {
    d: usize,
    h: usize,
    hidden: Vec<usize>,
    lens: Vec<u32>,
    act: Activation,
    weights: AttentionWeights,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            d: 5,
            h: 7,
            hidden: vec![6, 3],
            lens: vec![0, 3, 7],
            act: Activation::Sigmoid,
            weights: AttentionWeights::Raw,
        },
        Case {
            d: 3,
            h: 4,
            hidden: vec![5],
            lens: vec![4, 1],
            act: Activation::Tanh,
            weights: AttentionWeights::Softmax,
        },
        Case {
            d: 1,
            h: 1,
            hidden: vec![2, 2],
            lens: vec![1],
            act: Activation::Gelu,
            weights: AttentionWeights::Raw,
        },
        Case {
            d: 4,
            h: 13,
            hidden: vec![7],
            lens: vec![13, 0, 5, 12, 1],
            act: Activation::Sigmoid,
            weights: AttentionWeights::Softmax,
        },
    ]
}

/// The unit's layers from the store, as f64 for the reference.
fn layers_of(store: &ParamStore, name: &str, n: usize) -> Vec<CpuLayer> {
    (0..n)
        .map(|i| {
            let w = store
                .get(&format!("{name}.{}.weight", 2 * i))
                .unwrap()
                .to_vec()
                .unwrap();
            let b = store
                .get(&format!("{name}.{}.bias", 2 * i))
                .unwrap()
                .to_vec()
                .unwrap();
            (
                w.iter().map(|&x| x as f64).collect(),
                b.iter().map(|&x| x as f64).collect(),
            )
        })
        .collect()
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

#[test]
fn pooled_history_equals_the_four_block_formula() {
    let gpu = gpu();
    for (ci, c) in cases().into_iter().enumerate() {
        let b = c.lens.len();
        let mut store = ParamStore::new(&gpu, 7 + ci as u64);
        let unit =
            ActivationUnit::new(&mut store, "att", c.d, &c.hidden, c.act, c.weights).unwrap();
        let hist = crate::common::rand_vec(b * c.h * c.d, 100 + ci as u64);
        let query = crate::common::rand_vec(b * c.d, 200 + ci as u64);
        let ctx = HistoryContext::new(&gpu, c.h, &c.lens).unwrap();
        let g = Graph::new(&gpu);
        let hv = g.input(&Tensor::from_slice(&gpu, &hist, &[b * c.h, c.d]).unwrap());
        let qv = g.input(&Tensor::from_slice(&gpu, &query, &[b, c.d]).unwrap());
        let got = unit
            .pool(&g, &store, &ctx, &hv, &qv)
            .unwrap()
            .value()
            .to_vec()
            .unwrap();
        let layers = layers_of(&store, "att", c.hidden.len() + 1);
        let want = activation_unit_cpu(
            &layers,
            &f64s(&hist),
            &f64s(&query),
            &c.lens,
            c.d,
            c.act,
            c.weights,
        );
        let want: Vec<f32> = want.iter().map(|&x| x as f32).collect();
        crate::common::assert_close(&got, &want, 1e-5, 1e-4, &format!("case {ci}"));
        // A row with no history pools to exactly zero.
        for (r, &l) in c.lens.iter().enumerate() {
            if l == 0 {
                assert!(
                    got[r * c.d..(r + 1) * c.d].iter().all(|&x| x == 0.0),
                    "case {ci} row {r}"
                );
            }
        }
    }
}

/// Central differences of `f` at `x` for the coordinates `coords`.
fn numeric_grad(x: &[f64], coords: &[usize], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let eps = 1e-5;
    coords
        .iter()
        .map(|&i| {
            let (mut a, mut b) = (x.to_vec(), x.to_vec());
            a[i] += eps;
            b[i] -= eps;
            (f(&a) - f(&b)) / (2.0 * eps)
        })
        .collect()
}

#[test]
fn gradients_of_history_query_and_weights_match_finite_differences() {
    let gpu = gpu();
    for (ci, c) in cases().into_iter().enumerate() {
        let b = c.lens.len();
        let nl = c.hidden.len() + 1;
        let mut store = ParamStore::new(&gpu, 30 + ci as u64);
        let unit =
            ActivationUnit::new(&mut store, "att", c.d, &c.hidden, c.act, c.weights).unwrap();
        let hist = crate::common::rand_vec(b * c.h * c.d, 300 + ci as u64);
        let query = crate::common::rand_vec(b * c.d, 400 + ci as u64);
        // The loss Σ pooled ⊙ R with a fixed random R.
        let r = crate::common::rand_vec(b * c.d, 500 + ci as u64);
        let ctx = HistoryContext::new(&gpu, c.h, &c.lens).unwrap();
        let g = Graph::new(&gpu);
        let hv = g
            .leaf(&Tensor::from_slice(&gpu, &hist, &[b * c.h, c.d]).unwrap())
            .unwrap();
        let qv = g
            .leaf(&Tensor::from_slice(&gpu, &query, &[b, c.d]).unwrap())
            .unwrap();
        let pooled = unit.pool(&g, &store, &ctx, &hv, &qv).unwrap();
        let loss = g
            .sum(
                &g.mul(
                    &pooled,
                    &g.input(&Tensor::from_slice(&gpu, &r, &[b, c.d]).unwrap()),
                )
                .unwrap(),
            )
            .unwrap();
        let grads = g.backward(&loss).unwrap();
        let layers = layers_of(&store, "att", nl);
        let (h64, q64, r64) = (f64s(&hist), f64s(&query), f64s(&r));
        let objective = |layers: &[CpuLayer], h: &[f64], q: &[f64]| -> f64 {
            activation_unit_cpu(layers, h, q, &c.lens, c.d, c.act, c.weights)
                .iter()
                .zip(&r64)
                .map(|(a, b)| a * b)
                .sum()
        };
        let check = |got: &[f32], want: &[f64], coords: &[usize], what: &str| {
            for (k, &i) in coords.iter().enumerate() {
                let (gv, wv) = (got[i] as f64, want[k]);
                assert!(
                    (gv - wv).abs() <= 2e-3 + 2e-3 * wv.abs(),
                    "case {ci} {what}[{i}]: autograd {gv}, finite differences {wv}"
                );
            }
        };
        let all = |n: usize| (0..n).collect::<Vec<_>>();
        let gh = grads.get(&hv).unwrap().to_vec().unwrap();
        check(
            &gh,
            &numeric_grad(&h64, &all(h64.len()), |h| objective(&layers, h, &q64)),
            &all(h64.len()),
            "d hist",
        );
        // Padded positions get no gradient at all.
        for (row, &l) in c.lens.iter().enumerate() {
            for j in l as usize..c.h {
                let at = (row * c.h + j) * c.d;
                assert!(
                    gh[at..at + c.d].iter().all(|&x| x == 0.0),
                    "case {ci}: padding row {row} pos {j}"
                );
            }
        }
        let gq = grads.get(&qv).unwrap().to_vec().unwrap();
        check(
            &gq,
            &numeric_grad(&q64, &all(q64.len()), |q| objective(&layers, &h64, q)),
            &all(q64.len()),
            "d query",
        );
        for li in 0..nl {
            for (part, name) in [(0, "weight"), (1, "bias")] {
                let pname = format!("att.{}.{name}", 2 * li);
                let got = grads.param(&pname).unwrap().to_vec().unwrap();
                let x = if part == 0 {
                    layers[li].0.clone()
                } else {
                    layers[li].1.clone()
                };
                let want = numeric_grad(&x, &all(x.len()), |v| {
                    let mut l2 = layers.clone();
                    if part == 0 {
                        l2[li].0 = v.to_vec()
                    } else {
                        l2[li].1 = v.to_vec()
                    }
                    objective(&l2, &h64, &q64)
                });
                check(&got, &want, &all(x.len()), &pname);
            }
        }
    }
}

#[test]
fn a_history_longer_than_its_width_is_a_shape_error() {
    let e = HistoryContext::new(&gpu(), 3, &[1, 4]).unwrap_err();
    assert!(e.to_string().contains("4 positions in a width of 3"), "{e}");
}
