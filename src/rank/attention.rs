//! DIN's local activation unit and the attention-pooled history (DIN, KDD'18; MCCA's
//! cross-attention is the same unit with another query, NOTES.md §1.5).
//!
//! For a history `e_1 … e_H` (padded rows masked) and a query `q`, the unit scores each
//! position with an MLP over `[e_j, q, e_j − q, e_j ⊙ q]` (→ hidden widths → 1) and pools
//! `h = Σ_j w_j · e_j`, with `w_j` the raw score masked to 0 on padding (DIN) or a softmax
//! over the valid positions ([`AttentionWeights::Softmax`]).
//!
//! **How the first layer is computed.** With `W = [W_1 W_2 W_3 W_4]` (the four `d`-column
//! blocks of the first weight, PyTorch layout `[hidden, 4d]`), `W·[e, q, e − q, e ⊙ q] =
//! (W_1 + W_3)·e + (W_2 − W_3)·q + W_4·(e ⊙ q)`. The `q` term is the same for all `H`
//! positions of a row, so it is computed once per row (`[B, d]`, not `[B·H, d]`) and
//! broadcast, and the per-position product reads `[e, e ⊙ q]` (`2d` wide) instead of `4d`:
//! half the FLOPs of the layer that dominates a ranker's step. The parameter stays the full
//! `[hidden, 4d]` matrix (the blocks are slices inside the graph), so a PyTorch DIN loads the
//! saved weights, and the gradient check compares against the plain four-block formula
//! ([`activation_unit_cpu`]).

use super::config::AttentionWeights;
use crate::autograd::{Graph, Var};
use crate::error::{Error, Result};
use crate::kernels::matmul::Activation;
use crate::kernels::movement::Segments;
use crate::nn::{Init, Linear, ParamStore};
use crate::tensor::Tensor;
use crate::Gpu;

/// The masks and broadcast indices of one batch's histories, shared by every unit of a step.
#[derive(Clone, Debug)]
pub struct HistoryContext {
    /// Rows (samples) of the batch.
    pub batch: usize,
    /// History width `H`.
    pub history: usize,
    /// `[B·H]` U32: row `r / H` for position `r` (broadcasts a per-row value to its positions).
    pub rep: Tensor,
    /// The segments of `rep` (the broadcast's backward sums each row's `H` positions).
    pub rep_seg: Segments,
    /// `[B·H, 1]`: 1 on valid positions, 0 on padding.
    pub mask: Tensor,
    /// `[B, H]`: 0 on valid positions, −1e30 on padding (the softmax's mask).
    pub neg_mask: Tensor,
}

impl HistoryContext {
    /// The context of rows with `hist_len[b]` valid positions out of `history`.
    pub fn new(gpu: &Gpu, history: usize, hist_len: &[u32]) -> Result<HistoryContext> {
        let batch = hist_len.len();
        if history == 0 || batch == 0 {
            return Err(Error::shape(
                "HistoryContext",
                format!("a batch of {batch} rows with history {history}"),
            ));
        }
        if let Some(&l) = hist_len.iter().find(|&&l| l as usize > history) {
            return Err(Error::shape(
                "HistoryContext",
                format!("a history of {l} positions in a width of {history}"),
            ));
        }
        let rep: Vec<u32> = (0..batch * history).map(|r| (r / history) as u32).collect();
        let mut mask = vec![0f32; batch * history];
        let mut neg = vec![-1e30f32; batch * history];
        for (b, &l) in hist_len.iter().enumerate() {
            for j in 0..l as usize {
                mask[b * history + j] = 1.0;
                neg[b * history + j] = 0.0;
            }
        }
        Ok(HistoryContext {
            batch,
            history,
            rep_seg: Segments::from_slice(gpu, &rep, batch)?,
            rep: Tensor::from_u32(gpu, &rep, &[batch * history])?,
            mask: Tensor::from_slice(gpu, &mask, &[batch * history, 1])?,
            neg_mask: Tensor::from_slice(gpu, &neg, &[batch, history])?,
        })
    }

