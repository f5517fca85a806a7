//! One typed launcher per WGSL kernel family in `shaders/`.
//!
//! | module | shader | what |
//! |---|---|---|
//! | [`elementwise`] | `elementwise.wgsl` | unary, binary with broadcasting, select |
//! | [`matmul`] | `matmul.wgsl` | tiled matmul with transpose flags, batching, fused bias and activation |
//! | [`reduce`] | `reduce.wgsl` | row reductions, arg-reductions, column sums, full sum |
//! | [`norm`] | `norm.wgsl` | row softmax, log-softmax, layernorm |
//! | [`movement`] | `movement.wgsl` | gather, deterministic scatter-add, transpose, concat, slice, fill, copy |
//! | [`codebook`] | `codebook.wgsl` | fused nearest-code search (L2, cosine) and top-k |
//! | [`kmeans`] | `kmeans.wgsl` | k-means updates by deterministic segmented sums |
//! | [`autograd`] | `autograd.wgsl` | backward kernels of the autograd graph, dropout, row L2-normalise |
//! | [`optim`] | `optim.wgsl` | fused optimizer updates, sum of squares for clipping |
//! | [`attention`] | `attention.wgsl` | fused multi-head attention with a padding mask (online softmax) |

pub mod attention;
pub mod autograd;
pub mod codebook;
pub mod elementwise;
pub mod kmeans;
pub mod matmul;
pub mod movement;
pub mod norm;
pub mod optim;
pub mod reduce;

use crate::gpu::ShaderSource;

/// Every shader of the crate, for validation and warm-up.
pub fn all_shaders() -> Vec<ShaderSource> {
    vec![
        elementwise::SHADER,
        matmul::SHADER,
        reduce::SHADER,
        norm::SHADER,
        movement::SHADER,
        codebook::SHADER,
        kmeans::SHADER,
        autograd::SHADER,
        optim::SHADER,
        attention::SHADER,
    ]
}
