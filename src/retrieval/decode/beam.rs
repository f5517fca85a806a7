//! Beam search over a [`StepScorer`], constrained to a trie of real items or not.
//!
//! The layout is fixed: `n_users · beams` rows at every step, user-major. At step 0 only beam 0
//! of each user is live (score 0 at the root); the others carry −∞ at [`INVALID`], so they
//! never win over a live candidate. Each step the scorer reads the prefixes (built on the GPU
//! by [`extend_prefixes`]), [`constrained_top_k`] keeps each user's best `beams` (beam, token)
//! extensions on the GPU, and nothing is read back until the last step, whose scores, prefixes
//! and nodes come back in two transfers.

use crate::error::{Error, Result};
use crate::kernels::beam::{
    constrained_top_k, constrained_top_k_cpu, extend_prefixes, extend_prefixes_cpu, INVALID,
    MAX_BEAMS,
};
use crate::retrieval::decode::trie::{CodeTrie, GpuTrie};
use crate::tensor::{DType, Tensor};

/// A model that gives next-token log-probabilities of batches of prefixes.
pub trait StepScorer {
    /// Next-token log-probabilities at decoding position `step` for `rows = users * rows_per_user` prefixes laid out user-major:
    /// `prefixes` is a u32 tensor [rows, step] (empty at step 0). Returns f32 [rows, vocab[step]].
    fn log_probs(&mut self, step: usize, prefixes: &Tensor, rows_per_user: usize)
        -> Result<Tensor>;
}

/// [`StepScorer`] in plain Rust, for [`beam_search_cpu`]: `prefixes` is row-major
/// `[rows, step]` (so `rows` is given: at step 0 the slice is empty), the result
/// `[rows, vocab[step]]`.
pub trait CpuStepScorer {
    /// Next-token log-probabilities at position `step` of `rows = users · rows_per_user`
    /// user-major prefixes.
    fn log_probs_cpu(
        &mut self,
        step: usize,
        prefixes: &[u32],
        rows: usize,
        rows_per_user: usize,
    ) -> Result<Vec<f32>>;
}

/// Settings of [`beam_search`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BeamConfig {
    /// Prefixes kept per user at every step, and most hits returned per user (1 to
    /// [`MAX_BEAMS`]).
    pub beams: usize,
    /// Only extend prefixes of real items, so every hit is an item.
    pub constrained: bool,
}

impl Default for BeamConfig {
    fn default() -> Self {
        BeamConfig {
            beams: 20,
            constrained: true,
        }
    }
}

/// One decoded semantic ID.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    /// The item row whose ID this is; `None` when no item has it (only unconstrained).
    pub item: Option<u32>,
    /// The `T` tokens.
    pub tokens: Vec<u32>,
    /// The sum of the scorer's log-probabilities along the tokens (in f32, in order).
    pub log_prob: f32,
}

/// Sorts hits by log-probability descending; ties: lower item first (real items before
/// `None`), then lexicographically lower tokens.
pub(crate) fn sort_hits(hits: &mut [Hit]) {
    hits.sort_by(|a, b| {
        b.log_prob
            .partial_cmp(&a.log_prob)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(
                a.item
                    .unwrap_or(u32::MAX)
                    .cmp(&b.item.unwrap_or(u32::MAX))
                    .then(a.item.is_none().cmp(&b.item.is_none())),
            )
            .then(a.tokens.cmp(&b.tokens))
    });
}

fn check_beams(cfg: &BeamConfig) -> Result<()> {
    if cfg.beams == 0 || cfg.beams > MAX_BEAMS {
        return Err(Error::Invalid(format!(
            "beam search: beams must be in 1..={MAX_BEAMS}, not {}",
            cfg.beams
        )));
    }
    Ok(())
}

/// Checks that a scorer gave f32 `[rows, vocab]`.
pub(crate) fn check_scores(t: &Tensor, rows: usize, vocab: usize, step: usize) -> Result<()> {
    if t.dtype() != DType::F32 || t.rank() != 2 || t.rows() != rows || t.cols() != vocab {
        return Err(Error::shape(
            "StepScorer::log_probs",
            format!(
                "step {step}: the scorer returned a {:?} tensor of shape {:?}, not f32 [{rows}, {vocab}]",
                t.dtype(),
                t.shape()
            ),
        ));
    }
    Ok(())
}

/// The start of every user's beams: beam 0 live at the root, the rest dead.
fn initial(users: usize, beams: usize) -> (Vec<f32>, Vec<u32>) {
    let mut score = vec![f32::NEG_INFINITY; users * beams];
    let mut node = vec![INVALID; users * beams];
    for u in 0..users {
        score[u * beams] = 0.0;
        node[u * beams] = 0;
    }
    (score, node)
}

