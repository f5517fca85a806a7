//! Launcher for `shaders/attention_train.wgsl`: the materialised steps of trainable attention,
//! which [`crate::autograd::Graph::attention`] composes with batched matmuls.
//!
//! - [`split_heads`] `[B, S, H*D] -> [B*H, S, D]` and its inverse [`merge_heads`]: flat
//!   permutations (each the other's gradient), chunked by whole sequences so tensors above the
//!   storage-binding limit work as long as one sequence fits in a binding.
//! - [`masked_softmax`]: `p = softmax(scale · s)` over each row of scores `[B*H, Sq, Sk]`,
//!   restricted to the keys an [`AttnMask`] allows, zeros elsewhere. The allowed keys of a row
//!   are always a prefix (padding keys come last, a causal query sees keys up to itself), so the
//!   kernel is a row softmax over that prefix. Rows of any length work: like
//!   [`crate::kernels::norm::softmax_rows`], long rows run one pass per dispatch over windows
//!   of columns ([`col_windows`]), so no invocation loops more than [`crate::kernels::LOOP_BUDGET`]
//!   times per dispatch.
//!
//! Unlike the fused inference kernel of [`crate::kernels::attention`], these materialise the
//! `[B*H, Sq, Sk]` scores: the backward needs the probabilities, and at training sizes
//! (sequences of a few hundred) they are small.

use crate::error::{Error, Result};
use crate::gpu::ShaderSource;
use crate::kernels::col_windows;
use crate::kernels::launch::{check_f32, check_u32, groups, rows_of, u32_of, WG};
use crate::tensor::Tensor;

/// The trainable-attention shader.
pub const SHADER: ShaderSource = ShaderSource {
    name: "attention_train",
    code: with_prelude!("attention_train.wgsl"),
};

/// Which keys each query may attend to. Lengths are u32 tensors of shape `[batch]`.
#[derive(Clone, Copy, Debug, Default)]
pub struct AttnMask<'a> {
    /// Real query rows per sequence (rows at or past it come out as zeros); `None` = all.
    pub q_lens: Option<&'a Tensor>,
    /// Real keys per sequence (padding keys are never attended); `None` = all.
    pub k_lens: Option<&'a Tensor>,
    /// Query `i` attends to keys `j <= i` only.
    pub causal: bool,
}

uniform! {
    /// Uniform of the `heads` entry point; mirrors `HeadsParams` in attention_train.wgsl.
    struct HeadsParams {
        n: u32,
        seq: u32,
        heads: u32,
        head_dim: u32,
    }
}

uniform! {
    /// Uniform of the `masked_softmax` entry point; mirrors `SoftmaxParams`.
    struct SoftmaxParams {
        rows: u32,
        cols: u32,
        sq: u32,
        heads: u32,
        row0: u32,
        c0: u32,
        c1: u32,
        flags: u32,
        scale: f32,
        _pad: [u32; 3],
    }
}

// `SoftmaxParams::flags`: the statistics pass, the writing pass, the first window, causal.
const SM_STATS: u32 = 1;
const SM_WRITE: u32 = 2;
const SM_FIRST: u32 = 4;
const SM_CAUSAL: u32 = 8;

/// The three dimensions of a rank-3 tensor, or a [`Error::Shape`] naming `what`.
fn dims3(t: &Tensor, op: &'static str, what: &str) -> Result<[usize; 3]> {
    match *t.shape() {
        [a, b, c] => Ok([a, b, c]),
        _ => Err(Error::shape(
            op,
            format!("{what} {:?} must have three dimensions", t.shape()),
        )),
    }
}

/// Checks that `heads` is at least 1 and divides `n`; returns `n / heads`.
fn per_head(n: usize, heads: usize, op: &'static str, what: &str) -> Result<usize> {
    if heads == 0 || !n.is_multiple_of(heads) {
        return Err(Error::shape(
            op,
            format!("heads = {heads} must be at least 1 and divide {what} = {n}"),
        ));
    }
    Ok(n / heads)
}

