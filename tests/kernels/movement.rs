//! Data-movement kernels against CPU references at awkward shapes, more than 65,535
//! workgroups, tensors above the 128 MiB storage-binding limit, and error cases.
use crate::common;
use common::*;
use semid::kernels::movement::*;
use semid::rng::Rng;
use semid::{DType, Tensor};

/// 128 MiB: the default storage-binding limit the large tests must exceed.
const BINDING: usize = 128 << 20;

fn rand_idx(m: usize, n: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    (0..m).map(|_| rng.below(n) as u32).collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Bit-for-bit equality that reports the first difference instead of dumping whole vectors.
fn assert_same<T: PartialEq + std::fmt::Debug>(got: &[T], want: &[T], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        panic!(
            "{what}: first difference at {i}: got {:?}, want {:?}",
            got[i], want[i]
        );
    }
}

fn upload_u32(v: &[u32]) -> Tensor {
    Tensor::from_u32(&gpu(), v, &[v.len()]).unwrap()
}

// ---------------------------------------------------------------------------------------------
// gather

#[test]
fn gather_matches_cpu() {
    // (n, d, m): 1x1, primes, widths around the workgroup size, more lookups than rows.
    for &(n, d, m) in &[
        (1, 1, 1),
        (37, 61, 29),
        (61, 37, 200),
        (5, 257, 3),
        (1000, 3, 513),
    ] {
        let table = rand_vec(n * d, 1);
        let idx = rand_idx(m, n, 2);
        let want = gather_rows_cpu(&table, d, &idx);
        let t = upload(&table, &[n, d]);
        let got = gather_rows(&t, &upload_u32(&idx)).unwrap();
        assert_eq!(got.shape(), &[m, d]);
        assert_eq!(
            bits(&got.to_vec().unwrap()),
            bits(&want),
            "gather {n}x{d} by {m}"
        );
        let got2 = gather_rows_from(&t, &idx).unwrap().to_vec().unwrap();
        assert_eq!(bits(&got2), bits(&want), "gather_rows_from {n}x{d} by {m}");
    }
}

#[test]
fn gather_keeps_index_shape_and_u32_tables() {
    let (n, d) = (11, 5);
    let table: Vec<u32> = (0..(n * d) as u32).map(|v| v * 7 + 3).collect();
    let t = Tensor::from_u32(&gpu(), &table, &[n, d]).unwrap();
    let idx = [10u32, 0, 3, 3, 7, 1];
    let it = Tensor::from_u32(&gpu(), &idx, &[2, 3]).unwrap();
    let got = gather_rows(&t, &it).unwrap();
    assert_eq!(got.shape(), &[2, 3, d]);
    assert_eq!(got.dtype(), DType::U32);
    assert_eq!(got.to_u32().unwrap(), gather_rows_cpu(&table, d, &idx));
}

#[test]
fn gather_out_of_range_tensor_index_gives_zero_row() {
    let (n, d) = (7, 13);
    let table: Vec<f32> = rand_vec(n * d, 3).iter().map(|v| v + 2.0).collect(); // no zeros
    let idx = [2u32, 7, 6, u32::MAX, 0];
    let got = gather_rows(&upload(&table, &[n, d]), &upload_u32(&idx))
        .unwrap()
        .to_vec()
        .unwrap();
    assert_eq!(got, gather_rows_cpu(&table, d, &idx));
    assert!(
        got[d..2 * d].iter().all(|&v| v == 0.0),
        "index 7 of 7 rows gives zeros"
    );
    assert!(got[3 * d..4 * d].iter().all(|&v| v == 0.0));
    assert_eq!(got[..d], table[2 * d..3 * d]);
}

#[test]
fn gather_errors() {
    let t = upload(&rand_vec(4 * 3, 4), &[4, 3]);
    let err = gather_rows_from(&t, &[0, 3, 4, 1]).unwrap_err().to_string();
    assert!(
        err.contains("index 4 at position 2") && err.contains("4 rows"),
        "{err}"
    );
    let f = upload(&[0.0, 1.0], &[2]);
    let err = gather_rows(&t, &f).unwrap_err().to_string();
    assert!(err.contains("must be a U32 tensor"), "{err}");
}

