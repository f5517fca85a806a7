//! Generative retrieval over semantic IDs (issue 14): the leave-one-out protocol
//! ([`protocol`]), semantic IDs as token sequences ([`sid`]), a SASRec baseline ([`sasrec`]),
//! a TIGER-style encoder–decoder ([`tiger`]), their shared fit and full-catalogue evaluation
//! ([`fit`]), and the prefix trie with GPU-constrained beam search ([`decode`]).

pub mod decode;
pub mod fit;
pub mod protocol;
pub mod run;
pub mod sasrec;
pub mod sid;
pub mod tiger;

pub use fit::{evaluate, fit, FitConfig, FitState, FitSummary, Hooks, Progress, SeqModel};
pub use protocol::{EvalSplit, RetrievalConfig, SeqProtocol};
pub use run::{
    eval_run, load_run, read_metrics, train_run, AnyRetriever, RetrieveData, RetrieveMetricsFile,
    RetrieverConfig, RetrieverKind,
};
pub use sasrec::{SasRec, SasRecConfig};
pub use sid::SidTable;
pub use tiger::{Tiger, TigerConfig, TigerScorer};
