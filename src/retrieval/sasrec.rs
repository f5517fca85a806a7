//! SASRec (Kang & McAuley 2018) on semid's engine: item IDs, causal self-attention, and the
//! next-item loss over the **whole catalogue** (full softmax cross-entropy at every position of
//! the training sequence, no sampled negatives). The reference every generative retriever here
//! is held against.
//!
//! Input: a user's last ≤ `H` items, right-padded to the batch's longest (`[B, S]`), item
//! embedding · √d plus a learned position embedding, dropout, `layers` pre-LN blocks
//! ([`TransformerBlock`]) with a causal and key-padding mask, a final LayerNorm. Position `t`
//! predicts item `t + 1`; the output layer is the item table itself (tied, as in SASRec), so a
//! score is `h · e_item`. The table holds one extra row, the padding item, never a target and
//! never ranked.

use super::fit::SeqModel;
use super::protocol::{EvalSplit, SeqProtocol};
use crate::autograd::{AttnMask, Graph, Var};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::{
    Activation, BlockShape, DropCtx, Dropout, Embedding, Init, LayerNorm, ParamStore,
    TransformerBlock,
};
use crate::optim::Optimizer;
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// SASRec's settings (defaults: the generative-recommenders ML-1M setting, width 64).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SasRecConfig {
    /// Model width.
    pub d_model: usize,
    /// Blocks.
    pub layers: usize,
    /// Heads (each of width `d_model / heads`).
    pub heads: usize,
    /// Feed-forward hidden width.
    pub d_ff: usize,
    /// Dropout on embeddings and every residual branch.
    pub dropout: f32,
}

impl Default for SasRecConfig {
    fn default() -> Self {
        SasRecConfig {
            d_model: 64,
            layers: 2,
            heads: 1,
            d_ff: 256,
            dropout: 0.2,
        }
    }
}

/// A SASRec model and its parameters.
pub struct SasRec {
    /// Parameters (`item`, `pos`, `block{i}.*`, `ln_out`).
    pub store: ParamStore,
    config: SasRecConfig,
    n_items: usize,
    history: usize,
    item: Embedding,
    pos: Embedding,
    blocks: Vec<TransformerBlock>,
    ln_out: LayerNorm,
    dropout: Dropout,
}

/// One padded batch of sequences.
struct SeqBatch {
    idx: Tensor,
    pos: Tensor,
    lens: Tensor,
    b: usize,
    s: usize,
}

impl SasRec {
    /// A fresh model over `n_items` items reading at most `history` of them, seeded by `seed`.
    pub fn new(
        gpu: &Gpu,
        config: &SasRecConfig,
        n_items: usize,
        history: usize,
        seed: u64,
    ) -> Result<SasRec> {
        let c = config;
        if c.d_model == 0 || c.heads == 0 || !c.d_model.is_multiple_of(c.heads) || c.layers == 0 {
            return Err(Error::Invalid(format!(
                "sasrec: d_model {} must be a positive multiple of heads {} and layers {} positive",
                c.d_model, c.heads, c.layers
            )));
        }
        if n_items == 0 || history == 0 {
            return Err(Error::Invalid(
                "sasrec: needs items and a history of at least 1".into(),
            ));
        }
        let mut store = ParamStore::new(gpu, seed);
        let init = Init::Normal { std: 0.02 };
        let item = Embedding::new(&mut store, "item", n_items + 1, c.d_model, init)?;
        let pos = Embedding::new(&mut store, "pos", history, c.d_model, init)?;
        let shape = BlockShape {
            d_model: c.d_model,
            heads: c.heads,
            head_dim: c.d_model / c.heads,
            d_ff: c.d_ff,
            act: Activation::Relu,
        };
        let blocks = (0..c.layers)
            .map(|i| TransformerBlock::new(&mut store, &format!("block{i}"), shape, false))
            .collect::<Result<Vec<_>>>()?;
        let ln_out = LayerNorm::new(&mut store, "ln_out", c.d_model, true)?;
        Ok(SasRec {
            dropout: Dropout::new(c.dropout, seed ^ 0x5a5_2ec)?,
            store,
            config: c.clone(),
            n_items,
            history,
            item,
            pos,
            blocks,
            ln_out,
        })
    }

    /// The settings.
    pub fn config(&self) -> &SasRecConfig {
        &self.config
    }

    fn batch(&self, seqs: &[&[u32]]) -> Result<SeqBatch> {
        let gpu = self.store.gpu();
        let b = seqs.len();
        let s = seqs.iter().map(|q| q.len()).max().unwrap_or(0).max(1);
        let pad = self.n_items as u32;
        let mut idx = vec![pad; b * s];
        let mut pos = vec![0u32; b * s];
        for (r, q) in seqs.iter().enumerate() {
            for t in 0..s {
                pos[r * s + t] = t as u32;
                if t < q.len() {
                    idx[r * s + t] = q[t];
                }
            }
        }
        let lens: Vec<u32> = seqs.iter().map(|q| q.len() as u32).collect();
        Ok(SeqBatch {
            idx: Tensor::from_u32(gpu, &idx, &[b * s])?,
            pos: Tensor::from_u32(gpu, &pos, &[b * s])?,
            lens: Tensor::from_u32(gpu, &lens, &[b])?,
            b,
            s,
        })
    }

