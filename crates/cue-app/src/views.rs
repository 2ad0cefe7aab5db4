//! The central area of the viewer: every cell of the layout (a slice view each), and in the
//! Ortho layout the 3-D view in the fourth quadrant.

use eframe::egui::{self, Rect, Vec2};

use crate::CueApp;
use crate::cpu::{cpu_slice_texture, overlay_texture};
use crate::ui::{Command, view};
use cue_render::SliceDraw;
use cue_volume::SliceAxes;
use cue_workspace::state::Layout;

impl CueApp {
    pub(crate) fn views_ui(&mut self, ui: &mut egui::Ui) -> Vec<Command> {
        let mut commands = Vec::new();
        let (cells, columns) = self.workspace.cells();
        let Some(study) = &self.workspace.study else {
            ui.vertical_centered(|ui| {
                ui.add_space(ui.available_height() * 0.35);
                if let Some(line) = self.workspace.loading_line() {
                    crate::ui::busy_ui(ui);
                    ui.label(line);
                } else {
                    ui.heading("No study open");
                    ui.label("Open NIfTI files or a study folder (NIfTI or DICOM) with File › Open (Ctrl+O, Ctrl+Shift+O), or drop them here.");
                    ui.label("From a terminal: cue view FILE_OR_FOLDER…");
                }
            });
            return commands;
        };
        if cells.is_empty() {
            ui.label("No visible sequence: tick one in the study panel.");
            return commands;
        }
        let rows = cells.len().div_ceil(columns);
        let area = ui.available_rect_before_wrap();
        let gap = 2.0;
        let cell_size = Vec2::new(
            (area.width() - gap * (columns - 1) as f32) / columns as f32,
            (area.height() - gap * (rows - 1) as f32) / rows as f32,
        );
        let shape = study.study.shape();
        let voxel_size_mm = study.study.sequences[0].volume.voxel_size_mm();
        let labels = study.label_index().filter(|_| self.workspace.settings.show_labels).map(|i| study.sequences[i].gpu_id);
        let mut hovered = None;
        let mut mapped_slots = Vec::new();
        self.view_rects.clear();
        let findings = self.workspace.findings.current(study, &self.workspace.maps).cloned();
        let selected_finding = self.workspace.findings.selected;
        for (n, (view, sequence)) in cells.iter().enumerate() {
            let (row, column) = (n / columns, n % columns);
            let min = area.min + Vec2::new(column as f32 * (cell_size.x + gap), row as f32 * (cell_size.y + gap));
            let rect = Rect::from_min_size(min, cell_size);
            let axes = SliceAxes::new(*view, self.workspace.settings.convention);
            let display = &study.sequences[*sequence];
            let slot = n as u64;
            let slice_index = study.cursor[view.normal_axis()];
            let native = self.workspace.maps.map_of(study, *sequence, *view, slice_index).map(|m| (m, None));
            let found = native.or_else(|| {
                self.workspace.settings
                    .map_cross_orientation
                    .then(|| self.workspace.maps.cross_map(study, *sequence, *view, slice_index))
                    .flatten()
                    .map(|(m, from)| (m, Some(from)))
            });
            let on_gpu = self.render_state.is_some();
            let mut gpu_overlay = None;
            let overlay = found.map(|(map, from_view)| {
                let cached = self.workspace.maps.overlay(slot, &map, *view, shape, slice_index, &self.workspace.settings);
                mapped_slots.push(slot);
                // With wgpu the slice shader draws the map; otherwise egui draws it as an image.
                let texture = if on_gpu {
                    gpu_overlay = Some(cached.for_gpu());
                    None
                } else {
                    Some(overlay_texture(&mut self.overlay_textures, ui.ctx(), slot, cached))
                };
                view::MapOverlay { texture, map, colormap: self.workspace.settings.map_colormap, threshold: self.workspace.settings.map_threshold, from_view }
            });
            let gpu = self.render_state.as_ref().map(|_| SliceDraw {
                slot,
                volume: display.gpu_id,
                shape,
                axes,
                slice_index,
                window: display.window,
                colormap: display.colormap,
                labels: labels.map(|id| (id, self.workspace.settings.label_style, self.workspace.settings.label_opacity)),
                overlay: gpu_overlay,
                // Set by the view, which knows where the slice lies.
                image_in_view: [0.0, 0.0, 1.0, 1.0],
            });
            let cpu_texture = if gpu.is_none() {
                Some(cpu_slice_texture(&mut self.cpu_textures, ui.ctx(), slot, study, *sequence, *view, &self.workspace.settings))
            } else {
                None
            };
            let spec = view::SliceViewSpec {
                slot,
                overlay,
                map_on_click: self.workspace.settings.map_on_click && self.workspace.maps.prompt_id().is_some(),
                view: *view,
                sequence: *sequence,
                title: study.study.sequences[*sequence].kind.label(),
                shape,
                voxel_size_mm,
                axes,
                cursor: study.cursor,
                transform: study.transform(*view),
                gpu,
                cpu_texture,
                colour_bar: (display.colormap != cue_render::Colormap::Gray).then_some((display.colormap, display.window)),
                outlines: findings.as_ref().map(|f| crate::ui::findings::outline_segments(&f.findings.labels, shape, &axes, slice_index)).unwrap_or_default(),
                selected_finding,
            };
            commands.extend(view::slice_view_ui(ui, rect, &spec));
            self.view_rects.push((*view, rect));
            if ui.rect_contains_pointer(rect) {
                hovered = Some(*view);
            }
        }
        if self.workspace.settings.layout == Layout::Ortho && cells.len() == 3 {
            let rect = Rect::from_min_size(area.min + Vec2::new(cell_size.x + gap, cell_size.y + gap), cell_size);
            commands.extend(self.volume_view_ui(ui, rect));
        }
        self.hovered_view = hovered;
        // Overlays of views that show no map any more are freed (and leave the store's budget).
        self.workspace.maps.drop_overlays_except(&mapped_slots);
        self.overlay_textures.retain(|slot, _| mapped_slots.contains(slot));
        ui.advance_cursor_after_rect(area);
        commands
    }
}
