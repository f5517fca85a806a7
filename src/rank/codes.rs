//! The semantic IDs of finished tokenizer runs, aligned to an interaction log's items: the
//! per-level code tables a ranker embeds (`DIN + SIDs`, MCCA).
//!
//! A run folder (`semid tokenize` or `semid eval`, see [`crate::pipeline`]) holds
//! `semid-run.json` (the manifest: method, families, whether it finished), `codes.csv`
//! (`item_id`, then `<family>_l<j>` for every level of every family, items in the run's
//! order), `codes_<family>.npy` (`[items, levels]` integers, same order) and `metrics.json`
//! (per family `<method>:<family>`, each level's `codebook_size`). This module reads the ids
//! from `codes.csv`, the codes from the `.npy` files (checked equal to the CSV's columns,
//! so files of two runs mixed by hand are caught), and the codebook sizes from
//! `metrics.json`. A run made with `dedup` has one more level than `metrics.json` lists: the
//! collision suffix, whose codebook is the largest collision group, which is exactly its
//! largest code plus one.
//!
//! Alignment rules ([`CodeTables::align`]):
//! - every item of the log must have codes: items without are an [`Error::MissingCodes`]
//!   naming the first few, since a ranker has no row to embed for them;
//! - codes for items the log does not name are fine and ignored (a run over all 3,883 ML-1M
//!   movies serves a log of any subset of them);
//! - several runs combined must cover the same item set (in any order), else the error names
//!   an item that one has and the other lacks: runs over different catalogues were fitted on
//!   different data, and mixing them silently would compare unlike things;
//! - a family name may come from one run only (tables are looked up by family name);
//! - asking for a family no run has is an error listing the families there are.

use super::records::records;
use crate::data::fileio::{data_err, read_text_field, snippet, snippet_list};
use crate::error::{Error, Result};
use crate::io::run_dir::RunManifest;
use crate::quant::codes::Codes;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// How many missing ids an error quotes.
const QUOTE_IDS: usize = 5;

/// The codes of one finished run, in the run's own item order.
#[derive(Clone, Debug, PartialEq)]
pub struct RunCodes {
    /// The run folder.
    pub run: PathBuf,
    /// The tokenizer method (from the manifest), when the folder has a manifest.
    pub method: Option<String>,
    /// Item ids, the rows of every family's codes.
    pub ids: Vec<String>,
    /// Per family, in the run's column order: its name and codes (`sizes` = `k` per level).
    pub families: Vec<(String, Codes)>,
}

/// Splits a `codes.csv` column name `<family>_l<j>` into the family and the 1-based level.
fn column_family(name: &str) -> Option<(&str, usize)> {
    let (fam, level) = name.rsplit_once("_l")?;
    let level: usize = level.parse().ok()?;
    (!fam.is_empty() && level >= 1).then_some((fam, level))
}

/// The codebook sizes of `family`'s semantic levels in `metrics.json`.
fn metrics_sizes(run: &Path, method: Option<&str>, family: &str) -> Result<Vec<usize>> {
    let path = run.join("metrics.json");
    let text = read_text_field(&path, "text")?;
    let bad = |message: String| data_err(&path, 1, "metrics", message);
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| data_err(&path, e.line(), "json", format!("not JSON: {e}")))?;
    let entries = v
        .as_array()
        .ok_or_else(|| bad("expected an array of per-family metrics".into()))?;
    let entry = entries
        .iter()
        .find(|e| {
            let name = e.get("name").and_then(|n| n.as_str()).unwrap_or("");
            match method {
                Some(m) => name == format!("{m}:{family}"),
                None => name.rsplit_once(':').is_some_and(|(_, f)| f == family),
            }
        })
        .ok_or_else(|| bad(format!("no metrics for family `{family}`")))?;
    let levels = entry
        .get("per_level")
        .and_then(|l| l.as_array())
        .ok_or_else(|| bad(format!("family `{family}` has no per_level list")))?;
    levels
        .iter()
        .enumerate()
        .map(|(l, e)| {
            e.get("codebook_size")
                .and_then(|k| k.as_u64())
                .filter(|&k| k >= 1)
                .map(|k| k as usize)
                .ok_or_else(|| {
                    bad(format!(
                        "family `{family}`, level {}: no codebook_size of at least 1",
                        l + 1
                    ))
                })
        })
        .collect()
}

