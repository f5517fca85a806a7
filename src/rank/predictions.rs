//! `predictions.csv`: one row per scored sample, so anyone can recompute the metrics.
//!
//! ```text
//! split,user,item,label,score
//! test,6040,"American President, The (1995)",1,0.8137255
//! ```
//!
//! - `split` is `train`, `valid` or `test`; `user` and `item` are the log's original string
//!   ids, quoted as RFC 4180 requires ([`crate::io::csv_field`]); `label` is `1` or `0`;
//! - `score` is the model's logit (the metrics read it as `sigmoid(score)` for the logloss; the
//!   AUCs only need its order), printed with Rust's shortest round-trip form of an f32, so the
//!   file gives back the very f32 values the metrics were computed from;
//! - written through a temporary file and renamed ([`crate::io::write_atomic`]), so a crash
//!   never leaves half a file under the final name. Non-finite scores are refused on writing
//!   and on reading.

use super::protocol::{RankProtocol, SplitName};
use super::records::records;
use crate::data::fileio::{data_err, read_text_field, snippet};
use crate::data::types::Interactions;
use crate::error::{Error, Result};
use crate::io::csv_field;
use crate::metrics::ranking::RankingMetrics;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// The header of `predictions.csv`.
pub const HEADER: &str = "split,user,item,label,score";

/// One scored sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// The sample's split.
    pub split: SplitName,
    /// The user's original id.
    pub user: String,
    /// The item's original id.
    pub item: String,
    /// Whether the sample is positive.
    pub label: bool,
    /// The model's logit.
    pub score: f32,
}

/// The predictions of `split`'s samples with `scores` (one logit per sample of the split, in
/// the protocol's order), ids taken from `inter`, the log the protocol was built from.
pub fn split_predictions(
    protocol: &RankProtocol,
    inter: &Interactions,
    split: SplitName,
    scores: &[f32],
) -> Result<Vec<Prediction>> {
    let n = protocol.len(split);
    if scores.len() != n {
        return Err(Error::shape(
            "predictions",
            format!(
                "{} scores for the {n} samples of the {split} split",
                scores.len()
            ),
        ));
    }
    if protocol.n_users() != inter.users.len() || protocol.n_items() != inter.items.len() {
        return Err(Error::Invalid(format!(
            "predictions: the protocol has {} users and {} items, the log {} and {}: not the log it was built from",
            protocol.n_users(),
            protocol.n_items(),
            inter.users.len(),
            inter.items.len()
        )));
    }
    Ok((0..n)
        .map(|i| Prediction {
            split,
            user: inter.users[protocol.users(split)[i] as usize].clone(),
            item: inter.items[protocol.items(split)[i] as usize].clone(),
            label: protocol.labels(split)[i] > 0.5,
            score: scores[i],
        })
        .collect())
}

/// Writes `predictions` to `path` (header [`HEADER`], write-then-rename). A non-finite score
/// is an error naming the prediction; nothing is written then.
pub fn write_predictions(path: &Path, predictions: &[Prediction]) -> Result<()> {
    if let Some((i, p)) = predictions
        .iter()
        .enumerate()
        .find(|(_, p)| !p.score.is_finite())
    {
        return Err(Error::Invalid(format!(
            "{}: prediction {i} ({} split, user `{}`, item `{}`) has the score {}; scores must be finite",
            path.display(),
            p.split,
            snippet(&p.user),
            snippet(&p.item),
            p.score
        )));
    }
    crate::io::atomic::write_atomic_with(path, |w| {
        use std::io::Write;
        writeln!(w, "{HEADER}")?;
        for p in predictions {
            // `{}` of an f32 is the shortest text that parses back to the same f32.
            writeln!(
                w,
                "{},{},{},{},{}",
                p.split,
                csv_field(&p.user),
                csv_field(&p.item),
                u8::from(p.label),
                p.score
            )?;
        }
        Ok(())
    })
}

