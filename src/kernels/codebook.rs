//! Launcher for the generated codebook shader ([`super::codebook_gen`], written by `build.rs`):
//! fused nearest-code search and top-k.
//!
//! Queries `x [.., n, d]` are compared with codes `[k, d]` (one codebook shared by every query)
//! or `[b, k, d]` (one codebook per batch, with `x [b, n, d]`). Each invocation keeps an R × C
//! tile of dot products and its queries' running best in registers, so the n × K distance
//! matrix is never materialised. Distances:
//!
//! - [`Metric::L2`]: squared Euclidean distance ‖x − c‖², computed as ‖x‖² + ‖c‖² − 2·x·c and
//!   clamped at 0.
//! - [`Metric::Cosine`]: the cosine *distance* 1 − cos(x, c) ∈ [0, 2] (clamped at 0). A zero
//!   query or a zero code has cosine 0 with everything, so its distance is exactly 1 (never NaN).
//!
//! Ties go to the lower code index, in [`nearest`] and in the order of [`top_k`] lists.
//! Queries are split into row chunks (`Gpu::row_chunks`) so inputs above the storage-binding
//! limit work, and dispatches of more than 65,535 workgroups are folded. Large codebooks are
//! searched in ranges of codes, one dispatch each, that continue the running best (or top-k
//! list) left by the previous range, so that no invocation loops more than [`LOOP_BUDGET`]
//! times per dispatch: about 32,000 / (d + 3) code tiles per range, fewer for top-k.

use crate::error::{Error, Result};
use crate::gpu::{BufRange, Gpu, GpuBuffer, ShaderSource};
use crate::kernels::codebook_gen::{self, TileShape, TILES, TOPK_TILES};
use crate::kernels::launch::{check_f32, groups, u32_of};
use crate::kernels::LOOP_BUDGET;
use crate::tensor::{DType, Tensor};

/// The codebook shader.
pub const SHADER: ShaderSource = ShaderSource {
    name: "codebook",
    // Generated at build time from the tile tables that `tile_shape` reads too.
    code: concat!(
        include_str!("../../shaders/prelude.wgsl"),
        "\n",
        include_str!(concat!(env!("OUT_DIR"), "/codebook.wgsl"))
    ),
};

/// Longest top-k list [`top_k`] supports.
pub const MAX_TOP_K: usize = codebook_gen::KMAX;

/// Distance used to compare queries with codes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Metric {
    /// Squared Euclidean distance.
    #[default]
    L2,
    /// Cosine distance 1 − cos; queries and codes are normalised, zero vectors have cosine 0.
    Cosine,
}

impl Metric {
    fn code(self) -> u32 {
        match self {
            Metric::L2 => 0,
            Metric::Cosine => 1,
        }
    }
}

/// Register-tile shape of the search kernels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tile {
    /// [`Tile::Wide`] on CPU adapters when there are at least 16 codes, [`Tile::Medium`]
    /// otherwise.
    #[default]
    Auto,
    /// 32 queries × 32 codes per invocation, 8 invocations per workgroup: for CPU adapters
    /// (lavapipe), where every storage load is expensive and registers spill cheaply.
    Wide,
    /// 4 queries × 8 codes per invocation, 64 per workgroup: for GPUs.
    Medium,
    /// 1 query × 4 codes per invocation, 64 per workgroup.
    Small,
}

/// Options of a search.
#[derive(Clone, Copy, Debug, Default)]
pub struct SearchOptions {
    /// Distance.
    pub metric: Metric,
    /// Tile shape.
    pub tile: Tile,
}

impl SearchOptions {
    /// Default options with the given metric.
    pub fn metric(metric: Metric) -> Self {
        SearchOptions {
            metric,
            ..Default::default()
        }
    }
}

/// Result of a search: for each query, the index of its best code(s) and the distance(s).
#[derive(Clone, Debug)]
pub struct Nearest {
    /// Code indices, U32: `[.., n]` for [`nearest`], `[.., n, k]` for [`top_k`].
    pub index: Tensor,
    /// Distances (squared L2, or 1 − cos), F32, same shape as `index`.
    pub dist: Tensor,
}

uniform! {
    struct Params {
        rows: u32,
        row0: u32,
        npb: u32,
        k: u32,
        d: u32,
        metric: u32,
        b0: u32,
        c_off: u32,
        a_off: u32,
        gpb: u32,
        topk: u32,
        bfirst: u32,
        c_begin: u32,
        c_end: u32,
        flags: u32,
        _pad: u32,
    }
}

