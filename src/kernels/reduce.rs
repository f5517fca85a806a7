//! Launcher for `shaders/reduce.wgsl`: row reductions over the last dimension, row arg-max and
//! arg-min, and deterministic column and full sums, with f64 CPU references.
//!
//! Every op views its input as `[rows, cols]` (`cols` the last dimension). Row ops run one
//! 256-invocation workgroup per row with a fixed shared-memory tree, and split the rows into
//! chunks so inputs above the storage binding limit work. Rows longer than 2^23 values are
//! walked in windows of that many columns, one dispatch each, whose results combine in order
//! (so that no invocation loops more than [`crate::kernels::LOOP_BUDGET`] times per dispatch). Column and full sums are multi-pass
//! tree reductions with no atomics, so they give bit-identical results run after run.

use crate::error::{Error, Result};
use crate::gpu::{BufRange, Gpu, ShaderSource};
use crate::kernels::col_windows;
use crate::kernels::launch::{check_f32, u32_of};
use crate::tensor::{DType, Tensor};

/// The reduce shader.
pub const SHADER: ShaderSource = ShaderSource {
    name: "reduce",
    code: with_prelude!("reduce.wgsl"),
};

/// Reductions of each row (the last dimension) to one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowReduce {
    /// Sum of the row.
    Sum,
    /// Mean of the row.
    Mean,
    /// Largest value of the row.
    Max,
    /// Smallest value of the row.
    Min,
    /// Euclidean norm sqrt(Σ x²), accumulated in f32 without rescaling (so |x| must stay below
    /// about 1e19).
    L2Norm,
    /// log Σ exp(x), computed stably (an online running max): ±1000 inputs stay finite.
    LogSumExp,
}

impl RowReduce {
    fn code(self) -> f64 {
        match self {
            RowReduce::Sum => 0.0,
            RowReduce::Mean => 1.0,
            RowReduce::Max => 2.0,
            RowReduce::Min => 3.0,
            RowReduce::L2Norm => 4.0,
            RowReduce::LogSumExp => 5.0,
        }
    }

    /// The CPU reference of this reduction of one row, computed in f64.
    pub fn cpu(self, row: &[f32]) -> f64 {
        let it = row.iter().map(|&v| v as f64);
        match self {
            RowReduce::Sum => it.sum(),
            RowReduce::Mean => it.sum::<f64>() / row.len() as f64,
            RowReduce::Max => it.fold(f64::NEG_INFINITY, f64::max),
            RowReduce::Min => it.fold(f64::INFINITY, f64::min),
            RowReduce::L2Norm => it.map(|v| v * v).sum::<f64>().sqrt(),
            RowReduce::LogSumExp => {
                let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
                m + it.map(|v| (v - m).exp()).sum::<f64>().ln()
            }
        }
    }
}

uniform! {
    /// Uniform of every reduce entry point; mirrors `Params` in reduce.wgsl.
    struct Params {
        rows: u32,
        cols: u32,
        out_base: u32,
        block: u32,
        c0: u32,
        c1: u32,
        flags: u32,
        _pad: u32,
    }
}

/// `Params::flags` of the row kernels: the first column window (nothing to combine).
const FIRST_WINDOW: u32 = 1;
/// `Params::flags` of the row kernels: the last column window (finish the result).
const LAST_WINDOW: u32 = 2;

/// Rows per workgroup in one column-sum pass.
const COL_BLOCK: usize = 256;
/// Columns per workgroup in one column-sum pass.
const COL_TILE: usize = 64;
/// Elements per workgroup in one full-sum pass (a multiple of 256).
const FLAT_BLOCK: usize = 4096;

/// The shape of a per-row result: the input shape without its last dimension, or `[1]` when
/// that leaves nothing (a 1-D or scalar input).
pub fn row_shape(x: &Tensor) -> Vec<usize> {
    let s = x.shape();
    if s.len() <= 1 {
        vec![1]
    } else {
        s[..s.len() - 1].to_vec()
    }
}

