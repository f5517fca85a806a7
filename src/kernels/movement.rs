//! Launcher for `shaders/movement.wgsl`: data movement.
//!
//! - [`gather_rows`] / [`gather_rows_from`]: embedding lookup, `table[idx]`.
//! - [`scatter_add_rows`]: gather's backward, `out[idx[i]] += src[i]`, deterministic: one thread
//!   owns each output element and sums its rows in a fixed order given by [`Segments`] (CSR
//!   offsets and order), built once on the CPU ([`Segments::from_slice`]) or on the GPU by a
//!   stable radix sort of [`super::sort`] ([`Segments::from_tensor`]), reusable across backward
//!   passes.
//! - [`transpose`] (batched over leading dimensions), [`concat_cols`], [`slice_cols`],
//!   [`copy_cols_into`], [`fill`] / [`full`], [`copy`] / [`copy_rows`] / [`copy_rows_into`].
//!
//! All ops work on the 2-D view `[rows, cols]` of a tensor (see [`Tensor::rows`]). Copies move
//! raw 32-bit words, so they work for [`crate::tensor::DType::U32`] tensors as well as f32 ones. Launchers of
//! row-independent ops loop over [`Gpu::row_chunks`], so tensors above the storage-binding limit
//! (128 MiB under default limits) work; each function says what must fit in one binding.

use crate::error::{Error, Result};
use crate::gpu::{BufRange, Gpu, ShaderSource};
use crate::kernels::launch::{check_f32, check_u32, groups, rows_of, too_large, u32_of, WG};
use crate::kernels::sort::{lower_bounds, sort_indices};
use crate::kernels::LOOP_BUDGET;
use crate::tensor::Tensor;

/// The movement shader.
pub const SHADER: ShaderSource = ShaderSource {
    name: "movement",
    code: with_prelude!("movement.wgsl"),
};

/// Side of a transpose tile.
const TILE: u64 = 16;

/// A binding of `len` words of `t` starting at word `start`, from the aligned offset at or
/// below it: returns the range and the word offset of `start` inside it.
fn window(t: &Tensor, start: u64, len: u64, align: u64) -> (BufRange<'_>, u32) {
    let off = start * 4;
    let aligned = off / align * align;
    (
        BufRange {
            buf: t.buffer(),
            offset: aligned,
            size: len * 4 + (off - aligned),
        },
        ((off - aligned) / 4) as u32,
    )
}

/// The leading dimensions of a shape (all but the last).
fn lead(shape: &[usize]) -> Vec<usize> {
    shape[..shape.len().saturating_sub(1)].to_vec()
}

// ---------------------------------------------------------------------------------------------
// gather

uniform! {
    struct GatherParams {
        rows: u32,
        d: u32,
        t_start: u32,
        t_rows: u32,
        n: u32,
        _pad: [u32; 3],
    }
}

/// Embedding lookup: row `i` of the result is row `idx[i]` of the 2-D view `[n, d]` of `table`.
///
/// `idx` is a [`DType::U32`] tensor of any shape; the result has shape `idx.shape() ++ [d]` and
/// the dtype of `table` (the rows are copied bit for bit). The indices live on the GPU, so they
/// are not validated: **an index `>= n` gives a row of zeros** (it never reads out of bounds).
/// Use [`gather_rows_from`] to have indices checked. The table may exceed one storage binding
/// (it is bound in row chunks); the output and the indices are chunked by rows.
pub fn gather_rows(table: &Tensor, idx: &Tensor) -> Result<Tensor> {
    const OP: &str = "gather_rows";
    check_u32(idx, OP, "the index tensor")?;
    let (n, d, m) = (table.rows(), table.cols(), idx.numel());
    u32_of(n, "table rows", OP)?;
    u32_of(m, "indices", OP)?;
    let mut shape = idx.shape().to_vec();
    shape.push(d);
    let gpu = table.gpu();
    let out = Tensor::empty_typed(gpu, &shape, table.dtype())?;
    let rb = d as u64 * 4;
    let t_chunks = gpu.row_chunks(n, &[rb])?;
    let o_chunks = gpu.row_chunks(m, &[rb, 4])?;
    for &(os, on) in &o_chunks {
        for &(ts, tn) in &t_chunks {
            let params = GatherParams {
                rows: u32_of(on, "rows", "gather_rows")?,
                d: u32_of(d, "d", "gather_rows")?,
                t_start: u32_of(ts, "t_start", "gather_rows")?,
                t_rows: u32_of(tn, "t_rows", "gather_rows")?,
                n: u32_of(n, "n", "gather_rows")?,
                _pad: [0; 3],
            };
            gpu.dispatch(
                &SHADER,
                "gather_rows",
                &[],
                bytemuck::bytes_of(&params),
                &[
                    rows_of(idx, os, on, 1),
                    rows_of(table, ts, tn, d),
                    rows_of(&out, os, on, d),
                ],
                groups(on * d, WG, OP)?,
            )?;
        }
    }
    Ok(out)
}

