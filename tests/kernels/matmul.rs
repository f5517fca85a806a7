//! Matmul kernels against the f64 CPU reference: every variant, every transpose form, awkward
//! shapes, batching, fused bias and activations, row-split bindings above the 128 MiB cap and
//! more than 65,535 workgroups, and reductions longer than one dispatch may loop.
use crate::common;
use common::*;
use semid::kernels::matmul::{
    matmul, matmul_cpu, matmul_cpu_row, matmul_into, Activation, MatmulOpts, Variant,
};
use semid::{Error, Tensor};

const TRANSPOSES: [(bool, bool); 4] = [(false, false), (true, false), (false, true), (true, true)];
const ACTS: [Activation; 5] = [
    Activation::None,
    Activation::Relu,
    Activation::Gelu,
    Activation::Sigmoid,
    Activation::Tanh,
];

/// Strict comparison: every element within 1e-4 relative to the largest |want| (plus 1e-4 of
/// its own size), so any wrong index, missed k step or misplaced bias fails.
fn check(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    assert!(
        got.iter().all(|v| v.is_finite()),
        "{what}: non-finite values in the result"
    );
    assert_close(got, want, 1e-4 * scale, 1e-4, what);
    let e = max_rel_err(got, want);
    assert!(e <= 1e-4, "{what}: relative error {e}");
}

/// Storage shape of an operand whose logical shape is `[.., r, c]`, transposed or not.
fn stored(lead: &[usize], r: usize, c: usize, trans: bool) -> Vec<usize> {
    let mut s = lead.to_vec();
    if trans {
        s.extend([c, r]);
    } else {
        s.extend([r, c]);
    }
    s
}

#[allow(clippy::too_many_arguments)]
fn run_case(
    variant: Variant,
    a_lead: &[usize],
    b_lead: &[usize],
    (m, k, n): (usize, usize, usize),
    (ta, tb): (bool, bool),
    with_bias: bool,
    act: Activation,
    seed: u64,
) {
    let a_shape = stored(a_lead, m, k, ta);
    let b_shape = stored(b_lead, k, n, tb);
    let av = rand_vec(a_shape.iter().product(), seed);
    let bv = rand_vec(b_shape.iter().product(), seed + 1);
    let bias: Vec<f32> = rand_vec(n, seed + 2).iter().map(|v| v * 2.0).collect();
    let a = upload(&av, &a_shape);
    let b = upload(&bv, &b_shape);
    let bias_t = upload(&bias, &[n]);
    let mut opts = MatmulOpts::new()
        .trans_a(ta)
        .trans_b(tb)
        .act(act)
        .variant(variant);
    if with_bias {
        opts = opts.bias(&bias_t);
    }
    let what = format!(
        "{variant:?} A{a_shape:?}{} B{b_shape:?}{} m={m} k={k} n={n} bias={with_bias} {act:?}",
        if ta { "ᵀ" } else { "" },
        if tb { "ᵀ" } else { "" }
    );
    let out = matmul(&a, &b, &opts).unwrap_or_else(|e| panic!("{what}: {e}"));
    let (want, want_shape) = matmul_cpu(
        &av,
        &a_shape,
        &bv,
        &b_shape,
        with_bias.then_some(&bias[..]),
        &opts,
    )
    .unwrap();
    assert_eq!(out.shape(), &want_shape[..], "{what}: shape");
    check(&out.to_vec().unwrap(), &want, &what);
}

/// (m, k, n): 1×1×1, primes, non-multiples of every tile (aligned to 4 and not), multiples.
const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (37, 61, 29),
    (132, 20, 68),
    (129, 33, 65),
    (5, 8, 12),
    (3, 7, 200),
    (256, 64, 128),
    (200, 1, 3),
];

#[test]
fn every_variant_every_transpose_awkward_shapes() {
    for variant in Variant::ALL {
        for &shape in SHAPES {
            for (i, &tr) in TRANSPOSES.iter().enumerate() {
                run_case(
                    variant,
                    &[],
                    &[],
                    shape,
                    tr,
                    false,
                    Activation::None,
                    10 + i as u64,
                );
            }
        }
    }
}

