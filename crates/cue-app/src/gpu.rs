//! The bridge between egui-wgpu and the slice renderer: the renderer lives in egui-wgpu's
//! callback resources, and each view's [`SliceDraw`] becomes a paint callback.

use eframe::egui_wgpu::{self, wgpu};

use cue_render::{SliceDraw, SliceRenderer, VolumeDraw, VolumeId};

/// Creates the renderer for the window's format and stores it where the callbacks find it.
pub fn install(render_state: &egui_wgpu::RenderState) {
    let renderer = SliceRenderer::new(&render_state.device, &render_state.queue, render_state.target_format);
    render_state.renderer.write().callback_resources.insert(renderer);
}

fn with_renderer<T>(render_state: &egui_wgpu::RenderState, f: impl FnOnce(&mut SliceRenderer) -> T) -> Option<T> {
    let mut renderer = render_state.renderer.write();
    let found = renderer.callback_resources.get_mut::<SliceRenderer>();
    if found.is_none() {
        tracing::warn!("slice renderer not installed");
    }
    found.map(f)
}

/// Uploads a volume as a 3-D texture under `id`.
pub fn upload(render_state: &egui_wgpu::RenderState, id: VolumeId, shape: [usize; 3], data: &[f32]) {
    with_renderer(render_state, |r| r.upload(&render_state.device, &render_state.queue, id, shape, data));
}

/// Uploads a colour volume's colours under its volume's `id`, which its slices then show.
pub fn upload_colours(render_state: &egui_wgpu::RenderState, id: VolumeId, shape: [usize; 3], rgb: &[[u8; 3]]) {
    with_renderer(render_state, |r| r.upload_colours(&render_state.device, &render_state.queue, id, shape, rgb));
}

/// Frees a volume's texture.
pub fn remove(render_state: &egui_wgpu::RenderState, id: VolumeId) {
    with_renderer(render_state, |r| r.remove(id));
}

/// Bytes of volume data uploaded so far.
pub fn uploaded_bytes(render_state: &egui_wgpu::RenderState) -> u64 {
    with_renderer(render_state, |r| r.uploaded_bytes()).unwrap_or(0)
}

/// Slice images rendered so far.
pub fn images_rendered(render_state: &egui_wgpu::RenderState) -> u64 {
    with_renderer(render_state, |r| r.images_rendered()).unwrap_or(0)
}

/// Views with an overlay texture bound.
pub fn overlays_bound(render_state: &egui_wgpu::RenderState) -> usize {
    with_renderer(render_state, |r| r.overlays_bound()).unwrap_or(0)
}

/// One view's slice as an egui paint callback.
pub struct SliceCallback(pub SliceDraw);

impl egui_wgpu::CallbackTrait for SliceCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen_descriptor: &egui_wgpu::ScreenDescriptor,
        _egui_encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        if let Some(renderer) = resources.get_mut::<SliceRenderer>() {
            renderer.prepare(device, queue, &self.0);
        }
        Vec::new()
    }

    fn finish_prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        egui_encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        // Every view's callback gets here; the first does the work for all of them (recorded
        // before egui's own pass in the same encoder, so the images are ready for `paint`).
        if let Some(renderer) = resources.get_mut::<SliceRenderer>() {
            renderer.render_images(device, queue, egui_encoder);
        }
        Vec::new()
    }

    fn paint(&self, _info: eframe::egui::PaintCallbackInfo, render_pass: &mut wgpu::RenderPass<'static>, resources: &egui_wgpu::CallbackResources) {
        if let Some(renderer) = resources.get::<SliceRenderer>() {
            renderer.paint(self.0.slot, render_pass);
        }
    }
}

/// GPU ids of the findings' volumes (the sequences' ids count up from 1).
pub const SCORES_ID: VolumeId = u64::MAX - 1;
/// See [`SCORES_ID`].
pub const FINDING_LABELS_ID: VolumeId = u64::MAX - 2;

/// 3-D images rendered so far.
pub fn volume_images_rendered(render_state: &egui_wgpu::RenderState) -> u64 {
    with_renderer(render_state, |r| r.volume_images_rendered()).unwrap_or(0)
}

/// The 3-D view as an egui paint callback.
pub struct VolumeCallback(pub VolumeDraw);

impl egui_wgpu::CallbackTrait for VolumeCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen_descriptor: &egui_wgpu::ScreenDescriptor,
        _egui_encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        if let Some(renderer) = resources.get_mut::<SliceRenderer>() {
            renderer.prepare_volume(device, queue, &self.0);
        }
        Vec::new()
    }

    fn finish_prepare(
        &self,
        _device: &wgpu::Device,
        _queue: &wgpu::Queue,
        egui_encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        if let Some(renderer) = resources.get_mut::<SliceRenderer>() {
            renderer.render_volume_image(egui_encoder);
        }
        Vec::new()
    }

    fn paint(&self, _info: eframe::egui::PaintCallbackInfo, render_pass: &mut wgpu::RenderPass<'static>, resources: &egui_wgpu::CallbackResources) {
        if let Some(renderer) = resources.get::<SliceRenderer>() {
            renderer.paint_volume(render_pass);
        }
    }
}
