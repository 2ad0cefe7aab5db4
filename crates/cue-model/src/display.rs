//! The display's wgpu device, shared with the model: where the window draws on a GPU that
//! burn can compute on, the model runs on that same device instead of a second one. One
//! context, one set of allocations on the card, and the model's weights go up once, beside the
//! volumes the slice renderer has uploaded (burn 0.22's `Device::wgpu_options().setup(..)`).
//!
//! The app asks for its device with [`compute_device_descriptor`], what burn's kernels need;
//! [`share`] takes a device only if it was made so, on an API burn computes with.

use std::sync::OnceLock;

use burn::tensor::Device;
use burn::tensor::wgpu::WgpuSetup;

use crate::device::ChosenDevice;

/// What burn's wgpu kernels need of a device, as cubecl asks for its own: every feature the
/// adapter has but mappable primary buffers (slow where emulated) and wgpu's experimental ones
/// (cubecl enables those unsafely; asking for them without that fails the window's device on
/// GPUs with ray queries, and burn's kernels then do without), and all of its limits. The
/// display's device is made with this, so the model can run on it.
pub fn compute_device_descriptor(adapter: &wgpu::Adapter) -> wgpu::DeviceDescriptor<'static> {
    wgpu::DeviceDescriptor {
        label: Some("cue display + model"),
        required_features: adapter
            .features()
            .difference(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS)
            .difference(wgpu::Features::all_experimental_mask()),
        required_limits: adapter.limits(),
        // The renderer's few textures gain nothing from big blocks; burn batches its own.
        memory_hints: wgpu::MemoryHints::MemoryUsage,
        ..Default::default()
    }
}

/// Why a display device cannot carry the model, or None when it can.
pub fn unfit_for_compute(adapter: &wgpu::Adapter, device: &wgpu::Device) -> Option<String> {
    let info = adapter.get_info();
    if !matches!(info.backend, wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12) {
        return Some(format!("the display draws through {:?}, which burn does not compute on", info.backend));
    }
    let wanted = compute_device_descriptor(adapter);
    let missing = wanted.required_features.difference(device.features());
    if !missing.is_empty() {
        return Some(format!("the display device lacks features burn uses ({missing:?})"));
    }
    let (have, need) = (device.limits(), wanted.required_limits);
    let short = [
        ("storage buffers per stage", have.max_storage_buffers_per_shader_stage < need.max_storage_buffers_per_shader_stage),
        ("storage buffer size", have.max_storage_buffer_binding_size < need.max_storage_buffer_binding_size),
        ("buffer size", have.max_buffer_size < need.max_buffer_size),
        ("workgroup memory", have.max_compute_workgroup_storage_size < need.max_compute_workgroup_storage_size),
        ("invocations per workgroup", have.max_compute_invocations_per_workgroup < need.max_compute_invocations_per_workgroup),
    ];
    let short: Vec<&str> = short.iter().filter(|(_, below)| *below).map(|(name, _)| *name).collect();
    (!short.is_empty()).then(|| format!("the display device was made with lower limits than the adapter's ({})", short.join(", ")))
}

/// The display's device for burn, and whether its adapter is a software one.
static SHARED: OnceLock<(ChosenDevice, bool)> = OnceLock::new();

/// Registers the display's device for the model (once per process; later calls return the
/// first one's description). Returns the description `--device gpu` will then report, or why
/// the device cannot be shared, in which case the model keeps a device of its own.
pub fn share(instance: &wgpu::Instance, adapter: &wgpu::Adapter, device: &wgpu::Device, queue: &wgpu::Queue) -> Result<String, String> {
    if let Some((shared, _)) = SHARED.get() {
        return Ok(shared.description.clone());
    }
    if let Some(reason) = unfit_for_compute(adapter, device) {
        return Err(reason);
    }
    let info = adapter.get_info();
    let setup = WgpuSetup { instance: instance.clone(), adapter: adapter.clone(), device: device.clone(), queue: queue.clone(), backend: info.backend };
    let burn_device = Device::wgpu_options().setup(setup).init().map_err(|e| format!("burn cannot run on the display device: {e}"))?;
    let chosen = ChosenDevice {
        device: burn_device,
        description: format!("{} ({:?}, wgpu, shared with the display)", info.name, info.backend),
        is_gpu: true,
    };
    tracing::info!(device = %chosen.description, "the model will run on the display's device");
    let software = info.device_type == wgpu::DeviceType::Cpu;
    Ok(SHARED.get_or_init(|| (chosen, software)).0.description.clone())
}

/// The display's device, if [`share`] registered one, and whether its adapter is software.
pub(crate) fn shared() -> Option<(&'static ChosenDevice, bool)> {
    SHARED.get().map(|(chosen, software)| (chosen, *software))
}
