//! What every launcher does between checking its operands and calling `Gpu::dispatch`: size
//! the dispatch, turn sizes into shader parameters, check dtypes, and cut flat ranges into
//! chunks that fit one storage binding.
//!
//! These used to be written once per kernel family, with different error variants for the
//! same mistake. Every launcher now uses these, so an oversized input or a wrong dtype gives
//! the same typed [`Error::Shape`] (or [`Error::TooLarge`]) whichever kernel it reaches.
//! Sizes never reach a shader through a bare `as u32`: a size that does not fit a shader's
//! 32-bit parameter would wrap, and the kernel would silently work on the wrong elements.

use crate::error::{Error, Result};
use crate::gpu::{BufRange, Gpu};
use crate::tensor::{DType, Tensor};

/// Invocations per workgroup of the one-dimensional kernels (`@workgroup_size(256)`).
pub(crate) const WG: usize = 256;

/// Elements per chunk unit of the flat kernels of `autograd.wgsl` and `optim.wgsl`: their
/// chunks start at multiples of it, so a per-block partial (the clipping sum of squares) lines
/// up with the same block whichever chunk it falls in.
pub(crate) const FLAT_BLOCK: usize = 4096;

/// Workgroups that cover `n` items at `per` items per workgroup (`per` ≥ 1).
///
/// `Gpu::dispatch` folds a linear count over x and y, so the only hard limit here is the u32
/// that carries it; a count beyond that is a [`Error::Shape`] naming the operation.
pub(crate) fn groups(n: usize, per: usize, op: &'static str) -> Result<u32> {
    u32::try_from(n.div_ceil(per.max(1))).map_err(|_| {
        Error::shape(
            op,
            format!("{n} items need more than 2^32 workgroups of {per}"),
        )
    })
}

/// `v` as a u32 shader parameter, or a [`Error::Shape`] naming `what` overflowed.
pub(crate) fn u32_of<T>(v: T, what: &str, op: &'static str) -> Result<u32>
where
    T: TryInto<u32> + Copy + std::fmt::Display,
{
    v.try_into()
        .map_err(|_| Error::shape(op, format!("{what} = {v} does not fit in u32")))
}

/// Checks that `t` holds `want` elements; names the operand and its shape otherwise.
pub(crate) fn check_dtype(t: &Tensor, want: DType, op: &'static str, what: &str) -> Result<()> {
    if t.dtype() != want {
        return Err(Error::shape(
            op,
            format!(
                "{what} must be a {want:?} tensor, got {:?} with shape {:?}",
                t.dtype(),
                t.shape()
            ),
        ));
    }
    Ok(())
}

/// [`check_dtype`] for an f32 operand.
pub(crate) fn check_f32(t: &Tensor, op: &'static str, what: &str) -> Result<()> {
    check_dtype(t, DType::F32, op, what)
}

/// [`check_dtype`] for a u32 (index) operand.
pub(crate) fn check_u32(t: &Tensor, op: &'static str, what: &str) -> Result<()> {
    check_dtype(t, DType::U32, op, what)
}

/// The error for one binding of `bytes` bytes over the device's storage binding cap.
pub(crate) fn too_large(what: impl Into<String>, bytes: u64, limit: u64) -> Error {
    Error::TooLarge {
        what: what.into(),
        bytes,
        limit_name: "max_storage_buffer_binding_size",
        limit,
    }
}

/// `(first element, count)` chunks of a flat range of `n` f32/u32 elements: every chunk starts
/// at a multiple of `block` elements and its binding stays within the storage binding cap.
///
/// `block` is what the kernel's workgroups cover (its partial sums line up with chunk starts),
/// and `block * 4` bytes must be a multiple of the 256-byte binding offset alignment, so any
/// block of 64 elements or a multiple of it works.
pub(crate) fn flat_chunks(gpu: &Gpu, n: usize, block: usize) -> Result<Vec<(usize, usize)>> {
    debug_assert!(
        block.is_multiple_of(64),
        "block {block} is not a multiple of 64"
    );
    let blocks = n.div_ceil(block);
    Ok(gpu
        .row_chunks(blocks, &[block as u64 * 4])?
        .into_iter()
        .map(|(s, c)| (s * block, (c * block).min(n - s * block)))
        .collect())
}

/// Elements `start..start + len` of `t` as a binding.
pub(crate) fn elems(t: &Tensor, start: usize, len: usize) -> BufRange<'_> {
    BufRange {
        buf: t.buffer(),
        offset: start as u64 * 4,
        size: len as u64 * 4,
    }
}

/// Rows `start..start + n` of a tensor whose rows are `row_words` words wide, as a binding.
pub(crate) fn rows_of(t: &Tensor, start: usize, n: usize, row_words: usize) -> BufRange<'_> {
    let rb = row_words as u64 * 4;
    BufRange {
        buf: t.buffer(),
        offset: start as u64 * rb,
        size: n as u64 * rb,
    }
}
