//! Row reductions, arg-reductions, column sums and full sums against f64 CPU references at
//! awkward shapes, ties, large magnitudes, many rows, huge rows, and determinism.
use crate::common;
use common::*;
use semid::kernels::reduce::*;
use semid::{DType, Tensor};

const OPS: [RowReduce; 6] = [
    RowReduce::Sum,
    RowReduce::Mean,
    RowReduce::Max,
    RowReduce::Min,
    RowReduce::L2Norm,
    RowReduce::LogSumExp,
];

/// Absolute tolerance for one row's result. f32 sums of n values of magnitude ≤ 1 carry an
/// error that grows like √n, so sums get 1e-5·(|want| + √n); a dropped or doubled element
/// (≈ 0.5) is far outside it. Max and min select an input value, so they must be exact.
fn tol(op: RowReduce, want: f32, cols: usize, scale: f32) -> f32 {
    let n = cols as f32;
    match op {
        RowReduce::Sum => 1e-5 * (want.abs() + n.sqrt() * scale),
        RowReduce::Mean => 1e-5 * (want.abs() + scale / n.sqrt()),
        RowReduce::Max | RowReduce::Min => 0.0,
        RowReduce::L2Norm => 1e-5 * want.abs(),
        RowReduce::LogSumExp => 1e-5 * want.abs().max(1.0),
    }
}

/// Checks every row op and both arg ops on `x` viewed as [rows, cols] (uploaded as `shape`).
fn check_all_rows(x: &[f32], shape: &[usize], scale: f32, what: &str) {
    let cols = *shape.last().unwrap();
    let t = upload(x, shape);
    for op in OPS {
        let got = reduce_rows(&t, op).unwrap().to_vec().unwrap();
        let want = reduce_rows_cpu(x, cols, op);
        assert_eq!(got.len(), want.len(), "{what} {op:?}: length");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let tl = tol(op, *w, cols, scale);
            assert!(
                (g - w).abs() <= tl,
                "{what} {op:?}: row {i}: got {g}, want {w} (tol {tl})"
            );
        }
    }
    let am = argmax_rows(&t).unwrap();
    assert_eq!(am.dtype(), DType::U32);
    assert_eq!(
        am.to_u32().unwrap(),
        argmax_rows_cpu(x, cols),
        "{what} argmax"
    );
    let an = argmin_rows(&t).unwrap();
    assert_eq!(
        an.to_u32().unwrap(),
        argmin_rows_cpu(x, cols),
        "{what} argmin"
    );
}

#[test]
fn row_reductions_match_cpu_at_awkward_shapes() {
    for (seed, &(r, c)) in [
        (1, 1),
        (37, 61),
        (3, 257),
        (129, 1),
        (5, 255),
        (2, 256),
        (4, 513),
        (11, 1000),
        (2, 70_001),
    ]
    .iter()
    .enumerate()
    {
        let x = rand_vec(r * c, 100 + seed as u64);
        check_all_rows(&x, &[r, c], 1.0, &format!("{r}x{c}"));
    }
    // A 3-D input reduces its last dimension; so does a shifted, scaled one.
    let x: Vec<f32> = rand_vec(7 * 11 * 13, 5)
        .iter()
        .map(|v| 30.0 * v + 7.0)
        .collect();
    check_all_rows(&x, &[7, 11, 13], 37.0, "7x11x13 scaled");
}

#[test]
fn row_reductions_on_a_row_of_a_million_columns() {
    let c = 1_000_003;
    let x = rand_vec(2 * c, 9);
    check_all_rows(&x, &[2, c], 1.0, "2x1000003");
}

#[test]
fn row_reductions_on_rows_longer_than_a_loop_limit() {
    // 16,800,001 columns: each of a row's 256 invocations walked 65,626 of them in one dispatch
    // and llvmpipe stopped it at 65,535 loop iterations (a sum of -45.04 for 2362.75, argmax
    // 9745280 for 9696100). Rows are now walked in windows of 2^23 columns. The largest value
    // twice, in the second and the third window (the lower index wins), the smallest at the end.
    let c = 16_800_001;
    let mut x = rand_vec(c, 13);
    x[9_000_000] = 2.0;
    x[16_000_000] = 2.0;
    x[c - 1] = -2.0;
    check_all_rows(&x, &[c], 1.0, "1x16800001");
}

