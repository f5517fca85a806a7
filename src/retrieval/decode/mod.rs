//! Decoding machinery of generative retrieval (TIGER), independent of any model.
//!
//! Each catalogue item is a semantic ID: `T` tokens, the token at position `t` below
//! `vocab[t]`. A model implements [`StepScorer`] (next-token log-probabilities of a batch of
//! prefixes); [`beam_search`] keeps each user's best `beams` prefixes, with the top-k of every
//! step on the GPU ([`crate::kernels::beam`]) and, when constrained, only continuations that are
//! prefixes of real items ([`CodeTrie`]), so every hit is a real item. [`exact_search`] scores
//! every item exactly (to check the beam); [`beam_search_cpu`] is the plain-Rust beam for tests;
//! [`invalid_id_stats`] measures how often unconstrained decoding returns IDs of no item.

pub mod beam;
pub mod exact;
pub mod trie;

pub use beam::{
    beam_search, beam_search_cpu, invalid_id_stats, BeamConfig, CpuStepScorer, Hit, InvalidIdStats,
    StepScorer,
};
pub use exact::exact_search;
pub use trie::{CodeTrie, GpuTrie};
