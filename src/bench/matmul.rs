//! `matmul` and `matmul_nt` workloads (BENCH.md). Filled in with the matmul kernel.

use super::Workload;

/// The matmul workloads.
pub fn workloads() -> Vec<Workload> {
    Vec::new()
}
