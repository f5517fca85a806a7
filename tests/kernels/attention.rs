//! Fused multi-head attention (and the fused residual add + layernorm) against the plain-Rust reference: awkward shapes, padding masks,
//! lengths that are not multiples of the key tile, fully masked sequences, packed QKV, more than
//! 65,535 workgroups and a packed QKV tensor above the 128 MiB storage-binding limit.
use crate::common;
use common::*;
use semid::kernels::attention::{
    add_layernorm, add_layernorm_cpu, attention, attention_cpu, attention_packed, AttentionOpts,
    AttentionShape, MAX_HEAD_DIM,
};
use semid::{Error, Tensor};

fn lens_tensor(lens: &[u32]) -> Tensor {
    Tensor::from_u32(&gpu(), lens, &[lens.len()]).unwrap()
}

/// Runs the kernel on random Q, K, V (values scaled by `amp`) and compares with the reference.
fn check(batch: usize, seq: usize, heads: usize, dh: usize, lens: &[u32], amp: f32, seed: u64) {
    let shape = AttentionShape {
        batch,
        seq,
        heads,
        head_dim: dh,
    };
    let n = batch * seq * heads * dh;
    let scaled = |s| -> Vec<f32> { rand_vec(n, s).into_iter().map(|v| v * amp).collect() };
    let (q, k, v) = (scaled(seed), scaled(seed + 1), rand_vec(n, seed + 2));
    let dims = [batch, seq, heads * dh];
    let got = attention(
        &upload(&q, &dims),
        &upload(&k, &dims),
        &upload(&v, &dims),
        &lens_tensor(lens),
        &AttentionOpts::new(heads),
    )
    .unwrap()
    .to_vec()
    .unwrap();
    let want = attention_cpu(&q, &k, &v, lens, shape, None);
    let what = format!("attention b{batch} s{seq} h{heads} d{dh} lens {lens:?}");
    assert!(
        got.iter().all(|x| x.is_finite()),
        "{what}: non-finite output"
    );
    assert_close(&got, &want, 2e-5, 2e-4, &what);
    // Padding rows are exact zeros.
    for b in 0..batch {
        let len = (lens[b] as usize).min(seq);
        let pad = &got[(b * seq + len) * heads * dh..(b + 1) * seq * heads * dh];
        assert!(pad.iter().all(|&x| x == 0.0), "{what}: padding rows of {b}");
    }
}

#[test]
fn one_by_one() {
    check(1, 1, 1, 1, &[1], 1.0, 1);
}

#[test]
fn single_token_sequences() {
    check(3, 1, 4, 8, &[1, 0, 1], 1.0, 2);
}

#[test]
fn one_head() {
    check(2, 9, 1, 16, &[9, 4], 1.0, 3);
}

#[test]
fn lengths_off_the_tile() {
    // The kernel takes keys in tiles of 16: lengths around and past tile boundaries.
    check(7, 37, 3, 5, &[37, 17, 16, 15, 1, 33, 32], 1.0, 4);
}

#[test]
fn primes_and_odd_head_dim() {
    check(5, 29, 7, 13, &[29, 23, 2, 11, 19], 1.0, 5);
}

#[test]
fn bert_shape() {
    // MiniLM: 12 heads of 64, title-length sequences.
    check(4, 21, 12, 64, &[21, 7, 13, 18], 1.0, 6);
}

#[test]
fn largest_head_dim() {
    check(2, 19, 2, MAX_HEAD_DIM, &[19, 10], 1.0, 7);
}

#[test]
fn lengths_above_seq_are_clamped() {
    check(3, 6, 2, 4, &[6, 100, u32::MAX], 1.0, 8);
}

#[test]
fn large_scores_stay_finite() {
    // Scores of the order of ±1000: a naive exp overflows, the online softmax must not.
    check(2, 40, 2, 32, &[40, 27], 12.0, 9);
}

