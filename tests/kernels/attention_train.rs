//! The trainable attention's kernels against their CPU references (head split and merge, the
//! masked scaled softmax) at awkward shapes, many workgroups and long rows, and the composite
//! `Graph::attention` against an f64 attention written here.
use crate::common;
use common::*;
use semid::autograd::{AttnMask, Graph};
use semid::kernels::attention_train::*;
use semid::{Error, Tensor};

fn u32s(v: &[u32]) -> Tensor {
    Tensor::from_u32(&gpu(), v, &[v.len()]).unwrap()
}

fn check_split_merge(dims: [usize; 4], seed: u64) {
    let [b, s, h, d] = dims;
    let x = rand_vec(b * s * h * d, seed);
    let t = upload(&x, &[b, s, h * d]);
    let split = split_heads(&t, h).unwrap();
    assert_eq!(split.shape(), &[b * h, s, d], "{dims:?}: split shape");
    let want = split_heads_cpu(&x, dims);
    assert_eq!(split.to_vec().unwrap(), want, "{dims:?}: split");
    let merged = merge_heads(&split, h).unwrap();
    assert_eq!(merged.shape(), &[b, s, h * d], "{dims:?}: merge shape");
    let back = merged.to_vec().unwrap();
    assert_eq!(back, merge_heads_cpu(&want, dims), "{dims:?}: merge");
    assert_eq!(back, x, "{dims:?}: merge(split(x)) = x");
}

#[test]
fn split_and_merge_heads_match_cpu_and_invert_each_other() {
    for (i, dims) in [
        [1, 1, 1, 1],
        [3, 7, 3, 5],
        [2, 13, 1, 9],
        [5, 3, 4, 1],
        [1, 257, 2, 3],
    ]
    .into_iter()
    .enumerate()
    {
        check_split_merge(dims, 10 + i as u64);
    }
}

#[test]
fn split_and_merge_heads_over_more_than_65535_workgroups() {
    // 16.8M elements: 65,580 workgroups of 256.
    check_split_merge([3, 1399, 4, 1000], 20);
}

#[test]
fn split_heads_cpu_puts_head_h_of_token_s_in_row_b_h_s() {
    // x[b, s, h*D + d] = 1000 b + 100 s + 10 h + d, B = 2, S = 3, H = 2, D = 2.
    let mut x = Vec::new();
    for b in 0..2 {
        for s in 0..3 {
            for h in 0..2 {
                for d in 0..2 {
                    x.push((1000 * b + 100 * s + 10 * h + d) as f32);
                }
            }
        }
    }
    let y = split_heads_cpu(&x, [2, 3, 2, 2]);
    // Row (b=1, h=1, s=2) is row 1*2*3 + 1*3 + 2 = 11.
    assert_eq!(&y[22..24], &[1210.0, 1211.0]);
    assert_eq!(&y[0..6], &[0.0, 1.0, 100.0, 101.0, 200.0, 201.0]);
}

/// One masked-softmax case: scores `[b*h, sq, sk]`, the mask, and what comes out.
fn check_softmax(
    dims: [usize; 4],
    scale: f32,
    q: Option<&[u32]>,
    k: Option<&[u32]>,
    causal: bool,
    seed: u64,
) -> Vec<f32> {
    let [b, h, sq, sk] = dims;
    let x: Vec<f32> = rand_vec(b * h * sq * sk, seed)
        .iter()
        .map(|v| 3.0 * v)
        .collect();
    let (qt, kt) = (q.map(u32s), k.map(u32s));
    let mask = AttnMask {
        q_lens: qt.as_ref(),
        k_lens: kt.as_ref(),
        causal,
    };
    let got = masked_softmax(&upload(&x, &[b * h, sq, sk]), h, scale, &mask)
        .unwrap()
        .to_vec()
        .unwrap();
    let want = masked_softmax_cpu(&x, dims, scale, q, k, causal);
    let what = format!("{dims:?} scale {scale} q {q:?} k {k:?} causal {causal}");
    assert!(got.iter().all(|v| v.is_finite()), "{what}: not finite");
    assert_close(&got, &want, 1e-7, 2e-5, &what);
    // Every row sums to 1 or is all zeros; masked entries are exactly zero.
    for (r, (row, wrow)) in got.chunks(sk).zip(want.chunks(sk)).enumerate() {
        let s: f64 = row.iter().map(|&v| v as f64).sum();
        let ws: f64 = wrow.iter().map(|&v| v as f64).sum();
        assert!(
            (s - ws).abs() < 1e-4,
            "{what}: row {r} sums to {s}, want {ws}"
        );
        for (j, (&g, &w)) in row.iter().zip(wrow).enumerate() {
            if w == 0.0 {
                assert_eq!(g, 0.0, "{what}: row {r} key {j} is masked");
            }
        }
    }
    got
}

