//! A TIGER-style generative retriever (Rajput et al. 2023): an encoder–decoder transformer over
//! semantic-ID tokens. The encoder reads the user's last ≤ `H` items, each as its `T` tokens
//! ([`SidTable`]: `L` codes + collision suffix, level-specific token ids), with a learned
//! position embedding over the `H·T` positions; the decoder starts from a BOS token and, with
//! causal self-attention and cross-attention to the encoder, emits the next item's tokens, one
//! position at a time, each from its own output head over that position's codes
//! (teacher-forced, cross-entropy per token, averaged over the `T` positions).
//!
//! Decoding is constrained beam search over the catalogue's prefix trie
//! ([`super::decode`]): every result is a real item. [`TigerScorer`] is the model as the
//! beam search sees it: the encoder runs once per user, each step re-reads the prefix.
//!
//! Defaults are GRID's public setting: 4 + 4 layers, width 128, 6 heads of 64, feed-forward
//! 1,024, dropout 0.1.

use super::decode::{beam_search, BeamConfig, CodeTrie, GpuTrie, Hit, StepScorer};
use super::fit::SeqModel;
use super::protocol::{EvalSplit, SeqProtocol};
use super::sid::SidTable;
use crate::autograd::{AttnMask, Graph, Var};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::movement::gather_rows;
use crate::nn::{
    Activation, BlockShape, DropCtx, Dropout, Embedding, Init, LayerNorm, Linear, ParamStore,
    TransformerBlock,
};
use crate::optim::Optimizer;
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// TIGER's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TigerConfig {
    /// Model width.
    pub d_model: usize,
    /// Encoder blocks.
    pub enc_layers: usize,
    /// Decoder blocks.
    pub dec_layers: usize,
    /// Heads.
    pub heads: usize,
    /// Width of one head (the attention's inner width is `heads · head_dim`).
    pub head_dim: usize,
    /// Feed-forward hidden width.
    pub d_ff: usize,
    /// Dropout on embeddings and every residual branch.
    pub dropout: f32,
    /// Beams of the constrained beam search (at least the largest K reported, 20).
    pub beams: usize,
    /// Constrain decoding to the catalogue's trie (off: measure the invalid-ID rate).
    pub constrained: bool,
}

impl Default for TigerConfig {
    fn default() -> Self {
        TigerConfig {
            d_model: 128,
            enc_layers: 4,
            dec_layers: 4,
            heads: 6,
            head_dim: 64,
            d_ff: 1024,
            dropout: 0.1,
            beams: 20,
            constrained: true,
        }
    }
}

/// The model and its parameters.
pub struct Tiger {
    /// Parameters (`tok`, `enc_pos`, `dec_pos`, `enc{i}.*`, `dec{i}.*`, `enc_ln`, `dec_ln`,
    /// `head{t}`).
    pub store: ParamStore,
    config: TigerConfig,
    sid: SidTable,
    trie: GpuTrie,
    history: usize,
    tok: Embedding,
    enc_pos: Embedding,
    dec_pos: Embedding,
    enc: Vec<TransformerBlock>,
    dec: Vec<TransformerBlock>,
    enc_ln: LayerNorm,
    dec_ln: LayerNorm,
    heads: Vec<Linear>,
    dropout: Dropout,
}

/// Encoder inputs of a batch of windows.
struct EncBatch {
    tok: Tensor,
    pos: Tensor,
    lens: Tensor,
    b: usize,
    s: usize,
}

