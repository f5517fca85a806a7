//! Neural-network layers over [`crate::autograd`] and the parameter store.
//!
//! Layers hold only the names of their parameters; the values live in a [`ParamStore`], and
//! `forward(&graph, &store, &x)` fetches them as graph parameters. So one store can be saved,
//! loaded, and updated in place by an optimizer while the layers stay plain data.
//!
//! | layer | parameters (PyTorch names and layouts) |
//! |---|---|
//! | [`Linear`] | `{name}.weight` `[out, in]`, `{name}.bias` `[out]` |
//! | [`Mlp`] | `{name}.{k}.weight` / `.bias` as in `nn.Sequential(Linear, Act, Linear, …)` |
//! | [`LayerNorm`] | `{name}.weight` `[dim]`, `{name}.bias` `[dim]` |
//! | [`Embedding`] | `{name}.weight` `[num, dim]` |
//! | [`Dropout`] | none (seeded counter-based masks) |
//! | [`MultiHeadAttention`] | `{name}.q` / `.k` / `.v` / `.o` Linears |
//! | [`TransformerBlock`] | pre-LN block: `{name}.ln_self`, `.attn`, `.ln_cross`, `.cross`, `.ln_ff`, `.ff_in`, `.ff_out` |
//! | [`FrozenMlp`] | an [`Mlp`]'s saved weights, for inference on the GPU or the CPU |

mod dropout;
mod embedding;
mod frozen;
mod layernorm;
mod linear;
mod mlp;
mod params;
mod transformer;

pub use crate::kernels::matmul::Activation;
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use frozen::{FrozenMlp, GpuMlp};
pub use layernorm::LayerNorm;
pub use linear::Linear;
pub use mlp::{Mlp, MlpConfig};
pub use params::{Init, Param, ParamStore, PARAMS_FORMAT};
pub use transformer::{BlockShape, DropCtx, MultiHeadAttention, TransformerBlock};
