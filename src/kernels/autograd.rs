//! Launcher for `shaders/autograd.wgsl`: the backward kernels of [`crate::autograd`] and the
//! few forward kernels it needs that other shaders lack.
//!
//! - [`unary_backward`]: `dx = dy · f'(x)` for the differentiable [`Unary`] ops.
//! - [`scale_by`], [`fill_scalar`]: multiply by / broadcast a scalar that lives on the GPU (the
//!   upstream gradient of a scalar loss), so no readback is needed.
//! - [`softmax_rows_backward`], [`scaled_softmax_rows_backward`], [`layernorm_backward`],
//!   [`l2_normalize_rows`] and [`l2_normalize_rows_backward`]: row-wise, one workgroup per row, deterministic trees.
//! - [`bce_with_logits_elems`], [`bce_with_logits_backward`], [`nll_rows`],
//!   [`softmax_xent_backward`]: loss pieces.
//! - [`dropout`] with [`dropout_key`] and the CPU reference [`dropout_mask_cpu`]: a counter-based
//!   hash, so a mask depends only on (seed, stream, element index).
//!
//! Flat kernels are chunked in blocks of [`FLAT_BLOCK`] elements and row kernels by
//! [`Gpu::row_chunks`], so tensors above the storage-binding limit work. Row kernels walk rows
//! of up to 2^22 values in one dispatch; longer rows run their sum pass, then their writing
//! pass, over windows of columns, one dispatch each, carrying each row's running sum, so that
//! no invocation loops more than [`crate::kernels::LOOP_BUDGET`] times per dispatch.

use crate::error::{Error, Result};
use crate::gpu::{BufRange, Gpu, ShaderSource};
use crate::kernels::col_windows;
use crate::kernels::elementwise::Unary;
use crate::kernels::launch::{check_f32, elems, flat_chunks, groups, u32_of, FLAT_BLOCK, WG};
use crate::kernels::reduce::row_shape;
use crate::tensor::{DType, Tensor};

/// The autograd shader.
pub const SHADER: ShaderSource = ShaderSource {
    name: "autograd",
    code: with_prelude!("autograd.wgsl"),
};

uniform! {
    #[derive(Default)]
    struct Params {
        n: u32,
        cols: u32,
        op: u32,
        base: u32,
        alpha: f32,
        beta: f32,
        k0: u32,
        k1: u32,
        c0: u32,
        c1: u32,
        flags: u32,
        _pad: u32,
    }
}

// `Params::flags` of the row kernels: the sum pass, the writing pass, and the first and last
// windows of the sum pass.
const SUM_PASS: u32 = 1;
const WRITE_PASS: u32 = 2;
const FIRST_WINDOW: u32 = 4;
const LAST_WINDOW: u32 = 8;

fn same_count(op: &'static str, a: &Tensor, what: &str, b: &Tensor) -> Result<()> {
    if a.numel() != b.numel() {
        return Err(Error::shape(
            op,
            format!(
                "{what} {:?} must have as many elements as {:?}",
                b.shape(),
                a.shape()
            ),
        ));
    }
    Ok(())
}

fn scalar(op: &'static str, s: &Tensor) -> Result<()> {
    check_f32(s, op, "the scalar")?;
    if s.numel() != 1 {
        return Err(Error::shape(
            op,
            format!("the scalar {:?} must have one element", s.shape()),
        ));
    }
    Ok(())
}

/// Runs a flat kernel over `n` elements: `bind(start, len)` gives the bindings of a chunk.
fn run_flat<'a>(
    gpu: &Gpu,
    entry: &str,
    mut params: Params,
    n: usize,
    op: &'static str,
    bind: impl Fn(usize, usize) -> Vec<BufRange<'a>>,
) -> Result<()> {
    let base = params.base;
    for (start, len) in flat_chunks(gpu, n, FLAT_BLOCK)? {
        params.n = u32_of(len, "the chunk length", op)?;
        // The base is a hash counter (dropout's element index): it wraps on purpose.
        params.base = base.wrapping_add(start as u32);
        gpu.dispatch(
            &SHADER,
            entry,
            &[],
            bytemuck::bytes_of(&params),
            &bind(start, len),
            groups(len, WG, op)?,
        )?;
    }
    Ok(())
}

