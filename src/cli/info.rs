//! `semid info`: what adapter semid would use, with its limits and features.

use super::Cli;
use semid::gpu::list_adapters;
use semid::Gpu;

/// Arguments of `semid info`.
#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// List every adapter wgpu can see.
    #[arg(long)]
    pub all: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `semid info`.
pub fn run(cli: &Cli, a: &InfoArgs) -> anyhow::Result<()> {
    if a.all {
        for ad in list_adapters()? {
            println!(
                "{} | backend {} | {} | driver {} {}",
                ad.name, ad.backend, ad.device_type, ad.driver, ad.driver_info
            );
        }
        return Ok(());
    }
    let gpu = Gpu::new(&cli.gpu_options())?;
    let s = gpu.adapter();
    if a.json {
        let v = serde_json::json!({
            "adapter": s,
            "limits": gpu.kernel_limits(),
            "features": gpu.features_debug(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("adapter:  {}", s.name);
    println!("backend:  {}", s.backend);
    println!("type:     {}", s.device_type);
    println!("driver:   {} {}", s.driver, s.driver_info);
    println!("features: {}", gpu.features_debug());
    println!("limits:   {}", gpu.limits_debug());
    Ok(())
}
