//! Launcher for `shaders/kmeans.wgsl`: the deterministic pieces of GPU k-means (the sort that
//! groups points by cluster is [`super::sort`]).
//!
//! Every float sum runs in a fixed order (no float atomics), so each launcher gives identical
//! results run to run. Row-indexed data (`x`) is walked in `Gpu::row_chunks` so that inputs
//! above the storage-binding limit work; per-point arrays (`n` u32 or f32 values) and per-cluster
//! arrays (`k × d` floats) must each fit one binding.

use crate::error::{Error, Result};
use crate::gpu::{BufRange, Gpu, ShaderSource};
use crate::kernels::codebook::Metric;
use crate::kernels::launch::{groups, u32_of};
use crate::kernels::LOOP_BUDGET;
use crate::tensor::{DType, Tensor};

/// The kmeans shader.
pub const SHADER: ShaderSource = ShaderSource {
    name: "kmeans",
    code: with_prelude!("kmeans.wgsl"),
};

/// Points per block of [`block_sums`].
pub const BLOCK: usize = 256;

/// Members whose distances one `centroid_finish` dispatch sums per cluster: 64 invocations
/// stride over them, next to a few loops over the dimensions.
const FINISH_WINDOW: usize = 64 * (LOOP_BUDGET / 2);

uniform! {
    struct Params {
        n: u32,
        k: u32,
        d: u32,
        nb: u32,
        _p2: u32,
        first: u32,
        metric: u32,
        count: u32,
        r0: u32,
        rows: u32,
        a: u32,
        b: u32,
        u: f32,
        last: u32,
        _p0: u32,
        _p1: u32,
    }
}

fn params() -> Params {
    bytemuck::Zeroable::zeroed()
}

fn metric_code(m: Metric) -> u32 {
    match m {
        Metric::L2 => 0,
        Metric::Cosine => 1,
    }
}

