//! Launcher for `shaders/sort.wgsl`: the one GPU sort of the crate, a stable LSD radix sort of
//! u32 indices carrying their positions, and lower bounds into the sorted keys.
//!
//! k-means groups its points by cluster with it ([`crate::quant::kmeans`]: members of a cluster
//! in point order) and scatter-add groups rows by target ([`super::movement::Segments`]): both
//! need a *stable* sort, so that segment sums run in position order and are bit-identical run
//! to run. Nothing is read back.

use crate::error::Result;
use crate::gpu::ShaderSource;
use crate::kernels::launch::{check_u32, groups, rows_of, too_large, u32_of, WG};
use crate::tensor::{DType, Tensor};

/// The sort shader.
pub const SHADER: ShaderSource = ShaderSource {
    name: "sort",
    code: with_prelude!("sort.wgsl"),
};

/// Keys per radix block (one per invocation of `radix_count` and `radix_scatter`).
const BLOCK: usize = 256;
/// Elements per workgroup of the scan (four per invocation).
const SCAN_BLOCK: usize = 1024;

uniform! {
    #[derive(Default)]
    struct SortParams {
        m: u32,
        n: u32,
        shift: u32,
        nblocks: u32,
        len: u32,
        start: u32,
        _p0: u32,
        _p1: u32,
    }
}

/// Sorts `min(idx[i], bound)` stably, carrying the positions `i`: returns the sorted keys and
/// the positions in sorted order (both U32 `[m]`, `m = idx.numel()`, any input shape read
/// flat). Indices above `bound` sort last as `bound`, so `bound` is where a caller puts "none
/// of the above" (scatter-add: targets out of range). Passes: one per byte of `bound`.
pub fn sort_indices(idx: &Tensor, bound: usize) -> Result<(Tensor, Tensor)> {
    const OP: &str = "sort_indices";
    check_u32(idx, OP, "the indices")?;
    let gpu = idx.gpu();
    let m = idx.numel();
    let base = SortParams {
        m: u32_of(m, "the number of indices", OP)?,
        n: u32_of(bound, "the bound", OP)?,
        ..Default::default()
    };
    let mut keys = Tensor::empty_typed(gpu, &[m], DType::U32)?;
    let mut vals = Tensor::empty_typed(gpu, &[m], DType::U32)?;
    if m == 0 {
        return Ok((keys, vals));
    }
    let nblocks = m.div_ceil(BLOCK);
    let counts_len = nblocks * BLOCK;
    let cap = gpu.kernel_limits().max_storage_binding;
    if counts_len as u64 * 4 > cap {
        return Err(too_large(
            format!("sorting {m} indices on the GPU"),
            counts_len as u64 * 4,
            cap,
        ));
    }
    gpu.dispatch(
        &SHADER,
        "sort_init",
        &[],
        bytemuck::bytes_of(&base),
        &[idx.range(), keys.range(), vals.range()],
        groups(m, WG, OP)?,
    )?;
    // Keys lie in 0..=bound: one pass per 8 bits of the bound.
    let passes = (32 - base.n.leading_zeros()).div_ceil(8);
    let counts = Tensor::empty_typed(gpu, &[counts_len], DType::U32)?;
    for pass in 0..passes {
        let params = SortParams {
            shift: pass * 8,
            nblocks: u32_of(nblocks, "the number of blocks", OP)?,
            ..base
        };
        gpu.dispatch(
            &SHADER,
            "radix_count",
            &[],
            bytemuck::bytes_of(&params),
            &[keys.range(), counts.range()],
            params.nblocks,
        )?;
        scan_exclusive(&counts)?;
        let keys2 = Tensor::empty_typed(gpu, &[m], DType::U32)?;
        let vals2 = Tensor::empty_typed(gpu, &[m], DType::U32)?;
        gpu.dispatch(
            &SHADER,
            "radix_scatter",
            &[],
            bytemuck::bytes_of(&params),
            &[
                keys.range(),
                vals.range(),
                counts.range(),
                keys2.range(),
                vals2.range(),
            ],
            params.nblocks,
        )?;
        keys = keys2;
        vals = vals2;
    }
    Ok((keys, vals))
}