/// Reads a `predictions.csv`. Errors name the file, the 1-based line and the field: a header
/// other than [`HEADER`], a row without 5 fields, an unknown split, an empty id, a label other
/// than `0`/`1`, a score that is not a finite f32.
pub fn read_predictions(path: &Path) -> Result<Vec<Prediction>> {
    let text = read_text_field(path, "text")?;
    let recs = records(&text).map_err(|e| data_err(path, e.line, "record", e.message))?;
    let Some((head, rows)) = recs.split_first() else {
        return Err(data_err(path, 1, "header", "empty file: no header"));
    };
    if head.fields.join(",") != HEADER {
        return Err(data_err(
            path,
            head.line,
            "header",
            format!(
                "the header is `{}`, expected `{HEADER}`",
                snippet(&head.fields.join(","))
            ),
        ));
    }
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let f = &r.fields;
        if f.len() != 5 {
            return Err(data_err(
                path,
                r.line,
                "record",
                format!("{} fields, expected 5 ({HEADER})", f.len()),
            ));
        }
        let split = f[0].parse::<SplitName>().map_err(|_| {
            data_err(
                path,
                r.line,
                "split",
                format!("`{}` is not train, valid or test", snippet(&f[0])),
            )
        })?;
        for (v, name) in [(&f[1], "user"), (&f[2], "item")] {
            if v.is_empty() {
                return Err(data_err(path, r.line, name, "empty id"));
            }
        }
        let label = match f[3].as_str() {
            "1" => true,
            "0" => false,
            other => {
                return Err(data_err(
                    path,
                    r.line,
                    "label",
                    format!("`{}` is not 0 or 1", snippet(other)),
                ))
            }
        };
        let score = match f[4].parse::<f32>() {
            Ok(s) if s.is_finite() => s,
            _ => {
                return Err(data_err(
                    path,
                    r.line,
                    "score",
                    format!("`{}` is not a finite f32", snippet(&f[4])),
                ))
            }
        };
        out.push(Prediction {
            split,
            user: f[1].clone(),
            item: f[2].clone(),
            label,
            score,
        });
    }
    Ok(out)
}

/// Which items count as cold when metrics are recomputed from a predictions file (the file
/// has no cold column: coldness is a property of the training data, not of a prediction).
#[derive(Clone, Debug, PartialEq)]
pub enum ColdItems {
    /// These item ids are cold (e.g. [`ColdItems::from_protocol`]).
    Ids(HashSet<String>),
    /// Recount from the file's own `train` rows: an item with fewer than `min_train` of them
    /// is cold, items without any included. Right only when the file holds every training
    /// sample, as the ranker's `predictions.csv` does; a file without train rows is refused.
    FromTrainRows {
        /// The cold threshold (the protocol's [`super::ProtocolConfig::cold_min_train`]).
        min_train: usize,
    },
}

impl ColdItems {
    /// The cold items of a protocol, by their ids in `inter` (the log it was built from).
    pub fn from_protocol(protocol: &RankProtocol, inter: &Interactions) -> ColdItems {
        ColdItems::Ids(
            protocol
                .cold_items()
                .iter()
                .zip(&inter.items)
                .filter(|(&c, _)| c)
                .map(|(_, id)| id.clone())
                .collect(),
        )
    }
}

/// The metrics of each split present in `predictions`, in the order train, valid, test (a
/// split without rows is left out). GAUC groups by the user id string.
pub fn metrics_of(
    predictions: &[Prediction],
    cold: &ColdItems,
) -> Result<Vec<(SplitName, RankingMetrics)>> {
    let recount;
    let cold_ids = match cold {
        ColdItems::Ids(ids) => ids,
        ColdItems::FromTrainRows { min_train } => {
            let mut count: HashMap<&str, usize> = HashMap::new();
            for p in predictions.iter().filter(|p| p.split == SplitName::Train) {
                *count.entry(p.item.as_str()).or_insert(0) += 1;
            }
            if count.is_empty() {
                return Err(Error::Invalid(
                    "predictions hold no train rows, so cold items cannot be recounted from them; give the cold items instead".into(),
                ));
            }
            recount = predictions
                .iter()
                .filter(|p| count.get(p.item.as_str()).copied().unwrap_or(0) < *min_train)
                .map(|p| p.item.clone())
                .collect::<HashSet<String>>();
            &recount
        }
    };
    let mut out = Vec::new();
    for split in SplitName::ALL {
        let mut user_index: HashMap<&str, u32> = HashMap::new();
        let (mut users, mut labels, mut scores, mut flags) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for p in predictions.iter().filter(|p| p.split == split) {
            let next = user_index.len() as u32;
            users.push(*user_index.entry(p.user.as_str()).or_insert(next));
            labels.push(if p.label { 1.0 } else { 0.0 });
            scores.push(p.score);
            flags.push(cold_ids.contains(&p.item));
        }
        if !labels.is_empty() {
            out.push((
                split,
                RankingMetrics::compute(&users, &labels, &scores, &flags)?,
            ));
        }
    }
    Ok(out)
}

/// Reads the predictions file at `path` and computes the metrics of each split in it (see
/// [`metrics_of`]); errors name the file.
pub fn metrics_per_split(
    path: &Path,
    cold: &ColdItems,
) -> Result<Vec<(SplitName, RankingMetrics)>> {
    let preds = read_predictions(path)?;
    metrics_of(&preds, cold).map_err(|e| match e {
        Error::Invalid(m) => Error::Invalid(format!("{}: {m}", path.display())),
        other => other,
    })
}