/// Reads the codes of the finished run in `run` (see the module docs for the files). Errors:
/// a run whose manifest says it did not finish, a `codes.csv` with a bad header, repeated or
/// empty ids, rows of the wrong width, families that differ from the manifest's, a
/// `codes_<family>.npy` of another shape or with other values than the CSV, codes not below
/// their codebook size; each names the file.
pub fn read_run_codes(run: &Path) -> Result<RunCodes> {
    let manifest = RunManifest::read(run)?;
    if let Some(m) = &manifest {
        if !m.complete {
            return Err(Error::Invalid(format!(
                "{}: the run did not finish (its manifest says so); finish it with `semid tokenize --resume` first",
                run.display()
            )));
        }
    }
    let csv_path = run.join("codes.csv");
    if !csv_path.exists() {
        return Err(Error::Invalid(format!(
            "{}: not a tokenizer run (it has no codes.csv); pass the --out folder of `semid tokenize`",
            run.display()
        )));
    }
    let text = read_text_field(&csv_path, "text")?;
    let recs = records(&text).map_err(|e| data_err(&csv_path, e.line, "record", e.message))?;
    let Some((head, rows)) = recs.split_first() else {
        return Err(data_err(&csv_path, 1, "header", "empty file: no header"));
    };
    if head.fields.first().map(String::as_str) != Some("item_id") || head.fields.len() < 2 {
        return Err(data_err(
            &csv_path,
            head.line,
            "header",
            format!(
                "expected `item_id` and one `<family>_l<level>` column per level, got [{}]",
                snippet_list(&head.fields)
            ),
        ));
    }
    // Families in column order, each with its columns' positions; levels must run 1, 2, ….
    let mut fams: Vec<(String, Vec<usize>)> = Vec::new();
    for (c, name) in head.fields.iter().enumerate().skip(1) {
        let Some((fam, level)) = column_family(name) else {
            return Err(data_err(
                &csv_path,
                head.line,
                "header",
                format!("column `{}` is not `<family>_l<level>`", snippet(name)),
            ));
        };
        let continues = fams
            .last()
            .is_some_and(|(f, cols)| f == fam && cols.len() + 1 == level);
        let starts = level == 1 && !fams.iter().any(|(f, _)| f == fam);
        match fams.last_mut() {
            Some((_, cols)) if continues => cols.push(c),
            _ if starts => fams.push((fam.to_string(), vec![c])),
            _ => {
                return Err(data_err(
                    &csv_path,
                    head.line,
                    "header",
                    format!(
                        "column `{}` is out of order: each family's levels are consecutive, from 1",
                        snippet(name)
                    ),
                ))
            }
        }
    }
    if let Some(m) = &manifest {
        let names: Vec<&str> = fams.iter().map(|(f, _)| f.as_str()).collect();
        if m.families != names {
            return Err(data_err(
                &csv_path,
                head.line,
                "header",
                format!(
                    "the columns hold the families [{}] but the manifest lists [{}]",
                    names.join(", "),
                    m.families.join(", ")
                ),
            ));
        }
    }
    let mut ids = Vec::with_capacity(rows.len());
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
    for r in rows {
        if r.fields.len() != head.fields.len() {
            return Err(data_err(
                &csv_path,
                r.line,
                "record",
                format!(
                    "{} fields, the header has {}",
                    r.fields.len(),
                    head.fields.len()
                ),
            ));
        }
        let id = r.fields[0].as_str();
        if id.is_empty() {
            return Err(data_err(&csv_path, r.line, "item_id", "empty id"));
        }
        if let Some(first) = seen.insert(id, r.line) {
            return Err(data_err(
                &csv_path,
                r.line,
                "item_id",
                format!("`{}` repeats (first on line {first})", snippet(id)),
            ));
        }
        ids.push(id.to_string());
    }
    let method = manifest.as_ref().map(|m| m.method.clone());
    let mut families = Vec::with_capacity(fams.len());
    for (fam, cols) in &fams {
        crate::data::names::check_family_name(fam)?;
        let npy_path = run.join(format!("codes_{fam}.npy"));
        let a = crate::data::npy::read_npy_u32(&npy_path)?;
        let levels = cols.len();
        if a.shape != [ids.len(), levels] {
            return Err(data_err(
                &npy_path,
                0,
                "shape",
                format!(
                    "shape {:?}, but codes.csv has {} items x {levels} levels for `{fam}`",
                    a.shape,
                    ids.len()
                ),
            ));
        }
        for (i, r) in rows.iter().enumerate() {
            for (l, &c) in cols.iter().enumerate() {
                if r.fields[c].parse::<u32>().ok() != Some(a.data[i * levels + l]) {
                    return Err(data_err(
                        &csv_path,
                        r.line,
                        head.fields[c].clone(),
                        format!(
                            "`{}` differs from {} ({}): the files are of different runs",
                            snippet(&r.fields[c]),
                            npy_path.display(),
                            a.data[i * levels + l]
                        ),
                    ));
                }
            }
        }
        let mut sizes = metrics_sizes(run, method.as_deref(), fam)?;
        if levels == sizes.len() + 1 {
            // The dedup suffix: its codebook is the largest collision group = largest code + 1.
            let max = a.data.iter().skip(levels - 1).step_by(levels).max();
            sizes.push(max.map_or(1, |&m| m as usize + 1));
        } else if levels != sizes.len() {
            return Err(data_err(
                &run.join("metrics.json"),
                1,
                "metrics",
                format!(
                    "family `{fam}` has {} levels there but {levels} in {}",
                    sizes.len(),
                    npy_path.display()
                ),
            ));
        }
        let codes = Codes::new(levels, sizes, a.data).map_err(|e| match e {
            Error::Invalid(m) => data_err(&npy_path, 0, "codes", m),
            other => other,
        })?;
        families.push((fam.clone(), codes));
    }
    Ok(RunCodes {
        run: run.to_path_buf(),
        method,
        ids,
        families,
    })
}