#[test]
fn gather_more_than_65535_workgroups() {
    // 262,200 lookups of 64 columns: 65,550 workgroups of 256.
    let (n, d, m) = (1000, 64, 262_200);
    let table = rand_vec(n * d, 5);
    let idx = rand_idx(m, n, 6);
    let got = gather_rows_from(&upload(&table, &[n, d]), &idx)
        .unwrap()
        .to_vec()
        .unwrap();
    assert_same(
        &bits(&got),
        &bits(&gather_rows_cpu(&table, d, &idx)),
        "result",
    );
}

#[test]
fn gather_from_a_table_above_the_binding_limit() {
    // A 138 MB table: bound in two row chunks.
    let (n, d) = (540_000, 64);
    assert!(n * d * 4 > BINDING);
    let table = rand_vec(n * d, 7);
    let mut idx = rand_idx(997, n, 8);
    idx.extend([
        0,
        n as u32 - 1,
        (BINDING / (4 * d)) as u32,
        (BINDING / (4 * d)) as u32 - 1,
    ]);
    idx.push(n as u32 + 5); // out of range: zeros, written once
    let got = gather_rows(&upload(&table, &[n, d]), &upload_u32(&idx))
        .unwrap()
        .to_vec()
        .unwrap();
    assert_same(
        &bits(&got),
        &bits(&gather_rows_cpu(&table, d, &idx)),
        "result",
    );
}

// ---------------------------------------------------------------------------------------------
// segments and scatter-add

fn check_segments(idx: &[u32], n: usize, what: &str) {
    let (want_off, want_ord) = segments_cpu(idx, n);
    // The CPU reference itself: order groups by index, ascending positions inside a segment.
    assert_eq!(want_off.len(), n + 1);
    for j in 0..n {
        let seg = &want_ord[want_off[j] as usize..want_off[j + 1] as usize];
        assert!(seg.iter().all(|&i| idx[i as usize] as usize == j), "{what}");
        assert!(seg.windows(2).all(|w| w[0] < w[1]), "{what}");
    }
    let from_gpu = Segments::from_tensor(&upload_u32(idx), n).unwrap();
    assert_same(
        &from_gpu.offsets().to_u32().unwrap(),
        &want_off,
        &format!("{what}: GPU offsets"),
    );
    assert_same(
        &from_gpu.order().to_u32().unwrap(),
        &want_ord,
        &format!("{what}: GPU order"),
    );
    if idx.iter().all(|&v| (v as usize) < n) {
        let from_cpu = Segments::from_slice(&gpu(), idx, n).unwrap();
        assert_same(
            &from_cpu.offsets().to_u32().unwrap(),
            &want_off,
            &format!("{what}: CPU offsets"),
        );
        assert_same(
            &from_cpu.order().to_u32().unwrap(),
            &want_ord,
            &format!("{what}: CPU order"),
        );
    }
}

#[test]
fn segments_on_gpu_match_counting_sort() {
    // (n, m): single row, all-duplicate, empty rows, one and two and three radix passes,
    // multi-level scans (more than 1024 blocks of counts).
    for &(n, m) in &[
        (1, 1),
        (1, 100),
        (37, 61),
        (1000, 5),
        (255, 3000),
        (256, 3000),
        (300, 70_000),
        (100_000, 5000),
        (70_000, 300_000),
    ] {
        let idx = rand_idx(m, n, (n * 31 + m) as u64);
        check_segments(&idx, n, &format!("n={n} m={m}"));
    }
    // Sorted, reversed and constant inputs.
    let asc: Vec<u32> = (0..5000).map(|i| i / 7).collect();
    check_segments(&asc, 715, "ascending");
    let desc: Vec<u32> = asc.iter().rev().copied().collect();
    check_segments(&desc, 715, "descending");
    check_segments(&vec![3; 4097], 9, "constant");
    check_segments(&[], 4, "no indices");
    // n above 2^24: four radix passes, and 65,537 workgroups for the offsets.
    let n = (1 << 24) + 1;
    let top = 1u32 << 24;
    check_segments(
        &[top, 1, top, 0, 17, top - 1, 256, 65_536],
        n,
        "four passes",
    );
}

