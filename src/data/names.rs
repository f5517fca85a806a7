//! Names that become parts of file names: modality names (from `NAME=PATH`, a file stem, a
//! safetensors tensor name, or a checkpoint read back) and the family names derived from them.
//!
//! A modality called `../../x` once made `semid tokenize` write `x.npy` outside `--out`, and
//! one called `joint` silently shared its files with the modal-joint family. So every name
//! that reaches a path is checked where it enters, not where it is used:
//!
//! - 1 to [`MAX_NAME_LEN`] characters from `A–Z a–z 0–9 _ - .`;
//! - it starts with a letter or a digit (so never `.`, `..` or a hidden file, and never an
//!   option-like `-x`);
//! - it is not a reserved family name ([`RESERVED`]), in any letter case (case-insensitive
//!   file systems would make `Joint` and `joint` one file).

use super::fileio::snippet;
use crate::error::{Error, Result};

/// The longest name accepted (file systems allow 255 bytes for a whole file name, and the name
/// gets a prefix and an extension).
pub const MAX_NAME_LEN: usize = 64;

/// Family names semid makes itself: a modality of that name would share their files.
pub const RESERVED: &[&str] = &["joint", "mmq"];

/// What is wrong with `name` as a file-name part, or `None` when it is fine.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("the name is empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Some(format!(
            "the name is {} bytes long; at most {MAX_NAME_LEN} are allowed",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Some(format!(
            "the character {c:?} is not allowed (use letters, digits, `_`, `-` and `.`)"
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Some("the name must start with a letter or a digit".into());
    }
    if let Some(r) = RESERVED.iter().find(|r| r.eq_ignore_ascii_case(name)) {
        return Some(format!(
            "`{r}` is reserved for semid's own family of that name"
        ));
    }
    None
}

/// Checks a modality name; the error says where the name came from (`origin`, e.g.
/// `--embeddings text=t.npy` or `tensor name in x.safetensors`).
pub fn check_modality_name(name: &str, origin: &str) -> Result<()> {
    match name_problem(name) {
        None => Ok(()),
        Some(p) => Err(Error::Invalid(format!(
            "modality name {:?} ({origin}): {p}. Modality names become file names; give a \
             valid one with NAME=PATH",
            snippet(name)
        ))),
    }
}

/// Checks a family name before it is made into a file name under an output folder (a
/// modality name, or one of the [`RESERVED`] families semid makes itself).
pub fn check_family_name(name: &str) -> Result<()> {
    if RESERVED.contains(&name) {
        return Ok(());
    }
    match name_problem(name) {
        None => Ok(()),
        Some(p) => Err(Error::Invalid(format!(
            "family name {:?} cannot be used in a file name: {p}",
            snippet(name)
        ))),
    }
}
