//! One typed launcher per WGSL kernel family in `shaders/`.
//!
//! | module | shader | what |
//! |---|---|---|
//! | [`elementwise`] | `elementwise.wgsl` | unary, binary with broadcasting, select |
//! | [`matmul`] | `matmul.wgsl` | tiled matmul with transpose flags, batching, fused bias and activation |
//! | [`reduce`] | `reduce.wgsl` | row reductions, arg-reductions, column sums, full sum |
//! | [`norm`] | `norm.wgsl` | row softmax, log-softmax, layernorm |
//! | [`movement`] | `movement.wgsl` | gather, deterministic scatter-add, transpose, concat, slice, fill, copy |
//! | [`sort`] | `sort.wgsl` | the stable radix sort of u32 indices and lower bounds (k-means, scatter-add segments) |
//! | [`codebook`] | `codebook.wgsl` | fused nearest-code search (L2, cosine) and top-k |
//! | [`kmeans`] | `kmeans.wgsl` | k-means updates by deterministic segmented sums |
//! | [`autograd`] | `autograd.wgsl` | backward kernels of the autograd graph, dropout, row L2-normalise |
//! | [`optim`] | `optim.wgsl` | fused optimizer updates, sum of squares for clipping |
//! | [`attention`] | `attention.wgsl` | fused multi-head attention with a padding mask (online softmax) |

/// A shader file's source with [`PRELUDE`] in front, as one `&'static str` made at compile
/// time: `with_prelude!("matmul.wgsl")`. WGSL has no includes, so this is how shaders share
/// one definition of erf, sigmoid, GELU and the linear workgroup id.
macro_rules! with_prelude {
    ($file:literal) => {
        concat!(
            include_str!("../../shaders/prelude.wgsl"),
            "\n",
            include_str!(concat!("../../shaders/", $file))
        )
    };
}

/// Defines a kernel's uniform struct: `#[repr(C)]`, `Pod`, and (under test) its member names
/// and byte offsets, which `uniform_layout` compares with the WGSL struct of the same name as
/// naga lays it out. A member added, dropped, reordered or padded on one side only then fails
/// a test instead of silently shifting every later parameter on the GPU.
macro_rules! uniform {
    (
        $(#[$attr:meta])*
        struct $name:ident {
            $($(#[$fattr:meta])* $field:ident : $ty:ty),* $(,)?
        }
    ) => {
        $(#[$attr])*
        #[repr(C)]
        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        pub(crate) struct $name {
            $($(#[$fattr])* $field: $ty),*
        }

        #[cfg(test)]
        impl $name {
            /// Member names and byte offsets, in declaration order.
            pub(crate) const MEMBERS: &'static [(&'static str, usize)] =
                &[$((stringify!($field), std::mem::offset_of!($name, $field))),*];
        }
    };
}

/// The shared WGSL prelude (`shaders/prelude.wgsl`) that every shader source starts with.
pub const PRELUDE: &str = include_str!("../../shaders/prelude.wgsl");

pub mod attention;
pub mod autograd;
pub mod codebook;
pub mod elementwise;
pub mod kmeans;
pub(crate) mod launch;
pub mod matmul;
pub mod movement;
pub mod norm;
pub mod optim;
pub mod reduce;
pub mod sort;
#[cfg(test)]
mod uniform_layout;

use crate::gpu::ShaderSource;

/// Most loop iterations one shader invocation should run in one dispatch.
///
/// llvmpipe (lavapipe, the CPU Vulkan driver CI runs on) silently stops an invocation's loops
/// after 65,535 iterations in all: every loop of the invocation counts, nested or not, and a
/// loop costs at least one iteration each time it is entered, even when its condition fails at
/// once. The shader runs on with whatever it had, so a longer loop drops work without any error.
/// Launchers whose loops grow with the input (a long reduction, a big cluster, a long
/// segment, many codes or keys) split the work so that no invocation runs more than this many
/// iterations per dispatch, leaving half of the cap for the kernel's small fixed loops; the
/// parts accumulate across dispatches in a fixed order. [`matmul::MAX_K_PER_DISPATCH`] is the
/// same rule for matmul.
pub const LOOP_BUDGET: usize = 1 << 15;

/// Column windows `[c0, c1)` covering a row of `cols` values, for the row kernels whose 256
/// invocations per row each walk a 256th of the window `loops` times in one dispatch: a single
/// window `[0, cols)` while that stays within [`LOOP_BUDGET`] (rows up to 2^23 / `loops`
/// values), else windows of that many columns, which the launchers walk in order, carrying
/// the row's running statistics between dispatches.
pub(crate) fn col_windows(cols: usize, loops: usize) -> Vec<(usize, usize)> {
    let w = 256 * (LOOP_BUDGET / loops.max(1));
    (0..cols.max(1))
        .step_by(w)
        .map(|c0| (c0, (c0 + w).min(cols)))
        .collect()
}

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
        sort::SHADER,
    ]
}
