//! Metrics that judge semantic IDs, on the CPU.
//!
//! | module | what |
//! |---|---|
//! | [`codes`] | code usage per level: utilisation, entropy, the hourglass measures (Gini, std, top-1% share), prefix clusters, full-tuple collisions, cluster-size distributions |
//! | [`drift`] | semantic drift: within-cluster cosine of the ORIGINAL embeddings per level, label purity, reconstruction cosine |
//! | [`report`] | the [`Metrics`] struct, JSON, the printed table, several methods side by side |
//! | [`plot`] | the SVG of rank-size curves of the cluster sizes per level |
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
pub mod plot;
pub mod report;

pub use codes::{Collisions, SizeDist};
pub use drift::Cohesion;
pub use report::{compare_json, compare_table, GroupStats, LevelMetrics, Metrics, MetricsInput};

use crate::error::{Error, Result};
use std::path::Path;

/// Writes `bytes` to a temporary file next to `path`, then renames it over `path`, so a reader
/// sees either the old file or the complete new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| Error::Io { path: p, source }
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("{}: not a file path", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(path)(e)
    })
}
