//! The one GPU sort (`kernels::sort`): a stable radix sort of u32 indices and lower bounds,
//! against a stable CPU sort, at awkward sizes, past one scan level and past `LOOP_BUDGET`.

use crate::common;
use common::*;

use semid::kernels::sort::{lower_bounds, lower_bounds_cpu, sort_indices, sort_indices_cpu};
use semid::rng::Rng;
use semid::Tensor;

fn check_sort(keys: &[u32], k: usize) {
    let t = Tensor::from_u32(&gpu(), keys, &[keys.len()]).unwrap();
    let (sorted, perm) = sort_indices(&t, k).unwrap();
    let mut want: Vec<usize> = (0..keys.len()).collect();
    want.sort_by_key(|&i| keys[i]); // stable
    let perm = perm.to_u32().unwrap();
    let sorted = sorted.to_u32().unwrap();
    assert_eq!(
        perm,
        want.iter().map(|&i| i as u32).collect::<Vec<_>>(),
        "k {k} n {}",
        keys.len()
    );
    assert_eq!(sorted, want.iter().map(|&i| keys[i]).collect::<Vec<_>>());
    let starts = lower_bounds(
        &Tensor::from_u32(&gpu(), &sorted, &[sorted.len()]).unwrap(),
        k + 1,
    )
    .unwrap()
    .to_u32()
    .unwrap();
    assert_eq!(starts.len(), k + 1);
    for (c, &st) in starts.iter().enumerate() {
        let first = sorted
            .iter()
            .position(|&s| s as usize >= c)
            .unwrap_or(sorted.len());
        assert_eq!(st as usize, first, "start of {c}");
    }
}

#[test]
fn sorting_is_stable_at_awkward_sizes_and_bounds() {
    let mut rng = Rng::new(5);
    for &(n, k) in &[
        (1, 1),
        (37, 5),
        (256, 3),
        (257, 300),
        (1000, 1),
        (5000, 70_000),
        (3000, 1 << 24),
    ] {
        let keys: Vec<u32> = (0..n).map(|_| rng.below(k) as u32).collect();
        check_sort(&keys, k);
    }
    // Many duplicates across block boundaries.
    let keys: Vec<u32> = (0..2000).map(|i| ((i * 7) % 3) as u32).collect();
    check_sort(&keys, 3);
}

#[test]
fn sorting_8_5_million_keys_keeps_every_key_in_place() {
    // 8,500,000 keys: the single-workgroup scan of the 8.5M digit counts ran two loops of
    // 33,204 steps per invocation and left 193,274 keys out of place.
    let n = 8_500_000;
    let mut rng = Rng::new(70);
    let keys: Vec<u32> = (0..n).map(|_| rng.below(3) as u32).collect();
    let t = Tensor::from_u32(&gpu(), &keys, &[n]).unwrap();
    let (sorted, perm) = sort_indices(&t, 3).unwrap();
    let starts = lower_bounds(&sorted, 4).unwrap().to_u32().unwrap();
    let perm = perm.to_u32().unwrap();
    let mut want: Vec<u32> = (0..n as u32).collect();
    want.sort_by_key(|&i| keys[i as usize]); // stable
    assert!(perm == want, "the permutation differs from a stable sort");
    let mut first = vec![0u32; 4];
    for c in 0..3 {
        first[c + 1] = first[c] + keys.iter().filter(|&&v| v == c as u32).count() as u32;
    }
    assert_eq!(starts, first);
}

#[test]
fn lower_bounds_across_long_runs_of_empty_segments() {
    // 100,000 clusters and keys only at the ends: one invocation used to write the start of
    // every empty cluster in a gap, and stopped after 65,535 of them.
    let k = 100_000;
    let keys: Vec<u32> = [0, 0, 3].into_iter().chain([k as u32 - 1; 4]).collect();
    let sorted = Tensor::from_u32(&gpu(), &keys, &[keys.len()]).unwrap();
    let got = lower_bounds(&sorted, k + 1).unwrap().to_u32().unwrap();
    let want: Vec<u32> = (0..=k as u32)
        .map(|c| keys.iter().filter(|&&v| v < c).count() as u32)
        .collect();
    assert!(got == want, "segment starts differ");
}

#[test]
fn indices_above_the_bound_sort_last_as_the_bound() {
    // Scatter-add's out-of-range targets: clamped to the bound, stable among themselves.
    let idx = [5u32, 9, 0, u32::MAX, 2, 7, 0, 3];
    let t = Tensor::from_u32(&gpu(), &idx, &[2, 4]).unwrap(); // any shape, read flat
    let (keys, order) = sort_indices(&t, 3).unwrap();
    let (want_keys, want_order) = sort_indices_cpu(&idx, 3);
    assert_eq!(want_keys, vec![0, 0, 2, 3, 3, 3, 3, 3]);
    assert_eq!(want_order, vec![2, 6, 4, 0, 1, 3, 5, 7]);
    assert_eq!(keys.to_u32().unwrap(), want_keys);
    assert_eq!(order.to_u32().unwrap(), want_order);
    let bounds = lower_bounds(&keys, 5).unwrap().to_u32().unwrap();
    assert_eq!(bounds, lower_bounds_cpu(&want_keys, 5));
    assert_eq!(bounds, vec![0, 2, 2, 3, 8]);
}

#[test]
fn empty_inputs_and_wrong_dtypes() {
    let none = Tensor::from_u32(&gpu(), &[], &[0]).unwrap();
    let (keys, order) = sort_indices(&none, 10).unwrap();
    assert_eq!((keys.numel(), order.numel()), (0, 0));
    assert_eq!(
        lower_bounds(&keys, 3).unwrap().to_u32().unwrap(),
        vec![0, 0, 0]
    );
    assert_eq!(lower_bounds(&keys, 0).unwrap().numel(), 0);
    let floats = upload(&[1.0, 2.0], &[2]);
    assert!(matches!(
        sort_indices(&floats, 3),
        Err(semid::Error::Shape { .. })
    ));
    assert!(lower_bounds(&floats, 3).is_err());
}
