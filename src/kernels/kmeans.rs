//! Launcher for `shaders/kmeans.wgsl`.

use crate::gpu::ShaderSource;

/// The kmeans shader.
pub const SHADER: ShaderSource = ShaderSource {
    name: "kmeans",
    code: include_str!("../../shaders/kmeans.wgsl"),
};
