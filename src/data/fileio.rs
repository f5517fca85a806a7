//! File helpers shared by the loaders: whole-file reads with typed errors, atomic writes
//! (write a temporary file beside the target, then rename), the checks every matrix
//! loader runs (finite values), and [`snippet`], which keeps error messages short when they
//! quote input.

use crate::error::{Error, Result};
use std::path::Path;

/// The most characters of an input token an error message quotes (see [`snippet`]).
pub(crate) const SNIPPET_CHARS: usize = 40;

/// A field name longer than this is shortened by [`data_err`] (to a [`snippet`]).
const FIELD_CHARS: usize = 64;

/// A [`Error::Data`] for `file`, `row`, `field`. A field name longer than 64 characters (a
/// header name taken from the input) is shortened to a [`snippet`].
pub(crate) fn data_err(
    file: &Path,
    row: usize,
    field: impl Into<String>,
    message: impl Into<String>,
) -> Error {
    let field = field.into();
    let field = if field.chars().count() > FIELD_CHARS {
        snippet(&field)
    } else {
        field
    };
    Error::Data {
        file: file.to_path_buf(),
        row,
        field,
        message: message.into(),
    }
}

/// `s` as an error message quotes it: unchanged when it has at most [`SNIPPET_CHARS`] (40)
/// characters, else its first 40 characters and `…`. Every parse error that quotes an input
/// token goes through this, so a 400-digit number or a megabyte-long field cannot flood a
/// message.
pub(crate) fn snippet(s: &str) -> String {
    clip(s, SNIPPET_CHARS)
}

/// `s` cut to its first `max` characters followed by `…` when it is longer.
pub(crate) fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((end, _)) => format!("{}…", &s[..end]),
    }
}

/// A list of names (e.g. a header) for an error message: at most 8 of them, each a
/// [`snippet`], joined by `, `, with `… (N more)` when some are left out.
pub(crate) fn snippet_list<S: AsRef<str>>(names: &[S]) -> String {
    const MAX: usize = 8;
    let mut out: Vec<String> = names
        .iter()
        .take(MAX)
        .map(|n| snippet(n.as_ref()))
        .collect();
    if names.len() > MAX {
        out.push(format!("… ({} more)", names.len() - MAX));
    }
    out.join(", ")
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
/// data error naming the 1-based line of the first bad byte, field `text`.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    read_text_field(path, "text")
}

/// [`read_text`] for a file whose every line is one field (an ids file: `id`), so invalid
/// UTF-8 is reported as that field.
pub(crate) fn read_text_field(path: &Path, field: &str) -> Result<String> {
    match read_text_lossy(path)? {
        (text, None) => Ok(text),
        (_, Some(fault)) => Err(data_err(path, fault.line, field, "not valid UTF-8")),
    }
}

/// Where the first invalid UTF-8 byte of a file read by [`read_text_lossy`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Utf8Fault {
    /// The 1-based line of the bad byte.
    pub(crate) line: usize,
    /// The text of that line before the bad byte (so a table reader can tell which field the
    /// byte is in).
    pub(crate) before: String,
}

/// Reads a whole text file (a leading byte-order mark is dropped). Invalid UTF-8 is not an
/// error here: the text comes back with U+FFFD in place of the bad bytes, and the position of
/// the first one, for a reader that reports it once it knows the field it lies in.
pub(crate) fn read_text_lossy(path: &Path) -> Result<(String, Option<Utf8Fault>)> {
    let bytes = read_bytes(path)?;
    let (mut text, mut fault) = match String::from_utf8(bytes) {
        Ok(text) => (text, None),
        Err(e) => {
            let good = e.utf8_error().valid_up_to();
            let bytes = e.into_bytes();
            let valid = &bytes[..good];
            let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
            let start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let before = String::from_utf8_lossy(&valid[start..]).into_owned();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            (text, Some(Utf8Fault { line, before }))
        }
    };
    const BOM: char = '\u{feff}';
    if text.starts_with(BOM) {
        text.drain(..BOM.len_utf8());
        if let Some(f) = fault.as_mut().filter(|f| f.line == 1) {
            f.before = f.before.trim_start_matches(BOM).to_string();
        }
    }
    Ok((text, fault))
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
