//! The desktop application (eframe): the window, the frame loop and the one place where
//! commands change the state.

mod bench;
mod cpu;
mod gpu;
pub mod tabs;
pub mod ui;
mod window;

pub use bench::FrameBench;
pub use cue_workspace::{loader, maps, state};
pub use window::{run, run_demo, run_window};

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, channel};

use eframe::egui::{self, Rect, Vec2};
use eframe::egui_wgpu;

use crate::cpu::{cpu_slice_texture, overlay_texture};
use crate::ui::{Command, panels, view};
use cue_render::SliceDraw;
use cue_volume::{SliceAxes, View};
use cue_workspace::{Effect, Workspace};
use state::{Layout, Settings};

const SETTINGS_KEY: &str = "cue-settings";
pub use cue_workspace::DEMO_NAME;

/// The bundled demo case: `$CUE_DEMO_DIR`, else `assets/demo` of the source tree this binary
/// was built from, else `assets/demo` beside the executable.
pub fn demo_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CUE_DEMO_DIR") {
        return PathBuf::from(dir);
    }
    // This crate sits in crates/cue-app of the workspace whose root holds assets/.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap_or(std::path::Path::new("."));
    let source = root.join("assets/demo");
    if source.is_dir() {
        return source;
    }
    std::env::current_exe().ok().and_then(|e| e.parent().map(|p| p.join("assets/demo"))).unwrap_or(source)
}

/// The application: the workspace, and what only the window holds (the GPU, egui textures,
/// where views were drawn).
pub struct CueApp {
    /// Frame timing, when benchmarking.
    pub bench: Option<FrameBench>,
    /// Everything below the UI; changed only through [`Workspace::apply`].
    pub workspace: Workspace,
    /// The Training tab.
    pub training: tabs::TrainingTab,
    /// The Evaluation tab.
    pub evaluation: tabs::EvaluationTab,
    render_state: Option<egui_wgpu::RenderState>,
    title: String,
    hovered_view: Option<View>,
    screenshot: Option<Receiver<std::sync::Arc<egui::ColorImage>>>,
    screenshot_crop: Option<Rect>,
    view_rects: Vec<(View, Rect)>,
    cpu_textures: std::collections::HashMap<u64, (String, egui::TextureHandle)>,
    /// The CPU path's map overlays as egui textures, by view slot, with the overlay key.
    overlay_textures: std::collections::HashMap<u64, (u64, egui::TextureHandle)>,
    panel_fills: Option<PanelFills>,
}

/// Tests and the command line read the workspace through the app.
impl std::ops::Deref for CueApp {
    type Target = Workspace;
    fn deref(&self) -> &Workspace {
        &self.workspace
    }
}

impl std::ops::DerefMut for CueApp {
    fn deref_mut(&mut self) -> &mut Workspace {
        &mut self.workspace
    }
}

/// The panel colours of both themes, painted by clearing the frame instead of as shapes.
#[derive(Clone, Copy, Debug)]
struct PanelFills {
    dark: egui::Color32,
    light: egui::Color32,
}

impl CueApp {
    /// Creates the app; starts loading `paths` when given.
    pub fn new(cc: &eframe::CreationContext<'_>, paths: Vec<PathBuf>) -> Self {
        let settings = cc
            .storage
            .and_then(|s| eframe::get_value::<Settings>(s, SETTINGS_KEY))
            .unwrap_or_default();
        // CUE_CPU_SLICES=1 draws slices on the CPU even where wgpu is available.
        let cpu_slices = std::env::var_os("CUE_CPU_SLICES").is_some_and(|v| v != "0");
        let render_state = cc.wgpu_render_state.clone().filter(|_| !cpu_slices);
        match &render_state {
            Some(rs) => {
                gpu::install(rs);
                let info = rs.adapter.get_info();
                tracing::info!(adapter = %info.name, backend = ?info.backend, format = ?rs.target_format, "drawing slices with wgpu");
            }
            None => tracing::warn!("no wgpu render state: slices are drawn on the CPU"),
        }
        let wake = cc.egui_ctx.clone();
        let mut app = Self {
            bench: None,
            workspace: Workspace::new(settings, move || wake.request_repaint()),
            training: Default::default(),
            evaluation: Default::default(),
            render_state,
            title: String::new(),
            hovered_view: None,
            screenshot: None,
            screenshot_crop: None,
            view_rects: Vec::new(),
            cpu_textures: Default::default(),
            overlay_textures: Default::default(),
            panel_fills: None,
        };
        if !paths.is_empty() {
            app.apply(Command::Open(paths), &cc.egui_ctx);
        }
        if let Some(clip) = app.workspace.settings.model_path.clone() {
            let prompt = app.workspace.settings.prompt_path.clone();
            app.load_model(clip, prompt, true);
        }
        app
    }

