//! A wgpu device without a window, for benchmarks and tests of the renderers (lavapipe where
//! there is no GPU).

/// A device, its queue and a description of the adapter ("NAME (BACKEND)").
pub fn headless_device() -> Result<(wgpu::Device, wgpu::Queue, String), String> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let options = wgpu::RequestAdapterOptions { power_preference: wgpu::PowerPreference::HighPerformance, force_fallback_adapter: false, compatible_surface: None, ..Default::default() };
    let adapter = pollster::block_on(instance.request_adapter(&options)).map_err(|e| format!("no wgpu adapter: {e}"))?;
    let info = adapter.get_info();
    let descriptor = wgpu::DeviceDescriptor { label: Some("cue headless"), required_limits: adapter.limits(), ..Default::default() };
    let (device, queue) = pollster::block_on(adapter.request_device(&descriptor)).map_err(|e| format!("no wgpu device on {}: {e}", info.name))?;
    Ok((device, queue, format!("{} ({:?})", info.name, info.backend)))
}
