//! The Ortho layout's fourth quadrant: the 3-D view (ray-marched on the GPU, a small CPU MIP
//! without one), with the findings' volumes uploaded when they change.

use std::sync::Arc;

use eframe::egui::{self, Align2, Color32, FontId, Pos2, Rect, Sense, Stroke, Vec2};
use eframe::egui_wgpu;

use crate::CueApp;
use crate::gpu::{self, FINDING_LABELS_ID, SCORES_ID};
use crate::ui::Command;
use cue_render::{Rays, ScoreScale, VolumeDraw, VolumeOverlay, render_mip_cpu};
use cue_workspace::findings::FindingsResult;

/// Longest side of the 3-D image on a GPU (pixels): the ray-march cost grows with its area.
const GPU_SIDE: f32 = 512.0;
/// The same on a CPU rasteriser (lavapipe), where a 512-pixel image takes most of a second.
const SOFTWARE_GPU_SIDE: f32 = 256.0;
/// Longest side of the CPU fallback's image (drawn on the UI thread when it changes).
const CPU_SIDE: f32 = 128.0;

/// What of the findings is on the GPU: the scores' source and the labels' list.
#[derive(Default)]
pub(crate) struct FindingsOnGpu {
    scores: Option<(u64, usize, usize, String)>,
    /// Held, not only compared: a freed list's address could come back for the next one.
    labels: Option<Arc<FindingsResult>>,
}

impl CueApp {
    /// Uploads the fused scores when the maps behind them changed, and the labels when the list
    /// changed and the 3-D view shows findings.
    fn upload_findings(&mut self, result: &Arc<FindingsResult>, overlay: VolumeOverlay) {
        let Some(rs) = &self.render_state else { return };
        let shape = result.findings.shape;
        let key = &result.key;
        let scores_key = (key.study.0, key.maps_received, key.sequence, key.prompt_id.clone());
        if overlay == VolumeOverlay::Scores && self.findings_on_gpu.scores.as_ref() != Some(&scores_key) {
            // Unmapped voxels never win a maximum.
            let scores: Vec<f32> = result.scores.iter().map(|&s| if s.is_finite() { s } else { f32::MIN }).collect();
            gpu::upload(rs, SCORES_ID, shape, &scores);
            self.findings_on_gpu.scores = Some(scores_key);
        }
        if overlay == VolumeOverlay::Findings && self.findings_on_gpu.labels.as_ref().is_none_or(|held| !Arc::ptr_eq(held, result)) {
            let labels: Vec<f32> = result.findings.labels.iter().map(|&l| l as f32).collect();
            gpu::upload(rs, FINDING_LABELS_ID, shape, &labels);
            self.findings_on_gpu.labels = Some(result.clone());
        }
    }