    /// Paints the panels' background by clearing the frame to their colour, and stops egui
    /// filling them as shapes.
    ///
    /// On a software rasteriser every panel fill is a blended pass over its pixels: at
    /// 1400x900 under llvmpipe the fills cost 18 ms of a 56 ms frame, the clear nearly
    /// nothing (`cue bench frames`). Only for a real window: egui_kittest does not use the
    /// app's clear colour, so tests keep the painted fills.
    pub fn paint_panels_with_clear_colour(&mut self, ctx: &egui::Context) {
        let fill_of = |theme| ctx.style_of(theme).visuals.panel_fill;
        self.panel_fills = Some(PanelFills { dark: fill_of(egui::Theme::Dark), light: fill_of(egui::Theme::Light) });
        ctx.all_styles_mut(|style| style.visuals.panel_fill = egui::Color32::TRANSPARENT);
    }

    /// Loads a backbone and prompt on the inference worker and remembers the choice; without
    /// a prompt, the newest compatible one under `weights/` is used, else zero-shot mode.
    pub fn load_model(&mut self, clip: PathBuf, prompt: Option<PathBuf>, search_weights: bool) {
        self.workspace.load_model(clip, prompt, search_weights);
    }

    /// Creates the app and opens files with the sequences the user named for them.
    pub fn new_with_files(cc: &eframe::CreationContext<'_>, files: loader::OpenRequest) -> Self {
        let mut app = Self::new(cc, Vec::new());
        app.workspace.settings.remember(&files.iter().map(|(source, _)| source.path()).collect::<Vec<_>>());
        app.open_files(files, &cc.egui_ctx);
        app
    }

    /// How many slice images the GPU has rendered so far (`None` without wgpu).
    pub fn slice_images_rendered(&self) -> Option<u64> {
        self.render_state.as_ref().map(gpu::images_rendered)
    }

    /// How many views have a map overlay on the GPU (`None` without wgpu).
    pub fn overlays_on_gpu(&self) -> Option<usize> {
        self.render_state.as_ref().map(gpu::overlays_bound)
    }

    /// Whether a study is being loaded.
    pub fn is_loading(&self) -> bool {
        self.workspace.is_loading()
    }

    /// Creates the app and opens the bundled synthetic demo case (or the empty state when the
    /// demo files are missing).
    pub fn new_with_demo(cc: &eframe::CreationContext<'_>) -> Self {
        let mut app = Self::new(cc, Vec::new());
        let demo = demo_dir();
        if demo.is_dir() {
            app.workspace.open_files(loader::request_of(vec![demo]), Some(DEMO_NAME.to_owned()));
            app.workspace.settings.layout = Layout::Compare;
        } else {
            tracing::warn!("bundled demo not found at {}", demo.display());
        }
        app
    }

    /// Opens files, each with the sequence the user named or `None` to recognise it by name.
    pub fn open_files(&mut self, files: loader::OpenRequest, ctx: &egui::Context) {
        self.apply(Command::OpenFiles(files), ctx);
    }