/// Checks a row-op input and its per-row output: f32 input, non-empty rows, `rows` output
/// elements of `dtype`, no aliasing.
fn check_row_op(x: &Tensor, out: &Tensor, dtype: DType, op: &'static str) -> Result<()> {
    check_f32(x, op, "the input")?;
    if x.cols() == 0 && x.rows() > 0 {
        return Err(Error::shape(
            op,
            format!("input {:?} has an empty last dimension", x.shape()),
        ));
    }
    if out.numel() != x.rows() {
        return Err(Error::shape(
            op,
            format!(
                "output {:?} must hold one value per row of {:?} ({} values)",
                out.shape(),
                x.shape(),
                x.rows()
            ),
        ));
    }
    if out.dtype() != dtype {
        return Err(Error::Invalid(format!(
            "{op}: the output must be a {dtype:?} tensor, not {:?}",
            out.dtype()
        )));
    }
    if x.same_storage(out) {
        return Err(Error::aliasing(op, "the output must not alias the input"));
    }
    Ok(())
}

/// One workgroup per row, over row chunks and column windows; writes one 4-byte value per row.
fn launch_rows(x: &Tensor, out: &Tensor, entry: &str, opcode: f64) -> Result<()> {
    let gpu = x.gpu();
    let (rows, cols) = (x.rows(), x.cols());
    if rows == 0 {
        return Ok(());
    }
    let windows = col_windows(cols, 1);
    for (start, n) in gpu.row_chunks(rows, &[cols as u64 * 4, 4])? {
        for (i, &(c0, c1)) in windows.iter().enumerate() {
            let params = Params {
                rows: u32_of(n, "rows", "reduce")?,
                cols: u32_of(cols, "cols", "reduce")?,
                out_base: 0,
                block: 0,
                c0: u32_of(c0, "c0", "launch_rows")?,
                c1: u32_of(c1, "c1", "launch_rows")?,
                flags: if i == 0 { FIRST_WINDOW } else { 0 }
                    | if i + 1 == windows.len() {
                        LAST_WINDOW
                    } else {
                        0
                    },
                _pad: 0,
            };
            gpu.dispatch(
                &SHADER,
                entry,
                &[("OP", opcode)],
                bytemuck::bytes_of(&params),
                &[
                    x.row_range(start, n),
                    BufRange {
                        buf: out.buffer(),
                        offset: start as u64 * 4,
                        size: n as u64 * 4,
                    },
                ],
                params.rows,
            )?;
        }
    }
    Ok(())
}

/// Reduces each row (the last dimension) of `x` with `op`. The result has the input shape
/// without its last dimension (`[1]` for a 1-D input).
pub fn reduce_rows(x: &Tensor, op: RowReduce) -> Result<Tensor> {
    let out = Tensor::empty(x.gpu(), &row_shape(x))?;
    reduce_rows_into(x, op, &out)?;
    Ok(out)
}

/// Writes the reduction of each row of `x` into `out` (f32, one element per row).
pub fn reduce_rows_into(x: &Tensor, op: RowReduce, out: &Tensor) -> Result<()> {
    check_row_op(x, out, DType::F32, "reduce_rows")?;
    launch_rows(x, out, "reduce_rows", op.code())
}

/// Index of the largest value of each row, as a U32 tensor of shape [`row_shape`]; ties go to
/// the lower index.
pub fn argmax_rows(x: &Tensor) -> Result<Tensor> {
    let out = Tensor::empty_typed(x.gpu(), &row_shape(x), DType::U32)?;
    argmax_rows_into(x, &out)?;
    Ok(out)
}

/// Writes the index of the largest value of each row of `x` into the U32 tensor `out`.
pub fn argmax_rows_into(x: &Tensor, out: &Tensor) -> Result<()> {
    check_row_op(x, out, DType::U32, "argmax_rows")?;
    launch_rows(x, out, "arg_rows", 0.0)
}

/// Index of the smallest value of each row, as a U32 tensor of shape [`row_shape`]; ties go
/// to the lower index.
pub fn argmin_rows(x: &Tensor) -> Result<Tensor> {
    let out = Tensor::empty_typed(x.gpu(), &row_shape(x), DType::U32)?;
    argmin_rows_into(x, &out)?;
    Ok(out)
}

/// Writes the index of the smallest value of each row of `x` into the U32 tensor `out`.
pub fn argmin_rows_into(x: &Tensor, out: &Tensor) -> Result<()> {
    check_row_op(x, out, DType::U32, "argmin_rows")?;
    launch_rows(x, out, "arg_rows", 1.0)
}

