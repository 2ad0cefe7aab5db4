//! One slice view: the slice (drawn on the GPU), crosshair, orientation letters, and the
//! mouse interaction of ITK-SNAP-like viewers.

use eframe::egui::{self, Align2, Color32, FontId, Pos2, Rect, Sense, Stroke, Vec2};
use eframe::egui_wgpu;

use super::Command;
use cue_workspace::state::ViewTransform;
use cue_render::SliceDraw;
use cue_volume::{SliceAxes, View};

/// An anomaly map shown over a slice.
pub struct MapOverlay {
    /// The map drawn in the displayed orientation with its colormap and threshold, as an egui
    /// texture; `None` where the slice's own GPU pass draws it.
    pub texture: Option<egui::TextureId>,
    /// The map (raw scores, image score).
    pub map: std::sync::Arc<cue_model::mapper::SliceMap>,
    /// Its colormap, for the colour bar.
    pub colormap: cue_render::Colormap,
    /// Fraction of the range below which nothing is drawn.
    pub threshold: f32,
    /// Set when the map was cut from another orientation's maps (that orientation).
    pub from_view: Option<View>,
}

/// Everything one view needs to draw itself.
pub struct SliceViewSpec<'a> {
    /// Unique per on-screen view (GPU uniform slot, egui id).
    pub slot: u64,
    /// The anomaly map of this slice, when computed.
    pub overlay: Option<MapOverlay>,
    /// Whether a click asks for this slice's map.
    pub map_on_click: bool,
    /// The orientation.
    pub view: View,
    /// The sequence shown.
    pub sequence: usize,
    /// Its name, shown in the corner.
    pub title: &'a str,
    /// Canonical shape of the study grid.
    pub shape: [usize; 3],
    /// Voxel size in millimetres.
    pub voxel_size_mm: [f64; 3],
    /// Screen axes of the view.
    pub axes: SliceAxes,
    /// The crosshair voxel.
    pub cursor: [usize; 3],
    /// Zoom and pan.
    pub transform: ViewTransform,
    /// The GPU draw, or `None` to use the CPU image.
    pub gpu: Option<SliceDraw>,
    /// A CPU-rendered slice texture, used when there is no GPU draw.
    pub cpu_texture: Option<egui::TextureId>,
    /// A colour bar with its intensity scale, for colormaps other than gray.
    pub colour_bar: Option<(cue_render::Colormap, cue_volume::WindowLevel)>,
    /// Outlines of the findings on this slice (label, segment in slice pixels).
    pub outlines: Vec<(u32, [[f32; 2]; 2])>,
    /// The finding selected in the list (outlined brighter).
    pub selected_finding: Option<u32>,
}

/// A vertical colour bar at the right of `rect`, high values at the top, with its range.
fn colour_bar_ui(painter: &egui::Painter, rect: Rect, colormap: cue_render::Colormap, window: cue_volume::WindowLevel) {
    let bar = Rect::from_min_size(Pos2::new(rect.max.x - 34.0, rect.center().y - rect.height() * 0.2), Vec2::new(10.0, rect.height() * 0.4));
    let steps = 48;
    for s in 0..steps {
        let t = 1.0 - (s as f32 + 0.5) / steps as f32;
        let [r, g, b] = colormap.rgb(t);
        let y0 = bar.min.y + bar.height() * s as f32 / steps as f32;
        let y1 = bar.min.y + bar.height() * (s + 1) as f32 / steps as f32;
        painter.rect_filled(Rect::from_x_y_ranges(bar.x_range(), y0..=y1), 0.0, Color32::from_rgb(r, g, b));
    }
    let font = FontId::proportional(10.0);
    let colour = Color32::from_gray(220);
    painter.text(bar.left_top() - Vec2::new(2.0, 2.0), Align2::RIGHT_TOP, format!("{:.4}", window.high()), font.clone(), colour);
    painter.text(bar.left_bottom() + Vec2::new(-2.0, 2.0), Align2::RIGHT_BOTTOM, format!("{:.4}", window.low()), font, colour);
}

/// The rectangle the slice occupies in `rect`: physical aspect kept, fitted, zoomed, panned.
pub fn image_rect(rect: Rect, spec: &SliceViewSpec<'_>) -> Rect {
    let (width, height) = spec.axes.size(spec.shape);
    let width_mm = width as f32 * spec.voxel_size_mm[spec.axes.column_axis] as f32;
    let height_mm = height as f32 * spec.voxel_size_mm[spec.axes.row_axis] as f32;
    let fit = (rect.width() / width_mm).min(rect.height() / height_mm);
    let scale = fit * spec.transform.zoom;
    Rect::from_center_size(rect.center() + Vec2::new(spec.transform.pan.x, spec.transform.pan.y), Vec2::new(width_mm * scale, height_mm * scale))
}

