//! Finite-difference gradient checks of every autograd op at awkward shapes.
//!
//! Each check records `y = op(inputs)` on the GPU with every input a leaf, back-propagates a
//! random upstream gradient `w` (`backward_with`), and compares:
//! - the forward value with an f64 CPU reference of the op;
//! - each input's GPU gradient with central differences of `L(x) = Σ w ⊙ op(x)` evaluated in
//!   f64 on the CPU (step 1e-6), within `1e-4 + 1e-3·max|fd| + 1e-2·|fd|` per element —
//!   tight enough that a wrong transpose, a dropped broadcast sum or a missing factor fails.
//!
//! Then the backward kernels alone at sizes needing more than 65,535 workgroups, and the
//! graph's guarantees (no readback, determinism, errors).
use crate::common;
use common::*;
use semid::autograd::{Graph, Var};
use semid::kernels::autograd as ak;
use semid::kernels::elementwise::{erf, Unary};
use semid::kernels::matmul::Activation;
use semid::kernels::movement::Segments;
use semid::{Result, Tensor};

type Build<'a> = &'a dyn Fn(&Graph, &[Var]) -> Result<Var>;
type Cpu<'a> = &'a dyn Fn(&[Vec<f64>]) -> Vec<f64>;
type BinOp = fn(&Graph, &Var, &Var) -> Result<Var>;
type BinCase = (&'static str, BinOp, fn(f64, f64) -> f64);
type UnOp = fn(&Graph, &Var) -> Result<Var>;
type UnCase = (&'static str, Vec<f32>, UnOp, fn(f64) -> f64);

const SHAPES: &[(usize, usize)] = &[(1, 1), (3, 5), (7, 13)];
const H: f64 = 1e-6;

fn input(n: usize, shape: &[usize], seed: u64) -> (Vec<f32>, Vec<usize>) {
    assert_eq!(n, shape.iter().product::<usize>());
    (rand_vec(n, seed), shape.to_vec())
}

/// Values in ±[lo, lo + 1): kept away from kinks and poles.
fn away_from_zero(n: usize, seed: u64, lo: f32) -> Vec<f32> {
    rand_vec(n, seed)
        .into_iter()
        .map(|v| if v < 0.0 { v - lo } else { v + lo })
        .collect()
}

fn positive(n: usize, seed: u64, lo: f32) -> Vec<f32> {
    rand_vec(n, seed)
        .into_iter()
        .map(|v| v.abs() + lo)
        .collect()
}

fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

fn weighted(cpu: Cpu, x: &[Vec<f64>], w: &[f64]) -> f64 {
    let y = cpu(x);
    assert_eq!(y.len(), w.len(), "cpu reference output length");
    y.iter().zip(w).map(|(a, b)| a * b).sum()
}

/// Central-difference gradient of Σ w ⊙ cpu(x) with respect to input `i`.
fn fd_grad(cpu: Cpu, x: &[Vec<f64>], i: usize, w: &[f64]) -> Vec<f64> {
    let mut xs = x.to_vec();
    (0..x[i].len())
        .map(|j| {
            let orig = xs[i][j];
            xs[i][j] = orig + H;
            let lp = weighted(cpu, &xs, w);
            xs[i][j] = orig - H;
            let lm = weighted(cpu, &xs, w);
            xs[i][j] = orig;
            (lp - lm) / (2.0 * H)
        })
        .collect()
}

fn assert_grad(got: &[f32], fd: &[f64], what: &str) {
    assert_eq!(got.len(), fd.len(), "{what}: gradient length");
    let scale = fd.iter().fold(0f64, |m, v| m.max(v.abs()));
    for (j, (&g, &f)) in got.iter().zip(fd).enumerate() {
        let tol = 1e-4 + 1e-3 * scale + 1e-2 * f.abs();
        assert!(
            ((g as f64) - f).abs() <= tol && g.is_finite(),
            "{what}: d/dx[{j}]: gpu {g}, finite difference {f} (tol {tol:.2e})"
        );
    }
}

/// The full check: forward against `cpu`, every input's gradient against finite differences.
fn check(name: &str, inputs: &[(Vec<f32>, Vec<usize>)], build: Build, cpu: Cpu) {
    let g = Graph::new(&gpu());
    let vars: Vec<Var> = inputs
        .iter()
        .map(|(d, s)| g.leaf(&upload(d, s)).unwrap())
        .collect();
    let y = build(&g, &vars).unwrap_or_else(|e| panic!("{name}: forward: {e}"));
    let n = y.value().numel();
    let w32 = rand_vec(n, 0xC0FFEE + n as u64);
    let grads = g
        .backward_with(&y, &upload(&w32, y.shape()))
        .unwrap_or_else(|e| panic!("{name}: backward: {e}"));
    let x64: Vec<Vec<f64>> = inputs.iter().map(|(d, _)| to64(d)).collect();
    let want = cpu(&x64);
    let got = y.value().to_vec().unwrap();
    assert_eq!(got.len(), want.len(), "{name}: output length");
    let scale = want.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
    for (j, (&a, &b)) in got.iter().zip(&want).enumerate() {
        assert!(
            ((a as f64) - b).abs() <= 2e-5 * scale + 1e-4 * b.abs(),
            "{name}: forward[{j}]: gpu {a}, cpu {b}"
        );
    }
    let w = to64(&w32);
    for (i, v) in vars.iter().enumerate() {
        let fd = fd_grad(cpu, &x64, i, &w);
        let got = match grads.get(v) {
            Some(t) => t.to_vec().unwrap(),
            None => vec![0.0; fd.len()],
        };
        assert_grad(&got, &fd, &format!("{name}: input {i}"));
    }
}

// ---------------------------------------------------------------------------------------------
// CPU references (f64)

fn rc(shape: &[usize]) -> (usize, usize) {
    let c = shape.last().copied().unwrap_or(1);
    let r = if shape.is_empty() {
        1
    } else {
        shape[..shape.len() - 1].iter().product()
    };
    (r, c)
}

/// Broadcasting binary op on the [rows, cols] views, as the elementwise kernels broadcast.
fn bcast(
    a: &[f64],
    ash: &[usize],
    b: &[f64],
    bsh: &[usize],
    f: impl Fn(f64, f64) -> f64,
) -> Vec<f64> {
    let (ar, ac) = rc(ash);
    let (br, bc) = rc(bsh);
    let (r, c) = (ar.max(br), ac.max(bc));
    (0..r * c)
        .map(|i| {
            let (ri, ci) = (i / c, i % c);
            let av = a[if ar == 1 { 0 } else { ri } * ac + if ac == 1 { 0 } else { ci }];
            let bv = b[if br == 1 { 0 } else { ri } * bc + if bc == 1 { 0 } else { ci }];
            f(av, bv)
        })
        .collect()
}

/// Batched matmul with transpose flags; a rank-2 operand is shared across the batch.
fn mm(a: &[f64], ash: &[usize], b: &[f64], bsh: &[usize], ta: bool, tb: bool) -> Vec<f64> {
    let (ar, ac) = (ash[ash.len() - 2], ash[ash.len() - 1]);
    let (br, bc) = (bsh[bsh.len() - 2], bsh[bsh.len() - 1]);
    let (m, k) = if ta { (ac, ar) } else { (ar, ac) };
    let n = if tb { br } else { bc };
    let ab: usize = ash[..ash.len() - 2].iter().product();
    let bb: usize = bsh[..bsh.len() - 2].iter().product();
    let batch = ab.max(bb);
    let mut out = vec![0.0; batch * m * n];
    for q in 0..batch {
        let ao = if ash.len() > 2 { q * m * k } else { 0 };
        let bo = if bsh.len() > 2 { q * k * n } else { 0 };
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                for p in 0..k {
                    let av = a[ao + if ta { p * m + i } else { i * k + p }];
                    let bv = b[bo + if tb { j * k + p } else { p * n + j }];
                    s += av * bv;
                }
                out[q * m * n + i * n + j] = s;
            }
        }
    }
    out
}

fn rows_map(x: &[f64], cols: usize, f: impl Fn(&[f64]) -> Vec<f64>) -> Vec<f64> {
    x.chunks(cols).flat_map(f).collect()
}

fn softmax64(row: &[f64]) -> Vec<f64> {
    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
    row.iter().map(|v| (v - m).exp() / s).collect()
}

fn log_softmax64(row: &[f64]) -> Vec<f64> {
    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
    row.iter().map(|v| v - m - s.ln()).collect()
}

fn l2n64(row: &[f64], eps: f64) -> Vec<f64> {
    let n = row.iter().map(|v| v * v).sum::<f64>().sqrt().max(eps);
    row.iter().map(|v| v / n).collect()
}

