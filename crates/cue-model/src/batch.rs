//! How many slices go through the model at once.
//!
//! A whole view is mapped in batches as large as the device's free memory holds, so a GPU maps
//! 155 slices in a few launches instead of forty. Two limits sit on top of memory: on the CPU
//! a batch beyond [`CPU_MAX_SLICES`] is no faster per slice (flex runs one slice's matmuls on
//! every core already) and only makes progress and cancelling coarser; and where a person waits
//! (the app's worker, where a click queues behind the running batch) the batch is also kept
//! under a time target, learnt from the batches before it.

use burn::tensor::Device;

use crate::clip::config::VisionConfig;

/// The most slices in one batch on any device (a view's slices and a GPU's launch sizes both
/// stop gaining well before this).
pub const MAX_SLICES: usize = 64;
/// The most slices in one batch on the CPU.
pub const CPU_MAX_SLICES: usize = 8;
/// The share of the free memory a batch may take: the rest is the allocator's slack, the UI's
/// textures on the same GPU, and other programs.
const MEMORY_SHARE: f64 = 0.5;
/// Temporaries that live beside the estimate's tensors (unfused elementwise results,
/// allocator rounding): the estimate is multiplied by this.
const SLACK: f64 = 2.0;

/// What a device says about its memory.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceMemory {
    /// Bytes the device may hold in all (a GPU's largest device-local heap; on the CPU the
    /// memory available now), or `None` where the device reports no figure (a remote one).
    pub capacity_bytes: Option<u64>,
    /// Bytes the model's allocator holds now (weights, cached buffers).
    pub in_use_bytes: u64,
    /// Where the figures came from, for the log and the bench report.
    pub source: &'static str,
    /// Whether the device is the CPU (flex).
    pub is_cpu: bool,
}

impl DeviceMemory {
    /// Free bytes, when the device reports its capacity.
    pub fn free_bytes(&self) -> Option<u64> {
        self.capacity_bytes.map(|c| c.saturating_sub(self.in_use_bytes))
    }
}

/// Reads `device`'s memory: cubecl's figure for a GPU where it has one (CUDA's total memory),
/// else the Vulkan adapter's largest device-local heap; `/proc/meminfo`'s `MemAvailable` for
/// the CPU; nothing for a remote device.
pub fn device_memory(device: &Device) -> DeviceMemory {
    use burn::backend::DispatchDevice;
    let in_use_bytes = device.memory_pool_usage().map_or(0, |u| u.bytes_in_use);
    match device.as_dispatch() {
        DispatchDevice::Cube(cube) => match cube.client().properties().memory.max_memory() {
            Some(capacity) => DeviceMemory { capacity_bytes: Some(capacity), in_use_bytes, source: "the GPU runtime's memory capacity", is_cpu: false },
            None => DeviceMemory {
                capacity_bytes: crate::device::vulkan_heap_bytes(),
                in_use_bytes,
                source: "the Vulkan adapter's largest device-local heap",
                is_cpu: false,
            },
        },
        DispatchDevice::Flex(_) => DeviceMemory {
            capacity_bytes: cue_volume::process::mem_available_bytes(),
            // MemAvailable already leaves out what this process holds.
            in_use_bytes: 0,
            source: "MemAvailable (/proc/meminfo)",
            is_cpu: true,
        },
        #[allow(unreachable_patterns)]
        _ => DeviceMemory { capacity_bytes: None, in_use_bytes, source: "no memory figure (remote device)", is_cpu: false },
    }
}

/// Bytes one slice needs while it goes through the vision tower and the map head, float32:
/// the largest layer's live tensors (residual stream, its LayerNorm, q, k, v, attention context,
/// `heads` scores and their softmax, the MLP's hidden layer and its activation), the kept
/// features of `map_layers` layers, and the maps at the input size.
pub fn slice_bytes(vision: &VisionConfig, map_layers: usize) -> u64 {
    let side = vision.image_size / vision.patch_size.max(1);
    let tokens = (side * side + 1) as f64;
    let width = vision.hidden_size as f64;
    let hidden = vision.intermediate_size as f64;
    let heads = vision.num_attention_heads as f64;
    let layer = 6.0 * tokens * width + 2.0 * heads * tokens * tokens + 2.0 * tokens * hidden;
    let kept = map_layers as f64 * tokens * (width + vision.projection_dim as f64);
    let image = (vision.image_size * vision.image_size) as f64;
    let maps = map_layers as f64 * image * 3.0 + 3.0 * image;
    ((layer + kept + maps) * 4.0 * SLACK) as u64
}

/// Slices per batch that `memory`'s free bytes hold at `per_slice_bytes` each, within the
/// device's cap; at least 1. A device with no figure gets a small batch (4): it cannot be sized.
pub fn slices_for_memory(memory: &DeviceMemory, per_slice_bytes: u64) -> usize {
    let cap = if memory.is_cpu { CPU_MAX_SLICES } else { MAX_SLICES };
    match memory.free_bytes() {
        Some(free) => {
            let fit = (free as f64 * MEMORY_SHARE / per_slice_bytes.max(1) as f64).floor() as usize;
            fit.clamp(1, cap)
        }
        None => 4.min(cap),
    }
}

