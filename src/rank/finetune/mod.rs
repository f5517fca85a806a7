//! Behaviour-aware fine-tuning (MMQ's stage 2, NOTES.md §2.3): the ranking loss reaches the
//! tokenizer whose semantic IDs the ranker embeds, through soft indexing.
//!
//! ```text
//! p_t    = scores of item i's latent against token t's codes     MMQ: cos(z_t, c_j); RQ-VAE: −‖r_t − c_j‖²
//! soft_t = softmax(p_t / τ),   hard_t = argmax_j p_t             (the tokenizer's own code)
//! ind_t  = soft_t + sg(onehot(hard_t) − soft_t)                  forward hard, backward soft
//! e_i    = Σ_t ind_t · E_t                                       E_t: the ranker's table sid.<family>.<t>
//! L      = L_rank + α'·L_recon + β'·L_aux                        α' = β' = 0.5 (the paper)
//! ```
//! [`crate::autograd::Graph::soft_index`] is the `ind · E` op. One step: the batch's distinct
//! items go through the tokenizer once (its inputs stay on the GPU), each token's soft index
//! gives `[distinct, d]` rows that a gather spreads over the batch's `B·(H+1)` positions, the
//! ranker runs on those in place of its lookups for that family
//! ([`Ranker::logits_with`](super::Ranker::logits_with)), and one backward pass updates the
//! ranker (its Adam) and the tokenizer (an Adam of its own, [`FinetuneConfig::lr`]).
//!
//! What the ranking loss reaches: for MMQ the experts and the codebooks (through `p`); the
//! gates are reached by `L_recon` and `L_aux` only, since a token's embedding in the ranker is
//! its code's row, not gated. For RQ-VAE the encoder and every level's codebook, the residual
//! `r_{t+1} = r_t − C_t[hard_t]` kept in the graph.
//!
//! semid's choices where the paper is silent:
//! - **τ** is a setting (default 0.1), swept in the README.
//! - **No VQ or orthogonality terms** while tuning (the paper's `L_finetune` has none), and no
//!   dead-code re-seeding: codes move only by the gradient.
//! - **Codes in the ranker.** Within an epoch the forward pass uses the current tokenizer's hard
//!   codes; before each validation (and at the end) every item is re-encoded and the ranker
//!   scores with those codes, so validation, test and the written codes agree. The best epoch
//!   keeps the tokenizer's parameters with the ranker's.
//! - **No collision suffix** on the tuned family: a suffix indexes one set of collisions, and
//!   tuning moves the codes; the tuned run's `config.toml` says `dedup = false`. Compare with
//!   frozen codes made with `dedup = false` too.
//! - **One family** is tuned per run (the ranker may embed others, frozen).
//! - The tokenizer's inputs are the embeddings its run was fitted on (`--embeddings`, checked
//!   against the checkpoint's fingerprint).

mod config;
pub mod source;
mod step;
mod tokenizer;

pub use config::FinetuneConfig;
pub use source::{load_source, write_tuned_run, FinetuneSummary, Source, SUMMARY, TOKENIZER_DIR};
pub use step::{FineTuner, TunedInputs};
pub use tokenizer::TunedTokenizer;