/// `Params::flags`: the first code range (nothing to continue).
const FIRST_RANGE: u32 = 1;
/// `Params::flags`: the last code range (distances are clamped at 0).
const LAST_RANGE: u32 = 2;

/// The register tile of a search: one of the generator's tables ([`codebook_gen::TILES`]).
fn tile_shape(tile: Tile) -> TileShape {
    let name = match tile {
        Tile::Wide => "wide",
        Tile::Medium | Tile::Auto => "medium",
        Tile::Small => "small",
    };
    *TILES
        .iter()
        .find(|t| t.name == name)
        .expect("every Tile has a generated entry point")
}

/// Codes one search dispatch compares with, a multiple of the tile width: each tile costs a
/// loop over the `width` values of a row (d, or d / 4 for vec4 rows), and for top-k up to `kk`
/// insertion steps for each of its query-code pairs (a list shifts one entry per step), on top
/// of a few fixed loops; all within [`LOOP_BUDGET`].
fn codes_per_dispatch(width: usize, qpi: usize, tile_codes: usize, topk: Option<usize>) -> usize {
    let per_tile = width + 3 + topk.map_or(0, |kk| qpi * tile_codes * kk);
    let fixed = 4 * qpi + topk.map_or(0, |kk| qpi * (MAX_TOP_K + 2 * kk + 2));
    (LOOP_BUDGET.saturating_sub(fixed) / per_tile).max(1) * tile_codes
}

fn resolve(gpu: &Gpu, tile: Tile, k: usize) -> Tile {
    match tile {
        Tile::Auto if gpu.adapter().is_cpu && k >= 16 => Tile::Wide,
        Tile::Auto => Tile::Medium,
        t => t,
    }
}

/// Layout of a search: batches, queries per batch, codes, dims.
#[derive(Clone, Copy, Debug)]
struct Layout {
    batches: usize,
    npb: usize,
    k: usize,
    d: usize,
}

fn layout(x: &Tensor, codes: &Tensor, op: &'static str) -> Result<Layout> {
    check_f32(x, op, "x")?;
    check_f32(codes, op, "codes")?;
    if x.rank() < 2 {
        return Err(Error::shape(
            op,
            format!("x must be [.., n, d], got {:?}", x.shape()),
        ));
    }
    let d = x.cols();
    if d == 0 {
        return Err(Error::shape(op, "vectors have 0 dimensions"));
    }
    if codes.cols() != d {
        return Err(Error::shape(
            op,
            format!(
                "x {:?} and codes {:?} differ in the last dimension",
                x.shape(),
                codes.shape()
            ),
        ));
    }
    let lay = match codes.rank() {
        2 => Layout {
            batches: 1,
            npb: x.rows(),
            k: codes.shape()[0],
            d,
        },
        3 => {
            let b = codes.shape()[0];
            if x.rank() != 3 || x.shape()[0] != b {
                return Err(Error::shape(
                    op,
                    format!(
                        "codes {:?} hold {b} codebooks, so x must be [{b}, n, {d}], got {:?}",
                        codes.shape(),
                        x.shape()
                    ),
                ));
            }
            Layout {
                batches: b,
                npb: x.shape()[1],
                k: codes.shape()[1],
                d,
            }
        }
        _ => {
            return Err(Error::shape(
                op,
                format!("codes must be [k, d] or [b, k, d], got {:?}", codes.shape()),
            ))
        }
    };
    if lay.k == 0 {
        return Err(Error::shape(op, "the codebook is empty (k = 0)"));
    }
    let rows = lay.batches as u64 * lay.npb as u64;
    if rows + lay.npb as u64 >= u32::MAX as u64 || lay.k as u64 * lay.d as u64 >= u32::MAX as u64 {
        return Err(Error::Invalid(format!(
            "{op}: {rows} queries of {d} dims against {} codes exceed 32-bit indexing",
            lay.k
        )));
    }
    Ok(lay)
}

fn check_terms(terms: &Tensor, lay: &Layout, op: &'static str) -> Result<()> {
    check_f32(terms, op, "code terms")?;
    if terms.numel() != lay.batches * lay.k * 2 || terms.cols() != 2 {
        return Err(Error::shape(
            op,
            format!(
                "code terms must be [.., {}, 2] for {} codebook(s) of {} codes, got {:?}",
                lay.k,
                lay.batches,
                lay.k,
                terms.shape()
            ),
        ));
    }
    Ok(())
}

