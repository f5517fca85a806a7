//! Launcher for `shaders/attention.wgsl`: multi-head scaled dot-product attention with a
//! key-padding mask, batched over sequences and heads.
//!
//! The kernel is fused and tiled over keys with an online softmax (a running max raised once per
//! tile of keys, the accumulator rescaled), so it never materialises a `[batch, heads, seq, seq]`
//! score buffer: memory is that of Q, K, V and the output. Accumulation is in f32.
//!
//! Masking: sequence `b` has `len = min(lengths[b], seq)` real tokens. Query row `i < len`
//! attends to keys `0..len`; rows `i >= len` are padding and come out as zeros, so a sequence of
//! length 0 (fully masked) gives zeros, never NaN.
//!
//! Layout: Q, K and V are `[batch, seq, heads * head_dim]` with the heads side by side in each
//! token row, as they come out of the projection matmuls ([`attention`]); or one packed
//! `[batch, seq, 3 * heads * head_dim]` tensor holding `[Q | K | V]` per row, as one fused QKV
//! matmul gives it ([`attention_packed`]). The output is `[batch, seq, heads * head_dim]`.
//! Work is split into runs of whole sequences so every binding stays under the storage-binding
//! limit. When `head_dim`, the row strides and the column offsets are multiples of 4 the kernel
//! reads and writes vec4s (entry `attention_v4`), else scalars (entry `attention`).
//! Long sequences are taken in ranges of keys, one dispatch each, that continue the previous
//! range's running max, sum and unnormalised output, so that no invocation loops more than
//! [`LOOP_BUDGET`] times per dispatch (about 32,000 / (2 · head_dim + 4) keys per range, with
//! head_dim counted in vec4s for `attention_v4`).
//!
//! The same shader holds [`add_layernorm`], the residual step of a transformer block:
//! `layernorm(a + b) · gamma + beta` in one barrier-free pass (one row per invocation), which on
//! CPU adapters is far cheaper than a separate add and a workgroup-reduction layernorm.

use crate::error::{Error, Result};
use crate::gpu::{BufRange, ShaderSource};
use crate::kernels::launch::{check_f32, u32_of};
use crate::kernels::LOOP_BUDGET;
use crate::tensor::{DType, Tensor};

/// The attention shader.
pub const SHADER: ShaderSource = ShaderSource {
    name: "attention",
    code: with_prelude!("attention.wgsl"),
};

/// The largest head dimension the kernel supports (the size of its per-row register arrays).
pub const MAX_HEAD_DIM: usize = 128;

/// Query rows per attention workgroup (one (sequence, head) pair per workgroup).
const WG: usize = 32;
/// Keys per tile of the kernel (`KT` in the shader).
const KT: usize = 16;
/// Rows per `add_layernorm` workgroup.
const LN_WG: usize = 64;

/// Options of [`attention`] and [`attention_packed`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionOpts {
    /// Number of heads; must divide the hidden width.
    pub heads: usize,
    /// Multiplier of q·k; `None` is `1 / sqrt(head_dim)`.
    pub scale: Option<f32>,
}

impl AttentionOpts {
    /// `heads` heads with the default scale `1 / sqrt(head_dim)`.
    pub fn new(heads: usize) -> Self {
        AttentionOpts { heads, scale: None }
    }
    /// Sets the score scale.
    pub fn scale(mut self, scale: f32) -> Self {
        self.scale = Some(scale);
        self
    }
}

/// The geometry of one attention call, for [`attention_cpu`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    /// Sequences.
    pub batch: usize,
    /// Padded tokens per sequence.
    pub seq: usize,
    /// Heads.
    pub heads: usize,
    /// Values per head.
    pub head_dim: usize,
}

impl AttentionShape {
    /// Values per token row: `heads * head_dim`.
    pub fn hidden(&self) -> usize {
        self.heads * self.head_dim
    }
}