    /// Broadcasts `x` `[B, c]` to every position: `[B·H, c]` (gradient: the sum over positions).
    pub fn broadcast(&self, g: &Graph, x: &Var) -> Result<Var> {
        g.gather_rows_with(x, &self.rep, &self.rep_seg)
    }
}

/// A DIN activation unit: parameters `{name}.0.weight` `[h_1, 4d]`, `{name}.0.bias`, then
/// `{name}.2.*`, `{name}.4.*` … (PyTorch's `Sequential(Linear, Act, …, Linear)` numbering)
/// down to one output.
#[derive(Clone, Debug)]
pub struct ActivationUnit {
    /// Width `d` of the history rows and the query.
    pub dim: usize,
    first_weight: String,
    first_bias: String,
    rest: Vec<Linear>,
    act: Activation,
    weights: AttentionWeights,
}

impl ActivationUnit {
    /// Creates the unit's parameters under `name` (PyTorch's `nn.Linear` initialisation).
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        dim: usize,
        hidden: &[usize],
        act: Activation,
        weights: AttentionWeights,
    ) -> Result<ActivationUnit> {
        let mut widths = vec![4 * dim];
        widths.extend_from_slice(hidden);
        widths.push(1);
        let first = Linear::new(
            store,
            &format!("{name}.0"),
            widths[0],
            widths[1],
            true,
            Init::TorchLinear,
        )?;
        let rest = widths[1..]
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                Linear::new(
                    store,
                    &format!("{name}.{}", 2 * (i + 1)),
                    w[0],
                    w[1],
                    true,
                    Init::TorchLinear,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ActivationUnit {
            dim,
            first_weight: first.weight,
            first_bias: first.bias.expect("created with a bias"),
            rest,
            act,
            weights,
        })
    }

    /// The pooling weights `[B, H]` (masked) of `hist` `[B·H, d]` against `query` `[B, d]`.
    pub fn weights(
        &self,
        g: &Graph,
        store: &ParamStore,
        ctx: &HistoryContext,
        hist: &Var,
        query: &Var,
    ) -> Result<Var> {
        let d = self.dim;
        let (b, h) = (ctx.batch, ctx.history);
        if hist.shape() != [b * h, d] || query.shape() != [b, d] {
            return Err(Error::shape(
                "activation unit",
                format!(
                    "history {:?} and query {:?} for {b} rows of {h} positions of width {d}",
                    hist.shape(),
                    query.shape()
                ),
            ));
        }
        let w = g.param(store, &self.first_weight)?;
        let bias = g.param(store, &self.first_bias)?;
        let blk = |i: usize| g.slice_cols(&w, i * d, (i + 1) * d);
        let (w1, w2, w3, w4) = (blk(0)?, blk(1)?, blk(2)?, blk(3)?);
        let w_e = g.add(&w1, &w3)?;
        let w_q = g.sub(&w2, &w3)?;
        let w_ep = g.concat_cols(&[&w_e, &w4])?;
        let q_rep = ctx.broadcast(g, query)?;
        let eq = g.mul(hist, &q_rep)?;
        let x = g.concat_cols(&[hist, &eq])?;
        let z_e = g.linear(&x, &w_ep, None, Activation::None)?;
        let z_q = g.linear(query, &w_q, Some(&bias), Activation::None)?;
        let z = g.add(&z_e, &ctx.broadcast(g, &z_q)?)?;
        let mut a = g.unary(&z, self.act.unary())?;
        let last = self.rest.len() - 1;
        for (i, l) in self.rest.iter().enumerate() {
            let act = if i < last { self.act } else { Activation::None };
            a = l.forward_act(g, store, &a, act)?;
        }
        match self.weights {
            AttentionWeights::Raw => {
                let m = g.mul(&a, &g.input(&ctx.mask))?;
                g.reshape(&m, &[b, h])
            }
            AttentionWeights::Softmax => {
                let s = g.add(&g.reshape(&a, &[b, h])?, &g.input(&ctx.neg_mask))?;
                let p = g.softmax_rows(&s)?;
                // A row with no history has only −1e30 scores: its softmax is uniform over the
                // padding, which the mask then zeroes, so it pools to 0.
                g.mul(&p, &g.input(&ctx.mask.reshape(&[b, h])?))
            }
        }
    }

    /// The pooled history `Σ_j w_j · e_j`, `[B, d]`.
    pub fn pool(
        &self,
        g: &Graph,
        store: &ParamStore,
        ctx: &HistoryContext,
        hist: &Var,
        query: &Var,
    ) -> Result<Var> {
        let (b, h, d) = (ctx.batch, ctx.history, self.dim);
        let w = self.weights(g, store, ctx, hist, query)?;
        let pooled = g.matmul(
            &g.reshape(&w, &[b, 1, h])?,
            &g.reshape(hist, &[b, h, d])?,
            false,
            false,
        )?;
        g.reshape(&pooled, &[b, d])
    }
}