/// The op number (the forward's own, [`Unary::opcode`]) of a unary op that
/// `unary_backward` differentiates, or an error.
fn unary_code(op: Unary) -> Result<u32> {
    match op {
        Unary::Relu
        | Unary::Gelu
        | Unary::Sigmoid
        | Unary::Tanh
        | Unary::Exp
        | Unary::Log
        | Unary::Square
        | Unary::Sqrt
        | Unary::GeluTanh => Ok(op.opcode()),
        other => Err(Error::Invalid(format!(
            "unary_backward: {other:?} has no backward kernel (use the graph's own rule)"
        ))),
    }
}

/// `dx = dy · f'(x)` for `f` = `op`, given the forward input `x` and output `y` (same element
/// count). Relu, GELU, sigmoid, tanh, exp, log, square, sqrt and tanh-GELU are supported.
/// Relu, sigmoid, tanh, exp and sqrt read only `y`, so `x` may be `y` there (e.g. after a
/// fused matmul activation, whose input is not kept).
pub fn unary_backward(x: &Tensor, y: &Tensor, dy: &Tensor, op: Unary) -> Result<Tensor> {
    const OP: &str = "unary_backward";
    let code = unary_code(op)?;
    for (t, w) in [(x, "x"), (y, "y"), (dy, "dy")] {
        check_f32(t, OP, w)?;
        same_count(OP, x, w, t)?;
    }
    let dx = Tensor::empty(x.gpu(), x.shape())?;
    let params = Params {
        op: code,
        ..Default::default()
    };
    run_flat(x.gpu(), "unary_backward", params, x.numel(), OP, |s, l| {
        vec![
            elems(x, s, l),
            elems(y, s, l),
            elems(dy, s, l),
            elems(&dx, s, l),
        ]
    })?;
    Ok(dx)
}

/// `alpha · s[0] · a`, elementwise, where `s` is a one-element tensor on the GPU.
pub fn scale_by(a: &Tensor, s: &Tensor, alpha: f32) -> Result<Tensor> {
    const OP: &str = "scale_by";
    check_f32(a, OP, "a")?;
    scalar(OP, s)?;
    let out = Tensor::empty(a.gpu(), a.shape())?;
    let params = Params {
        alpha,
        ..Default::default()
    };
    run_flat(a.gpu(), "scale_by", params, a.numel(), OP, |st, l| {
        vec![elems(a, st, l), s.range(), elems(&out, st, l)]
    })?;
    Ok(out)
}

/// A new tensor of `shape` with every element `alpha · s[0]` (`s` a one-element GPU tensor).
pub fn fill_scalar(s: &Tensor, alpha: f32, shape: &[usize]) -> Result<Tensor> {
    const OP: &str = "fill_scalar";
    scalar(OP, s)?;
    let out = Tensor::empty(s.gpu(), shape)?;
    let params = Params {
        alpha,
        ..Default::default()
    };
    run_flat(s.gpu(), "fill_scalar", params, out.numel(), OP, |st, l| {
        vec![s.range(), elems(&out, st, l)]
    })?;
    Ok(out)
}