    /// Hidden states `[B·S, d]` and the item table.
    fn hidden(&self, g: &Graph, sb: &SeqBatch, drop: &DropCtx) -> Result<(Var, Var)> {
        let d = self.config.d_model;
        let table = g.param(&self.store, &self.item.weight)?;
        let e = g.scale(&g.gather_rows(&table, &sb.idx)?, (d as f32).sqrt())?;
        let p = self.pos.forward(g, &self.store, &sb.pos)?;
        let x = drop.apply(g, &g.add(&e, &p)?)?;
        let mut x = g.reshape(&x, &[sb.b, sb.s, d])?;
        let mask = AttnMask {
            q_lens: Some(&sb.lens),
            k_lens: Some(&sb.lens),
            causal: true,
        };
        for blk in &self.blocks {
            x = blk.forward(g, &self.store, &x, &mask, None, drop)?;
        }
        let x = self.ln_out.forward(g, &self.store, &x)?;
        Ok((g.reshape(&x, &[sb.b * sb.s, d])?, table))
    }

    /// Catalogue scores `[users, n_items]` of the next item after each window.
    fn scores(&self, windows: &[&[u32]]) -> Result<Vec<f32>> {
        let sb = self.batch(windows)?;
        let g = Graph::new(self.store.gpu());
        let (h, table) = self.hidden(&g, &sb, &DropCtx::eval())?;
        let last: Vec<u32> = windows
            .iter()
            .enumerate()
            .map(|(r, w)| (r * sb.s + w.len().max(1) - 1) as u32)
            .collect();
        let li = Tensor::from_u32(self.store.gpu(), &last, &[last.len()])?;
        let hl = g.gather_rows(&h, &li)?;
        let logits = g.matmul(&hl, &table, false, true)?;
        let all = logits.value().to_vec()?;
        let n1 = self.n_items + 1;
        Ok(all
            .chunks(n1)
            .flat_map(|r| r[..self.n_items].iter().copied())
            .collect())
    }
}

impl SeqModel for SasRec {
    fn store(&self) -> &ParamStore {
        &self.store
    }

    fn store_mut(&mut self) -> &mut ParamStore {
        &mut self.store
    }

    /// One example per user with at least two training events: the whole (last `H + 1`)
    /// sequence, every position a next-item target.
    fn examples(&self, p: &SeqProtocol) -> Vec<(u32, u32)> {
        (0..p.n_users())
            .filter(|&u| p.train_seq(u).len() >= 2)
            .map(|u| (u as u32, p.train_seq(u).len() as u32))
            .collect()
    }

    fn train_step(
        &mut self,
        opt: &mut dyn Optimizer,
        p: &SeqProtocol,
        batch: &[(u32, u32)],
        step: u64,
    ) -> Result<Tensor> {
        let h = self.history;
        let mut inputs = Vec::with_capacity(batch.len());
        let mut targets = Vec::new();
        for &(u, end) in batch {
            let s = &p.train_seq(u as usize)[..end as usize];
            let w = &s[s.len().saturating_sub(h + 1)..];
            inputs.push(&w[..w.len() - 1]);
        }
        let sb = self.batch(&inputs)?;
        let mut rows = Vec::new();
        for (r, &(u, end)) in batch.iter().enumerate() {
            let s = &p.train_seq(u as usize)[..end as usize];
            let w = &s[s.len().saturating_sub(h + 1)..];
            for t in 0..w.len() - 1 {
                rows.push((r * sb.s + t) as u32);
                targets.push(w[t + 1]);
            }
        }
        let gpu = self.store.gpu().clone();
        let g = Graph::new(&gpu);
        let drop = DropCtx::train(&self.dropout, step);
        let (hid, table) = self.hidden(&g, &sb, &drop)?;
        let ri = Tensor::from_u32(&gpu, &rows, &[rows.len()])?;
        let hv = g.gather_rows(&hid, &ri)?;
        let logits = g.matmul(&hv, &table, false, true)?;
        let tt = Tensor::from_u32(&gpu, &targets, &[targets.len()])?;
        let loss = g.softmax_cross_entropy(&logits, &tt)?;
        let grads = g.backward(&loss)?;
        opt.step(&mut self.store, &grads)?;
        gpu.flush()?;
        Ok(loss.value().clone())
    }

    fn rank(
        &self,
        p: &SeqProtocol,
        split: EvalSplit,
        users: &[u32],
        k: usize,
    ) -> Result<Vec<Vec<(u32, f32)>>> {
        let windows: Vec<&[u32]> = users
            .iter()
            .map(|&u| {
                let w = p.window(split, u as usize);
                let h = self.history.min(w.len());
                &w[w.len() - h..]
            })
            .collect();
        let scores = self.scores(&windows)?;
        Ok(users
            .iter()
            .enumerate()
            .map(|(r, &u)| {
                let row = &scores[r * self.n_items..(r + 1) * self.n_items];
                super::fit::top_k_filtered(row, k, p.seen(split, u as usize))
            })
            .collect())
    }
}
