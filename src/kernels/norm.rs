//! Launcher for `shaders/norm.wgsl`: row-wise softmax, log-softmax and layernorm over the last
//! dimension, with f64 CPU references.
//!
//! Each op views its input as `[rows, cols]`, runs one 256-invocation workgroup per row and
//! splits the rows into chunks so inputs above the storage binding limit work. A row is walked
//! in one dispatch up to 2^22 values (softmax) or 2.8M values (layernorm); longer rows run one
//! pass per dispatch over windows of columns, carrying the row's statistics between them, so
//! that no invocation loops more than [`crate::kernels::LOOP_BUDGET`] times per dispatch.

use crate::error::{Error, Result};
use crate::gpu::{BufRange, ShaderSource};
use crate::kernels::col_windows;
use crate::kernels::launch::{check_f32, u32_of};
use crate::kernels::reduce::row_shape;
use crate::tensor::Tensor;

/// The norm shader.
pub const SHADER: ShaderSource = ShaderSource {
    name: "norm",
    code: with_prelude!("norm.wgsl"),
};

/// PyTorch's default layernorm epsilon.
pub const LAYERNORM_EPS: f32 = 1e-5;

uniform! {
    /// Uniform of every norm entry point; mirrors `Params` in norm.wgsl.
    struct Params {
        rows: u32,
        cols: u32,
        eps: f32,
        c0: u32,
        c1: u32,
        flags: u32,
        _pad: [u32; 2],
    }
}

// `Params::flags` of softmax: the statistics pass, the writing pass, the first window.
const SM_STATS: u32 = 1;
const SM_WRITE: u32 = 2;
const SM_FIRST: u32 = 4;
// `Params::flags` of layernorm: the sum pass, the squared-deviation pass, the writing pass,
// the first and the last window of a pass.
const LN_SUM: u32 = 1;
const LN_VAR: u32 = 2;
const LN_WRITE: u32 = 4;
const LN_FIRST: u32 = 8;
const LN_LAST: u32 = 16;

/// The dispatches of a row walk: `(c0, c1, flags)` for `passes` (each a flag set walked over
/// every window in order, with `first` and `last` marking the ends of a pass) when the row needs
/// several windows, else one dispatch over `[0, cols)` with `all`.
fn walk(
    cols: usize,
    loops: usize,
    passes: &[u32],
    first: u32,
    last: u32,
    all: u32,
) -> Vec<(usize, usize, u32)> {
    let windows = col_windows(cols, loops);
    if windows.len() == 1 {
        return vec![(0, cols, all)];
    }
    let mut out = Vec::new();
    for &pass in passes {
        for (i, &(c0, c1)) in windows.iter().enumerate() {
            let f = if i == 0 { first } else { 0 } | if i + 1 == windows.len() { last } else { 0 };
            out.push((c0, c1, pass | f));
        }
    }
    out
}

/// Checks an input and a same-shaped output of a row-wise op.
fn check_same(x: &Tensor, y: &Tensor, op: &'static str) -> Result<()> {
    check_f32(x, op, "the input")?;
    check_f32(y, op, "the output")?;
    if x.cols() == 0 && x.rows() > 0 {
        return Err(Error::shape(
            op,
            format!("input {:?} has an empty last dimension", x.shape()),
        ));
    }
    if y.rows() != x.rows() || y.cols() != x.cols() {
        return Err(Error::shape(
            op,
            format!(
                "output {:?} must match input {:?} as [rows, cols]",
                y.shape(),
                x.shape()
            ),
        ));
    }
    if x.same_storage(y) {
        return Err(Error::aliasing(op, "the output must not alias the input"));
    }
    Ok(())
}

fn launch_softmax(x: &Tensor, y: &Tensor, log: bool, op: &'static str) -> Result<()> {
    check_same(x, y, op)?;
    let gpu = x.gpu();
    let (rows, cols) = (x.rows(), x.cols());
    if rows == 0 {
        return Ok(());
    }
    let rb = cols as u64 * 4;
    let steps = walk(
        cols,
        2,
        &[SM_STATS, SM_WRITE],
        SM_FIRST,
        0,
        SM_STATS | SM_WRITE | SM_FIRST,
    );
    for (start, n) in gpu.row_chunks(rows, &[rb])? {
        // The running (max, sum) of each row between windows; a dummy for one dispatch.
        let state = Tensor::empty(gpu, &[if steps.len() > 1 { 2 * n } else { 1 }])?;
        for &(c0, c1, flags) in &steps {
            let params = Params {
                rows: u32_of(n, "rows", "norm")?,
                cols: u32_of(cols, "cols", "norm")?,
                eps: 0.0,
                c0: u32_of(c0, "c0", "launch_softmax")?,
                c1: u32_of(c1, "c1", "launch_softmax")?,
                flags,
                _pad: [0; 2],
            };
            gpu.dispatch(
                &SHADER,
                "softmax_rows",
                &[("LOG", if log { 1.0 } else { 0.0 })],
                bytemuck::bytes_of(&params),
                &[x.row_range(start, n), y.row_range(start, n), state.range()],
                params.rows,
            )?;
        }
    }
    Ok(())
}

