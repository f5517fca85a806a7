//! File helpers shared by the loaders: whole-file reads with typed errors, atomic writes
//! (write a temporary file beside the target, then rename), and the checks every matrix
//! loader runs (finite values).

use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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

/// An [`Error::Io`] for `path`.
pub(crate) fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a whole file.
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| io_err(path, e))
}

/// Reads a whole UTF-8 text file (a leading byte-order mark is dropped). Invalid UTF-8 is a
/// data error naming the 1-based line of the first bad byte.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let bytes = read_bytes(path)?;
    let mut text = String::from_utf8(bytes).map_err(|e| {
        let good = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..good].iter().filter(|&&b| b == b'\n').count();
        data_err(path, line, "text", "not valid UTF-8")
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

fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// Writes `path` atomically: `write` fills a temporary file in the same folder, which is
/// flushed, synced and then renamed over `path`. On any failure the temporary file is removed
/// and `path` is left as it was, so a reader never sees a half-written output.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let file = File::create(&tmp)?;
        let mut w = BufWriter::new(file);
        write(&mut w)?;
        w.flush()?;
        w.get_ref().sync_all()?;
        drop(w);
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err(path, e)
    })
}
