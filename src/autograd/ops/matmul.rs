//! Matrix products: [`Graph::matmul`] (every transpose form, batched) and the fused
//! [`Graph::linear`] layer op.

use crate::autograd::graph::{Graph, Var};
use crate::error::{Error, Result};
use crate::kernels::autograd::unary_backward;
use crate::kernels::elementwise::Unary;
use crate::kernels::matmul::{matmul as mm, Activation, MatmulOpts};
use crate::kernels::reduce::sum_cols;
use crate::tensor::Tensor;

fn opts(ta: bool, tb: bool) -> MatmulOpts<'static> {
    MatmulOpts::new().trans_a(ta).trans_b(tb)
}

/// Sums a batched gradient over its leading batch dimensions when the operand was shared by
/// every batch (a 2-D operand of a batched product).
fn sum_batch(d: Tensor, shape: &[usize]) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    if d.numel() == n {
        return d.reshape(shape);
    }
    let batch = d.numel() / n.max(1);
    sum_cols(&d.reshape(&[batch, n])?)?.reshape(shape)
}

/// dA for C = op(A)·op(B): dC·op(B)ᵀ, stored transposed when A is.
fn grad_a(a: &Tensor, b: &Tensor, g: &Tensor, ta: bool, tb: bool) -> Result<Tensor> {
    let d = if !ta {
        mm(g, b, &opts(false, !tb))?
    } else {
        mm(b, g, &opts(tb, true))?
    };
    sum_batch(d, a.shape())
}

/// dB for C = op(A)·op(B): op(A)ᵀ·dC, stored transposed when B is.
fn grad_b(a: &Tensor, b: &Tensor, g: &Tensor, ta: bool, tb: bool) -> Result<Tensor> {
    if a.rank() > 2 && b.rank() == 2 && !ta {
        // A batched over a shared B: fold the batch into the rows, one product, no batch sum.
        let (k, n) = (a.cols(), g.cols());
        let rows = a.numel() / k.max(1);
        let af = a.reshape(&[rows, k])?;
        let gf = g.reshape(&[rows, n])?;
        return if !tb {
            mm(&af, &gf, &opts(true, false))
        } else {
            mm(&gf, &af, &opts(true, false))
        };
    }
    let d = if !tb {
        mm(a, g, &opts(!ta, false))?
    } else {
        mm(g, a, &opts(true, ta))?
    };
    sum_batch(d, b.shape())
}

impl Graph {
    /// `C = op(A)·op(B)`, with `op(X)` = `Xᵀ` when its flag is set (the last two dimensions).
    /// Batched as [`crate::kernels::matmul::matmul`]: A `[.., m, k]` and B `[k, n]` (shared)
    /// or `[.., k, n]`; a shared operand's gradient is summed over the batch.
    ///
    /// Gradients: `dA = dC·op(B)ᵀ`, `dB = op(A)ᵀ·dC` (transposed back when stored transposed).
    pub fn matmul(&self, a: &Var, b: &Var, trans_a: bool, trans_b: bool) -> Result<Var> {
        let value = mm(a.value(), b.value(), &opts(trans_a, trans_b))?;
        let (at, bt) = (a.value().clone(), b.value().clone());
        self.record(
            "matmul",
            value,
            &[a, b],
            Box::new(move |g, needs| {
                let da = if needs[0] {
                    Some(grad_a(&at, &bt, g, trans_a, trans_b)?)
                } else {
                    None
                };
                let db = if needs[1] {
                    Some(grad_b(&at, &bt, g, trans_a, trans_b)?)
                } else {
                    None
                };
                Ok(vec![da, db])
            }),
        )
    }

    /// A fully connected layer `act(x·Wᵀ + b)` with W in PyTorch's `[out, in]` layout, x
    /// `[.., in]` and the optional bias `[out]`: one fused matmul kernel (bias and activation
    /// in its epilogue; GELU runs as a separate op since its derivative needs the
    /// pre-activation).
    ///
    /// Gradients, with `dZ = dY ⊙ act'(Z)` from the output: `dx = dZ·W`, `dW = dZᵀ·x` (the
    /// batch folded into the rows), `db = Σ_rows dZ`.
    pub fn linear(&self, x: &Var, w: &Var, bias: Option<&Var>, act: Activation) -> Result<Var> {
        if w.value().rank() != 2 {
            return Err(Error::shape(
                "linear",
                format!("the weight {:?} must be 2-D [out, in]", w.shape()),
            ));
        }
        let out_f = w.shape()[0];
        if let Some(b) = bias {
            if b.value().numel() != out_f {
                return Err(Error::shape(
                    "linear",
                    format!(
                        "the bias {:?} must have {out_f} elements (the weight is {:?})",
                        b.shape(),
                        w.shape()
                    ),
                ));
            }
        }
        if act == Activation::Gelu {
            let z = self.linear(x, w, bias, Activation::None)?;
            return self.gelu(&z);
        }
        let mut o = opts(false, true).act(act);
        if let Some(b) = bias {
            o = o.bias(b.value());
        }
        let value = mm(x.value(), w.value(), &o)?;
        let (xt, wt, yt) = (x.value().clone(), w.value().clone(), value.clone());
        let bias_shape = bias.map(|b| b.shape().to_vec());
        let mut inputs = vec![x, w];
        if let Some(b) = bias {
            inputs.push(b);
        }
        self.record(
            "linear",
            value,
            &inputs,
            Box::new(move |g, needs| {
                let dz = match act {
                    Activation::None => g.clone(),
                    Activation::Relu => unary_backward(&yt, &yt, g, Unary::Relu)?,
                    Activation::Sigmoid => unary_backward(&yt, &yt, g, Unary::Sigmoid)?,
                    Activation::Tanh => unary_backward(&yt, &yt, g, Unary::Tanh)?,
                    Activation::Gelu => unreachable!("GELU is recorded as its own op"),
                };
                let (in_f, out_f) = (wt.shape()[1], wt.shape()[0]);
                let rows = xt.numel() / in_f.max(1);
                let dzf = dz.reshape(&[rows, out_f])?;
                let dx = if needs[0] {
                    Some(mm(&dz, &wt, &opts(false, false))?)
                } else {
                    None
                };
                let dw = if needs[1] {
                    Some(mm(&dzf, &xt.reshape(&[rows, in_f])?, &opts(true, false))?)
                } else {
                    None
                };
                let mut out = vec![dx, dw];
                if let Some(bs) = &bias_shape {
                    out.push(if needs[2] {
                        Some(sum_cols(&dzf)?.reshape(bs)?)
                    } else {
                        None
                    });
                }
                Ok(out)
            }),
        )
    }
}
