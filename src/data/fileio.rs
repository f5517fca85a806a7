//! File helpers shared by the loaders: whole-file reads with typed errors, atomic writes
//! (write a temporary file beside the target, then rename), and the checks every matrix
//! loader runs (finite values).

use crate::error::{Error, Result};
use std::path::Path;

/// A [`Error::Data`] for `file`, `row`, `field`.
pub(crate) fn data_err(
    file: &Path,
    row: usize,
    field: impl Into<String>,
    message: impl Into<String>,
) -> Error {
    Error::Data {
        file: file.to_path_buf(),
        row,
        field: field.into(),
        message: message.into(),
    }
}

/// Turns an I/O error into an [`Error::Io`] naming `path`, for `.map_err(io_err(path))`.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::io(path, source)
}

/// Reads a whole file.
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(io_err(path))
}

/// Reads a whole UTF-8 text file (a leading byte-order mark is dropped). Invalid UTF-8 is a
/// data error naming the 1-based line of the first bad byte.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    read_text_field(path, "text")
}

/// [`read_text`] for a file whose every line is one field (an ids file: `id`), so invalid
/// UTF-8 is reported as that field.
pub(crate) fn read_text_field(path: &Path, field: &str) -> Result<String> {
    let bytes = read_bytes(path)?;
    let mut text = String::from_utf8(bytes).map_err(|e| {
        let good = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..good].iter().filter(|&&b| b == b'\n').count();
        data_err(path, line, field, "not valid UTF-8")
    })?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

/// Fails on the first NaN or infinite value of a row-major `[rows, dim]` matrix; the error
/// names the 0-based row and the field `{prefix}column {c}`.
pub(crate) fn check_finite(file: &Path, prefix: &str, data: &[f32], dim: usize) -> Result<()> {
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        let (row, col) = (i / dim.max(1), i % dim.max(1));
        return Err(data_err(
            file,
            row,
            format!("{prefix}column {col}"),
            format!("value is {} (only finite values are accepted)", data[i]),
        ));
    }
    Ok(())
}

pub use crate::io::atomic::write_atomic_with as write_atomic;