/// One family's codes aligned to a log: row `i` holds the codes of the log's item `i`.
#[derive(Clone, Debug, PartialEq)]
pub struct FamilyCodes {
    /// The family name (`text`, `audio`, `joint`, `mmq`, …).
    pub family: String,
    /// The run it came from.
    pub run: PathBuf,
    /// Levels per item.
    pub levels: usize,
    /// Codebook size per level: the embedding table of level `l` needs `k[l]` rows.
    pub k: Vec<usize>,
    /// Row-major `[n_items, levels]`.
    pub table: Vec<u32>,
}

impl FamilyCodes {
    /// Items (rows of the table).
    pub fn n_items(&self) -> usize {
        self.table.len().checked_div(self.levels).unwrap_or(0)
    }

    /// The codes of the log's item `i`.
    pub fn item(&self, i: usize) -> &[u32] {
        &self.table[i * self.levels..(i + 1) * self.levels]
    }
}

/// Every family of one or more runs, aligned to one log's items.
#[derive(Clone, Debug, PartialEq)]
pub struct CodeTables {
    /// Items of the log.
    pub n_items: usize,
    /// The families, in run order, then column order.
    pub families: Vec<FamilyCodes>,
}

/// The first ids of `a` that `b` lacks, for an error message.
fn first_missing<'a>(a: &'a [String], b: &HashSet<&str>) -> (usize, String) {
    let missing: Vec<&'a String> = a.iter().filter(|id| !b.contains(id.as_str())).collect();
    let quoted: Vec<String> = missing
        .iter()
        .take(QUOTE_IDS)
        .map(|id| format!("`{}`", snippet(id)))
        .collect();
    (missing.len(), quoted.join(", "))
}

