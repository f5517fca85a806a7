//! Softmax, log-softmax and layernorm against f64 CPU references at awkward shapes, large
//! magnitudes, many rows, huge rows and inputs above the binding limit.
use crate::common;
use common::*;
use semid::kernels::norm::*;
use semid::Tensor;

const SHAPES: &[(usize, usize)] = &[
    (1, 1),
    (37, 61),
    (3, 257),
    (129, 1),
    (5, 255),
    (2, 513),
    (70_001, 3),
    (1, 1_000_003),
];

fn check_softmax(x: &[f32], r: usize, c: usize, what: &str) {
    let t = upload(x, &[r, c]);
    let got = softmax_rows(&t).unwrap().to_vec().unwrap();
    let want = softmax_rows_cpu(x, c);
    assert!(
        got.iter().all(|v| v.is_finite()),
        "{what}: softmax not finite"
    );
    // Relative accuracy per element (values span many orders of magnitude).
    assert_close(&got, &want, 1e-30, 1e-5, &format!("softmax {what}"));
    for (i, row) in got.chunks(c).enumerate() {
        let s: f64 = row.iter().map(|&v| v as f64).sum();
        assert!(
            (s - 1.0).abs() < 1e-4,
            "softmax {what}: row {i} sums to {s}"
        );
    }
    let got = log_softmax_rows(&t).unwrap().to_vec().unwrap();
    let want = log_softmax_rows_cpu(x, c);
    assert!(
        got.iter().all(|v| v.is_finite()),
        "{what}: log-softmax not finite"
    );
    // log-softmax = x − shift: its error scales with the magnitudes involved.
    let scale = x.iter().fold(1f32, |m, v| m.max(v.abs())) + (c as f32).ln();
    assert_close(
        &got,
        &want,
        2e-6 * scale,
        1e-6,
        &format!("log_softmax {what}"),
    );
}

#[test]
fn softmax_and_log_softmax_match_cpu() {
    for (seed, &(r, c)) in SHAPES.iter().enumerate() {
        let x: Vec<f32> = rand_vec(r * c, 40 + seed as u64)
            .iter()
            .map(|v| 4.0 * v)
            .collect();
        check_softmax(&x, r, c, &format!("{r}x{c}"));
    }
}

#[test]
fn softmax_of_large_magnitudes_is_finite() {
    let c = 300;
    let mut x: Vec<f32> = rand_vec(5 * c, 8).iter().map(|v| 1000.0 * v).collect();
    x[..c].fill(1000.0);
    x[c..2 * c].fill(-1000.0);
    x[2 * c..3 * c].fill(-1000.0);
    x[2 * c + 77] = 1000.0;
    for (i, v) in x[3 * c..4 * c].iter_mut().enumerate() {
        *v = if i % 2 == 0 { 1000.0 } else { -1000.0 };
    }
    check_softmax(&x, 5, c, "±1000");
    let t = upload(&x, &[5, c]);
    let got = softmax_rows(&t).unwrap().to_vec().unwrap();
    assert!((got[0] - 1.0 / c as f32).abs() < 1e-7, "uniform row");
    assert!((got[2 * c + 77] - 1.0).abs() < 1e-6, "one-hot row");
    assert_eq!(got[2 * c], 0.0, "underflow to zero, not NaN");
}

fn check_layernorm(x: &[f32], shape: &[usize], affine: bool, eps: f32, what: &str) {
    let c = *shape.last().unwrap();
    let g = gpu();
    let gamma_v: Vec<f32> = rand_vec(c, 91).iter().map(|v| 1.0 + v).collect();
    let beta_v = rand_vec(c, 92);
    let gamma = Tensor::from_slice(&g, &gamma_v, &[c]).unwrap();
    let beta = Tensor::from_slice(&g, &beta_v, &[c]).unwrap();
    let t = upload(x, shape);
    let cases: Vec<(Option<&Tensor>, Option<&Tensor>)> = if affine {
        vec![
            (Some(&gamma), Some(&beta)),
            (Some(&gamma), None),
            (None, Some(&beta)),
            (None, None),
        ]
    } else {
        vec![(None, None)]
    };
    for (gm, bt) in cases {
        let out = layernorm_with_stats(&t, gm, bt, eps).unwrap();
        assert_eq!(out.y.shape(), shape);
        let (wy, wm, wr) =
            layernorm_cpu(x, c, gm.map(|_| &gamma_v[..]), bt.map(|_| &beta_v[..]), eps);
        let w = format!(
            "layernorm {what} gamma={} beta={}",
            gm.is_some(),
            bt.is_some()
        );
        let mean = out.mean.to_vec().unwrap();
        let scale = x.iter().fold(1f32, |m, v| m.max(v.abs()));
        assert_close(&mean, &wm, 2e-6 * scale, 1e-6, &format!("{w} mean"));
        assert_close(
            &out.rstd.to_vec().unwrap(),
            &wr,
            0.0,
            2e-5,
            &format!("{w} rstd"),
        );
        // y is O(√cols) at most; normalised values carry ~1e-5 relative error from rstd.
        assert_close(&out.y.to_vec().unwrap(), &wy, 2e-5, 2e-5, &format!("{w} y"));
    }
}