uniform! {
    struct Params {
        batch: u32,
        seq: u32,
        heads: u32,
        head_dim: u32,
        q_rs: u32,
        k_rs: u32,
        v_rs: u32,
        o_rs: u32,
        q_off: u32,
        k_off: u32,
        v_off: u32,
        b0: u32,
        scale: f32,
        kbeg: u32,
        kend: u32,
        flags: u32,
    }
}

/// `Params::flags`: the first key range (start from nothing).
const FIRST_RANGE: u32 = 1;
/// `Params::flags`: the last key range (normalise and write the output).
const LAST_RANGE: u32 = 2;

/// Keys one attention dispatch takes, a multiple of the key tile: per key two loops over the
/// `width` values of a head (head_dim, or head_dim / 4 for vec4 rows), per tile one more, and
/// three such loops per dispatch (the query, a carried accumulator, the output), all within
/// [`LOOP_BUDGET`].
fn keys_per_dispatch(width: usize) -> usize {
    let per_tile = KT * (2 * width + 4) + width + 4;
    let fixed = 3 * (width + 1) + 8;
    KT * (LOOP_BUDGET.saturating_sub(fixed) / per_tile).max(1)
}

/// One operand: a tensor read with a row stride and a column offset.
struct Operand<'a> {
    t: &'a Tensor,
    rs: usize,
    off: usize,
}

/// The batch, seq and width of a rank-3 tensor.
fn dims3(t: &Tensor, what: &str) -> Result<(usize, usize, usize)> {
    match *t.shape() {
        [b, s, c] => Ok((b, s, c)),
        _ => Err(Error::shape(
            "attention",
            format!(
                "{what} {:?} must be [batch, seq, heads * head_dim]",
                t.shape()
            ),
        )),
    }
}

/// Checks `heads` against the hidden width and returns `head_dim`.
fn head_dim(hidden: usize, heads: usize) -> Result<usize> {
    if heads == 0 {
        return Err(Error::Invalid("attention: heads must be at least 1".into()));
    }
    if !hidden.is_multiple_of(heads) {
        return Err(Error::shape(
            "attention",
            format!("the width {hidden} is not a multiple of heads = {heads}"),
        ));
    }
    let dh = hidden / heads;
    if dh > MAX_HEAD_DIM {
        return Err(Error::shape(
            "attention",
            format!("head_dim {dh} (= {hidden} / {heads}) exceeds the kernel's {MAX_HEAD_DIM}"),
        ));
    }
    Ok(dh)
}

fn check_lengths(lengths: &Tensor, batch: usize) -> Result<()> {
    if lengths.dtype() != DType::U32 {
        return Err(Error::Invalid(format!(
            "attention: lengths must be a U32 tensor, not {:?}",
            lengths.dtype()
        )));
    }
    if lengths.numel() != batch {
        return Err(Error::shape(
            "attention",
            format!(
                "lengths {:?} must hold one length per sequence ({batch})",
                lengths.shape()
            ),
        ));
    }
    Ok(())
}

/// Scaled dot-product attention of `q` over `k`, `v`, all `[batch, seq, heads * head_dim]`,
/// with per-sequence `lengths` (a [`DType::U32`] tensor of `batch` values; lengths above `seq`
/// count as `seq`). Returns `[batch, seq, heads * head_dim]`; padding rows (`i >= len`) are zeros.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    lengths: &Tensor,
    opts: &AttentionOpts,
) -> Result<Tensor> {
    let (batch, seq, hidden) = dims3(q, "Q")?;
    for (t, what) in [(k, "K"), (v, "V")] {
        if t.shape() != q.shape() {
            return Err(Error::shape(
                "attention",
                format!("{what} {:?} must have Q's shape {:?}", t.shape(), q.shape()),
            ));
        }
    }
    let dh = head_dim(hidden, opts.heads)?;
    let shape = AttentionShape {
        batch,
        seq,
        heads: opts.heads,
        head_dim: dh,
    };
    let op = |t| Operand {
        t,
        rs: hidden,
        off: 0,
    };
    launch(&[op(q), op(k), op(v)], lengths, shape, opts.scale)
}

