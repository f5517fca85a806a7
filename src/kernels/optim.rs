//! Launcher for `shaders/optim.wgsl`: fused in-place optimizer updates (one kernel per
//! parameter tensor) and the blocked sum of squares behind gradient clipping by global norm.
//!
//! The typed optimizers live in [`crate::optim`]; these are the raw kernels, with CPU
//! references ([`sgd_cpu`], [`adam_cpu`]) for tests.

use crate::error::{Error, Result};
use crate::gpu::{BufRange, ShaderSource};
use crate::kernels::launch::{check_f32, elems, flat_chunks, groups, u32_of, FLAT_BLOCK, WG};
use crate::kernels::reduce::sum_all;
use crate::tensor::Tensor;

/// The optim shader.
pub const SHADER: ShaderSource = ShaderSource {
    name: "optim",
    code: with_prelude!("optim.wgsl"),
};

uniform! {
    #[derive(Default)]
    struct Params {
        n: u32,
        base: u32,
        first: u32,
        _pad: u32,
        lr: f32,
        wd: f32,
        max_norm: f32,
        momentum: f32,
        dampening: f32,
        beta1: f32,
        beta2: f32,
        eps: f32,
        bc1: f32,
        bc2_sqrt: f32,
        _pad2: [f32; 2],
    }
}

/// Σ g² over every tensor of `grads`, as a one-element GPU tensor (nothing is read back).
///
/// Each tensor is summed in blocks of 4096 elements into one shared buffer of partials, then
/// one deterministic tree sum ([`sum_all`]) adds the partials, so the result is bit-identical
/// run after run. Returns a zero if `grads` is empty.
pub fn sum_of_squares(grads: &[&Tensor]) -> Result<Tensor> {
    const OP: &str = "sum_of_squares";
    let first = grads
        .first()
        .ok_or_else(|| Error::Invalid(format!("{OP}: no tensors")))?;
    let gpu = first.gpu();
    let mut total_blocks = 0usize;
    for g in grads {
        check_f32(g, OP, "a gradient")?;
        total_blocks += g.numel().div_ceil(FLAT_BLOCK);
    }
    let partials = Tensor::zeros(gpu, &[total_blocks.max(1)])?;
    let mut base = 0usize;
    for g in grads {
        for (start, len) in flat_chunks(gpu, g.numel(), FLAT_BLOCK)? {
            let params = Params {
                n: u32_of(len, "the chunk length", OP)?,
                base: u32_of(base + start / FLAT_BLOCK, "the block index", OP)?,
                ..Default::default()
            };
            gpu.dispatch(
                &SHADER,
                "sumsq_blocks",
                &[],
                bytemuck::bytes_of(&params),
                &[elems(g, start, len), partials.range()],
                groups(len, FLAT_BLOCK, OP)?,
            )?;
        }
        base += g.numel().div_ceil(FLAT_BLOCK);
    }
    sum_all(&partials)
}

/// Hyper-parameters of one [`sgd_step`] (PyTorch's `torch.optim.SGD` semantics).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdHyper {
    /// Learning rate.
    pub lr: f32,
    /// Momentum factor (0 for none).
    pub momentum: f32,
    /// Dampening of the momentum.
    pub dampening: f32,
    /// L2 weight decay added to the gradient.
    pub weight_decay: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
}

/// Hyper-parameters of one [`adam_step`] (PyTorch's `Adam` / `AdamW` semantics).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamHyper {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Added to the denominator.
    pub eps: f32,
    /// Weight decay: L2 (added to the gradient) for Adam, decoupled for AdamW.
    pub weight_decay: f32,
    /// AdamW's decoupled weight decay.
    pub decoupled: bool,
    /// The step number, from 1 (for the bias corrections).
    pub step: u64,
}

/// Clipping by global norm: the GPU tensor holding Σ g² ([`sum_of_squares`]) and the norm
/// threshold.
#[derive(Clone, Copy, Debug)]
pub struct Clip<'a> {
    /// One-element tensor with the sum of squares of every gradient.
    pub sum_sq: &'a Tensor,
    /// The largest allowed global norm.
    pub max_norm: f32,
}

