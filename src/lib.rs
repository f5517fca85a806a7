//! # semid
//!
//! Semantic IDs from multimodal item embeddings, and the recommenders that use them, on any GPU
//! through hand-written WGSL compute shaders run by `wgpu`.
//!
//! The engine: [`gpu`] (the only module that touches wgpu), [`tensor`] and [`kernels`]. The
//! tokenizers: [`quant`]. Data in and out: [`data`] and [`io`]. Judging IDs: [`metrics`]. Ranking on
//! them (protocol, predictions, code tables): [`rank`].
//!
//! The common path, re-exported here: load embeddings ([`load_item_embeddings`]), fit a
//! tokenizer ([`Psrq::fit`], [`RqKMeans::fit`], [`RqVae::fit`], or [`Mmq::fit`] over several
//! modalities at once), encode new items ([`Tokenizer::encode`]), save
//! and load ([`AnyTokenizer::save`], [`AnyTokenizer::load`]).
//!
//! ```no_run
//! use semid::{load_item_embeddings, EmbeddingInput, Gpu, Psrq, PsrqConfig, Tokenizer};
//! let gpu = Gpu::default_device()?;
//! let emb = load_item_embeddings(&["text=text.npy".parse()?], Some("ids.txt".as_ref()))?;
//! let text = emb.modality("text").unwrap();
//! let (psrq, codes) = Psrq::fit(&gpu, &text.data, text.dim, &PsrqConfig::default())?;
//! let again = psrq.encode(&gpu, &text.data)?;
//! assert_eq!(codes, again);
//! # Ok::<(), semid::Error>(())
//! ```

#![warn(missing_docs)]

pub mod autograd;
pub mod bench;
pub mod config;
pub mod data;
pub mod embed;
pub mod error;
pub mod gpu;
pub mod io;
pub mod kernels;
pub mod metrics;
pub mod nn;
pub mod optim;
pub mod pipeline;
pub mod quant;
pub mod rank;
pub mod retrieval;
pub mod rng;
pub mod tensor;

pub use config::{Method, SemidConfig};
pub use data::{load_item_embeddings, EmbeddingInput, ItemEmbeddings};
pub use error::{Error, Result};
pub use gpu::{Gpu, GpuOptions, LimitsMode};
pub use quant::any::AnyTokenizer;
pub use quant::codes::Codes;
pub use quant::mmq::{Mmq, MmqConfig, ModalitySpec};
pub use quant::psrq::{Psrq, PsrqConfig};
pub use quant::rq_kmeans::{RqKMeans, RqKMeansConfig};
pub use quant::rqvae::{RqVae, RqVaeConfig};
pub use quant::tokenizer::Tokenizer;
pub use tensor::{DType, Tensor};