#[test]
fn segments_from_tensor_drop_out_of_range_indices() {
    let idx = [2u32, 9, 0, 2, 5, 3, 77];
    let n = 5;
    let seg = Segments::from_tensor(&upload_u32(&idx), n).unwrap();
    let off = seg.offsets().to_u32().unwrap();
    let ord = seg.order().to_u32().unwrap();
    assert_eq!(off, vec![0, 1, 1, 3, 4, 4]);
    assert_eq!(ord, vec![2, 0, 3, 5, 1, 4, 6]);
    assert_eq!((off, ord), segments_cpu(&idx, n));
    // And the scatter ignores them.
    let d = 3;
    let src = rand_vec(idx.len() * d, 10);
    let got = scatter_add_rows(&upload(&src, &[idx.len(), d]), &seg)
        .unwrap()
        .to_vec()
        .unwrap();
    assert_same(
        &bits(&got),
        &bits(&scatter_add_rows_cpu(&src, d, &idx, n)),
        "result",
    );
}

#[test]
fn scatter_add_is_bit_exact_and_repeatable() {
    // (n, d, m): n=1, m=1, duplicates, mostly empty rows, primes, wide rows.
    for &(n, d, m) in &[
        (1, 1, 1),
        (1, 61, 37),
        (37, 1, 1),
        (37, 61, 29),
        (37, 61, 1000),
        (500, 3, 7),
        (29, 300, 2000),
    ] {
        let src: Vec<f32> = rand_vec(m * d, (m + d) as u64)
            .iter()
            .enumerate()
            .map(|(i, v)| v * (1.0 + (i % 13) as f32 * 1000.0)) // mixed magnitudes
            .collect();
        let idx = rand_idx(m, n, (n * m) as u64 + 1);
        let want = bits(&scatter_add_rows_cpu(&src, d, &idx, n));
        let s = upload(&src, &[m, d]);
        let seg_cpu = Segments::from_slice(&gpu(), &idx, n).unwrap();
        let seg_gpu = Segments::from_tensor(&upload_u32(&idx), n).unwrap();
        for (run, seg) in [&seg_cpu, &seg_gpu, &seg_cpu, &seg_gpu]
            .into_iter()
            .enumerate()
        {
            let got = scatter_add_rows(&s, seg).unwrap();
            assert_eq!(got.shape(), &[n, d]);
            let what = format!("{n}x{d} from {m}, run {run}");
            assert_same(&bits(&got.to_vec().unwrap()), &want, &what);
        }
    }
}

#[test]
fn scatter_add_order_matters_and_is_kept() {
    // Values whose float sum depends on the order: 1e8 + 1 − 1e8 + 1 ... ; the GPU must give
    // the ascending-position sum exactly, not any other order's.
    let vals = [1.0e8f32, 1.0, -1.0e8, 1.0, 3.0e-3, 1.0e8, -1.0e8, 0.5];
    let idx = vec![0u32; vals.len()];
    let want = scatter_add_rows_cpu(&vals, 1, &idx, 1);
    let reversed: f32 = vals.iter().rev().fold(0.0, |a, v| a + v);
    assert_ne!(
        want[0].to_bits(),
        reversed.to_bits(),
        "the test data must be order-sensitive"
    );
    let seg = Segments::from_tensor(&upload_u32(&idx), 1).unwrap();
    let got = scatter_add_rows(&upload(&vals, &[vals.len(), 1]), &seg)
        .unwrap()
        .to_vec()
        .unwrap();
    assert_eq!(got[0].to_bits(), want[0].to_bits());
}

#[test]
fn scatter_add_errors() {
    let seg = Segments::from_slice(&gpu(), &[0, 1, 1], 2).unwrap();
    let err = scatter_add_rows(&upload(&[0.0; 8], &[4, 2]), &seg)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("has 4 rows") && err.contains("3 indices"),
        "{err}"
    );
    let err = Segments::from_slice(&gpu(), &[0, 1, 2, 1], 2)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("index 2 at position 2") && err.contains("2 rows"),
        "{err}"
    );
    let err = Segments::from_tensor(&upload(&[0.0], &[1]), 2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("must be a U32 tensor"), "{err}");
    let err = Segments::from_slice(&gpu(), &[0], 1 << 40)
        .unwrap_err()
        .to_string();
    assert!(err.contains("segments exceed the u32 range"), "{err}");
    let err = Segments::from_tensor(&upload_u32(&[0]), 100_000_000)
        .unwrap_err()
        .to_string();
    assert!(err.contains("the offsets of 100000000 segments"), "{err}");
}