impl CodeTables {
    /// Aligns the codes of `runs` to the items `item_ids` (a log's [`crate::data::Interactions::items`]),
    /// by the rules of the module docs.
    pub fn align(runs: &[RunCodes], item_ids: &[String]) -> Result<CodeTables> {
        let Some(first) = runs.first() else {
            return Err(Error::Invalid(
                "no tokenizer runs to take codes from".into(),
            ));
        };
        let first_set: HashSet<&str> = first.ids.iter().map(String::as_str).collect();
        for r in &runs[1..] {
            let set: HashSet<&str> = r.ids.iter().map(String::as_str).collect();
            let (only_first, ids_a) = first_missing(&first.ids, &set);
            let (only_other, ids_b) = first_missing(&r.ids, &first_set);
            if only_first + only_other > 0 {
                let detail = if only_first > 0 {
                    format!("{only_first} items only in the first (first: {ids_a})")
                } else {
                    format!("{only_other} items only in the second (first: {ids_b})")
                };
                return Err(Error::Invalid(format!(
                    "the runs {} ({} items) and {} ({} items) cover different items: {detail}; combine runs over the same items",
                    first.run.display(),
                    first.ids.len(),
                    r.run.display(),
                    r.ids.len()
                )));
            }
        }
        let mut owner: HashMap<&str, &Path> = HashMap::new();
        for r in runs {
            for (fam, _) in &r.families {
                if let Some(other) = owner.insert(fam.as_str(), &r.run) {
                    return Err(Error::Invalid(format!(
                        "family `{fam}` is in both {} and {}; tables are looked up by family name, so combine runs with different families",
                        other.display(),
                        r.run.display()
                    )));
                }
            }
        }
        let mut families = Vec::new();
        for r in runs {
            let index: HashMap<&str, usize> = r
                .ids
                .iter()
                .enumerate()
                .map(|(i, id)| (id.as_str(), i))
                .collect();
            let rows: Vec<Option<usize>> = item_ids
                .iter()
                .map(|id| index.get(id.as_str()).copied())
                .collect();
            let missing: Vec<&String> = item_ids
                .iter()
                .zip(&rows)
                .filter(|(_, r)| r.is_none())
                .map(|(id, _)| id)
                .collect();
            if !missing.is_empty() {
                return Err(Error::MissingCodes {
                    run: r.run.clone(),
                    missing: missing.len(),
                    items: item_ids.len(),
                    first: missing
                        .iter()
                        .take(QUOTE_IDS)
                        .map(|id| format!("`{}`", snippet(id)))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            for (fam, codes) in &r.families {
                let mut table = Vec::with_capacity(item_ids.len() * codes.levels);
                for row in rows.iter().flatten() {
                    table.extend_from_slice(codes.item(*row));
                }
                families.push(FamilyCodes {
                    family: fam.clone(),
                    run: r.run.clone(),
                    levels: codes.levels,
                    k: codes.sizes.clone(),
                    table,
                });
            }
        }
        Ok(CodeTables {
            n_items: item_ids.len(),
            families,
        })
    }

    /// The family called `name`; an error lists the families there are.
    pub fn family(&self, name: &str) -> Result<&FamilyCodes> {
        self.families
            .iter()
            .find(|f| f.family == name)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "no family `{}` among the runs' families [{}]",
                    snippet(name),
                    self.families
                        .iter()
                        .map(|f| format!("{} ({})", f.family, f.run.display()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }

    /// The families `names`, in that order (see [`CodeTables::family`]).
    pub fn select(&self, names: &[&str]) -> Result<Vec<&FamilyCodes>> {
        names.iter().map(|n| self.family(n)).collect()
    }
}

/// Reads the runs in `runs` ([`read_run_codes`]) and aligns them to `item_ids`
/// ([`CodeTables::align`]).
pub fn load_code_tables<P: AsRef<Path>>(runs: &[P], item_ids: &[String]) -> Result<CodeTables> {
    let read: Vec<RunCodes> = runs
        .iter()
        .map(|r| read_run_codes(r.as_ref()))
        .collect::<Result<_>>()?;
    CodeTables::align(&read, item_ids)
}
