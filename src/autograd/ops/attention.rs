//! Trainable multi-head attention: [`Graph::split_heads`], [`Graph::merge_heads`],
//! [`Graph::masked_softmax`] and their composite [`Graph::attention`].
//!
//! The composite materialises the `[B*H, Sq, Sk]` scores and probabilities (simple to
//! differentiate, and small at training sizes) and leaves the products to the batched
//! [`Graph::matmul`], whose gradient rule already exists.

use crate::autograd::graph::{Graph, Var};
use crate::error::{Error, Result};
use crate::kernels::attention_train::{masked_softmax, merge_heads, split_heads, AttnMask};
use crate::kernels::autograd::scaled_softmax_rows_backward;

/// The three dimensions of an attention operand.
fn dims3(v: &Var, what: &str) -> Result<[usize; 3]> {
    match *v.shape() {
        [a, b, c] => Ok([a, b, c]),
        _ => Err(Error::shape(
            "attention",
            format!(
                "{what} {:?} must be [batch, seq, heads * head_dim]",
                v.shape()
            ),
        )),
    }
}

impl Graph {
    /// Splits the heads of `x: [B, S, H*D]` into `[B*H, S, D]` (row `(b, h, s)` is
    /// `x[b, s, h*D..(h+1)*D]`). Gradient: [`merge_heads`] of the upstream gradient.
    pub fn split_heads(&self, x: &Var, heads: usize) -> Result<Var> {
        let value = split_heads(x.value(), heads)?;
        self.record(
            "split_heads",
            value,
            &[x],
            Box::new(move |g, _| Ok(vec![Some(merge_heads(g, heads)?)])),
        )
    }

    /// Merges `y: [B*H, S, D]` back into `[B, S, H*D]`, the inverse of [`Graph::split_heads`].
    /// Gradient: [`split_heads`] of the upstream gradient.
    pub fn merge_heads(&self, y: &Var, heads: usize) -> Result<Var> {
        let value = merge_heads(y.value(), heads)?;
        self.record(
            "merge_heads",
            value,
            &[y],
            Box::new(move |g, _| Ok(vec![Some(split_heads(g, heads)?)])),
        )
    }

    /// The masked, scaled row softmax of scores `s: [B*H, Sq, Sk]`: `softmax_j(scale · s)`
    /// over the keys `mask` allows, zeros elsewhere (see
    /// [`crate::kernels::attention_train::masked_softmax`]). Gradient
    /// `scale · y ⊙ (g − Σ g⊙y)` per row; masked entries (y = 0) get none.
    pub fn masked_softmax(
        &self,
        s: &Var,
        heads: usize,
        scale: f32,
        mask: &AttnMask,
    ) -> Result<Var> {
        let value = masked_softmax(s.value(), heads, scale, mask)?;
        // The rule needs only the probabilities: masked entries (y = 0) get no gradient.
        let y = value.clone();
        self.record(
            "masked_softmax",
            value,
            &[s],
            Box::new(move |g, _| Ok(vec![Some(scaled_softmax_rows_backward(&y, g, scale)?)])),
        )
    }

    /// Multi-head scaled dot-product attention: `q [B, Sq, H*D]`, `k` and `v [B, Sk, H*D]` ->
    /// `[B, Sq, H*D]`; `scale` `None` = `1/sqrt(D)`. Query rows past `mask.q_lens` come out
    /// as zeros, keys past `mask.k_lens` are never attended, and `mask.causal` limits query
    /// `i` to keys `j <= i`.
    ///
    /// Recorded as split_heads → `matmul(qh, khᵀ)` → [`Graph::masked_softmax`] (scale fused)
    /// → `matmul(p, vh)` → merge_heads, so the gradient is that of the composition. `q`, `k`
    /// and `v` may be the same value (self-attention): it is split once and its gradient sums
    /// the three paths.
    pub fn attention(
        &self,
        q: &Var,
        k: &Var,
        v: &Var,
        heads: usize,
        scale: Option<f32>,
        mask: &AttnMask,
    ) -> Result<Var> {
        const OP: &str = "attention";
        for x in [q, k, v] {
            self.check(x, OP)?;
        }
        let [b, _, w] = dims3(q, "q")?;
        let [bk, _, wk] = dims3(k, "k")?;
        if bk != b || wk != w || v.shape() != k.shape() {
            return Err(Error::shape(
                OP,
                format!(
                    "q {:?}, k {:?} and v {:?} must be [B, Sq, W], [B, Sk, W] and [B, Sk, W]",
                    q.shape(),
                    k.shape(),
                    v.shape()
                ),
            ));
        }
        if w == 0 || heads == 0 || !w.is_multiple_of(heads) {
            return Err(Error::shape(
                OP,
                format!("heads = {heads} must be at least 1 and divide the width {w} (> 0)"),
            ));
        }
        let scale = scale.unwrap_or(1.0 / ((w / heads) as f32).sqrt());
        // One split per distinct value: self-attention splits its input once, and the graph
        // sums the gradients the three uses send back into that one node.
        let qh = self.split_heads(q, heads)?;
        let kh = if k.id() == q.id() {
            qh.clone()
        } else {
            self.split_heads(k, heads)?
        };
        let vh = if v.id() == q.id() {
            qh.clone()
        } else if v.id() == k.id() {
            kh.clone()
        } else {
            self.split_heads(v, heads)?
        };
        let s = self.matmul(&qh, &kh, false, true)?;
        let p = self.masked_softmax(&s, heads, scale, mask)?;
        let o = self.matmul(&p, &vh, false, false)?;
        self.merge_heads(&o, heads)
    }
}
