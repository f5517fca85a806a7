//! Reverse-mode automatic differentiation over GPU tensors.
//!
//! A [`Graph`] is a tape. Every op (a method of `Graph`) runs its forward kernels at once —
//! recorded into the GPU layer's shared command encoder, not submitted — and records a node:
//! its inputs and what its gradient rule needs (saved tensors, shapes, flags). The rule sits
//! next to the forward in `ops/<family>.rs`. [`Graph::backward`] walks the nodes in reverse
//! creation order (a valid topological order), calls each rule with the gradient of its output
//! and accumulates input gradients with GPU adds. Nothing is read back: a whole training step
//! (forward, backward, [`crate::optim`] update) is recorded as one batch and submitted by the
//! first readback (e.g. the loss value) or [`crate::Gpu::flush`].
//!
//! ```no_run
//! # fn main() -> semid::Result<()> {
//! use semid::autograd::Graph;
//! use semid::kernels::matmul::Activation;
//! use semid::nn::{Init, ParamStore};
//! use semid::optim::{Adam, Optimizer};
//! use semid::{Gpu, Tensor};
//!
//! let gpu = Gpu::default_device()?;
//! let mut store = ParamStore::new(&gpu, 42);
//! store.init("fc.weight", &[1, 8], Init::XavierUniform, 8, 1)?; // PyTorch layout [out, in]
//! store.init("fc.bias", &[1], Init::Zeros, 8, 1)?;
//! let mut opt = Adam::new(1e-2);
//! let (x, t) = (Tensor::zeros(&gpu, &[32, 8])?, Tensor::zeros(&gpu, &[32, 1])?);
//! for _step in 0..100 {
//!     let g = Graph::new(&gpu);
//!     let x = g.input(&x);
//!     let w = g.param(&store, "fc.weight")?;
//!     let b = g.param(&store, "fc.bias")?;
//!     let y = g.linear(&x, &w, Some(&b), Activation::None)?; // or g.matmul(&x, &w, false, true)
//!     let loss = g.mse(&y, &g.input(&t))?;
//!     let grads = g.backward(&loss)?;
//!     opt.step(&mut store, &grads)?;
//!     let _value = loss.value().to_vec()?[0]; // the one submission of the step
//! }
//! # Ok(()) }
//! ```
//!
//! # Values
//! - [`Graph::input`]: a constant (no gradient). [`Graph::leaf`]: a leaf whose gradient you
//!   want ([`Grads::get`]). [`Graph::param`]: a parameter of a [`crate::nn::ParamStore`] by
//!   name (its gradient under [`Grads::param`]; frozen parameters get none).
//! - A [`Var`] is the value ([`Var::value`], a [`crate::Tensor`]) plus its node. Values from
//!   another graph are rejected.
//!
//! # Ops (gradient rules in the docs of each)
//! - products: [`Graph::matmul`] (all transpose forms, batched), [`Graph::linear`] (fused
//!   bias + activation, PyTorch `[out, in]` weight);
//! - elementwise with row / column / scalar broadcasting: [`Graph::add`], [`Graph::sub`],
//!   [`Graph::mul`], [`Graph::div`]; [`Graph::scale`], [`Graph::add_scalar`], [`Graph::neg`],
//!   [`Graph::affine`]; [`Graph::relu`], [`Graph::gelu`], [`Graph::gelu_tanh`],
//!   [`Graph::sigmoid`], [`Graph::tanh`], [`Graph::exp`], [`Graph::log`], [`Graph::square`],
//!   [`Graph::sqrt`];
//! - reductions: [`Graph::sum`], [`Graph::mean`] (everything), [`Graph::sum_rows`],
//!   [`Graph::mean_rows`] (each row), [`Graph::sum_cols`], [`Graph::mean_cols`] (over rows);
//! - [`Graph::softmax_rows`], [`Graph::log_softmax_rows`];
//! - attention: [`Graph::attention`] (multi-head, with an [`AttnMask`]: padding, causal,
//!   cross), built from [`Graph::split_heads`], [`Graph::merge_heads`],
//!   [`Graph::masked_softmax`] and batched [`Graph::matmul`];
//! - movement: [`Graph::gather_rows`] (backward = deterministic scatter-add),
//!   [`Graph::concat_cols`], [`Graph::slice_cols`], [`Graph::reshape`], [`Graph::transpose`];
//! - normalisation: [`Graph::layernorm`], [`Graph::l2_normalize_rows`],
//!   [`Graph::cosine_logits`];
//! - losses (means, shape `[1]`): [`Graph::mse`], [`Graph::bce_with_logits`],
//!   [`Graph::softmax_cross_entropy`];
//! - gradient routing: [`Graph::detach`] (stop-gradient), [`Graph::straight_through`]
//!   (forward `hard`, gradient to `soft`); [`Graph::dropout`].
//!
//! # An RQ-VAE step, sketched
//! ```text
//! z   = encoder MLP(x)                           // nn::Mlp::forward
//! r   = z;  zq = 0
//! for level l:
//!     idx = argmin_j ‖r − C_l[j]‖²                // kernels on r.value(), no gradient
//!     e   = g.gather_rows(&C_l, &idx)             // gradient flows into the codebook
//!     loss += g.mse(&g.detach(&r), &e) + 0.25 · g.mse(&r, &g.detach(&e))
//!     r   = g.sub(&r, &g.detach(&e)); zq += e
//! zq_st = g.straight_through(&z, &zq)            // forward zq, gradient to z
//! loss += g.mse(&decoder(zq_st), &x)
//! ```
//!
//! Determinism: every kernel used has a fixed reduction order, so the same inputs give
//! bit-identical gradients run after run.

mod graph;
mod ops;

pub use crate::kernels::attention_train::AttnMask;
pub use graph::{Grads, Graph, Var};
pub use ops::NORMALIZE_EPS;
