//! Choosing where the model runs: `--device auto|gpu|cpu|cuda[:N]|remote:ADDR`.
//!
//! `auto` takes wgpu when a hardware adapter exists (discrete, integrated or virtual GPU) and
//! otherwise burn's pure-Rust CPU backend (flex): a software rasteriser such as Mesa's lavapipe
//! is an adapter too, but slower for this work than flex on the same cores, so `auto` passes it
//! over and `gpu` can still ask for it. `cuda:N` is burn's CUDA backend on NVIDIA GPU N, in
//! builds with the `cuda` feature (CUDA's driver and NVRTC are loaded at run time, so the build
//! needs no CUDA toolkit). `remote:HOST:PORT` runs the model on a device that
//! `cue serve` hosts (burn's remote backend; see [`crate::remote`]). The choice is logged.

use std::fmt;
use std::path::PathBuf;
use std::task::{Context, Poll, Waker};

use burn::tensor::Device;
use burn::tensor::DeviceKind;

/// The user's device request.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// A hardware GPU if there is one, else the CPU.
    #[default]
    Auto,
    /// wgpu on the best adapter, software ones included.
    Gpu,
    /// burn's flex CPU backend.
    Cpu,
    /// burn's CUDA backend on this NVIDIA GPU (builds with the `cuda` feature).
    Cuda(usize),
    /// A device hosted by `cue serve` on another process or machine.
    Remote(RemoteTarget),
}

/// Where a remote device is and how the client proves it may use it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RemoteTarget {
    /// `HOST:PORT` of the server: its WebSocket, or the UDP port of its Iroh endpoint.
    pub address: String,
    /// The file holding the server's token; None: the one set with [`set_default_token_file`].
    pub token_file: Option<PathBuf>,
    /// The server's Iroh endpoint id, for the Iroh transport (encrypted, the server
    /// authenticated by this id); None: WebSocket.
    #[serde(default)]
    pub iroh_server: Option<String>,
}

impl RemoteTarget {
    /// A WebSocket server at `address`.
    pub fn websocket(address: impl Into<String>, token_file: Option<PathBuf>) -> Self {
        Self { address: address.into(), token_file, iroh_server: None }
    }

    /// How a request names this server after `remote:`: `HOST:PORT` or `iroh:ID@HOST:PORT`.
    pub fn spec(&self) -> String {
        match &self.iroh_server {
            Some(id) => format!("iroh:{id}@{}", self.address),
            None => self.address.clone(),
        }
    }
}

fn is_host_port(address: &str) -> bool {
    address.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

static DEFAULT_TOKEN_FILE: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

/// The token file a `remote:` device uses when its request names none (the CLI's global
/// `--token-file`).
pub fn set_default_token_file(path: Option<PathBuf>) {
    if let Ok(mut slot) = DEFAULT_TOKEN_FILE.lock() {
        *slot = path;
    }
}

fn default_token_file() -> Option<PathBuf> {
    DEFAULT_TOKEN_FILE.lock().ok().and_then(|slot| slot.clone())
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "gpu" | "wgpu" => Ok(Self::Gpu),
            "cpu" | "flex" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            lower if lower.starts_with("cuda:") => match lower["cuda:".len()..].parse::<usize>() {
                Ok(index) => Ok(Self::Cuda(index)),
                Err(_) => Err(format!("CUDA device '{s}' is not cuda:N (N the GPU's index, as nvidia-smi numbers it)")),
            },
            _ => match s.strip_prefix("remote:") {
                Some(iroh) if iroh.starts_with("iroh:") => match iroh["iroh:".len()..].split_once('@') {
                    Some((id, address)) if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()) && is_host_port(address) => {
                        Ok(Self::Remote(RemoteTarget { address: address.to_string(), token_file: None, iroh_server: Some(id.to_string()) }))
                    }
                    _ => Err(format!("remote device '{iroh}' is not iroh:ID@HOST:PORT (the id and address `cue serve --transport iroh` prints)")),
                },
                Some(address) if is_host_port(address) => Ok(Self::Remote(RemoteTarget::websocket(address, None))),
                Some(address) => Err(format!("remote device '{address}' is not HOST:PORT (for example remote:127.0.0.1:7373)")),
                None => Err(format!("unknown device '{s}' (expected auto, gpu, cpu, cuda[:N], remote:HOST:PORT or remote:iroh:ID@HOST:PORT)")),
            },
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Gpu => f.write_str("gpu"),
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(index) => write!(f, "cuda:{index}"),
            Self::Remote(target) => write!(f, "remote:{}", target.spec()),
        }
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
    /// `cuda` was asked for in a build without the `cuda` feature, or CUDA could not start.
    #[error("{0}")]
    Cuda(String),
    /// A remote device could not be reached or refused the client.
    #[error(transparent)]
    Remote(#[from] crate::remote::RemoteError),
}

