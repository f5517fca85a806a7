//! # semid
//!
//! Semantic IDs from multimodal item embeddings, and the recommenders that use them, on any GPU
//! through hand-written WGSL compute shaders run by `wgpu`.
//!
//! The engine: [`gpu`] (the only module that touches wgpu), [`tensor`] and [`kernels`].

#![warn(missing_docs)]

pub mod bench;
pub mod data;
pub mod embed;
pub mod error;
pub mod gpu;
pub mod io;
pub mod kernels;
pub mod metrics;
pub mod quant;
pub mod rng;
pub mod tensor;

pub use error::{Error, Result};
pub use gpu::{Gpu, GpuOptions, LimitsMode};
pub use tensor::{DType, Tensor};
