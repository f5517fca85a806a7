//! Launcher for `shaders/codebook.wgsl`.

use crate::gpu::ShaderSource;

/// The codebook shader.
pub const SHADER: ShaderSource = ShaderSource {
    name: "codebook",
    code: include_str!("../../shaders/codebook.wgsl"),
};
