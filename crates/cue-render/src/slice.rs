//! The slice pipeline: volumes as 3-D textures, one uniform buffer per on-screen view.

use std::collections::HashMap;

use super::colormap::{Colormap, LUT_SIZE};
use cue_volume::{SliceAxes, WindowLevel};

/// Identifies a volume uploaded to the GPU.
pub type VolumeId = u64;

/// How a label volume is drawn over a slice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LabelStyle {
    /// Filled regions.
    #[default]
    Filled,
    /// One-pixel outlines of each region.
    Outline,
}

/// GPU state shared by every view (the app keeps it where its UI toolkit's paint callbacks
/// find it).
///
/// Each view renders its slice at the slice's own resolution into its place in one atlas
/// texture when something it shows changes, and every frame draws that image at screen size:
/// a software rasteriser pays for the full slice shader on the slice's pixels, only for views
/// that changed, instead of on every screen pixel of every view on every frame (hovering or
/// scrolling one view redraws the whole window). Changed views render in one pass: separate
/// passes per view made llvmpipe serialise them.
pub struct SliceRenderer {
    pipeline: wgpu::RenderPipeline,
    bind_group_layout: wgpu::BindGroupLayout,
    pub(crate) blit_pipeline: wgpu::RenderPipeline,
    pub(crate) blit_layout: wgpu::BindGroupLayout,
    atlas: Option<Atlas>,
    max_atlas_side: u32,
    images_rendered: u64,
    pub(crate) colormaps: wgpu::TextureView,
    pub(crate) no_labels: wgpu::TextureView,
    no_overlay: wgpu::TextureView,
    no_colours: wgpu::TextureView,
    pub(crate) volumes: HashMap<VolumeId, wgpu::TextureView>,
    /// The colours of colour volumes (RGBA8, alpha unused), under their volume's id: shown
    /// as stored instead of the intensities through the window and colormap.
    colours: HashMap<VolumeId, wgpu::TextureView>,
    slots: HashMap<u64, Slot>,
    uploaded_bytes: u64,
    /// Bumped by every upload and removal, so the 3-D view rebinds replaced textures.
    pub(crate) generation: u64,
    pub(crate) volume3d: super::volume3d::Volume3d,
}

struct Slot {
    uniforms: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    /// The volume, the label volume and whether the volume's colours are bound.
    bound: (VolumeId, Option<VolumeId>, bool),
    written: Option<[u8; UNIFORM_BYTES as usize]>,
    overlay: Option<SlotOverlay>,
    /// The slice's size in pixels, as last prepared.
    size: [u32; 2],
    /// Whether its atlas image is out of date.
    needs_render: bool,
    /// Where the image lies in the view, as last prepared.
    image_in_view: [f32; 4],
    blit: Option<SlotBlit>,
}

/// Where a view's image sits in the atlas, and the bind group that draws it from there.
struct SlotBlit {
    rect: [u32; 4],
    uniforms: wgpu::Buffer,
    written: Option<[f32; 8]>,
    bind_group: wgpu::BindGroup,
}

/// The texture holding every view's slice image.
struct Atlas {
    texture: wgpu::Texture,
    view: wgpu::TextureView,
    /// Rectangle (x, y, width, height) of each slot.
    rects: HashMap<u64, [u32; 4]>,
}

/// Bytes of the blit's uniform block; mirrors `Place` in `shaders/slice_blit.wgsl`.
const BLIT_UNIFORM_BYTES: u64 = 32;

/// Format of the slice images.
pub(crate) const IMAGE_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;

/// Places rectangles of `sizes` (by slot, in slot order) in columns no taller than `max_side`;
/// returns each one's (x, y, width, height) and the atlas size needed.
fn pack(sizes: &[(u64, [u32; 2])], max_side: u32) -> (HashMap<u64, [u32; 4]>, [u32; 2]) {
    let mut rects = HashMap::new();
    let (mut x, mut y, mut column_width, mut height) = (0u32, 0u32, 0u32, 0u32);
    for &(slot, [w, h]) in sizes {
        if y > 0 && y + h > max_side {
            x += column_width;
            y = 0;
            column_width = 0;
        }
        rects.insert(slot, [x, y, w, h]);
        y += h;
        column_width = column_width.max(w);
        height = height.max(y);
    }
    (rects, [(x + column_width).max(1), height.max(1)])
}