fn check_same(op: &'static str, p: &Tensor, what: &str, t: &Tensor) -> Result<()> {
    check_f32(t, op, what)?;
    if t.numel() != p.numel() {
        return Err(Error::shape(
            op,
            format!(
                "{what} {:?} must have as many elements as the parameter {:?}",
                t.shape(),
                p.shape()
            ),
        ));
    }
    if t.same_storage(p) {
        return Err(Error::aliasing(
            op,
            format!("{what} must not share storage with the parameter"),
        ));
    }
    Ok(())
}

fn clip_binding<'a>(
    op: &'static str,
    clip: &Option<Clip<'a>>,
    dummy: &'a Tensor,
    written: &[&Tensor],
) -> Result<(f64, f32, BufRange<'a>)> {
    Ok(match clip {
        Some(c) => {
            check_f32(c.sum_sq, op, "the sum of squares")?;
            if written.iter().any(|t| t.same_storage(c.sum_sq)) {
                return Err(Error::aliasing(
                    op,
                    "the sum of squares must not share storage with the parameter or its state",
                ));
            }
            if c.sum_sq.numel() != 1 {
                return Err(Error::shape(op, "the sum of squares must have one element"));
            }
            if c.max_norm.is_nan() || c.max_norm <= 0.0 {
                return Err(Error::Invalid(format!(
                    "{op}: max_norm must be positive, not {}",
                    c.max_norm
                )));
            }
            (1.0, c.max_norm, c.sum_sq.range())
        }
        None => (0.0, 0.0, dummy.range()),
    })
}

/// One fused SGD update of `param` in place: clipping (if `clip`), weight decay, momentum
/// (`buf` is the momentum buffer, updated in place; `first` says it is the first step, when
/// PyTorch sets the buffer to the gradient). `buf` may be `None` only without momentum.
pub fn sgd_step(
    param: &Tensor,
    grad: &Tensor,
    buf: Option<&Tensor>,
    first: bool,
    h: &SgdHyper,
    clip: Option<Clip<'_>>,
) -> Result<()> {
    const OP: &str = "sgd_step";
    check_f32(param, OP, "the parameter")?;
    check_same(OP, param, "the gradient", grad)?;
    let momentum = h.momentum != 0.0;
    let gpu = param.gpu();
    let dummy;
    let buf = match (buf, momentum) {
        (Some(b), _) => {
            check_same(OP, param, "the momentum buffer", b)?;
            if b.same_storage(grad) {
                return Err(Error::aliasing(
                    OP,
                    "the momentum buffer must not share storage with the gradient",
                ));
            }
            b
        }
        (None, false) => {
            dummy = Tensor::empty(gpu, &[1])?;
            &dummy
        }
        (None, true) => {
            return Err(Error::Invalid(format!(
                "{OP}: momentum {} needs a momentum buffer",
                h.momentum
            )))
        }
    };
    let gsq_dummy = Tensor::empty(gpu, &[1])?;
    let (clip_on, max_norm, gsq) = clip_binding(OP, &clip, &gsq_dummy, &[param, buf])?;
    let consts = [
        ("CLIP", clip_on),
        ("MOMENTUM", if momentum { 1.0 } else { 0.0 }),
        ("NESTEROV", if h.nesterov && momentum { 1.0 } else { 0.0 }),
    ];
    for (start, len) in flat_chunks(gpu, param.numel(), FLAT_BLOCK)? {
        let params = Params {
            n: u32_of(len, "the chunk length", OP)?,
            first: u32_of(first, "first", "sgd_step")?,
            lr: h.lr,
            wd: h.weight_decay,
            max_norm,
            momentum: h.momentum,
            dampening: h.dampening,
            ..Default::default()
        };
        let b = if momentum {
            elems(buf, start, len)
        } else {
            buf.range()
        };
        gpu.dispatch(
            &SHADER,
            "sgd_step",
            &consts,
            bytemuck::bytes_of(&params),
            &[elems(param, start, len), b, elems(grad, start, len), gsq],
            groups(len, WG, OP)?,
        )?;
    }
    Ok(())
}