/// Per-code terms of a codebook for [`nearest_with`] / [`top_k_with`]: shape
/// `codes.shape()[..-1] + [2]`, (1, ‖c‖²) for L2 and (1/‖c‖ or 0, 0) for cosine. Computing
/// them once lets repeated searches against the same codes skip the pass.
pub fn code_terms(codes: &Tensor, metric: Metric) -> Result<Tensor> {
    check_f32(codes, "code_terms", "codes")?;
    if codes.rank() < 1 || codes.cols() == 0 {
        return Err(Error::shape(
            "code_terms",
            format!(
                "codes must be [.., k, d] with d > 0, got {:?}",
                codes.shape()
            ),
        ));
    }
    let gpu = codes.gpu();
    let mut shape = codes.shape().to_vec();
    *shape.last_mut().expect("rank >= 1") = 2;
    let out = Tensor::empty(gpu, &shape)?;
    let rows = codes.rows();
    let d = codes.cols();
    for (start, n) in gpu.row_chunks(rows, &[d as u64 * 4, 8])? {
        let params = Params {
            rows: u32_of(n, "rows", "code_terms")?,
            d: u32_of(d, "d", "code_terms")?,
            metric: metric.code(),
            ..Params::zeroed()
        };
        gpu.dispatch(
            &SHADER,
            "code_aux",
            &[],
            bytemuck::bytes_of(&params),
            &[codes.row_range(start, n), out.row_range(start, n)],
            groups(n, 64, "code_terms")?,
        )?;
    }
    Ok(out)
}

/// Adds `penalty` (F32, one value per code) to the additive term of `terms` in place:
/// a penalty of +inf removes that code from later searches.
pub fn add_code_penalty(terms: &Tensor, penalty: &Tensor) -> Result<()> {
    check_f32(terms, "add_code_penalty", "terms")?;
    check_f32(penalty, "add_code_penalty", "penalty")?;
    if terms.cols() != 2 || penalty.numel() != terms.rows() {
        return Err(Error::shape(
            "add_code_penalty",
            format!(
                "penalty {:?} must hold one value per row of terms {:?}",
                penalty.shape(),
                terms.shape()
            ),
        ));
    }
    if terms.same_storage(penalty) {
        return Err(Error::aliasing(
            "add_code_penalty",
            "penalty must not alias terms",
        ));
    }
    let gpu = terms.gpu();
    let rows = terms.rows();
    for (start, n) in gpu.row_chunks(rows, &[8, 4])? {
        let params = Params {
            rows: u32_of(n, "rows", "add_code_penalty")?,
            ..Params::zeroed()
        };
        gpu.dispatch(
            &SHADER,
            "add_penalty",
            &[],
            bytemuck::bytes_of(&params),
            &[
                BufRange {
                    buf: penalty.buffer(),
                    offset: start as u64 * 4,
                    size: n as u64 * 4,
                },
                terms.row_range(start, n),
            ],
            groups(n, 64, "add_code_penalty")?,
        )?;
    }
    Ok(())
}

impl Params {
    fn zeroed() -> Self {
        bytemuck::Zeroable::zeroed()
    }
}

/// Index (U32) and distance (F32) of the nearest code for every query of `x`.
///
/// `x [.., n, d]` with `codes [k, d]`, or `x [b, n, d]` with `codes [b, k, d]` (codebook i for
/// the queries of batch i). Returns tensors of shape `x.shape()[..-1]`.
pub fn nearest(x: &Tensor, codes: &Tensor, metric: Metric) -> Result<Nearest> {
    nearest_with(x, codes, None, &SearchOptions::metric(metric))
}

/// [`nearest`] with options and, optionally, precomputed [`code_terms`] (which must have been
/// computed with the same metric).
pub fn nearest_with(
    x: &Tensor,
    codes: &Tensor,
    terms: Option<&Tensor>,
    opts: &SearchOptions,
) -> Result<Nearest> {
    let shape = &x.shape()[..x.rank().saturating_sub(1)];
    let gpu = x.gpu();
    layout(x, codes, "nearest")?;
    let index = Tensor::empty_typed(gpu, shape, DType::U32)?;
    let dist = Tensor::empty(gpu, shape)?;
    nearest_into(x, codes, terms, opts, &index, &dist)?;
    Ok(Nearest { index, dist })
}

