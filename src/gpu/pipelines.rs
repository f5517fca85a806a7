//! Pipeline cache: each (shader, entry point, override constants) compiles once per device.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A WGSL source file, named for caching and error messages.
#[derive(Clone, Copy, Debug)]
pub struct ShaderSource {
    /// Short name, e.g. `matmul`.
    pub name: &'static str,
    /// WGSL text.
    pub code: &'static str,
}

#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<String, Arc<wgpu::ComputePipeline>>>,
}

impl PipelineCache {
    /// Number of compiled pipelines, for tests and `semid info`.
    pub(crate) fn len(&self) -> usize {
        self.pipelines.lock().expect("pipeline lock").len()
    }

    pub(crate) fn get(
        &self,
        device: &wgpu::Device,
        shader: &ShaderSource,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> Arc<wgpu::ComputePipeline> {
        let mut key = format!("{}:{}", shader.name, entry);
        for (k, v) in constants {
            key.push_str(&format!(":{k}={v}"));
        }
        if let Some(p) = self.pipelines.lock().expect("pipeline lock").get(&key) {
            return Arc::clone(p);
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
        let pipeline = Arc::new(
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&key),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            }),
        );
        self.pipelines
            .lock()
            .expect("pipeline lock")
            .insert(key, Arc::clone(&pipeline));
        pipeline
    }
}