/// [`attention`] on one packed tensor `qkv` of shape `[batch, seq, 3 * heads * head_dim]` whose
/// rows hold Q, then K, then V (the output of one matmul with the three projections stacked).
pub fn attention_packed(qkv: &Tensor, lengths: &Tensor, opts: &AttentionOpts) -> Result<Tensor> {
    let (batch, seq, width) = dims3(qkv, "QKV")?;
    if !width.is_multiple_of(3) {
        return Err(Error::shape(
            "attention_packed",
            format!(
                "QKV {:?} must have a last dimension of 3 * heads * head_dim",
                qkv.shape()
            ),
        ));
    }
    let hidden = width / 3;
    let dh = head_dim(hidden, opts.heads)?;
    let shape = AttentionShape {
        batch,
        seq,
        heads: opts.heads,
        head_dim: dh,
    };
    let op = |off| Operand {
        t: qkv,
        rs: width,
        off,
    };
    launch(
        &[op(0), op(hidden), op(2 * hidden)],
        lengths,
        shape,
        opts.scale,
    )
}

fn launch(
    ops: &[Operand<'_>; 3],
    lengths: &Tensor,
    shape: AttentionShape,
    scale: Option<f32>,
) -> Result<Tensor> {
    for (o, what) in ops.iter().zip(["Q", "K", "V"]) {
        check_f32(o.t, "attention", what)?;
    }
    check_lengths(lengths, shape.batch)?;
    let scale = scale.unwrap_or(1.0 / (shape.head_dim.max(1) as f32).sqrt());
    if !scale.is_finite() {
        return Err(Error::Invalid(format!(
            "attention: the scale must be finite, not {scale}"
        )));
    }
    let gpu = ops[0].t.gpu();
    let hidden = shape.hidden();
    let out = Tensor::empty(gpu, &[shape.batch, shape.seq, hidden])?;
    if shape.batch == 0 || shape.seq == 0 || hidden == 0 {
        return Ok(out);
    }
    let seq_bytes = |rs: usize| (shape.seq * rs) as u64 * 4;
    // vec4 loads when every head, row and column offset starts on a multiple of 4 values.
    let aligned = shape.head_dim.is_multiple_of(4)
        && ops
            .iter()
            .all(|o| o.rs.is_multiple_of(4) && o.off.is_multiple_of(4));
    let entry = if aligned { "attention_v4" } else { "attention" };
    let keys = keys_per_dispatch(if aligned {
        shape.head_dim / 4
    } else {
        shape.head_dim
    });
    // Key ranges carry a running max and sum per query row and head between dispatches.
    let split = shape.seq > keys;
    let state_seq_bytes = seq_bytes(2 * shape.heads);
    let mut row_bytes: Vec<u64> = ops
        .iter()
        .map(|o| seq_bytes(o.rs))
        .chain([seq_bytes(hidden)])
        .collect();
    if split {
        row_bytes.push(state_seq_bytes);
    }
    let chunks = gpu.row_chunks(shape.batch, &row_bytes)?;
    let state_len = if split {
        let most = chunks.iter().map(|c| c.1).max().unwrap_or(0);
        most * shape.seq * 2 * shape.heads
    } else {
        1 // a dummy binding
    };
    let state = Tensor::empty(gpu, &[state_len])?;
    for (b0, nb) in chunks {
        let bind =
            |rs: usize| -> (u64, u64) { (b0 as u64 * seq_bytes(rs), nb as u64 * seq_bytes(rs)) };
        let params = Params {
            batch: u32_of(nb, "batch", "attention")?,
            seq: u32_of(shape.seq, "seq", "attention")?,
            heads: u32_of(shape.heads, "heads", "attention")?,
            head_dim: u32_of(shape.head_dim, "head_dim", "attention")?,
            q_rs: u32_of(ops[0].rs, "the row stride of Q", "attention")?,
            k_rs: u32_of(ops[1].rs, "the row stride of K", "attention")?,
            v_rs: u32_of(ops[2].rs, "the row stride of V", "attention")?,
            o_rs: u32_of(hidden, "the output width", "attention")?,
            q_off: u32_of(ops[0].off, "the column offset of Q", "attention")?,
            k_off: u32_of(ops[1].off, "the column offset of K", "attention")?,
            v_off: u32_of(ops[2].off, "the column offset of V", "attention")?,
            b0: u32_of(b0, "the first sequence", "attention")?,
            scale,
            kbeg: 0,
            kend: 0,
            flags: 0,
        };
        let groups = nb
            .checked_mul(shape.heads)
            .and_then(|r| r.checked_mul(shape.seq.div_ceil(WG)))
            .ok_or_else(|| Error::Invalid("attention: too many workgroups".into()))?;
        let groups = u32_of(groups, "the workgroup count", "attention")?;
        let mut bufs: Vec<BufRange<'_>> = Vec::with_capacity(5);
        for o in ops {
            let (offset, size) = bind(o.rs);
            bufs.push(BufRange {
                buf: o.t.buffer(),
                offset,
                size,
            });
        }
        bufs.push(lengths.range());
        let (offset, size) = bind(hidden);
        bufs.push(BufRange {
            buf: out.buffer(),
            offset,
            size,
        });
        bufs.push(BufRange {
            buf: state.buffer(),
            offset: 0,
            size: if split {
                nb as u64 * state_seq_bytes
            } else {
                4
            },
        });
        for kbeg in (0..shape.seq).step_by(keys) {
            let kend = (kbeg + keys).min(shape.seq);
            let params = Params {
                kbeg: u32_of(kbeg, "kbeg", "launch")?,
                kend: u32_of(kend, "kend", "launch")?,
                flags: if kbeg == 0 { FIRST_RANGE } else { 0 }
                    | if kend == shape.seq { LAST_RANGE } else { 0 },
                ..params
            };
            gpu.dispatch(
                &SHADER,
                entry,
                &[],
                bytemuck::bytes_of(&params),
                &bufs,
                groups,
            )?;
        }
    }
    Ok(out)
}

uniform! {
    struct LnParams {
        rows: u32,
        cols: u32,
        eps: f32,
        _pad: u32,
    }
}

/// `layernorm(a + b) · gamma + beta` over the last dimension (biased variance, as PyTorch's
/// `layer_norm`): `a` and `b` have one shape, `gamma` and `beta` hold `cols` values each.
/// Returns a new tensor of `a`'s shape.
///
/// One invocation walks a row three times, so rows longer than a third of [`LOOP_BUDGET`]
/// (10,900 values) take an elementwise add and [`crate::kernels::norm::layernorm`] instead.
pub fn add_layernorm(
    a: &Tensor,
    b: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f32,
) -> Result<Tensor> {
    const OP: &str = "add_layernorm";
    for (t, what) in [(a, "a"), (b, "b"), (gamma, "gamma"), (beta, "beta")] {
        if t.dtype() != DType::F32 {
            return Err(Error::Invalid(format!(
                "{OP}: {what} must be f32, not {:?}",
                t.dtype()
            )));
        }
    }
    if a.shape() != b.shape() {
        return Err(Error::shape(
            OP,
            format!("a {:?} and b {:?} differ", a.shape(), b.shape()),
        ));
    }
    let (rows, cols) = (a.rows(), a.cols());
    if cols == 0 && rows > 0 {
        return Err(Error::shape(
            OP,
            format!("input {:?} has an empty last dimension", a.shape()),
        ));
    }
    for (t, what) in [(gamma, "gamma"), (beta, "beta")] {
        if t.numel() != cols {
            return Err(Error::shape(
                OP,
                format!(
                    "{what} {:?} must have {cols} elements, the last dimension of {:?}",
                    t.shape(),
                    a.shape()
                ),
            ));
        }
    }
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(Error::Invalid(format!(
            "{OP}: eps must be finite and non-negative, not {eps}"
        )));
    }
    if 3 * (cols + 1) + 8 > LOOP_BUDGET {
        let s =
            crate::kernels::elementwise::binary(a, b, crate::kernels::elementwise::Binary::Add)?;
        return crate::kernels::norm::layernorm(&s, Some(gamma), Some(beta), eps);
    }
    let gpu = a.gpu();
    let y = Tensor::empty(gpu, a.shape())?;
    if rows == 0 {
        return Ok(y);
    }
    let rb = cols as u64 * 4;
    for (start, n) in gpu.row_chunks(rows, &[rb])? {
        let params = LnParams {
            rows: u32_of(n, "rows", "add_layernorm")?,
            cols: u32_of(cols, "cols", "add_layernorm")?,
            eps,
            _pad: 0,
        };
        gpu.dispatch(
            &SHADER,
            "add_layernorm",
            &[],
            bytemuck::bytes_of(&params),
            &[
                a.row_range(start, n),
                b.row_range(start, n),
                gamma.range(),
                beta.range(),
                y.row_range(start, n),
            ],
            u32_of(n.div_ceil(LN_WG), "the workgroup count", "add_layernorm")?,
        )?;
    }
    Ok(y)
}

