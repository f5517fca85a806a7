//! Output folders that never mix two runs.
//!
//! Reusing `--out` used to overwrite part of an earlier run and keep the rest: a two-modality
//! run followed by a one-modality run left the old audio and joint tokenizers beside the new
//! text one, and `semid eval` then combined them. Now every run folder holds a manifest
//! ([`MANIFEST`]) saying what wrote it and which families it holds, and a run goes into a
//! folder only when that is unambiguous ([`OutMode`]):
//!
//! - a new run needs an empty (or absent) folder;
//! - `--overwrite` first clears a folder that a semid run wrote (it has a manifest); a folder
//!   without one is never emptied, since it may hold anything;
//! - `--resume` continues the run whose manifest is there, and only with the same method and
//!   families ([`RunManifest::check_same_run`]).
//!
//! The folder is also checked for being writable before any work starts, so an unwritable
//! `--out` fails in a second, not at the first checkpoint after an hour.

use super::atomic::write_atomic;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The manifest's file name inside a run folder.
pub const MANIFEST: &str = "semid-run.json";

/// The manifest's format marker.
pub const MANIFEST_FORMAT: &str = "semid-run/1";

/// How a run may use its output folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OutMode {
    /// The folder must be empty or absent.
    #[default]
    Fresh,
    /// Clear a semid run folder first (refused for a folder without a manifest).
    Overwrite,
    /// Continue the run in the folder (a folder that is empty or absent starts fresh).
    Resume,
}

impl OutMode {
    /// The mode of the `--resume` and `--overwrite` flags (both at once is an error).
    pub fn from_flags(resume: bool, overwrite: bool) -> Result<OutMode> {
        match (resume, overwrite) {
            (true, true) => Err(Error::Invalid(
                "--resume and --overwrite exclude each other: one continues the run in the \
                 folder, the other deletes it"
                    .into(),
            )),
            (true, false) => Ok(OutMode::Resume),
            (false, true) => Ok(OutMode::Overwrite),
            (false, false) => Ok(OutMode::Fresh),
        }
    }
}

/// What a run folder holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    /// [`MANIFEST_FORMAT`].
    pub format: String,
    /// The command that wrote it: `tokenize` or `eval`.
    pub kind: String,
    /// The tokenizer method.
    pub method: String,
    /// The families of semantic IDs, in column order.
    pub families: Vec<String>,
    /// semid version that wrote it.
    pub semid_version: String,
    /// Whether the run finished (all outputs written).
    pub complete: bool,
    /// The files the run wrote, relative to the folder (when complete).
    pub files: Vec<String>,
}

impl RunManifest {
    /// A manifest of an unfinished run.
    pub fn new(kind: &str, method: &str, families: Vec<String>) -> RunManifest {
        RunManifest {
            format: MANIFEST_FORMAT.into(),
            kind: kind.into(),
            method: method.into(),
            families,
            semid_version: env!("CARGO_PKG_VERSION").into(),
            complete: false,
            files: Vec::new(),
        }
    }

    /// Reads the manifest of `dir`, or `None` when it has none.
    pub fn read(dir: &Path) -> Result<Option<RunManifest>> {
        let path = dir.join(MANIFEST);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let m: RunManifest = serde_json::from_str(&text).map_err(|e| Error::Data {
            file: path.clone(),
            row: e.line(),
            field: "manifest".into(),
            message: format!("not a valid semid run manifest: {e}"),
        })?;
        if m.format != MANIFEST_FORMAT {
            return Err(Error::Data {
                file: path,
                row: 1,
                field: "format".into(),
                message: format!("format is {:?}, expected {MANIFEST_FORMAT:?}", m.format),
            });
        }
        Ok(Some(m))
    }

    /// Writes the manifest into `dir` (write-then-rename).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Invalid(e.to_string()))?;
        write_atomic(&dir.join(MANIFEST), format!("{text}\n").as_bytes())
    }

    /// Fails unless `self` (the folder's run) and `next` (the run about to resume it) are the
    /// same kind of run with the same method and families; the error names what differs and
    /// both values.
    pub fn check_same_run(&self, dir: &Path, next: &RunManifest) -> Result<()> {
        let differ = |what: &str, have: String, want: String| {
            Error::Invalid(format!(
                "{}: cannot resume: the run there has {what} {have}, this run {want}; use \
             --overwrite to replace it or another --out",
                dir.display()
            ))
        };
        if self.kind != next.kind {
            return Err(differ(
                "kind",
                format!("`{}`", self.kind),
                format!("`{}`", next.kind),
            ));
        }
        if self.method != next.method {
            return Err(differ(
                "method",
                format!("`{}`", self.method),
                format!("`{}`", next.method),
            ));
        }
        if self.families != next.families {
            return Err(differ(
                "families",
                format!("[{}]", self.families.join(", ")),
                format!("[{}]", next.families.join(", ")),
            ));
        }
        Ok(())
    }
}

/// Makes `out` ready for a run in `mode`: it must be a folder (created if absent) that semid
/// can write into; for [`OutMode::Fresh`] it must be empty, for [`OutMode::Overwrite`] a
/// semid run folder (cleared here) or empty; for [`OutMode::Resume`] a semid run folder or
/// empty. Returns the manifest found there, if any (for [`RunManifest::check_same_run`]).
pub fn prepare_out(out: &Path, mode: OutMode) -> Result<Option<RunManifest>> {
    if out.exists() && !out.is_dir() {
        return Err(Error::Invalid(format!(
            "--out {} is a file, not a folder",
            out.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    check_writable(out)?;
    let entries = list(out)?;
    if entries.is_empty() {
        return Ok(None);
    }
    let manifest = RunManifest::read(out)?;
    let example = entries[0]
        .file_name()
        .map_or_else(String::new, |n| format!(", e.g. `{}`", n.to_string_lossy()));
    match (mode, &manifest) {
        (OutMode::Fresh, _) => Err(Error::Invalid(format!(
            "--out {} is not empty ({} entries{example}); use --overwrite to replace the run \
             there, --resume to continue it, or another folder",
            out.display(),
            entries.len()
        ))),
        (OutMode::Overwrite | OutMode::Resume, None) => Err(Error::Invalid(format!(
            "--out {} holds files but no {MANIFEST}{example}: it is not a semid run folder, so \
             semid will neither {} it; choose an empty folder",
            out.display(),
            if mode == OutMode::Overwrite {
                "clear"
            } else {
                "resume"
            }
        ))),
        (OutMode::Overwrite, Some(_)) => {
            for p in entries {
                let r = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
                r.map_err(|e| Error::io(&p, e))?;
            }
            Ok(None)
        }
        (OutMode::Resume, Some(_)) => Ok(manifest),
    }
}

/// The entries of `dir`, sorted.
fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        v.push(e.map_err(|e| Error::io(dir, e))?.path());
    }
    v.sort();
    Ok(v)
}

/// Fails unless a file can be created in `dir`.
fn check_writable(dir: &Path) -> Result<()> {
    let probe = dir.join(format!(".semid-write-check.{}", std::process::id()));
    std::fs::write(&probe, b"")
        .map_err(|e| Error::Invalid(format!("--out {} is not writable ({})", dir.display(), e)))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Whether `a` and `b` name the same folder (after resolving links and `..`); false when
/// either does not exist.
pub fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// The file names (relative to `dir`) of what `dir` holds, sorted, without the manifest and
/// temporary files.
pub fn written_files(dir: &Path) -> Result<Vec<String>> {
    Ok(list(dir)?
        .into_iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| n != MANIFEST && !n.starts_with('.'))
        .collect())
}