#[test]
fn scatter_add_more_than_65535_workgroups() {
    // 70,000 × 256 outputs: 70,000 workgroups.
    let (n, d, m) = (70_000, 256, 100_000);
    let src = rand_vec(m * d, 11);
    let idx = rand_idx(m, n, 12);
    let seg = Segments::from_tensor(&upload_u32(&idx), n).unwrap();
    let got = scatter_add_rows(&upload(&src, &[m, d]), &seg)
        .unwrap()
        .to_vec()
        .unwrap();
    assert_same(
        &bits(&got),
        &bits(&scatter_add_rows_cpu(&src, d, &idx, n)),
        "result",
    );
}

#[test]
fn scatter_add_above_the_binding_limit() {
    // Source and output of 143 MB each: both split in row chunks; the second source chunk
    // continues the sums of the first.
    let (n, d, m) = (140_000, 256, 140_000);
    assert!(m * d * 4 > BINDING);
    let src = rand_vec(m * d, 13);
    let mut idx = rand_idx(m, n, 14);
    // Rows summing entries from both source chunks, and the last output row.
    idx[0] = 5;
    idx[m - 1] = 5;
    idx[1] = n as u32 - 1;
    idx[m - 2] = n as u32 - 1;
    let seg = Segments::from_slice(&gpu(), &idx, n).unwrap();
    let got = scatter_add_rows(&upload(&src, &[m, d]), &seg)
        .unwrap()
        .to_vec()
        .unwrap();
    assert_same(
        &bits(&got),
        &bits(&scatter_add_rows_cpu(&src, d, &idx, n)),
        "result",
    );
}

#[test]
fn scatter_add_segments_longer_than_a_loop_limit() {
    // 100,000 rows, 9 in 10 into row 0: one thread per output element walked 90,000 entries
    // and stopped after 65,535 (26.67 instead of 54.46). Segments from the CPU (which know the
    // longest segment) and from the GPU (bounded by m), and a segment of exactly one window.
    let (m, n, d) = (100_000, 3, 2);
    let src = rand_vec(m * d, 15);
    let mut idx: Vec<u32> = (0..m).map(|i| (i % 10 == 9) as u32).collect();
    idx[m - 1] = 2;
    let want = bits(&scatter_add_rows_cpu(&src, d, &idx, n));
    let s = upload(&src, &[m, d]);
    for seg in [
        Segments::from_slice(&gpu(), &idx, n).unwrap(),
        Segments::from_tensor(&upload_u32(&idx), n).unwrap(),
    ] {
        let got = scatter_add_rows(&s, &seg).unwrap().to_vec().unwrap();
        assert_same(&bits(&got), &want, "100,000 rows into 3");
    }
    let idx = vec![0u32; 32_768];
    let src = rand_vec(idx.len(), 16);
    let seg = Segments::from_slice(&gpu(), &idx, 1).unwrap();
    let got = scatter_add_rows(&upload(&src, &[idx.len(), 1]), &seg)
        .unwrap()
        .to_vec()
        .unwrap();
    assert_same(
        &bits(&got),
        &bits(&scatter_add_rows_cpu(&src, 1, &idx, 1)),
        "32,768 rows into 1",
    );
}

#[test]
fn scatter_add_long_segments_above_the_binding_limit() {
    // 140,000 source rows of 256 (143 MB, two source chunks), nearly all into row 1: windows
    // of the segment and chunks of the source interleave, and the sums keep their order.
    let (n, d, m) = (3, 256, 140_000);
    let src = rand_vec(m * d, 17);
    let idx: Vec<u32> = (0..m).map(|i| [1, 1, 1, 1, 1, 1, 0][i % 7]).collect();
    let seg = Segments::from_slice(&gpu(), &idx, n).unwrap();
    let got = scatter_add_rows(&upload(&src, &[m, d]), &seg)
        .unwrap()
        .to_vec()
        .unwrap();
    assert_same(
        &bits(&got),
        &bits(&scatter_add_rows_cpu(&src, d, &idx, n)),
        "result",
    );
}