#[test]
fn batched_shared_and_per_batch_b() {
    for variant in Variant::ALL {
        for &shape in &[(37, 61, 29), (20, 16, 12), (1, 1, 1)] {
            for (i, &tr) in TRANSPOSES.iter().enumerate() {
                let s = 100 + i as u64;
                // B shared by every batch.
                run_case(variant, &[3], &[], shape, tr, false, Activation::None, s);
                // B per batch.
                run_case(variant, &[3], &[3], shape, tr, false, Activation::None, s);
                // A shared by every batch of B.
                run_case(variant, &[], &[2], shape, tr, false, Activation::None, s);
                // Two leading dimensions (attention heads).
                run_case(
                    variant,
                    &[2, 3],
                    &[2, 3],
                    shape,
                    tr,
                    true,
                    Activation::Relu,
                    s,
                );
            }
        }
    }
}

#[test]
fn bias_and_every_activation() {
    for variant in Variant::ALL {
        for &shape in &[(37, 61, 29), (132, 20, 68), (1, 1, 1)] {
            for (i, &act) in ACTS.iter().enumerate() {
                for &tr in &[(false, false), (true, true)] {
                    run_case(variant, &[], &[], shape, tr, true, act, 200 + i as u64);
                }
                run_case(
                    variant,
                    &[],
                    &[],
                    shape,
                    (false, true),
                    false,
                    act,
                    300 + i as u64,
                );
            }
        }
    }
}

#[test]
fn empty_reduction_gives_the_activated_bias() {
    for variant in Variant::ALL {
        run_case(
            variant,
            &[],
            &[],
            (7, 0, 9),
            (false, false),
            true,
            Activation::Sigmoid,
            1,
        );
        run_case(
            variant,
            &[],
            &[],
            (8, 0, 12),
            (true, true),
            true,
            Activation::None,
            2,
        );
        run_case(
            variant,
            &[2],
            &[2],
            (3, 0, 4),
            (false, true),
            false,
            Activation::None,
            3,
        );
    }
}

/// Spot-checks rows of a large result against the CPU reference, reading back only those rows.
fn check_rows(out: &Tensor, rows: &[usize], want_row: impl Fn(usize) -> Vec<f32>, what: &str) {
    let n = out.cols();
    for &r in rows {
        let bytes = out
            .gpu()
            .read(out.buffer(), (r * n * 4) as u64, (n * 4) as u64)
            .unwrap();
        let got: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
        check(&got, &want_row(r), &format!("{what}, row {r}"));
    }
}

#[test]
fn output_above_the_binding_cap_is_split_into_row_ranges() {
    let gpu = gpu();
    let cap = gpu.kernel_limits().max_storage_binding;
    // C = 34,000 × 1,024 f32 = 139 MB > 128 MiB: one binding cannot hold it.
    let (m, k, n) = (34_000, 12, 1_024);
    assert!((m * n * 4) as u64 > cap);
    for variant in Variant::ALL {
        for &(ta, tb) in &[(false, true), (true, false)] {
            let a_shape = stored(&[], m, k, ta);
            let b_shape = stored(&[], k, n, tb);
            let av = rand_vec(m * k, 41);
            let bv = rand_vec(k * n, 42);
            let bias = rand_vec(n, 43);
            let a = upload(&av, &a_shape);
            let b = upload(&bv, &b_shape);
            let bias_t = upload(&bias, &[n]);
            let opts = MatmulOpts::new()
                .trans_a(ta)
                .trans_b(tb)
                .bias(&bias_t)
                .act(Activation::Relu)
                .variant(variant);
            let out = Tensor::empty(&gpu, &[m, n]).unwrap();
            matmul_into(&a, &b, &opts, &out).unwrap();
            // Rows at both ends and around every possible chunk boundary.
            let per_chunk = (cap / (n as u64 * 4)) as usize;
            let rows = [
                0,
                1,
                per_chunk - 1,
                per_chunk,
                per_chunk + 1,
                m / 2,
                m - 2,
                m - 1,
            ];
            check_rows(
                &out,
                &rows,
                |r| {
                    matmul_cpu_row(&av, &a_shape, &bv, &b_shape, Some(&bias), &opts, (0, r))
                        .unwrap()
                },
                &format!("{variant:?} ta={ta} tb={tb} {m}x{k}x{n}"),
            );
        }
    }
}

