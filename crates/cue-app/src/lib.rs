//! The desktop application (eframe): the window, the frame loop and the one place where
//! commands change the state.

mod bench;
mod cpu;
mod gpu;
mod views;
mod volume_view;
pub mod tabs;
pub mod ui;
mod window;

pub use bench::FrameBench;
pub use cue_workspace::{findings, loader, maps, report, state};
pub use window::{run, run_demo, run_window, wgpu_setup};

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, channel};

use eframe::egui::{self, Rect};
use eframe::egui_wgpu;

use crate::ui::{Command, panels};
use cue_volume::View;
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
    findings_on_gpu: volume_view::FindingsOnGpu,
    /// The CPU path's 3-D image and what it was drawn from.
    volume_texture: Option<(String, egui::TextureHandle)>,
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
                match cue_model::display::share(&rs.instance, &rs.adapter, &rs.device, &rs.queue) {
                    Ok(device) => tracing::info!(%device, "the model can run on the display's device"),
                    Err(reason) => tracing::info!(%reason, "the model gets a wgpu device of its own"),
                }
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
            findings_on_gpu: Default::default(),
            volume_texture: None,
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

    /// How many 3-D images the GPU has rendered so far (`None` without wgpu).
    pub fn volume_images_rendered(&self) -> Option<u64> {
        self.render_state.as_ref().map(gpu::volume_images_rendered)
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

    /// The app drawing its slices on the CPU, as without wgpu or with `CUE_CPU_SLICES=1`
    /// (for tests of that path in a window that has wgpu).
    pub fn with_cpu_slices(mut self) -> Self {
        self.render_state = None;
        self
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
            if let Some(colours) = &sequence.colours {
                gpu::upload_colours(rs, display.gpu_id, sequence.volume.shape, colours);
            }
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
        // With a model loaded: findings come from its maps.
        if self.workspace.settings.tab == tabs::Tab::Viewer
            && self.workspace.maps.prompt_id().is_some()
            && let Some(study) = &self.workspace.study
        {
            let ws = &self.workspace;
            let panel = crate::ui::findings::FindingsPanel {
                state: &ws.findings,
                result: ws.findings.current(study, &ws.maps).map(|r| r.as_ref()),
                threshold: ws.findings.threshold_choice(&ws.maps),
                has_validation_threshold: matches!(ws.maps.status, cue_workspace::maps::ModelStatus::Ready { validation_threshold: Some(_), .. }),
                model_ready: ws.maps.prompt_id().is_some(),
            };
            egui::Panel::right("findings_panel").default_size(300.0).show(ui, |ui| commands.extend(crate::ui::findings::findings_panel_ui(ui, &panel)));
        }
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
                let (runs, precision) = (&self.workspace.runs, self.workspace.settings.model_precision);
                egui::ScrollArea::vertical().show(ui, |ui| {
                    commands.extend(tabs::evaluation_ui(ui, &mut self.evaluation, runs, model.as_ref(), prompt.as_ref(), precision))
                });
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