impl Tiger {
    /// A fresh model over the items of `sid`, reading at most `history` items, seeded.
    pub fn new(
        gpu: &Gpu,
        config: &TigerConfig,
        sid: SidTable,
        history: usize,
        seed: u64,
    ) -> Result<Tiger> {
        let c = config;
        if c.d_model == 0
            || c.heads == 0
            || c.head_dim == 0
            || c.enc_layers == 0
            || c.dec_layers == 0
        {
            return Err(Error::Invalid(
                "tiger: width, heads, head_dim and both layer counts must be positive".into(),
            ));
        }
        if c.beams == 0 || history == 0 {
            return Err(Error::Invalid(
                "tiger: beams and history must be at least 1".into(),
            ));
        }
        let trie = CodeTrie::build(&sid.codes, &sid.vocab)?.to_gpu(gpu)?;
        let t = sid.positions();
        let mut store = ParamStore::new(gpu, seed);
        let init = Init::Normal { std: 0.02 };
        // Tokens of every position, then BOS, then the padding token.
        let tok = Embedding::new(&mut store, "tok", sid.n_tokens() + 2, c.d_model, init)?;
        let enc_pos = Embedding::new(&mut store, "enc_pos", history * t, c.d_model, init)?;
        let dec_pos = Embedding::new(&mut store, "dec_pos", t, c.d_model, init)?;
        let shape = BlockShape {
            d_model: c.d_model,
            heads: c.heads,
            head_dim: c.head_dim,
            d_ff: c.d_ff,
            act: Activation::Relu,
        };
        let enc = (0..c.enc_layers)
            .map(|i| TransformerBlock::new(&mut store, &format!("enc{i}"), shape, false))
            .collect::<Result<Vec<_>>>()?;
        let dec = (0..c.dec_layers)
            .map(|i| TransformerBlock::new(&mut store, &format!("dec{i}"), shape, true))
            .collect::<Result<Vec<_>>>()?;
        let enc_ln = LayerNorm::new(&mut store, "enc_ln", c.d_model, true)?;
        let dec_ln = LayerNorm::new(&mut store, "dec_ln", c.d_model, true)?;
        let heads = sid
            .vocab
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                Linear::new(
                    &mut store,
                    &format!("head{i}"),
                    c.d_model,
                    v,
                    true,
                    Init::XavierUniform,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Tiger {
            dropout: Dropout::new(c.dropout, seed ^ 0x71_6e4)?,
            store,
            config: c.clone(),
            sid,
            trie,
            history,
            tok,
            enc_pos,
            dec_pos,
            enc,
            dec,
            enc_ln,
            dec_ln,
            heads,
        })
    }

    /// The settings.
    pub fn config(&self) -> &TigerConfig {
        &self.config
    }

    /// The semantic IDs it decodes.
    pub fn sid(&self) -> &SidTable {
        &self.sid
    }

    /// Sets the beam settings used by [`SeqModel::rank`].
    pub fn set_beam(&mut self, beams: usize, constrained: bool) {
        self.config.beams = beams.max(1);
        self.config.constrained = constrained;
    }

    fn bos(&self) -> u32 {
        self.sid.n_tokens() as u32
    }

    fn pad(&self) -> u32 {
        self.sid.n_tokens() as u32 + 1
    }

    fn enc_batch(&self, windows: &[&[u32]]) -> Result<EncBatch> {
        let gpu = self.store.gpu();
        let t = self.sid.positions();
        let b = windows.len();
        let s = windows.iter().map(|w| w.len()).max().unwrap_or(0).max(1) * t;
        let mut tok = vec![self.pad(); b * s];
        let mut pos = vec![0u32; b * s];
        let mut lens = Vec::with_capacity(b);
        for (r, w) in windows.iter().enumerate() {
            for (j, &it) in w.iter().enumerate() {
                for (p, tk) in self.sid.tokens(it as usize).enumerate() {
                    tok[r * s + j * t + p] = tk;
                }
            }
            for (j, p) in pos[r * s..(r + 1) * s].iter_mut().enumerate() {
                *p = j as u32;
            }
            lens.push((w.len() * t) as u32);
        }
        Ok(EncBatch {
            tok: Tensor::from_u32(gpu, &tok, &[b * s])?,
            pos: Tensor::from_u32(gpu, &pos, &[b * s])?,
            lens: Tensor::from_u32(gpu, &lens, &[b])?,
            b,
            s,
        })
    }

    /// The encoder's output `[B, S, d]`.
    fn encode(&self, g: &Graph, eb: &EncBatch, drop: &DropCtx) -> Result<Var> {
        let d = self.config.d_model;
        let e = self.tok.forward(g, &self.store, &eb.tok)?;
        let p = self.enc_pos.forward(g, &self.store, &eb.pos)?;
        let x = drop.apply(g, &g.add(&e, &p)?)?;
        let mut x = g.reshape(&x, &[eb.b, eb.s, d])?;
        let mask = AttnMask {
            q_lens: Some(&eb.lens),
            k_lens: Some(&eb.lens),
            causal: false,
        };
        for blk in &self.enc {
            x = blk.forward(g, &self.store, &x, &mask, None, drop)?;
        }
        self.enc_ln.forward(g, &self.store, &x)
    }