/// A view's overlay texture and which image it holds.
struct SlotOverlay {
    texture: wgpu::Texture,
    view: wgpu::TextureView,
    key: u64,
}

/// Bytes of the uniform block; mirrors `Uniforms` in `shaders/slice.wgsl`.
const UNIFORM_BYTES: u64 = 96;

/// An RGBA image over a view's slice (an anomaly map), one texel per slice pixel, drawn in the
/// slice's own pass: a separate blended image would cost a software rasteriser a second pass
/// over every mapped view each frame.
#[derive(Clone, Debug)]
pub struct SliceOverlay {
    /// Identifies the content: the texture is rewritten only when it changes.
    pub key: u64,
    /// Width and height in pixels (the slice's).
    pub size: [usize; 2],
    /// Premultiplied sRGB RGBA bytes, row by row from the top left.
    pub rgba: std::sync::Arc<[u8]>,
}

impl SliceRenderer {
    /// Creates the pipelines for drawing into `target_format`.
    pub fn new(device: &wgpu::Device, queue: &wgpu::Queue, target_format: wgpu::TextureFormat) -> Self {
        let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("cue slice shader"),
            source: wgpu::ShaderSource::Wgsl(concat!(include_str!("../../../shaders/quad.wgsl"), include_str!("../../../shaders/slice.wgsl")).into()),
        });
        let texture_entry = |binding, dimension| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::FRAGMENT,
            ty: wgpu::BindingType::Texture {
                sample_type: wgpu::TextureSampleType::Float { filterable: false },
                view_dimension: dimension,
                multisampled: false,
            },
            count: None,
        };
        let bind_group_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("cue slice bind group layout"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: wgpu::BufferSize::new(UNIFORM_BYTES),
                    },
                    count: None,
                },
                texture_entry(1, wgpu::TextureViewDimension::D3),
                texture_entry(2, wgpu::TextureViewDimension::D3),
                texture_entry(3, wgpu::TextureViewDimension::D2),
                texture_entry(4, wgpu::TextureViewDimension::D2),
                texture_entry(5, wgpu::TextureViewDimension::D3),
            ],
        });
        let pipeline = quad_pipeline(device, "cue slice pipeline", &shader, &bind_group_layout, "fs_main", IMAGE_FORMAT);
        let blit_shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("cue slice blit shader"),
            source: wgpu::ShaderSource::Wgsl(concat!(include_str!("../../../shaders/quad.wgsl"), include_str!("../../../shaders/slice_blit.wgsl")).into()),
        });
        let blit_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("cue slice blit bind group layout"),
            entries: &[
                texture_entry(0, wgpu::TextureViewDimension::D2),
                wgpu::BindGroupLayoutEntry {
                    binding: 1,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: wgpu::BufferSize::new(BLIT_UNIFORM_BYTES),
                    },
                    count: None,
                },
            ],
        });
        let fragment = if target_format.is_srgb() { "fs_linear" } else { "fs_gamma" };
        let blit_pipeline = quad_pipeline(device, "cue slice blit pipeline", &blit_shader, &blit_layout, fragment, target_format);
        let max_atlas_side = device.limits().max_texture_dimension_2d;
        let lut = Colormap::lookup_texture_bytes();
        let colormaps = create_texture(
            device,
            queue,
            "cue colormaps",
            wgpu::TextureFormat::Rgba8Unorm,
            [LUT_SIZE as u32, Colormap::ALL.len() as u32, 1],
            wgpu::TextureDimension::D2,
            &lut,
            4,
        );
        let no_labels = create_texture(
            device,
            queue,
            "cue no labels",
            wgpu::TextureFormat::R32Float,
            [1, 1, 1],
            wgpu::TextureDimension::D3,
            &[0u8; 4],
            4,
        );
        let no_overlay = create_texture(
            device,
            queue,
            "cue no overlay",
            wgpu::TextureFormat::Rgba8Unorm,
            [1, 1, 1],
            wgpu::TextureDimension::D2,
            &[0u8; 4],
            4,
        );
        let no_colours = create_texture(
            device,
            queue,
            "cue no colours",
            wgpu::TextureFormat::Rgba8Unorm,
            [1, 1, 1],
            wgpu::TextureDimension::D3,
            &[0u8; 4],
            4,
        );
        Self {
            pipeline,
            bind_group_layout,
            blit_pipeline,
            blit_layout,
            atlas: None,
            max_atlas_side,
            images_rendered: 0,
            colormaps,
            no_labels,
            no_overlay,
            no_colours,
            volumes: HashMap::new(),
            colours: HashMap::new(),
            slots: HashMap::new(),
            uploaded_bytes: 0,
            generation: 0,
            volume3d: super::volume3d::Volume3d::new(device),
        }
    }

    /// Uploads a volume (`data[i + nx * (j + ny * k)]`) as a 3-D texture under `id`, once,
    /// dropping colours uploaded under `id` before.
    pub fn upload(&mut self, device: &wgpu::Device, queue: &wgpu::Queue, id: VolumeId, shape: [usize; 3], data: &[f32]) {
        let this = self;
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_ne_bytes()).collect();
        let view = this.volume_texture(device, queue, "cue volume", wgpu::TextureFormat::R32Float, shape, &bytes);
        this.volumes.insert(id, view);
        // A new volume under this id has no colours until they are uploaded for it: never
        // the previous volume's.
        this.colours.remove(&id);
        this.generation += 1;
        // Views bound to an older texture of this id rebind on their next draw.
        this.slots.retain(|_, slot| slot.bound.0 != id && slot.bound.1 != Some(id));
    }

    /// Uploads the colours of volume `id` (`rgb[i + nx * (j + ny * k)]`, the layout of
    /// [`SliceRenderer::upload`]'s values), which its slices then show as stored, without the
    /// window or colormap. Upload the volume itself too: the 3-D view draws its intensities.
    pub fn upload_colours(&mut self, device: &wgpu::Device, queue: &wgpu::Queue, id: VolumeId, shape: [usize; 3], rgb: &[[u8; 3]]) {
        let bytes: Vec<u8> = rgb.iter().flat_map(|&[r, g, b]| [r, g, b, 255]).collect();
        let view = self.volume_texture(device, queue, "cue volume colours", wgpu::TextureFormat::Rgba8Unorm, shape, &bytes);
        self.colours.insert(id, view);
        self.slots.retain(|_, slot| slot.bound.0 != id);
    }

    /// A 3-D texture of four-byte texels holding `bytes`, counted in
    /// [`SliceRenderer::uploaded_bytes`].
    fn volume_texture(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        label: &str,
        format: wgpu::TextureFormat,
        shape: [usize; 3],
        bytes: &[u8],
    ) -> wgpu::TextureView {
        self.uploaded_bytes += bytes.len() as u64;
        create_texture(device, queue, label, format, shape.map(|d| d as u32), wgpu::TextureDimension::D3, bytes, 4)
    }

    /// Frees a volume's textures (its colours too).
    pub fn remove(&mut self, id: VolumeId) {
        self.volumes.remove(&id);
        self.colours.remove(&id);
        self.generation += 1;
        self.slots.retain(|_, slot| slot.bound.0 != id && slot.bound.1 != Some(id));
    }

    /// Total bytes of volume data uploaded so far (a check that stepping uploads nothing).
    pub fn uploaded_bytes(&self) -> u64 {
        self.uploaded_bytes
    }

    /// Lays out the atlas for the views' current sizes (growing it when needed) and renders
    /// the images of views that changed, all in one pass.
    ///
    /// Call once per frame after every view's [`SliceRenderer::prepare`], before the pass that
    /// [`SliceRenderer::paint`]s the views.
    pub fn render_images(&mut self, device: &wgpu::Device, queue: &wgpu::Queue, encoder: &mut wgpu::CommandEncoder) {
        let mut sizes: Vec<(u64, [u32; 2])> =
            self.slots.iter().filter(|(_, s)| s.size[0] > 0 && s.size[1] > 0).map(|(k, s)| (*k, s.size)).collect();
        sizes.sort_unstable_by_key(|(k, _)| *k);
        let (rects, needed) = pack(&sizes, self.max_atlas_side);
        if needed[0] > self.max_atlas_side || needed[1] > self.max_atlas_side {
            tracing::warn!(?needed, "slice images do not fit one texture; views not drawn");
            return;
        }
        let layout_changed = self.atlas.as_ref().is_none_or(|a| a.rects != rects);
        if layout_changed {
            let fits = self.atlas.as_ref().is_some_and(|a| a.texture.width() >= needed[0] && a.texture.height() >= needed[1]);
            let (texture, view) = match self.atlas.take() {
                Some(a) if fits => (a.texture, a.view),
                _ => {
                    // Some slack so a new view or a resize rarely reallocates.
                    let round = |v: u32| v.div_ceil(256).saturating_mul(256).min(self.max_atlas_side);
                    let texture = device.create_texture(&wgpu::TextureDescriptor {
                        label: Some("cue slice atlas"),
                        size: wgpu::Extent3d { width: round(needed[0]), height: round(needed[1]), depth_or_array_layers: 1 },
                        mip_level_count: 1,
                        sample_count: 1,
                        dimension: wgpu::TextureDimension::D2,
                        format: IMAGE_FORMAT,
                        usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::TEXTURE_BINDING,
                        view_formats: &[],
                    });
                    let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
                    for slot in self.slots.values_mut() {
                        slot.blit = None;
                    }
                    (texture, view)
                }
            };
            self.atlas = Some(Atlas { texture, view, rects });
        }
        let Some(atlas) = &self.atlas else { return };
        let mut to_render = Vec::new();
        for (key, slot) in &mut self.slots {
            let Some(&rect) = atlas.rects.get(key) else { continue };
            if slot.blit.as_ref().is_none_or(|b| b.rect != rect) {
                let uniforms = device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("cue slice blit uniforms"),
                    size: BLIT_UNIFORM_BYTES,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("cue slice blit bind group"),
                    layout: &self.blit_layout,
                    entries: &[
                        wgpu::BindGroupEntry { binding: 0, resource: wgpu::BindingResource::TextureView(&atlas.view) },
                        wgpu::BindGroupEntry { binding: 1, resource: uniforms.as_entire_binding() },
                    ],
                });
                slot.blit = Some(SlotBlit { rect, uniforms, written: None, bind_group });
                slot.needs_render = true;
            }
            if let Some(blit) = &mut slot.blit {
                // The image's place in the atlas (texels), then in the view (fractions).
                let [l, t, r, b] = slot.image_in_view;
                let values = [
                    rect[0] as f32,
                    rect[1] as f32,
                    rect[2] as f32,
                    rect[3] as f32,
                    l,
                    t,
                    r,
                    b,
                ];
                if blit.written != Some(values) {
                    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
                    queue.write_buffer(&blit.uniforms, 0, &bytes);
                    blit.written = Some(values);
                }
            }
            if slot.needs_render {
                slot.needs_render = false;
                to_render.push((rect, *key));
            }
        }
        if to_render.is_empty() {
            return;
        }
        // Recorded before egui's own pass in the same encoder, so the images are ready when
        // `paint` draws them.
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("cue slice images"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: &atlas.view,
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations { load: wgpu::LoadOp::Load, store: wgpu::StoreOp::Store },
            })],
            depth_stencil_attachment: None,
            timestamp_writes: None,
            occlusion_query_set: None,
            multiview_mask: None,
        });
        pass.set_pipeline(&self.pipeline);
        for ([x, y, w, h], key) in to_render {
            let Some(slot) = self.slots.get(&key) else { continue };
            pass.set_viewport(x as f32, y as f32, w as f32, h as f32, 0.0, 1.0);
            pass.set_scissor_rect(x, y, w, h);
            pass.set_bind_group(0, &slot.bind_group, &[]);
            pass.draw(0..4, 0..1);
            self.images_rendered += 1;
        }
    }

    /// How many slice images have been rendered so far (a check that unchanged views are not
    /// rendered again).
    pub fn images_rendered(&self) -> u64 {
        self.images_rendered
    }

    /// How many views have an overlay texture bound (a check that maps reach the GPU).
    pub fn overlays_bound(&self) -> usize {
        self.slots.values().filter(|s| s.overlay.is_some()).count()
    }

    /// Bytes of the overlay textures bound to views.
    pub fn overlay_bytes(&self) -> u64 {
        self.slots.values().filter_map(|s| s.overlay.as_ref()).map(|o| 4 * u64::from(o.texture.width()) * u64::from(o.texture.height())).sum()
    }

    /// Whether a volume is on the GPU.
    pub fn has_volume(&self, id: VolumeId) -> bool {
        self.volumes.contains_key(&id)
    }
}