/// Plain-Rust reference of [`add_layernorm`] (f64 statistics): `a`, `b` row-major with `cols`
/// columns.
pub fn add_layernorm_cpu(a: &[f32], b: &[f32], gamma: &[f32], beta: &[f32], eps: f32) -> Vec<f32> {
    let cols = gamma.len().max(1);
    let mut out = Vec::with_capacity(a.len());
    for (ra, rb) in a.chunks(cols).zip(b.chunks(cols)) {
        let s: Vec<f64> = ra
            .iter()
            .zip(rb)
            .map(|(&x, &y)| x as f64 + y as f64)
            .collect();
        let mean = s.iter().sum::<f64>() / cols as f64;
        let var = s.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / cols as f64;
        let r = 1.0 / (var + eps as f64).sqrt();
        for (j, v) in s.iter().enumerate() {
            out.push(((v - mean) * r * gamma[j] as f64 + beta[j] as f64) as f32);
        }
    }
    out
}

/// Plain-Rust reference of [`attention`] (f64 accumulation, a two-pass softmax): `q`, `k`, `v`
/// are `[batch, seq, heads * head_dim]` row-major and `lengths` has `batch` values. `scale`
/// `None` is `1 / sqrt(head_dim)`. Padding rows and fully masked sequences give zeros.
pub fn attention_cpu(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    lengths: &[u32],
    shape: AttentionShape,
    scale: Option<f32>,
) -> Vec<f32> {
    let AttentionShape {
        batch,
        seq,
        heads,
        head_dim: dh,
    } = shape;
    let hd = heads * dh;
    let scale = scale.unwrap_or(1.0 / (dh.max(1) as f32).sqrt()) as f64;
    let mut out = vec![0f32; batch * seq * hd];
    let mut scores = vec![0f64; seq];
    for b in 0..batch {
        let len = (lengths[b] as usize).min(seq);
        for i in 0..len {
            for h in 0..heads {
                let qr = &q[(b * seq + i) * hd + h * dh..][..dh];
                let mut mx = f64::NEG_INFINITY;
                for (j, s) in scores.iter_mut().enumerate().take(len) {
                    let kr = &k[(b * seq + j) * hd + h * dh..][..dh];
                    let dot: f64 = qr.iter().zip(kr).map(|(&a, &c)| a as f64 * c as f64).sum();
                    *s = dot * scale;
                    mx = mx.max(*s);
                }
                let mut sum = 0.0;
                for s in scores.iter_mut().take(len) {
                    *s = (*s - mx).exp();
                    sum += *s;
                }
                let o = &mut out[(b * seq + i) * hd + h * dh..][..dh];
                for (d, od) in o.iter_mut().enumerate() {
                    let mut acc = 0.0;
                    for (j, s) in scores.iter().enumerate().take(len) {
                        acc += s * v[(b * seq + j) * hd + h * dh + d] as f64;
                    }
                    *od = (acc / sum) as f32;
                }
            }
        }
    }
    out
}