/// Softmax of each row (the last dimension): exp(x − max) / Σ exp(x − max). Same shape as `x`.
pub fn softmax_rows(x: &Tensor) -> Result<Tensor> {
    let y = Tensor::empty(x.gpu(), x.shape())?;
    softmax_rows_into(x, &y)?;
    Ok(y)
}

/// Writes the row-wise softmax of `x` into `y` (same `[rows, cols]` view, other storage).
pub fn softmax_rows_into(x: &Tensor, y: &Tensor) -> Result<()> {
    launch_softmax(x, y, false, "softmax_rows")
}

/// Log-softmax of each row: x − max − log Σ exp(x − max). Same shape as `x`.
pub fn log_softmax_rows(x: &Tensor) -> Result<Tensor> {
    let y = Tensor::empty(x.gpu(), x.shape())?;
    log_softmax_rows_into(x, &y)?;
    Ok(y)
}

/// Writes the row-wise log-softmax of `x` into `y` (same `[rows, cols]` view, other storage).
pub fn log_softmax_rows_into(x: &Tensor, y: &Tensor) -> Result<()> {
    launch_softmax(x, y, true, "log_softmax_rows")
}

/// The outputs of [`layernorm_with_stats`].
#[derive(Clone, Debug)]
pub struct LayerNormOut {
    /// The normalised, scaled and shifted output; the shape of the input.
    pub y: Tensor,
    /// Each row's mean, of shape [`row_shape`] of the input.
    pub mean: Tensor,
    /// Each row's 1 / sqrt(var + eps) (biased variance), of shape [`row_shape`] of the input.
    pub rstd: Tensor,
}

/// Layernorm over the last dimension, as PyTorch's `layer_norm`:
/// y = (x − mean) / sqrt(var + eps) · gamma + beta with the biased variance. `gamma` and `beta`
/// are optional vectors of `cols` elements; [`LAYERNORM_EPS`] is PyTorch's default `eps`.
pub fn layernorm(
    x: &Tensor,
    gamma: Option<&Tensor>,
    beta: Option<&Tensor>,
    eps: f32,
) -> Result<Tensor> {
    Ok(layernorm_with_stats(x, gamma, beta, eps)?.y)
}

/// [`layernorm`] that also returns each row's mean and rstd (what the backward needs).
pub fn layernorm_with_stats(
    x: &Tensor,
    gamma: Option<&Tensor>,
    beta: Option<&Tensor>,
    eps: f32,
) -> Result<LayerNormOut> {
    let gpu = x.gpu();
    let out = LayerNormOut {
        y: Tensor::empty(gpu, x.shape())?,
        mean: Tensor::empty(gpu, &row_shape(x))?,
        rstd: Tensor::empty(gpu, &row_shape(x))?,
    };
    layernorm_into(x, gamma, beta, eps, &out.y, &out.mean, &out.rstd)?;
    Ok(out)
}

