//! Launcher for `shaders/matmul.wgsl`.

use crate::gpu::ShaderSource;

/// The matmul shader.
pub const SHADER: ShaderSource = ShaderSource {
    name: "matmul",
    code: include_str!("../../shaders/matmul.wgsl"),
};
