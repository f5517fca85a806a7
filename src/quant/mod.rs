//! Tokenizers that turn embeddings into semantic IDs, and the clustering they build on.
//!
//! | module | what |
//! |---|---|
//! | [`kmeans`] | GPU k-means (k-means++, Lloyd, deterministic updates, spherical, balanced) |
//! | [`cluster`] | the tokenizers' serialisable k-means settings and their door to it |
//! | [`codes`] | `Codes`: items × levels |
//! | [`tokenizer`] | the interface every tokenizer shares |
//! | [`rq_kmeans`] | RQ-KMeans, the baseline |
//! | [`psrq`] | PSRQ, progressive semantic residual quantization |
//! | [`rqvae`] | RQ-VAE, the learned residual quantizer of TIGER |
//! | [`mmq`] | MMQ, shared and modality-specific experts with cosine codebooks |
//! | [`any`] | a tokenizer of any method, with checkpoints |
//! | [`train_state`] | what learned tokenizers' checkpoints keep to resume exactly |
//! | [`dedup`] | the TIGER-style collision suffix |

pub mod any;
pub mod cluster;
pub mod codes;
mod dead_codes;
pub mod dedup;
pub(crate) mod epochs;
pub mod kmeans;
pub mod mmq;
pub mod psrq;
pub mod rq_kmeans;
pub mod rqvae;
pub mod soft;
pub mod tokenizer;
pub mod train_state;