#[test]
fn operands_bound_whole_above_the_cap_split_the_reduction() {
    let gpu = gpu();
    let cap = gpu.kernel_limits().max_storage_binding;
    let k = 34_000;
    // Gradient form dW = Xᵀ·dY: A = X stored [k, m] = 139 MB, read whole for every row of C.
    // B [k, n] = 139 MB, read whole for every row of C. Both force partial sums over k; the
    // bias and ReLU must be applied once, after the last part (results are ~±200, so the
    // tolerance of 1e-4 of the largest still catches a bias added twice or a ReLU in between).
    for variant in Variant::ALL {
        for &(m, n, ta, tb) in &[
            (1_024, 8, true, false),
            (1_023, 7, true, false),
            (4, 1_024, false, false),
        ] {
            let a_shape = stored(&[], m, k, ta);
            let b_shape = stored(&[], k, n, tb);
            assert!(((m * k) as u64 * 4 > cap) || ((k * n) as u64 * 4 > cap));
            let av = rand_vec(m * k, 51);
            let bv = rand_vec(k * n, 52);
            let bias = rand_vec(n, 53);
            let a = upload(&av, &a_shape);
            let b = upload(&bv, &b_shape);
            let bias_t = upload(&bias, &[n]);
            let opts = MatmulOpts::new()
                .trans_a(ta)
                .trans_b(tb)
                .bias(&bias_t)
                .act(Activation::Relu)
                .variant(variant);
            let out = matmul(&a, &b, &opts).unwrap();
            check_rows(
                &out,
                &[0, 1, m / 2, m - 2, m - 1],
                |r| {
                    matmul_cpu_row(&av, &a_shape, &bv, &b_shape, Some(&bias), &opts, (0, r))
                        .unwrap()
                },
                &format!("{variant:?} ta={ta} tb={tb} {m}x{k}x{n}"),
            );
        }
    }
    // A transposed B that large cannot be split: an error, not a panic or a device error.
    let a = upload(&rand_vec(4 * k, 54), &[4, k]);
    let b = Tensor::zeros(&gpu, &[1_024, k]).unwrap();
    let r = matmul(&a, &b, &MatmulOpts::new().trans_b(true));
    assert!(matches!(r, Err(Error::TooLarge { .. })), "{r:?}");
    gpu.sync().unwrap();
}

#[test]
fn batches_too_large_to_group_fall_back_to_unaligned_row_ranges() {
    // Each batch's C is 1,025 × 513 × 4 bytes: 64 batches (the alignment step for this odd
    // size) exceed 128 MiB, so batches are bound one at a time at unaligned element offsets.
    for variant in Variant::ALL {
        run_case(
            variant,
            &[3],
            &[3],
            (1_025, 9, 513),
            (false, false),
            true,
            Activation::Tanh,
            7,
        );
        run_case(
            variant,
            &[3],
            &[3],
            (1_025, 9, 513),
            (true, true),
            false,
            Activation::None,
            8,
        );
    }
}

#[test]
fn more_than_65535_workgroups() {
    // 66,000 batches of tiny products: one workgroup each, folded over x and y.
    run_case(
        Variant::Shared,
        &[66_000],
        &[66_000],
        (2, 3, 2),
        (false, false),
        true,
        Activation::None,
        5,
    );
    run_case(
        Variant::RegTile,
        &[66_000],
        &[66_000],
        (2, 3, 2),
        (true, false),
        true,
        Activation::None,
        5,
    );
    run_case(
        Variant::RegTile,
        &[66_000],
        &[66_000],
        (4, 4, 4),
        (false, true),
        false,
        Activation::Gelu,
        6,
    );
}