/// Writes layernorm of `x` into `y` (same `[rows, cols]` view) and each row's mean and rstd
/// into `mean` and `rstd` (one element per row). See [`layernorm`].
pub fn layernorm_into<'a>(
    x: &'a Tensor,
    gamma: Option<&'a Tensor>,
    beta: Option<&'a Tensor>,
    eps: f32,
    y: &'a Tensor,
    mean: &'a Tensor,
    rstd: &'a Tensor,
) -> Result<()> {
    const OP: &str = "layernorm";
    check_same(x, y, OP)?;
    let (rows, cols) = (x.rows(), x.cols());
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(Error::Invalid(format!(
            "{OP}: eps must be finite and non-negative, not {eps}"
        )));
    }
    for (t, what) in [(gamma, "gamma"), (beta, "beta")] {
        if let Some(t) = t {
            check_f32(t, OP, what)?;
            if t.numel() != cols {
                return Err(Error::shape(
                    OP,
                    format!(
                        "{what} {:?} must have {cols} elements, the last dimension of {:?}",
                        t.shape(),
                        x.shape()
                    ),
                ));
            }
        }
    }
    for (t, what) in [(mean, "mean"), (rstd, "rstd")] {
        check_f32(t, OP, what)?;
        if t.numel() != rows {
            return Err(Error::shape(
                OP,
                format!(
                    "{what} {:?} must hold one value per row of {:?} ({rows} values)",
                    t.shape(),
                    x.shape()
                ),
            ));
        }
    }
    let outs = [y, mean, rstd];
    let ins = [Some(x), gamma, beta];
    for (i, o) in outs.iter().enumerate() {
        if ins.iter().flatten().any(|t| t.same_storage(o))
            || outs[i + 1..].iter().any(|t| t.same_storage(o))
        {
            return Err(Error::aliasing(
                OP,
                "outputs must not alias each other or an input",
            ));
        }
    }
    if rows == 0 {
        return Ok(());
    }
    let gpu = x.gpu();
    let rb = cols as u64 * 4;
    let steps = walk(
        cols,
        3,
        &[LN_SUM, LN_VAR, LN_WRITE],
        LN_FIRST,
        LN_LAST,
        LN_SUM | LN_VAR | LN_WRITE | LN_FIRST | LN_LAST,
    );
    for (start, n) in gpu.row_chunks(rows, &[rb, 4])? {
        for &(c0, c1, flags) in &steps {
            let params = Params {
                rows: u32_of(n, "rows", "norm")?,
                cols: u32_of(cols, "cols", "norm")?,
                eps,
                c0: u32_of(c0, "c0", "layernorm_into")?,
                c1: u32_of(c1, "c1", "layernorm_into")?,
                flags,
                _pad: [0; 2],
            };
            let xr = x.row_range(start, n);
            // An absent gamma or beta is switched off by a constant; its slot gets a read-only dummy.
            let vec_or_dummy = |t: Option<&'a Tensor>| match t {
                Some(t) => BufRange {
                    buf: t.buffer(),
                    offset: 0,
                    size: cols as u64 * 4,
                },
                None => xr,
            };
            let stat = |t: &'a Tensor| BufRange {
                buf: t.buffer(),
                offset: start as u64 * 4,
                size: n as u64 * 4,
            };
            gpu.dispatch(
                &SHADER,
                "layernorm",
                &[
                    ("HAS_GAMMA", if gamma.is_some() { 1.0 } else { 0.0 }),
                    ("HAS_BETA", if beta.is_some() { 1.0 } else { 0.0 }),
                ],
                bytemuck::bytes_of(&params),
                &[
                    xr,
                    vec_or_dummy(gamma),
                    vec_or_dummy(beta),
                    y.row_range(start, n),
                    stat(mean),
                    stat(rstd),
                ],
                params.rows,
            )?;
        }
    }
    Ok(())
}

/// CPU reference of [`softmax_rows`] on row-major `x` with `cols` columns, in f64.
pub fn softmax_rows_cpu(x: &[f32], cols: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    if cols == 0 {
        return out;
    }
    for r in x.chunks(cols) {
        let m = r.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let s: f64 = r.iter().map(|&v| (v as f64 - m).exp()).sum();
        out.extend(r.iter().map(|&v| ((v as f64 - m).exp() / s) as f32));
    }
    out
}

/// CPU reference of [`log_softmax_rows`], in f64.
pub fn log_softmax_rows_cpu(x: &[f32], cols: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    if cols == 0 {
        return out;
    }
    for r in x.chunks(cols) {
        let m = r.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let s: f64 = r.iter().map(|&v| (v as f64 - m).exp()).sum();
        let shift = m + s.ln();
        out.extend(r.iter().map(|&v| (v as f64 - shift) as f32));
    }
    out
}

/// CPU reference of [`layernorm_with_stats`], in f64: returns `(y, mean, rstd)`.
pub fn layernorm_cpu(
    x: &[f32],
    cols: usize,
    gamma: Option<&[f32]>,
    beta: Option<&[f32]>,
    eps: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (mut y, mut means, mut rstds) = (Vec::with_capacity(x.len()), Vec::new(), Vec::new());
    if cols == 0 {
        return (y, means, rstds);
    }
    for r in x.chunks(cols) {
        let n = cols as f64;
        let mean = r.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = r.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let rstd = 1.0 / (var + eps as f64).sqrt();
        y.extend(r.iter().enumerate().map(|(c, &v)| {
            let g = gamma.map_or(1.0, |g| g[c] as f64);
            let b = beta.map_or(0.0, |b| b[c] as f64);
            ((v as f64 - mean) * rstd * g + b) as f32
        }));
        means.push(mean as f32);
        rstds.push(rstd as f32);
    }
    (y, means, rstds)
}