/// A pipeline drawing `quad.wgsl`'s four-vertex quad over the viewport with one bind group
/// and the fragment entry point `fragment` into `format`, without blending.
pub(crate) fn quad_pipeline(
    device: &wgpu::Device,
    label: &str,
    shader: &wgpu::ShaderModule,
    bind_group_layout: &wgpu::BindGroupLayout,
    fragment: &str,
    format: wgpu::TextureFormat,
) -> wgpu::RenderPipeline {
    let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(label),
        bind_group_layouts: &[Some(bind_group_layout)],
        immediate_size: 0,
    });
    device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some(label),
        layout: Some(&layout),
        vertex: wgpu::VertexState { module: shader, entry_point: Some("vs_main"), compilation_options: Default::default(), buffers: &[] },
        primitive: wgpu::PrimitiveState { topology: wgpu::PrimitiveTopology::TriangleStrip, ..Default::default() },
        depth_stencil: None,
        multisample: wgpu::MultisampleState::default(),
        fragment: Some(wgpu::FragmentState {
            module: shader,
            entry_point: Some(fragment),
            compilation_options: Default::default(),
            targets: &[Some(format.into())],
        }),
        multiview_mask: None,
        cache: None,
    })
}

#[allow(clippy::too_many_arguments)]
fn create_texture(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    label: &str,
    format: wgpu::TextureFormat,
    [width, height, depth]: [u32; 3],
    dimension: wgpu::TextureDimension,
    bytes: &[u8],
    bytes_per_texel: u32,
) -> wgpu::TextureView {
    let size = wgpu::Extent3d { width, height, depth_or_array_layers: depth };
    let texture = device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size,
        mip_level_count: 1,
        sample_count: 1,
        dimension,
        format,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    });
    queue.write_texture(
        wgpu::TexelCopyTextureInfo { texture: &texture, mip_level: 0, origin: wgpu::Origin3d::ZERO, aspect: wgpu::TextureAspect::All },
        bytes,
        wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(width * bytes_per_texel), rows_per_image: Some(height) },
        size,
    );
    texture.create_view(&wgpu::TextureViewDescriptor::default())
}