/// Runs a row kernel (one workgroup per row) over row chunks; `bind(start, rows)` gives the
/// bindings of a chunk. `row_bytes` lists the bytes per row of every row-bound tensor. Rows
/// longer than one dispatch may walk twice run the sum pass, then the writing pass, over column
/// windows; a kernel that keeps its running sums in a state buffer of `state_words` floats per
/// row gets it as the last binding (a dummy when the rows take one dispatch).
#[allow(clippy::too_many_arguments)]
fn run_rows<'a>(
    gpu: &Gpu,
    entry: &str,
    constants: &[(&str, f64)],
    mut params: Params,
    rows: usize,
    row_bytes: &[u64],
    state_words: usize,
    op: &'static str,
    bind: impl Fn(usize, usize) -> Vec<BufRange<'a>>,
) -> Result<()> {
    if rows == 0 {
        return Ok(());
    }
    let cols = params.cols as usize;
    let windows = col_windows(cols, 2);
    let steps: Vec<(usize, usize, u32)> = if windows.len() == 1 {
        vec![(0, cols, SUM_PASS | WRITE_PASS | FIRST_WINDOW | LAST_WINDOW)]
    } else {
        let last = windows.len() - 1;
        let sums = windows.iter().enumerate().map(|(i, &(c0, c1))| {
            let first = if i == 0 { FIRST_WINDOW } else { 0 };
            (
                c0,
                c1,
                SUM_PASS | first | if i == last { LAST_WINDOW } else { 0 },
            )
        });
        let writes = windows.iter().map(|&(c0, c1)| (c0, c1, WRITE_PASS));
        sums.chain(writes).collect()
    };
    for (start, n) in gpu.row_chunks(rows, row_bytes)? {
        params.n = u32_of(n, "rows", op)?;
        let state = if state_words > 0 {
            let len = if steps.len() > 1 { state_words * n } else { 1 };
            Some(Tensor::empty(gpu, &[len])?)
        } else {
            None
        };
        let mut bufs = bind(start, n);
        if let Some(t) = &state {
            bufs.push(t.range());
        }
        for &(c0, c1, flags) in &steps {
            params.c0 = u32_of(c0, "the window start", op)?;
            params.c1 = u32_of(c1, "the window end", op)?;
            params.flags = flags;
            gpu.dispatch(
                &SHADER,
                entry,
                constants,
                bytemuck::bytes_of(&params),
                &bufs,
                params.n,
            )?;
        }
    }
    Ok(())
}

fn check_rows(op: &'static str, x: &Tensor, what: &str, t: &Tensor) -> Result<()> {
    check_f32(t, op, what)?;
    if t.rows() != x.rows() || t.cols() != x.cols() {
        return Err(Error::shape(
            op,
            format!(
                "{what} {:?} must match {:?} as [rows, cols]",
                t.shape(),
                x.shape()
            ),
        ));
    }
    if x.cols() == 0 && x.rows() > 0 {
        return Err(Error::shape(
            op,
            format!("{:?} has an empty last dimension", x.shape()),
        ));
    }
    Ok(())
}

fn check_per_row(op: &'static str, x: &Tensor, what: &str, t: &Tensor) -> Result<()> {
    check_f32(t, op, what)?;
    if t.numel() != x.rows() {
        return Err(Error::shape(
            op,
            format!(
                "{what} {:?} must hold one value per row of {:?}",
                t.shape(),
                x.shape()
            ),
        ));
    }
    Ok(())
}

/// Backward of a row softmax (`log = false`: `dx = y·(dy − Σ dy·y)`) or log-softmax
/// (`log = true`: `dx = dy − exp(y)·Σ dy`), where `y` is the forward output.
pub fn softmax_rows_backward(y: &Tensor, dy: &Tensor, log: bool) -> Result<Tensor> {
    softmax_backward(y, dy, log, 1.0, "softmax_rows_backward")
}

/// Backward of `y = softmax(scale · x)` per row: `dx = scale · y·(dy − Σ dy·y)`, where `y` is
/// the forward output. Entries with `y = 0` (masked keys of
/// [`crate::kernels::attention_train::masked_softmax`]) get a zero gradient.
pub fn scaled_softmax_rows_backward(y: &Tensor, dy: &Tensor, scale: f32) -> Result<Tensor> {
    softmax_backward(y, dy, false, scale, "scaled_softmax_rows_backward")
}

