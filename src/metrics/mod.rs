//! Metrics that judge semantic IDs, on the CPU.
//!
//! | module | what |
//! |---|---|
//! | [`codes`] | code usage per level: utilisation, entropy, the hourglass measures (Gini, std, top-1% share), prefix clusters, full-tuple collisions, cluster-size distributions |
//! | [`drift`] | semantic drift: within-cluster cosine of the ORIGINAL embeddings per level, label purity, reconstruction cosine |
//! | [`report`] | the [`Metrics`] struct, JSON, the printed table, several methods side by side |
//! | [`plot`] | the SVG of rank-size curves of the cluster sizes per level |
//! | [`retrieval`] | judging a retriever: Recall@K and NDCG@K with one held-out item per user, cold users apart |
//! | [`ranking`] | judging a ranker instead of the IDs: exact AUC (ties averaged), cold AUC, GAUC, logloss, [`RankingMetrics`] |
//!
//! Every level is grouped two ways: by the PREFIX tuple (codes `1..=l`: the tree a generative
//! recommender decodes), and by the level-`l` code alone (what the PSRQ paper's Fig. 1 shows,
//! where plain RQ scatters genres at level 2). The hourglass measures of Kuai et al. 2024 are
//! computed at every level; [`Metrics::middle_level`] names the level where they matter most.
//!
//! ```
//! use semid::metrics::{Metrics, MetricsInput};
//! let codes = [0u32, 1, 0, 1, 1, 0]; // 3 items × 2 levels
//! let m = Metrics::compute("toy", &MetricsInput::new(&codes, &[2, 2])).unwrap();
//! assert_eq!(m.collisions.collided_items, 2);
//! println!("{}", m.table());
//! ```

pub mod codes;
pub mod drift;
#[cfg(feature = "plots")]
pub mod plot;
pub mod ranking;
pub mod report;
pub mod retrieval;

pub use codes::{Collisions, SizeDist};
pub use drift::Cohesion;
pub use ranking::RankingMetrics;
pub use report::{compare_json, compare_table, GroupStats, LevelMetrics, Metrics, MetricsInput};

pub use crate::io::write_atomic;
