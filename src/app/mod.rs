//! The desktop application (eframe): state, the frame loop and the one place where commands
//! change that state.

pub mod loader;
pub mod maps;
pub mod state;
pub mod tabs;

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, channel};

use eframe::egui::{self, Rect, Vec2};
use eframe::egui_wgpu;

use crate::render::{SliceDraw, SliceRenderer};
use crate::ui::{Command, panels, view};
use crate::volume::{DisplayConvention, SliceAxes, View, extract_slice};
use loader::{LoadEvent, LoadJob};
use state::{Layout, Settings, StudyView};

const SETTINGS_KEY: &str = "cue-settings";
/// Study name of the bundled demo: says it is synthetic wherever the name shows.
pub const DEMO_NAME: &str = "Synthetic demo (CUE phantom, not patient data)";

/// The bundled demo case: `$CUE_DEMO_DIR`, else `assets/demo` of the source tree this binary
/// was built from, else `assets/demo` beside the executable.
pub fn demo_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CUE_DEMO_DIR") {
        return PathBuf::from(dir);
    }
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/demo");
    if source.is_dir() {
        return source;
    }
    std::env::current_exe().ok().and_then(|e| e.parent().map(|p| p.join("assets/demo"))).unwrap_or(source)
}

/// Frame timing for `cue bench frames`: steps one slice per frame and records frame intervals.
pub struct FrameBench {
    /// Frames still to time.
    pub frames_left: usize,
    /// Intervals between frames, in seconds.
    pub intervals_s: Vec<f64>,
    /// Volume bytes uploaded to the GPU when timing started.
    pub uploaded_at_start: u64,
    /// Map the whole axial view while timing (a model must be loading).
    pub map_view: bool,
    /// With `map_view`: only the cursor's axial slice.
    pub one_slice: bool,
    /// With `map_view`: step nothing and leave the window idle until this many maps have
    /// arrived, then report the mapping rate with the window open.
    pub hold_until_maps: Option<usize>,
    last: Option<std::time::Instant>,
    rss_at_start: Option<u64>,
}

impl FrameBench {
    /// Times `frames` frames once the study is on screen.
    pub fn new(frames: usize) -> Self {
        Self {
            frames_left: frames,
            intervals_s: Vec::new(),
            uploaded_at_start: 0,
            map_view: false,
            one_slice: false,
            hold_until_maps: None,
            last: None,
            rss_at_start: None,
        }
    }
}