fn softmax_backward(
    y: &Tensor,
    dy: &Tensor,
    log: bool,
    scale: f32,
    op: &'static str,
) -> Result<Tensor> {
    check_rows(op, y, "y", y)?;
    check_rows(op, y, "dy", dy)?;
    let dx = Tensor::empty(y.gpu(), y.shape())?;
    let cols = y.cols();
    let params = Params {
        cols: u32_of(cols, "cols", op)?,
        alpha: scale,
        ..Default::default()
    };
    let rb = cols as u64 * 4;
    run_rows(
        y.gpu(),
        "softmax_backward",
        &[("LOG", if log { 1.0 } else { 0.0 })],
        params,
        y.rows(),
        &[rb],
        1,
        op,
        |s, n| vec![y.row_range(s, n), dy.row_range(s, n), dx.row_range(s, n)],
    )?;
    Ok(dx)
}

/// Layernorm backward over the last dimension. From the forward input `x`, the optional
/// `gamma`, and each row's `mean` and `rstd` (as [`crate::kernels::norm::layernorm_with_stats`]
/// returns them), and the upstream `dy`: returns `(dx, dy · xhat)` where
/// `xhat = (x − mean)·rstd`; the column sums of the second are d gamma.
pub fn layernorm_backward(
    x: &Tensor,
    gamma: Option<&Tensor>,
    mean: &Tensor,
    rstd: &Tensor,
    dy: &Tensor,
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "layernorm_backward";
    check_rows(OP, x, "x", x)?;
    check_rows(OP, x, "dy", dy)?;
    check_per_row(OP, x, "mean", mean)?;
    check_per_row(OP, x, "rstd", rstd)?;
    let cols = x.cols();
    if let Some(g) = gamma {
        check_f32(g, OP, "gamma")?;
        if g.numel() != cols {
            return Err(Error::shape(
                OP,
                format!("gamma {:?} must have {cols} elements", g.shape()),
            ));
        }
    }
    let gpu = x.gpu();
    let dx = Tensor::empty(gpu, x.shape())?;
    let dyx = Tensor::empty(gpu, x.shape())?;
    let params = Params {
        cols: u32_of(cols, "cols", OP)?,
        ..Default::default()
    };
    let rb = cols as u64 * 4;
    run_rows(
        gpu,
        "layernorm_backward",
        &[("HAS_GAMMA", if gamma.is_some() { 1.0 } else { 0.0 })],
        params,
        x.rows(),
        &[rb, 4],
        2,
        OP,
        |s, n| {
            let xr = x.row_range(s, n);
            vec![
                xr,
                gamma.map(|g| elems(g, 0, cols)).unwrap_or(xr),
                elems(mean, s, n),
                elems(rstd, s, n),
                dy.row_range(s, n),
                dx.row_range(s, n),
                dyx.row_range(s, n),
            ]
        },
    )?;
    Ok((dx, dyx))
}

/// Row L2-normalisation as PyTorch's `F.normalize(x, dim=-1, eps)`: `y = x / max(‖x‖, eps)`.
/// Returns `y` and each row's (unclamped) norm, of shape [`row_shape`].
pub fn l2_normalize_rows(x: &Tensor, eps: f32) -> Result<(Tensor, Tensor)> {
    const OP: &str = "l2_normalize_rows";
    check_rows(OP, x, "x", x)?;
    if !(eps.is_finite() && eps > 0.0) {
        return Err(Error::Invalid(format!(
            "{OP}: eps must be finite and positive, not {eps}"
        )));
    }
    let gpu = x.gpu();
    let y = Tensor::empty(gpu, x.shape())?;
    let nrm = Tensor::empty(gpu, &row_shape(x))?;
    let cols = x.cols();
    let params = Params {
        cols: u32_of(cols, "cols", OP)?,
        alpha: eps,
        ..Default::default()
    };
    run_rows(
        gpu,
        "l2_normalize",
        &[],
        params,
        x.rows(),
        &[cols as u64 * 4, 4],
        0,
        OP,
        |s, n| vec![x.row_range(s, n), y.row_range(s, n), elems(&nrm, s, n)],
    )?;
    Ok((y, nrm))
}

