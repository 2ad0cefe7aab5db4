//! The 3-D view on the GPU: `shaders/raymarch.wgsl` renders the MIP (with scores or findings)
//! into an image of its own, only when the camera, the window or what it shows changes; every
//! frame blits that image, as the slice views do with theirs.

use super::orbit::{Orbit, Rays, ScoreScale, VolumeOverlay};
use super::slice::{IMAGE_FORMAT, SliceRenderer, VolumeId, quad_pipeline};
use cue_volume::WindowLevel;

/// What the 3-D view shows this frame.
#[derive(Clone, Debug, PartialEq)]
pub struct VolumeDraw {
    /// The intensities.
    pub volume: VolumeId,
    /// The fused anomaly scores on the same grid (non-finite where unmapped).
    pub scores: Option<VolumeId>,
    /// The findings' label volume on the same grid.
    pub labels: Option<VolumeId>,
    /// The grid's shape.
    pub shape: [usize; 3],
    /// Its voxel size.
    pub voxel_size_mm: [f64; 3],
    /// The camera.
    pub orbit: Orbit,
    /// Intensity window of the projection.
    pub window: WindowLevel,
    /// What goes over the brain.
    pub overlay: VolumeOverlay,
    /// The scores' scale (with `VolumeOverlay::Scores`).
    pub scale: Option<ScoreScale>,
    /// Image size in pixels.
    pub size: [u32; 2],
}

/// Floats of the shader's parameters (eight RGBA texels).
const PARAMS: usize = 32;

impl VolumeDraw {
    /// The rays of this image.
    pub fn rays(&self) -> Rays {
        Rays::new(self.orbit, self.shape, self.voxel_size_mm, self.size[0], self.size[1])
    }

    /// The shader's eight parameter texels (see `shaders/raymarch.wgsl`).
    fn params(&self, has_scores: bool, has_labels: bool) -> [f32; PARAMS] {
        let rays = self.rays();
        let overlay = match self.overlay {
            VolumeOverlay::Scores if has_scores && self.scale.is_some() => 1.0,
            VolumeOverlay::Findings if has_labels => 2.0,
            _ => 0.0,
        };
        let scale = self.scale.unwrap_or(ScoreScale { threshold: f32::INFINITY, low: 0.0, high: 1.0, colormap: super::Colormap::Inferno });
        let v4 = |v: [f32; 3]| [v[0], v[1], v[2], 0.0];
        let texels = [
            v4(rays.base),
            v4(rays.across),
            v4(rays.down),
            v4(rays.step),
            [self.shape[0] as f32, self.shape[1] as f32, self.shape[2] as f32, rays.steps as f32],
            [self.size[0] as f32, self.size[1] as f32, overlay, scale.colormap as u32 as f32],
            [self.window.low(), self.window.width, scale.threshold, scale.low],
            [scale.high, 0.0, 0.0, 0.0],
        ];
        let mut out = [0f32; PARAMS];
        for (slot, v) in out.iter_mut().zip(texels.iter().flatten()) {
            *slot = *v;
        }
        out
    }
}

/// The 3-D view's GPU state (one view).
pub(crate) struct Volume3d {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    params: wgpu::Texture,
    params_view: wgpu::TextureView,
    written: Option<[u32; PARAMS]>,
    bound: Option<(VolumeId, Option<VolumeId>, Option<VolumeId>, u64)>,
    bind_group: Option<wgpu::BindGroup>,
    target: Option<(wgpu::Texture, wgpu::TextureView)>,
    blit: Option<(wgpu::Buffer, wgpu::BindGroup)>,
    needs_render: bool,
    pub(crate) images_rendered: u64,
}

