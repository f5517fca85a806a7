//! Elementwise kernels against CPU references at awkward shapes.
use crate::common;
use common::*;
use semid::kernels::elementwise::{binary, select, unary, Binary, Unary};

const SHAPES: &[(usize, usize)] = &[(1, 1), (37, 61), (3, 257), (129, 1)];

fn unary_ops() -> Vec<Unary> {
    vec![
        Unary::Copy,
        Unary::Relu,
        Unary::Gelu,
        Unary::GeluTanh,
        Unary::Sigmoid,
        Unary::Tanh,
        Unary::Exp,
        Unary::Square,
        Unary::Scale {
            alpha: 2.5,
            beta: -0.5,
        },
        Unary::Clamp {
            min: -0.25,
            max: 0.5,
        },
        Unary::Neg,
        Unary::Abs,
    ]
}

#[test]
fn unary_matches_cpu() {
    for &(r, c) in SHAPES {
        let x: Vec<f32> = rand_vec(r * c, 7).iter().map(|v| v * 6.0).collect();
        let t = upload(&x, &[r, c]);
        for op in unary_ops() {
            let got = unary(&t, op).unwrap().to_vec().unwrap();
            let want: Vec<f32> = x.iter().map(|&v| op.cpu(v)).collect();
            assert_close(&got, &want, 1e-5, 1e-5, &format!("{op:?} {r}x{c}"));
        }
        // Positive-domain ops.
        let pos: Vec<f32> = x.iter().map(|v| v.abs() + 0.01).collect();
        let tp = upload(&pos, &[r, c]);
        for op in [Unary::Log, Unary::Sqrt, Unary::Recip] {
            let got = unary(&tp, op).unwrap().to_vec().unwrap();
            let want: Vec<f32> = pos.iter().map(|&v| op.cpu(v)).collect();
            assert_close(&got, &want, 1e-5, 1e-5, &format!("{op:?} {r}x{c}"));
        }
    }
}

#[test]
fn binary_broadcasts() {
    let ops = [
        Binary::Add,
        Binary::Sub,
        Binary::Mul,
        Binary::Div,
        Binary::Max,
        Binary::Min,
        Binary::Axpby {
            alpha: 0.5,
            beta: -2.0,
        },
    ];
    for &(r, c) in SHAPES {
        let a = rand_vec(r * c, 1);
        let ta = upload(&a, &[r, c]);
        // Full, row vector, column vector, scalar.
        for (br, bc) in [(r, c), (1, c), (r, 1), (1, 1)] {
            let b: Vec<f32> = rand_vec(br * bc, 2).iter().map(|v| v + 2.0).collect();
            let tb = upload(&b, &[br, bc]);
            for op in ops {
                let want: Vec<f32> = (0..r * c)
                    .map(|i| {
                        let (i_r, i_c) = (i / c, i % c);
                        let bv =
                            b[(if br == 1 { 0 } else { i_r }) * bc + if bc == 1 { 0 } else { i_c }];
                        op.cpu(a[i], bv)
                    })
                    .collect();
                let got = binary(&ta, &tb, op).unwrap().to_vec().unwrap();
                assert_close(
                    &got,
                    &want,
                    1e-6,
                    1e-6,
                    &format!("{op:?} {r}x{c} by {br}x{bc}"),
                );
                // The broadcast operand on the left.
                let want_l: Vec<f32> = (0..r * c)
                    .map(|i| {
                        let (i_r, i_c) = (i / c, i % c);
                        let bv =
                            b[(if br == 1 { 0 } else { i_r }) * bc + if bc == 1 { 0 } else { i_c }];
                        op.cpu(bv, a[i])
                    })
                    .collect();
                let got_l = binary(&tb, &ta, op).unwrap().to_vec().unwrap();
                assert_close(
                    &got_l,
                    &want_l,
                    1e-6,
                    1e-6,
                    &format!("{op:?} left {br}x{bc}"),
                );
            }
        }
    }
}

#[test]
fn binary_rejects_bad_broadcast() {
    let a = upload(&[0.0; 6], &[2, 3]);
    let b = upload(&[0.0; 4], &[2, 2]);
    let err = binary(&a, &b, Binary::Add).unwrap_err().to_string();
    assert!(err.contains("does not broadcast"), "{err}");
}

#[test]
fn select_picks() {
    let n = 1001;
    let a = rand_vec(n, 3);
    let b = rand_vec(n, 4);
    let c: Vec<f32> = (0..n).map(|i| (i % 3 == 0) as u32 as f32).collect();
    let got = select(&upload(&c, &[n]), &upload(&a, &[n]), &upload(&b, &[n]))
        .unwrap()
        .to_vec()
        .unwrap();
    let want: Vec<f32> = (0..n)
        .map(|i| if c[i] != 0.0 { a[i] } else { b[i] })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn more_than_65535_workgroups() {
    // 65,536 · 256 + 17 elements need 65,537 workgroups: the dispatch folds into two dimensions.
    let n = 65_536 * 256 + 17;
    let x = rand_vec(n, 9);
    let t = upload(&x, &[n]);
    let got = unary(
        &t,
        Unary::Scale {
            alpha: 3.0,
            beta: 1.0,
        },
    )
    .unwrap()
    .to_vec()
    .unwrap();
    for i in [0, 1, 255, 256, n / 2, n - 18, n - 1] {
        assert_eq!(got[i], 3.0 * x[i] + 1.0, "element {i}");
    }
    let want: Vec<f32> = x.iter().map(|v| 3.0 * v + 1.0).collect();
    assert_eq!(got, want);
    let b = upload(&x[..n], &[n]);
    let s = binary(&t, &b, Binary::Add).unwrap().to_vec().unwrap();
    assert_eq!(s[n - 1], x[n - 1] * 2.0);
}
