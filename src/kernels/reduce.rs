//! Launcher for `shaders/reduce.wgsl`.

use crate::gpu::ShaderSource;

/// The reduce shader.
pub const SHADER: ShaderSource = ShaderSource {
    name: "reduce",
    code: include_str!("../../shaders/reduce.wgsl"),
};
