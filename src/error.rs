//! Typed errors of the semid library.

use std::path::PathBuf;

/// Every error the library returns. The binary wraps these in `anyhow`. New variants may be
/// added, so a `match` needs a catch-all arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No GPU or CPU adapter could be found.
    #[error("no usable GPU adapter found{detail}. On Debian or Ubuntu, `apt-get install mesa-vulkan-drivers libvulkan1` gives a CPU Vulkan adapter (lavapipe); elsewhere install your GPU vendor's Vulkan, Metal or DX12 driver")]
    NoAdapter {
        /// Extra context, such as the adapter name that was asked for.
        detail: String,
    },
    /// The device could not be created with the requested limits or features.
    #[error("could not create a device on adapter `{adapter}`: {message}")]
    Device {
        /// Adapter name.
        adapter: String,
        /// The driver's message.
        message: String,
    },
    /// A tensor or binding exceeds a device limit.
    #[error("{what} needs {bytes} bytes, over the device limit `{limit_name}` of {limit} bytes; use a smaller batch, or an adapter with larger limits")]
    TooLarge {
        /// What was being allocated or bound.
        what: String,
        /// Requested size in bytes.
        bytes: u64,
        /// Name of the wgpu limit.
        limit_name: &'static str,
        /// The limit's value in bytes.
        limit: u64,
    },
    /// Shapes of the operands do not fit the operation.
    #[error("shape error in {op}: {message}")]
    Shape {
        /// The operation.
        op: &'static str,
        /// What does not fit.
        message: String,
    },
    /// Two operands of one dispatch share storage: wgpu refuses a buffer bound read-only and
    /// read-write at once (wgpu#8470), and an in-place kernel would read what it already wrote.
    #[error("{op}: {message}")]
    Aliasing {
        /// The operation.
        op: &'static str,
        /// Which operands alias.
        message: String,
    },
    /// An invalid argument value.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// The GPU reported a validation or out-of-memory error.
    #[error("GPU error: {0}")]
    Gpu(String),
    /// Bad input data, with the location of the problem.
    #[error("{file}: row {row}, field `{field}`: {message}")]
    Data {
        /// File that holds the bad value.
        file: PathBuf,
        /// Row (1-based for text files, 0-based item index for matrices).
        row: usize,
        /// Field or column name.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A checkpoint is corrupt, of another method, or for other data.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Training produced a non-finite loss: the fit stops there and keeps the last good
    /// checkpoint.
    #[error("{method} training diverged at step {step} (epoch {epoch} of this fit): the loss is {value}. Lower the learning rate (or check the inputs' scale); the last checkpoint written before this step is kept")]
    Diverged {
        /// The method, e.g. `rqvae`.
        method: String,
        /// 1-based epoch.
        epoch: usize,
        /// 1-based step of this fit.
        step: usize,
        /// The loss value (NaN or infinite).
        value: f32,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A real data set or model could not be downloaded or extracted (no pip, no network, a
    /// hash mismatch). Callers can catch it and fall back to synthetic data.
    #[error("could not fetch {what}: {message}")]
    Fetch {
        /// What was being fetched, e.g. `ml-1m`.
        what: String,
        /// What went wrong and what to do about it.
        message: String,
    },
    /// A split of the ranking protocol holds no events: no model can be trained or judged
    /// on it. The counts say how many events there were and how the fractions divided them.
    #[error("the {split} split of the ranking protocol is empty: {events} events in all give train {train}, validation {valid}, test {test} (validation and test are the floor of events × their fraction, train the rest); use more events or larger fractions")]
    EmptySplit {
        /// `train`, `validation` or `test`.
        split: &'static str,
        /// Events in the log.
        events: usize,
        /// Training events.
        train: usize,
        /// Validation events.
        valid: usize,
        /// Test events.
        test: usize,
    },
    /// Items of an interaction log have no semantic IDs in a tokenizer run, so a ranker
    /// could not embed them.
    #[error("{run}: {missing} of the log's {items} items have no codes in this run (first: {first}); tokenize or encode those items with the run (`semid eval`) first")]
    MissingCodes {
        /// The run folder.
        run: PathBuf,
        /// How many of the log's items have no codes.
        missing: usize,
        /// Items in the log.
        items: usize,
        /// The first few missing ids, quoted and comma-separated.
        first: String,
    },
}

/// Result type of the semid library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for a [`Error::Shape`] error.
    pub fn shape(op: &'static str, message: impl Into<String>) -> Self {
        Error::Shape {
            op,
            message: message.into(),
        }
    }
}

impl Error {
    /// Shorthand for an [`Error::Aliasing`] error.
    pub fn aliasing(op: &'static str, message: impl Into<String>) -> Self {
        Error::Aliasing {
            op,
            message: message.into(),
        }
    }

    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
