//! The gpu layer: batching, pipeline cache, pool, limits and ordering of uploads.
use crate::common;
use common::*;
use semid::kernels::elementwise::{binary, unary, Binary, Unary};
use semid::{Error, Tensor};

#[test]
fn pipelines_compile_once() {
    let g = gpu();
    let t = upload(&rand_vec(100, 1), &[10, 10]);
    let _ = unary(&t, Unary::Relu).unwrap().to_vec().unwrap();
    let n = g.pipeline_count();
    for _ in 0..5 {
        let _ = unary(&t, Unary::Tanh).unwrap();
        let _ = unary(&t, Unary::Relu).unwrap();
    }
    g.sync().unwrap();
    // Tanh and Relu share one entry point: no new pipeline at all.
    assert_eq!(g.pipeline_count(), n);
}

#[test]
fn ops_record_into_one_submission() {
    // A device of its own, so other tests' readbacks don't count.
    let g = semid::Gpu::with_default_limits().unwrap();
    let t = Tensor::from_slice(&g, &rand_vec(1000, 2), &[1000]).unwrap();
    g.sync().unwrap();
    let before = g.submissions();
    let mut x = t.clone();
    for _ in 0..50 {
        x = unary(
            &x,
            Unary::Scale {
                alpha: 1.0,
                beta: 1.0,
            },
        )
        .unwrap();
    }
    // Nothing was submitted while recording.
    assert_eq!(g.submissions(), before);
    let got = x.to_vec().unwrap();
    assert_eq!(g.submissions(), before + 1, "one readback, one submission");
    let want = t.to_vec().unwrap();
    assert_close(
        &got,
        &want.iter().map(|v| v + 50.0).collect::<Vec<_>>(),
        1e-4,
        0.0,
        "chain",
    );
}

#[test]
fn a_recording_longer_than_the_uniform_arena_keeps_every_dispatch_its_parameters() {
    // 5,000 dispatches, each with its own offset: more than one arena's worth (2,048 slots at
    // the usual 256-byte alignment), so the recording is submitted part way and the arena is
    // rewritten for the rest. A parameter read from a wrong or stale slot changes the sum.
    let g = semid::Gpu::with_default_limits().unwrap();
    let t = Tensor::from_slice(&g, &[0.5, -2.0, 3.0], &[3]).unwrap();
    g.sync().unwrap();
    let before = g.submissions();
    let mut x = t.clone();
    let mut added = 0.0f32;
    for i in 0..5000 {
        let beta = (i % 7) as f32 - 3.0;
        added += beta;
        x = unary(&x, Unary::Scale { alpha: 1.0, beta }).unwrap();
    }
    let got = x.to_vec().unwrap();
    assert!(
        g.submissions() >= before + 3,
        "the full arena was submitted part way"
    );
    assert_eq!(got, vec![0.5 + added, -2.0 + added, 3.0 + added]);
}

#[test]
fn uploads_are_ordered_with_recorded_work() {
    // A buffer recycled by the pool and re-uploaded must not clobber work recorded earlier
    // (the `write_buffer` pitfall, wgpu#5636).
    let g = gpu();
    let a: Vec<f32> = (0..4096).map(|i| i as f32).collect();
    let t1 = upload(&a, &[4096]);
    let t2 = unary(
        &t1,
        Unary::Scale {
            alpha: 2.0,
            beta: 0.0,
        },
    )
    .unwrap();
    drop(t1);
    let t3 = Tensor::from_slice(&g, &vec![-1.0; 4096], &[4096]).unwrap();
    let t4 = binary(&t2, &t3, Binary::Add).unwrap();
    let got2 = t2.to_vec().unwrap();
    let got4 = t4.to_vec().unwrap();
    for i in 0..4096 {
        assert_eq!(got2[i], 2.0 * i as f32);
        assert_eq!(got4[i], 2.0 * i as f32 - 1.0);
    }
}

#[test]
fn pool_reuses_dropped_buffers() {
    let g = gpu();
    let t = Tensor::zeros(&g, &[12345]).unwrap();
    g.sync().unwrap();
    drop(t);
    let free = g.pool_free_bytes();
    assert!(free >= 12345 * 4);
    let t2 = Tensor::zeros(&g, &[12000]).unwrap(); // same size class
    assert!(g.pool_free_bytes() < free, "the freed buffer was reused");
    assert_eq!(t2.to_vec().unwrap(), vec![0.0; 12000]);
}