    /// Uploads each sequence once; slices are then cut on the GPU.
    fn upload_volumes(&mut self) {
        let (Some(study), Some(rs)) = (&mut self.workspace.study, &self.render_state) else { return };
        if study.uploaded {
            return;
        }
        for (display, sequence) in study.sequences.iter().zip(&study.study.sequences) {
            gpu::upload(rs, display.gpu_id, sequence.volume.shape, &sequence.volume.data);
        }
        study.uploaded = true;
    }

    /// Applies one command through the workspace's reducer, then does what only the window
    /// can (screenshots, freeing textures).
    pub fn apply(&mut self, command: Command, ctx: &egui::Context) {
        self.workspace.apply(command);
        self.run_effects(ctx);
    }

    fn run_effects(&mut self, ctx: &egui::Context) {
        for effect in self.workspace.take_effects() {
            match effect {
                Effect::FreeGpuVolume(id) => {
                    if let Some(rs) = &self.render_state {
                        gpu::remove(rs, id);
                    }
                    self.cpu_textures.clear();
                    self.overlay_textures.clear();
                }
                Effect::Screenshot { view_only } => {
                    self.screenshot_crop = if view_only {
                        self.view_rects.iter().find(|(v, _)| *v == self.workspace.settings.active_view).map(|(_, r)| *r)
                    } else {
                        None
                    };
                    let (sender, receiver) = channel();
                    let wake = ctx.clone();
                    let callback = egui::ScreenshotCallback::new(move |image| {
                        let _ = sender.send(image);
                        wake.request_repaint();
                    });
                    self.screenshot = Some(receiver);
                    ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(callback));
                }
            }
        }
    }

    fn keyboard_commands(&self, ctx: &egui::Context) -> Vec<Command> {
        if ctx.egui_wants_keyboard_input() {
            return Vec::new();
        }
        let view = self.hovered_view.unwrap_or(self.workspace.settings.active_view);
        ctx.input(|i| {
            let mut commands = Vec::new();
            for key in [egui::Key::ArrowUp, egui::Key::PageUp] {
                if i.key_pressed(key) {
                    commands.push(Command::StepSlice { view, delta: 1 });
                }
            }
            for key in [egui::Key::ArrowDown, egui::Key::PageDown] {
                if i.key_pressed(key) {
                    commands.push(Command::StepSlice { view, delta: -1 });
                }
            }
            if i.key_pressed(egui::Key::R) {
                commands.push(Command::ResetViews);
            }
            if i.key_pressed(egui::Key::M) {
                commands.push(if i.modifiers.shift { Command::MapWholeView(view) } else { Command::MapSlice(view) });
            }
            for (key, view) in [(egui::Key::Num1, View::Axial), (egui::Key::Num2, View::Sagittal), (egui::Key::Num3, View::Coronal)] {
                if i.key_pressed(key) {
                    commands.push(Command::SetActiveView(view));
                }
            }
            if i.modifiers.command && i.key_pressed(egui::Key::O) {
                commands.push(if i.modifiers.shift { Command::OpenFolderDialog } else { Command::OpenDialog });
            }
            if i.key_pressed(egui::Key::F12) {
                commands.push(Command::Screenshot { view_only: i.modifiers.shift });
            }
            commands
        })
    }

    fn views_ui(&mut self, ui: &mut egui::Ui) -> Vec<Command> {
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
            };
            commands.extend(view::slice_view_ui(ui, rect, &spec));
            self.view_rects.push((*view, rect));
            if ui.rect_contains_pointer(rect) {
                hovered = Some(*view);
            }
        }
        self.hovered_view = hovered;
        // Overlays of views that show no map any more are freed (and leave the store's budget).
        self.workspace.maps.drop_overlays_except(&mapped_slots);
        self.overlay_textures.retain(|slot, _| mapped_slots.contains(slot));
        ui.advance_cursor_after_rect(area);
        commands
    }


    fn save_screenshot(&mut self, image: &egui::ColorImage, pixels_per_point: f32) {
        let image = match self.screenshot_crop.take() {
            Some(rect) => image.region(&rect, Some(pixels_per_point)),
            None => image.clone(),
        };
        let bytes: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_array()).collect();
        self.workspace.save_screenshot(image.size, bytes);
    }
}


