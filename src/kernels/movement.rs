//! Launcher for `shaders/movement.wgsl`.

use crate::gpu::ShaderSource;

/// The movement shader.
pub const SHADER: ShaderSource = ShaderSource {
    name: "movement",
    code: include_str!("../../shaders/movement.wgsl"),
};