/// One column-sum pass over the `[rows, cols]` view of `src`: writes `ceil(rows / COL_BLOCK)`
/// partial rows into `dst` (already sized for them). Input chunks hold whole row blocks where
/// the binding limit allows, so the partition (and the result) depends only on the shape.
fn col_pass(gpu: &Gpu, src: &Tensor, rows: usize, cols: usize, dst: &Tensor) -> Result<()> {
    let rb = cols as u64 * 4;
    let mut chunks = gpu.row_chunks(rows, &[rb])?;
    if chunks.len() > 1 && chunks[0].1 >= COL_BLOCK {
        // Chunk lengths are multiples of the alignment step, a power of two ≤ 256 rows; round
        // them down to whole blocks (still aligned) so every block lies within one chunk.
        let step = chunks[0].1 / COL_BLOCK * COL_BLOCK;
        chunks = (0..rows)
            .step_by(step)
            .map(|s| (s, step.min(rows - s)))
            .collect();
    }
    let tiles = cols.div_ceil(COL_TILE);
    let mut out_row = 0usize;
    for (start, n) in chunks {
        let blocks = n.div_ceil(COL_BLOCK);
        let params = Params {
            rows: u32_of(n, "rows", "reduce")?,
            cols: u32_of(cols, "cols", "reduce")?,
            out_base: u32_of(out_row * cols, "partial sums", "reduce")?,
            block: u32_of(COL_BLOCK, "block", "col_pass")?,
            ..bytemuck::Zeroable::zeroed()
        };
        gpu.dispatch(
            &SHADER,
            "col_partial",
            &[],
            bytemuck::bytes_of(&params),
            &[
                BufRange {
                    buf: src.buffer(),
                    offset: start as u64 * rb,
                    size: n as u64 * rb,
                },
                dst.range(),
            ],
            u32_of(tiles * blocks, "workgroups", "reduce")?,
        )?;
        out_row += blocks;
    }
    Ok(())
}

/// Sums over all rows: `[rows, cols]` → `[cols]` (the last dimension), deterministically.
pub fn sum_cols(x: &Tensor) -> Result<Tensor> {
    let out = Tensor::empty(x.gpu(), &[x.cols()])?;
    sum_cols_into(x, &out)?;
    Ok(out)
}

/// Writes the column sums of `x` (`[rows, cols]` → `cols` values) into `out`.
///
/// A tree of passes: each pass sums blocks of 256 rows, so the order of additions is fixed by
/// the shape and the result is bit-identical run after run.
pub fn sum_cols_into(x: &Tensor, out: &Tensor) -> Result<()> {
    const OP: &str = "sum_cols";
    check_f32(x, OP, "the input")?;
    check_f32(out, OP, "the output")?;
    let (rows, cols) = (x.rows(), x.cols());
    if out.numel() != cols {
        return Err(Error::shape(
            OP,
            format!(
                "output {:?} must hold the {cols} column sums of {:?}",
                out.shape(),
                x.shape()
            ),
        ));
    }
    if x.same_storage(out) {
        return Err(Error::aliasing(OP, "the output must not alias the input"));
    }
    let gpu = x.gpu();
    if cols == 0 {
        return Ok(());
    }
    if rows == 0 {
        gpu.zero(out.buffer());
        return Ok(());
    }
    let mut cur = x.clone();
    let mut cur_rows = rows;
    loop {
        let next_rows = cur_rows.div_ceil(COL_BLOCK);
        let dst = if next_rows == 1 {
            out.clone()
        } else {
            Tensor::empty(gpu, &[next_rows, cols])?
        };
        col_pass(gpu, &cur, cur_rows, cols, &dst)?;
        if next_rows == 1 {
            return Ok(());
        }
        cur = dst;
        cur_rows = next_rows;
    }
}