#[test]
fn sequences_longer_than_a_loop_limit() {
    // Every query walks all keys, twice over the head per key: 600 keys of head_dim 63 (the
    // scalar kernel) and 1,100 keys of head_dim 128 (the vec4 kernel) ran 78,000 and 75,000
    // loop steps per invocation in one dispatch, and every output was wrong. Keys now come in
    // ranges that continue the running softmax. Lengths end inside, at and before ranges.
    check(4, 600, 2, 63, &[600, 250, 240, 0], 1.0, 60);
    check(2, 1_100, 1, 128, &[1_100, 470], 1.0, 61);
    check_packed(2, 500, 3, 61, &[500, 333], 62);
}

#[test]
fn fully_masked_sequence_gives_zeros() {
    let (batch, seq, hd) = (3, 5, 8);
    let n = batch * seq * hd;
    let dims = [batch, seq, hd];
    let q = upload(&rand_vec(n, 10), &dims);
    let out = attention(&q, &q, &q, &lens_tensor(&[0, 0, 0]), &AttentionOpts::new(2))
        .unwrap()
        .to_vec()
        .unwrap();
    assert!(out.iter().all(|&x| x == 0.0), "all-masked output: {out:?}");
    // Mixed: the masked sequence is zero, the others are not.
    let lens = [3u32, 0, 5];
    let out = attention(&q, &q, &q, &lens_tensor(&lens), &AttentionOpts::new(2))
        .unwrap()
        .to_vec()
        .unwrap();
    assert!(out[seq * hd..2 * seq * hd].iter().all(|&x| x == 0.0));
    assert!(out[..seq * hd].iter().any(|&x| x != 0.0));
    let qv = rand_vec(n, 10);
    let want = attention_cpu(
        &qv,
        &qv,
        &qv,
        &lens,
        AttentionShape {
            batch,
            seq,
            heads: 2,
            head_dim: 4,
        },
        None,
    );
    assert_close(&out, &want, 2e-5, 2e-4, "mixed masks");
}

#[test]
fn custom_scale() {
    let (batch, seq, heads, dh) = (2, 11, 3, 6);
    let n = batch * seq * heads * dh;
    let (q, k, v) = (rand_vec(n, 11), rand_vec(n, 12), rand_vec(n, 13));
    let dims = [batch, seq, heads * dh];
    let lens = [11u32, 6];
    let got = attention(
        &upload(&q, &dims),
        &upload(&k, &dims),
        &upload(&v, &dims),
        &lens_tensor(&lens),
        &AttentionOpts::new(heads).scale(2.5),
    )
    .unwrap()
    .to_vec()
    .unwrap();
    let shape = AttentionShape {
        batch,
        seq,
        heads,
        head_dim: dh,
    };
    let want = attention_cpu(&q, &k, &v, &lens, shape, Some(2.5));
    assert_close(&got, &want, 2e-5, 2e-4, "scale 2.5");
    let default = attention_cpu(&q, &k, &v, &lens, shape, None);
    assert!(max_rel_err(&default, &want) > 1e-3, "the scale must matter");
}

/// Interleaves Q, K, V rows into one packed `[.., 3 * hd]` buffer.
fn pack(q: &[f32], k: &[f32], v: &[f32], hd: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(q.len() * 3);
    for ((qr, kr), vr) in q.chunks(hd).zip(k.chunks(hd)).zip(v.chunks(hd)) {
        out.extend_from_slice(qr);
        out.extend_from_slice(kr);
        out.extend_from_slice(vr);
    }
    out
}