#[test]
fn row_reductions_over_65535_rows() {
    let (r, c) = (70_001, 3);
    let x = rand_vec(r * c, 11);
    check_all_rows(&x, &[r, c], 1.0, "70001x3");
    let x = rand_vec(r, 12);
    check_all_rows(&x, &[r, 1], 1.0, "70001x1");
}

#[test]
fn argmax_argmin_ties_go_to_the_lower_index() {
    let c = 1000;
    let mut rows: Vec<Vec<f32>> = Vec::new();
    let mut want_max = Vec::new();
    let mut want_min = Vec::new();
    // All equal: index 0.
    rows.push(vec![0.25; c]);
    want_max.push(0);
    want_min.push(0);
    // Repeated extremes in different invocations, the lowest index in a higher invocation
    // (255 is invocation 255; 256 and 600 are invocations 0 and 88).
    let mut r = rand_vec(c, 3);
    for i in [600, 256, 255, 999] {
        r[i] = 5.0;
    }
    for i in [700, 511, 300, 998] {
        r[i] = -5.0;
    }
    rows.push(r);
    want_max.push(255);
    want_min.push(300);
    // Extremes tied with index 0.
    let mut r = rand_vec(c, 4);
    r[0] = 7.0;
    r[1] = -7.0;
    r[256] = 7.0;
    r[257] = -7.0;
    r[512] = -7.0;
    rows.push(r);
    want_max.push(0);
    want_min.push(1);
    // Many ties across the row: every multiple of 37 holds the max, every 41st the min.
    let mut r = rand_vec(c, 5);
    for i in (37..c).step_by(37) {
        r[i] = 2.0;
    }
    for i in (41..c).step_by(41) {
        r[i] = -2.0;
    }
    rows.push(r);
    want_max.push(37);
    want_min.push(41);
    // Large magnitudes and ties.
    let mut r: Vec<f32> = rand_vec(c, 6).iter().map(|v| v * 1000.0).collect();
    r[900] = 1000.0;
    r[400] = 1000.0;
    r[901] = -1000.0;
    r[401] = -1000.0;
    rows.push(r);
    want_max.push(400);
    want_min.push(401);

    let x: Vec<f32> = rows.concat();
    let n = rows.len();
    assert_eq!(argmax_rows_cpu(&x, c), want_max, "the CPU reference itself");
    assert_eq!(argmin_rows_cpu(&x, c), want_min, "the CPU reference itself");
    let t = upload(&x, &[n, c]);
    assert_eq!(argmax_rows(&t).unwrap().to_u32().unwrap(), want_max);
    assert_eq!(argmin_rows(&t).unwrap().to_u32().unwrap(), want_min);

    // Ties in a row of a million columns, and in short rows.
    let big = 1_000_003;
    let mut x = rand_vec(big, 8);
    for i in [999_999, 500_001, 700_000] {
        x[i] = 3.0;
    }
    for i in [1_000_002, 123_457, 123_456 + 256] {
        x[i] = -3.0;
    }
    let t = upload(&x, &[1, big]);
    assert_eq!(argmax_rows(&t).unwrap().to_u32().unwrap(), vec![500_001]);
    assert_eq!(argmin_rows(&t).unwrap().to_u32().unwrap(), vec![123_457]);
    let x = [1.0, 1.0, 0.0, 0.0, 2.0, 2.0, -1.0, 3.0, -1.0];
    let t = upload(&x, &[3, 3]);
    assert_eq!(argmax_rows(&t).unwrap().to_u32().unwrap(), vec![0, 1, 1]);
    assert_eq!(argmin_rows(&t).unwrap().to_u32().unwrap(), vec![2, 0, 0]);
}

#[test]
fn logsumexp_of_large_magnitudes_is_finite() {
    let c = 301;
    let mut x: Vec<f32> = rand_vec(4 * c, 21).iter().map(|v| v * 1000.0).collect();
    // All +1000, all −1000, one +1000 among −1000s.
    x[..c].fill(1000.0);
    x[c..2 * c].fill(-1000.0);
    x[2 * c..3 * c].fill(-1000.0);
    x[2 * c + 150] = 1000.0;
    let t = upload(&x, &[4, c]);
    let got = reduce_rows(&t, RowReduce::LogSumExp)
        .unwrap()
        .to_vec()
        .unwrap();
    let want = reduce_rows_cpu(&x, c, RowReduce::LogSumExp);
    assert!(got.iter().all(|v| v.is_finite()), "{got:?}");
    assert_close(&got, &want, 0.0, 1e-6, "logsumexp ±1000");
    assert!((got[0] - (1000.0 + (c as f32).ln())).abs() < 1e-3);
    assert!((got[2] - 1000.0).abs() < 1e-3);
}