/// Backward of [`l2_normalize_rows`] from its output `y`, the row norms and `dy`.
pub fn l2_normalize_rows_backward(
    y: &Tensor,
    nrm: &Tensor,
    dy: &Tensor,
    eps: f32,
) -> Result<Tensor> {
    const OP: &str = "l2_normalize_rows_backward";
    check_rows(OP, y, "y", y)?;
    check_rows(OP, y, "dy", dy)?;
    check_per_row(OP, y, "the norms", nrm)?;
    let gpu = y.gpu();
    let dx = Tensor::empty(gpu, y.shape())?;
    let cols = y.cols();
    let params = Params {
        cols: u32_of(cols, "cols", OP)?,
        alpha: eps,
        ..Default::default()
    };
    run_rows(
        gpu,
        "l2_normalize_backward",
        &[],
        params,
        y.rows(),
        &[cols as u64 * 4, 4],
        1,
        OP,
        |s, n| {
            vec![
                y.row_range(s, n),
                elems(nrm, s, n),
                dy.row_range(s, n),
                dx.row_range(s, n),
            ]
        },
    )?;
    Ok(dx)
}

/// Elementwise stable binary cross-entropy with logits:
/// `max(x, 0) − x·t + log(1 + exp(−|x|))`.
pub fn bce_with_logits_elems(x: &Tensor, t: &Tensor) -> Result<Tensor> {
    const OP: &str = "bce_with_logits";
    check_f32(x, OP, "the logits")?;
    check_f32(t, OP, "the targets")?;
    same_count(OP, x, "the targets", t)?;
    let out = Tensor::empty(x.gpu(), x.shape())?;
    run_flat(
        x.gpu(),
        "bce_logits",
        Params::default(),
        x.numel(),
        OP,
        |s, l| vec![elems(x, s, l), elems(t, s, l), elems(&out, s, l)],
    )?;
    Ok(out)
}

/// `alpha · g[0] · (sigmoid(x) − t)`: the gradient of [`bce_with_logits_elems`] summed with
/// weight `alpha · g[0]` (`g` a one-element GPU tensor).
pub fn bce_with_logits_backward(x: &Tensor, t: &Tensor, g: &Tensor, alpha: f32) -> Result<Tensor> {
    const OP: &str = "bce_with_logits_backward";
    check_f32(x, OP, "the logits")?;
    check_f32(t, OP, "the targets")?;
    same_count(OP, x, "the targets", t)?;
    scalar(OP, g)?;
    let dx = Tensor::empty(x.gpu(), x.shape())?;
    let params = Params {
        alpha,
        ..Default::default()
    };
    run_flat(
        x.gpu(),
        "bce_logits_backward",
        params,
        x.numel(),
        OP,
        |s, l| vec![elems(x, s, l), elems(t, s, l), g.range(), elems(&dx, s, l)],
    )?;
    Ok(dx)
}

fn check_targets(op: &'static str, logp: &Tensor, targets: &Tensor) -> Result<()> {
    check_f32(logp, op, "the log-probabilities")?;
    if targets.dtype() != DType::U32 {
        return Err(Error::Invalid(format!(
            "{op}: the targets must be a U32 tensor, not {:?}",
            targets.dtype()
        )));
    }
    if targets.numel() != logp.rows() {
        return Err(Error::shape(
            op,
            format!(
                "targets {:?} must hold one class per row of {:?}",
                targets.shape(),
                logp.shape()
            ),
        ));
    }
    Ok(())
}

/// `out[r] = −logp[r, targets[r]]` (0 where the target is `>= cols`), of shape
/// [`row_shape`] of `logp`; `targets` is U32 with one class per row.
pub fn nll_rows(logp: &Tensor, targets: &Tensor) -> Result<Tensor> {
    const OP: &str = "nll_rows";
    check_targets(OP, logp, targets)?;
    let gpu = logp.gpu();
    let out = Tensor::empty(gpu, &row_shape(logp))?;
    let cols = logp.cols();
    let rows = logp.rows();
    if rows == 0 {
        return Ok(out);
    }
    for (s, n) in gpu.row_chunks(rows, &[cols as u64 * 4, 4])? {
        let params = Params {
            n: u32_of(n, "rows", OP)?,
            cols: u32_of(cols, "cols", OP)?,
            ..Default::default()
        };
        gpu.dispatch(
            &SHADER,
            "nll_rows",
            &[],
            bytemuck::bytes_of(&params),
            &[
                logp.row_range(s, n),
                elems(targets, s, n),
                elems(&out, s, n),
            ],
            groups(n, WG, OP)?,
        )?;
    }
    Ok(out)
}