    /// The decoder's output `[B·n, d]` for decoder inputs `tokens` (`[B, n]` global ids,
    /// BOS first) over `memory` `[B, S, d]` with `mem_lens` real positions.
    fn decode(
        &self,
        g: &Graph,
        tokens: &[u32],
        n: usize,
        memory: &Var,
        mem_lens: &Tensor,
        drop: &DropCtx,
    ) -> Result<Var> {
        let gpu = self.store.gpu();
        let d = self.config.d_model;
        let b = tokens.len() / n;
        let pos: Vec<u32> = (0..b * n).map(|i| (i % n) as u32).collect();
        let ti = Tensor::from_u32(gpu, tokens, &[b * n])?;
        let pi = Tensor::from_u32(gpu, &pos, &[b * n])?;
        let e = self.tok.forward(g, &self.store, &ti)?;
        let p = self.dec_pos.forward(g, &self.store, &pi)?;
        let x = drop.apply(g, &g.add(&e, &p)?)?;
        let mut x = g.reshape(&x, &[b, n, d])?;
        let self_mask = AttnMask {
            q_lens: None,
            k_lens: None,
            causal: true,
        };
        let cross = AttnMask {
            q_lens: None,
            k_lens: Some(mem_lens),
            causal: false,
        };
        for blk in &self.dec {
            x = blk.forward(g, &self.store, &x, &self_mask, Some((memory, &cross)), drop)?;
        }
        let x = self.dec_ln.forward(g, &self.store, &x)?;
        g.reshape(&x, &[b * n, d])
    }

    /// Teacher-forced loss of predicting each target item's tokens after its window.
    fn loss(&self, g: &Graph, windows: &[&[u32]], targets: &[u32], drop: &DropCtx) -> Result<Var> {
        let gpu = self.store.gpu();
        let t = self.sid.positions();
        let eb = self.enc_batch(windows)?;
        let mem = self.encode(g, &eb, drop)?;
        let mut dec_in = Vec::with_capacity(targets.len() * t);
        for &it in targets {
            dec_in.push(self.bos());
            dec_in.extend(self.sid.tokens(it as usize).take(t - 1));
        }
        let h = self.decode(g, &dec_in, t, &mem, &eb.lens, drop)?;
        let mut total: Option<Var> = None;
        for (p, head) in self.heads.iter().enumerate() {
            let rows: Vec<u32> = (0..targets.len()).map(|r| (r * t + p) as u32).collect();
            let ri = Tensor::from_u32(gpu, &rows, &[rows.len()])?;
            let hp = g.gather_rows(&h, &ri)?;
            let logits = head.forward(g, &self.store, &hp)?;
            let tg: Vec<u32> = targets
                .iter()
                .map(|&it| self.sid.item(it as usize)[p])
                .collect();
            let tt = Tensor::from_u32(gpu, &tg, &[tg.len()])?;
            let ce = g.softmax_cross_entropy(&logits, &tt)?;
            total = Some(match total {
                None => ce,
                Some(a) => g.add(&a, &ce)?,
            });
        }
        let total = total.ok_or_else(|| Error::Invalid("tiger: no token positions".into()))?;
        g.scale(&total, 1.0 / t as f32)
    }

    /// The windows (last ≤ H items) of `users` on `split`.
    fn windows<'p>(&self, p: &'p SeqProtocol, split: EvalSplit, users: &[u32]) -> Vec<&'p [u32]> {
        users
            .iter()
            .map(|&u| {
                let w = p.window(split, u as usize);
                &w[w.len() - self.history.min(w.len())..]
            })
            .collect()
    }

    /// A scorer for the beam search over `windows` (the encoder runs here, once).
    pub fn scorer(&self, windows: &[&[u32]]) -> Result<TigerScorer<'_>> {
        let eb = self.enc_batch(windows)?;
        let g = Graph::new(self.store.gpu());
        let mem = self.encode(&g, &eb, &DropCtx::eval())?;
        Ok(TigerScorer {
            model: self,
            memory: mem.value().reshape(&[eb.b * eb.s, self.config.d_model])?,
            lens: eb.lens.to_u32()?,
            users: eb.b,
            s: eb.s,
        })
    }

    /// Beam-search hits of `users` on `split`, best first (at most `beams`).
    pub fn decode_users(
        &self,
        p: &SeqProtocol,
        split: EvalSplit,
        users: &[u32],
    ) -> Result<Vec<Vec<Hit>>> {
        let w = self.windows(p, split, users);
        let mut sc = self.scorer(&w)?;
        let cfg = BeamConfig {
            beams: self.config.beams,
            constrained: self.config.constrained,
        };
        beam_search(&self.trie, &mut sc, users.len(), &cfg)
    }

    /// The prefix trie of the catalogue's IDs.
    pub fn trie(&self) -> &GpuTrie {
        &self.trie
    }
}