/// Adapters wgpu can see: (name, backend, is software).
pub fn adapters() -> Vec<(String, String, bool)> {
    enumerate(wgpu::Backends::all())
        .iter()
        .map(|a| {
            let info = a.get_info();
            (info.name.clone(), format!("{:?}", info.backend), info.device_type == wgpu::DeviceType::Cpu)
        })
        .collect()
}

/// The adapters of `backends` (each keeps the instance that found it alive).
fn enumerate(backends: wgpu::Backends) -> Vec<wgpu::Adapter> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let mut future = std::pin::pin!(instance.enumerate_adapters(backends));
    // Native enumeration completes at once; nothing to wait for.
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(found) => found,
        Poll::Pending => Vec::new(),
    }
}

/// The largest device-local memory heap of the Vulkan adapter the model's wgpu device runs on
/// (the first hardware adapter, else the first one, as [`choose`] picks), in bytes; `None`
/// without a Vulkan adapter. burn's wgpu build compiles kernels to WGSL, where cubecl reports
/// no capacity, so CUE asks Vulkan itself, as cubecl's SPIR-V path does.
pub fn vulkan_heap_bytes() -> Option<u64> {
    let found = enumerate(wgpu::Backends::VULKAN);
    let adapter = hardware_first(&found, |a| a.get_info().device_type == wgpu::DeviceType::Cpu, true)?;
    // SAFETY: the hal adapter is only read (its instance and physical device handle), while
    // `adapter` keeps it alive; nothing is created or destroyed through it.
    let hal = unsafe { adapter.as_hal::<wgpu::hal::api::Vulkan>() }?;
    let properties = unsafe { hal.shared_instance().raw_instance().get_physical_device_memory_properties(hal.raw_physical_device()) };
    properties
        .memory_heaps_as_slice()
        .iter()
        .filter(|heap| heap.flags.contains(ash::vk::MemoryHeapFlags::DEVICE_LOCAL))
        .map(|heap| heap.size)
        .max()
}

/// The adapter the model runs on: the first hardware one, else, where `settle_for_software`
/// (`gpu` asked for), the first software one (lavapipe, llvmpipe).
fn hardware_first<T>(found: &[T], software: impl Fn(&T) -> bool, settle_for_software: bool) -> Option<&T> {
    found.iter().find(|a| !software(a)).or(if settle_for_software { found.first() } else { None })
}

