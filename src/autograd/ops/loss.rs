//! Losses, each a mean over elements (or rows) returning shape `[1]`: MSE, binary
//! cross-entropy with logits, softmax cross-entropy with integer targets.

use crate::autograd::graph::{Graph, Var};
use crate::error::{Error, Result};
use crate::kernels::autograd::{
    bce_with_logits_backward, bce_with_logits_elems, nll_rows, scale_by, softmax_xent_backward,
};
use crate::kernels::elementwise::{binary, unary, Binary, Unary};
use crate::kernels::norm::log_softmax_rows;
use crate::kernels::reduce::sum_all;
use crate::tensor::Tensor;

fn same_shape(op: &'static str, a: &Var, b: &Var) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::shape(
            op,
            format!(
                "prediction {:?} and target {:?} must have one shape",
                a.shape(),
                b.shape()
            ),
        ));
    }
    Ok(())
}

fn mean_of(t: &Tensor, n: usize) -> Result<(Tensor, f32)> {
    let s = sum_all(t)?;
    let inv = (1.0 / n.max(1) as f64) as f32;
    Ok((
        unary(
            &s,
            Unary::Scale {
                alpha: inv,
                beta: 0.0,
            },
        )?,
        inv,
    ))
}

impl Graph {
    /// Mean squared error `mean((pred − target)²)`, shape `[1]`; both sides get gradients
    /// (`±2(pred − target)/n`), so `mse(x, detach(e))` and `mse(detach(x), e)` give the VQ
    /// commitment and codebook terms.
    pub fn mse(&self, pred: &Var, target: &Var) -> Result<Var> {
        same_shape("mse", pred, target)?;
        let diff = binary(pred.value(), target.value(), Binary::Sub)?;
        let sq = unary(&diff, Unary::Square)?;
        let n = sq.numel();
        let (value, inv) = mean_of(&sq, n)?;
        drop(sq);
        self.record(
            "mse",
            value,
            &[pred, target],
            Box::new(move |g, needs| {
                let two = 2.0 * inv;
                Ok(vec![
                    needs[0].then(|| scale_by(&diff, g, two)).transpose()?,
                    needs[1].then(|| scale_by(&diff, g, -two)).transpose()?,
                ])
            }),
        )
    }

    /// Binary cross-entropy with logits, `mean(max(x,0) − x·t + log(1 + e^−|x|))`, shape `[1]`
    /// (PyTorch's `binary_cross_entropy_with_logits`, stable for large |x|). Gradients
    /// `(σ(x) − t)/n` for the logits and `−x/n` for the targets.
    pub fn bce_with_logits(&self, logits: &Var, targets: &Var) -> Result<Var> {
        same_shape("bce_with_logits", logits, targets)?;
        let l = bce_with_logits_elems(logits.value(), targets.value())?;
        let (value, inv) = mean_of(&l, l.numel())?;
        let (xt, tt) = (logits.value().clone(), targets.value().clone());
        self.record(
            "bce_with_logits",
            value,
            &[logits, targets],
            Box::new(move |g, needs| {
                Ok(vec![
                    needs[0]
                        .then(|| bce_with_logits_backward(&xt, &tt, g, inv))
                        .transpose()?,
                    needs[1].then(|| scale_by(&xt, g, -inv)).transpose()?,
                ])
            }),
        )
    }

    /// Softmax cross-entropy of `logits` `[rows, classes]` with one U32 class per row in
    /// `targets`: `mean_r(logsumexp(x_r) − x_r[t_r])`, shape `[1]`. A target `>= classes`
    /// contributes 0 to the sum and no gradient (the mean still divides by all rows).
    /// Gradient `(softmax(x) − onehot(t))/rows`.
    pub fn softmax_cross_entropy(&self, logits: &Var, targets: &Tensor) -> Result<Var> {
        let logp = log_softmax_rows(logits.value())?;
        let nll = nll_rows(&logp, targets)?;
        let rows = logits.value().rows();
        let (value, inv) = mean_of(&nll, rows)?;
        let tt = targets.clone();
        self.record(
            "softmax_cross_entropy",
            value,
            &[logits],
            Box::new(move |g, _| Ok(vec![Some(softmax_xent_backward(&logp, &tt, g, inv)?)])),
        )
    }
}