/// Hits from the final step: slots with a score above −∞ (empty and dead slots are dropped).
fn hits_of(
    trie: &CodeTrie,
    users: usize,
    beams: usize,
    score: &[f32],
    prefixes: &[u32],
    node: &[u32],
) -> Vec<Vec<Hit>> {
    let t = trie.depth();
    (0..users)
        .map(|u| {
            let mut hits: Vec<Hit> = (u * beams..(u + 1) * beams)
                .filter(|&r| score[r] > f32::NEG_INFINITY)
                .map(|r| Hit {
                    item: (node[r] != INVALID)
                        .then(|| trie.item_of(node[r]))
                        .flatten(),
                    tokens: prefixes[r * t..(r + 1) * t].to_vec(),
                    log_prob: score[r],
                })
                .collect();
            sort_hits(&mut hits);
            hits
        })
        .collect()
}

/// Beam search for `n_users` users: per user at most `cfg.beams` hits, sorted by
/// log-probability descending (ties as [`Hit`]'s order: lower item, then lower tokens).
/// Constrained, every hit is a real item; unconstrained, a hit may be `item: None`.
pub fn beam_search(
    trie: &GpuTrie,
    scorer: &mut dyn StepScorer,
    n_users: usize,
    cfg: &BeamConfig,
) -> Result<Vec<Vec<Hit>>> {
    check_beams(cfg)?;
    let b = cfg.beams;
    let rows = n_users * b;
    if n_users == 0 {
        return Ok(Vec::new());
    }
    let gpu = trie.gpu();
    let (s0, n0) = initial(n_users, b);
    let mut score = Tensor::from_slice(gpu, &s0, &[rows])?;
    let mut node = Tensor::from_u32(gpu, &n0, &[rows])?;
    let mut prefixes = Tensor::empty_typed(gpu, &[rows, 0], DType::U32)?;
    for (step, &vocab) in trie.trie().vocab().iter().enumerate() {
        let logp = scorer.log_probs(step, &prefixes, b)?;
        check_scores(&logp, rows, vocab, step)?;
        let top = constrained_top_k(&logp, &score, &node, trie.csr(), b, cfg.constrained)?;
        prefixes = extend_prefixes(&prefixes, &top.parent, &top.token, b)?;
        score = top.score;
        node = top.node;
    }
    let s = score.to_vec()?;
    let mut back = Tensor::read_all_u32(&[&prefixes, &node])?;
    let n = back.pop().unwrap_or_default();
    let p = back.pop().unwrap_or_default();
    Ok(hits_of(trie.trie(), n_users, b, &s, &p, &n))
}

/// [`beam_search`] in plain Rust, with the references of the GPU kernels, for tests.
pub fn beam_search_cpu(
    trie: &CodeTrie,
    scorer: &mut dyn CpuStepScorer,
    n_users: usize,
    cfg: &BeamConfig,
) -> Result<Vec<Vec<Hit>>> {
    check_beams(cfg)?;
    let b = cfg.beams;
    let rows = n_users * b;
    let (mut score, mut node) = initial(n_users, b);
    let mut prefixes: Vec<u32> = Vec::new();
    let (offsets, tokens, children) = trie.csr();
    for (step, &vocab) in trie.vocab().iter().enumerate() {
        let logp = scorer.log_probs_cpu(step, &prefixes, rows, b)?;
        if logp.len() != rows * vocab {
            return Err(Error::shape(
                "CpuStepScorer::log_probs_cpu",
                format!(
                    "step {step}: the scorer returned {} values, not [{rows}, {vocab}]",
                    logp.len()
                ),
            ));
        }
        let top = constrained_top_k_cpu(
            &logp,
            &score,
            &node,
            offsets,
            tokens,
            children,
            b,
            vocab,
            cfg.constrained,
        );
        prefixes = extend_prefixes_cpu(&prefixes, step, &top.parent, &top.token, b);
        score = top.score;
        node = top.node;
    }
    Ok(hits_of(trie, n_users, b, &score, &prefixes, &node))
}

/// How many returned hits name no real item (unconstrained decoding's "invalid-ID rate").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InvalidIdStats {
    /// Hits returned, over all users.
    pub hits: usize,
    /// Of those, hits with `item: None`.
    pub invalid: usize,
}

impl InvalidIdStats {
    /// `invalid / hits`, or 0 when there are no hits.
    pub fn rate(&self) -> f64 {
        if self.hits == 0 {
            0.0
        } else {
            self.invalid as f64 / self.hits as f64
        }
    }
}

/// Counts the hits of a decoding run that are not real items.
pub fn invalid_id_stats(results: &[Vec<Hit>]) -> InvalidIdStats {
    let hits = results.iter().map(Vec::len).sum();
    let invalid = results
        .iter()
        .flatten()
        .filter(|h| h.item.is_none())
        .count();
    InvalidIdStats { hits, invalid }
}