/// `alpha · g[0] · (exp(logp) − onehot(targets))`, the gradient of softmax cross-entropy with
/// respect to the logits given the log-softmax `logp`; rows with an out-of-range target get 0.
pub fn softmax_xent_backward(
    logp: &Tensor,
    targets: &Tensor,
    g: &Tensor,
    alpha: f32,
) -> Result<Tensor> {
    const OP: &str = "softmax_xent_backward";
    check_targets(OP, logp, targets)?;
    scalar(OP, g)?;
    let gpu = logp.gpu();
    let dx = Tensor::empty(gpu, logp.shape())?;
    let (rows, cols) = (logp.rows(), logp.cols());
    if rows == 0 || cols == 0 {
        return Ok(dx);
    }
    for (s, n) in gpu.row_chunks(rows, &[cols as u64 * 4, 4])? {
        let params = Params {
            n: u32_of(n, "rows", OP)?,
            cols: u32_of(cols, "cols", OP)?,
            alpha,
            ..Default::default()
        };
        gpu.dispatch(
            &SHADER,
            "xent_backward",
            &[],
            bytemuck::bytes_of(&params),
            &[
                logp.row_range(s, n),
                elems(targets, s, n),
                g.range(),
                dx.row_range(s, n),
            ],
            groups(n * cols, WG, OP)?,
        )?;
    }
    Ok(dx)
}

/// The two 32-bit key words of dropout stream `stream` under `seed` (SplitMix64 mixing).
pub fn dropout_key(seed: u64, stream: u64) -> (u32, u32) {
    let mut r = crate::rng::Rng::new(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
    let v = r.next_u64();
    (v as u32, (v >> 32) as u32)
}

fn lowbias32(v: u32) -> u32 {
    let mut x = v;
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// CPU reference of the [`dropout`] mask: `n` values, 0 for a dropped element and
/// `1 / (1 − p)` for a kept one.
pub fn dropout_mask_cpu(n: usize, p: f32, key: (u32, u32)) -> Vec<f32> {
    let scale = 1.0 / (1.0 - p);
    (0..n)
        .map(|i| {
            let h = lowbias32(lowbias32((i as u32) ^ key.0).wrapping_add(key.1));
            let u = (h >> 8) as f32 * (1.0 / 16_777_216.0);
            if u < p {
                0.0
            } else {
                scale
            }
        })
        .collect()
}

/// Inverted dropout: returns `(y, mask)` where `mask` is 0 for dropped elements and
/// `1 / (1 − p)` for kept ones and `y = x · mask`. Element `i` is dropped when its hash under
/// `key` ([`dropout_key`]) falls below `p`, so the mask is reproducible and equals
/// [`dropout_mask_cpu`]. `p` must be in `[0, 1)`.
pub fn dropout(x: &Tensor, p: f32, key: (u32, u32)) -> Result<(Tensor, Tensor)> {
    const OP: &str = "dropout";
    check_f32(x, OP, "the input")?;
    if !(0.0..1.0).contains(&p) {
        return Err(Error::Invalid(format!(
            "{OP}: the drop probability must be in [0, 1), not {p}"
        )));
    }
    let gpu = x.gpu();
    let y = Tensor::empty(gpu, x.shape())?;
    let mask = Tensor::empty(gpu, x.shape())?;
    let params = Params {
        alpha: p,
        beta: 1.0 / (1.0 - p),
        k0: key.0,
        k1: key.1,
        ..Default::default()
    };
    run_flat(gpu, "dropout", params, x.numel(), OP, |s, l| {
        vec![elems(x, s, l), elems(&y, s, l), elems(&mask, s, l)]
    })?;
    Ok((y, mask))
}