// ---------------------------------------------------------------------------------------------
// transpose

#[test]
fn transpose_matches_cpu() {
    // 1x1, primes, exact tiles, one past a tile, single row and column.
    for &(b, r, c) in &[
        (1, 1, 1),
        (1, 37, 61),
        (1, 16, 16),
        (1, 17, 33),
        (1, 1, 1000),
        (1000, 1, 1),
        (1, 1000, 1),
        (3, 37, 61),
        (2, 5, 7),
    ] {
        let x = rand_vec(b * r * c, (b + r + c) as u64);
        let shape: Vec<usize> = if b == 1 { vec![r, c] } else { vec![b, r, c] };
        let got = transpose(&upload(&x, &shape)).unwrap();
        let mut want_shape = shape.clone();
        let k = want_shape.len();
        want_shape.swap(k - 2, k - 1);
        assert_eq!(got.shape(), &want_shape[..]);
        assert_eq!(
            bits(&got.to_vec().unwrap()),
            bits(&transpose_cpu(&x, b, r, c)),
            "{b}x{r}x{c}"
        );
    }
    // Rank 1: [c] -> [c, 1].
    let x = rand_vec(9, 1);
    let got = transpose(&upload(&x, &[9])).unwrap();
    assert_eq!(got.shape(), &[9, 1]);
    assert_eq!(got.to_vec().unwrap(), x);
    // U32 and a round trip.
    let v: Vec<u32> = (0..37 * 61).collect();
    let t = Tensor::from_u32(&gpu(), &v, &[37, 61]).unwrap();
    let tt = transpose(&transpose(&t).unwrap()).unwrap();
    assert_eq!(tt.shape(), &[37, 61]);
    assert_eq!(tt.to_u32().unwrap(), v);
}

#[test]
fn transpose_more_than_65535_workgroups() {
    // 70,000 matrices of 2×3: one tile each.
    let (b, r, c) = (70_000, 2, 3);
    let x = rand_vec(b * r * c, 15);
    let got = transpose(&upload(&x, &[b, r, c]))
        .unwrap()
        .to_vec()
        .unwrap();
    assert_same(&bits(&got), &bits(&transpose_cpu(&x, b, r, c)), "result");
}

#[test]
fn transpose_one_matrix_above_the_binding_limit() {
    // 139 MB: transposed in rectangular blocks.
    let (r, c) = (6001, 5801);
    assert!(r * c * 4 > BINDING);
    let x = rand_vec(r * c, 16);
    let got = transpose(&upload(&x, &[r, c])).unwrap().to_vec().unwrap();
    assert_same(&bits(&got), &bits(&transpose_cpu(&x, 1, r, c)), "result");
}

#[test]
fn transpose_batch_above_the_binding_limit() {
    // 180 MB of 36 MB matrices: groups of whole matrices at unaligned offsets.
    let (b, r, c) = (5, 2999, 2999);
    assert!(b * r * c * 4 > BINDING && (r * c * 4) % 256 != 0);
    let x = rand_vec(b * r * c, 17);
    let got = transpose(&upload(&x, &[b, r, c]))
        .unwrap()
        .to_vec()
        .unwrap();
    assert_same(&bits(&got), &bits(&transpose_cpu(&x, b, r, c)), "result");
}

// ---------------------------------------------------------------------------------------------
// concat, slice

#[test]
fn concat_matches_cpu() {
    for (rows, cols) in [
        (1, vec![1, 1]),
        (37, vec![61, 1, 29]),
        (3, vec![257, 0, 5]),
        // More parts than storage buffers per dispatch.
        (13, (1..=11).collect::<Vec<usize>>()),
    ] {
        let data: Vec<Vec<f32>> = cols
            .iter()
            .enumerate()
            .map(|(k, &c)| rand_vec(rows * c, k as u64 + 20))
            .collect();
        let ts: Vec<Tensor> = data
            .iter()
            .zip(&cols)
            .map(|(v, &c)| upload(v, &[rows, c]))
            .collect();
        let refs: Vec<&Tensor> = ts.iter().collect();
        let got = concat_cols(&refs).unwrap();
        let total: usize = cols.iter().sum();
        assert_eq!(got.shape(), &[rows, total]);
        let parts: Vec<(&[f32], usize)> = data.iter().map(|v| &v[..]).zip(cols.clone()).collect();
        assert_eq!(
            bits(&got.to_vec().unwrap()),
            bits(&concat_cols_cpu(&parts, rows)),
            "{rows} rows, {cols:?}"
        );
    }
    // The same tensor twice, 3-D parts keep the first's leading dims.
    let a = rand_vec(2 * 3 * 4, 30);
    let ta = upload(&a, &[2, 3, 4]);
    let got = concat_cols(&[&ta, &ta]).unwrap();
    assert_eq!(got.shape(), &[2, 3, 8]);
    assert_eq!(
        got.to_vec().unwrap(),
        concat_cols_cpu(&[(&a[..], 4), (&a[..], 4)], 6)
    );
}

