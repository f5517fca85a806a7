//! [`exact_search`]: every item's full-sequence log-likelihood, to check the beam against.
//!
//! Cost: at depth `t` the scorer scores every trie node at that depth for every user, so it is
//! called `T` times with `n_users · N_t` rows (`N_t` = [`CodeTrie::nodes_at_depth`]`(t)`'s
//! length, at most the number of items) and returns `n_users · N_t · vocab[t]` log-probabilities,
//! each read back to the CPU, where the sums run down to the leaves. Memory and time grow with
//! users × items × vocab, against users × beams × vocab for [`super::beam_search`]: a check for
//! small catalogues, not a way to serve.

use crate::error::Result;
use crate::retrieval::decode::beam::{check_scores, sort_hits, Hit, StepScorer};
use crate::retrieval::decode::trie::{CodeTrie, GpuTrie};
use crate::tensor::Tensor;

/// The exact top-`k` items of each of `n_users` users by full-sequence log-likelihood (the
/// f32 sum of the scorer's log-probabilities from the first token on, in order), sorted as
/// [`super::beam_search`]'s hits. See the module docs for the cost.
pub fn exact_search(
    trie: &GpuTrie,
    scorer: &mut dyn StepScorer,
    n_users: usize,
    k: usize,
) -> Result<Vec<Vec<Hit>>> {
    let ct: &CodeTrie = trie.trie();
    if ct.n_items() == 0 || n_users == 0 {
        return Ok(vec![Vec::new(); n_users]);
    }
    // cum[u · N_t + i]: user u's log-likelihood of the i-th node at the current depth.
    let mut cum = vec![0f32; n_users];
    for (t, &vocab) in ct.vocab().iter().enumerate() {
        let nodes = ct.nodes_at_depth(t);
        let n_t = nodes.len();
        let next = ct.nodes_at_depth(t + 1);
        let mut pre: Vec<u32> = Vec::with_capacity(n_users * n_t * t);
        let one: Vec<u32> = nodes.clone().flat_map(|n| ct.prefix(n)).collect();
        for _ in 0..n_users {
            pre.extend_from_slice(&one);
        }
        let prefixes = Tensor::from_u32(trie.gpu(), &pre, &[n_users * n_t, t])?;
        let logp = scorer.log_probs(t, &prefixes, n_t)?;
        check_scores(&logp, n_users * n_t, vocab, t)?;
        let lp = logp.to_vec()?;
        let mut out = vec![0f32; n_users * next.len()];
        for u in 0..n_users {
            for (i, n) in nodes.clone().enumerate() {
                let row = u * n_t + i;
                let (toks, kids) = ct.children(n);
                for (&tok, &kid) in toks.iter().zip(kids) {
                    out[u * next.len() + (kid - next.start) as usize] =
                        cum[row] + lp[row * vocab + tok as usize];
                }
            }
        }
        cum = out;
    }
    let leaves = ct.nodes_at_depth(ct.depth());
    let n_leaves = leaves.len();
    Ok((0..n_users)
        .map(|u| {
            let mut hits: Vec<Hit> = leaves
                .clone()
                .enumerate()
                .map(|(i, leaf)| Hit {
                    item: ct.item_of(leaf),
                    tokens: ct.prefix(leaf),
                    log_prob: cum[u * n_leaves + i],
                })
                .collect();
            sort_hits(&mut hits);
            hits.truncate(k);
            hits
        })
        .collect())
}
