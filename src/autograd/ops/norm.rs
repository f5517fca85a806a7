//! Normalisation: layernorm, row L2-normalisation, and cosine-similarity logits.

use crate::autograd::graph::{Graph, Var};
use crate::error::Result;
use crate::kernels::autograd::{l2_normalize_rows, l2_normalize_rows_backward, layernorm_backward};
use crate::kernels::norm::layernorm_with_stats;
use crate::kernels::reduce::sum_cols;

/// PyTorch's `F.normalize` default epsilon.
pub const NORMALIZE_EPS: f32 = 1e-12;

impl Graph {
    /// Layernorm over the last dimension (PyTorch's `layer_norm`, biased variance) with
    /// optional `gamma` and `beta` of `cols` elements.
    ///
    /// Gradients, with `x̂ = (x − μ)·rstd` and `ĝ = g ⊙ γ`:
    /// `dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ⊙x̂))` per row, `dγ = Σ_rows g⊙x̂`, `dβ = Σ_rows g`.
    pub fn layernorm(
        &self,
        x: &Var,
        gamma: Option<&Var>,
        beta: Option<&Var>,
        eps: f32,
    ) -> Result<Var> {
        let out = layernorm_with_stats(
            x.value(),
            gamma.map(|v| v.value()),
            beta.map(|v| v.value()),
            eps,
        )?;
        let xt = x.value().clone();
        let gt = gamma.map(|v| v.value().clone());
        let (mean, rstd) = (out.mean, out.rstd);
        let gamma_shape = gamma.map(|v| v.shape().to_vec());
        let beta_shape = beta.map(|v| v.shape().to_vec());
        let mut inputs = vec![x];
        inputs.extend(gamma);
        inputs.extend(beta);
        self.record(
            "layernorm",
            out.y,
            &inputs,
            Box::new(move |g, needs| {
                let need_gamma = gamma_shape.is_some() && needs[1];
                let (dx, dyx) = if needs[0] || need_gamma {
                    let (dx, dyx) = layernorm_backward(&xt, gt.as_ref(), &mean, &rstd, g)?;
                    (Some(dx), Some(dyx))
                } else {
                    (None, None)
                };
                let mut out = vec![if needs[0] { dx } else { None }];
                if let Some(s) = &gamma_shape {
                    out.push(match (&dyx, needs[1]) {
                        (Some(t), true) => Some(sum_cols(t)?.reshape(s)?),
                        _ => None,
                    });
                }
                if let Some(s) = &beta_shape {
                    let k = out.len();
                    out.push(if needs[k] {
                        Some(sum_cols(g)?.reshape(s)?)
                    } else {
                        None
                    });
                }
                Ok(out)
            }),
        )
    }

    /// Each row divided by its L2 norm: `x / max(‖x‖, eps)`, PyTorch's
    /// `F.normalize(x, dim=-1, eps=eps)`. Gradient `(g − y·Σ g⊙y) / ‖x‖` per row (`g / eps`
    /// where the norm is below eps).
    pub fn l2_normalize_rows(&self, x: &Var, eps: f32) -> Result<Var> {
        let (y, nrm) = l2_normalize_rows(x.value(), eps)?;
        let yt = y.clone();
        self.record(
            "l2_normalize_rows",
            y,
            &[x],
            Box::new(move |g, _| Ok(vec![Some(l2_normalize_rows_backward(&yt, &nrm, g, eps)?)])),
        )
    }

    /// Cosine-similarity logits of the rows of `x` `[m, d]` against the rows of `codebook`
    /// `[k, d]`: `normalize(x)·normalize(C)ᵀ · inv_tau`, shape `[m, k]` (MMQ's scores; pass
    /// `1/τ` for a softmax temperature, or 1). Built from [`Graph::l2_normalize_rows`] (eps
    /// [`NORMALIZE_EPS`]), [`Graph::matmul`] and [`Graph::scale`], so both get gradients.
    pub fn cosine_logits(&self, x: &Var, codebook: &Var, inv_tau: f32) -> Result<Var> {
        let xn = self.l2_normalize_rows(x, NORMALIZE_EPS)?;
        let cn = self.l2_normalize_rows(codebook, NORMALIZE_EPS)?;
        let s = self.matmul(&xn, &cn, false, true)?;
        if inv_tau == 1.0 {
            Ok(s)
        } else {
            self.scale(&s, inv_tau)
        }
    }
}