impl Volume3d {
    pub(crate) fn new(device: &wgpu::Device) -> Self {
        let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("cue ray-march shader"),
            source: wgpu::ShaderSource::Wgsl(concat!(include_str!("../../../shaders/quad.wgsl"), include_str!("../../../shaders/raymarch.wgsl")).into()),
        });
        let texture_entry = |binding, dimension| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::FRAGMENT,
            ty: wgpu::BindingType::Texture { sample_type: wgpu::TextureSampleType::Float { filterable: false }, view_dimension: dimension, multisampled: false },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("cue ray-march bind group layout"),
            entries: &[
                // A texture, not a uniform buffer: see shaders/raymarch.wgsl.
                texture_entry(0, wgpu::TextureViewDimension::D2),
                texture_entry(1, wgpu::TextureViewDimension::D3),
                texture_entry(2, wgpu::TextureViewDimension::D3),
                texture_entry(3, wgpu::TextureViewDimension::D3),
                texture_entry(4, wgpu::TextureViewDimension::D2),
            ],
        });
        let pipeline = quad_pipeline(device, "cue ray-march pipeline", &shader, &layout, "fs_main", IMAGE_FORMAT);
        let params = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("cue ray-march parameters"),
            size: wgpu::Extent3d { width: (PARAMS / 4) as u32, height: 1, depth_or_array_layers: 1 },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba32Float,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        let params_view = params.create_view(&wgpu::TextureViewDescriptor::default());
        Self { pipeline, layout, params, params_view, written: None, bound: None, bind_group: None, target: None, blit: None, needs_render: false, images_rendered: 0 }
    }
}

