//! Ranking runs side by side (`semid report` on `semid rank` folders): runs that differ only
//! in their seed are one row, reported as mean ± sample standard deviation over the seeds, with
//! the popularity baseline of each data set as a row of its own.
//!
//! Rows are keyed by everything that changes a result except the seed: the model and ablation,
//! the families, the code runs (by folder name, so the same tokenizer run copied elsewhere
//! stays one row), the remaining ranker settings and the protocol (its settings and counts).
//! Two seeds of the same row that were trained on different data therefore never average.

use super::baseline::BaselineMetrics;
use super::run::RankMetricsFile;
use crate::metrics::ranking::RankingMetrics;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Mean and sample standard deviation (n − 1 in the denominator; 0 for one value) of the
/// values that exist (an AUC of a split with one class is absent and not counted).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stat {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation.
    pub std: f64,
    /// Values averaged.
    pub n: usize,
}

impl Stat {
    /// The statistic of `values` (`None` when none exists).
    pub fn of(values: impl IntoIterator<Item = Option<f64>>) -> Option<Stat> {
        let v: Vec<f64> = values.into_iter().flatten().collect();
        if v.is_empty() {
            return None;
        }
        let n = v.len();
        let mean = v.iter().sum::<f64>() / n as f64;
        let std = if n > 1 {
            (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        Some(Stat { mean, std, n })
    }

    /// `0.6730 ± 0.0050` (the spread omitted for one value).
    pub fn show(&self) -> String {
        if self.n > 1 {
            format!("{:.4} ± {:.4}", self.mean, self.std)
        } else {
            format!("{:.4}", self.mean)
        }
    }
}

/// The four metrics of one split, over a row's runs.
#[derive(Clone, Debug, PartialEq)]
pub struct SplitStats {
    /// AUC.
    pub auc: Option<Stat>,
    /// AUC over cold items' samples.
    pub cold_auc: Option<Stat>,
    /// Event-weighted per-user AUC.
    pub gauc: Option<Stat>,
    /// Mean binary cross-entropy.
    pub logloss: Option<Stat>,
}

impl SplitStats {
    fn of(ms: &[&RankingMetrics]) -> SplitStats {
        SplitStats {
            auc: Stat::of(ms.iter().map(|m| m.auc)),
            cold_auc: Stat::of(ms.iter().map(|m| m.cold_auc)),
            gauc: Stat::of(ms.iter().map(|m| m.gauc)),
            logloss: Stat::of(ms.iter().map(|m| Some(m.logloss))),
        }
    }
}

/// One row of the report: a model (or the popularity baseline) over its seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct RankRow {
    /// `din`, `din-sid [joint] · psrq`, `mcca/wo-msc · psrq`, `popularity`.
    pub name: String,
    /// The seeds of the runs averaged (empty for the baseline, which has none).
    pub seeds: Vec<u64>,
    /// Validation split.
    pub valid: SplitStats,
    /// Test split.
    pub test: SplitStats,
    /// Events of the data set the row was computed on (tells data sets apart).
    pub events: usize,
}

fn row_name(m: &RankMetricsFile) -> String {
    let mut name = m.model.clone();
    if !m.config.families.is_empty() && m.config.model == super::ModelKind::DinSid {
        name = format!("{name} [{}]", m.config.families.join(", "));
    }
    let runs: Vec<String> = m
        .codes
        .iter()
        .map(|p| {
            p.file_name().map_or_else(
                || p.display().to_string(),
                |f| f.to_string_lossy().into_owned(),
            )
        })
        .collect();
    if !runs.is_empty() {
        name = format!("{name} · {}", runs.join(", "));
    }
    name
}

fn row_key(m: &RankMetricsFile) -> String {
    let mut cfg = serde_json::to_value(&m.config).unwrap_or_default();
    if let Some(o) = cfg.as_object_mut() {
        o.remove("seed");
    }
    let protocol = serde_json::to_value(&m.protocol).unwrap_or_default();
    format!("{}|{cfg}|{protocol}", row_name(m))
}

/// Groups runs into rows (in the order each row first appears), then adds one popularity row
/// per data set, after that data set's models.
pub fn rank_rows(runs: &[RankMetricsFile]) -> Vec<RankRow> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: BTreeMap<String, Vec<&RankMetricsFile>> = BTreeMap::new();
    for m in runs {
        let k = row_key(m);
        if !groups.contains_key(&k) {
            order.push(k.clone());
        }
        groups.entry(k).or_default().push(m);
    }
    let mut rows = Vec::new();
    let mut baselines: Vec<(usize, &BaselineMetrics)> = Vec::new();
    for k in &order {
        let g = &groups[k];
        rows.push(RankRow {
            name: row_name(g[0]),
            seeds: g.iter().map(|m| m.config.seed).collect(),
            valid: SplitStats::of(&g.iter().map(|m| &m.valid).collect::<Vec<_>>()),
            test: SplitStats::of(&g.iter().map(|m| &m.test).collect::<Vec<_>>()),
            events: g[0].protocol.events,
        });
        if let Some(p) = &g[0].popularity {
            if !baselines.iter().any(|(_, b)| *b == p) {
                baselines.push((g[0].protocol.events, p));
            }
        }
    }
    for (events, b) in baselines {
        rows.push(RankRow {
            name: "popularity".into(),
            seeds: vec![],
            valid: SplitStats::of(&[&b.valid]),
            test: SplitStats::of(&[&b.test]),
            events,
        });
    }
    rows
}

/// The rows as a Markdown table: test AUC, cold AUC, GAUC and logloss, the validation AUC and
/// cold AUC (what choosing a model or a setting reads), seeds and data-set size.
pub fn markdown(rows: &[RankRow]) -> String {
    let f = |s: &Option<Stat>| s.as_ref().map_or("–".to_string(), Stat::show);
    let mut out = String::from(
        "| model | test AUC | test cold AUC | test GAUC | test logloss | valid AUC | valid cold AUC | seeds | events |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let seeds = if r.seeds.is_empty() {
            "–".to_string()
        } else {
            r.seeds.len().to_string()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name.replace('|', "\\|"),
            f(&r.test.auc),
            f(&r.test.cold_auc),
            f(&r.test.gauc),
            f(&r.test.logloss),
            f(&r.valid.auc),
            f(&r.valid.cold_auc),
            seeds,
            r.events
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_the_mean_and_sample_deviation_of_present_values() {
        let s = Stat::of([Some(1.0), None, Some(3.0)]).unwrap();
        assert_eq!((s.mean, s.n), (2.0, 2));
        assert!((s.std - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(Stat::of([Some(0.5)]).unwrap().show(), "0.5000");
        assert_eq!(s.show(), "2.0000 ± 1.4142");
        assert!(Stat::of([None]).is_none());
    }
}