#[test]
fn tensor_over_the_buffer_limit_is_a_clear_error() {
    let g = gpu();
    let limit = g.kernel_limits().max_buffer_size;
    let rows = (limit / 4 / 1024) as usize + 1;
    let err = Tensor::empty(&g, &[rows, 1024]).unwrap_err();
    match &err {
        Error::TooLarge {
            bytes,
            limit: l,
            limit_name,
            ..
        } => {
            assert_eq!(*l, limit);
            assert_eq!(*limit_name, "max_buffer_size");
            assert!(*bytes > limit);
        }
        e => panic!("unexpected {e}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("max_buffer_size") && msg.contains(&rows.to_string()),
        "{msg}"
    );
}

#[test]
fn row_chunks_respect_binding_limit_and_alignment() {
    let g = gpu();
    let lim = g.kernel_limits();
    assert_eq!(
        lim.max_storage_binding,
        128 << 20,
        "tests run under default limits"
    );
    // 1,000 columns of f32: 4,000 bytes a row; offsets must be multiples of 256.
    let rows = 70_000;
    let chunks = g.row_chunks(rows, &[4000, 12]).unwrap();
    assert!(chunks.len() >= 3);
    let mut next = 0;
    for &(s, n) in &chunks {
        assert_eq!(s, next);
        assert!(n as u64 * 4000 <= lim.max_storage_binding);
        assert_eq!(s as u64 * 4000 % lim.storage_offset_alignment, 0);
        assert_eq!(s as u64 * 12 % lim.storage_offset_alignment, 0);
        next = s + n;
    }
    assert_eq!(next, rows);
    assert_eq!(g.row_chunks(10, &[4]).unwrap(), vec![(0, 10)]);
}

#[test]
fn elementwise_above_the_binding_cap() {
    // 36 Mi floats = 144 MiB: over the 128 MiB storage-binding cap, so the launcher must split.
    let n = 36 << 20;
    let x: Vec<f32> = (0..n).map(|i| (i % 1000) as f32).collect();
    let t = upload(&x, &[n]);
    let y = unary(
        &t,
        Unary::Scale {
            alpha: 0.5,
            beta: 1.0,
        },
    )
    .unwrap()
    .to_vec()
    .unwrap();
    for i in [0, 1, (32 << 20) - 1, 32 << 20, (33 << 20) + 7, n - 1] {
        assert_eq!(y[i], 0.5 * x[i] + 1.0, "element {i}");
    }
    let r = upload(&x[..n / 4], &[1, n / 4])
        .reshape(&[1, n / 4])
        .unwrap();
    let t2 = t.reshape(&[4, n / 4]).unwrap();
    let s = binary(&t2, &r, Binary::Sub).unwrap().to_vec().unwrap();
    for i in [0, n / 4 + 3, n / 2 + 11, n - 1] {
        assert_eq!(s[i], x[i] - x[i % (n / 4)], "element {i}");
    }
}

#[test]
fn aliasing_output_is_rejected() {
    let t = upload(&[1.0, 2.0], &[2]);
    let err = semid::kernels::elementwise::unary_into(&t, Unary::Relu, &t).unwrap_err();
    assert!(err.to_string().contains("alias"));
}

/// Several tensors read back in one transfer come back whole and in order (odd sizes, an
/// empty one, u32 too); tensors of another dtype are refused.
#[test]
fn read_all_reads_several_tensors_in_one_transfer() {
    let g = gpu();
    let a = rand_vec(7, 1);
    let b = rand_vec(1031, 2);
    let ta = upload(&a, &[7]);
    let tb = upload(&b, &[1031]);
    let te = Tensor::zeros(&g, &[0]).unwrap();
    let got = Tensor::read_all(&[&ta, &te, &tb]).unwrap();
    assert_eq!(got, vec![a, Vec::new(), b]);
    let u: Vec<u32> = (0..13).map(|i| i * 7 + 1).collect();
    let tu = Tensor::from_u32(&g, &u, &[13]).unwrap();
    assert_eq!(
        Tensor::read_all_u32(&[&tu, &tu]).unwrap(),
        vec![u.clone(), u]
    );
    let err = Tensor::read_all(&[&ta, &tu]).unwrap_err().to_string();
    assert!(err.contains("U32"), "{err}");
}