/// One fused Adam / AdamW update of `param`, `m` and `v` in place (PyTorch's semantics, with
/// bias correction for step `h.step`), after clipping if `clip` is given.
pub fn adam_step(
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    h: &AdamHyper,
    clip: Option<Clip<'_>>,
) -> Result<()> {
    const OP: &str = "adam_step";
    check_f32(param, OP, "the parameter")?;
    check_same(OP, param, "the gradient", grad)?;
    check_same(OP, param, "the first moment", m)?;
    check_same(OP, param, "the second moment", v)?;
    if m.same_storage(v) || m.same_storage(grad) || v.same_storage(grad) {
        return Err(Error::aliasing(
            OP,
            "the gradient and the two moments need their own storage",
        ));
    }
    if h.step == 0 {
        return Err(Error::Invalid(format!("{OP}: steps count from 1")));
    }
    let gpu = param.gpu();
    let gsq_dummy = Tensor::empty(gpu, &[1])?;
    let (clip_on, max_norm, gsq) = clip_binding(OP, &clip, &gsq_dummy, &[param, m, v])?;
    let t = h.step.min(i32::MAX as u64) as i32;
    let bc1 = 1.0 - (h.beta1 as f64).powi(t);
    let bc2 = 1.0 - (h.beta2 as f64).powi(t);
    let consts = [
        ("CLIP", clip_on),
        ("DECOUPLED", if h.decoupled { 1.0 } else { 0.0 }),
    ];
    for (start, len) in flat_chunks(gpu, param.numel(), FLAT_BLOCK)? {
        let params = Params {
            n: u32_of(len, "the chunk length", OP)?,
            lr: h.lr,
            wd: h.weight_decay,
            max_norm,
            beta1: h.beta1,
            beta2: h.beta2,
            eps: h.eps,
            bc1: bc1 as f32,
            bc2_sqrt: bc2.sqrt() as f32,
            ..Default::default()
        };
        gpu.dispatch(
            &SHADER,
            "adam_step",
            &consts,
            bytemuck::bytes_of(&params),
            &[
                elems(param, start, len),
                elems(m, start, len),
                elems(v, start, len),
                elems(grad, start, len),
                gsq,
            ],
            groups(len, WG, OP)?,
        )?;
    }
    Ok(())
}

/// PyTorch's clipping factor `min(1, max_norm / (sqrt(sum_sq) + 1e-6))`, on the CPU in f64.
pub fn clip_scale_cpu(sum_sq: f64, max_norm: f32) -> f64 {
    (max_norm as f64 / (sum_sq.sqrt() + 1e-6)).min(1.0)
}

/// CPU reference of [`sgd_step`] (f64 arithmetic): updates `param` and `buf` in place. `scale`
/// is the clipping factor (1 without clipping).
pub fn sgd_cpu(
    param: &mut [f32],
    grad: &[f32],
    buf: &mut [f32],
    first: bool,
    h: &SgdHyper,
    scale: f64,
) {
    for i in 0..param.len() {
        let w = param[i] as f64;
        let mut g = grad[i] as f64 * scale + h.weight_decay as f64 * w;
        if h.momentum != 0.0 {
            let b = if first {
                g
            } else {
                h.momentum as f64 * buf[i] as f64 + (1.0 - h.dampening as f64) * g
            };
            buf[i] = b as f32;
            g = if h.nesterov {
                g + h.momentum as f64 * b
            } else {
                b
            };
        }
        param[i] = (w - h.lr as f64 * g) as f32;
    }
}

/// CPU reference of [`adam_step`] (f64 arithmetic): updates `param`, `m` and `v` in place.
/// `scale` is the clipping factor (1 without clipping).
pub fn adam_cpu(
    param: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    h: &AdamHyper,
    scale: f64,
) {
    let t = h.step as i32;
    let (b1, b2) = (h.beta1 as f64, h.beta2 as f64);
    let bc1 = 1.0 - b1.powi(t);
    let bc2 = 1.0 - b2.powi(t);
    let lr = h.lr as f64;
    let wd = h.weight_decay as f64;
    for i in 0..param.len() {
        let mut w = param[i] as f64;
        let mut g = grad[i] as f64 * scale;
        if h.decoupled {
            w *= 1.0 - lr * wd;
        } else {
            g += wd * w;
        }
        let mi = b1 * m[i] as f64 + (1.0 - b1) * g;
        let vi = b2 * v[i] as f64 + (1.0 - b2) * g * g;
        m[i] = mi as f32;
        v[i] = vi as f32;
        let denom = vi.sqrt() / bc2.sqrt() + h.eps as f64;
        param[i] = (w - lr / bc1 * (mi / denom)) as f32;
    }
}