    /// Draws the 3-D view in `rect` and returns what the user asked of it.
    pub(crate) fn volume_view_ui(&mut self, ui: &mut egui::Ui, rect: Rect) -> Vec<Command> {
        let mut commands = Vec::new();
        let Some(study) = &self.workspace.study else { return commands };
        let result = self.workspace.findings.current(study, &self.workspace.maps).cloned();
        let (overlay, orbit, cursor, selected) = (study.volume_overlay, study.orbit, study.cursor, study.selected);
        if let Some(result) = &result {
            self.upload_findings(result, overlay);
        }
        let Some(study) = &self.workspace.study else { return commands };
        let sequence = &study.study.sequences[selected];
        let shape = sequence.volume.shape;
        let ppp = ui.ctx().pixels_per_point();
        let side = match &self.render_state {
            Some(rs) if rs.adapter.get_info().device_type == eframe::wgpu::DeviceType::Cpu => SOFTWARE_GPU_SIDE,
            Some(_) => GPU_SIDE,
            None => CPU_SIDE,
        };
        let scale = (side / (rect.width().max(rect.height()) * ppp)).min(1.0) * ppp;
        let size = [(rect.width() * scale).round().max(1.0) as u32, (rect.height() * scale).round().max(1.0) as u32];
        let scale_of = |r: &FindingsResult| ScoreScale { threshold: r.threshold, low: r.score_range.0, high: r.score_range.1, colormap: self.workspace.settings.map_colormap };
        let draw = VolumeDraw {
            volume: study.sequences[selected].gpu_id,
            scores: result.as_ref().map(|_| SCORES_ID),
            labels: result.as_ref().map(|_| FINDING_LABELS_ID),
            shape,
            voxel_size_mm: sequence.volume.voxel_size_mm(),
            orbit,
            window: mip_window(study.sequences[selected].window),
            overlay,
            scale: result.as_deref().map(scale_of),
            size,
        };
        let painter = ui.painter_at(rect);
        if self.render_state.is_some() {
            painter.add(egui_wgpu::Callback::new_paint_callback(rect, gpu::VolumeCallback(draw.clone())));
        } else {
            let key = format!("{draw:?}/{:?}", result.as_ref().map(|r| (&r.key, r.threshold)));
            if self.volume_texture.as_ref().is_none_or(|(k, _)| *k != key) {
                let scores = result.as_deref().map(|r| (r.scores.as_slice(), scale_of(r)));
                let labels = result.as_deref().map(|r| r.findings.labels.as_slice());
                let rgba = render_mip_cpu(&draw.rays(), size[0], size[1], shape, &sequence.volume.data, draw.window, overlay, scores, labels);
                let image = egui::ColorImage::from_rgba_unmultiplied([size[0] as usize, size[1] as usize], &rgba);
                self.volume_texture = Some((key, ui.ctx().load_texture("cue 3-D view", image, egui::TextureOptions::LINEAR)));
            }
            if let Some((_, texture)) = &self.volume_texture {
                painter.image(texture.id(), rect, Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)), Color32::WHITE);
            }
        }
        crosshair(&painter, rect, &draw.rays(), shape, cursor);
        painter.text(rect.left_top() + Vec2::new(6.0, 4.0), Align2::LEFT_TOP, "3-D (MIP)", FontId::proportional(12.0), Color32::from_gray(220));
        // Interaction first, so the buttons drawn after it take their clicks.
        let response = ui.interact(rect, ui.make_persistent_id("3-D view"), Sense::click_and_drag());
        if response.dragged_by(egui::PointerButton::Primary) {
            let d = response.drag_delta();
            commands.push(Command::TurnVolume { dx: d.x * 0.5, dy: d.y * 0.5 });
        }
        if response.hovered() {
            let (scroll, zoom) = ui.input(|i| (i.smooth_scroll_delta.y, i.zoom_delta()));
            let factor = if zoom != 1.0 { zoom } else { (scroll / 200.0).exp() };
            if factor != 1.0 {
                commands.push(Command::ZoomVolume(factor));
            }
        }
        if response.double_clicked() {
            commands.push(Command::ResetViews);
        }
        let buttons = Rect::from_min_size(rect.left_bottom() - Vec2::new(-6.0, 26.0), Vec2::new(rect.width() - 12.0, 22.0));
        ui.scope_builder(egui::UiBuilder::new().max_rect(buttons).layout(egui::Layout::left_to_right(egui::Align::Center)), |ui| {
            for (label, choice) in [("MIP", VolumeOverlay::None), ("MIP + scores", VolumeOverlay::Scores), ("MIP + findings", VolumeOverlay::Findings)] {
                if ui.selectable_label(overlay == choice, label).on_hover_text("What the 3-D view draws over the brain").clicked() {
                    commands.push(Command::SetVolumeOverlay(choice));
                }
            }
        });
        commands
    }
}

/// The crosshair in 3-D: the three lines through the cursor voxel across the volume.
fn crosshair(painter: &egui::Painter, rect: Rect, rays: &Rays, shape: [usize; 3], cursor: [usize; 3]) {
    let stroke = Stroke::new(1.0, Color32::from_rgba_unmultiplied(80, 220, 120, 160));
    let at = |q: [f32; 3]| {
        let [u, v] = rays.project(q);
        Pos2::new(rect.min.x + u * rect.width(), rect.min.y + v * rect.height())
    };
    let centre = cursor.map(|c| c as f32 + 0.5);
    for axis in 0..3 {
        let (mut from, mut to) = (centre, centre);
        from[axis] = 0.0;
        to[axis] = shape[axis] as f32;
        painter.line_segment([at(from), at(to)], stroke);
    }
}

/// The projection's window: the slice window moved up by half its width, since a maximum
/// along a ray is brighter than the slice's typical voxel (the slice window saturates it).
fn mip_window(slice: cue_volume::WindowLevel) -> cue_volume::WindowLevel {
    cue_volume::WindowLevel::from_range(slice.level, slice.high() + 0.5 * slice.width)
}
