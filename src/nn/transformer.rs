//! Transformer layers for the retrievers (issue 14): multi-head attention (self and cross),
//! the position-wise feed-forward, and one pre-LayerNorm block
//! `x + drop(attn(LN(x)))`, `+ drop(cross(LN(·), memory))`, `+ drop(ffn(LN(·)))`.
//!
//! Pre-LN (as GRID's and most modern TIGER re-implementations; SASRec's original is post-LN) is
//! chosen because it trains stably without a warm-up schedule, which matters when a user runs
//! 3 seeds on one workstation. Attention runs through [`Graph::attention`] (masked, causal,
//! differentiable); its inner width `heads · head_dim` need not equal the model width (T5 and
//! GRID use 6 heads of 64 on a width of 128).
//!
//! Dropout masks are drawn from `(seed, step, site)` ([`DropCtx`]), not from a running counter,
//! so a run resumed at a step boundary draws exactly the masks the uninterrupted run drew.

use super::{Activation, Dropout, Init, LayerNorm, Linear, ParamStore};
use crate::autograd::{AttnMask, Graph, Var};
use crate::error::Result;
use std::cell::Cell;

/// Which dropout masks one forward pass draws: off at evaluation, else one stream per site.
pub struct DropCtx<'a> {
    drop: Option<&'a Dropout>,
    step: u64,
    site: Cell<u64>,
}

/// Dropout sites one step may use before streams of the next step begin.
const SITES_PER_STEP: u64 = 1 << 12;

impl<'a> DropCtx<'a> {
    /// Training at `step` with `drop` (None or p = 0: no dropout).
    pub fn train(drop: &'a Dropout, step: u64) -> DropCtx<'a> {
        DropCtx {
            drop: (drop.p > 0.0).then_some(drop),
            step,
            site: Cell::new(0),
        }
    }

    /// Evaluation: every dropout is the identity.
    pub fn eval() -> DropCtx<'static> {
        DropCtx {
            drop: None,
            step: 0,
            site: Cell::new(0),
        }
    }

    /// `x` with this context's next dropout mask applied.
    pub fn apply(&self, g: &Graph, x: &Var) -> Result<Var> {
        match self.drop {
            None => Ok(x.clone()),
            Some(d) => {
                let site = self.site.get();
                self.site.set(site + 1);
                d.forward_stream(g, x, self.step * SITES_PER_STEP + site)
            }
        }
    }
}

/// Multi-head attention with its four projections (`{name}.q|k|v|o`).
#[derive(Clone, Debug)]
pub struct MultiHeadAttention {
    /// Query projection `d_model → heads·head_dim`.
    pub q: Linear,
    /// Key projection.
    pub k: Linear,
    /// Value projection.
    pub v: Linear,
    /// Output projection `heads·head_dim → d_model`.
    pub o: Linear,
    /// Heads.
    pub heads: usize,
}

impl MultiHeadAttention {
    /// Registers the projections of an attention of `heads` heads of `head_dim` over `d_model`.
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        d_model: usize,
        heads: usize,
        head_dim: usize,
    ) -> Result<MultiHeadAttention> {
        let inner = heads * head_dim;
        let lin = |s: &mut ParamStore, n: &str, i, o| {
            Linear::new(s, &format!("{name}.{n}"), i, o, true, Init::XavierUniform)
        };
        Ok(MultiHeadAttention {
            q: lin(store, "q", d_model, inner)?,
            k: lin(store, "k", d_model, inner)?,
            v: lin(store, "v", d_model, inner)?,
            o: lin(store, "o", inner, d_model)?,
            heads,
        })
    }

    /// Queries from `x` `[B, Sq, d]`, keys and values from `kv` `[B, Sk, d]` (pass `x` again
    /// for self-attention), masked by `mask`.
    pub fn forward(
        &self,
        g: &Graph,
        store: &ParamStore,
        x: &Var,
        kv: &Var,
        mask: &AttnMask,
    ) -> Result<Var> {
        let q = self.q.forward(g, store, x)?;
        let k = self.k.forward(g, store, kv)?;
        let v = self.v.forward(g, store, kv)?;
        let a = g.attention(&q, &k, &v, self.heads, None, mask)?;
        self.o.forward(g, store, &a)
    }
}

