//! The CPU slice path (no wgpu, or `CUE_CPU_SLICES=1`): slices and map overlays as egui
//! textures, rebuilt only when what they show changes.

use eframe::egui;

use cue_volume::{View, extract_slice};
use cue_workspace::state::{Settings, StudyView};

/// The CPU path's texture of a view's map overlay, uploaded again only when the overlay
/// changes.
pub(crate) fn overlay_texture(
    cache: &mut std::collections::HashMap<u64, (u64, egui::TextureHandle)>,
    ctx: &egui::Context,
    slot: u64,
    overlay: &cue_workspace::maps::CachedOverlay,
) -> egui::TextureId {
    if let Some((key, texture)) = cache.get(&slot)
        && *key == overlay.key
    {
        return texture.id();
    }
    let image = egui::ColorImage::from_rgba_premultiplied(overlay.size, &overlay.rgba);
    let texture = ctx.load_texture(format!("cue map {slot}"), image, egui::TextureOptions::LINEAR);
    let id = texture.id();
    cache.insert(slot, (overlay.key, texture));
    id
}

/// The CPU fallback: a window-levelled slice as an egui texture, rebuilt only when it changes.
pub(crate) fn cpu_slice_texture(
    cache: &mut std::collections::HashMap<u64, (String, egui::TextureHandle)>,
    ctx: &egui::Context,
    slot: u64,
    study: &StudyView,
    sequence: usize,
    view: View,
    settings: &Settings,
) -> egui::TextureId {
    let convention = settings.convention;
    let display = &study.sequences[sequence];
    let volume = &study.study.sequences[sequence].volume;
    let colours = study.study.sequences[sequence].colours.as_deref();
    let slice_index = study.cursor[view.normal_axis()];
    let labels = study.label_index().filter(|_| settings.show_labels);
    let key = format!(
        "{sequence}/{view:?}/{slice_index}/{convention:?}/{:?}/{:?}/{labels:?}/{:?}/{}",
        display.window, display.colormap, settings.label_style, settings.label_opacity
    );
    if let Some((k, texture)) = cache.get(&slot)
        && *k == key
    {
        return texture.id();
    }
    // A colour volume's colours as stored, as the slice shader shows them; else the
    // intensities through the window and colormap.
    let slice = match colours {
        Some(colours) => extract_slice(colours, volume.shape, volume.voxel_size_mm(), view, slice_index, convention)
            .map(|s| (s.width, s.height, s.pixels)),
        None => extract_slice(&volume.data, volume.shape, volume.voxel_size_mm(), view, slice_index, convention)
            .map(|s| (s.width, s.height, s.pixels.iter().map(|v| display.colormap.rgb(display.window.apply(*v))).collect())),
    };
    let image = match slice {
        Ok((width, height, mut rgb)) => {
            // The segmentation as the slice shader draws it, so the fallback shows it too.
            if let Some(label) = labels {
                let label_volume = &study.study.sequences[label].volume;
                if let Ok(label_slice) =
                    extract_slice(&label_volume.data, label_volume.shape, label_volume.voxel_size_mm(), view, slice_index, convention)
                {
                    cue_render::paint_labels(&mut rgb, &label_slice.pixels, width, settings.label_style, settings.label_opacity);
                }
            }
            let pixels = rgb.into_iter().map(|[r, g, b]| egui::Color32::from_rgb(r, g, b)).collect();
            egui::ColorImage::new([width, height], pixels)
        }
        Err(_) => egui::ColorImage::new([1, 1], vec![egui::Color32::BLACK]),
    };
    let texture = ctx.load_texture(format!("cue slice {slot}"), image, egui::TextureOptions::NEAREST);
    let id = texture.id();
    cache.insert(slot, (key, texture));
    id
}