fn create_overlay(device: &wgpu::Device, queue: &wgpu::Queue, overlay: &SliceOverlay) -> SlotOverlay {
    let size = wgpu::Extent3d { width: overlay.size[0] as u32, height: overlay.size[1] as u32, depth_or_array_layers: 1 };
    let texture = device.create_texture(&wgpu::TextureDescriptor {
        label: Some("cue overlay"),
        size,
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba8Unorm,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    });
    write_overlay(queue, &texture, overlay);
    let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
    SlotOverlay { texture, view, key: overlay.key }
}

fn write_overlay(queue: &wgpu::Queue, texture: &wgpu::Texture, overlay: &SliceOverlay) {
    let size = wgpu::Extent3d { width: overlay.size[0] as u32, height: overlay.size[1] as u32, depth_or_array_layers: 1 };
    queue.write_texture(
        wgpu::TexelCopyTextureInfo { texture, mip_level: 0, origin: wgpu::Origin3d::ZERO, aspect: wgpu::TextureAspect::All },
        &overlay.rgba,
        wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(4 * overlay.size[0] as u32), rows_per_image: Some(overlay.size[1] as u32) },
        size,
    );
}

/// One view's slice, drawn by egui-wgpu into the rectangle of its paint callback.
#[derive(Clone, Debug)]
pub struct SliceDraw {
    /// Identifies the on-screen view (its uniform buffer).
    pub slot: u64,
    /// The intensity volume.
    pub volume: VolumeId,
    /// Shape of the volume (and of the label volume, which shares its grid).
    pub shape: [usize; 3],
    /// The view's screen-to-voxel axes.
    pub axes: SliceAxes,
    /// Index along the view's normal axis.
    pub slice_index: usize,
    /// Intensity window.
    pub window: WindowLevel,
    /// Colormap of the intensities.
    pub colormap: Colormap,
    /// A label volume drawn over the slice, its style and opacity.
    pub labels: Option<(VolumeId, LabelStyle, f32)>,
    /// An image drawn over the slice and the labels (the anomaly map).
    pub overlay: Option<SliceOverlay>,
    /// Where the slice lies in the callback's rectangle, as fractions of it (left, top,
    /// right, bottom; outside 0-1 when zoomed in); the rest of the rectangle is black.
    pub image_in_view: [f32; 4],
}