#[test]
fn output_shapes_and_into_variants() {
    let x = rand_vec(2 * 3 * 4, 1);
    let t = upload(&x, &[2, 3, 4]);
    assert_eq!(reduce_rows(&t, RowReduce::Sum).unwrap().shape(), &[2, 3]);
    assert_eq!(argmax_rows(&t).unwrap().shape(), &[2, 3]);
    assert_eq!(sum_cols(&t).unwrap().shape(), &[4]);
    assert_eq!(sum_all(&t).unwrap().shape(), &[1]);
    let v = upload(&x[..5], &[5]);
    assert_eq!(reduce_rows(&v, RowReduce::Max).unwrap().shape(), &[1]);

    let g = gpu();
    let out = Tensor::zeros(&g, &[6]).unwrap();
    reduce_rows_into(&t, RowReduce::Mean, &out).unwrap();
    assert_close(
        &out.to_vec().unwrap(),
        &reduce_rows_cpu(&x, 4, RowReduce::Mean),
        1e-6,
        1e-6,
        "mean into",
    );
    let idx = Tensor::from_u32(&g, &[9; 6], &[6]).unwrap();
    argmin_rows_into(&t, &idx).unwrap();
    assert_eq!(idx.to_u32().unwrap(), argmin_rows_cpu(&x, 4));
    argmax_rows_into(&t, &idx).unwrap();
    assert_eq!(idx.to_u32().unwrap(), argmax_rows_cpu(&x, 4));
    let cs = Tensor::zeros(&g, &[4]).unwrap();
    sum_cols_into(&t, &cs).unwrap();
    assert_close(
        &cs.to_vec().unwrap(),
        &sum_cols_cpu(&x, 4),
        1e-6,
        1e-6,
        "cols into",
    );
    let s = Tensor::zeros(&g, &[1]).unwrap();
    sum_all_into(&t, &s).unwrap();
    assert_close(
        &s.to_vec().unwrap(),
        &[sum_all_cpu(&x)],
        1e-5,
        1e-6,
        "all into",
    );
}

#[test]
fn bad_arguments_are_errors_not_panics() {
    let g = gpu();
    let t = upload(&rand_vec(12, 1), &[3, 4]);
    let wrong = Tensor::zeros(&g, &[4]).unwrap();
    assert!(reduce_rows_into(&t, RowReduce::Sum, &wrong).is_err());
    let f = Tensor::zeros(&g, &[3]).unwrap();
    assert!(argmax_rows_into(&t, &f).is_err(), "f32 output of argmax");
    assert!(sum_cols_into(&t, &f).is_err());
    assert!(sum_all_into(&t, &f).is_err());
    let u = Tensor::from_u32(&g, &[1, 2, 3], &[3]).unwrap();
    assert!(
        reduce_rows_into(&t, RowReduce::Sum, &u).is_err(),
        "u32 output"
    );
    assert!(reduce_rows(&u, RowReduce::Sum).is_err(), "u32 input");
    assert!(sum_all(&u).is_err());
    let one = upload(&[1.0], &[1, 1]);
    assert!(sum_all_into(&one, &one).is_err(), "aliasing");
    let col = upload(&[1.0, 2.0, 3.0], &[3, 1]);
    assert!(
        reduce_rows_into(&col, RowReduce::Sum, &col).is_err(),
        "aliasing"
    );
    assert!(
        sum_cols_into(&one, &one.reshape(&[1]).unwrap()).is_err(),
        "aliasing"
    );
    let empty = Tensor::zeros(&g, &[3, 0]).unwrap();
    assert!(reduce_rows(&empty, RowReduce::Max).is_err());
    assert!(argmin_rows(&empty).is_err());
    // Empty sums are zero.
    let none = Tensor::zeros(&g, &[0, 5]).unwrap();
    assert_eq!(sum_cols(&none).unwrap().to_vec().unwrap(), vec![0.0; 5]);
    assert_eq!(sum_all(&none).unwrap().to_vec().unwrap(), vec![0.0]);
    assert!(g.sync().is_ok(), "no GPU validation error");
}