/// Runs the `heads` permutation: `x` viewed as `[batch, per_seq]` words, `seq`, `heads`,
/// `head_dim` as the split layout has them.
fn permute(x: &Tensor, out_shape: &[usize], dims: [usize; 4], merge: bool) -> Result<Tensor> {
    let op = if merge { "merge_heads" } else { "split_heads" };
    check_f32(x, op, "the input")?;
    let [batch, seq, heads, head_dim] = dims;
    let out = Tensor::empty(x.gpu(), out_shape)?;
    let per_seq = seq * heads * head_dim;
    if batch == 0 || per_seq == 0 {
        return Ok(out);
    }
    let gpu = x.gpu();
    let rb = per_seq as u64 * 4;
    for (start, n) in gpu.row_chunks(batch, &[rb])? {
        let elems = n * per_seq;
        let params = HeadsParams {
            n: u32_of(elems, "elements per dispatch", op)?,
            seq: u32_of(seq, "seq", op)?,
            heads: u32_of(heads, "heads", op)?,
            head_dim: u32_of(head_dim, "head_dim", op)?,
        };
        gpu.dispatch(
            &SHADER,
            "heads",
            &[("MERGE", if merge { 1.0 } else { 0.0 })],
            bytemuck::bytes_of(&params),
            &[
                rows_of(x, start, n, per_seq),
                rows_of(&out, start, n, per_seq),
            ],
            groups(elems, WG, op)?,
        )?;
    }
    Ok(out)
}

/// Splits the heads of `x: [B, S, H*D]` into matrices: `[B*H, S, D]` whose row `(b, h, s)`
/// is `x[b, s, h*D..(h+1)*D]`. The gradient of [`merge_heads`] (and the other way round).
pub fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    const OP: &str = "split_heads";
    let [b, s, w] = dims3(x, OP, "the input")?;
    let d = per_head(w, heads, OP, "the width")?;
    permute(x, &[b * heads, s, d], [b, s, heads, d], false)
}

/// Merges the heads of `y: [B*H, S, D]` back into token rows: `[B, S, H*D]`, the inverse of
/// [`split_heads`].
pub fn merge_heads(y: &Tensor, heads: usize) -> Result<Tensor> {
    const OP: &str = "merge_heads";
    let [bh, s, d] = dims3(y, OP, "the input")?;
    let b = per_head(bh, heads, OP, "the leading dimension")?;
    permute(y, &[b, s, heads * d], [b, s, heads, d], true)
}

/// CPU reference of [`split_heads`]: `x` is `[b, s, h*d]` row-major, `dims = [b, s, h, d]`.
pub fn split_heads_cpu(x: &[f32], dims: [usize; 4]) -> Vec<f32> {
    let [b, s, h, d] = dims;
    let mut out = Vec::with_capacity(x.len());
    for bi in 0..b {
        for hi in 0..h {
            for si in 0..s {
                let at = ((bi * s + si) * h + hi) * d;
                out.extend_from_slice(&x[at..at + d]);
            }
        }
    }
    out
}

/// CPU reference of [`merge_heads`]: `y` is `[b*h, s, d]` row-major, `dims = [b, s, h, d]`.
pub fn merge_heads_cpu(y: &[f32], dims: [usize; 4]) -> Vec<f32> {
    let [b, s, h, d] = dims;
    let mut out = Vec::with_capacity(y.len());
    for bi in 0..b {
        for si in 0..s {
            for hi in 0..h {
                let at = ((bi * h + hi) * s + si) * d;
                out.extend_from_slice(&y[at..at + d]);
            }
        }
    }
    out
}

/// Checks an optional length tensor: u32 with one value per sequence.
fn check_lens(t: Option<&Tensor>, batch: usize, what: &str) -> Result<()> {
    const OP: &str = "masked_softmax";
    let Some(t) = t else { return Ok(()) };
    check_u32(t, OP, what)?;
    if t.shape() != [batch] {
        return Err(Error::shape(
            OP,
            format!(
                "{what} {:?} must have shape [{batch}], one length per sequence",
                t.shape()
            ),
        ));
    }
    Ok(())
}

/// Rows of at most this many keys are taken one per invocation (three passes of at most
/// 3 × 512 loop iterations, well inside [`crate::kernels::LOOP_BUDGET`]).
pub const NARROW_MAX: usize = 512;

