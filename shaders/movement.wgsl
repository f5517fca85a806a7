// Placeholder until the kernel family lands: a valid, empty module.
@group(0) @binding(0) var<uniform> p: vec4<u32>;
@compute @workgroup_size(1)
fn placeholder() { _ = p.x; }
