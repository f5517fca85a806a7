//! Training and models: nn layers, the tokenizers, checkpoints, metrics, the text encoder.
//!
//! One test binary for the group (each binary links wgpu and the tokenizer crate, so fewer
//! binaries build and link faster); `cargo test --test models NAME::` runs one file's tests.

#[path = "../common/mod.rs"]
mod common;

mod beam;
mod checkpoint;
mod embed;
mod finetune;
mod metrics;
mod mmq;
mod nn_train;
mod psrq_vs_rq;
mod rank_attention;
mod rank_metrics;
mod retrieval;
mod rqvae;
mod tokenizers;
