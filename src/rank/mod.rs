//! Ranking on semantic IDs: the evaluation protocol, the predictions file and the code tables
//! a ranker embeds (issue 12). Everything here runs on the CPU; the rankers themselves (DIN,
//! MCCA) build on it.
//!
//! | module | what |
//! |---|---|
//! | [`protocol`] | samples, labels, the global temporal split, histories and cold items of a rated log ([`RankProtocol`]), padded batches for a model |
//! | [`predictions`] | `predictions.csv` (`split,user,item,label,score`): write, read back, recompute the metrics per split |
//! | [`baseline`] | the popularity baseline (an item's smoothed training positive rate) every run reports beside its model |
//! | [`report`] | runs side by side: one row per setting, mean ± std over seeds, the popularity row per data set |
//! | [`codes`] | the semantic IDs of finished tokenizer runs aligned to a log's items: one `[items, levels]` table per family |
//!
//! The metrics themselves (AUC, cold AUC, GAUC, logloss) are in [`crate::metrics::ranking`].
//!
//! ```
//! use semid::data::{Interaction, Interactions};
//! use semid::rank::{ProtocolConfig, RankProtocol, SplitName};
//! let rows = (0..10)
//!     .map(|t| Interaction { user: 0, item: t % 3, label: if t % 2 == 0 { 5.0 } else { 2.0 }, timestamp: t as i64 })
//!     .collect();
//! let log = Interactions { users: vec!["u".into()], items: vec!["a".into(), "b".into(), "c".into()], rows };
//! let p = RankProtocol::build(&log, &ProtocolConfig::default()).unwrap();
//! assert_eq!(p.len(SplitName::Train), 8);
//! let b = p.batch(SplitName::Test, &[0]).unwrap();
//! assert_eq!(b.hist_len, [5]); // the positives at t = 0, 2, 4, 6, 8 (t = 9 is the test event)
//! ```

pub mod attention;
pub mod baseline;
pub mod checkpoint;
pub mod codes;
pub mod config;
pub mod finetune;
pub mod model;
pub mod predictions;
pub mod protocol;
mod records;
pub mod report;
pub mod run;
pub mod train;

pub use attention::{ActivationUnit, HistoryContext};
pub use baseline::{popularity_metrics, BaselineMetrics, Popularity};
pub use codes::{load_code_tables, read_run_codes, CodeTables, FamilyCodes, RunCodes};
pub use config::{Ablation, AttentionWeights, HiddenAct, ModelKind, RankerConfig};
pub use finetune::FinetuneConfig;
pub use model::{BatchInputs, Ranker};
pub use predictions::{
    metrics_of, metrics_per_split, read_predictions, split_predictions, write_predictions,
    ColdItems, Prediction,
};
pub use protocol::{Batch, ProtocolConfig, ProtocolSummary, RankProtocol, SplitName, SplitSummary};
pub use report::{markdown, rank_rows, RankRow, SplitStats, Stat};
pub use run::{eval_run, read_metrics, train_run, RankData, RankMetricsFile};
pub use train::{FitHooks, FitProgress, FitReport, FitState, PlainSteps, StepRule};
