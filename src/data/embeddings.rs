//! The front door for item embeddings: load one matrix per modality from a list of files
//! (`.npy`, `.safetensors`, `.csv`/`.tsv`) and the item ids that go with them, and check that
//! they agree before anything is returned.
//!
//! Ids come from an ids file (one id per line, no header, kept exactly as written — leading
//! and trailing spaces are part of the id, only a line's `\r\n` ending is dropped; trailing
//! blank lines are ignored, a blank line before the last id is an error), or else from
//! the id column of a CSV input. When both exist, or several CSV files carry ids, they must be
//! identical in order. Ids must be unique. Every modality must have one row per id.

use super::csv_embeddings::{read_csv_embeddings, IdColumn};
use super::fileio::{data_err, read_text_field, write_atomic};
use super::npy::read_npy_modality;
use super::safetensors_io::read_safetensors;
use super::types::{ItemEmbeddings, Modality};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A file format for item embeddings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmbeddingFormat {
    /// NumPy `.npy`: one 2-D matrix.
    Npy,
    /// safetensors: one 2-D tensor per modality.
    Safetensors,
    /// CSV or TSV text.
    Csv,
}

impl EmbeddingFormat {
    /// The format of a path, from its extension: `npy`; `safetensors` or `st`; `csv`, `tsv`
    /// or `txt`.
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "npy" => Ok(Self::Npy),
            "safetensors" | "st" => Ok(Self::Safetensors),
            "csv" | "tsv" | "txt" => Ok(Self::Csv),
            _ => Err(Error::Invalid(format!(
                "{}: unknown embedding format `.{ext}`; use .npy, .safetensors or .csv/.tsv",
                path.display()
            ))),
        }
    }
}

/// One embeddings file to load, optionally naming its modality.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmbeddingInput {
    /// The file.
    pub path: PathBuf,
    /// For `.npy` and CSV, the modality name (default: the file stem). For safetensors, the
    /// one tensor to load (default: all of them, each a modality named after its tensor).
    pub name: Option<String>,
    /// For CSV, whether the first column holds ids.
    pub id_column: IdColumn,
}

impl EmbeddingInput {
    /// A file whose modality name comes from the file (its stem, or its tensor names).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        EmbeddingInput {
            path: path.into(),
            name: None,
            id_column: IdColumn::Auto,
        }
    }
    /// A file loaded as the modality `name`.
    pub fn named(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        EmbeddingInput {
            name: Some(name.into()),
            ..Self::new(path)
        }
    }
}

impl FromStr for EmbeddingInput {
    type Err = Error;
    /// Parses `NAME=PATH` or `PATH`.
    fn from_str(s: &str) -> Result<Self> {
        match s.split_once('=') {
            Some((n, p)) if !n.is_empty() && !p.is_empty() => Ok(Self::named(n, p)),
            Some(_) => Err(Error::Invalid(format!(
                "embedding input `{s}`: expected NAME=PATH or PATH"
            ))),
            None if s.is_empty() => Err(Error::Invalid("empty embedding input".into())),
            None => Ok(Self::new(s)),
        }
    }
}

/// Reads an ids file: one id per line (see the module docs). Fails on an empty file, a blank
/// line among the ids, or a duplicate id (naming both lines).
pub fn read_ids(path: &Path) -> Result<Vec<String>> {
    let text = read_text_field(path, "id")?;
    let mut ids: Vec<String> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .collect();
    while ids.last().is_some_and(|l| l.trim().is_empty()) {
        ids.pop();
    }
    if ids.is_empty() {
        return Err(data_err(path, 1, "id", "empty file: no ids"));
    }
    if let Some(i) = ids.iter().position(|l| l.trim().is_empty()) {
        return Err(data_err(path, i + 1, "id", "blank line among the ids"));
    }
    let lines: Vec<usize> = (1..=ids.len()).collect();
    check_unique(path, &ids, &lines)?;
    Ok(ids)
}

/// Writes ids one per line, atomically. Fails if an id is empty or holds a line break.
pub fn write_ids(path: &Path, ids: &[String]) -> Result<()> {
    if let Some(bad) = ids
        .iter()
        .find(|i| i.trim().is_empty() || i.contains(['\n', '\r']))
    {
        return Err(Error::Invalid(format!(
            "id `{bad}` cannot be written one per line"
        )));
    }
    write_atomic(path, |w| {
        for id in ids {
            writeln!(w, "{id}")?;
        }
        Ok(())
    })
}