/// The masked, scaled row softmax of scores `s: [B*H, Sq, Sk]` (sequence `b = bh / heads`):
/// `p[bh, i, j] = softmax_j(scale · s[bh, i, j])` over the keys `j` that `mask` allows
/// (`j < k_lens[b]`, and `j <= i` when causal); other entries are 0, and query rows
/// `i >= q_lens[b]` or with no allowed key are all zeros (never NaN). Lengths above the
/// sequence count as the sequence.
pub fn masked_softmax(s: &Tensor, heads: usize, scale: f32, mask: &AttnMask) -> Result<Tensor> {
    const OP: &str = "masked_softmax";
    check_f32(s, OP, "the scores")?;
    let [bh, sq, sk] = dims3(s, OP, "the scores")?;
    let batch = per_head(bh, heads, OP, "the leading dimension")?;
    check_lens(mask.q_lens, batch, "q_lens")?;
    check_lens(mask.k_lens, batch, "k_lens")?;
    let y = Tensor::empty(s.gpu(), s.shape())?;
    let rows = bh * sq;
    if rows == 0 || sk == 0 {
        return Ok(y);
    }
    let gpu = s.gpu();
    let windows = col_windows(sk, 2);
    let steps: Vec<(usize, usize, u32)> = if windows.len() == 1 {
        vec![(0, sk, SM_STATS | SM_WRITE | SM_FIRST)]
    } else {
        let stats = windows
            .iter()
            .enumerate()
            .map(|(i, &(c0, c1))| (c0, c1, SM_STATS | if i == 0 { SM_FIRST } else { 0 }));
        let writes = windows.iter().map(|&(c0, c1)| (c0, c1, SM_WRITE));
        stats.chain(writes).collect()
    };
    let causal = if mask.causal { SM_CAUSAL } else { 0 };
    for (start, n) in gpu.row_chunks(rows, &[sk as u64 * 4])? {
        // The running (max, sum) of each row between windows; a dummy for one dispatch.
        let state = Tensor::empty(gpu, &[if steps.len() > 1 { 2 * n } else { 1 }])?;
        let xr = s.row_range(start, n);
        // An absent length is switched off by a constant; its slot gets a read-only dummy.
        let (ql, kl) = (
            mask.q_lens.map_or(xr, Tensor::range),
            mask.k_lens.map_or(xr, Tensor::range),
        );
        for &(c0, c1, flags) in &steps {
            let params = SoftmaxParams {
                rows: u32_of(n, "rows", OP)?,
                cols: u32_of(sk, "keys", OP)?,
                sq: u32_of(sq, "queries", OP)?,
                heads: u32_of(heads, "heads", OP)?,
                row0: u32_of(start, "the first row", OP)?,
                c0: u32_of(c0, "c0", OP)?,
                c1: u32_of(c1, "c1", OP)?,
                flags: flags | causal,
                scale,
                _pad: [0; 3],
            };
            // Short rows take one invocation each (`masked_softmax_narrow`), long ones a
            // workgroup with a tree reduction.
            let narrow = sk <= NARROW_MAX && steps.len() == 1;
            let (entry, groups) = if narrow {
                ("masked_softmax_narrow", params.rows.div_ceil(64))
            } else {
                ("masked_softmax", params.rows)
            };
            gpu.dispatch(
                &SHADER,
                entry,
                &[
                    ("HAS_QLEN", if mask.q_lens.is_some() { 1.0 } else { 0.0 }),
                    ("HAS_KLEN", if mask.k_lens.is_some() { 1.0 } else { 0.0 }),
                ],
                bytemuck::bytes_of(&params),
                &[xr, y.row_range(start, n), ql, kl, state.range()],
                groups,
            )?;
        }
    }
    Ok(y)
}

/// CPU reference of [`masked_softmax`] in f64: `s` is `[batch*heads, sq, sk]` row-major with
/// `dims = [batch, heads, sq, sk]`; absent lengths mean full length.
pub fn masked_softmax_cpu(
    s: &[f32],
    dims: [usize; 4],
    scale: f32,
    q_lens: Option<&[u32]>,
    k_lens: Option<&[u32]>,
    causal: bool,
) -> Vec<f32> {
    let [_, heads, sq, sk] = dims;
    let mut out = vec![0f32; s.len()];
    if sq == 0 || sk == 0 {
        return out;
    }
    for (r, (row, o)) in s.chunks(sk).zip(out.chunks_mut(sk)).enumerate() {
        let (i, b) = (r % sq, r / sq / heads);
        let mut lim = k_lens.map_or(sk, |k| (k[b] as usize).min(sk));
        if causal {
            lim = lim.min(i + 1);
        }
        if q_lens.is_some_and(|q| i >= q[b] as usize) {
            lim = 0;
        }
        let v: Vec<f64> = row[..lim]
            .iter()
            .map(|&x| scale as f64 * x as f64)
            .collect();
        let m = v.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
        let total: f64 = v.iter().map(|&x| (x - m).exp()).sum();
        for (oj, &x) in o.iter_mut().zip(&v) {
            *oj = ((x - m).exp() / total) as f32;
        }
    }
    out
}