/// The canonical voxel under a screen position, `None` outside the slice.
pub fn voxel_at(image: Rect, spec: &SliceViewSpec<'_>, pos: Pos2) -> Option<[usize; 3]> {
    if !image.contains(pos) {
        return None;
    }
    let (width, height) = spec.axes.size(spec.shape);
    let column = (((pos.x - image.min.x) / image.width()) * width as f32).floor() as usize;
    let row = (((pos.y - image.min.y) / image.height()) * height as f32).floor() as usize;
    let slice_index = spec.cursor[spec.axes.normal_axis];
    Some(spec.axes.voxel_at(spec.shape, slice_index, column.min(width - 1), row.min(height - 1)))
}

/// The parts of `outer` that `inner` leaves uncovered, as at most four rectangles (above,
/// below, left and right of it).
pub fn margins(outer: Rect, inner: Rect) -> Vec<Rect> {
    let inner = inner.intersect(outer);
    if !inner.is_positive() {
        return vec![outer];
    }
    let candidates = [
        Rect::from_x_y_ranges(outer.x_range(), outer.min.y..=inner.min.y),
        Rect::from_x_y_ranges(outer.x_range(), inner.max.y..=outer.max.y),
        Rect::from_x_y_ranges(outer.min.x..=inner.min.x, inner.y_range()),
        Rect::from_x_y_ranges(inner.max.x..=outer.max.x, inner.y_range()),
    ];
    candidates.into_iter().filter(|r| r.is_positive()).collect()
}

/// Draws a view in `rect` and returns what the user asked of it.
pub fn slice_view_ui(ui: &mut egui::Ui, rect: Rect, spec: &SliceViewSpec<'_>) -> Vec<Command> {
    let mut commands = Vec::new();
    let id = ui.make_persistent_id(("slice view", spec.slot));
    let response = ui.interact(rect, id, Sense::click_and_drag());
    let painter = ui.painter_at(rect);
    let image = image_rect(rect, spec);
    // Large blended egui fills are what a software rasteriser is slowest at (black margins
    // around four Compare views cost 15 ms a frame under llvmpipe): the GPU path draws the
    // whole view, black margins included, in its one opaque pass; the CPU path fills only what
    // the slice leaves uncovered.
    if let Some(draw) = &spec.gpu {
        let mut draw = draw.clone();
        let relative = |p: Pos2| (p - rect.min) / rect.size();
        let (min, max) = (relative(image.min), relative(image.max));
        draw.image_in_view = [min.x, min.y, max.x, max.y];
        painter.add(egui_wgpu::Callback::new_paint_callback(rect, crate::gpu::SliceCallback(draw)));
    } else if let Some(texture) = spec.cpu_texture {
        for margin in margins(rect, image) {
            painter.rect_filled(margin, 0.0, Color32::BLACK);
        }
        painter.image(texture, image, Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)), Color32::WHITE);
    } else {
        painter.rect_filled(rect, 0.0, Color32::BLACK);
    }

    if let Some(texture) = spec.overlay.as_ref().and_then(|o| o.texture) {
        painter.image(texture, image, Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)), Color32::WHITE);
    }

    let (width, height) = spec.axes.size(spec.shape);
    crate::ui::findings::paint_outlines(&painter, image, (width, height), &spec.outlines, spec.selected_finding);

    // Crosshair through the centre of the cursor voxel.
    let (column, row, slice_index) = spec.axes.pixel_of(spec.shape, spec.cursor);
    let x = image.min.x + (column as f32 + 0.5) / width as f32 * image.width();
    let y = image.min.y + (row as f32 + 0.5) / height as f32 * image.height();
    let stroke = Stroke::new(1.0, Color32::from_rgba_unmultiplied(80, 220, 120, 160));
    painter.line_segment([Pos2::new(rect.min.x, y), Pos2::new(rect.max.x, y)], stroke);
    painter.line_segment([Pos2::new(x, rect.min.y), Pos2::new(x, rect.max.y)], stroke);

    // Orientation letters as labels, so they are readable by assistive tools and tests.
    let labels = spec.axes.edge_labels();
    let size = Vec2::splat(16.0);
    let letter = |ui: &mut egui::Ui, min: Pos2, c: char| {
        let text = egui::RichText::new(c.to_string()).color(Color32::from_rgb(240, 200, 80)).strong();
        ui.put(Rect::from_min_size(min, size), egui::Label::new(text).selectable(false));
    };
    let (centre, inset) = (rect.center(), 4.0);
    letter(ui, Pos2::new(rect.min.x + inset, centre.y - size.y / 2.0), labels.left);
    letter(ui, Pos2::new(rect.max.x - inset - size.x, centre.y - size.y / 2.0), labels.right);
    letter(ui, Pos2::new(centre.x - size.x / 2.0, rect.min.y + inset), labels.top);
    letter(ui, Pos2::new(centre.x - size.x / 2.0, rect.max.y - inset - size.y), labels.bottom);
    let count = spec.shape[spec.axes.normal_axis];
    painter.text(
        rect.left_top() + Vec2::new(6.0, 4.0),
        Align2::LEFT_TOP,
        format!("{} {} {}/{}", spec.title, spec.view.name(), slice_index + 1, count),
        FontId::proportional(12.0),
        Color32::from_gray(220),
    );

    if let Some(overlay) = &spec.overlay {
        let (low, high) = overlay.map.scores.iter().filter(|v| !v.is_nan()).fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
        // The bar shows raw scores from the threshold up.
        let window = cue_volume::WindowLevel::from_range(low + overlay.threshold * (high - low), high);
        colour_bar_ui(&painter, rect, overlay.colormap, window);
        // A label, so assistive tools and tests can read it.
        let caption = match overlay.from_view {
            Some(from) => format!("map from {} slices", from.name()),
            None => format!("anomaly score {:.4}", overlay.map.image_score),
        };
        let text = egui::RichText::new(caption).color(Color32::from_rgb(255, 170, 60));
        ui.put(Rect::from_min_size(rect.left_bottom() - Vec2::new(-6.0, 22.0), Vec2::new(200.0, 18.0)), egui::Label::new(text).selectable(false));
    } else if let Some((colormap, window)) = spec.colour_bar {
        colour_bar_ui(&painter, rect, colormap, window);
    }

    // Interaction.
    let (space_down, pointer) = ui.input(|i| (i.key_down(egui::Key::Space), i.pointer.interact_pos()));
    let primary = response.dragged_by(egui::PointerButton::Primary) || response.clicked_by(egui::PointerButton::Primary);
    if primary
        && !space_down
        && let Some(voxel) = pointer.and_then(|p| voxel_at(image, spec, p))
    {
        commands.push(Command::SetCursor(voxel));
        if spec.map_on_click && response.clicked_by(egui::PointerButton::Primary) {
            commands.push(Command::MapSlice(spec.view));
        }
    }
    if response.dragged_by(egui::PointerButton::Middle)
        || (space_down && response.dragged_by(egui::PointerButton::Primary))
    {
        commands.push(Command::Pan { view: spec.view, delta: screen_vec(response.drag_delta()) });
    }
    if response.dragged_by(egui::PointerButton::Secondary) {
        let d = response.drag_delta();
        commands.push(Command::AdjustWindow { sequence: spec.sequence, dx: d.x, dy: d.y });
    }
    if response.hovered() {
        // One slice per wheel event whatever its size; Ctrl+wheel and pinch arrive as zoom.
        let (steps, zoom) = ui.input(|i| {
            let steps: i32 = i
                .raw
                .events
                .iter()
                .filter_map(|e| match e {
                    egui::Event::MouseWheel { delta, modifiers, .. } if !modifiers.command && !modifiers.ctrl => {
                        Some(if delta.y > 0.0 { 1 } else if delta.y < 0.0 { -1 } else { 0 })
                    }
                    _ => None,
                })
                .sum();
            (steps, i.zoom_delta())
        });
        let about = pointer.map_or(Vec2::ZERO, |p| p - rect.center());
        if zoom != 1.0 {
            commands.push(Command::Zoom { view: spec.view, factor: zoom, about: screen_vec(about) });
        } else if steps != 0 {
            commands.push(Command::StepSlice { view: spec.view, delta: steps });
        }
    }
    commands
}

