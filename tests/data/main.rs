//! Data in and out: formats, MovieLens, splits, the synthetic set, and the readers under mutation.
//!
//! One test binary for the group (each binary links wgpu and the tokenizer crate, so fewer
//! binaries build and link faster); `cargo test --test data NAME::` runs one file's tests.

#[path = "../common/mod.rs"]
mod common;

mod formats;
mod fuzz_readers;
mod movielens;
mod rank_protocol;
mod splits;
mod synth;