/// [`nearest_with`] writing into existing `index` (U32) and `dist` (F32) tensors of one element
/// per query.
pub fn nearest_into(
    x: &Tensor,
    codes: &Tensor,
    terms: Option<&Tensor>,
    opts: &SearchOptions,
    index: &Tensor,
    dist: &Tensor,
) -> Result<()> {
    let lay = layout(x, codes, "nearest")?;
    let rows = lay.batches * lay.npb;
    if index.dtype() != DType::U32 || index.numel() != rows {
        return Err(Error::shape(
            "nearest",
            format!("index must be U32 with {rows} elements, got {index:?}"),
        ));
    }
    check_f32(dist, "nearest", "dist")?;
    if dist.numel() != rows {
        return Err(Error::shape(
            "nearest",
            format!("dist must have {rows} elements, got {:?}", dist.shape()),
        ));
    }
    for t in [Some(x), Some(codes), terms].into_iter().flatten() {
        if t.same_storage(index) || t.same_storage(dist) {
            return Err(Error::aliasing(
                "nearest",
                "outputs must not alias an input",
            ));
        }
    }
    if index.same_storage(dist) {
        return Err(Error::aliasing(
            "nearest",
            "index and dist must be different tensors",
        ));
    }
    search(
        x,
        codes,
        terms,
        opts,
        &lay,
        None,
        index.buffer(),
        dist.buffer(),
    )
}

/// The `k` nearest codes of every query, best first (ties to the lower index), 1 ≤ k ≤
/// [`MAX_TOP_K`] and k ≤ the number of codes. Shapes as [`nearest`] with a trailing `k`.
/// Should fewer than `k` codes have a finite distance (codes excluded by an infinite
/// [`add_code_penalty`]), the list ends in entries of index `u32::MAX` and distance +inf.
pub fn top_k(x: &Tensor, codes: &Tensor, k: usize, metric: Metric) -> Result<Nearest> {
    top_k_with(x, codes, k, None, &SearchOptions::metric(metric))
}

/// [`top_k`] with options (the tile option is ignored) and optional precomputed
/// [`code_terms`].
pub fn top_k_with(
    x: &Tensor,
    codes: &Tensor,
    k: usize,
    terms: Option<&Tensor>,
    opts: &SearchOptions,
) -> Result<Nearest> {
    let lay = layout(x, codes, "top_k")?;
    if k == 0 || k > MAX_TOP_K || k > lay.k {
        return Err(Error::Invalid(format!(
            "top_k: k = {k} must be in 1..={} and at most the {} codes",
            MAX_TOP_K, lay.k
        )));
    }
    let gpu = x.gpu();
    let mut shape = x.shape()[..x.rank() - 1].to_vec();
    shape.push(k);
    let index = Tensor::empty_typed(gpu, &shape, DType::U32)?;
    let dist = Tensor::empty(gpu, &shape)?;
    search(
        x,
        codes,
        terms,
        opts,
        &lay,
        Some(k),
        index.buffer(),
        dist.buffer(),
    )?;
    Ok(Nearest { index, dist })
}