/// egui's offset as the workspace's.
fn screen_vec(v: Vec2) -> cue_workspace::state::ScreenVec {
    cue_workspace::state::ScreenVec::new(v.x, v.y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn area(r: Rect) -> f32 {
        r.width() * r.height()
    }

    #[test]
    fn margins_cover_exactly_what_the_image_leaves() {
        let outer = Rect::from_min_max(Pos2::new(10.0, 20.0), Pos2::new(410.0, 320.0));
        for inner in [
            Rect::from_min_max(Pos2::new(60.0, 20.0), Pos2::new(360.0, 320.0)), // pillarbox
            Rect::from_min_max(Pos2::new(10.0, 45.0), Pos2::new(410.0, 295.0)), // letterbox
            Rect::from_min_max(Pos2::new(100.0, 100.0), Pos2::new(200.0, 150.0)), // inside
            Rect::from_min_max(Pos2::new(-50.0, 0.0), Pos2::new(200.0, 500.0)), // panned off the edge
        ] {
            let parts = margins(outer, inner);
            let covered = inner.intersect(outer);
            let total: f32 = parts.iter().map(|r| area(*r)).sum::<f32>() + area(covered);
            assert!((total - area(outer)).abs() < 1e-2, "{inner:?}: {total} vs {}", area(outer));
            for (i, a) in parts.iter().enumerate() {
                assert!(outer.contains_rect(*a));
                assert!(!a.intersect(covered).is_positive(), "{a:?} overlaps the image");
                for b in &parts[i + 1..] {
                    assert!(!a.intersect(*b).is_positive(), "{a:?} overlaps {b:?}");
                }
            }
        }
    }

    #[test]
    fn margins_of_a_zoomed_or_absent_image() {
        let outer = Rect::from_min_max(Pos2::ZERO, Pos2::new(100.0, 100.0));
        assert!(margins(outer, outer.expand(30.0)).is_empty(), "an image over the whole view leaves nothing");
        let away = Rect::from_min_max(Pos2::new(200.0, 200.0), Pos2::new(300.0, 300.0));
        assert_eq!(margins(outer, away), vec![outer]);
    }
}