impl eframe::App for CueApp {
    fn clear_color(&self, visuals: &egui::Visuals) -> [f32; 4] {
        match self.panel_fills {
            Some(fills) => if visuals.dark_mode { fills.dark } else { fills.light }.to_normalized_gamma_f32(),
            // eframe's default.
            None => egui::Color32::from_rgba_unmultiplied(12, 12, 12, 180).to_normalized_gamma_f32(),
        }
    }

    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        cue_volume::threads::forbid_blocking_work("UI");
        self.workspace.update(cue_workspace::workspace::DRAIN_BUDGET);
        self.run_effects(ctx);
        self.upload_volumes();
        self.bench_frame(ctx);
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).filter(|p| !p.as_os_str().is_empty()).collect()
        });
        if !dropped.is_empty() {
            self.apply(Command::Open(dropped), ctx);
        }
        if let Some(receiver) = &self.screenshot
            && let Ok(image) = receiver.try_recv()
        {
            self.screenshot = None;
            self.save_screenshot(&image, ctx.pixels_per_point());
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        let title = match &self.workspace.study {
            Some(s) => format!("CUE — {}", s.study.name),
            None => "CUE".to_owned(),
        };
        // Only on change: a viewport command every frame would keep the window repainting.
        if title != self.title {
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.title = title;
        }
        let mut commands = Vec::new();
        egui::Panel::top("top_bar").show(ui, |ui| commands.extend(panels::top_bar_ui(ui, &self.workspace.settings)));
        let loading = self.workspace.loading_line();
        let loading = self.workspace.loading.zip(loading);
        egui::Panel::bottom("status_bar").show(ui, |ui| commands.extend(panels::status_bar_ui(ui, &self.workspace.settings, self.workspace.study.as_ref(), loading)));
        egui::Panel::left("study_panel").default_size(240.0).show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                commands.extend(panels::study_panel_ui(ui, &self.workspace.settings, self.workspace.study.as_ref()));
                ui.separator();
                let has_study = self.workspace.study.is_some();
                commands.extend(panels::model_panel_ui(ui, &self.workspace.settings, &self.workspace.maps, has_study));
            });
        });
        if let Some(picker) = &self.workspace.series_picker {
            commands.extend(crate::ui::series::series_picker_ui(&ctx, picker));
        }
        if let Some(message) = self.workspace.message.clone() {
            egui::Panel::top("message").show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.label(egui::RichText::new(message).color(ui.visuals().warn_fg_color));
                    if ui.small_button("Dismiss").clicked() {
                        commands.push(Command::DismissMessage);
                    }
                });
            });
        }
        egui::CentralPanel::default_margins().show(ui, |ui| match self.workspace.settings.tab {
            tabs::Tab::Viewer => commands.extend(self.views_ui(ui)),
            tabs::Tab::Training => {
                let model = self.workspace.settings.model_path.clone();
                let runs = &self.workspace.runs;
                egui::ScrollArea::vertical().show(ui, |ui| commands.extend(tabs::training_ui(ui, &mut self.training, runs, model.as_ref())));
            }
            tabs::Tab::Evaluation => {
                let (model, prompt) = (self.workspace.settings.model_path.clone(), self.workspace.settings.prompt_path.clone());
                let runs = &self.workspace.runs;
                egui::ScrollArea::vertical()
                    .show(ui, |ui| commands.extend(tabs::evaluation_ui(ui, &mut self.evaluation, runs, model.as_ref(), prompt.as_ref())));
            }
        });
        commands.extend(self.keyboard_commands(&ctx));
        for command in commands {
            self.apply(command, &ctx);
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, SETTINGS_KEY, &self.workspace.settings);
    }
}