#[test]
fn masked_softmax_matches_cpu_causal_and_padded() {
    check_softmax([1, 1, 1, 1], 1.0, None, None, false, 1);
    check_softmax([1, 1, 1, 1], 1.0, None, None, true, 2);
    check_softmax([3, 3, 7, 5], 0.5, None, None, false, 3);
    check_softmax([3, 3, 7, 7], 0.37, None, None, true, 4);
    // Lengths 0, in range and past the sequence.
    let q = [0, 4, 9];
    let k = [3, 0, 11];
    check_softmax([3, 3, 7, 7], 1.3, Some(&q), Some(&k), true, 5);
    check_softmax([3, 2, 7, 5], 1.3, Some(&q), Some(&k), false, 6);
    check_softmax([3, 2, 7, 300], -0.7, None, Some(&[299, 1, 257]), false, 7);
    check_softmax([3, 1, 513, 300], 1.0, Some(&[500, 2, 513]), None, true, 8);
}

#[test]
fn masked_rows_come_out_as_zeros() {
    // Sequence 0 has no keys, sequence 1 no queries, sequence 2 both; a causal query 0 with
    // a key length 0 has nothing either. Never NaN.
    let (sq, sk) = (4, 6);
    let got = check_softmax(
        [3, 2, sq, sk],
        1.0,
        Some(&[4, 0, 2]),
        Some(&[0, 6, 3]),
        true,
        9,
    );
    let per_seq = 2 * sq * sk;
    assert!(got[..2 * per_seq].iter().all(|&v| v == 0.0), "b 0 and b 1");
    let b2 = &got[2 * per_seq..];
    // Query 0 of sequence 2: causal, key 0 only.
    assert_eq!(&b2[..sk], &[1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    // Queries 2 and 3 are padding.
    assert!(b2[2 * sk..sq * sk].iter().all(|&v| v == 0.0));
}

#[test]
fn masked_softmax_over_more_than_65535_workgroups_of_rows() {
    // 65,538 rows, one workgroup each.
    check_softmax(
        [2, 3, 10_923, 5],
        0.9,
        Some(&[10_000, 10_923]),
        Some(&[4, 2]),
        true,
        11,
    );
}

#[test]
fn masked_softmax_on_rows_past_the_loop_budget() {
    // Past LOOP_BUDGET keys in one window, and past 2^22 keys, where the row is walked over
    // windows of columns with the running (max, sum) carried between dispatches; the k length
    // ends inside the second window.
    check_softmax([1, 1, 1, 70_001], 1.0, None, None, false, 12);
    check_softmax([1, 1, 1, 70_001], 2.0, None, Some(&[69_999]), true, 13);
    // Sequence 1's keys end inside the first window: its second window holds none.
    let k = [4_400_000, 100];
    check_softmax([2, 1, 1, 4_500_001], 1.0, None, Some(&k), false, 14);
}

#[test]
fn bad_arguments_are_shape_errors() {
    let g = gpu();
    let x = upload(&rand_vec(24, 1), &[2, 3, 4]);
    let is_shape = |r: semid::Result<Tensor>, what: &str| {
        assert!(matches!(r, Err(Error::Shape { .. })), "{what}: {r:?}");
    };
    is_shape(split_heads(&x, 3), "heads not dividing the width");
    is_shape(split_heads(&x, 0), "zero heads");
    is_shape(merge_heads(&x, 4), "heads not dividing B*H");
    is_shape(split_heads(&x.reshape(&[6, 4]).unwrap(), 2), "rank 2");
    let none = AttnMask::default();
    is_shape(masked_softmax(&x, 4, 1.0, &none), "heads not dividing B*H");
    let f = Tensor::from_slice(&g, &[1.0, 2.0], &[2]).unwrap();
    let m = AttnMask {
        k_lens: Some(&f),
        ..none
    };
    is_shape(masked_softmax(&x, 1, 1.0, &m), "f32 lengths");
    let l3 = u32s(&[1, 2, 3]);
    let m = AttnMask {
        q_lens: Some(&l3),
        ..none
    };
    is_shape(
        masked_softmax(&x, 1, 1.0, &m),
        "three lengths for two sequences",
    );
}

// ---------------------------------------------------------------------------------------------
// The composite against an f64 attention

/// f64 multi-head attention: q `[b, sq, h*d]`, k and v `[b, sk, h*d]`.
#[allow(clippy::too_many_arguments)]
fn attention64(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    dims: [usize; 5],
    scale: f64,
    q_lens: Option<&[u32]>,
    k_lens: Option<&[u32]>,
    causal: bool,
) -> Vec<f32> {
    let [b, sq, sk, h, d] = dims;
    let w = h * d;
    let mut out = vec![0f32; b * sq * w];
    for bi in 0..b {
        let kl = k_lens.map_or(sk, |l| (l[bi] as usize).min(sk));
        let ql = q_lens.map_or(sq, |l| (l[bi] as usize).min(sq));
        for hi in 0..h {
            for i in 0..ql {
                let lim = if causal { kl.min(i + 1) } else { kl };
                if lim == 0 {
                    continue;
                }
                let qrow = &q[(bi * sq + i) * w + hi * d..][..d];
                let scores: Vec<f64> = (0..lim)
                    .map(|j| {
                        let krow = &k[(bi * sk + j) * w + hi * d..][..d];
                        scale
                            * qrow
                                .iter()
                                .zip(krow)
                                .map(|(&a, &b)| a as f64 * b as f64)
                                .sum::<f64>()
                    })
                    .collect();
                let m = scores.iter().fold(f64::NEG_INFINITY, |m, &s| m.max(s));
                let e: Vec<f64> = scores.iter().map(|&s| (s - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for c in 0..d {
                    let o: f64 = (0..lim)
                        .map(|j| e[j] / z * v[(bi * sk + j) * w + hi * d + c] as f64)
                        .sum();
                    out[(bi * sq + i) * w + hi * d + c] = o as f32;
                }
            }
        }
    }
    out
}

struct Case {
    dims: [usize; 5],
    q_lens: Option<Vec<u32>>,
    k_lens: Option<Vec<u32>>,
    causal: bool,
    scale: Option<f32>,
    self_attn: bool,
}

fn check_attention(c: &Case, seed: u64) {
    let [b, sq, sk, h, d] = c.dims;
    let w = h * d;
    let q = rand_vec(b * sq * w, seed);
    let (k, v) = if c.self_attn {
        (q.clone(), q.clone())
    } else {
        (
            rand_vec(b * sk * w, seed + 1),
            rand_vec(b * sk * w, seed + 2),
        )
    };
    let g = Graph::new(&gpu());
    let qv = g.input(&upload(&q, &[b, sq, w]));
    let (kv, vv) = if c.self_attn {
        (qv.clone(), qv.clone())
    } else {
        (
            g.input(&upload(&k, &[b, sk, w])),
            g.input(&upload(&v, &[b, sk, w])),
        )
    };
    let (qt, kt) = (c.q_lens.as_deref().map(u32s), c.k_lens.as_deref().map(u32s));
    let mask = AttnMask {
        q_lens: qt.as_ref(),
        k_lens: kt.as_ref(),
        causal: c.causal,
    };
    let y = g.attention(&qv, &kv, &vv, h, c.scale, &mask).unwrap();
    assert_eq!(y.shape(), &[b, sq, w]);
    let scale = c.scale.map_or(1.0 / (d as f64).sqrt(), |s| s as f64);
    let want = attention64(
        &q,
        &k,
        &v,
        c.dims,
        scale,
        c.q_lens.as_deref(),
        c.k_lens.as_deref(),
        c.causal,
    );
    let got = y.value().to_vec().unwrap();
    assert_close(&got, &want, 2e-5, 1e-4, &format!("attention {:?}", c.dims));
}

#[test]
fn attention_matches_an_f64_reference() {
    let cases = [
        // Self-attention, causal with padding, H = 1 and H = 3.
        Case {
            dims: [3, 7, 7, 1, 5],
            q_lens: Some(vec![7, 0, 4]),
            k_lens: Some(vec![7, 0, 4]),
            causal: true,
            scale: None,
            self_attn: true,
        },
        Case {
            dims: [3, 7, 7, 3, 5],
            q_lens: Some(vec![5, 9, 1]),
            k_lens: Some(vec![5, 9, 1]),
            causal: true,
            scale: None,
            self_attn: true,
        },
        // Cross-attention, Sq != Sk, key padding, a given scale.
        Case {
            dims: [2, 5, 11, 3, 3],
            q_lens: None,
            k_lens: Some(vec![11, 6]),
            causal: false,
            scale: Some(0.8),
            self_attn: false,
        },
        Case {
            dims: [1, 13, 3, 1, 17],
            q_lens: None,
            k_lens: None,
            causal: false,
            scale: None,
            self_attn: false,
        },
        Case {
            dims: [1, 1, 1, 1, 1],
            q_lens: None,
            k_lens: None,
            causal: true,
            scale: None,
            self_attn: false,
        },
    ];
    for (i, c) in cases.iter().enumerate() {
        check_attention(c, 100 + 10 * i as u64);
    }
}

#[test]
fn attention_shape_errors() {
    let g = Graph::new(&gpu());
    let q = g.input(&upload(&rand_vec(2 * 3 * 6, 1), &[2, 3, 6]));
    let k1 = g.input(&upload(&rand_vec(3 * 4 * 6, 2), &[3, 4, 6]));
    let k2 = g.input(&upload(&rand_vec(2 * 4 * 4, 3), &[2, 4, 4]));
    let k = g.input(&upload(&rand_vec(2 * 4 * 6, 4), &[2, 4, 6]));
    let v2 = g.input(&upload(&rand_vec(2 * 5 * 6, 5), &[2, 5, 6]));
    let none = AttnMask::default();
    let is_shape = |r: semid::Result<semid::autograd::Var>, what: &str| {
        assert!(matches!(r, Err(Error::Shape { .. })), "{what}: {r:?}");
    };
    is_shape(g.attention(&q, &k1, &k1, 2, None, &none), "batch mismatch");
    is_shape(g.attention(&q, &k2, &k2, 2, None, &none), "width mismatch");
    is_shape(g.attention(&q, &k, &v2, 2, None, &none), "v not k's shape");
    is_shape(
        g.attention(&q, &k, &k, 4, None, &none),
        "heads not dividing 6",
    );
    is_shape(g.attention(&q, &k, &k, 0, None, &none), "zero heads");
    let bad = u32s(&[1, 2, 3]);
    let m = AttnMask {
        k_lens: Some(&bad),
        ..none
    };
    is_shape(
        g.attention(&q, &k, &k, 2, None, &m),
        "k_lens of the wrong length",
    );
    assert!(g.attention(&q, &k, &k, 3, None, &none).is_ok());
}
