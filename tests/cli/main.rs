//! The `semid` binary end to end, and hostile input and faults through it.
//!
//! One test binary for the group (each binary links wgpu and the tokenizer crate, so fewer
//! binaries build and link faster); `cargo test --test cli NAME::` runs one file's tests.

#[path = "../common/mod.rs"]
mod common;

mod commands;
mod finetune;
mod hostile;
mod rank;
mod retrieve;