fn gelu64(x: f64) -> f64 {
    0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

fn gelu_tanh64(x: f64) -> f64 {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
}

fn sigmoid64(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn act64(act: Activation, x: f64) -> f64 {
    match act {
        Activation::None => x,
        Activation::Relu => x.max(0.0),
        Activation::Gelu => gelu64(x),
        Activation::Sigmoid => sigmoid64(x),
        Activation::Tanh => x.tanh(),
    }
}

// ---------------------------------------------------------------------------------------------
// products

#[test]
fn matmul_every_transpose_form() {
    for (s, &(m, k, n)) in [(1, 1, 1), (3, 5, 4), (7, 13, 5), (2, 1, 9), (37, 29, 23)]
        .iter()
        .enumerate()
    {
        for ta in [false, true] {
            for tb in [false, true] {
                let ash = if ta { vec![k, m] } else { vec![m, k] };
                let bsh = if tb { vec![n, k] } else { vec![k, n] };
                let seed = 10 * s as u64 + 2 * ta as u64 + tb as u64;
                let (a2, b2) = (ash.clone(), bsh.clone());
                check(
                    &format!("matmul {m}x{k}x{n} ta={ta} tb={tb}"),
                    &[input(m * k, &ash, seed), input(k * n, &bsh, seed + 100)],
                    &|g, v| g.matmul(&v[0], &v[1], ta, tb),
                    &|x| mm(&x[0], &a2, &x[1], &b2, ta, tb),
                );
            }
        }
    }
}

#[test]
fn matmul_batched_shared_and_both() {
    let (bt, m, k, n) = (3, 2, 5, 4);
    for ta in [false, true] {
        for tb in [false, true] {
            let a2 = if ta { vec![k, m] } else { vec![m, k] };
            let b2 = if tb { vec![n, k] } else { vec![k, n] };
            let a3: Vec<usize> = [vec![bt], a2.clone()].concat();
            let b3: Vec<usize> = [vec![bt], b2.clone()].concat();
            for (what, ash, bsh) in [
                ("A batched, B shared", a3.clone(), b2.clone()),
                ("A shared, B batched", a2.clone(), b3.clone()),
                ("both batched", a3.clone(), b3.clone()),
            ] {
                let na: usize = ash.iter().product();
                let nb: usize = bsh.iter().product();
                let (sa, sb) = (ash.clone(), bsh.clone());
                check(
                    &format!("batched matmul, {what}, ta={ta} tb={tb}"),
                    &[
                        input(na, &ash, 7 + na as u64),
                        input(nb, &bsh, 8 + nb as u64),
                    ],
                    &|g, v| g.matmul(&v[0], &v[1], ta, tb),
                    &|x| mm(&x[0], &sa, &x[1], &sb, ta, tb),
                );
            }
        }
    }
}

#[test]
fn linear_fused_bias_and_activations() {
    let acts = [
        Activation::None,
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Gelu,
    ];
    for (s, &(rows, inf, outf)) in [(1, 1, 1), (3, 5, 4), (7, 13, 6)].iter().enumerate() {
        for (ai, &act) in acts.iter().enumerate() {
            for bias in [true, false] {
                for batched in [false, true] {
                    let xs = if batched {
                        vec![2, rows, inf]
                    } else {
                        vec![rows, inf]
                    };
                    let nx: usize = xs.iter().product();
                    let seed = 1000 + 37 * s as u64 + 5 * ai as u64;
                    // Relu: keep pre-activations away from the kink.
                    let mut inputs = vec![
                        (away_from_zero(nx, seed, 0.1), xs.clone()),
                        input(outf * inf, &[outf, inf], seed + 1),
                    ];
                    if bias {
                        inputs.push((away_from_zero(outf, seed + 2, 0.2), vec![outf]));
                    }
                    let xs2 = xs.clone();
                    let cpu = move |x: &[Vec<f64>]| -> Vec<f64> {
                        let z = mm(&x[0], &xs2, &x[1], &[outf, inf], false, true);
                        z.iter()
                            .enumerate()
                            .map(|(i, &v)| {
                                let b = if bias { x[2][i % outf] } else { 0.0 };
                                act64(act, v + b)
                            })
                            .collect()
                    };
                    let name = format!("linear {xs:?}x{outf} {act:?} bias={bias}");
                    // A relu kink inside the FD step would break the check: skip such draws.
                    if act == Activation::Relu {
                        let z = cpu(&inputs.iter().map(|(d, _)| to64(d)).collect::<Vec<_>>());
                        let x64: Vec<Vec<f64>> = inputs.iter().map(|(d, _)| to64(d)).collect();
                        let pre = mm(&x64[0], &xs, &x64[1], &[outf, inf], false, true);
                        let near = pre.iter().enumerate().any(|(i, &v)| {
                            let b = if bias { x64[2][i % outf] } else { 0.0 };
                            (v + b).abs() < 1e-3
                        });
                        if near || z.is_empty() {
                            continue;
                        }
                    }
                    check(
                        &name,
                        &inputs,
                        &|g, v| g.linear(&v[0], &v[1], v.get(2), act),
                        &cpu,
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// elementwise

#[test]
fn binary_ops_with_broadcasting() {
    for &(r, c) in SHAPES {
        let full = vec![r, c];
        let cases: Vec<(&str, Vec<usize>, Vec<usize>)> = vec![
            ("full", full.clone(), full.clone()),
            ("row [1,c]", full.clone(), vec![1, c]),
            ("row [c]", full.clone(), vec![c]),
            ("column", full.clone(), vec![r, 1]),
            ("scalar", full.clone(), vec![1]),
            ("scalar first", vec![1], full.clone()),
            ("row x column", vec![1, c], vec![r, 1]),
        ];
        for (what, ash, bsh) in cases {
            let na: usize = ash.iter().product();
            let nb: usize = bsh.iter().product();
            let a = input(na, &ash, 3 + na as u64);
            // Denominators kept away from zero.
            let b = (away_from_zero(nb, 4 + nb as u64, 0.5), bsh.clone());
            let ops: [BinCase; 4] = [
                ("add", |g, a, b| g.add(a, b), |x, y| x + y),
                ("sub", |g, a, b| g.sub(a, b), |x, y| x - y),
                ("mul", |g, a, b| g.mul(a, b), |x, y| x * y),
                ("div", |g, a, b| g.div(a, b), |x, y| x / y),
            ];
            for (name, op, f) in ops {
                let (sa, sb) = (ash.clone(), bsh.clone());
                check(
                    &format!("{name} {r}x{c} {what}"),
                    &[a.clone(), b.clone()],
                    &|g, v| op(g, &v[0], &v[1]),
                    &|x| bcast(&x[0], &sa, &x[1], &sb, f),
                );
            }
        }
    }
}

#[test]
fn binary_ops_on_one_input_twice_accumulate() {
    // x ⊙ x and x / x: the two gradient contributions of one input are summed.
    let x = (away_from_zero(15, 5, 0.3), vec![3, 5]);
    check(
        "mul(x, x)",
        std::slice::from_ref(&x),
        &|g, v| g.mul(&v[0], &v[0]),
        &|x| x[0].iter().map(|v| v * v).collect(),
    );
    check(
        "add(mul(x, x), x)",
        &[x],
        &|g, v| g.add(&g.mul(&v[0], &v[0])?, &v[0]),
        &|x| x[0].iter().map(|v| v * v + v).collect(),
    );
}

#[test]
fn unary_activations() {
    for (s, &(r, c)) in SHAPES.iter().enumerate() {
        let n = r * c;
        let seed = 50 + s as u64;
        let cases: Vec<UnCase> = vec![
            (
                "relu",
                away_from_zero(n, seed, 0.05),
                |g, x| g.relu(x),
                |x| x.max(0.0),
            ),
            ("gelu", input(n, &[n], seed).0, |g, x| g.gelu(x), gelu64),
            (
                "gelu_tanh",
                input(n, &[n], seed).0,
                |g, x| g.gelu_tanh(x),
                gelu_tanh64,
            ),
            (
                "sigmoid",
                input(n, &[n], seed).0,
                |g, x| g.sigmoid(x),
                sigmoid64,
            ),
            ("tanh", input(n, &[n], seed).0, |g, x| g.tanh(x), f64::tanh),
            ("exp", input(n, &[n], seed).0, |g, x| g.exp(x), f64::exp),
            ("log", positive(n, seed, 0.2), |g, x| g.log(x), f64::ln),
            (
                "square",
                input(n, &[n], seed).0,
                |g, x| g.square(x),
                |x| x * x,
            ),
            ("sqrt", positive(n, seed, 0.2), |g, x| g.sqrt(x), f64::sqrt),
            ("neg", input(n, &[n], seed).0, |g, x| g.neg(x), |x| -x),
            (
                "scale",
                input(n, &[n], seed).0,
                |g, x| g.scale(x, -2.5),
                |x| -2.5 * x,
            ),
            (
                "affine",
                input(n, &[n], seed).0,
                |g, x| g.affine(x, 0.75, 3.0),
                |x| 0.75 * x + 3.0,
            ),
            (
                "add_scalar",
                input(n, &[n], seed).0,
                |g, x| g.add_scalar(x, 1.5),
                |x| x + 1.5,
            ),
        ];
        for (name, data, op, f) in cases {
            // Larger magnitudes for the saturating ones.
            let data: Vec<f32> = if matches!(name, "gelu" | "gelu_tanh" | "sigmoid" | "tanh") {
                data.iter().map(|v| 3.0 * v).collect()
            } else {
                data
            };
            check(
                &format!("{name} {r}x{c}"),
                &[(data, vec![r, c])],
                &|g, v| op(g, &v[0]),
                &|x| x[0].iter().map(|&v| f(v)).collect(),
            );
        }
    }
}

#[test]
fn unary_without_a_rule_is_an_error() {
    let g = Graph::new(&gpu());
    let x = g.leaf(&upload(&[1.0, -2.0], &[2])).unwrap();
    assert!(g.unary(&x, Unary::Abs).is_err());
    assert!(g.unary(&x, Unary::Clamp { min: 0.0, max: 1.0 }).is_err());
}

// ---------------------------------------------------------------------------------------------
// reductions and softmax

#[test]
fn reductions() {
    for (s, &(r, c)) in SHAPES.iter().enumerate() {
        let x = input(r * c, &[r, c], 70 + s as u64);
        check(
            &format!("sum {r}x{c}"),
            std::slice::from_ref(&x),
            &|g, v| g.sum(&v[0]),
            &|x| vec![x[0].iter().sum()],
        );
        check(
            &format!("mean {r}x{c}"),
            std::slice::from_ref(&x),
            &|g, v| g.mean(&v[0]),
            &|x| vec![x[0].iter().sum::<f64>() / x[0].len() as f64],
        );
        check(
            &format!("sum_rows {r}x{c}"),
            std::slice::from_ref(&x),
            &|g, v| g.sum_rows(&v[0]),
            &|x| x[0].chunks(c).map(|row| row.iter().sum()).collect(),
        );
        check(
            &format!("mean_rows {r}x{c}"),
            std::slice::from_ref(&x),
            &|g, v| g.mean_rows(&v[0]),
            &|x| {
                x[0].chunks(c)
                    .map(|row| row.iter().sum::<f64>() / c as f64)
                    .collect()
            },
        );
        let sum_cols = move |x: &[Vec<f64>]| -> Vec<f64> {
            (0..c)
                .map(|j| (0..r).map(|i| x[0][i * c + j]).sum())
                .collect()
        };
        check(
            &format!("sum_cols {r}x{c}"),
            std::slice::from_ref(&x),
            &|g, v| g.sum_cols(&v[0]),
            &sum_cols,
        );
        check(
            &format!("mean_cols {r}x{c}"),
            std::slice::from_ref(&x),
            &|g, v| g.mean_cols(&v[0]),
            &|x| sum_cols(x).iter().map(|v| v / r as f64).collect(),
        );
    }
    // A 3-D input: rows are all leading dimensions.
    check(
        "sum_rows [2,3,5]",
        &[input(30, &[2, 3, 5], 79)],
        &|g, v| g.sum_rows(&v[0]),
        &|x| x[0].chunks(5).map(|row| row.iter().sum()).collect(),
    );
}

#[test]
fn softmax_and_log_softmax() {
    for (s, &(r, c)) in SHAPES.iter().enumerate() {
        let x: Vec<f32> = rand_vec(r * c, 90 + s as u64)
            .iter()
            .map(|v| 3.0 * v)
            .collect();
        check(
            &format!("softmax_rows {r}x{c}"),
            &[(x.clone(), vec![r, c])],
            &|g, v| g.softmax_rows(&v[0]),
            &|x| rows_map(&x[0], c, softmax64),
        );
        check(
            &format!("log_softmax_rows {r}x{c}"),
            &[(x, vec![r, c])],
            &|g, v| g.log_softmax_rows(&v[0]),
            &|x| rows_map(&x[0], c, log_softmax64),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// movement

#[test]
fn gather_rows_scatters_back() {
    for &(n, d) in SHAPES {
        let m = 11;
        // Repeats, and one out-of-range index (zero row, no gradient).
        let mut idx: Vec<u32> = (0..m).map(|i| ((i * 7 + 3) % n) as u32).collect();
        idx[4] = n as u32 + 2;
        let it = Tensor::from_u32(&gpu(), &idx, &[m]).unwrap();
        let idx2 = idx.clone();
        let cpu = move |x: &[Vec<f64>]| -> Vec<f64> {
            idx2.iter()
                .flat_map(|&i| {
                    let i = i as usize;
                    if i < n {
                        x[0][i * d..(i + 1) * d].to_vec()
                    } else {
                        vec![0.0; d]
                    }
                })
                .collect()
        };
        let table = input(n * d, &[n, d], 123 + n as u64);
        check(
            &format!("gather_rows [{n},{d}]"),
            std::slice::from_ref(&table),
            &|g, v| g.gather_rows(&v[0], &it),
            &cpu,
        );
        let in_range: Vec<u32> = idx.iter().map(|&i| i % n as u32).collect();
        let it2 = Tensor::from_u32(&gpu(), &in_range, &[m]).unwrap();
        let seg = Segments::from_slice(&gpu(), &in_range, n).unwrap();
        let ir = in_range.clone();
        check(
            &format!("gather_rows_with [{n},{d}]"),
            &[table],
            &|g, v| g.gather_rows_with(&v[0], &it2, &seg),
            &|x| {
                ir.iter()
                    .flat_map(|&i| x[0][i as usize * d..(i as usize + 1) * d].to_vec())
                    .collect()
            },
        );
    }
}

#[test]
fn concat_slice_reshape_transpose() {
    for (s, &(r, c)) in SHAPES.iter().enumerate() {
        let seed = 200 + 10 * s as u64;
        let parts = [
            input(r * c, &[r, c], seed),
            input(r * 2, &[r, 2], seed + 1),
            input(r, &[r, 1], seed + 2),
        ];
        check(
            &format!("concat_cols {r}x({c}+2+1)"),
            &parts,
            &|g, v| g.concat_cols(&[&v[0], &v[1], &v[2]]),
            &|x| {
                (0..r)
                    .flat_map(|i| {
                        let mut row = x[0][i * c..(i + 1) * c].to_vec();
                        row.extend_from_slice(&x[1][i * 2..(i + 1) * 2]);
                        row.push(x[2][i]);
                        row
                    })
                    .collect()
            },
        );
        let (a, b) = (c / 3, c - c / 4);
        check(
            &format!("slice_cols {r}x{c} [{a}..{b}]"),
            &[input(r * c, &[r, c], seed + 3)],
            &|g, v| g.slice_cols(&v[0], a, b),
            &|x| x[0].chunks(c).flat_map(|row| row[a..b].to_vec()).collect(),
        );
        // Reshape then a column-broadcast multiply, so the gradient layout matters.
        let w: Vec<f32> = rand_vec(r * c, seed + 4);
        let wt = upload(&w, &[c, r]);
        let w64 = to64(&w);
        check(
            &format!("reshape {r}x{c} -> {c}x{r}"),
            &[input(r * c, &[r, c], seed + 5)],
            &|g, v| g.mul(&g.reshape(&v[0], &[c, r])?, &g.input(&wt)),
            &|x| x[0].iter().zip(&w64).map(|(a, b)| a * b).collect(),
        );
        check(
            &format!("transpose {r}x{c}"),
            &[input(r * c, &[r, c], seed + 6)],
            &|g, v| g.transpose(&v[0]),
            &|x| {
                (0..c)
                    .flat_map(|j| (0..r).map(move |i| (i, j)))
                    .map(|(i, j)| x[0][i * c + j])
                    .collect()
            },
        );
        check(
            &format!("transpose [2,{r},{c}]"),
            &[input(2 * r * c, &[2, r, c], seed + 7)],
            &|g, v| g.transpose(&v[0]),
            &|x| {
                (0..2)
                    .flat_map(|b| {
                        (0..c).flat_map(move |j| (0..r).map(move |i| b * r * c + i * c + j))
                    })
                    .map(|k| x[0][k])
                    .collect()
            },
        );
    }
}

#[test]
fn detach_stops_the_gradient() {
    // y = x ⊙ sg(x): dy/dx = sg(x) (not 2x).
    let x = rand_vec(15, 300);
    let g = Graph::new(&gpu());
    let xv = g.leaf(&upload(&x, &[3, 5])).unwrap();
    let y = g.mul(&xv, &g.detach(&xv).unwrap()).unwrap();
    let w = rand_vec(15, 301);
    let grads = g.backward_with(&y, &upload(&w, &[3, 5])).unwrap();
    let got = grads.get(&xv).unwrap().to_vec().unwrap();
    let want: Vec<f32> = x.iter().zip(&w).map(|(a, b)| a * b).collect();
    assert_close(&got, &want, 1e-6, 1e-6, "detach");
    // A detached value alone carries no gradient at all.
    let d = g.detach(&xv).unwrap();
    assert!(!d.requires_grad());
    let grads = g.backward_with(&d, &upload(&w, &[3, 5])).unwrap();
    assert!(grads.get(&xv).is_none());
}

#[test]
fn straight_through_forward_hard_backward_soft() {
    for &(r, c) in SHAPES {
        let n = r * c;
        let soft = rand_vec(n, 310 + n as u64);
        let hard = rand_vec(n, 311 + n as u64);
        let g = Graph::new(&gpu());
        let s = g.leaf(&upload(&soft, &[r, c])).unwrap();
        let h = g.leaf(&upload(&hard, &[r, c])).unwrap();
        // Through a square so the upstream gradient depends on the (hard) forward value.
        let y = g.square(&g.straight_through(&s, &h).unwrap()).unwrap();
        let w = rand_vec(n, 312);
        let grads = g.backward_with(&y, &upload(&w, &[r, c])).unwrap();
        assert_eq!(
            y.value().to_vec().unwrap(),
            hard.iter().map(|v| v * v).collect::<Vec<_>>(),
            "forward is hard"
        );
        let want: Vec<f32> = hard.iter().zip(&w).map(|(h, w)| 2.0 * h * w).collect();
        assert_close(
            &grads.get(&s).unwrap().to_vec().unwrap(),
            &want,
            1e-6,
            1e-6,
            "soft gets the gradient",
        );
        assert!(grads.get(&h).is_none(), "hard gets no gradient");
    }
    // Soft indexing as MMQ does it: ind = softmax(p) + sg(onehot − softmax(p)).
    let g = Graph::new(&gpu());
    let p = g
        .leaf(&upload(&[0.3, -1.0, 2.0, 0.5, 0.1, -0.2], &[2, 3]))
        .unwrap();
    let soft = g.softmax_rows(&p).unwrap();
    let hard = g.input(&upload(&[0.0, 0.0, 1.0, 1.0, 0.0, 0.0], &[2, 3]));
    let ind = g.straight_through(&soft, &hard).unwrap();
    assert_eq!(
        ind.value().to_vec().unwrap(),
        vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    );
    let grads = g
        .backward_with(&ind, &upload(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]))
        .unwrap();
    let got = grads.get(&p).unwrap().to_vec().unwrap();
    let sm: Vec<f64> = [softmax64(&[0.3, -1.0, 2.0]), softmax64(&[0.5, 0.1, -0.2])].concat();
    let gw = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let want: Vec<f32> = (0..6)
        .map(|i| {
            let r = i / 3;
            let dot: f64 = (0..3).map(|j| gw[r * 3 + j] * sm[r * 3 + j]).sum();
            (sm[i] * (gw[i] - dot)) as f32
        })
        .collect();
    assert_close(&got, &want, 1e-6, 1e-5, "soft indexing gradient");
}

// ---------------------------------------------------------------------------------------------
// normalisation

fn layernorm64(row: &[f64], gamma: Option<&[f64]>, beta: Option<&[f64]>) -> Vec<f64> {
    let n = row.len() as f64;
    let mean = row.iter().sum::<f64>() / n;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let rstd = 1.0 / (var + 1e-5).sqrt();
    row.iter()
        .enumerate()
        .map(|(j, v)| {
            let mut y = (v - mean) * rstd;
            if let Some(g) = gamma {
                y *= g[j];
            }
            if let Some(b) = beta {
                y += b[j];
            }
            y
        })
        .collect()
}

#[test]
fn layernorm_with_and_without_affine() {
    for (s, &(r, c)) in SHAPES.iter().enumerate() {
        let seed = 400 + 10 * s as u64;
        let x = input(r * c, &[r, c], seed);
        let gm = (away_from_zero(c, seed + 1, 0.5), vec![c]);
        let bt = input(c, &[c], seed + 2);
        check(
            &format!("layernorm {r}x{c} gamma+beta"),
            &[x.clone(), gm.clone(), bt.clone()],
            &|g, v| g.layernorm(&v[0], Some(&v[1]), Some(&v[2]), 1e-5),
            &|x| rows_map(&x[0], c, |row| layernorm64(row, Some(&x[1]), Some(&x[2]))),
        );
        check(
            &format!("layernorm {r}x{c} plain"),
            std::slice::from_ref(&x),
            &|g, v| g.layernorm(&v[0], None, None, 1e-5),
            &|x| rows_map(&x[0], c, |row| layernorm64(row, None, None)),
        );
        check(
            &format!("layernorm {r}x{c} beta only"),
            &[x.clone(), bt.clone()],
            &|g, v| g.layernorm(&v[0], None, Some(&v[1]), 1e-5),
            &|x| rows_map(&x[0], c, |row| layernorm64(row, None, Some(&x[1]))),
        );
        check(
            &format!("layernorm {r}x{c} gamma only"),
            &[x, gm],
            &|g, v| g.layernorm(&v[0], Some(&v[1]), None, 1e-5),
            &|x| rows_map(&x[0], c, |row| layernorm64(row, Some(&x[1]), None)),
        );
    }
}

#[test]
fn l2_normalize_and_cosine_logits() {
    for (s, &(r, c)) in SHAPES.iter().enumerate() {
        let seed = 500 + 10 * s as u64;
        check(
            &format!("l2_normalize_rows {r}x{c}"),
            &[(away_from_zero(r * c, seed, 0.1), vec![r, c])],
            &|g, v| g.l2_normalize_rows(&v[0], 1e-12),
            &|x| rows_map(&x[0], c, |row| l2n64(row, 1e-12)),
        );
        // Below eps the norm is the constant eps: y = x / eps.
        check(
            &format!("l2_normalize_rows {r}x{c} below eps"),
            &[(
                rand_vec(r * c, seed + 1).iter().map(|v| v * 1e-3).collect(),
                vec![r, c],
            )],
            &|g, v| g.l2_normalize_rows(&v[0], 10.0),
            &|x| rows_map(&x[0], c, |row| l2n64(row, 10.0)),
        );
        let k = 4;
        for inv_tau in [1.0f32, 5.0] {
            check(
                &format!("cosine_logits {r}x{c} vs {k}x{c} 1/tau={inv_tau}"),
                &[
                    (away_from_zero(r * c, seed + 2, 0.1), vec![r, c]),
                    (away_from_zero(k * c, seed + 3, 0.1), vec![k, c]),
                ],
                &|g, v| g.cosine_logits(&v[0], &v[1], inv_tau),
                &|x| {
                    let xn = rows_map(&x[0], c, |row| l2n64(row, 1e-12));
                    let cn = rows_map(&x[1], c, |row| l2n64(row, 1e-12));
                    mm(&xn, &[r, c], &cn, &[k, c], false, true)
                        .iter()
                        .map(|v| v * inv_tau as f64)
                        .collect()
                },
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// losses

#[test]
fn mse_both_sides() {
    for (s, &(r, c)) in SHAPES.iter().enumerate() {
        let seed = 600 + 10 * s as u64;
        check(
            &format!("mse {r}x{c}"),
            &[input(r * c, &[r, c], seed), input(r * c, &[r, c], seed + 1)],
            &|g, v| g.mse(&v[0], &v[1]),
            &|x| {
                let n = x[0].len() as f64;
                vec![
                    x[0].iter()
                        .zip(&x[1])
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum::<f64>()
                        / n,
                ]
            },
        );
    }
}

#[test]
fn bce_with_logits_is_stable_and_correct() {
    let bce = |x: f64, t: f64| x.max(0.0) - x * t + (1.0 + (-x.abs()).exp()).ln();
    for (s, &(r, c)) in SHAPES.iter().enumerate() {
        let seed = 700 + 10 * s as u64;
        let logits: Vec<f32> = rand_vec(r * c, seed).iter().map(|v| 6.0 * v).collect();
        let targets: Vec<f32> = rand_vec(r * c, seed + 1)
            .iter()
            .map(|v| 0.5 + 0.5 * v)
            .collect();
        check(
            &format!("bce_with_logits {r}x{c}"),
            &[(logits, vec![r, c]), (targets, vec![r, c])],
            &|g, v| g.bce_with_logits(&v[0], &v[1]),
            &|x| {
                let n = x[0].len() as f64;
                vec![
                    x[0].iter()
                        .zip(&x[1])
                        .map(|(&a, &b)| bce(a, b))
                        .sum::<f64>()
                        / n,
                ]
            },
        );
    }
    // Huge logits stay finite, with the exact limits.
    let g = Graph::new(&gpu());
    let x = g
        .leaf(&upload(&[100.0, -100.0, 100.0, -100.0], &[4]))
        .unwrap();
    let t = g.input(&upload(&[1.0, 0.0, 0.0, 1.0], &[4]));
    let l = g.bce_with_logits(&x, &t).unwrap();
    let v = l.value().to_vec().unwrap()[0];
    assert!((v - 50.0).abs() < 1e-3, "bce of ±100 logits: {v}");
    let grads = g.backward(&l).unwrap();
    assert_close(
        &grads.get(&x).unwrap().to_vec().unwrap(),
        &[0.0, 0.0, 0.25, -0.25],
        1e-6,
        1e-6,
        "bce gradient at ±100",
    );
}

#[test]
fn softmax_cross_entropy_with_integer_targets() {
    for (s, &(r, c)) in SHAPES.iter().enumerate() {
        let seed = 800 + 10 * s as u64;
        let mut t: Vec<u32> = (0..r).map(|i| ((i * 5 + 2) % c) as u32).collect();
        if r > 1 {
            t[1] = c as u32 + 7; // out of range: ignored, still counted in the mean
        }
        let tt = Tensor::from_u32(&gpu(), &t, &[r]).unwrap();
        let logits: Vec<f32> = rand_vec(r * c, seed).iter().map(|v| 3.0 * v).collect();
        let t2 = t.clone();
        check(
            &format!("softmax_cross_entropy {r}x{c}"),
            &[(logits, vec![r, c])],
            &|g, v| g.softmax_cross_entropy(&v[0], &tt),
            &|x| {
                let lp = rows_map(&x[0], c, log_softmax64);
                let s: f64 = t2
                    .iter()
                    .enumerate()
                    .map(|(i, &k)| {
                        if (k as usize) < c {
                            -lp[i * c + k as usize]
                        } else {
                            0.0
                        }
                    })
                    .sum();
                vec![s / r as f64]
            },
        );
    }
}

// ---------------------------------------------------------------------------------------------
// dropout

#[test]
fn dropout_mask_matches_cpu_and_gradient_uses_it() {
    for &(r, c) in &[(1usize, 1usize), (3, 5), (7, 13), (64, 100)] {
        let n = r * c;
        let key = ak::dropout_key(42, n as u64);
        let mask = ak::dropout_mask_cpu(n, 0.3, key);
        let m64 = to64(&mask);
        check(
            &format!("dropout {r}x{c}"),
            &[input(n, &[r, c], 900 + n as u64)],
            &|g, v| g.dropout(&v[0], 0.3, key),
            &|x| x[0].iter().zip(&m64).map(|(a, b)| a * b).collect(),
        );
    }
    // The drop rate is close to p, and the mask is exactly the CPU one.
    let n = 100_000;
    let key = ak::dropout_key(7, 0);
    let x = upload(&vec![1.0; n], &[n]);
    let (y, mask) = ak::dropout(&x, 0.25, key).unwrap();
    let got = mask.to_vec().unwrap();
    assert_eq!(got, ak::dropout_mask_cpu(n, 0.25, key));
    assert_eq!(y.to_vec().unwrap(), got);
    let dropped = got.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
    assert!((dropped - 0.25).abs() < 0.01, "drop rate {dropped}");
    assert!(got.iter().all(|&v| v == 0.0 || v == 1.0 / 0.75));
    // Another stream gives another mask.
    let other = ak::dropout_mask_cpu(n, 0.25, ak::dropout_key(7, 1));
    assert_ne!(other, got);
}

// ---------------------------------------------------------------------------------------------
// a composite, the graph's guarantees, and errors

#[test]
fn composite_mlp_with_every_kind_of_node() {
    // x -> linear+relu -> layernorm -> linear -> log_softmax -> ... mixed into one scalar.
    let (b, i, h, o) = (5, 7, 6, 3);
    let inputs = [
        input(b * i, &[b, i], 1001),
        input(h * i, &[h, i], 1002),
        (away_from_zero(h, 1003, 0.3), vec![h]),
        input(o * h, &[o, h], 1004),
        input(b * o, &[b, o], 1005),
    ];
    let build = |g: &Graph, v: &[Var]| -> Result<Var> {
        let z = g.linear(&v[0], &v[1], Some(&v[2]), Activation::Tanh)?;
        let z = g.layernorm(&z, None, None, 1e-5)?;
        let y = g.matmul(&z, &v[3], false, true)?;
        let lp = g.log_softmax_rows(&y)?;
        let a = g.mse(&lp, &v[4])?;
        let s = g.mean(&g.square(&g.sub(&y, &g.mean_cols(&y)?)?)?)?;
        g.add(&a, &g.scale(&s, 0.5)?)
    };
    let cpu = |x: &[Vec<f64>]| -> Vec<f64> {
        let z = mm(&x[0], &[b, i], &x[1], &[h, i], false, true);
        let z: Vec<f64> = z
            .iter()
            .enumerate()
            .map(|(k, v)| (v + x[2][k % h]).tanh())
            .collect();
        let z = rows_map(&z, h, |row| layernorm64(row, None, None));
        let y = mm(&z, &[b, h], &x[3], &[o, h], false, true);
        let lp = rows_map(&y, o, log_softmax64);
        let a = lp
            .iter()
            .zip(&x[4])
            .map(|(p, t)| (p - t) * (p - t))
            .sum::<f64>()
            / (b * o) as f64;
        let mean: Vec<f64> = (0..o)
            .map(|j| (0..b).map(|r| y[r * o + j]).sum::<f64>() / b as f64)
            .collect();
        let s = y
            .iter()
            .enumerate()
            .map(|(k, v)| (v - mean[k % o]).powi(2))
            .sum::<f64>()
            / (b * o) as f64;
        vec![a + 0.5 * s]
    };
    check("composite", &inputs, &build, &cpu);
}

#[test]
fn forward_and_backward_never_read_back() {
    // A private device, so other tests' readbacks do not count.
    let gpu = semid::Gpu::with_default_limits().unwrap();
    let x = Tensor::from_slice(&gpu, &rand_vec(35, 1), &[7, 5]).unwrap();
    let w = Tensor::from_slice(&gpu, &rand_vec(15, 2), &[3, 5]).unwrap();
    let idx = Tensor::from_u32(&gpu, &[2, 0, 2, 1], &[4]).unwrap();
    gpu.sync().unwrap();
    let before = gpu.submissions();
    let g = Graph::new(&gpu);
    let xv = g.leaf(&x).unwrap();
    let wv = g.leaf(&w).unwrap();
    let y = g.matmul(&xv, &wv, false, true).unwrap();
    let e = g.gather_rows(&wv, &idx).unwrap();
    let l = g
        .add(
            &g.softmax_cross_entropy(
                &y,
                &Tensor::from_u32(&gpu, &[0, 1, 2, 0, 1, 2, 0], &[7]).unwrap(),
            )
            .unwrap(),
            &g.mse(&e, &g.detach(&e).unwrap()).unwrap(),
        )
        .unwrap();
    let grads = g.backward(&l).unwrap();
    assert_eq!(
        gpu.submissions(),
        before,
        "nothing submitted before the readback"
    );
    let _ = grads.get(&wv).unwrap().to_vec().unwrap();
    assert_eq!(
        gpu.submissions(),
        before + 1,
        "one submission for the whole step"
    );
}

#[test]
fn gradients_are_bit_identical_run_after_run() {
    let run = || {
        let g = Graph::new(&gpu());
        let x = g.leaf(&upload(&rand_vec(7 * 13, 5), &[7, 13])).unwrap();
        let w = g.leaf(&upload(&rand_vec(5 * 13, 6), &[5, 13])).unwrap();
        let y = g.tanh(&g.matmul(&x, &w, false, true).unwrap()).unwrap();
        let l = g
            .mean(
                &g.square(&g.layernorm(&y, None, None, 1e-5).unwrap())
                    .unwrap(),
            )
            .unwrap();
        let gr = g.backward(&l).unwrap();
        (
            gr.get(&x).unwrap().to_vec().unwrap(),
            gr.get(&w).unwrap().to_vec().unwrap(),
        )
    };
    let (a, b) = run();
    let (c, d) = run();
    assert_eq!(
        a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        c.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    assert_eq!(
        b.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        d.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}

#[test]
fn graph_errors() {
    let g = Graph::new(&gpu());
    let other = Graph::new(&gpu());
    let x = g.leaf(&upload(&[1.0, 2.0, 3.0], &[1, 3])).unwrap();
    let y = other.leaf(&upload(&[1.0, 2.0, 3.0], &[1, 3])).unwrap();
    assert!(g.add(&x, &y).is_err(), "values of two graphs");
    assert!(g.backward(&x).is_err(), "non-scalar loss");
    assert!(
        g.backward_with(&x, &upload(&[1.0], &[1])).is_err(),
        "seed shape"
    );
    assert!(g.mse(&x, &g.input(&upload(&[1.0, 2.0], &[2]))).is_err());
    assert!(g
        .straight_through(&x, &g.input(&upload(&[1.0], &[1])))
        .is_err());
    assert!(g.matmul(&x, &x, false, false).is_err(), "inner dimensions");
    let idx = Tensor::from_u32(&gpu(), &[0], &[1]).unwrap();
    assert!(g.leaf(&idx).is_err(), "integer leaf");
    // An input (constant) gets no gradient; a loss of constants gives none at all.
    let c = g.input(&upload(&[1.0, 2.0, 3.0], &[1, 3]));
    let l = g.sum(&c).unwrap();
    assert!(!l.requires_grad());
    let grads = g.backward(&l).unwrap();
    assert!(grads.get(&c).is_none());
}

// ---------------------------------------------------------------------------------------------
// the backward kernels alone, at sizes that need more than 65,535 workgroups

#[test]
fn flat_backward_kernels_more_than_65535_workgroups() {
    let n = 65_536 * 256 + 77;
    let x: Vec<f32> = (0..n)
        .map(|i| ((i % 1000) as f32 - 499.5) / 100.0)
        .collect();
    let xt = upload(&x, &[n]);
    let yt = semid::kernels::elementwise::unary(&xt, Unary::Tanh).unwrap();
    let dy = semid::kernels::movement::full(&gpu(), &[n], 2.0).unwrap();
    let dx = ak::unary_backward(&xt, &yt, &dy, Unary::Tanh).unwrap();
    let got = dx.to_vec().unwrap();
    let y = yt.to_vec().unwrap();
    for i in [0, 1, 777, n / 2, n - 2, n - 1] {
        let want = 2.0 * (1.0 - y[i] * y[i]);
        assert!((got[i] - want).abs() < 1e-6, "tanh backward at {i}");
    }
    // Every element was written: compare all against the CPU on the GPU's own y.
    assert!(got
        .iter()
        .zip(&y)
        .all(|(g, y)| (g - 2.0 * (1.0 - y * y)).abs() < 1e-6));
    let s = upload(&[0.5], &[1]);
    let sb = ak::scale_by(&xt, &s, 3.0).unwrap().to_vec().unwrap();
    assert!(sb.iter().zip(&x).all(|(a, b)| *a == 1.5 * b));
    let fs = ak::fill_scalar(&s, -2.0, &[n]).unwrap().to_vec().unwrap();
    assert!(fs.iter().all(|&v| v == -1.0));
    let (_, mask) = ak::dropout(&xt, 0.5, (1, 2)).unwrap();
    assert_eq!(mask.to_vec().unwrap(), ak::dropout_mask_cpu(n, 0.5, (1, 2)));
}

#[test]
fn row_backward_kernels_more_than_65535_workgroups() {
    let (r, c) = (70_001, 3);
    let x: Vec<f32> = rand_vec(r * c, 77);
    let dy: Vec<f32> = rand_vec(r * c, 78);
    let xt = upload(&x, &[r, c]);
    let dyt = upload(&dy, &[r, c]);
    let x64 = to64(&x);
    let dy64 = to64(&dy);
    // Softmax backward.
    let y = semid::kernels::norm::softmax_rows(&xt).unwrap();
    let got = ak::softmax_rows_backward(&y, &dyt, false)
        .unwrap()
        .to_vec()
        .unwrap();
    let y64 = rows_map(&x64, c, softmax64);
    let want: Vec<f32> = (0..r)
        .flat_map(|i| {
            let yr = &y64[i * c..(i + 1) * c];
            let dr = &dy64[i * c..(i + 1) * c];
            let dot: f64 = yr.iter().zip(dr).map(|(a, b)| a * b).sum();
            (0..c)
                .map(move |j| (yr[j] * (dr[j] - dot)) as f32)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_close(&got, &want, 1e-5, 1e-4, "softmax backward, 70001 rows");
    // L2-normalise forward and backward.
    let (yn, nrm) = ak::l2_normalize_rows(&xt, 1e-12).unwrap();
    assert_close(
        &yn.to_vec().unwrap(),
        &rows_map(&x64, c, |row| l2n64(row, 1e-12))
            .iter()
            .map(|&v| v as f32)
            .collect::<Vec<_>>(),
        1e-5,
        1e-4,
        "l2 normalise, 70001 rows",
    );
    let dx = ak::l2_normalize_rows_backward(&yn, &nrm, &dyt, 1e-12)
        .unwrap()
        .to_vec()
        .unwrap();
    let want: Vec<f32> = (0..r)
        .flat_map(|i| {
            let xr = &x64[i * c..(i + 1) * c];
            let dr = &dy64[i * c..(i + 1) * c];
            let n = xr.iter().map(|v| v * v).sum::<f64>().sqrt();
            let yr: Vec<f64> = xr.iter().map(|v| v / n).collect();
            let dot: f64 = yr.iter().zip(dr).map(|(a, b)| a * b).sum();
            (0..c)
                .map(move |j| ((dr[j] - yr[j] * dot) / n) as f32)
                .collect::<Vec<_>>()
        })
        .collect();
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert_close(
        &dx,
        &want,
        1e-5 * scale,
        1e-3,
        "l2 normalise backward, 70001 rows",
    );
    // Layernorm backward: dx sums to ~0 per row, and matches a CPU reference.
    let ln = semid::kernels::norm::layernorm_with_stats(&xt, None, None, 1e-5).unwrap();
    let (dx, dyx) = ak::layernorm_backward(&xt, None, &ln.mean, &ln.rstd, &dyt).unwrap();
    let dx = dx.to_vec().unwrap();
    let dyx = dyx.to_vec().unwrap();
    for i in (0..r).step_by(997).chain([r - 1]) {
        let xr = &x64[i * c..(i + 1) * c];
        let dr = &dy64[i * c..(i + 1) * c];
        let m = xr.iter().sum::<f64>() / c as f64;
        let var = xr.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / c as f64;
        let rs = 1.0 / (var + 1e-5).sqrt();
        let xh: Vec<f64> = xr.iter().map(|v| (v - m) * rs).collect();
        let mg = dr.iter().sum::<f64>() / c as f64;
        let mgx = dr.iter().zip(&xh).map(|(a, b)| a * b).sum::<f64>() / c as f64;
        for j in 0..c {
            let want = rs * (dr[j] - mg - xh[j] * mgx);
            assert!(
                (dx[i * c + j] as f64 - want).abs() < 1e-3 * (1.0 + want.abs()),
                "layernorm backward row {i}: {} vs {want}",
                dx[i * c + j]
            );
            assert!((dyx[i * c + j] as f64 - dr[j] * xh[j]).abs() < 1e-4 * (1.0 + rs));
        }
    }
    // NLL and cross-entropy backward.
    let t: Vec<u32> = (0..r as u32).map(|i| i % 4).collect(); // 3 = out of range
    let tt = Tensor::from_u32(&gpu(), &t, &[r]).unwrap();
    let lp = semid::kernels::norm::log_softmax_rows(&xt).unwrap();
    let nll = ak::nll_rows(&lp, &tt).unwrap().to_vec().unwrap();
    let lpv = lp.to_vec().unwrap();
    for i in 0..r {
        let want = if t[i] < 3 {
            -lpv[i * c + t[i] as usize]
        } else {
            0.0
        };
        assert_eq!(nll[i], want, "nll row {i}");
    }
    let one = upload(&[2.0], &[1]);
    let dx = ak::softmax_xent_backward(&lp, &tt, &one, 0.5)
        .unwrap()
        .to_vec()
        .unwrap();
    for i in (0..r).step_by(101).chain([r - 1]) {
        for j in 0..c {
            let want = if t[i] < 3 {
                lpv[i * c + j].exp() - if j as u32 == t[i] { 1.0 } else { 0.0 }
            } else {
                0.0
            };
            assert!((dx[i * c + j] - want).abs() < 1e-6, "xent backward row {i}");
        }
    }
}

#[test]
fn row_ops_on_rows_wider_than_a_workgroup() {
    // Rows of more than 256 columns: each invocation walks several columns.
    for (s, &(r, c)) in [(2usize, 300usize), (3, 257), (1, 613)].iter().enumerate() {
        let seed = 1100 + 10 * s as u64;
        let x: Vec<f32> = rand_vec(r * c, seed).iter().map(|v| 2.0 * v).collect();
        let xs = (x.clone(), vec![r, c]);
        check(
            &format!("softmax_rows {r}x{c}"),
            std::slice::from_ref(&xs),
            &|g, v| g.softmax_rows(&v[0]),
            &|x| rows_map(&x[0], c, softmax64),
        );
        check(
            &format!("log_softmax_rows {r}x{c}"),
            std::slice::from_ref(&xs),
            &|g, v| g.log_softmax_rows(&v[0]),
            &|x| rows_map(&x[0], c, log_softmax64),
        );
        check(
            &format!("layernorm {r}x{c}"),
            &[
                xs.clone(),
                (away_from_zero(c, seed + 1, 0.5), vec![c]),
                input(c, &[c], seed + 2),
            ],
            &|g, v| g.layernorm(&v[0], Some(&v[1]), Some(&v[2]), 1e-5),
            &|x| rows_map(&x[0], c, |row| layernorm64(row, Some(&x[1]), Some(&x[2]))),
        );
        check(
            &format!("l2_normalize_rows {r}x{c}"),
            std::slice::from_ref(&xs),
            &|g, v| g.l2_normalize_rows(&v[0], 1e-12),
            &|x| rows_map(&x[0], c, |row| l2n64(row, 1e-12)),
        );
        let t: Vec<u32> = (0..r).map(|i| ((i * 131 + 7) % c) as u32).collect();
        let tt = Tensor::from_u32(&gpu(), &t, &[r]).unwrap();
        check(
            &format!("softmax_cross_entropy {r}x{c}"),
            std::slice::from_ref(&xs),
            &|g, v| g.softmax_cross_entropy(&v[0], &tt),
            &|x| {
                let lp = rows_map(&x[0], c, log_softmax64);
                vec![
                    t.iter()
                        .enumerate()
                        .map(|(i, &k)| -lp[i * c + k as usize])
                        .sum::<f64>()
                        / r as f64,
                ]
            },
        );
    }
}

#[test]
fn row_backward_kernels_on_rows_longer_than_a_loop_limit() {
    // One row of 8,500,000: each of its 256 invocations walked 33,204 columns twice (the sum,
    // then the writes) in one dispatch, past llvmpipe's 65,535 loop iterations, so the tail of
    // the row came out wrong. Such rows now run the sum pass, then the writing pass, over
    // windows of columns. The kernels take any y, so plain random rows serve as input.
    let c = 8_500_000;
    let x = rand_vec(c, 90);
    let dy = rand_vec(c, 91);
    let (xt, dyt) = (upload(&x, &[1, c]), upload(&dy, &[1, c]));
    let (x64, dy64) = (to64(&x), to64(&dy));
    let close = |got: &[f32], want: &[f64], what: &str| {
        let want: Vec<f32> = want.iter().map(|&v| v as f32).collect();
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert_close(got, &want, 1e-4 * scale, 1e-3, what);
    };
    for log in [false, true] {
        let got = ak::softmax_rows_backward(&xt, &dyt, log)
            .unwrap()
            .to_vec()
            .unwrap();
        let want: Vec<f64> = if log {
            let s: f64 = dy64.iter().sum();
            x64.iter()
                .zip(&dy64)
                .map(|(y, d)| d - y.exp() * s)
                .collect()
        } else {
            let dot: f64 = x64.iter().zip(&dy64).map(|(y, d)| y * d).sum();
            x64.iter().zip(&dy64).map(|(y, d)| y * (d - dot)).collect()
        };
        close(&got, &want, &format!("softmax backward (log {log})"));
    }
    let (yn, nrm) = ak::l2_normalize_rows(&xt, 1e-12).unwrap();
    let n64 = x64.iter().map(|v| v * v).sum::<f64>().sqrt();
    let y64: Vec<f64> = x64.iter().map(|v| v / n64).collect();
    close(&yn.to_vec().unwrap(), &y64, "l2 normalise");
    close(&nrm.to_vec().unwrap(), &[n64], "l2 norm");
    let dx = ak::l2_normalize_rows_backward(&yn, &nrm, &dyt, 1e-12)
        .unwrap()
        .to_vec()
        .unwrap();
    let dot: f64 = y64.iter().zip(&dy64).map(|(a, b)| a * b).sum();
    let want: Vec<f64> = y64
        .iter()
        .zip(&dy64)
        .map(|(y, d)| (d - y * dot) / n64)
        .collect();
    close(&dx, &want, "l2 normalise backward");
    let gamma = rand_vec(c, 92);
    let ln = semid::kernels::norm::layernorm_with_stats(&xt, None, None, 1e-5).unwrap();
    let (dx, dyx) =
        ak::layernorm_backward(&xt, Some(&upload(&gamma, &[c])), &ln.mean, &ln.rstd, &dyt).unwrap();
    let m = x64.iter().sum::<f64>() / c as f64;
    let var = x64.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / c as f64;
    let rs = 1.0 / (var + 1e-5).sqrt();
    let xh: Vec<f64> = x64.iter().map(|v| (v - m) * rs).collect();
    let g: Vec<f64> = dy64
        .iter()
        .zip(&gamma)
        .map(|(d, &w)| d * w as f64)
        .collect();
    let mg = g.iter().sum::<f64>() / c as f64;
    let mgx = g.iter().zip(&xh).map(|(a, b)| a * b).sum::<f64>() / c as f64;
    let want: Vec<f64> = g
        .iter()
        .zip(&xh)
        .map(|(g, h)| rs * (g - mg - h * mgx))
        .collect();
    close(&dx.to_vec().unwrap(), &want, "layernorm backward dx");
    let want: Vec<f64> = dy64.iter().zip(&xh).map(|(d, h)| d * h).collect();
    close(
        &dyx.to_vec().unwrap(),
        &want,
        "layernorm backward dy * xhat",
    );
}

// ---------------------------------------------------------------------------------------------
// soft indexing (behaviour-aware fine-tuning)

fn argmax_rows(p: &[f32], k: usize) -> Vec<u32> {
    p.chunks(k)
        .map(|row| {
            let mut best = 0;
            for (j, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = j;
                }
            }
            best as u32
        })
        .collect()
}

#[test]
fn soft_index_forwards_the_hard_code_and_backpropagates_the_soft_assignment() {
    for (s, &(m, k, d)) in [(1, 1, 1), (1, 3, 2), (7, 5, 3), (13, 4, 6), (2, 11, 1)]
        .iter()
        .enumerate()
    {
        let name = format!("soft_index m={m} k={k} d={d}");
        let p = rand_vec(m * k, 900 + s as u64);
        let e = rand_vec(k * d, 950 + s as u64);
        let hard = argmax_rows(&p, k);
        let gpu = gpu();
        let g = Graph::new(&gpu);
        let pv = g.leaf(&upload(&p, &[m, k])).unwrap();
        let ev = g.leaf(&upload(&e, &[k, d])).unwrap();
        let soft = g.softmax_rows(&pv).unwrap();
        let ht = Tensor::from_u32(&gpu, &hard, &[m]).unwrap();
        let y = g.soft_index(&soft, &ht, &ev).unwrap();
        // Forward: exactly the hard code's row (no rounding from the soft path).
        let want: Vec<f32> = hard
            .iter()
            .flat_map(|&c| e[c as usize * d..(c as usize + 1) * d].to_vec())
            .collect();
        assert_eq!(y.value().to_vec().unwrap(), want, "{name}: forward");
        let w32 = rand_vec(m * d, 990 + s as u64);
        let grads = g.backward_with(&y, &upload(&w32, &[m, d])).unwrap();
        let w = to64(&w32);
        let x64 = [to64(&p), to64(&e)];
        // The scores' gradient is the soft surrogate's: Σ w ⊙ softmax(P)·E.
        let surrogate = |x: &[Vec<f64>]| {
            let sm = rows_map(&x[0], k, softmax64);
            mm(&sm, &[m, k], &x[1], &[k, d], false, false)
        };
        let fd_p = fd_grad(&surrogate, &x64, 0, &w);
        assert_grad(
            &grads.get(&pv).unwrap().to_vec().unwrap(),
            &fd_p,
            &format!("{name}: dP"),
        );
        // The table's gradient is the hard lookup's (the value of ind is the one-hot).
        let hard_fwd = |x: &[Vec<f64>]| {
            hard.iter()
                .flat_map(|&c| x[1][c as usize * d..(c as usize + 1) * d].to_vec())
                .collect::<Vec<f64>>()
        };
        let fd_e = fd_grad(&hard_fwd, &x64, 1, &w);
        assert_grad(
            &grads.get(&ev).unwrap().to_vec().unwrap(),
            &fd_e,
            &format!("{name}: dE"),
        );
        // And the soft path really carries something: dP is not zero where k > 1.
        if k > 1 {
            assert!(
                fd_p.iter().any(|v| v.abs() > 1e-6),
                "{name}: a test that cannot fail"
            );
        }
    }
}

#[test]
fn soft_index_over_more_than_65535_workgroups_matches_the_cpu() {
    let (m, k, d) = (70_001, 3, 2);
    let p = rand_vec(m * k, 1001);
    let e = rand_vec(k * d, 1002);
    let hard = argmax_rows(&p, k);
    let gpu = gpu();
    let g = Graph::new(&gpu);
    let sv = g.leaf(&upload(&p, &[m, k])).unwrap();
    let ev = g.leaf(&upload(&e, &[k, d])).unwrap();
    let ht = Tensor::from_u32(&gpu, &hard, &[m]).unwrap();
    let y = g.soft_index(&sv, &ht, &ev).unwrap();
    let w = rand_vec(m * d, 1003);
    let grads = g.backward_with(&y, &upload(&w, &[m, d])).unwrap();
    let got = y.value().to_vec().unwrap();
    for (i, &c) in hard.iter().enumerate() {
        assert_eq!(
            &got[i * d..(i + 1) * d],
            &e[c as usize * d..(c as usize + 1) * d]
        );
    }
    // d soft = W·Eᵀ, d E = scatter-add of W by code.
    let ds = grads.get(&sv).unwrap().to_vec().unwrap();
    let mut de = vec![0f64; k * d];
    for i in 0..m {
        for j in 0..k {
            let want: f64 = (0..d)
                .map(|c| w[i * d + c] as f64 * e[j * d + c] as f64)
                .sum();
            assert!(
                (ds[i * k + j] as f64 - want).abs() < 1e-5,
                "d soft[{i},{j}]"
            );
        }
        for c in 0..d {
            de[hard[i] as usize * d + c] += w[i * d + c] as f64;
        }
    }
    let got_de = grads.get(&ev).unwrap().to_vec().unwrap();
    for (a, b) in got_de.iter().zip(&de) {
        assert!(
            (*a as f64 - b).abs() <= 1e-3 + 1e-4 * b.abs(),
            "dE {a} vs {b}"
        );
    }
}

#[test]
fn l2_logits_are_negative_squared_distances_up_to_a_row_constant() {
    for (s, &(r, c)) in SHAPES.iter().enumerate() {
        let k = 5;
        let seed = 1100 + 10 * s as u64;
        let x = rand_vec(r * c, seed);
        let cb = rand_vec(k * c, seed + 1);
        for inv_tau in [1.0f32, 4.0] {
            check(
                &format!("l2_logits {r}x{c} vs {k}x{c} 1/tau={inv_tau}"),
                &[(x.clone(), vec![r, c]), (cb.clone(), vec![k, c])],
                &|g, v| g.l2_logits(&v[0], &v[1], inv_tau),
                &|x| {
                    let dots = mm(&x[0], &[r, c], &x[1], &[k, c], false, true);
                    (0..r * k)
                        .map(|ij| {
                            let j = ij % k;
                            let csq: f64 = x[1][j * c..(j + 1) * c].iter().map(|v| v * v).sum();
                            (2.0 * dots[ij] - csq) * inv_tau as f64
                        })
                        .collect()
                },
            );
        }
        // Their argmax is the L2-nearest code, as the quantizer's search picks it.
        let g = Graph::new(&gpu());
        let l = g
            .l2_logits(
                &g.input(&upload(&x, &[r, c])),
                &g.input(&upload(&cb, &[k, c])),
                1.0,
            )
            .unwrap();
        let near = semid::kernels::codebook::nearest(
            &upload(&x, &[r, c]),
            &upload(&cb, &[k, c]),
            semid::kernels::codebook::Metric::L2,
        )
        .unwrap()
        .index
        .to_u32()
        .unwrap();
        assert_eq!(argmax_rows(&l.value().to_vec().unwrap(), k), near);
    }
}

// ---------------------------------------------------------------------------------------------
// attention

/// f64 masked softmax of `scale · s` over `[b*h, sq, sk]`, as `masked_softmax_cpu` defines it.
#[allow(clippy::too_many_arguments)]
fn masked_softmax64(
    s: &[f64],
    dims: [usize; 4],
    scale: f64,
    q_lens: Option<&[u32]>,
    k_lens: Option<&[u32]>,
    causal: bool,
) -> Vec<f64> {
    let [_, h, sq, sk] = dims;
    let mut out = vec![0.0; s.len()];
    for (r, (row, o)) in s.chunks(sk).zip(out.chunks_mut(sk)).enumerate() {
        let (i, b) = (r % sq, r / sq / h);
        let mut lim = k_lens.map_or(sk, |k| (k[b] as usize).min(sk));
        if causal {
            lim = lim.min(i + 1);
        }
        if q_lens.is_some_and(|q| i >= q[b] as usize) {
            lim = 0;
        }
        if lim > 0 {
            let p = softmax64(&row[..lim].iter().map(|v| scale * v).collect::<Vec<_>>());
            o[..lim].copy_from_slice(&p);
        }
    }
    out
}

/// f64 `split_heads`: `[b, s, h*d] -> [b*h, s, d]`.
fn split64(x: &[f64], [b, s, h, d]: [usize; 4]) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for bi in 0..b {
        for hi in 0..h {
            for si in 0..s {
                out.extend_from_slice(&x[((bi * s + si) * h + hi) * d..][..d]);
            }
        }
    }
    out
}

/// f64 `merge_heads`: `[b*h, s, d] -> [b, s, h*d]`.
fn merge64(y: &[f64], [b, s, h, d]: [usize; 4]) -> Vec<f64> {
    let mut out = Vec::with_capacity(y.len());
    for bi in 0..b {
        for si in 0..s {
            for hi in 0..h {
                out.extend_from_slice(&y[((bi * h + hi) * s + si) * d..][..d]);
            }
        }
    }
    out
}

/// f64 attention of q `[b, sq, h*d]` over k, v `[b, sk, h*d]`, composed as the graph does.
#[allow(clippy::too_many_arguments)]
fn attention64(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    [b, sq, sk, h, d]: [usize; 5],
    scale: f64,
    q_lens: Option<&[u32]>,
    k_lens: Option<&[u32]>,
    causal: bool,
) -> Vec<f64> {
    let (qh, kh, vh) = (
        split64(q, [b, sq, h, d]),
        split64(k, [b, sk, h, d]),
        split64(v, [b, sk, h, d]),
    );
    let mut o = Vec::with_capacity(b * h * sq * d);
    for m in 0..b * h {
        let qm = &qh[m * sq * d..][..sq * d];
        let km = &kh[m * sk * d..][..sk * d];
        let vm = &vh[m * sk * d..][..sk * d];
        let s = mm(qm, &[sq, d], km, &[sk, d], false, true);
        // The lengths of sequence m / h, applied to this one matrix.
        let bi = m / h;
        let (ql, kl) = (q_lens.map(|l| [l[bi]]), k_lens.map(|l| [l[bi]]));
        let pm = masked_softmax64(
            &s,
            [1, 1, sq, sk],
            scale,
            ql.as_ref().map(|l| &l[..]),
            kl.as_ref().map(|l| &l[..]),
            causal,
        );
        o.extend(mm(&pm, &[sq, sk], vm, &[sk, d], false, false));
    }
    merge64(&o, [b, sq, h, d])
}

fn lens(g: &Graph, v: &[u32]) -> Tensor {
    Tensor::from_u32(g.gpu(), v, &[v.len()]).unwrap()
}

#[test]
fn masked_softmax_gradient_is_scaled_and_zero_where_masked() {
    use semid::autograd::AttnMask;
    // B = 2, H = 2, Sq = 3, Sk = 4; a padding query row, a short key length, causal or not.
    let dims = [2, 2, 3, 4];
    let (q, k) = ([3u32, 2], [4u32, 2]);
    for (causal, scale) in [(false, 0.7f32), (true, 1.9)] {
        let x: Vec<f32> = rand_vec(48, 1200 + causal as u64)
            .iter()
            .map(|v| 2.0 * v)
            .collect();
        check(
            &format!("masked_softmax causal {causal} scale {scale}"),
            &[(x, vec![4, 3, 4])],
            &|g, v| {
                let (qt, kt) = (lens(g, &q), lens(g, &k));
                let mask = AttnMask {
                    q_lens: Some(&qt),
                    k_lens: Some(&kt),
                    causal,
                };
                g.masked_softmax(&v[0], 2, scale, &mask)
            },
            &|x| masked_softmax64(&x[0], dims, scale as f64, Some(&q), Some(&k), causal),
        );
    }
}

#[test]
fn split_and_merge_heads_gradients() {
    let dims = [2, 3, 3, 2];
    check(
        "split_heads [2,3,6] H=3",
        &[input(36, &[2, 3, 6], 1210)],
        &|g, v| g.split_heads(&v[0], 3),
        &|x| split64(&x[0], dims),
    );
    check(
        "merge_heads [6,3,2] H=3",
        &[input(36, &[6, 3, 2], 1211)],
        &|g, v| g.merge_heads(&v[0], 3),
        &|x| merge64(&x[0], dims),
    );
}

#[test]
fn attention_gradients_for_causal_self_attention_with_padding() {
    use semid::autograd::AttnMask;
    // B = 2, S = 4, H = 2, D = 3; sequence 1 has 3 real tokens.
    let (b, s, h, d) = (2, 4, 2, 3);
    let l = [4u32, 3];
    let cpu = |x: &[Vec<f64>], same: bool| {
        let (q, k, v) = if same {
            (&x[0], &x[0], &x[0])
        } else {
            (&x[0], &x[1], &x[2])
        };
        attention64(q, k, v, [b, s, s, h, d], 0.6, Some(&l), Some(&l), true)
    };
    let n = b * s * h * d;
    // q = k = v: one input, its gradient sums the three paths.
    check(
        "attention self q=k=v causal+padding",
        &[input(n, &[b, s, h * d], 1220)],
        &|g, v| {
            let lt = lens(g, &l);
            let mask = AttnMask {
                q_lens: Some(&lt),
                k_lens: Some(&lt),
                causal: true,
            };
            g.attention(&v[0], &v[0], &v[0], h, Some(0.6), &mask)
        },
        &|x| cpu(x, true),
    );
    check(
        "attention self q, k, v causal+padding",
        &[
            input(n, &[b, s, h * d], 1221),
            input(n, &[b, s, h * d], 1222),
            input(n, &[b, s, h * d], 1223),
        ],
        &|g, v| {
            let lt = lens(g, &l);
            let mask = AttnMask {
                q_lens: Some(&lt),
                k_lens: Some(&lt),
                causal: true,
            };
            g.attention(&v[0], &v[1], &v[2], h, Some(0.6), &mask)
        },
        &|x| cpu(x, false),
    );
}

#[test]
fn attention_gradients_for_cross_attention_with_key_padding() {
    use semid::autograd::AttnMask;
    // B = 2, Sq = 3, Sk = 5, H = 1 and 3, D = 2; sequence 0 has 2 real keys.
    for h in [1, 3] {
        let (b, sq, sk, d) = (2, 3, 5, 2);
        let kl = [2u32, 5];
        let w = h * d;
        check(
            &format!("attention cross H={h}"),
            &[
                input(b * sq * w, &[b, sq, w], 1230 + h as u64),
                input(b * sk * w, &[b, sk, w], 1240 + h as u64),
                input(b * sk * w, &[b, sk, w], 1250 + h as u64),
            ],
            &|g, v| {
                let kt = lens(g, &kl);
                let mask = AttnMask {
                    k_lens: Some(&kt),
                    ..AttnMask::default()
                };
                g.attention(&v[0], &v[1], &v[2], h, None, &mask)
            },
            &|x| {
                let scale = 1.0 / (d as f64).sqrt();
                attention64(
                    &x[0],
                    &x[1],
                    &x[2],
                    [b, sq, sk, h, d],
                    scale,
                    None,
                    Some(&kl),
                    false,
                )
            },
        );
    }
}