#[allow(clippy::too_many_arguments)]
fn search(
    x: &Tensor,
    codes: &Tensor,
    terms: Option<&Tensor>,
    opts: &SearchOptions,
    lay: &Layout,
    topk: Option<usize>,
    out_idx: &GpuBuffer,
    out_dist: &GpuBuffer,
) -> Result<()> {
    let op = if topk.is_some() { "top_k" } else { "nearest" };
    let gpu = x.gpu();
    let owned;
    let terms = match terms {
        Some(t) => {
            check_terms(t, lay, op)?;
            t
        }
        None => {
            owned = code_terms(codes, opts.metric)?;
            &owned
        }
    };
    let rows = lay.batches * lay.npb;
    if rows == 0 {
        return Ok(());
    }
    let (k, d) = (lay.k, lay.d);
    let per = topk.unwrap_or(1);
    let v4 = d.is_multiple_of(4);
    let (entry, shape) = match topk {
        Some(_) => (TOPK_TILES[0].name.to_string(), TOPK_TILES[0]),
        None => {
            let t = tile_shape(resolve(gpu, opts.tile, k));
            (format!("nearest_{}", t.name), t)
        }
    };
    let (qpi, wg, tile_codes) = (shape.queries, shape.workgroup, shape.codes);
    let width = if v4 { d / 4 } else { d };
    let range = codes_per_dispatch(width, qpi, tile_codes, topk);
    let entry = format!("{entry}_{}", if v4 { "v4" } else { "s" });
    let qpw = qpi * wg;
    let lim = gpu.kernel_limits();
    let code_bytes = (k * d) as u64 * 4;
    let term_bytes = k as u64 * 8;
    // Code bindings: the whole tensors when they fit, else one codebook at a time (copied to
    // an aligned scratch buffer when its offset is not aligned).
    let whole =
        codes.bytes() <= lim.max_storage_binding && terms.bytes() <= lim.max_storage_binding;
    if !whole && (code_bytes > lim.max_storage_binding || term_bytes > lim.max_storage_binding) {
        return Err(Error::TooLarge {
            what: format!("one codebook of {k} codes × {d} dims"),
            bytes: code_bytes.max(term_bytes),
            limit_name: "max_storage_buffer_binding_size",
            limit: lim.max_storage_binding,
        });
    }
    let row_bytes = [d as u64 * 4, per as u64 * 4];
    let metric = opts.metric.code();
    for (row0, n) in gpu.row_chunks(rows, &row_bytes)? {
        let bfirst = row0 / lay.npb;
        let blast = (row0 + n - 1) / lay.npb;
        let gpb = n.min(lay.npb).div_ceil(qpw);
        let xr = x.row_range(row0, n);
        let oi = BufRange {
            buf: out_idx,
            offset: row0 as u64 * per as u64 * 4,
            size: (n * per) as u64 * 4,
        };
        let od = BufRange {
            buf: out_dist,
            offset: row0 as u64 * per as u64 * 4,
            size: (n * per) as u64 * 4,
        };
        let base = Params {
            rows: u32_of(n, "rows", "search")?,
            row0: u32_of(row0, "row0", "search")?,
            npb: u32_of(lay.npb, "npb", "search")?,
            k: u32_of(k, "k", "search")?,
            d: u32_of(d, "d", "search")?,
            metric,
            b0: 0,
            c_off: 0,
            a_off: 0,
            gpb: u32_of(gpb, "gpb", "search")?,
            topk: u32_of(per, "topk", "search")?,
            bfirst: u32_of(bfirst, "bfirst", "search")?,
            c_begin: 0,
            c_end: u32_of(k, "c_end", "search")?,
            flags: FIRST_RANGE | LAST_RANGE,
            _pad: 0,
        };
        for c_begin in (0..k).step_by(range) {
            let c_end = (c_begin + range).min(k);
            let base = Params {
                c_begin: u32_of(c_begin, "c_begin", "search")?,
                c_end: u32_of(c_end, "c_end", "search")?,
                flags: if c_begin == 0 { FIRST_RANGE } else { 0 }
                    | if c_end == k { LAST_RANGE } else { 0 },
                ..base
            };
            if whole {
                let wgs = groups((blast - bfirst + 1) * gpb, 1, op)?;
                gpu.dispatch(
                    &SHADER,
                    &entry,
                    &[],
                    bytemuck::bytes_of(&base),
                    &[xr, codes.range(), terms.range(), oi, od],
                    wgs,
                )?;
            } else {
                for b in bfirst..=blast {
                    let (cbuf, coff) =
                        aligned_slice(gpu, codes.buffer(), b as u64 * code_bytes, code_bytes)?;
                    let (tbuf, toff) =
                        aligned_slice(gpu, terms.buffer(), b as u64 * term_bytes, term_bytes)?;
                    let params = Params {
                        b0: u32_of(b, "b0", "search")?,
                        c_off: u32_of(coff.0 / 4, "c_off", "search")?,
                        a_off: u32_of(toff.0 / 8, "a_off", "search")?,
                        bfirst: u32_of(b, "bfirst", "search")?,
                        ..base
                    };
                    let cr = BufRange {
                        buf: cbuf.as_ref().unwrap_or(codes.buffer()),
                        offset: coff.1,
                        size: coff.0 + code_bytes,
                    };
                    let tr = BufRange {
                        buf: tbuf.as_ref().unwrap_or(terms.buffer()),
                        offset: toff.1,
                        size: toff.0 + term_bytes,
                    };
                    gpu.dispatch(
                        &SHADER,
                        &entry,
                        &[],
                        bytemuck::bytes_of(&params),
                        &[xr, cr, tr, oi, od],
                        groups(gpb, 1, op)?,
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// A binding of `size` bytes at byte `offset` of `buf`: returns an optional scratch copy and
/// ((bytes between the binding start and the data), binding offset). When the aligned-down
/// binding would exceed the limit, the data is copied to a fresh buffer.
fn aligned_slice(
    gpu: &Gpu,
    buf: &GpuBuffer,
    offset: u64,
    size: u64,
) -> Result<(Option<GpuBuffer>, (u64, u64))> {
    let lim = gpu.kernel_limits();
    let a = lim.storage_offset_alignment;
    let start = offset / a * a;
    let lead = offset - start;
    if lead + size <= lim.max_storage_binding {
        return Ok((None, (lead, start)));
    }
    let scratch = gpu.alloc(size, "a codebook copy")?;
    gpu.copy(buf, offset, &scratch, 0, size);
    Ok((Some(scratch), (0, 0)))
}
