//! The engine's kernels, each against its plain-Rust reference on awkward shapes, the gradient checks, and the WGSL validation.
//!
//! One test binary for the group (each binary links wgpu and the tokenizer crate, so fewer
//! binaries build and link faster); `cargo test --test kernels NAME::` runs one file's tests.

#[path = "../common/mod.rs"]
mod common;

mod attention;
mod attention_train;
mod autograd_gradcheck;
mod codebook;
mod elementwise;
mod gpu_core;
mod kmeans;
mod matmul;
mod movement;
mod norm;
mod reduce;
mod sort;
mod wgsl_validate;
