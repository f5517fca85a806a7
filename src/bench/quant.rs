//! `codebook_search` and `kmeans` workloads (BENCH.md). Filled in with the quantization kernels.

use super::Workload;

/// The quantization workloads.
pub fn workloads() -> Vec<Workload> {
    Vec::new()
}