impl SliceRenderer {
    /// Binds and updates the 3-D view for this frame; nothing is rendered until
    /// [`SliceRenderer::render_volume_image`], and an unchanged view renders nothing then.
    pub fn prepare_volume(&mut self, device: &wgpu::Device, queue: &wgpu::Queue, draw: &VolumeDraw) {
        let (generation, volumes) = (self.generation, &self.volumes);
        let Some(intensities) = volumes.get(&draw.volume) else { return };
        let scores = draw.scores.filter(|id| volumes.contains_key(id));
        let labels = draw.labels.filter(|id| volumes.contains_key(id));
        let size = [draw.size[0].clamp(1, 4096), draw.size[1].clamp(1, 4096)];
        let v = &mut self.volume3d;
        let resized = v.target.as_ref().is_none_or(|(t, _)| [t.width(), t.height()] != size);
        if resized {
            let texture = device.create_texture(&wgpu::TextureDescriptor {
                label: Some("cue 3-D view image"),
                size: wgpu::Extent3d { width: size[0], height: size[1], depth_or_array_layers: 1 },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: IMAGE_FORMAT,
                usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_SRC,
                view_formats: &[],
            });
            let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
            let place = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("cue 3-D view blit uniforms"),
                size: 32,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let values = [0.0, 0.0, size[0] as f32, size[1] as f32, 0.0, 0.0, 1.0, 1.0f32];
            queue.write_buffer(&place, 0, &values.iter().flat_map(|v| v.to_ne_bytes()).collect::<Vec<u8>>());
            let blit = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("cue 3-D view blit bind group"),
                layout: &self.blit_layout,
                entries: &[
                    wgpu::BindGroupEntry { binding: 0, resource: wgpu::BindingResource::TextureView(&view) },
                    wgpu::BindGroupEntry { binding: 1, resource: place.as_entire_binding() },
                ],
            });
            v.target = Some((texture, view));
            v.blit = Some((place, blit));
            v.needs_render = true;
        }
        let bound = (draw.volume, scores, labels, generation);
        if v.bound != Some(bound) {
            let none = &self.no_labels;
            let view_of = |id: Option<VolumeId>| id.and_then(|id| volumes.get(&id)).unwrap_or(none);
            v.bind_group = Some(device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("cue ray-march bind group"),
                layout: &v.layout,
                entries: &[
                    wgpu::BindGroupEntry { binding: 0, resource: wgpu::BindingResource::TextureView(&v.params_view) },
                    wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(intensities) },
                    wgpu::BindGroupEntry { binding: 2, resource: wgpu::BindingResource::TextureView(view_of(scores)) },
                    wgpu::BindGroupEntry { binding: 3, resource: wgpu::BindingResource::TextureView(view_of(labels)) },
                    wgpu::BindGroupEntry { binding: 4, resource: wgpu::BindingResource::TextureView(&self.colormaps) },
                ],
            }));
            v.bound = Some(bound);
            v.needs_render = true;
        }
        let mut sized = draw.clone();
        sized.size = size;
        let params = sized.params(scores.is_some(), labels.is_some());
        let bits = params.map(f32::to_bits);
        if v.written != Some(bits) {
            let bytes: Vec<u8> = params.iter().flat_map(|p| p.to_ne_bytes()).collect();
            queue.write_texture(
                wgpu::TexelCopyTextureInfo { texture: &v.params, mip_level: 0, origin: wgpu::Origin3d::ZERO, aspect: wgpu::TextureAspect::All },
                &bytes,
                wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(16 * (PARAMS / 4) as u32), rows_per_image: Some(1) },
                wgpu::Extent3d { width: (PARAMS / 4) as u32, height: 1, depth_or_array_layers: 1 },
            );
            v.written = Some(bits);
            v.needs_render = true;
        }
    }

    /// Renders the 3-D view's image if it changed (call after [`SliceRenderer::prepare_volume`],
    /// before the pass that paints it).
    pub fn render_volume_image(&mut self, encoder: &mut wgpu::CommandEncoder) {
        let v = &mut self.volume3d;
        let (Some((_, target)), Some(bind_group)) = (&v.target, &v.bind_group) else { return };
        if !v.needs_render {
            return;
        }
        v.needs_render = false;
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("cue 3-D view"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: target,
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations { load: wgpu::LoadOp::Clear(wgpu::Color::BLACK), store: wgpu::StoreOp::Store },
            })],
            depth_stencil_attachment: None,
            timestamp_writes: None,
            occlusion_query_set: None,
            multiview_mask: None,
        });
        pass.set_pipeline(&v.pipeline);
        pass.set_bind_group(0, bind_group, &[]);
        pass.draw(0..4, 0..1);
        v.images_rendered += 1;
    }

    /// Draws the 3-D view's image into the pass's viewport.
    pub fn paint_volume(&self, render_pass: &mut wgpu::RenderPass<'_>) {
        let Some((_, blit)) = &self.volume3d.blit else { return };
        render_pass.set_pipeline(&self.blit_pipeline);
        render_pass.set_bind_group(0, blit, &[]);
        render_pass.draw(0..4, 0..1);
    }

    /// How many 3-D images have been rendered (a check that an unchanged view renders nothing).
    pub fn volume_images_rendered(&self) -> u64 {
        self.volume3d.images_rendered
    }

    /// Renders `draw` now and reads the image back as RGBA8 rows (tests and `cue bench`).
    pub fn render_volume_to_vec(&mut self, device: &wgpu::Device, queue: &wgpu::Queue, draw: &VolumeDraw) -> Option<Vec<u8>> {
        self.prepare_volume(device, queue, draw);
        self.volume3d.needs_render = true;
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("cue 3-D readback") });
        self.render_volume_image(&mut encoder);
        let (texture, _) = self.volume3d.target.as_ref()?;
        let (width, height) = (texture.width(), texture.height());
        let row = (4 * width).div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT) * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT;
        let buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("cue 3-D readback buffer"),
            size: u64::from(row * height),
            usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
            mapped_at_creation: false,
        });
        encoder.copy_texture_to_buffer(
            wgpu::TexelCopyTextureInfo { texture, mip_level: 0, origin: wgpu::Origin3d::ZERO, aspect: wgpu::TextureAspect::All },
            wgpu::TexelCopyBufferInfo { buffer: &buffer, layout: wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(row), rows_per_image: Some(height) } },
            wgpu::Extent3d { width, height, depth_or_array_layers: 1 },
        );
        queue.submit([encoder.finish()]);
        let slice = buffer.slice(..);
        let (sender, receiver) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = sender.send(r);
        });
        device.poll(wgpu::PollType::wait_indefinitely()).ok()?;
        receiver.recv().ok()?.ok()?;
        let mapped = slice.get_mapped_range().ok()?;
        let mut out = Vec::with_capacity((4 * width * height) as usize);
        for y in 0..height {
            let start = (y * row) as usize;
            out.extend_from_slice(&mapped[start..start + (4 * width) as usize]);
        }
        Some(out)
    }
}
