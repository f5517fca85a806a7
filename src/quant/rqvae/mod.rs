//! RQ-VAE: the residual-quantized autoencoder of TIGER (Rajput et al., NeurIPS '23; Lee et al.,
//! CVPR '22), the learned baseline next to RQ-KMeans and PSRQ (NOTES.md §3).
//!
//! ```text
//! z    = encoder(x)                                   MLP d → 512 → 256 → 128 → 32 (ReLU)
//! r_1  = z;   for l = 1..L:   c_l = argmin_j ‖r_l − C_l[j]‖²,  e_l = C_l[c_l],  r_{l+1} = r_l − e_l
//! ẑ    = z + sg(Σ_l e_l − z)                          straight-through estimator
//! x̂    = decoder(ẑ)                                   MLP 32 → 128 → 256 → 512 → d
//! loss = mean‖x̂ − x‖² + Σ_l ( mean‖sg(r_l) − e_l‖² + β · mean‖r_l − sg(e_l)‖² ),  β = 0.25
//! ```
//!
//! - The nearest code is found by the fused codebook-search kernel (squared L2), on the GPU.
//! - Codebooks are initialised by residual k-means on the latents of the first batch
//!   ([`RqVaeConfig::kmeans_init`]), as TIGER does, so no code starts dead.
//! - A code unused for [`RqVaeConfig::dead_code_steps`] consecutive steps is re-seeded with a
//!   random residual of the current batch at its level (distinct rows, seeded).
//! - Optimizer: Adam (lr 1e-3) by default. TIGER reports Adagrad (lr 0.4) over 20k epochs;
//!   Adam at 1e-3 is what most public reproductions use and converges in far fewer steps. Plain
//!   SGD is available (it is what the `rqvae_step` benchmark times).
//! - Everything is seeded: weights (per parameter name), batch order (per epoch), k-means and
//!   dead-code re-seeding, and every GPU kernel reduces in a fixed order, so one seed gives one
//!   model and one set of codes.
//!
//! Parameters carry PyTorch names (`encoder.0.weight`, `encoder.0.bias`, …, `decoder.6.weight`,
//! `codebook.{l}` `[k, latent]`), in the layout of `nn.Sequential(Linear, ReLU, …, Linear)`.
//!
//! Level reconstructions (for the metrics) are the decoder applied to the cumulative quantized
//! latent `Σ_{m≤l} e_m` after each level; the last is the model's reconstruction.
//!
//! Files: settings ([`config`]), one training step through the autograd graph and the epoch
//! loop's trainer ([`trainer`]), the fitted tokenizer with encode and decode ([`model`]).

pub mod config;
pub mod model;
pub mod trainer;

pub use config::{codebook_name, ActivationKind, OptimizerKind, RqVaeConfig};
pub use model::RqVae;
pub use trainer::{RqVaeTrainer, StepOutput};