fn check_packed(batch: usize, seq: usize, heads: usize, dh: usize, lens: &[u32], seed: u64) {
    let hd = heads * dh;
    let n = batch * seq * hd;
    let (q, k, v) = (
        rand_vec(n, seed),
        rand_vec(n, seed + 1),
        rand_vec(n, seed + 2),
    );
    let qkv = upload(&pack(&q, &k, &v, hd), &[batch, seq, 3 * hd]);
    let got = attention_packed(&qkv, &lens_tensor(lens), &AttentionOpts::new(heads)).unwrap();
    assert_eq!(got.shape(), &[batch, seq, hd]);
    let shape = AttentionShape {
        batch,
        seq,
        heads,
        head_dim: dh,
    };
    let want = attention_cpu(&q, &k, &v, lens, shape, None);
    let what = format!("packed b{batch} s{seq} h{heads} d{dh}");
    assert_close(&got.to_vec().unwrap(), &want, 2e-5, 2e-4, &what);
}

#[test]
fn packed_qkv_matches_reference() {
    // head_dim 10: the scalar kernel; head_dim 4 and 64: the vec4 kernel.
    check_packed(3, 23, 4, 10, &[23, 9, 17], 14);
    check_packed(3, 23, 3, 4, &[23, 0, 17], 15);
    check_packed(2, 35, 12, 64, &[35, 33], 16);
}

#[test]
fn vec4_kernel_lengths_off_the_tile() {
    // head_dim 12 (a multiple of 4, not a power of 2), lengths around the 16-key tile and past
    // the 32-row block.
    check(6, 37, 2, 12, &[37, 17, 16, 15, 33, 0], 1.0, 20);
}

#[test]
fn many_workgroups_and_a_packed_tensor_over_the_binding_limit() {
    // 1,000 sequences × 128 tokens × 96 heads of 1 = 12.3M rows = 192,000 workgroups of 64;
    // the packed QKV tensor is 147 MB, over the 128 MiB binding limit, so it is split.
    let (batch, seq, heads, dh) = (1000, 128, 96, 1);
    let hd = heads * dh;
    let n = batch * seq * hd;
    let (q, k, v) = (rand_vec(n, 17), rand_vec(n, 18), rand_vec(n, 19));
    let lens: Vec<u32> = (0..batch).map(|b| [0, 1, 2, 3, 5, 128][b % 6]).collect();
    let packed = pack(&q, &k, &v, hd);
    assert!(packed.len() * 4 > 128 << 20);
    let qkv = upload(&packed, &[batch, seq, 3 * hd]);
    drop(packed);
    let got = attention_packed(&qkv, &lens_tensor(&lens), &AttentionOpts::new(heads))
        .unwrap()
        .to_vec()
        .unwrap();
    let shape = AttentionShape {
        batch,
        seq,
        heads,
        head_dim: dh,
    };
    let want = attention_cpu(&q, &k, &v, &lens, shape, None);
    assert_close(&got, &want, 2e-5, 2e-4, "large packed");
}

#[test]
fn bad_inputs_are_errors() {
    let g = gpu();
    let t = |shape: &[usize]| Tensor::zeros(&g, shape).unwrap();
    let lens = lens_tensor(&[1, 1]);
    let q = t(&[2, 3, 8]);
    let o = AttentionOpts::new(2);
    // K of another shape.
    assert!(matches!(
        attention(&q, &t(&[2, 4, 8]), &q, &lens, &o),
        Err(Error::Shape { .. })
    ));
    // Not rank 3.
    assert!(attention(&t(&[6, 8]), &t(&[6, 8]), &t(&[6, 8]), &lens, &o).is_err());
    // Heads do not divide the width; zero heads.
    assert!(attention(&q, &q, &q, &lens, &AttentionOpts::new(3)).is_err());
    assert!(attention(&q, &q, &q, &lens, &AttentionOpts::new(0)).is_err());
    // head_dim over the maximum.
    let wide = t(&[1, 2, 2 * MAX_HEAD_DIM]);
    let l1 = lens_tensor(&[2]);
    assert!(attention(&wide, &wide, &wide, &l1, &AttentionOpts::new(1)).is_err());
    // Lengths: wrong count, wrong dtype.
    assert!(attention(&q, &q, &q, &lens_tensor(&[1, 1, 1]), &o).is_err());
    assert!(attention(&q, &q, &q, &t(&[2]), &o).is_err());
    // Packed width not a multiple of 3.
    assert!(attention_packed(&t(&[2, 3, 8]), &lens, &o).is_err());
    // Non-finite scale.
    assert!(attention(&q, &q, &q, &lens, &AttentionOpts::new(2).scale(f32::NAN)).is_err());
    // Empty batch and empty sequences are fine.
    let e = attention(
        &t(&[0, 3, 8]),
        &t(&[0, 3, 8]),
        &t(&[0, 3, 8]),
        &lens_tensor(&[]),
        &o,
    )
    .unwrap();
    assert_eq!(e.shape(), &[0, 3, 8]);
    g.sync().unwrap();
}

