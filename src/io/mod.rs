//! Crash-safe file output and checkpoints.

pub mod atomic;
pub mod checkpoint;

pub use atomic::write_atomic;
pub use checkpoint::{fingerprint, Checkpoint, CheckpointMeta, NamedTensor};
