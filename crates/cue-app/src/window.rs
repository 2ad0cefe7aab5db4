//! Opening the desktop window.

use std::path::PathBuf;

use eframe::egui;

use crate::{CueApp, loader};

/// Opens the main window on `files` (each with the sequence the user named, if any), with
/// `model` (a CLIP folder or .bpk, and a prompt) when given.
pub fn run(files: loader::OpenRequest, model: Option<(PathBuf, Option<PathBuf>)>) -> anyhow::Result<()> {
    run_window([1400.0, 900.0], None, move |cc| {
        let mut app = CueApp::new_with_files(cc, files);
        if let Some((clip, prompt)) = model {
            app.load_model(clip, prompt, true);
        }
        app
    })
}

/// Opens the main window on the bundled demo case.
pub fn run_demo() -> anyhow::Result<()> {
    run_window([1400.0, 900.0], None, CueApp::new_with_demo)
}

/// Opens a window of `size` points on the app `create` makes, and runs until it is closed.
///
/// With `scratch_storage`, settings and window geometry are read from and written to that
/// folder instead of the user's, and the window keeps `size` (benchmarks must not depend on,
/// or change, what the user last left open).
pub fn run_window(
    size: [f32; 2],
    scratch_storage: Option<PathBuf>,
    create: impl FnOnce(&eframe::CreationContext<'_>) -> CueApp + 'static,
) -> anyhow::Result<()> {
    prefer_gl_over_software_vulkan();
    cue_volume::threads::use_background_compute_pool();
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default().with_title("CUE").with_inner_size(size).with_drag_and_drop(true),
        persist_window: scratch_storage.is_none(),
        persistence_path: scratch_storage,
        wgpu_options: eframe::egui_wgpu::WgpuConfiguration { wgpu_setup: wgpu_setup(), ..Default::default() },
        ..Default::default()
    };
    eframe::run_native(
        "CUE",
        options,
        Box::new(move |cc| {
            let mut app = create(cc);
            app.paint_panels_with_clear_colour(&cc.egui_ctx);
            Ok(Box::new(app))
        }),
    )
        .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}

/// How the window's wgpu device is made: egui's defaults, but with what burn's kernels need
/// ([`cue_model::display::compute_device_descriptor`]), so the model can run on the device the
/// window draws with instead of a second one.
pub fn wgpu_setup() -> eframe::egui_wgpu::WgpuSetup {
    let mut setup = eframe::egui_wgpu::WgpuSetupCreateNew::without_display_handle();
    setup.device_descriptor = std::sync::Arc::new(cue_model::display::compute_device_descriptor);
    eframe::egui_wgpu::WgpuSetup::CreateNew(setup)
}

/// Where Vulkan offers only software adapters (Mesa's lavapipe), draw through OpenGL
/// (llvmpipe) instead, unless `WGPU_BACKEND` says otherwise: lavapipe 22.3 grows by about
/// 10 MB per frame drawn with our 3-D textures (measured with `cue bench frames`), the GL
/// path by nothing, at the same frame time.
fn prefer_gl_over_software_vulkan() {
    use eframe::egui_wgpu::wgpu;
    use std::task::{Context, Poll, Waker};
    if std::env::var_os("WGPU_BACKEND").is_some() {
        return;
    }
    let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle();
    descriptor.backends = wgpu::Backends::VULKAN;
    let instance = wgpu::Instance::new(descriptor);
    let mut future = std::pin::pin!(instance.enumerate_adapters(wgpu::Backends::VULKAN));
    // Native enumeration completes at once; nothing to wait for.
    let Poll::Ready(adapters) = future.as_mut().poll(&mut Context::from_waker(Waker::noop())) else { return };
    if !adapters.is_empty() && adapters.iter().all(|a| a.get_info().device_type == wgpu::DeviceType::Cpu) {
        tracing::info!("only software Vulkan adapters: using the GL backend");
        // SAFETY: called before the window, the loader or any other thread of ours starts.
        unsafe { std::env::set_var("WGPU_BACKEND", "gl") };
    }
}