#[test]
fn concat_more_than_65535_workgroups() {
    // The first part alone needs 70,000 workgroups.
    let (rows, c1, c2) = (70_000, 256, 3);
    let a = rand_vec(rows * c1, 31);
    let b = rand_vec(rows * c2, 32);
    let got = concat_cols(&[&upload(&a, &[rows, c1]), &upload(&b, &[rows, c2])])
        .unwrap()
        .to_vec()
        .unwrap();
    assert_same(
        &bits(&got),
        &bits(&concat_cols_cpu(&[(&a[..], c1), (&b[..], c2)], rows)),
        "result",
    );
}

#[test]
fn concat_errors() {
    let a = upload(&[0.0; 6], &[2, 3]);
    let b = upload(&[0.0; 9], &[3, 3]);
    let err = concat_cols(&[&a, &a, &b]).unwrap_err().to_string();
    assert!(
        err.contains("part 2 [3, 3] has 3 rows but part 0 [2, 3] has 2"),
        "{err}"
    );
    let err = concat_cols(&[]).unwrap_err().to_string();
    assert!(err.contains("no tensors"), "{err}");
    let u = Tensor::from_u32(&gpu(), &[0; 2], &[2, 1]).unwrap();
    let err = concat_cols(&[&a, &u]).unwrap_err().to_string();
    assert!(err.contains("part 1 is U32 but part 0 is F32"), "{err}");
}

#[test]
fn slice_matches_cpu() {
    for &(r, c, s, e) in &[
        (1, 1, 0, 1),
        (1, 1, 1, 1),
        (37, 61, 0, 61),
        (37, 61, 5, 42),
        (37, 61, 60, 61),
        (3, 300, 17, 290),
    ] {
        let x = rand_vec(r * c, 40);
        let got = slice_cols(&upload(&x, &[r, c]), s, e).unwrap();
        assert_eq!(got.shape(), &[r, e - s]);
        assert_eq!(
            got.to_vec().unwrap(),
            slice_cols_cpu(&x, c, s, e),
            "{r}x{c}[{s}..{e}]"
        );
    }
}

#[test]
fn slice_and_concat_above_the_binding_limit() {
    // 143 MB in: both ops split in row chunks.
    let (r, c) = (140_000, 256);
    assert!(r * c * 4 > BINDING);
    let x = rand_vec(r * c, 41);
    let t = upload(&x, &[r, c]);
    let (s, e) = (10, 250);
    let sl = slice_cols(&t, s, e).unwrap();
    assert_same(&sl.to_vec().unwrap(), &slice_cols_cpu(&x, c, s, e), "slice");
    let tail = slice_cols(&t, 250, 256).unwrap();
    let back = concat_cols(&[&sl, &tail]).unwrap().to_vec().unwrap();
    assert_same(&back, &slice_cols_cpu(&x, c, s, c), "concat of slices");
}