/// One layer of [`activation_unit_cpu`]: weight `[out, in]` row-major and bias `[out]`.
pub type CpuLayer = (Vec<f64>, Vec<f64>);

/// The plain four-block formula in f64 on the CPU (the reference of the gradient checks):
/// `hist` `[B·H, d]`, `query` `[B, d]`, `layers` from `[4d → h_1]` to `[h_last → 1]`, `act`
/// between layers. Returns the pooled `[B, d]`.
pub fn activation_unit_cpu(
    layers: &[CpuLayer],
    hist: &[f64],
    query: &[f64],
    hist_len: &[u32],
    d: usize,
    act: Activation,
    weights: AttentionWeights,
) -> Vec<f64> {
    let b = hist_len.len();
    let h = hist.len() / (b * d).max(1);
    let f = |x: f64| match act {
        Activation::None => x,
        Activation::Relu => x.max(0.0),
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Activation::Tanh => x.tanh(),
        Activation::Gelu => {
            0.5 * x * (1.0 + crate::kernels::elementwise::erf(x / std::f64::consts::SQRT_2))
        }
    };
    let mut out = vec![0.0; b * d];
    for r in 0..b {
        let q = &query[r * d..(r + 1) * d];
        let mut scores = vec![0.0; h];
        for (j, s) in scores.iter_mut().enumerate() {
            let e = &hist[(r * h + j) * d..(r * h + j + 1) * d];
            let mut x: Vec<f64> = e.to_vec();
            x.extend_from_slice(q);
            x.extend(e.iter().zip(q).map(|(a, b)| a - b));
            x.extend(e.iter().zip(q).map(|(a, b)| a * b));
            for (li, (w, bias)) in layers.iter().enumerate() {
                let n_in = x.len();
                let y: Vec<f64> = bias
                    .iter()
                    .enumerate()
                    .map(|(o, bo)| bo + (0..n_in).map(|i| w[o * n_in + i] * x[i]).sum::<f64>())
                    .collect();
                x = if li + 1 < layers.len() {
                    y.into_iter().map(f).collect()
                } else {
                    y
                };
            }
            *s = x[0];
        }
        let len = hist_len[r] as usize;
        let w: Vec<f64> = match weights {
            AttentionWeights::Raw => (0..h)
                .map(|j| if j < len { scores[j] } else { 0.0 })
                .collect(),
            AttentionWeights::Softmax => {
                let m = scores[..len]
                    .iter()
                    .cloned()
                    .fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = scores[..len].iter().map(|s| (s - m).exp()).sum();
                (0..h)
                    .map(|j| {
                        if j < len {
                            (scores[j] - m).exp() / z
                        } else {
                            0.0
                        }
                    })
                    .collect()
            }
        };
        for (j, wj) in w.iter().enumerate() {
            for c in 0..d {
                out[r * d + c] += wj * hist[(r * h + j) * d + c];
            }
        }
    }
    out
}