/// Fails on the first repeated id, naming its line and the line of its first use.
fn check_unique(path: &Path, ids: &[String], lines: &[usize]) -> Result<()> {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        if let Some(first) = seen.insert(id, lines[i]) {
            return Err(data_err(
                path,
                lines[i],
                "id",
                format!("duplicate id `{id}` (first on row {first})"),
            ));
        }
    }
    Ok(())
}

/// Loads item embeddings: every modality of every input, and the ids from `ids` (an ids file)
/// or from a CSV input's id column. Nothing is returned unless all of it is consistent.
pub fn load_item_embeddings(
    inputs: &[EmbeddingInput],
    ids: Option<&Path>,
) -> Result<ItemEmbeddings> {
    if inputs.is_empty() {
        return Err(Error::Invalid("no embedding files given".into()));
    }
    let mut out_ids: Option<(Vec<String>, PathBuf)> = match ids {
        Some(p) => Some((read_ids(p)?, p.to_path_buf())),
        None => None,
    };
    let mut modalities: Vec<(Modality, PathBuf)> = Vec::new();
    for input in inputs {
        let path = input.path.as_path();
        let stem = || {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "embedding".into())
        };
        let name = input.name.clone().unwrap_or_else(stem);
        let loaded = match EmbeddingFormat::from_path(path)? {
            EmbeddingFormat::Npy => vec![read_npy_modality(path, &name)?],
            EmbeddingFormat::Safetensors => {
                let wanted = input.name.clone().map(|n| vec![n]);
                read_safetensors(path, wanted.as_deref())?
            }
            EmbeddingFormat::Csv => {
                let csv = read_csv_embeddings(path, &name, input.id_column)?;
                if let Some(csv_ids) = csv.ids {
                    check_unique(path, &csv_ids, &csv.lines)?;
                    match &out_ids {
                        Some((have, from)) => {
                            if let Some(i) =
                                (0..have.len().min(csv_ids.len())).find(|&i| have[i] != csv_ids[i])
                            {
                                return Err(data_err(
                                    path,
                                    csv.lines[i],
                                    "id",
                                    format!(
                                        "id `{}` differs from `{}` at the same position in {}",
                                        csv_ids[i],
                                        have[i],
                                        from.display()
                                    ),
                                ));
                            }
                        }
                        None => out_ids = Some((csv_ids, path.to_path_buf())),
                    }
                }
                vec![csv.modality]
            }
        };
        for m in loaded {
            let origin = match (&input.name, EmbeddingFormat::from_path(path)?) {
                (Some(_), _) => format!("given for {}", path.display()),
                (None, EmbeddingFormat::Safetensors) => {
                    format!("a tensor name in {}", path.display())
                }
                (None, _) => format!("the file stem of {}", path.display()),
            };
            super::names::check_modality_name(&m.name, &origin)?;
            if let Some((_, other)) = modalities.iter().find(|(x, _)| x.name == m.name) {
                return Err(Error::Invalid(format!(
                    "modality `{}` is given twice ({} and {}); name them NAME=PATH",
                    m.name,
                    other.display(),
                    path.display()
                )));
            }
            if m.rows() == 0 {
                return Err(data_err(path, 0, &m.name, "matrix has no rows"));
            }
            if let Some((first, from)) = modalities.first() {
                if first.rows() != m.rows() {
                    return Err(data_err(
                        path,
                        first.rows().min(m.rows()),
                        &m.name,
                        format!(
                            "modality `{}` has {} rows but `{}` ({}) has {}",
                            m.name,
                            m.rows(),
                            first.name,
                            from.display(),
                            first.rows()
                        ),
                    ));
                }
            }
            modalities.push((m, path.to_path_buf()));
        }
    }
    let Some((ids, ids_path)) = out_ids else {
        return Err(Error::Invalid(
            "no item ids: give an ids file (one id per line) or a CSV with an id column".into(),
        ));
    };
    let rows = modalities[0].0.rows();
    if ids.len() != rows {
        return Err(data_err(
            &ids_path,
            ids.len().min(rows) + 1,
            "id",
            format!(
                "{} ids but the embeddings ({}) have {rows} rows",
                ids.len(),
                modalities[0].1.display()
            ),
        ));
    }
    Ok(ItemEmbeddings {
        ids,
        modalities: modalities.into_iter().map(|(m, _)| m).collect(),
    })
}
