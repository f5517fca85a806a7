//! Adapter choice, device creation and the limits semid asks for.

use crate::error::{Error, Result};

/// Which limits the device is created with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LimitsMode {
    /// Everything the adapter offers (what large tensors need). The default for users.
    #[default]
    Adapter,
    /// wgpu's default (WebGPU) limits. Tests use these so that a kernel exceeding them fails in CI.
    Default,
}

/// How to pick and open a device.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Substring of the adapter name to pick (case-insensitive). Falls back to `SEMID_ADAPTER`.
    pub adapter: Option<String>,
    /// Limits to request.
    pub limits: LimitsMode,
    /// Print nothing on fallback to a CPU adapter.
    pub quiet: bool,
}

/// Facts about the opened adapter, for `semid info` and benchmark lines.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AdapterSummary {
    /// Adapter name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// Backend, e.g. `vulkan`.
    pub backend: String,
    /// Device type: discrete, integrated, cpu, virtual, other.
    pub device_type: String,
    /// Driver name.
    pub driver: String,
    /// Driver details.
    pub driver_info: String,
    /// PCI vendor id.
    pub vendor: u32,
    /// Whether this is a CPU (software) adapter.
    pub is_cpu: bool,
}

pub(crate) struct Opened {
    pub adapter: wgpu::Adapter,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub summary: AdapterSummary,
}

fn summarize(info: &wgpu::AdapterInfo) -> AdapterSummary {
    let device_type = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => "discrete",
        wgpu::DeviceType::IntegratedGpu => "integrated",
        wgpu::DeviceType::Cpu => "cpu",
        wgpu::DeviceType::VirtualGpu => "virtual",
        wgpu::DeviceType::Other => "other",
    };
    AdapterSummary {
        name: info.name.clone(),
        backend: info.backend.to_str().to_string(),
        device_type: device_type.to_string(),
        driver: info.driver.clone(),
        driver_info: info.driver_info.clone(),
        vendor: info.vendor,
        is_cpu: info.device_type == wgpu::DeviceType::Cpu,
    }
}

/// Ranks adapters: discrete first, then integrated, virtual, other, CPU last.
fn rank(info: &wgpu::AdapterInfo) -> u8 {
    match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn instance_with(backends: wgpu::Backends) -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends,
        flags: wgpu::InstanceFlags::from_env_or_default(),
        memory_budget_thresholds: Default::default(),
        backend_options: wgpu::BackendOptions::from_env_or_default(),
        display: None,
    })
}

/// Adapters of the backends in `WGPU_BACKEND`, else of the primary backends (Vulkan, Metal,
/// DX12), else of OpenGL as a last resort.
fn adapters() -> Result<(wgpu::Instance, Vec<wgpu::Adapter>)> {
    if let Some(b) = backends_from_env()? {
        let inst = instance_with(b);
        let list = pollster::block_on(inst.enumerate_adapters(b));
        return Ok((inst, list));
    }
    let inst = instance_with(wgpu::Backends::PRIMARY);
    let list = pollster::block_on(inst.enumerate_adapters(wgpu::Backends::PRIMARY));
    if !list.is_empty() {
        return Ok((inst, list));
    }
    let inst = instance_with(wgpu::Backends::GL);
    let list = pollster::block_on(inst.enumerate_adapters(wgpu::Backends::GL));
    Ok((inst, list))
}

/// The backends named by `WGPU_BACKEND` (comma-separated), `None` when it is unset or empty.
/// wgpu's own parser skips an unknown name with a log line nobody sees, so `WGPU_BACKEND=bogus`
/// used to look like "no adapter"; here it is an error naming the value.
fn backends_from_env() -> Result<Option<wgpu::Backends>> {
    let Ok(value) = std::env::var("WGPU_BACKEND") else {
        return Ok(None);
    };
    parse_backends(&value)
}

/// Parses a `WGPU_BACKEND` value (see [`backends_from_env`]).
pub fn parse_backends(value: &str) -> Result<Option<wgpu::Backends>> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    let mut b = wgpu::Backends::empty();
    for name in value.split(',') {
        b |= match name.trim().to_ascii_lowercase().as_str() {
            "vulkan" | "vk" => wgpu::Backends::VULKAN,
            "dx12" | "d3d12" => wgpu::Backends::DX12,
            "metal" | "mtl" => wgpu::Backends::METAL,
            "opengl" | "gles" | "gl" => wgpu::Backends::GL,
            other => {
                let shown: String = other.chars().take(40).collect();
                return Err(Error::Invalid(format!(
                    "WGPU_BACKEND={value:?}: `{shown}` is not a backend; use vulkan, metal, \
                     dx12 or gl (comma-separated), or unset it"
                )));
            }
        };
    }
    Ok(Some(b))
}

/// Lists every adapter semid can use, for `semid info --all`.
pub fn list_adapters() -> Result<Vec<AdapterSummary>> {
    Ok(adapters()?
        .1
        .iter()
        .map(|a| summarize(&a.get_info()))
        .collect())
}

pub(crate) fn open(opts: &GpuOptions) -> Result<Opened> {
    let (inst, mut adapters) = adapters()?;
    let wanted = opts
        .adapter
        .clone()
        .or_else(|| std::env::var("SEMID_ADAPTER").ok())
        .filter(|s| !s.is_empty());
    let adapter = if let Some(name) = &wanted {
        let needle = name.to_lowercase();
        adapters.retain(|a| a.get_info().name.to_lowercase().contains(&needle));
        adapters.sort_by_key(|a| rank(&a.get_info()));
        adapters
            .into_iter()
            .next()
            .ok_or_else(|| Error::NoAdapter {
                detail: format!(" whose name contains `{name}` (see `semid info --all`)"),
            })?
    } else {
        adapters.sort_by_key(|a| rank(&a.get_info()));
        let first = adapters.into_iter().next();
        match first {
            Some(a) => a,
            None => pollster::block_on(inst.request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                force_fallback_adapter: false,
                compatible_surface: None,
                ..Default::default()
            }))
            .map_err(|e| Error::NoAdapter {
                detail: format!(" ({e})"),
            })?,
        }
    };
    let info = adapter.get_info();
    let summary = summarize(&info);
    if summary.is_cpu && wanted.is_none() && !opts.quiet {
        eprintln!(
            "semid: no hardware GPU adapter found; using the CPU adapter `{}` ({})",
            summary.name, summary.backend
        );
    }
    let limits = match opts.limits {
        LimitsMode::Adapter => adapter.limits(),
        LimitsMode::Default => wgpu::Limits::default(),
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("semid"),
        required_features: wgpu::Features::empty(),
        required_limits: limits,
        experimental_features: wgpu::ExperimentalFeatures::disabled(),
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    }))
    .map_err(|e| Error::Device {
        adapter: info.name.clone(),
        message: e.to_string(),
    })?;
    Ok(Opened {
        adapter,
        device,
        queue,
        summary,
    })
}