/// Resolves a request to a device.
pub fn choose(choice: DeviceChoice) -> Result<ChosenDevice, DeviceError> {
    let cpu = || {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        ChosenDevice { device: Device::flex(), description: format!("CPU (flex, {threads} threads)"), is_gpu: false }
    };
    let chosen = match &choice {
        DeviceChoice::Cpu => cpu(),
        DeviceChoice::Cuda(index) => cuda(*index)?,
        DeviceChoice::Remote(target) => {
            let token_file = target.token_file.clone().or_else(default_token_file);
            crate::remote::connect(target, token_file.as_deref())?
        }
        DeviceChoice::Gpu | DeviceChoice::Auto => {
            let found = adapters();
            let pick = hardware_first(&found, |(_, _, software)| *software, choice == DeviceChoice::Gpu);
            let display = crate::display::shared();
            match pick {
                // The display's device where it is the adapter this choice takes: the same
                // hardware, or the software one `gpu` settles for when there is no other.
                Some((_, _, software)) if display.is_some_and(|(_, display_software)| display_software == *software) => {
                    display.map(|(shared, _)| shared.clone()).ok_or(DeviceError::NoAdapter)?
                }
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

/// burn's CUDA device `index`, after a first allocation on it: cubecl panics where CUDA cannot
/// start (no driver, no such GPU, no NVRTC), and that becomes this request's error here instead
/// of a panic in the first job that uses the device.
#[cfg(feature = "cuda")]
fn cuda(index: usize) -> Result<ChosenDevice, DeviceError> {
    let device = Device::cuda(index);
    let probe = device.clone();
    let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || burn::tensor::Tensor::<1>::ones([4], &probe).into_data().try_to_vec::<f32>()));
    match started {
        Ok(Ok(values)) if values == [1.0; 4] => Ok(ChosenDevice { device, description: format!("NVIDIA GPU {index} (CUDA)"), is_gpu: true }),
        Ok(other) => Err(DeviceError::Cuda(format!("CUDA device {index} gave a wrong first result ({other:?})"))),
        Err(panic) => {
            let reason = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
            let reason = reason.lines().next().unwrap_or("unknown reason").to_string();
            Err(DeviceError::Cuda(format!("CUDA device {index} cannot start: {reason}")))
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda(index: usize) -> Result<ChosenDevice, DeviceError> {
    Err(DeviceError::Cuda(format!("cuda:{index}: this cue was built without CUDA (cargo build --release --features cuda)")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_requests_parse_as_typed() {
        assert_eq!("GPU".parse::<DeviceChoice>(), Ok(DeviceChoice::Gpu));
        assert_eq!("flex".parse::<DeviceChoice>(), Ok(DeviceChoice::Cpu));
        let remote = "remote:gpu-box.lan:7373".parse::<DeviceChoice>().expect("remote");
        assert_eq!(remote, DeviceChoice::Remote(RemoteTarget::websocket("gpu-box.lan:7373", None)));
        assert_eq!(remote.to_string(), "remote:gpu-box.lan:7373");
        assert!("remote:gpu-box".parse::<DeviceChoice>().expect_err("no port").contains("HOST:PORT"));
        let id = "ae58ff8833241ac82d6ff7611046ed67b5072d142c588d0063e942d9a75502b6";
        let iroh = format!("remote:iroh:{id}@10.0.0.5:7373").parse::<DeviceChoice>().expect("iroh");
        let expected = RemoteTarget { address: "10.0.0.5:7373".into(), token_file: None, iroh_server: Some(id.into()) };
        assert_eq!(iroh, DeviceChoice::Remote(expected));
        assert_eq!(iroh.to_string(), format!("remote:iroh:{id}@10.0.0.5:7373"));
        for bad in ["remote:iroh:10.0.0.5:7373", "remote:iroh:@10.0.0.5:7373", "remote:iroh:ab/c@h:1", "remote:iroh:abc@host"] {
            assert!(bad.parse::<DeviceChoice>().expect_err(bad).contains("iroh:ID@HOST:PORT"), "{bad}");
        }
        assert_eq!("cuda".parse::<DeviceChoice>(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("CUDA:1".parse::<DeviceChoice>().map(|d| d.to_string()), Ok("cuda:1".to_string()));
        assert!("cuda:x".parse::<DeviceChoice>().expect_err("no index").contains("cuda:N"));
        assert!("tpu".parse::<DeviceChoice>().expect_err("unknown").contains("remote:HOST:PORT"));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_in_a_build_without_it_is_refused_naming_the_feature() {
        let Err(error) = choose(DeviceChoice::Cuda(0)) else { panic!("cuda chosen without the feature") };
        assert!(error.to_string().contains("--features cuda"), "{error}");
    }
}