impl SliceDraw {
    fn uniform_bytes(&self, has_colours: bool) -> [u8; UNIFORM_BYTES as usize] {
        let axes = &self.axes;
        let base = axes.voxel_at(self.shape, self.slice_index, 0, 0);
        let mut column_step = [0i32; 4];
        column_step[axes.column_axis] = if axes.column_reversed { -1 } else { 1 };
        let mut row_step = [0i32; 4];
        row_step[axes.row_axis] = if axes.row_reversed { -1 } else { 1 };
        let (width, height) = axes.size(self.shape);
        let (has_labels, outline, opacity) = match self.labels {
            Some((_, style, opacity)) => (1, i32::from(style == LabelStyle::Outline), opacity),
            None => (0, 0, 0.0),
        };
        // The overlay is used only where it matches the slice's size (the app builds it so).
        let has_overlay = self.overlay.as_ref().is_some_and(|o| o.size == [width, height]);
        let ints: [[i32; 4]; 4] = [
            [base[0] as i32, base[1] as i32, base[2] as i32, 0],
            column_step,
            row_step,
            [width as i32, height as i32, has_labels, outline],
        ];
        let floats = [self.window.low(), self.window.width, self.colormap as u32 as f32, opacity];
        let mut bytes = [0u8; UNIFORM_BYTES as usize];
        for (i, v) in ints.iter().flatten().enumerate() {
            bytes[4 * i..4 * i + 4].copy_from_slice(&v.to_ne_bytes());
        }
        for (i, v) in floats.iter().enumerate() {
            bytes[64 + 4 * i..68 + 4 * i].copy_from_slice(&v.to_ne_bytes());
        }
        bytes[80..84].copy_from_slice(&i32::from(has_overlay).to_ne_bytes());
        bytes[84..88].copy_from_slice(&i32::from(has_colours).to_ne_bytes());
        bytes
    }
}

