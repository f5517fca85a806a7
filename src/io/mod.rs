//! Crash-safe file output and checkpoints.

pub mod atomic;
pub mod checkpoint;
pub mod csv;
pub mod run_dir;
pub mod settings_diff;
pub mod st_write;

pub use atomic::write_atomic;
pub use checkpoint::{fingerprint, Checkpoint, CheckpointMeta, NamedTensor};
pub use csv::csv_field;