/// [`Tiger`] as the beam search sees it: encoder memory of a batch of users, computed once.
pub struct TigerScorer<'a> {
    model: &'a Tiger,
    memory: Tensor,
    lens: Vec<u32>,
    users: usize,
    s: usize,
}

impl StepScorer for TigerScorer<'_> {
    fn log_probs(
        &mut self,
        step: usize,
        prefixes: &Tensor,
        rows_per_user: usize,
    ) -> Result<Tensor> {
        let m = self.model;
        let gpu = m.store.gpu();
        let rows = self.users * rows_per_user;
        let pre = if step == 0 {
            Vec::new()
        } else {
            prefixes.to_u32()?
        };
        let mut tokens = Vec::with_capacity(rows * (step + 1));
        for r in 0..rows {
            tokens.push(m.bos());
            for t in 0..step {
                tokens.push(pre[r * step + t] + m.sid.offset[t] as u32);
            }
        }
        let s = self.s;
        let idx: Vec<u32> = (0..rows)
            .flat_map(|r| {
                let u = r / rows_per_user;
                (0..s).map(move |j| (u * s + j) as u32)
            })
            .collect();
        let it = Tensor::from_u32(gpu, &idx, &[idx.len()])?;
        let mem = gather_rows(&self.memory, &it)?.reshape(&[rows, self.s, m.config.d_model])?;
        let lens: Vec<u32> = (0..rows).map(|r| self.lens[r / rows_per_user]).collect();
        let lt = Tensor::from_u32(gpu, &lens, &[rows])?;
        let g = Graph::new(gpu);
        let memv = g.input(&mem);
        let h = m.decode(&g, &tokens, step + 1, &memv, &lt, &DropCtx::eval())?;
        let last: Vec<u32> = (0..rows).map(|r| (r * (step + 1) + step) as u32).collect();
        let li = Tensor::from_u32(gpu, &last, &[rows])?;
        let hl = g.gather_rows(&h, &li)?;
        let logits = m.heads[step].forward(&g, &m.store, &hl)?;
        Ok(g.log_softmax_rows(&logits)?.value().clone())
    }
}

impl SeqModel for Tiger {
    fn store(&self) -> &ParamStore {
        &self.store
    }

    fn store_mut(&mut self) -> &mut ParamStore {
        &mut self.store
    }

    fn examples(&self, p: &SeqProtocol) -> Vec<(u32, u32)> {
        p.train_examples()
    }

    fn train_step(
        &mut self,
        opt: &mut dyn Optimizer,
        p: &SeqProtocol,
        batch: &[(u32, u32)],
        step: u64,
    ) -> Result<Tensor> {
        let mut windows = Vec::with_capacity(batch.len());
        let mut targets = Vec::with_capacity(batch.len());
        for &(u, t) in batch {
            let s = p.train_seq(u as usize);
            let t = t as usize;
            windows.push(&s[t.saturating_sub(self.history)..t]);
            targets.push(s[t]);
        }
        let gpu = self.store.gpu().clone();
        let g = Graph::new(&gpu);
        let drop = DropCtx::train(&self.dropout, step);
        let loss = self.loss(&g, &windows, &targets, &drop)?;
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
        let hits = self.decode_users(p, split, users)?;
        Ok(hits
            .into_iter()
            .zip(users)
            .map(|(h, &u)| {
                let seen: std::collections::HashSet<u32> =
                    p.seen(split, u as usize).iter().copied().collect();
                h.into_iter()
                    .filter_map(|x| x.item.map(|i| (i, x.log_prob)))
                    .filter(|(i, _)| !seen.contains(i))
                    .take(k)
                    .collect()
            })
            .collect())
    }
}