/// Batch sizes for a run of batches: the memory limit, and, with a time target, no more
/// slices than the last batches' time per slice fits in it.
#[derive(Clone, Debug)]
pub struct BatchSizer {
    memory_limit: usize,
    target_s: Option<f64>,
    per_slice_s: Option<f64>,
}

impl BatchSizer {
    /// Batches of at most `memory_limit` slices, each under `target_s` seconds where given.
    pub fn new(memory_limit: usize, target_s: Option<f64>) -> Self {
        Self { memory_limit: memory_limit.max(1), target_s, per_slice_s: None }
    }

    /// For the model on `device`, mapping `map_layers` layers.
    pub fn for_device(device: &Device, vision: &VisionConfig, map_layers: usize, target_s: Option<f64>) -> Self {
        let memory = device_memory(device);
        let per_slice = slice_bytes(vision, map_layers);
        let limit = slices_for_memory(&memory, per_slice);
        tracing::info!(
            capacity_bytes = ?memory.capacity_bytes,
            in_use_bytes = memory.in_use_bytes,
            per_slice_bytes = per_slice,
            slices = limit,
            source = memory.source,
            "batch size from device memory"
        );
        Self::new(limit, target_s)
    }

    /// The memory limit.
    pub fn memory_limit(&self) -> usize {
        self.memory_limit
    }

    /// The next batch's size. Before any timing, a time-bound run starts with at most 4
    /// slices, so the first answer is quick on a slow device.
    pub fn next(&self) -> usize {
        match (self.target_s, self.per_slice_s) {
            (None, _) => self.memory_limit,
            (Some(_), None) => self.memory_limit.min(4),
            (Some(target), Some(per_slice)) => {
                let fit = (target / per_slice.max(1e-9)).floor() as usize;
                self.memory_limit.min(fit.max(1))
            }
        }
    }

    /// Learns from a finished batch of `slices` that took `seconds`.
    pub fn observe(&mut self, slices: usize, seconds: f64) {
        if slices == 0 {
            return;
        }
        let sample = seconds / slices as f64;
        // Smoothed, so one slow batch (a shader compiled on first use) does not halve the next.
        self.per_slice_s = Some(match self.per_slice_s {
            Some(old) => 0.5 * old + 0.5 * sample,
            None => sample,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(capacity: Option<u64>, in_use: u64, is_cpu: bool) -> DeviceMemory {
        DeviceMemory { capacity_bytes: capacity, in_use_bytes: in_use, source: "test", is_cpu }
    }

    #[test]
    fn a_vit_l14_slice_needs_tens_of_megabytes() {
        let vision = crate::clip::config::ClipConfig::preset("ViT-L/14").expect("preset").vision;
        let bytes = slice_bytes(&vision, 4);
        // 257 tokens x 1024: layer tensors 23 MB, kept features 5 MB, maps 2.4 MB, doubled.
        assert!((50_000_000..80_000_000).contains(&bytes), "{bytes}");
    }

    #[test]
    fn batches_grow_with_free_memory_up_to_the_device_cap() {
        let per_slice = 60_000_000;
        // An 80 GB GPU with 2 GB of weights: the cap.
        assert_eq!(slices_for_memory(&memory(Some(80 << 30), 2 << 30, false), per_slice), MAX_SLICES);
        // A 2 GB GPU with 1.5 GB used: 0.5 GB free, half of it in 60 MB slices.
        assert_eq!(slices_for_memory(&memory(Some(2 << 30), 1536 << 20, false), per_slice), 4);
        // Full: still one slice at a time.
        assert_eq!(slices_for_memory(&memory(Some(1 << 30), 1 << 30, false), per_slice), 1);
        // The CPU stops at its own cap; a device without a figure gets 4.
        assert_eq!(slices_for_memory(&memory(Some(20 << 30), 0, true), per_slice), CPU_MAX_SLICES);
        assert_eq!(slices_for_memory(&memory(None, 0, false), per_slice), 4);
    }

    #[test]
    fn a_time_target_shrinks_batches_to_what_fits_in_it() {
        let mut sizer = BatchSizer::new(64, Some(1.0));
        assert_eq!(sizer.next(), 4, "before any timing");
        sizer.observe(4, 4.0 * 0.3);
        assert_eq!(sizer.next(), 3, "0.3 s a slice: 3 in a second");
        sizer.observe(3, 3.0 * 0.01);
        // Smoothed: (0.3 + 0.01) / 2 = 0.155 s a slice.
        assert_eq!(sizer.next(), 6);
        sizer.observe(6, 6.0 * 0.001);
        sizer.observe(64, 64.0 * 0.001);
        assert_eq!(sizer.next(), 25, "0.04 s a slice");
        for _ in 0..20 {
            sizer.observe(64, 64.0 * 0.001);
        }
        assert_eq!(sizer.next(), 64, "the memory limit binds");
        sizer.observe(1, 10.0);
        assert_eq!(sizer.next(), 1, "never below one slice");
        assert_eq!(BatchSizer::new(32, None).next(), 32, "no target: the memory limit");
    }

    #[test]
    fn the_cpu_reports_its_available_memory() {
        let memory = device_memory(&Device::flex());
        assert!(memory.is_cpu);
        let capacity = memory.capacity_bytes.expect("Linux has /proc/meminfo");
        assert!(capacity > 100 << 20, "{capacity}");
    }
}
