//! Pipeline cache: each (shader, entry point, override constants) compiles once per device.
//!
//! A training step looks its pipelines up hundreds of times, so a lookup allocates nothing: the
//! key is hashed from its borrowed parts and compared field by field on a hit; only a miss
//! (once per pipeline per device) copies the key. Each pipeline keeps its bind-group layout, so
//! a dispatch does not ask wgpu for it again.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

/// A WGSL source file, named for caching and error messages.
#[derive(Clone, Copy, Debug)]
pub struct ShaderSource {
    /// Short name, e.g. `matmul`.
    pub name: &'static str,
    /// WGSL text.
    pub code: &'static str,
}

/// A compiled pipeline and the layout of its bind group 0.
pub(crate) struct Compiled {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
    shader: &'static str,
    entry: Box<str>,
    constants: Box<[(Box<str>, u64)]>,
}

impl Compiled {
    fn is(&self, shader: &ShaderSource, entry: &str, constants: &[(&str, f64)]) -> bool {
        self.shader == shader.name
            && &*self.entry == entry
            && self.constants.len() == constants.len()
            && self
                .constants
                .iter()
                .zip(constants)
                .all(|((k, v), (k2, v2))| &**k == *k2 && *v == v2.to_bits())
    }
}

/// The hash of a key, from its borrowed parts (constants by their bit patterns, so `-0.0` and
/// `0.0` are different pipelines, as they are to the shader).
fn key_hash(shader: &ShaderSource, entry: &str, constants: &[(&str, f64)]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    shader.name.hash(&mut h);
    entry.hash(&mut h);
    for (k, v) in constants {
        k.hash(&mut h);
        v.to_bits().hash(&mut h);
    }
    h.finish()
}

#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    /// Pipelines by key hash; a bucket holds more than one only on a hash collision.
    pipelines: Mutex<HashMap<u64, Vec<Arc<Compiled>>>>,
}

impl PipelineCache {
    /// Number of compiled pipelines, for tests and `semid info`.
    pub(crate) fn len(&self) -> usize {
        self.pipelines
            .lock()
            .expect("pipeline lock")
            .values()
            .map(Vec::len)
            .sum()
    }

    pub(crate) fn get(
        &self,
        device: &wgpu::Device,
        shader: &ShaderSource,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> Arc<Compiled> {
        let hash = key_hash(shader, entry, constants);
        if let Some(bucket) = self.pipelines.lock().expect("pipeline lock").get(&hash) {
            if let Some(c) = bucket.iter().find(|c| c.is(shader, entry, constants)) {
                return Arc::clone(c);
            }
        }
        let module = {
            let mut modules = self.modules.lock().expect("module lock");
            modules
                .entry(shader.name)
                .or_insert_with(|| {
                    device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(shader.name),
                        source: wgpu::ShaderSource::Wgsl(shader.code.into()),
                    })
                })
                .clone()
        };
        let label = format!("{}::{}", shader.name, entry);
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        let compiled = Arc::new(Compiled {
            layout: pipeline.get_bind_group_layout(0),
            pipeline,
            shader: shader.name,
            entry: entry.into(),
            constants: constants
                .iter()
                .map(|(k, v)| (Box::<str>::from(*k), v.to_bits()))
                .collect(),
        });
        let mut pipelines = self.pipelines.lock().expect("pipeline lock");
        let bucket = pipelines.entry(hash).or_default();
        // Another thread may have compiled the same pipeline meanwhile: keep the first.
        if let Some(c) = bucket.iter().find(|c| c.is(shader, entry, constants)) {
            return Arc::clone(c);
        }
        bucket.push(Arc::clone(&compiled));
        compiled
    }
}