impl SliceRenderer {
    /// Binds and updates one view's slice for this frame; nothing is rendered until
    /// [`SliceRenderer::render_images`], and an unchanged view renders nothing then.
    pub fn prepare(&mut self, device: &wgpu::Device, queue: &wgpu::Queue, draw_request: &SliceDraw) {
        let renderer = self;
        let this = draw_request;
        let Some(volume) = renderer.volumes.get(&this.volume) else { return };
        let label_id = this.labels.map(|(id, _, _)| id).filter(|id| renderer.volumes.contains_key(id));
        let colours = renderer.colours.get(&this.volume);
        let bound = (this.volume, label_id, colours.is_some());
        let mut stale = renderer.slots.get(&this.slot).is_none_or(|s| s.bound != bound);
        // The overlay texture: rewritten in place when only its content changes, recreated
        // (and the bind group with it) when its size changes or it appears or goes.
        let mut overlay = renderer.slots.get_mut(&this.slot).and_then(|s| s.overlay.take());
        let mut overlay_written = false;
        let same_size = |o: &SlotOverlay, new: &SliceOverlay| o.texture.width() as usize == new.size[0] && o.texture.height() as usize == new.size[1];
        match (&this.overlay, overlay.as_mut()) {
            (Some(new), Some(old)) if same_size(old, new) && old.key == new.key => {}
            (Some(new), Some(old)) if same_size(old, new) => {
                write_overlay(queue, &old.texture, new);
                old.key = new.key;
                overlay_written = true;
            }
            (Some(new), _) if new.size[0] > 0 && new.size[1] > 0 && new.rgba.len() == 4 * new.size[0] * new.size[1] => {
                overlay = Some(create_overlay(device, queue, new));
                stale = true;
            }
            (_, Some(_)) => {
                overlay = None;
                stale = true;
            }
            _ => {}
        }
        if stale {
            tracing::debug!(slot = this.slot, "binding slice textures");
            let uniforms = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("cue slice uniforms"),
                size: UNIFORM_BYTES,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let labels = label_id.and_then(|id| renderer.volumes.get(&id)).unwrap_or(&renderer.no_labels);
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("cue slice bind group"),
                layout: &renderer.bind_group_layout,
                entries: &[
                    wgpu::BindGroupEntry { binding: 0, resource: uniforms.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(volume) },
                    wgpu::BindGroupEntry { binding: 2, resource: wgpu::BindingResource::TextureView(labels) },
                    wgpu::BindGroupEntry { binding: 3, resource: wgpu::BindingResource::TextureView(&renderer.colormaps) },
                    wgpu::BindGroupEntry {
                        binding: 4,
                        resource: wgpu::BindingResource::TextureView(overlay.as_ref().map_or(&renderer.no_overlay, |o| &o.view)),
                    },
                    wgpu::BindGroupEntry { binding: 5, resource: wgpu::BindingResource::TextureView(colours.unwrap_or(&renderer.no_colours)) },
                ],
            });
            renderer.slots.insert(this.slot, Slot { uniforms, bind_group, bound, written: None, overlay: None, size: [0, 0], needs_render: true, image_in_view: [0.0, 0.0, 1.0, 1.0], blit: None });
        }
        let mut draw = this.clone();
        if label_id.is_none() {
            draw.labels = None;
        }
        if overlay.is_none() {
            draw.overlay = None;
        }
        let (width, height) = this.axes.size(this.shape);
        let Some(slot) = renderer.slots.get_mut(&this.slot) else { return };
        slot.overlay = overlay;
        let bytes = draw.uniform_bytes(bound.2);
        // Unchanged views (most of them, most frames) write and render nothing.
        let mut render = overlay_written;
        if slot.written != Some(bytes) {
            queue.write_buffer(&slot.uniforms, 0, &bytes);
            slot.written = Some(bytes);
            render = true;
        }
        slot.size = [width as u32, height as u32];
        slot.needs_render |= render;
        slot.image_in_view = this.image_in_view;
    }

    /// Draws one view's image (rendered by [`SliceRenderer::render_images`]) into the
    /// pass's viewport.
    pub fn paint(&self, slot: u64, render_pass: &mut wgpu::RenderPass<'_>) {
        let Some(blit) = self.slots.get(&slot).and_then(|s| s.blit.as_ref()) else { return };
        render_pass.set_pipeline(&self.blit_pipeline);
        render_pass.set_bind_group(0, &blit.bind_group, &[]);
        render_pass.draw(0..4, 0..1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_keeps_images_apart_and_within_the_side_limit() {
        let sizes: Vec<(u64, [u32; 2])> = (0..12).map(|slot| (slot, [240, if slot % 3 == 0 { 240 } else { 155 }])).collect();
        for max_side in [4096, 700, 240] {
            let (rects, [width, height]) = pack(&sizes, max_side);
            assert_eq!(rects.len(), sizes.len());
            for (slot, [w, h]) in &sizes {
                let [x, y, rw, rh] = rects[slot];
                assert_eq!((rw, rh), (*w, *h));
                assert!(x + rw <= width && y + rh <= height, "{slot} outside the atlas");
                assert!(rh > max_side || y + rh <= max_side, "{slot} taller than the limit allows");
            }
            for (a, ra) in &rects {
                for (b, rb) in &rects {
                    let apart = ra[0] + ra[2] <= rb[0] || rb[0] + rb[2] <= ra[0] || ra[1] + ra[3] <= rb[1] || rb[1] + rb[3] <= ra[1];
                    assert!(a == b || apart, "{a} and {b} overlap");
                }
            }
        }
        assert_eq!(pack(&sizes, 4096).1, [240, 4 * 240 + 8 * 155], "one column when it fits");
    }
}