/// The settings of one block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockShape {
    /// Model width.
    pub d_model: usize,
    /// Heads.
    pub heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Hidden width of the feed-forward.
    pub d_ff: usize,
    /// Activation of the feed-forward (ReLU in TIGER and SASRec, GELU elsewhere).
    pub act: Activation,
}

/// One pre-LN transformer block: self-attention, optional cross-attention, feed-forward.
#[derive(Clone, Debug)]
pub struct TransformerBlock {
    ln_self: LayerNorm,
    attn: MultiHeadAttention,
    cross: Option<(LayerNorm, MultiHeadAttention)>,
    ln_ff: LayerNorm,
    ff_in: Linear,
    ff_out: Linear,
    act: Activation,
}

impl TransformerBlock {
    /// Registers a block under `name` (`{name}.attn`, `{name}.cross`, `{name}.ff_in`, …);
    /// `cross` adds cross-attention (a decoder block).
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        s: BlockShape,
        cross: bool,
    ) -> Result<TransformerBlock> {
        let ln = |st: &mut ParamStore, n: &str| {
            LayerNorm::new(st, &format!("{name}.{n}"), s.d_model, true)
        };
        let mha = |st: &mut ParamStore, n: &str| {
            MultiHeadAttention::new(st, &format!("{name}.{n}"), s.d_model, s.heads, s.head_dim)
        };
        let ln_self = ln(store, "ln_self")?;
        let attn = mha(store, "attn")?;
        let cross = if cross {
            Some((ln(store, "ln_cross")?, mha(store, "cross")?))
        } else {
            None
        };
        Ok(TransformerBlock {
            ln_self,
            attn,
            cross,
            ln_ff: ln(store, "ln_ff")?,
            ff_in: Linear::new(
                store,
                &format!("{name}.ff_in"),
                s.d_model,
                s.d_ff,
                true,
                Init::XavierUniform,
            )?,
            ff_out: Linear::new(
                store,
                &format!("{name}.ff_out"),
                s.d_ff,
                s.d_model,
                true,
                Init::XavierUniform,
            )?,
            act: s.act,
        })
    }

    /// `x` `[B, S, d]` through the block; `memory` is the encoder output and its mask for a
    /// decoder block (required exactly when the block has cross-attention).
    pub fn forward(
        &self,
        g: &Graph,
        store: &ParamStore,
        x: &Var,
        self_mask: &AttnMask,
        memory: Option<(&Var, &AttnMask)>,
        drop: &DropCtx,
    ) -> Result<Var> {
        let h = self.ln_self.forward(g, store, x)?;
        let a = self.attn.forward(g, store, &h, &h, self_mask)?;
        let mut x = g.add(x, &drop.apply(g, &a)?)?;
        match (&self.cross, memory) {
            (Some((ln, mha)), Some((mem, mask))) => {
                let h = ln.forward(g, store, &x)?;
                let c = mha.forward(g, store, &h, mem, mask)?;
                x = g.add(&x, &drop.apply(g, &c)?)?;
            }
            (None, None) => {}
            _ => {
                return Err(crate::error::Error::Invalid(
                    "transformer block: memory is given exactly to blocks with cross-attention"
                        .into(),
                ))
            }
        }
        let h = self.ln_ff.forward(g, store, &x)?;
        let f = self.ff_in.forward_act(g, store, &h, self.act)?;
        let f = self.ff_out.forward(g, store, &drop.apply(g, &f)?)?;
        g.add(&x, &drop.apply(g, &f)?)
    }
}
