//! Choosing where the model runs: `--device auto|gpu|cpu`.
//!
//! `auto` takes wgpu when a hardware adapter exists (discrete, integrated or virtual GPU) and
//! otherwise burn's pure-Rust CPU backend (flex): a software rasteriser such as Mesa's lavapipe
//! is an adapter too, but slower for this work than flex on the same cores, so `auto` passes it
//! over and `gpu` can still ask for it. The choice is logged.

use std::fmt;
use std::task::{Context, Poll, Waker};

use burn::tensor::Device;
use burn::tensor::DeviceKind;

/// The user's device request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// A hardware GPU if there is one, else the CPU.
    #[default]
    Auto,
    /// wgpu on the best adapter, software ones included.
    Gpu,
    /// burn's flex CPU backend.
    Cpu,
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "gpu" | "wgpu" => Ok(Self::Gpu),
            "cpu" | "flex" => Ok(Self::Cpu),
            other => Err(format!("unknown device '{other}' (expected auto, gpu or cpu)")),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Gpu => "gpu",
            Self::Cpu => "cpu",
        })
    }
}

/// A device and a readable description of it (adapter name and API, or "CPU (flex, N threads)").
#[derive(Clone, Debug)]
pub struct ChosenDevice {
    /// The burn device.
    pub device: Device,
    /// For logs and the model panel.
    pub description: String,
    /// Whether it is the wgpu backend.
    pub is_gpu: bool,
}

/// Problems choosing a device.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// `gpu` was asked for and wgpu found no adapter.
    #[error("no GPU adapter found (wgpu saw none; install a Vulkan driver, or use --device cpu)")]
    NoAdapter,
}

/// Adapters wgpu can see: (name, backend, is software).
pub fn adapters() -> Vec<(String, String, bool)> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let mut future = std::pin::pin!(instance.enumerate_adapters(wgpu::Backends::all()));
    // Native enumeration completes at once; nothing to wait for.
    let Poll::Ready(found) = future.as_mut().poll(&mut Context::from_waker(Waker::noop())) else {
        return Vec::new();
    };
    found
        .iter()
        .map(|a| {
            let info = a.get_info();
            (info.name.clone(), format!("{:?}", info.backend), info.device_type == wgpu::DeviceType::Cpu)
        })
        .collect()
}

/// Resolves a request to a device.
pub fn choose(choice: DeviceChoice) -> Result<ChosenDevice, DeviceError> {
    let cpu = || {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        ChosenDevice { device: Device::flex(), description: format!("CPU (flex, {threads} threads)"), is_gpu: false }
    };
    let chosen = match choice {
        DeviceChoice::Cpu => cpu(),
        DeviceChoice::Gpu | DeviceChoice::Auto => {
            let found = adapters();
            // Hardware first; software (lavapipe, llvmpipe) only when asked for a GPU.
            let pick = found
                .iter()
                .find(|(_, _, software)| !software)
                .or_else(|| if choice == DeviceChoice::Gpu { found.first() } else { None });
            match pick {
                Some((name, backend, _)) => ChosenDevice {
                    device: Device::wgpu(DeviceKind::DefaultDevice),
                    description: format!("{name} ({backend}, wgpu)"),
                    is_gpu: true,
                },
                None if choice == DeviceChoice::Gpu => return Err(DeviceError::NoAdapter),
                None => cpu(),
            }
        }
    };
    tracing::info!(device = %chosen.description, requested = %choice, "model device");
    Ok(chosen)
}
