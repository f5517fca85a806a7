//! Launcher for `shaders/norm.wgsl`.

use crate::gpu::ShaderSource;

/// The norm shader.
pub const SHADER: ShaderSource = ShaderSource {
    name: "norm",
    code: include_str!("../../shaders/norm.wgsl"),
};