/// [`gather_rows`] with indices from the CPU, which are checked first: an index `>= n` is an
/// error naming its position, and nothing is dispatched. The result has shape `[idx.len(), d]`.
pub fn gather_rows_from(table: &Tensor, idx: &[u32]) -> Result<Tensor> {
    let n = table.rows();
    check_indices("gather_rows_from", idx, n, "table")?;
    let t = Tensor::from_u32(table.gpu(), idx, &[idx.len()])?;
    gather_rows(table, &t)
}

fn check_indices(op: &str, idx: &[u32], n: usize, what: &str) -> Result<()> {
    if let Some((pos, &v)) = idx.iter().enumerate().find(|(_, &v)| v as usize >= n) {
        return Err(Error::Invalid(format!(
            "{op}: index {v} at position {pos} is out of range for a {what} of {n} rows"
        )));
    }
    Ok(())
}

/// CPU reference of [`gather_rows`]: `table` is `[n, d]` row-major; out-of-range indices give
/// rows of `T::default()` (zeros).
pub fn gather_rows_cpu<T: Copy + Default>(table: &[T], d: usize, idx: &[u32]) -> Vec<T> {
    let n = table.len().checked_div(d).unwrap_or(0);
    let mut out = Vec::with_capacity(idx.len() * d);
    for &r in idx {
        let r = r as usize;
        if r < n {
            out.extend_from_slice(&table[r * d..(r + 1) * d]);
        } else {
            out.extend(std::iter::repeat_n(T::default(), d));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// segments and scatter-add

/// A CSR layout of `m` row indices into `n` segments: the positions `i` with `idx[i] == j` are
/// `order[offsets[j]..offsets[j + 1]]`, in ascending order. Built once, it serves any number of
/// [`scatter_add_rows`] calls with the same indices (e.g. every backward pass of an embedding).
#[derive(Clone, Debug)]
pub struct Segments {
    offsets: Tensor,
    order: Tensor,
    n: usize,
    m: usize,
    /// The longest segment's length, or a bound on it (`m` when built on the GPU).
    max_len: usize,
}

impl Segments {
    /// Builds the segments on the CPU (a counting sort) from indices on the CPU and uploads
    /// them. Every index must be `< n`; otherwise an error names the first bad position.
    pub fn from_slice(gpu: &Gpu, idx: &[u32], n: usize) -> Result<Segments> {
        const OP: &str = "Segments::from_slice";
        check_segment_count(gpu, n, OP)?;
        u32_of(idx.len(), "indices", OP)?;
        check_indices(OP, idx, n, "scatter target")?;
        let (offsets, order) = segments_cpu(idx, n);
        let max_len = offsets.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
        Ok(Segments {
            offsets: Tensor::from_u32(gpu, &offsets, &[n + 1])?,
            order: Tensor::from_u32(gpu, &order, &[idx.len()])?,
            n,
            m: idx.len(),
            max_len: max_len as usize,
        })
    }

    /// Builds the segments on the GPU from a [`DType::U32`] index tensor (any shape, read
    /// flat), by a stable radix sort: nothing is read back. The indices are not validated:
    /// **an index `>= n` belongs to no segment** (its position is placed in `order` after
    /// `offsets[n]`), so [`scatter_add_rows`] ignores it. The indices (rounded up to 256)
    /// must fit in one storage binding.
    pub fn from_tensor(idx: &Tensor, n: usize) -> Result<Segments> {
        const OP: &str = "Segments::from_tensor";
        check_u32(idx, OP, "the index tensor")?;
        let gpu = idx.gpu();
        let m = idx.numel();
        check_segment_count(gpu, n, OP)?;
        u32_of(m, "indices", OP)?;
        // Stable: each segment lists its positions in ascending order, as `from_slice` does.
        let (keys, order) = sort_indices(idx, n)?;
        let offsets = lower_bounds(&keys, n + 1)?;
        Ok(Segments {
            offsets,
            order,
            n,
            m,
            max_len: m,
        })
    }

    /// Number of segments (output rows of [`scatter_add_rows`]).
    pub fn n(&self) -> usize {
        self.n
    }
    /// Number of indices (source rows of [`scatter_add_rows`]).
    pub fn m(&self) -> usize {
        self.m
    }
    /// `offsets`, U32 `[n + 1]`: segment `j` is `order[offsets[j]..offsets[j + 1]]`.
    pub fn offsets(&self) -> &Tensor {
        &self.offsets
    }
    /// `order`, U32 `[m]`: source positions sorted by index, ascending within a segment.
    pub fn order(&self) -> &Tensor {
        &self.order
    }
}

/// `n + 1` offsets must be u32-addressable and fit in one buffer.
fn check_segment_count(gpu: &Gpu, n: usize, op: &str) -> Result<()> {
    if n >= u32::MAX as usize {
        return Err(Error::Invalid(format!(
            "{op}: {n} segments exceed the u32 range of the offsets"
        )));
    }
    let bytes = (n as u64 + 1) * 4;
    let max = gpu.kernel_limits().max_buffer_size;
    if bytes > max {
        return Err(Error::TooLarge {
            what: format!("the offsets of {n} segments"),
            bytes,
            limit_name: "max_buffer_size",
            limit: max,
        });
    }
    Ok(())
}

/// CPU reference of [`Segments`]: `(offsets [n + 1], order [m])` by a stable counting sort.
/// Indices `>= n` belong to no segment and are placed after `offsets[n]`, in ascending order,
/// as [`Segments::from_tensor`] does.
pub fn segments_cpu(idx: &[u32], n: usize) -> (Vec<u32>, Vec<u32>) {
    let key = |v: u32| (v as usize).min(n);
    let mut start = vec![0u32; n + 2];
    for &v in idx {
        start[key(v) + 1] += 1;
    }
    for j in 0..=n {
        start[j + 1] += start[j];
    }
    let offsets = start[..=n].to_vec();
    let mut order = vec![0u32; idx.len()];
    for (i, &v) in idx.iter().enumerate() {
        let k = key(v);
        order[start[k] as usize] = i as u32;
        start[k] += 1;
    }
    (offsets, order)
}

uniform! {
    struct ScatterParams {
        rows: u32,
        d: u32,
        s_start: u32,
        s_rows: u32,
        accumulate: u32,
        w0: u32,
        wlen: u32,
        _pad: u32,
    }
}

/// Scatter-add, gather's backward: `out[idx[i], :] += src[i, :]` into a new `[n, d]` F32
/// tensor of zeros, where `src` is F32 with `seg.m()` rows of `d` columns.
///
/// Deterministic: no atomics; one invocation owns each output element and adds its segment's
/// rows in ascending source position, starting from 0.0, so the result is bit-for-bit
/// [`scatter_add_rows_cpu`] and never depends on scheduling. The output and `src` may exceed
/// one storage binding (both are chunked by rows; a source chunk continues the running sums of
/// the previous one, keeping the order); `seg.order()` must fit in one binding.
///
/// A segment longer than [`LOOP_BUDGET`] entries is added in windows of that many, one
/// dispatch each, continuing the same running sums. Segments built on the CPU know their
/// longest segment; for [`Segments::from_tensor`] the bound is `m`, so each further window
/// dispatch costs a pass over the output that ends early where a segment has ended.
pub fn scatter_add_rows(src: &Tensor, seg: &Segments) -> Result<Tensor> {
    const OP: &str = "scatter_add_rows";
    check_f32(src, OP, "the source")?;
    if src.rows() != seg.m {
        return Err(Error::shape(
            "scatter_add_rows",
            format!(
                "the source {:?} has {} rows but the segments were built from {} indices",
                src.shape(),
                src.rows(),
                seg.m
            ),
        ));
    }
    let gpu = src.gpu();
    let (n, d, m) = (seg.n, src.cols(), seg.m);
    u32_of(d, "columns", OP)?;
    let lim = gpu.kernel_limits();
    if m as u64 * 4 > lim.max_storage_binding {
        return Err(too_large(
            format!("the order of {m} segment entries"),
            m as u64 * 4,
            lim.max_storage_binding,
        ));
    }
    let out = Tensor::empty(gpu, &[n, d])?;
    let rb = d as u64 * 4;
    // Offsets are bound as rows+1 words from the chunk's first row: 4 keeps the start
    // aligned, 8 keeps the extra word within the binding limit.
    let o_chunks = gpu.row_chunks(n, &[rb, 4, 8])?;
    let s_chunks = gpu.row_chunks(m, &[rb])?;
    // Windows of each segment's entries, in order; within a window the source chunks in order
    // (entries ascend by source row, so this is the order of the entries).
    let windows = seg.max_len.div_ceil(LOOP_BUDGET).max(1);
    for &(os, on) in &o_chunks {
        for w in 0..windows {
            for (k, &(ss, sn)) in s_chunks.iter().enumerate() {
                let params = ScatterParams {
                    rows: u32_of(on, "rows", "scatter_add_rows")?,
                    d: u32_of(d, "d", "scatter_add_rows")?,
                    s_start: u32_of(ss, "s_start", "scatter_add_rows")?,
                    s_rows: u32_of(sn, "s_rows", "scatter_add_rows")?,
                    accumulate: (w > 0 || k > 0) as u32,
                    w0: u32_of(w * LOOP_BUDGET, "w0", "scatter_add_rows")?,
                    wlen: u32_of(LOOP_BUDGET, "wlen", "scatter_add_rows")?,
                    _pad: 0,
                };
                gpu.dispatch(
                    &SHADER,
                    "scatter_add_rows",
                    &[],
                    bytemuck::bytes_of(&params),
                    &[
                        rows_of(&seg.offsets, os, on + 1, 1),
                        seg.order.range(),
                        rows_of(src, ss, sn, d),
                        rows_of(&out, os, on, d),
                    ],
                    groups(on * d, WG, OP)?,
                )?;
            }
        }
    }
    Ok(out)
}

/// CPU reference of [`scatter_add_rows`]: `src` is `[idx.len(), d]`; returns `[n, d]`, summing
/// in ascending `i` from 0.0 and skipping indices `>= n`.
pub fn scatter_add_rows_cpu(src: &[f32], d: usize, idx: &[u32], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n * d];
    for (i, &j) in idx.iter().enumerate() {
        let j = j as usize;
        if j < n {
            for c in 0..d {
                out[j * d + c] += src[i * d + c];
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// transpose

uniform! {
    struct TransposeParams {
        nb: u32,
        r: u32,
        c: u32,
        r0: u32,
        nr: u32,
        c0: u32,
        nc: u32,
        in_base: u32,
        out_base: u32,
        tiles_r: u32,
        tiles_c: u32,
        _pad: u32,
    }
}

/// Transposes the last two dimensions: `[..., r, c] -> [..., c, r]`, batched over the leading
/// dimensions (a rank-1 `[c]` is read as `[1, c]` and gives `[c, 1]`). Tiled 16×16 through
/// workgroup memory; bit-exact for F32 and U32.
///
/// Large tensors are split: whole matrices per dispatch while they fit in one binding,
/// otherwise rectangular blocks of one matrix (a single row of the input or of the output must
/// fit in one binding).
pub fn transpose(x: &Tensor) -> Result<Tensor> {
    const OP: &str = "transpose";
    let shape = x.shape();
    let rank = shape.len();
    let (mut out_shape, r, c) = if rank >= 2 {
        (shape[..rank - 2].to_vec(), shape[rank - 2], shape[rank - 1])
    } else {
        (vec![], 1, x.cols())
    };
    let b: usize = out_shape.iter().product();
    out_shape.extend([c, r]);
    let gpu = x.gpu();
    let out = Tensor::empty_typed(gpu, &out_shape, x.dtype())?;
    if x.numel() == 0 {
        return Ok(out);
    }
    let lim = gpu.kernel_limits();
    let (limit, align) = (lim.max_storage_binding, lim.storage_offset_alignment);
    let mat = (r * c) as u64;
    let total = b as u64 * mat;
    // (first matrix, matrices, r0, nr, c0, nc) of each dispatch.
    let mut plan: Vec<(u64, u64, u64, u64, u64, u64)> = Vec::new();
    if total * 4 <= limit {
        plan.push((0, b as u64, 0, r as u64, 0, c as u64));
    } else if mat * 4 + align <= limit {
        let per = (limit - align) / (mat * 4);
        let mut b0 = 0;
        while b0 < b as u64 {
            let nb = per.min(b as u64 - b0);
            plan.push((b0, nb, 0, r as u64, 0, c as u64));
            b0 += nb;
        }
    } else {
        let slack = limit.saturating_sub(align);
        let nr = slack / (c as u64 * 4);
        let nc = slack / (r as u64 * 4);
        if nr == 0 || nc == 0 {
            let row = (c.max(r) as u64) * 4;
            return Err(too_large(
                format!("one row ({row} bytes) of a transpose of {shape:?}"),
                row + align,
                limit,
            ));
        }
        for bi in 0..b as u64 {
            for r0 in (0..r as u64).step_by(nr as usize) {
                for c0 in (0..c as u64).step_by(nc as usize) {
                    plan.push((bi, 1, r0, nr.min(r as u64 - r0), c0, nc.min(c as u64 - c0)));
                }
            }
        }
    }
    for (b0, nb, r0, nr, c0, nc) in plan {
        let (r64, c64) = (r as u64, c as u64);
        let whole = nr == r64 && nc == c64;
        let (in_len, out_len) = if whole {
            (nb * mat, nb * mat)
        } else {
            (nr * c64, nc * r64)
        };
        let (in_win, in_base) = window(x, (b0 * r64 + r0) * c64, in_len, align);
        let (out_win, out_base) = window(&out, (b0 * c64 + c0) * r64, out_len, align);
        let tiles_r = nr.div_ceil(TILE);
        let tiles_c = nc.div_ceil(TILE);
        let wgs = u32::try_from(nb * tiles_r * tiles_c)
            .map_err(|_| Error::Invalid(format!("{OP}: too many tiles for one dispatch")))?;
        let params = TransposeParams {
            nb: u32_of(nb, "nb", "transpose")?,
            r: u32_of(r, "r", "transpose")?,
            c: u32_of(c, "c", "transpose")?,
            r0: u32_of(r0, "r0", "transpose")?,
            nr: u32_of(nr, "nr", "transpose")?,
            c0: u32_of(c0, "c0", "transpose")?,
            nc: u32_of(nc, "nc", "transpose")?,
            in_base,
            out_base,
            tiles_r: u32_of(tiles_r, "tiles_r", "transpose")?,
            tiles_c: u32_of(tiles_c, "tiles_c", "transpose")?,
            _pad: 0,
        };
        gpu.dispatch(
            &SHADER,
            "transpose",
            &[],
            bytemuck::bytes_of(&params),
            &[in_win, out_win],
            wgs,
        )?;
    }
    Ok(out)
}

/// CPU reference of [`transpose`]: `x` is `[batch, r, c]`; returns `[batch, c, r]`.
pub fn transpose_cpu<T: Copy>(x: &[T], batch: usize, r: usize, c: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(batch * r * c);
    for bi in 0..batch {
        let m = &x[bi * r * c..(bi + 1) * r * c];
        for j in 0..c {
            for i in 0..r {
                out.push(m[i * c + j]);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// column blocks: concat, slice

uniform! {
    struct CopyParams {
        rows: u32,
        width: u32,
        src_stride: u32,
        src_col: u32,
        dst_stride: u32,
        dst_col: u32,
        _pad: [u32; 2],
    }
}

/// Copies columns `src_col..src_col + width` of `src` into columns `dst_col..dst_col + width`
/// of `dst` (2-D views with equal rows and dtypes; different storage). The rest of `dst` is
/// untouched. Chunked by rows, so either tensor may exceed one storage binding.
pub fn copy_cols_into(
    src: &Tensor,
    src_col: usize,
    dst: &Tensor,
    dst_col: usize,
    width: usize,
) -> Result<()> {
    const OP: &str = "copy_cols_into";
    let rows = src.rows();
    if dst.rows() != rows {
        return Err(Error::shape(
            OP,
            format!(
                "source {:?} has {rows} rows but destination {:?} has {}",
                src.shape(),
                dst.shape(),
                dst.rows()
            ),
        ));
    }
    for (what, t, col) in [("source", src, src_col), ("destination", dst, dst_col)] {
        if col.checked_add(width).is_none_or(|e| e > t.cols()) {
            return Err(Error::shape(
                OP,
                format!(
                    "{what} columns {col}..{} are out of range for {:?} ({} columns)",
                    col.saturating_add(width),
                    t.shape(),
                    t.cols()
                ),
            ));
        }
    }
    check_copy_pair(OP, src, dst)?;
    if rows == 0 || width == 0 {
        return Ok(());
    }
    let (sc, dc) = (src.cols(), dst.cols());
    let gpu = src.gpu();
    for (start, n) in gpu.row_chunks(rows, &[sc as u64 * 4, dc as u64 * 4])? {
        let params = CopyParams {
            rows: u32_of(n, "rows", "copy_cols_into")?,
            width: u32_of(width, "width", "copy_cols_into")?,
            src_stride: u32_of(sc, "src_stride", "copy_cols_into")?,
            src_col: u32_of(src_col, "src_col", "copy_cols_into")?,
            dst_stride: u32_of(dc, "dst_stride", "copy_cols_into")?,
            dst_col: u32_of(dst_col, "dst_col", "copy_cols_into")?,
            _pad: [0; 2],
        };
        gpu.dispatch(
            &SHADER,
            "copy_cols",
            &[],
            bytemuck::bytes_of(&params),
            &[rows_of(src, start, n, sc), rows_of(dst, start, n, dc)],
            groups(n * width, WG, OP)?,
        )?;
    }
    Ok(())
}

/// Concatenates along columns: `[r, c1] ⊕ [r, c2] ⊕ … -> [r, Σc]`. Every part needs the same
/// rows (of its 2-D view) and dtype; the result takes the leading dimensions of the first part.
/// Any number of parts: each is one column-block copy into the output (one input and one
/// output binding per dispatch).
pub fn concat_cols(parts: &[&Tensor]) -> Result<Tensor> {
    const OP: &str = "concat_cols";
    let first = parts
        .first()
        .ok_or_else(|| Error::Invalid(format!("{OP}: no tensors to concatenate")))?;
    let rows = first.rows();
    for (k, t) in parts.iter().enumerate() {
        if t.rows() != rows {
            return Err(Error::shape(
                OP,
                format!(
                    "part {k} {:?} has {} rows but part 0 {:?} has {rows}; every part needs the same rows",
                    t.shape(),
                    t.rows(),
                    first.shape()
                ),
            ));
        }
        if t.dtype() != first.dtype() {
            return Err(Error::Invalid(format!(
                "{OP}: part {k} is {:?} but part 0 is {:?}",
                t.dtype(),
                first.dtype()
            )));
        }
    }
    let total: usize = parts.iter().map(|t| t.cols()).sum();
    let mut shape = lead(first.shape());
    shape.push(total);
    let out = Tensor::empty_typed(first.gpu(), &shape, first.dtype())?;
    let mut at = 0;
    for t in parts {
        copy_cols_into(t, 0, &out, at, t.cols())?;
        at += t.cols();
    }
    Ok(out)
}

/// CPU reference of [`concat_cols`]: each part is `(data [rows, cols], cols)`.
pub fn concat_cols_cpu<T: Copy>(parts: &[(&[T], usize)], rows: usize) -> Vec<T> {
    let mut out = Vec::new();
    for i in 0..rows {
        for &(p, c) in parts {
            out.extend_from_slice(&p[i * c..(i + 1) * c]);
        }
    }
    out
}

/// Columns `start..end` of `x`: `[r, c] -> [r, end - start]` (keeping the leading dimensions).
/// An error if `start > end` or `end > c`.
pub fn slice_cols(x: &Tensor, start: usize, end: usize) -> Result<Tensor> {
    if start > end || end > x.cols() {
        return Err(Error::shape(
            "slice_cols",
            format!(
                "columns {start}..{end} are out of range for {:?} ({} columns)",
                x.shape(),
                x.cols()
            ),
        ));
    }
    let mut shape = lead(x.shape());
    shape.push(end - start);
    let out = Tensor::empty_typed(x.gpu(), &shape, x.dtype())?;
    copy_cols_into(x, start, &out, 0, end - start)?;
    Ok(out)
}

/// CPU reference of [`slice_cols`]: `x` is `[rows, cols]`.
pub fn slice_cols_cpu<T: Copy>(x: &[T], cols: usize, start: usize, end: usize) -> Vec<T> {
    x.chunks(cols.max(1))
        .flat_map(|row| row[start..end].iter().copied())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// fill and copy

uniform! {
    struct FillParams {
        len: u32,
        value: u32,
        _pad: [u32; 2],
    }
}

fn fill_bits(t: &Tensor, bits: u32) -> Result<()> {
    let n = t.numel();
    let gpu = t.gpu();
    // Flat: rows of 64 words (256 bytes, the offset alignment) plus a tail.
    for (s, c) in gpu.row_chunks(n.div_ceil(64), &[256])? {
        let start = s * 64;
        let len = (c * 64).min(n - start);
        let params = FillParams {
            len: u32_of(len, "len", "fill_bits")?,
            value: bits,
            _pad: [0; 2],
        };
        gpu.dispatch(
            &SHADER,
            "fill",
            &[],
            bytemuck::bytes_of(&params),
            &[rows_of(t, start, len, 1)],
            groups(len, WG, "fill")?,
        )?;
    }
    Ok(())
}

/// Sets every element of `t` to `value` (the f32's bits, whatever the dtype).
pub fn fill(t: &Tensor, value: f32) -> Result<()> {
    fill_bits(t, value.to_bits())
}

/// Sets every element of `t` to `value` (the u32's bits, whatever the dtype).
pub fn fill_u32(t: &Tensor, value: u32) -> Result<()> {
    fill_bits(t, value)
}

/// A new F32 tensor of `shape` with every element `value`.
pub fn full(gpu: &Gpu, shape: &[usize], value: f32) -> Result<Tensor> {
    let t = Tensor::empty(gpu, shape)?;
    fill(&t, value)?;
    Ok(t)
}

/// A full copy of `x` in new storage (same shape and dtype). Contiguous copies are recorded as
/// buffer-to-buffer copies, which have no binding-size limit.
pub fn copy(x: &Tensor) -> Result<Tensor> {
    let out = Tensor::empty_typed(x.gpu(), x.shape(), x.dtype())?;
    copy_rows_into(x, 0, &out, 0, x.rows())?;
    Ok(out)
}

/// Rows `start..start + n` of the 2-D view of `x`, as a new `[n, cols]` tensor of its dtype.
pub fn copy_rows(x: &Tensor, start: usize, n: usize) -> Result<Tensor> {
    let out = Tensor::empty_typed(x.gpu(), &[n, x.cols()], x.dtype())?;
    copy_rows_into(x, start, &out, 0, n)?;
    Ok(out)
}

/// Copies rows `src_row..src_row + n` of `src` to rows `dst_row..dst_row + n` of `dst` (2-D
/// views with equal columns and dtypes; different storage).
pub fn copy_rows_into(
    src: &Tensor,
    src_row: usize,
    dst: &Tensor,
    dst_row: usize,
    n: usize,
) -> Result<()> {
    const OP: &str = "copy_rows_into";
    if src.cols() != dst.cols() {
        return Err(Error::shape(
            OP,
            format!(
                "source {:?} has {} columns but destination {:?} has {}",
                src.shape(),
                src.cols(),
                dst.shape(),
                dst.cols()
            ),
        ));
    }
    for (what, t, row) in [("source", src, src_row), ("destination", dst, dst_row)] {
        if row.checked_add(n).is_none_or(|e| e > t.rows()) {
            return Err(Error::shape(
                OP,
                format!(
                    "{what} rows {row}..{} are out of range for {:?} ({} rows)",
                    row.saturating_add(n),
                    t.shape(),
                    t.rows()
                ),
            ));
        }
    }
    check_copy_pair(OP, src, dst)?;
    let rb = src.cols() as u64 * 4;
    src.gpu().copy(
        src.buffer(),
        src_row as u64 * rb,
        dst.buffer(),
        dst_row as u64 * rb,
        n as u64 * rb,
    );
    Ok(())
}

/// CPU reference of [`copy_rows`]: rows `start..start + n` of `x` (`[rows, cols]`).
pub fn copy_rows_cpu<T: Copy>(x: &[T], cols: usize, start: usize, n: usize) -> Vec<T> {
    x[start * cols..(start + n) * cols].to_vec()
}

/// A copy's source and destination: one dtype, different storage.
fn check_copy_pair(op: &'static str, src: &Tensor, dst: &Tensor) -> Result<()> {
    if src.dtype() != dst.dtype() {
        return Err(Error::Invalid(format!(
            "{op}: source is {:?} but destination is {:?}",
            src.dtype(),
            dst.dtype()
        )));
    }
    if src.same_storage(dst) {
        return Err(Error::aliasing(
            op,
            "the destination must not share storage with the source",
        ));
    }
    Ok(())
}