/// The application.
pub struct CueApp {
    /// Frame timing, when benchmarking.
    pub bench: Option<FrameBench>,
    /// Persisted settings.
    pub settings: Settings,
    /// The open study.
    pub study: Option<StudyView>,
    /// A study being loaded.
    pub loading: Option<LoadJob>,
    /// The last error, shown until dismissed.
    pub message: Option<String>,
    /// Anomaly maps: the inference worker and what it returned.
    pub maps: maps::MapState,
    /// The Training tab.
    pub training: tabs::TrainingTab,
    /// The Evaluation tab.
    pub evaluation: tabs::EvaluationTab,
    render_state: Option<egui_wgpu::RenderState>,
    next_gpu_id: u64,
    title: String,
    rename_loaded: Option<String>,
    hovered_view: Option<View>,
    dialog: Option<Receiver<Vec<PathBuf>>>,
    model_dialog: Option<Receiver<(bool, PathBuf)>>,
    export: Option<Receiver<String>>,
    download: Option<Receiver<Result<PathBuf, String>>>,
    screenshot: Option<Receiver<std::sync::Arc<egui::ColorImage>>>,
    screenshot_crop: Option<Rect>,
    view_rects: Vec<(View, Rect)>,
    cpu_textures: std::collections::HashMap<u64, (String, egui::TextureHandle)>,
    panel_fills: Option<PanelFills>,
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
                SliceRenderer::install(rs);
                let info = rs.adapter.get_info();
                tracing::info!(adapter = %info.name, backend = ?info.backend, format = ?rs.target_format, "drawing slices with wgpu");
            }
            None => tracing::warn!("no wgpu render state: slices are drawn on the CPU"),
        }
        let mut app = Self {
            bench: None,
            settings,
            study: None,
            loading: None,
            message: None,
            maps: maps::MapState::new(&cc.egui_ctx),
            training: Default::default(),
            evaluation: Default::default(),
            render_state,
            next_gpu_id: 1,
            title: String::new(),
            rename_loaded: None,
            hovered_view: None,
            dialog: None,
            model_dialog: None,
            export: None,
            download: None,
            screenshot: None,
            screenshot_crop: None,
            view_rects: Vec::new(),
            cpu_textures: Default::default(),
            panel_fills: None,
        };
        if !paths.is_empty() {
            app.open(paths, &cc.egui_ctx);
        }
        if let Some(clip) = app.settings.model_path.clone() {
            let prompt = app.settings.prompt_path.clone();
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
        self.settings.model_path = Some(clip.clone());
        self.settings.prompt_path = prompt.clone();
        self.maps.load(crate::infer::ModelSpec {
            clip,
            prompt,
            prompt_dir: search_weights.then(maps::default_prompt_dir),
            device: crate::model::device::DeviceChoice::Auto,
        });
    }

    /// The sequences shown in `view` in the current layout.
    fn sequences_in(&self, view: View) -> Vec<usize> {
        let (cells, _) = self.cells();
        let mut out: Vec<usize> = cells.into_iter().filter(|(v, _)| *v == view).map(|(_, s)| s).collect();
        out.dedup();
        out
    }

    /// Creates the app and opens files with the sequences the user named for them.
    pub fn new_with_files(cc: &eframe::CreationContext<'_>, files: loader::OpenRequest) -> Self {
        let mut app = Self::new(cc, Vec::new());
        app.settings.remember(&files.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>());
        app.open_files(files, &cc.egui_ctx);
        app
    }

    /// How many slice images the GPU has rendered so far (`None` without wgpu).
    pub fn slice_images_rendered(&self) -> Option<u64> {
        self.render_state.as_ref().map(SliceRenderer::images_rendered)
    }

    /// How many views have a map overlay on the GPU (`None` without wgpu).
    pub fn overlays_on_gpu(&self) -> Option<usize> {
        self.render_state.as_ref().map(SliceRenderer::overlays_bound)
    }

    /// Whether a study is being loaded.
    pub fn is_loading(&self) -> bool {
        self.loading.is_some()
    }

    /// Creates the app and opens the bundled synthetic demo case (or the empty state when the
    /// demo files are missing).
    pub fn new_with_demo(cc: &eframe::CreationContext<'_>) -> Self {
        let mut app = Self::new(cc, Vec::new());
        let demo = demo_dir();
        if demo.is_dir() {
            let ctx = cc.egui_ctx.clone();
            app.loading = Some(LoadJob::start(vec![(demo, None)], move || ctx.request_repaint()));
            app.rename_loaded = Some(DEMO_NAME.to_owned());
            app.settings.layout = Layout::Compare;
        } else {
            tracing::warn!("bundled demo not found at {}", demo.display());
        }
        app
    }

    fn open(&mut self, paths: Vec<PathBuf>, ctx: &egui::Context) {
        self.settings.remember(&paths);
        self.open_files(paths.into_iter().map(|p| (p, None)).collect(), ctx);
    }

    /// Opens files, each with the sequence the user named or `None` to recognise it by name.
    pub fn open_files(&mut self, files: loader::OpenRequest, ctx: &egui::Context) {
        self.rename_loaded = None;
        let ctx = ctx.clone();
        self.loading = Some(LoadJob::start(files, move || ctx.request_repaint()));
    }

    fn finish_loading(&mut self, mut study: crate::volume::Study) {
        if let Some(name) = self.rename_loaded.take() {
            study.name = name;
        }
        if let (Some(old), Some(rs)) = (&self.study, &self.render_state) {
            for s in &old.sequences {
                SliceRenderer::remove(rs, s.gpu_id);
            }
        }
        let view = StudyView::new(study, self.next_gpu_id);
        self.next_gpu_id += view.sequences.len() as u64;
        self.cpu_textures.clear();
        self.study = Some(view);
    }

    /// Uploads each sequence once; slices are then cut on the GPU.
    fn upload_volumes(&mut self) {
        let (Some(study), Some(rs)) = (&mut self.study, &self.render_state) else { return };
        if study.uploaded {
            return;
        }
        for (display, sequence) in study.sequences.iter().zip(&study.study.sequences) {
            SliceRenderer::upload(rs, display.gpu_id, sequence.volume.shape, &sequence.volume.data);
        }
        study.uploaded = true;
    }

    /// Applies one command: the only place that changes the view state.
    pub fn apply(&mut self, command: Command, ctx: &egui::Context) {
        match command {
            Command::Open(paths) => self.open(paths, ctx),
            Command::OpenDialog => {
                let (sender, receiver) = channel();
                let spawned = std::thread::Builder::new().name("cue-file-dialog".into()).spawn(move || {
                    if let Some(files) = rfd::FileDialog::new()
                        .add_filter("NIfTI", &["nii", "gz", "hdr", "img"])
                        .set_title("Open NIfTI files")
                        .pick_files()
                    {
                        let _ = sender.send(files);
                    }
                });
                match spawned {
                    Ok(_) => self.dialog = Some(receiver),
                    Err(e) => self.message = Some(format!("cannot open the file dialog: {e}")),
                }
            }
            Command::LoadModel { clip, prompt, search_weights } => self.load_model(clip, prompt, search_weights),
            Command::ChooseModelDialog | Command::ChoosePromptDialog => {
                let model = matches!(command, Command::ChooseModelDialog);
                let (sender, receiver) = channel();
                let spawned = std::thread::Builder::new().name("cue-file-dialog".into()).spawn(move || {
                    let picked = if model {
                        rfd::FileDialog::new().set_title("Choose a CLIP model folder").pick_folder()
                    } else {
                        rfd::FileDialog::new().add_filter("CUE prompt", &["bpk"]).set_title("Choose a trained prompt").pick_file()
                    };
                    if let Some(path) = picked {
                        let _ = sender.send((model, path));
                    }
                });
                match spawned {
                    Ok(_) => self.model_dialog = Some(receiver),
                    Err(e) => self.message = Some(format!("cannot open the file dialog: {e}")),
                }
            }
            Command::CancelMapping => self.maps.cancel(),
            Command::MapAllViews => {
                // The sequences on screen in any view (Compare shows one orientation only).
                let mut sequences: Vec<usize> = self.cells().0.into_iter().map(|(_, s)| s).collect();
                sequences.sort_unstable();
                sequences.dedup();
                if let Some(study) = &self.study {
                    self.maps.map_views(study, View::ALL.iter().map(|v| (*v, sequences.clone())).collect());
                }
                if let Some(e) = self.maps.error.take() {
                    self.message = Some(e);
                }
            }
            Command::DownloadWeights => {
                let (sender, receiver) = channel();
                let wake = ctx.clone();
                let spawned = std::thread::Builder::new().name("cue-download".into()).spawn(move || {
                    use crate::model::weights::{DEFAULT_MODEL, fetch, hub_cache_dir};
                    let offline = std::env::var_os("HF_HUB_OFFLINE").is_some_and(|v| v != "0" && !v.is_empty());
                    let _ = sender.send(fetch(&hub_cache_dir(), DEFAULT_MODEL, offline).map_err(|e| e.to_string()));
                    wake.request_repaint();
                });
                match spawned {
                    Ok(_) => {
                        self.maps.downloading = true;
                        self.download = Some(receiver);
                    }
                    Err(e) => self.message = Some(format!("cannot start the download: {e}")),
                }
            }
            Command::ExportMapVolume => {
                let Some(study) = &self.study else { return };
                let view = self.settings.active_view;
                let sequence = self.sequences_in(view).first().copied().unwrap_or(study.selected);
                let (data, slices) = self.maps.map_volume(study, sequence, view);
                if slices == 0 {
                    self.message = Some(format!("no {} maps of {} to export yet", view.name(), study.study.sequences[sequence].kind.label()));
                    return;
                }
                let shape = study.study.shape();
                let affine = study.study.world_from_voxel();
                let name = format!("{}-{}-{}-map.nii.gz", study.study.name, study.study.sequences[sequence].kind.label(), view.name());
                let (sender, receiver) = channel();
                let wake = ctx.clone();
                let spawned = std::thread::Builder::new().name("cue-export".into()).spawn(move || {
                    let Some(path) = rfd::FileDialog::new().set_file_name(name).save_file() else { return };
                    let options = crate::volume::WriteOptions { descrip: format!("CUE anomaly map ({})", view.name()), ..Default::default() };
                    let result = crate::volume::write_nifti1(&path, &shape, &crate::volume::VoxelData::F32(data), &affine, &options);
                    let _ = sender.send(match result {
                        Ok(()) => format!("Saved {slices} mapped slices: {}", path.display()),
                        Err(e) => e.to_string(),
                    });
                    wake.request_repaint();
                });
                match spawned {
                    Ok(_) => self.export = Some(receiver),
                    Err(e) => self.message = Some(format!("cannot start the export: {e}")),
                }
            }
            Command::MapSlice(view) | Command::MapWholeView(view) => {
                let whole = matches!(command, Command::MapWholeView(_));
                let sequences = self.sequences_in(view);
                if let Some(study) = &self.study {
                    if whole {
                        self.maps.map_view(study, view, &sequences);
                    } else {
                        self.maps.map_slice(study, view, &sequences);
                    }
                }
                if let Some(e) = self.maps.error.take() {
                    self.message = Some(e);
                }
            }
            Command::SetLayout(layout) => self.settings.layout = layout,
            Command::SetTab(tab) => self.settings.tab = tab,
            Command::SetActiveView(view) => self.settings.active_view = view,
            Command::ToggleConvention => {
                self.settings.convention = match self.settings.convention {
                    DisplayConvention::Radiological => DisplayConvention::Neurological,
                    DisplayConvention::Neurological => DisplayConvention::Radiological,
                }
            }
            Command::Screenshot { view_only } => {
                self.screenshot_crop = if view_only {
                    self.view_rects.iter().find(|(v, _)| *v == self.settings.active_view).map(|(_, r)| *r)
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
            other => {
                let Some(study) = &mut self.study else { return };
                match other {
                    Command::SetCursor(voxel) => study.cursor = voxel,
                    Command::StepSlice { view, delta } => {
                        let axis = view.normal_axis();
                        let n = study.study.shape()[axis] as i64;
                        study.cursor[axis] = (study.cursor[axis] as i64 + i64::from(delta)).clamp(0, n - 1) as usize;
                    }
                    Command::Zoom { view, factor, about } => {
                        let t = study.transform_mut(view);
                        let zoom = (t.zoom * factor).clamp(0.1, 40.0);
                        let applied = zoom / t.zoom;
                        // Keep the point under the pointer fixed.
                        t.pan = about - (about - t.pan) * applied;
                        t.zoom = zoom;
                    }
                    Command::Pan { view, delta } => study.transform_mut(view).pan += delta,
                    Command::AdjustWindow { sequence, dx, dy } => {
                        if let Some(d) = study.sequences.get_mut(sequence) {
                            let step = d.auto_window.width.max(1e-6) / 300.0;
                            d.window.width = (d.window.width + dx * step).max(step * 0.1);
                            d.window.level -= dy * step;
                        }
                    }
                    Command::ResetViews => study.transforms = Default::default(),
                    Command::SelectSequence(i) => study.selected = i,
                    Command::AssignSequence { index, kind } => {
                        // Reload with the user's choice: labels and intensities resample differently.
                        let files: loader::OpenRequest = study
                            .study
                            .sequences
                            .iter()
                            .enumerate()
                            .map(|(i, s)| {
                                let kind = if i == index { kind.clone() } else { s.kind.clone() };
                                (s.volume.source.path.clone(), Some(kind))
                            })
                            .collect();
                        let name = study.study.name.clone();
                        self.open_files(files, ctx);
                        self.rename_loaded = Some(name);
                    }
                    _ => {}
                }
            }
        }
    }

    fn keyboard_commands(&self, ctx: &egui::Context) -> Vec<Command> {
        if ctx.egui_wants_keyboard_input() {
            return Vec::new();
        }
        let view = self.hovered_view.unwrap_or(self.settings.active_view);
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
                commands.push(Command::OpenDialog);
            }
            if i.key_pressed(egui::Key::F12) {
                commands.push(Command::Screenshot { view_only: i.modifiers.shift });
            }
            commands
        })
    }

    /// The (orientation, sequence) of every cell of the current layout, row by row, and the
    /// number of columns.
    fn cells(&self) -> (Vec<(View, usize)>, usize) {
        let Some(study) = &self.study else { return (Vec::new(), 1) };
        match self.settings.layout {
            Layout::Ortho => (View::ALL.iter().map(|v| (*v, study.selected)).collect(), 2),
            Layout::Compare => {
                let visible = study.visible_indices();
                let columns = visible.len().clamp(1, 4);
                (visible.into_iter().map(|s| (self.settings.active_view, s)).collect(), columns)
            }
            Layout::Grid => {
                let cells = study.visible_indices().into_iter().flat_map(|s| View::ALL.map(|v| (v, s))).collect();
                (cells, 3)
            }
        }
    }

    fn views_ui(&mut self, ui: &mut egui::Ui) -> Vec<Command> {
        let mut commands = Vec::new();
        let (cells, columns) = self.cells();
        let Some(study) = &self.study else {
            ui.vertical_centered(|ui| {
                ui.add_space(ui.available_height() * 0.35);
                if let Some(job) = &self.loading {
                    crate::ui::busy_ui(ui);
                    ui.label(format!("Loading {} ({}/{})", job.what, job.progress.0, job.progress.1));
                } else {
                    ui.heading("No study open");
                    ui.label("Open NIfTI files or a study folder with File › Open (Ctrl+O), or drop them here.");
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
        let labels = study.label_index().filter(|_| self.settings.show_labels).map(|i| study.sequences[i].gpu_id);
        let mut hovered = None;
        self.view_rects.clear();
        for (n, (view, sequence)) in cells.iter().enumerate() {
            let (row, column) = (n / columns, n % columns);
            let min = area.min + Vec2::new(column as f32 * (cell_size.x + gap), row as f32 * (cell_size.y + gap));
            let rect = Rect::from_min_size(min, cell_size);
            let axes = SliceAxes::new(*view, self.settings.convention);
            let display = &study.sequences[*sequence];
            let slot = n as u64;
            let slice_index = study.cursor[view.normal_axis()];
            let native = self.maps.map_of(study, *sequence, *view, slice_index).map(|m| (m, None));
            let found = native.or_else(|| {
                self.settings
                    .map_cross_orientation
                    .then(|| self.maps.cross_map(study, *sequence, *view, slice_index))
                    .flatten()
                    .map(|(m, from)| (m, Some(from)))
            });
            let on_gpu = self.render_state.is_some();
            let mut gpu_overlay = None;
            let overlay = found.map(|(map, from_view)| {
                let cached = self.maps.overlay(slot, &map, *view, shape, slice_index, &self.settings);
                // With wgpu the slice shader draws the map; otherwise egui draws it as an image.
                let texture = if on_gpu {
                    gpu_overlay = Some(cached.for_gpu());
                    None
                } else {
                    Some(cached.texture(ui.ctx(), slot))
                };
                view::MapOverlay { texture, map, colormap: self.settings.map_colormap, threshold: self.settings.map_threshold, from_view }
            });
            let gpu = self.render_state.as_ref().map(|_| SliceDraw {
                slot,
                volume: display.gpu_id,
                shape,
                axes,
                slice_index,
                window: display.window,
                colormap: display.colormap,
                labels: labels.map(|id| (id, self.settings.label_style, self.settings.label_opacity)),
                overlay: gpu_overlay,
                // Set by the view, which knows where the slice lies.
                image_in_view: [0.0, 0.0, 1.0, 1.0],
            });
            let cpu_texture = if gpu.is_none() {
                Some(cpu_slice_texture(&mut self.cpu_textures, ui.ctx(), slot, study, *sequence, *view, &self.settings))
            } else {
                None
            };
            let spec = view::SliceViewSpec {
                slot,
                overlay,
                map_on_click: self.settings.map_on_click && self.maps.prompt_id().is_some(),
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
                colour_bar: (display.colormap != crate::render::Colormap::Gray).then_some((display.colormap, display.window)),
            };
            commands.extend(view::slice_view_ui(ui, rect, &spec));
            self.view_rects.push((*view, rect));
            if ui.rect_contains_pointer(rect) {
                hovered = Some(*view);
            }
        }
        self.hovered_view = hovered;
        ui.advance_cursor_after_rect(area);
        commands
    }

    fn bench_frame(&mut self, ctx: &egui::Context) {
        let (Some(bench), Some(study)) = (&mut self.bench, &mut self.study) else { return };
        if !study.uploaded && self.render_state.is_some() {
            return;
        }
        let uploaded = self.render_state.as_ref().map_or(0, SliceRenderer::uploaded_bytes);
        if bench.map_view && bench.last.is_none() {
            match &self.maps.status {
                maps::ModelStatus::Ready { .. } => {
                    let sequences = study.visible_indices();
                    if bench.one_slice {
                        self.maps.map_slice(study, View::Axial, &sequences[..sequences.len().min(1)]);
                    } else {
                        self.maps.map_view(study, View::Axial, &sequences);
                    }
                }
                maps::ModelStatus::Failed(e) => {
                    println!("{}", serde_json::json!({ "error": e }));
                    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                    self.bench = None;
                    return;
                }
                _ => {
                    ctx.request_repaint();
                    return;
                }
            }
        }
        let now = std::time::Instant::now();
        if let Some(target) = bench.hold_until_maps {
            // Frames come only from the worker's events and the progress display here.
            let start = *bench.last.get_or_insert(now);
            bench.intervals_s.push(0.0);
            let received = self.maps.maps.len();
            // A whole-view job that ended (or was cancelled) early also ends the run.
            if received >= target || (!bench.one_slice && self.maps.job.is_none()) {
                let seconds = (now - start).as_secs_f64();
                println!(
                    "{}",
                    serde_json::json!({
                        "layout": format!("{:?}", self.settings.layout),
                        "maps_received": received,
                        "seconds": seconds,
                        "seconds_per_map": seconds / received.max(1) as f64,
                        "last_map_latency_ms": self.maps.last_latency_ms,
                        "frames_drawn": bench.intervals_s.len(),
                    })
                );
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                self.bench = None;
            }
            return;
        }
        match bench.last {
            None => {
                bench.uploaded_at_start = uploaded;
                bench.rss_at_start = crate::process::memory_status_bytes("VmRSS");
            }
            Some(last) => {
                bench.intervals_s.push((now - last).as_secs_f64());
                bench.frames_left = bench.frames_left.saturating_sub(1);
            }
        }
        bench.last = Some(now);
        if bench.frames_left == 0 {
            let mut sorted = bench.intervals_s.clone();
            sorted.sort_by(f64::total_cmp);
            let median = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
            let p95 = sorted.get(sorted.len() * 95 / 100).copied().unwrap_or(f64::NAN);
            let report = serde_json::json!({
                "frames": sorted.len(),
                "layout": format!("{:?}", self.settings.layout),
                "median_frame_ms": median * 1e3,
                "p95_frame_ms": p95 * 1e3,
                "volume_bytes_uploaded_while_stepping": uploaded - bench.uploaded_at_start,
                "rss_growth_bytes": crate::process::memory_status_bytes("VmRSS").zip(bench.rss_at_start).map(|(a, b)| a as i64 - b as i64),
                "adapter": self.render_state.as_ref().map(|rs| rs.adapter.get_info().name),
                "mapping_while_timing": bench.map_view,
                "maps_received": self.maps.maps.len(),
                "mapping_job_left": self.maps.job.map(|j| j.total - j.done),
                "last_map_latency_ms": self.maps.last_latency_ms,
            });
            println!("{report}");
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            self.bench = None;
            return;
        }
        let axis = View::Axial.normal_axis();
        let n = study.study.shape()[axis];
        study.cursor[axis] = (study.cursor[axis] + 1) % n;
        ctx.request_repaint();
    }

    fn save_screenshot(&mut self, image: &egui::ColorImage, pixels_per_point: f32) {
        let image = match self.screenshot_crop.take() {
            Some(rect) => image.region(&rect, Some(pixels_per_point)),
            None => image.clone(),
        };
        let name = format!("cue-screenshot-{}.png", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()));
        let path = std::env::current_dir().unwrap_or_default().join(name);
        let [w, h] = image.size;
        let bytes: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_array()).collect();
        let result = image::RgbaImage::from_raw(w as u32, h as u32, bytes)
            .ok_or_else(|| "screenshot has the wrong size".to_owned())
            .and_then(|img| img.save(&path).map_err(|e| e.to_string()));
        self.message = Some(match result {
            Ok(()) => format!("Saved screenshot: {}", path.display()),
            Err(e) => format!("cannot save the screenshot ({e}): {}", path.display()),
        });
    }
}

/// The CPU fallback: a window-levelled slice as an egui texture, rebuilt only when it changes.
fn cpu_slice_texture(
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
    let image = match extract_slice(&volume.data, volume.shape, volume.voxel_size_mm(), view, slice_index, convention) {
        Ok(slice) => {
            let mut rgb: Vec<[u8; 3]> = slice.pixels.iter().map(|v| display.colormap.rgb(display.window.apply(*v))).collect();
            // The segmentation as the slice shader draws it, so the fallback shows it too.
            if let Some(label) = labels {
                let label_volume = &study.study.sequences[label].volume;
                if let Ok(label_slice) =
                    extract_slice(&label_volume.data, label_volume.shape, label_volume.voxel_size_mm(), view, slice_index, convention)
                {
                    crate::render::paint_labels(&mut rgb, &label_slice.pixels, slice.width, settings.label_style, settings.label_opacity);
                }
            }
            let pixels = rgb.into_iter().map(|[r, g, b]| egui::Color32::from_rgb(r, g, b)).collect();
            egui::ColorImage::new([slice.width, slice.height], pixels)
        }
        Err(_) => egui::ColorImage::new([1, 1], vec![egui::Color32::BLACK]),
    };
    let texture = ctx.load_texture(format!("cue slice {slot}"), image, egui::TextureOptions::NEAREST);
    let id = texture.id();
    cache.insert(slot, (key, texture));
    id
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
        crate::threads::forbid_blocking_work("UI");
        if let Some(job) = &mut self.loading {
            for event in job.poll() {
                match event {
                    LoadEvent::Progress { .. } => {}
                    LoadEvent::Loaded(study) => {
                        self.loading = None;
                        self.finish_loading(*study);
                    }
                    LoadEvent::Failed(message) => {
                        self.loading = None;
                        self.message = Some(message);
                    }
                }
            }
        }
        self.upload_volumes();
        self.maps.poll();
        if let Some(study) = &self.study {
            self.maps.start_queued(study);
        }
        self.training.poll();
        if let Some(receiver) = &self.download
            && let Ok(result) = receiver.try_recv()
        {
            self.download = None;
            self.maps.downloading = false;
            match result {
                Ok(folder) => self.load_model(folder, None, true),
                Err(e) => self.message = Some(format!("download failed: {e}")),
            }
        }
        if let Some(receiver) = &self.export
            && let Ok(message) = receiver.try_recv()
        {
            self.export = None;
            self.message = Some(message);
        }
        self.evaluation.poll();
        if let Some(e) = self.maps.error.take() {
            self.message = Some(e);
        }
        if let Some(receiver) = &self.model_dialog
            && let Ok((is_model, path)) = receiver.try_recv()
        {
            self.model_dialog = None;
            if is_model {
                self.load_model(path, None, true);
            } else if let Some(clip) = self.settings.model_path.clone() {
                self.load_model(clip, Some(path), false);
            }
        }
        self.bench_frame(ctx);
        if let Some(receiver) = &self.dialog
            && let Ok(files) = receiver.try_recv()
        {
            self.dialog = None;
            self.apply(Command::Open(files), ctx);
        }
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
        let title = match &self.study {
            Some(s) => format!("CUE — {}", s.study.name),
            None => "CUE".to_owned(),
        };
        // Only on change: a viewport command every frame would keep the window repainting.
        if title != self.title {
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.title = title;
        }
        let mut commands = Vec::new();
        egui::Panel::top("top_bar").show(ui, |ui| commands.extend(panels::top_bar_ui(ui, &self.settings)));
        let loading = self.loading.as_ref().map(|j| format!("Loading {} ({}/{})", j.what, j.progress.0, j.progress.1));
        egui::Panel::bottom("status_bar").show(ui, |ui| panels::status_bar_ui(ui, &self.settings, self.study.as_ref(), loading));
        egui::Panel::left("study_panel").default_size(240.0).show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                commands.extend(panels::study_panel_ui(ui, &mut self.settings, self.study.as_mut()));
                ui.separator();
                let has_study = self.study.is_some();
                commands.extend(panels::model_panel_ui(ui, &mut self.settings, &self.maps, has_study));
            });
        });
        if let Some(message) = self.message.clone() {
            egui::Panel::top("message").show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.label(egui::RichText::new(message).color(ui.visuals().warn_fg_color));
                    if ui.small_button("Dismiss").clicked() {
                        self.message = None;
                    }
                });
            });
        }
        egui::CentralPanel::default_margins().show(ui, |ui| match self.settings.tab {
            tabs::Tab::Viewer => commands.extend(self.views_ui(ui)),
            tabs::Tab::Training => {
                let model = self.settings.model_path.clone();
                egui::ScrollArea::vertical().show(ui, |ui| commands.extend(tabs::training_ui(ui, &mut self.training, model.as_ref())));
            }
            tabs::Tab::Evaluation => {
                let (model, prompt) = (self.settings.model_path.clone(), self.settings.prompt_path.clone());
                egui::ScrollArea::vertical().show(ui, |ui| tabs::evaluation_ui(ui, &mut self.evaluation, model.as_ref(), prompt.as_ref()));
            }
        });
        commands.extend(self.keyboard_commands(&ctx));
        for command in commands {
            self.apply(command, &ctx);
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, SETTINGS_KEY, &self.settings);
    }
}

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
    crate::threads::use_background_compute_pool();
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default().with_title("CUE").with_inner_size(size).with_drag_and_drop(true),
        persist_window: scratch_storage.is_none(),
        persistence_path: scratch_storage,
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