/// `out[t]` = the number of `sorted` keys below `t`, for `t` in `0..count` (U32 `[count]`):
/// with keys below `count - 1`, segment `t` is `sorted[out[t]..out[t + 1]]`. `sorted` must be
/// ascending (as [`sort_indices`] leaves it). The output is written in row chunks, so it may
/// exceed one storage binding.
pub fn lower_bounds(sorted: &Tensor, count: usize) -> Result<Tensor> {
    const OP: &str = "lower_bounds";
    check_u32(sorted, OP, "the sorted keys")?;
    let gpu = sorted.gpu();
    let m = sorted.numel();
    let out = Tensor::empty_typed(gpu, &[count], DType::U32)?;
    if count == 0 {
        return Ok(out);
    }
    // With no keys every bound is 0; a zero-length binding is not allowed, so bind a dummy
    // key that the search never reads (m = 0).
    let dummy;
    let keys = if m == 0 {
        dummy = Tensor::empty_typed(gpu, &[1], DType::U32)?;
        &dummy
    } else {
        sorted
    };
    let base = SortParams {
        m: u32_of(m, "the number of keys", OP)?,
        ..Default::default()
    };
    for (start, len) in gpu.row_chunks(count, &[4])? {
        let params = SortParams {
            len: u32_of(len, "the chunk length", OP)?,
            start: u32_of(start, "the chunk start", OP)?,
            ..base
        };
        gpu.dispatch(
            &SHADER,
            "lower_bounds",
            &[],
            bytemuck::bytes_of(&params),
            &[keys.range(), rows_of(&out, start, len, 1)],
            groups(len, WG, OP)?,
        )?;
    }
    Ok(out)
}

/// In-place exclusive prefix sum of a U32 tensor: 1,024 values per workgroup, then the block
/// totals scanned the same way (recursively) and added back, so every loop has four steps.
fn scan_exclusive(data: &Tensor) -> Result<()> {
    const OP: &str = "scan_exclusive";
    let gpu = data.gpu();
    let len = data.numel();
    let ng = len.div_ceil(SCAN_BLOCK);
    if ng == 0 {
        return Ok(());
    }
    let sums = Tensor::empty_typed(gpu, &[ng], DType::U32)?;
    let params = SortParams {
        nblocks: u32_of(ng, "the number of blocks", OP)?,
        len: u32_of(len, "the length", OP)?,
        ..Default::default()
    };
    gpu.dispatch(
        &SHADER,
        "scan_local",
        &[],
        bytemuck::bytes_of(&params),
        &[data.range(), sums.range()],
        params.nblocks,
    )?;
    if ng > 1 {
        scan_exclusive(&sums)?;
        gpu.dispatch(
            &SHADER,
            "scan_add",
            &[],
            bytemuck::bytes_of(&params),
            &[data.range(), sums.range()],
            params.nblocks,
        )?;
    }
    Ok(())
}

/// CPU reference of [`sort_indices`]: a stable counting sort of `min(idx[i], bound)`.
pub fn sort_indices_cpu(idx: &[u32], bound: u32) -> (Vec<u32>, Vec<u32>) {
    let mut order: Vec<u32> = (0..idx.len() as u32).collect();
    order.sort_by_key(|&i| idx[i as usize].min(bound)); // `sort_by_key` is stable
    let keys = order.iter().map(|&i| idx[i as usize].min(bound)).collect();
    (keys, order)
}

/// CPU reference of [`lower_bounds`].
pub fn lower_bounds_cpu(sorted: &[u32], count: usize) -> Vec<u32> {
    (0..count)
        .map(|t| sorted.partition_point(|&k| (k as usize) < t) as u32)
        .collect()
}