#[test]
fn regtile_vec4_and_scalar_paths_agree_with_shared() {
    // The same aligned product through every entry point (regtile picks vec4 loads here).
    let (m, k, n) = (72, 36, 40);
    let av = rand_vec(m * k, 77);
    let bv = rand_vec(k * n, 78);
    let a = upload(&av, &[m, k]);
    let b = upload(&bv, &[k, n]);
    let shared = matmul(&a, &b, &MatmulOpts::new().variant(Variant::Shared))
        .unwrap()
        .to_vec()
        .unwrap();
    let reg = matmul(&a, &b, &MatmulOpts::new().variant(Variant::RegTile))
        .unwrap()
        .to_vec()
        .unwrap();
    let (want, _) = matmul_cpu(&av, &[m, k], &bv, &[k, n], None, &MatmulOpts::new()).unwrap();
    check(&shared, &want, "shared");
    check(&reg, &want, "regtile");
    // Default variant follows the adapter.
    let dflt = matmul(&a, &b, &MatmulOpts::new())
        .unwrap()
        .to_vec()
        .unwrap();
    check(&dflt, &want, "default variant");
}

#[test]
fn shape_errors_are_errors_not_panics() {
    let gpu = gpu();
    let a = upload(&rand_vec(6, 1), &[2, 3]);
    let b = upload(&rand_vec(8, 2), &[4, 2]);
    let is_shape = |r: semid::Result<Tensor>| matches!(r, Err(Error::Shape { .. }));
    // k mismatch: 3 vs 4.
    assert!(is_shape(matmul(&a, &b, &MatmulOpts::new())));
    // Rank 1.
    let v = upload(&rand_vec(3, 3), &[3]);
    assert!(is_shape(matmul(&v, &b, &MatmulOpts::new())));
    // Batch dimensions differ.
    let a3 = upload(&rand_vec(2 * 2 * 3, 4), &[2, 2, 3]);
    let b3 = upload(&rand_vec(3 * 3 * 2, 5), &[3, 3, 2]);
    assert!(is_shape(matmul(&a3, &b3, &MatmulOpts::new())));
    // Bias of the wrong length.
    let b_ok = upload(&rand_vec(6, 6), &[3, 2]);
    let bias = upload(&rand_vec(3, 7), &[3]);
    assert!(is_shape(matmul(&a, &b_ok, &MatmulOpts::new().bias(&bias))));
    // Output of the wrong size, and an output aliasing an input.
    let out = Tensor::empty(&gpu, &[3, 2]).unwrap();
    assert!(matches!(
        matmul_into(&a, &b_ok, &MatmulOpts::new(), &out),
        Err(Error::Shape { .. })
    ));
    let sq = upload(&rand_vec(4, 8), &[2, 2]);
    assert!(matmul_into(&sq, &sq, &MatmulOpts::new(), &sq).is_err());
    // Index tensors are rejected.
    let u = Tensor::from_u32(&gpu, &[1, 2, 3, 4, 5, 6], &[3, 2]).unwrap();
    assert!(matmul(&a, &u, &MatmulOpts::new()).is_err());
    // The CPU reference checks too.
    assert!(matmul_cpu(
        &[1.0; 6],
        &[2, 3],
        &[1.0; 8],
        &[4, 2],
        None,
        &MatmulOpts::new()
    )
    .is_err());
    // Nothing reached the device as a validation error.
    gpu.sync().unwrap();
}

/// A reduction longer than 262,140 steps: llvmpipe stops a shader loop after 65,535
/// iterations, so one dispatch over all of k would silently drop the tail; the launcher
/// splits it into parts that accumulate in C (a flattened weight Gram matrix in MMQ has k in
/// the hundreds of thousands). Every variant and transpose, with a bias and an activation so the
/// epilogue must wait for the last part.
#[test]
fn reductions_longer_than_a_loop_limit_are_split() {
    for variant in Variant::ALL {
        for (i, &tr) in TRANSPOSES.iter().enumerate() {
            run_case(
                variant,
                &[],
                &[],
                (3, 300_007, 2),
                tr,
                true,
                Activation::Tanh,
                40 + i as u64,
            );
        }
    }
    // The aligned vec4 path with a split that leaves an unaligned last part.
    run_case(
        Variant::RegTile,
        &[],
        &[],
        (4, 327_684, 4),
        (false, true),
        false,
        Activation::None,
        50,
    );
}