#[test]
fn layernorm_matches_cpu() {
    for (seed, &(r, c)) in SHAPES.iter().enumerate() {
        let x = rand_vec(r * c, 60 + seed as u64);
        let affine = r * c < 1_000_000;
        check_layernorm(&x, &[r, c], affine, LAYERNORM_EPS, &format!("{r}x{c}"));
    }
    let x = rand_vec(7 * 11 * 13, 3);
    check_layernorm(&x, &[7, 11, 13], true, 1e-3, "7x11x13 eps 1e-3");
    let g = gpu();
    let t = upload(&x, &[7, 11, 13]);
    let plain = layernorm(&t, None, None, LAYERNORM_EPS).unwrap();
    assert_eq!(plain.shape(), &[7, 11, 13]);
    let (wy, _, _) = layernorm_cpu(&x, 13, None, None, LAYERNORM_EPS);
    assert_close(&plain.to_vec().unwrap(), &wy, 2e-5, 2e-5, "layernorm");
    let st = layernorm_with_stats(&t, None, None, LAYERNORM_EPS).unwrap();
    assert_eq!(st.mean.shape(), &[7, 11]);
    assert_eq!(st.rstd.shape(), &[7, 11]);
    assert!(g.sync().is_ok());
}

#[test]
fn rows_longer_than_a_loop_limit() {
    // A row's 256 invocations each walk 1/256 of it once per pass; llvmpipe stops an invocation
    // after 65,535 loop iterations, so softmax (two passes) broke above 8.39M columns (relative
    // error 1.0 at 8,448,000) and layernorm (three) above 5.59M. Such rows now run one pass per
    // dispatch over windows of columns.
    let c = 8_400_000;
    let x = rand_vec(2 * c, 70);
    check_softmax(&x, 2, c, "2x8400000");
    let c = 5_600_000;
    let x: Vec<f32> = rand_vec(c, 71).iter().map(|v| 3.0 * v + 0.5).collect();
    check_layernorm(&x, &[1, c], true, LAYERNORM_EPS, "1x5600000");
}

#[test]
fn layernorm_is_stable_with_a_large_mean() {
    // Rows of 1000 + small noise: a one-pass E[x²] − E[x]² would lose the variance entirely.
    let (r, c) = (9, 301);
    let x: Vec<f32> = rand_vec(r * c, 17)
        .iter()
        .map(|v| 1000.0 + 0.1 * v)
        .collect();
    let t = upload(&x, &[r, c]);
    let out = layernorm_with_stats(&t, None, None, LAYERNORM_EPS).unwrap();
    let (wy, wm, wr) = layernorm_cpu(&x, c, None, None, LAYERNORM_EPS);
    // f32 sums near 3e5 round to ~0.03, so the mean is good to a few ulps of 1000 (6e-5 each).
    assert_close(&out.mean.to_vec().unwrap(), &wm, 5e-4, 0.0, "mean");
    // x itself is only stored to ~6e-5 absolute; the normalised values follow within 1e-2.
    assert_close(&out.rstd.to_vec().unwrap(), &wr, 0.0, 1e-3, "rstd");
    assert_close(&out.y.to_vec().unwrap(), &wy, 1e-2, 0.0, "y");
    // Constant rows: zero variance gives y = beta exactly and rstd = 1/sqrt(eps).
    let x = vec![3.5f32; 4 * 7];
    let beta_v = rand_vec(7, 2);
    let beta = upload(&beta_v, &[7]);
    let out = layernorm_with_stats(&upload(&x, &[4, 7]), None, Some(&beta), LAYERNORM_EPS).unwrap();
    assert_close(
        &out.y.to_vec().unwrap(),
        &beta_v.repeat(4),
        0.0,
        0.0,
        "constant rows",
    );
    let want = 1.0 / LAYERNORM_EPS.sqrt();
    assert_close(
        &out.rstd.to_vec().unwrap(),
        &[want; 4],
        0.0,
        1e-5,
        "constant rstd",
    );
}