fn check_add_ln(rows: usize, cols: usize, eps: f32, seed: u64) {
    let a = rand_vec(rows * cols, seed);
    let b: Vec<f32> = rand_vec(rows * cols, seed + 1)
        .into_iter()
        .map(|v| v * 3.0 + 5.0)
        .collect();
    let g = rand_vec(cols, seed + 2);
    let beta = rand_vec(cols, seed + 3);
    let got = add_layernorm(
        &upload(&a, &[rows, cols]),
        &upload(&b, &[rows, cols]),
        &upload(&g, &[cols]),
        &upload(&beta, &[cols]),
        eps,
    )
    .unwrap()
    .to_vec()
    .unwrap();
    let want = add_layernorm_cpu(&a, &b, &g, &beta, eps);
    assert_close(
        &got,
        &want,
        1e-4,
        1e-4,
        &format!("add_layernorm {rows}x{cols}"),
    );
}

#[test]
fn add_layernorm_small_and_awkward() {
    check_add_ln(1, 1, 1e-5, 30);
    check_add_ln(37, 61, 1e-5, 31);
    check_add_ln(29, 384, 1e-12, 32);
    check_add_ln(65, 3, 0.0, 33);
}

#[test]
fn add_layernorm_many_workgroups_over_the_binding_limit() {
    // 4,194,305 rows: 65,536 workgroups of 64, and 134,217,760 bytes per tensor, 32 bytes over
    // the 128 MiB binding limit, so the rows are split.
    check_add_ln(65_535 * 64 + 65, 8, 1e-5, 34);
}

#[test]
fn add_layernorm_of_rows_longer_than_a_loop_limit() {
    // One invocation per row walks it three times: 25,000 columns ran 75,000 loop steps and
    // gave garbage (error 1.5); such rows now take the workgroup layernorm. 10,900 columns
    // still take the fused kernel.
    check_add_ln(3, 25_000, 1e-5, 35);
    check_add_ln(2, 10_900, 1e-5, 36);
}

#[test]
fn add_layernorm_bad_inputs_are_errors() {
    let g = gpu();
    let t = |shape: &[usize]| Tensor::zeros(&g, shape).unwrap();
    let (a, v) = (t(&[4, 6]), t(&[6]));
    assert!(add_layernorm(&a, &t(&[4, 5]), &v, &v, 1e-5).is_err());
    assert!(add_layernorm(&a, &a, &t(&[5]), &v, 1e-5).is_err());
    assert!(add_layernorm(&a, &a, &v, &t(&[7]), 1e-5).is_err());
    assert!(add_layernorm(&a, &a, &v, &v, -1.0).is_err());
    assert!(add_layernorm(&a, &a, &v, &v, f32::NAN).is_err());
    let u = Tensor::from_u32(&g, &[0; 24], &[4, 6]).unwrap();
    assert!(add_layernorm(&u, &a, &v, &v, 1e-5).is_err());
    assert_eq!(
        add_layernorm(&t(&[0, 6]), &t(&[0, 6]), &v, &v, 1e-5)
            .unwrap()
            .shape(),
        &[0, 6]
    );
    g.sync().unwrap();
}