#[test]
fn slice_errors() {
    let x = upload(&[0.0; 12], &[3, 4]);
    let err = slice_cols(&x, 2, 5).unwrap_err().to_string();
    assert!(
        err.contains("columns 2..5 are out of range for [3, 4] (4 columns)"),
        "{err}"
    );
    let err = slice_cols(&x, 3, 2).unwrap_err().to_string();
    assert!(err.contains("columns 3..2 are out of range"), "{err}");
    let y = upload(&[0.0; 8], &[2, 4]);
    let err = copy_cols_into(&x, 0, &y, 0, 2).unwrap_err().to_string();
    assert!(
        err.contains("has 3 rows but destination [2, 4] has 2"),
        "{err}"
    );
    let err = copy_cols_into(&x, 0, &x, 2, 2).unwrap_err().to_string();
    assert!(err.contains("must not share storage"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// fill and copy

#[test]
fn fill_and_full() {
    for &(r, c) in &[(1, 1), (37, 61), (3, 257)] {
        let t = full(&gpu(), &[r, c], -2.5).unwrap();
        assert_eq!(t.to_vec().unwrap(), vec![-2.5; r * c]);
        fill(&t, 0.75).unwrap();
        assert_eq!(t.to_vec().unwrap(), vec![0.75; r * c]);
    }
    let u = Tensor::empty_typed(&gpu(), &[37, 61], DType::U32).unwrap();
    fill_u32(&u, 0xdead_beef).unwrap();
    assert_eq!(u.to_u32().unwrap(), vec![0xdead_beef; 37 * 61]);
    // A fill leaves other tensors alone.
    let a = upload(&[1.0; 5], &[5]);
    let b = full(&gpu(), &[5], 9.0).unwrap();
    fill(&a, 3.0).unwrap();
    assert_eq!(b.to_vec().unwrap(), vec![9.0; 5]);
}

#[test]
fn fill_above_the_binding_limit_and_65535_workgroups() {
    // 140 MB: two chunks, each over 65,535 workgroups.
    let n = BINDING / 4 + 1_000_003;
    let t = full(&gpu(), &[n], 1.5).unwrap();
    let v = t.to_vec().unwrap();
    assert_eq!(v.len(), n);
    assert!(v.iter().all(|&x| x == 1.5));
}

#[test]
fn copies() {
    let (r, c) = (37, 61);
    let x = rand_vec(r * c, 50);
    let t = upload(&x, &[r, c]);
    let full_copy = copy(&t).unwrap();
    assert!(!full_copy.same_storage(&t));
    assert_eq!(full_copy.to_vec().unwrap(), x);
    let rows = copy_rows(&t, 5, 11).unwrap();
    assert_eq!(rows.shape(), &[11, c]);
    assert_eq!(rows.to_vec().unwrap(), copy_rows_cpu(&x, c, 5, 11));
    let one = copy_rows(&upload(&[4.0], &[1, 1]), 0, 1).unwrap();
    assert_eq!(one.to_vec().unwrap(), vec![4.0]);
    // Into the middle of a destination; the rest stays.
    let dst = full(&gpu(), &[20, c], -1.0).unwrap();
    copy_rows_into(&t, 30, &dst, 3, 7).unwrap();
    let got = dst.to_vec().unwrap();
    assert!(got[..3 * c].iter().all(|&v| v == -1.0));
    assert_eq!(got[3 * c..10 * c], x[30 * c..37 * c]);
    assert!(got[10 * c..].iter().all(|&v| v == -1.0));
    // U32.
    let u = Tensor::from_u32(&gpu(), &[1, 2, 3, 4, 5, 6], &[3, 2]).unwrap();
    assert_eq!(
        copy_rows(&u, 1, 2).unwrap().to_u32().unwrap(),
        vec![3, 4, 5, 6]
    );
}

#[test]
fn copy_errors() {
    let t = upload(&[0.0; 12], &[4, 3]);
    let err = copy_rows(&t, 2, 3).unwrap_err().to_string();
    assert!(
        err.contains("source rows 2..5 are out of range for [4, 3] (4 rows)"),
        "{err}"
    );
    let d = upload(&[0.0; 6], &[2, 3]);
    let err = copy_rows_into(&t, 0, &d, 1, 2).unwrap_err().to_string();
    assert!(
        err.contains("destination rows 1..3 are out of range"),
        "{err}"
    );
    let w = upload(&[0.0; 8], &[2, 4]);
    let err = copy_rows_into(&t, 0, &w, 0, 1).unwrap_err().to_string();
    assert!(
        err.contains("has 3 columns but destination [2, 4] has 4"),
        "{err}"
    );
    let err = copy_rows_into(&t, 0, &t, 2, 2).unwrap_err().to_string();
    assert!(err.contains("must not share storage"), "{err}");
}