#[test]
fn column_sums_match_cpu() {
    for (seed, shape) in [
        vec![1, 1],
        vec![37, 61],
        vec![3, 257],
        vec![257, 3],
        vec![256, 65],
        vec![513, 64],
        vec![7, 11, 13],
        vec![65_537, 2],
        vec![70_001, 3],
        vec![1_000_003, 1],
        vec![1, 1_000_003],
    ]
    .into_iter()
    .enumerate()
    {
        let n: usize = shape.iter().product();
        let cols = *shape.last().unwrap();
        let rows = n / cols;
        let x = rand_vec(n, 300 + seed as u64);
        let got = sum_cols(&upload(&x, &shape)).unwrap().to_vec().unwrap();
        let want = sum_cols_cpu(&x, cols);
        let atol = 1e-5 * (rows as f32).sqrt();
        assert_close(&got, &want, atol, 1e-5, &format!("sum_cols {shape:?}"));
    }
}

#[test]
fn full_sums_match_cpu() {
    for (seed, n) in [
        1,
        2,
        255,
        257,
        37 * 61,
        4096,
        4097,
        4096 * 4096 + 1,
        70_001 * 3,
        1_000_003,
    ]
    .into_iter()
    .enumerate()
    {
        let x = rand_vec(n, 500 + seed as u64);
        let got = sum_all(&upload(&x, &[n])).unwrap().to_vec().unwrap();
        let want = sum_all_cpu(&x);
        let tl = 1e-5 * (want.abs() + (n as f32).sqrt());
        assert!(
            (got[0] - want).abs() <= tl,
            "sum_all of {n}: got {}, want {want} (tol {tl})",
            got[0]
        );
    }
    // Shape does not matter, only the elements.
    let x = rand_vec(37 * 61 * 29, 7);
    let got = sum_all(&upload(&x, &[37, 61, 29]))
        .unwrap()
        .to_vec()
        .unwrap()[0];
    let want = sum_all_cpu(&x);
    assert!(
        (got - want).abs() <= 1e-5 * (want.abs() + 255.0),
        "{got} vs {want}"
    );
}

#[test]
fn sums_are_bit_identical_run_after_run() {
    let x = rand_vec(1_000_003, 77);
    let t = upload(&x, &[1_000_003]);
    let a = sum_all(&t).unwrap().to_vec().unwrap();
    let b = sum_all(&t).unwrap().to_vec().unwrap();
    assert_eq!(a[0].to_bits(), b[0].to_bits(), "sum_all");
    let t2 = upload(&x[..70_001 * 13], &[70_001, 13]);
    let a = sum_cols(&t2).unwrap().to_vec().unwrap();
    let b = sum_cols(&t2).unwrap().to_vec().unwrap();
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&b), "sum_cols");
    let a = reduce_rows(&t2, RowReduce::Sum).unwrap().to_vec().unwrap();
    let b = reduce_rows(&t2, RowReduce::Sum).unwrap().to_vec().unwrap();
    assert_eq!(bits(&a), bits(&b), "reduce_rows");
}

#[test]
fn inputs_above_the_binding_limit_are_chunked() {
    // 131,073 × 257 f32 is 134,743,044 bytes: above the 128 MiB storage binding limit.
    let (r, c) = (131_073, 257);
    let g = gpu();
    assert!(
        g.row_chunks(r, &[c as u64 * 4, 4]).unwrap().len() > 1,
        "the shape must need more than one chunk"
    );
    let x = rand_vec(r * c, 99);
    let t = upload(&x, &[r, c]);
    for op in [RowReduce::Sum, RowReduce::Max] {
        let got = reduce_rows(&t, op).unwrap().to_vec().unwrap();
        let want = reduce_rows_cpu(&x, c, op);
        for (i, (gv, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (gv - w).abs() <= tol(op, *w, c, 1.0),
                "{op:?} row {i}: {gv} vs {w}"
            );
        }
    }
    assert_eq!(
        argmax_rows(&t).unwrap().to_u32().unwrap(),
        argmax_rows_cpu(&x, c)
    );
    let got = sum_cols(&t).unwrap().to_vec().unwrap();
    assert_close(
        &got,
        &sum_cols_cpu(&x, c),
        1e-5 * (r as f32).sqrt(),
        1e-5,
        "sum_cols big",
    );
    let got = sum_all(&t).unwrap().to_vec().unwrap()[0];
    let want = sum_all_cpu(&x);
    let tl = 1e-5 * (want.abs() + ((r * c) as f32).sqrt());
    assert!((got - want).abs() <= tl, "sum_all big: {got} vs {want}");
}