fn dispatch(gpu: &Gpu, entry: &str, p: &Params, bufs: &[BufRange<'_>], groups: u32) -> Result<()> {
    gpu.dispatch(&SHADER, entry, &[], bytemuck::bytes_of(p), bufs, groups)
}

fn want(t: &Tensor, dtype: DType, numel: usize, op: &'static str, name: &str) -> Result<()> {
    if t.dtype() != dtype || t.numel() != numel {
        return Err(Error::shape(
            op,
            format!("{name} must be {dtype:?} with {numel} elements, got {t:?}"),
        ));
    }
    Ok(())
}

/// Number of [`BLOCK`]-sized blocks covering `n` points.
pub fn block_count(n: usize) -> usize {
    n.div_ceil(BLOCK)
}

/// Deterministic block sums: `out[b] = Σ v[256·b .. 256·b + 256)` in index order, for the `n`
/// values of `v` (F32). `out` must hold [`block_count`]`(n)` floats.
pub fn block_sums_into(v: &Tensor, out: BufRange<'_>) -> Result<()> {
    if v.dtype() != DType::F32 {
        return Err(Error::shape("block_sums", "values must be F32"));
    }
    let n = v.numel();
    let nb = block_count(n);
    if out.size < nb as u64 * 4 {
        return Err(Error::shape(
            "block_sums",
            format!("output holds fewer than {nb} floats"),
        ));
    }
    let p = Params {
        n: u32_of(n, "n", "block_sums_into")?,
        nb: u32_of(nb, "nb", "block_sums_into")?,
        ..params()
    };
    dispatch(
        v.gpu(),
        "block_sums",
        &p,
        &[v.range(), out],
        groups(nb, 64, "block_sums")?,
    )
}

/// Deterministic block sums of `v` as a new F32 tensor of [`block_count`] values.
pub fn block_sums(v: &Tensor) -> Result<Tensor> {
    let out = Tensor::empty(v.gpu(), &[block_count(v.numel()).max(1)])?;
    block_sums_into(v, out.range())?;
    Ok(out)
}

/// Per-cluster sums of the rows of `x [n, d]` (F32 `[k, d]`): cluster c sums, per dimension and
/// in point order, the rows `perm[starts[c] .. starts[c + 1]]`, walking x in row chunks.
///
/// A workgroup walks one cluster's members serially, and a cluster may hold more members than
/// one invocation may loop over ([`LOOP_BUDGET`]): x is walked in chunks of about 31,000 rows
/// (fewer for rows over 256 values; the dimensions in windows when there are more than 16,384
/// per row) whose partial sums add up in point order.
pub fn centroid_sums(x: &Tensor, perm: &Tensor, starts: &Tensor, k: usize) -> Result<Tensor> {
    let (n, d) = (x.rows(), x.cols());
    want(perm, DType::U32, n, "centroid_sums", "perm")?;
    want(starts, DType::U32, k + 1, "centroid_sums", "starts")?;
    let gpu = x.gpu();
    let acc = Tensor::zeros(gpu, &[k, d])?;
    if n == 0 {
        return Ok(acc);
    }
    let v4 = d.is_multiple_of(4);
    let entry = if v4 {
        "centroid_accum_v4"
    } else {
        "centroid_accum_s"
    };
    // Per invocation and dispatch: one pass per 64 columns of the window, each over the chunk's
    // members of the cluster (runs of 64 add one iteration per run) and two binary searches.
    let width = if v4 { d / 4 } else { d };
    let col_passes = width.div_ceil(64).clamp(1, 256);
    let window_cols = 64 * col_passes;
    let window_rows = ((LOOP_BUDGET - 128) / col_passes * 64 / 66).max(64);
    let chunks = gpu.row_chunks_at_most(n, &[d as u64 * 4], window_rows)?;
    for c0 in (0..width).step_by(window_cols) {
        for (i, &(r0, rows)) in chunks.iter().enumerate() {
            let p = Params {
                n: u32_of(n, "n", "centroid_sums")?,
                k: u32_of(k, "k", "centroid_sums")?,
                d: u32_of(d, "d", "centroid_sums")?,
                r0: u32_of(r0, "r0", "centroid_sums")?,
                rows: u32_of(rows, "rows", "centroid_sums")?,
                first: (i == 0) as u32,
                a: u32_of(c0, "a", "centroid_sums")?,
                b: u32_of((c0 + window_cols).min(width), "b", "centroid_sums")?,
                ..params()
            };
            dispatch(
                gpu,
                entry,
                &p,
                &[
                    x.row_range(r0, rows),
                    perm.range(),
                    starts.range(),
                    acc.range(),
                ],
                groups(k, 1, "centroid_sums")?,
            )?;
        }
    }
    Ok(acc)
}

/// Turns per-cluster sums into the new centroids `new [k, d]`: the mean of the members (for
/// cosine renormalised to unit norm); an empty cluster, or a cosine mean of norm 0, keeps its
/// `old` centroid. Writes 4 u32 per cluster to `stats`: count, then the bits of three f32: the
/// sum of the members' `dist`, ‖new − old‖² and ‖old‖².
#[allow(clippy::too_many_arguments)]
pub fn centroid_finish(
    sums: &Tensor,
    old: &Tensor,
    perm: &Tensor,
    starts: &Tensor,
    dist: &Tensor,
    metric: Metric,
    new: &Tensor,
    stats: BufRange<'_>,
) -> Result<()> {
    let (k, d) = (old.rows(), old.cols());
    let n = perm.numel();
    for (t, name) in [(sums, "sums"), (new, "new")] {
        want(t, DType::F32, k * d, "centroid_finish", name)?;
    }
    want(starts, DType::U32, k + 1, "centroid_finish", "starts")?;
    want(dist, DType::F32, n, "centroid_finish", "dist")?;
    if stats.size < (4 * k) as u64 * 4 {
        return Err(Error::shape(
            "centroid_finish",
            "stats holds fewer than 4 values per cluster",
        ));
    }
    let gpu = old.gpu();
    let (pr, dr) = if n == 0 {
        (starts.range(), sums.range())
    } else {
        (perm.range(), dist.range())
    };
    // Windows of members per cluster: every dispatch but the last only adds its window's
    // distances to the statistics.
    let windows = n.div_ceil(FINISH_WINDOW).max(1);
    for w in 0..windows {
        let p = Params {
            n: u32_of(n, "n", "centroid_finish")?,
            k: u32_of(k, "k", "centroid_finish")?,
            d: u32_of(d, "d", "centroid_finish")?,
            metric: metric_code(metric),
            a: u32_of(w * FINISH_WINDOW, "a", "centroid_finish")?,
            b: u32_of(FINISH_WINDOW, "b", "centroid_finish")?,
            first: (w == 0) as u32,
            last: (w + 1 == windows) as u32,
            ..params()
        };
        dispatch(
            gpu,
            "centroid_finish",
            &p,
            &[
                sums.range(),
                old.range(),
                pr,
                starts.range(),
                dr,
                new.range(),
                stats,
            ],
            groups(k, 1, "centroid_finish")?,
        )?;
    }
    Ok(())
}

/// For each `(dst, src)` pair of `pairs` (U32 `[m, 2]`), sets row `dst` of `c` to row `src` of
/// `x` (normalised for cosine; a zero row stays zero).
pub fn set_rows(x: &Tensor, pairs: &Tensor, c: &Tensor, metric: Metric) -> Result<()> {
    if pairs.dtype() != DType::U32 || !pairs.numel().is_multiple_of(2) {
        return Err(Error::shape("set_rows", "pairs must be U32 [m, 2]"));
    }
    let m = pairs.numel() / 2;
    let (n, d) = (x.rows(), x.cols());
    if c.cols() != d {
        return Err(Error::shape("set_rows", "x and c differ in width"));
    }
    let gpu = x.gpu();
    if m == 0 || n == 0 {
        return Ok(());
    }
    for (r0, rows) in gpu.row_chunks(n, &[d as u64 * 4])? {
        let p = Params {
            d: u32_of(d, "d", "set_rows")?,
            count: u32_of(m, "count", "set_rows")?,
            r0: u32_of(r0, "r0", "set_rows")?,
            rows: u32_of(rows, "rows", "set_rows")?,
            metric: metric_code(metric),
            ..params()
        };
        dispatch(
            gpu,
            "set_rows",
            &p,
            &[pairs.range(), x.row_range(r0, rows), c.range()],
            groups(m, 1, "set_rows")?,
        )?;
    }
    Ok(())
}

/// Splits a cluster: `c[new] = c[donor] + scale·dir`, `c[donor] −= scale·dir` (both
/// renormalised for cosine). `dir` is F32 `[d]`.
pub fn split(
    c: &Tensor,
    donor: usize,
    new: usize,
    dir: &Tensor,
    scale: f32,
    metric: Metric,
) -> Result<()> {
    let (k, d) = (c.rows(), c.cols());
    want(dir, DType::F32, d, "split", "dir")?;
    if donor >= k || new >= k || donor == new {
        return Err(Error::Invalid(format!(
            "split: clusters {donor} and {new} of {k}"
        )));
    }
    let p = Params {
        d: u32_of(d, "d", "split")?,
        a: u32_of(donor, "a", "split")?,
        b: u32_of(new, "b", "split")?,
        u: scale,
        metric: metric_code(metric),
        ..params()
    };
    dispatch(c.gpu(), "split", &p, &[dir.range(), c.range()], 1)
}

/// One k-means++ distance update: `mind[i] = min(mind[i], dist(x_i, c[center]))` (set when
/// `first`), squared L2 or 1 − cos.
pub fn pp_update(
    x: &Tensor,
    c: &Tensor,
    center: usize,
    mind: &Tensor,
    first: bool,
    metric: Metric,
) -> Result<()> {
    let (n, d) = (x.rows(), x.cols());
    want(mind, DType::F32, n, "pp_update", "mind")?;
    let gpu = x.gpu();
    for (r0, rows) in gpu.row_chunks(n, &[d as u64 * 4])? {
        let p = Params {
            n: u32_of(n, "n", "pp_update")?,
            d: u32_of(d, "d", "pp_update")?,
            count: u32_of(center, "count", "pp_update")?,
            r0: u32_of(r0, "r0", "pp_update")?,
            rows: u32_of(rows, "rows", "pp_update")?,
            first: first as u32,
            metric: metric_code(metric),
            ..params()
        };
        let entry = if d.is_multiple_of(4) {
            "pp_update_v4"
        } else {
            "pp_update"
        };
        dispatch(
            gpu,
            entry,
            &p,
            &[x.row_range(r0, rows), c.range(), mind.range()],
            groups(rows, 64, "pp_update")?,
        )?;
    }
    Ok(())
}

/// One k-means++ draw: picks the first point whose running sum of `mind` exceeds `u` × total
/// (`partials` are [`block_sums`] of `mind`), or point ⌊u·n⌋ when the total is 0, and writes
/// the pair `(step, point)` to `pair` (U32 `[2]`).
pub fn pp_pick(partials: &Tensor, mind: &Tensor, u: f32, step: usize, pair: &Tensor) -> Result<()> {
    let n = mind.numel();
    want(pair, DType::U32, 2, "pp_pick", "pair")?;
    want(partials, DType::F32, block_count(n), "pp_pick", "partials")?;
    // Sums of 256 partials each, so that the pick walks at most 256 blocks.
    let supers = block_sums(partials)?;
    let p = Params {
        n: u32_of(n, "n", "pp_pick")?,
        nb: u32_of(block_count(n), "nb", "pp_pick")?,
        u,
        count: u32_of(step, "count", "pp_pick")?,
        ..params()
    };
    dispatch(
        mind.gpu(),
        "pp_pick",
        &p,
        &[partials.range(), mind.range(), pair.range(), supers.range()],
        1,
    )
}