/// One full-sum pass over the first `n` elements of `src`: writes `ceil(n / FLAT_BLOCK)`
/// partial sums into `dst`. Chunks hold whole blocks, so the partition depends only on `n`.
fn flat_pass(gpu: &Gpu, src: &Tensor, n: usize, dst: &Tensor) -> Result<()> {
    let lim = gpu.kernel_limits();
    let block_bytes = FLAT_BLOCK as u64 * 4;
    // Whole blocks per chunk, at an offset that is a multiple of the binding alignment.
    let align_blocks = lim.storage_offset_alignment.div_ceil(block_bytes).max(1);
    let chunk_blocks = (lim.max_storage_binding / block_bytes) / align_blocks * align_blocks;
    if chunk_blocks == 0 {
        return Err(Error::TooLarge {
            what: "one block of the full sum".into(),
            bytes: block_bytes * align_blocks,
            limit_name: "max_storage_buffer_binding_size",
            limit: lim.max_storage_binding,
        });
    }
    let chunk = chunk_blocks as usize * FLAT_BLOCK;
    let mut start = 0usize;
    while start < n {
        let len = chunk.min(n - start);
        let params = Params {
            rows: 1,
            cols: u32_of(len, "elements", "reduce")?,
            out_base: u32_of(start / FLAT_BLOCK, "partial sums", "reduce")?,
            block: u32_of(FLAT_BLOCK, "block", "flat_pass")?,
            ..bytemuck::Zeroable::zeroed()
        };
        gpu.dispatch(
            &SHADER,
            "sum_flat",
            &[],
            bytemuck::bytes_of(&params),
            &[
                BufRange {
                    buf: src.buffer(),
                    offset: start as u64 * 4,
                    size: len as u64 * 4,
                },
                dst.range(),
            ],
            u32_of(len.div_ceil(FLAT_BLOCK), "workgroups", "reduce")?,
        )?;
        start += len;
    }
    Ok(())
}

/// Sum of every element of `x`, as a tensor of shape `[1]`, deterministically.
pub fn sum_all(x: &Tensor) -> Result<Tensor> {
    let out = Tensor::empty(x.gpu(), &[1])?;
    sum_all_into(x, &out)?;
    Ok(out)
}

/// Writes the sum of every element of `x` into the one-element tensor `out`.
///
/// A tree of passes over blocks of 4096 elements: the order of additions is fixed by the
/// element count, so the result is bit-identical run after run.
pub fn sum_all_into(x: &Tensor, out: &Tensor) -> Result<()> {
    const OP: &str = "sum_all";
    check_f32(x, OP, "the input")?;
    check_f32(out, OP, "the output")?;
    if out.numel() != 1 {
        return Err(Error::shape(
            OP,
            format!("output {:?} must have one element", out.shape()),
        ));
    }
    if x.same_storage(out) {
        return Err(Error::aliasing(OP, "the output must not alias the input"));
    }
    let gpu = x.gpu();
    let mut n = x.numel();
    if n == 0 {
        gpu.zero(out.buffer());
        return Ok(());
    }
    let mut cur = x.clone();
    loop {
        let next = n.div_ceil(FLAT_BLOCK);
        let dst = if next == 1 {
            out.clone()
        } else {
            Tensor::empty(gpu, &[next])?
        };
        flat_pass(gpu, &cur, n, &dst)?;
        if next == 1 {
            return Ok(());
        }
        cur = dst;
        n = next;
    }
}

/// CPU reference of [`reduce_rows`] on row-major `x` with `cols` columns, in f64.
pub fn reduce_rows_cpu(x: &[f32], cols: usize, op: RowReduce) -> Vec<f32> {
    if cols == 0 {
        return Vec::new();
    }
    x.chunks(cols).map(|r| op.cpu(r) as f32).collect()
}

fn arg_cpu(x: &[f32], cols: usize, better: impl Fn(f32, f32) -> bool) -> Vec<u32> {
    if cols == 0 {
        return Vec::new();
    }
    x.chunks(cols)
        .map(|r| {
            let mut best = 0;
            for (i, &v) in r.iter().enumerate() {
                if better(v, r[best]) {
                    best = i;
                }
            }
            best as u32
        })
        .collect()
}

/// CPU reference of [`argmax_rows`]: the first index of each row's largest value.
pub fn argmax_rows_cpu(x: &[f32], cols: usize) -> Vec<u32> {
    arg_cpu(x, cols, |a, b| a > b)
}

/// CPU reference of [`argmin_rows`]: the first index of each row's smallest value.
pub fn argmin_rows_cpu(x: &[f32], cols: usize) -> Vec<u32> {
    arg_cpu(x, cols, |a, b| a < b)
}

/// CPU reference of [`sum_cols`], in f64.
pub fn sum_cols_cpu(x: &[f32], cols: usize) -> Vec<f32> {
    let mut acc = vec![0f64; cols];
    if cols > 0 {
        for r in x.chunks(cols) {
            for (a, &v) in acc.iter_mut().zip(r) {
                *a += v as f64;
            }
        }
    }
    acc.into_iter().map(|v| v as f32).collect()
}

/// CPU reference of [`sum_all`], in f64.
pub fn sum_all_cpu(x: &[f32]) -> f32 {
    x.iter().map(|&v| v as f64).sum::<f64>() as f32
}