#[test]
fn into_variants_write_the_given_outputs() {
    let g = gpu();
    let (r, c) = (37, 61);
    let x = rand_vec(r * c, 5);
    let t = upload(&x, &[r, c]);
    let y = Tensor::zeros(&g, &[r, c]).unwrap();
    softmax_rows_into(&t, &y).unwrap();
    assert_close(
        &y.to_vec().unwrap(),
        &softmax_rows_cpu(&x, c),
        1e-30,
        1e-5,
        "softmax into",
    );
    log_softmax_rows_into(&t, &y).unwrap();
    assert_close(
        &y.to_vec().unwrap(),
        &log_softmax_rows_cpu(&x, c),
        1e-5,
        1e-6,
        "log into",
    );
    let (m, s) = (
        Tensor::zeros(&g, &[r]).unwrap(),
        Tensor::zeros(&g, &[r]).unwrap(),
    );
    layernorm_into(&t, None, None, LAYERNORM_EPS, &y, &m, &s).unwrap();
    let (wy, wm, wr) = layernorm_cpu(&x, c, None, None, LAYERNORM_EPS);
    assert_close(&y.to_vec().unwrap(), &wy, 2e-5, 2e-5, "layernorm into y");
    assert_close(&m.to_vec().unwrap(), &wm, 2e-6, 1e-6, "layernorm into mean");
    assert_close(&s.to_vec().unwrap(), &wr, 0.0, 2e-5, "layernorm into rstd");
}

#[test]
fn bad_arguments_are_errors_not_panics() {
    let g = gpu();
    let t = upload(&rand_vec(12, 1), &[3, 4]);
    let wrong = Tensor::zeros(&g, &[4, 3]).unwrap();
    assert!(softmax_rows_into(&t, &wrong).is_err(), "shape");
    assert!(softmax_rows_into(&t, &t).is_err(), "alias");
    assert!(log_softmax_rows_into(&t, &t).is_err(), "alias");
    let u = Tensor::from_u32(&g, &[0; 12], &[3, 4]).unwrap();
    assert!(softmax_rows(&u).is_err(), "u32 input");
    let g5 = Tensor::zeros(&g, &[5]).unwrap();
    assert!(
        layernorm(&t, Some(&g5), None, LAYERNORM_EPS).is_err(),
        "gamma length"
    );
    assert!(
        layernorm(&t, None, Some(&g5), LAYERNORM_EPS).is_err(),
        "beta length"
    );
    assert!(layernorm(&t, None, None, -1.0).is_err(), "negative eps");
    assert!(layernorm(&t, None, None, f32::NAN).is_err(), "NaN eps");
    let y = Tensor::zeros(&g, &[3, 4]).unwrap();
    let m = Tensor::zeros(&g, &[3]).unwrap();
    let s = Tensor::zeros(&g, &[2]).unwrap();
    assert!(
        layernorm_into(&t, None, None, 1e-5, &y, &m, &s).is_err(),
        "rstd length"
    );
    assert!(
        layernorm_into(&t, None, None, 1e-5, &y, &m, &m).is_err(),
        "mean = rstd"
    );
    assert!(
        layernorm_into(&t, None, None, 1e-5, &t, &m, &s).is_err(),
        "y = x"
    );
    let empty = Tensor::zeros(&g, &[3, 0]).unwrap();
    assert!(softmax_rows(&empty).is_err());
    assert!(layernorm(&empty, None, None, LAYERNORM_EPS).is_err());
    assert!(g.sync().is_ok(), "no GPU validation error");
}

#[test]
fn inputs_above_the_binding_limit_are_chunked() {
    // 131,073 × 257 f32 is 134,743,044 bytes: above the 128 MiB storage binding limit.
    let (r, c) = (131_073, 257);
    let g = gpu();
    assert!(g.row_chunks(r, &[c as u64 * 4, 4]).unwrap().len() > 1);
    let x = rand_vec(r * c, 123);
    let t = upload(&x, &[r, c]);
    let gamma_v: Vec<f32> = rand_vec(c, 1).iter().map(|v| 1.0 + v).collect();
    let beta_v = rand_vec(c, 2);
    let gamma = upload(&gamma_v, &[c]);
    let beta = upload(&beta_v, &[c]);
    let out = layernorm_with_stats(&t, Some(&gamma), Some(&beta), LAYERNORM_EPS).unwrap();
    let (wy, wm, wr) = layernorm_cpu(&x, c, Some(&gamma_v), Some(&beta_v), LAYERNORM_EPS);
    assert_close(&out.y.to_vec().unwrap(), &wy, 2e-5, 2e-5, "layernorm big y");
    assert_close(
        &out.mean.to_vec().unwrap(),
        &wm,
        2e-6,
        1e-6,
        "layernorm big mean",
    );
    assert_close(
        &out.rstd.to_vec().unwrap(),
        &wr,
        0.0,
        2e-5,
        "layernorm big rstd",
    );
    drop(out);
    let got = softmax_rows(&t).unwrap().to_vec().unwrap();
    assert_close(&got, &softmax_rows_cpu(&x, c), 1e-30, 1e-5, "softmax big");
}
