//! The app's state: persisted settings, the open study and how each view shows it.

use std::path::PathBuf;

use cue_render::{Colormap, LabelStyle, VolumeId};
use cue_volume::{DisplayConvention, Study, View, WindowLevel};

use crate::loader::LoadedStudy;
use crate::map_store::{StudyId, VolumeId as MapVolumeId};

/// How the central area is divided.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Layout {
    /// Axial, sagittal and coronal views of the selected sequence.
    #[default]
    Ortho,
    /// One orientation, every visible sequence side by side.
    Compare,
    /// Sequences as rows, the three orientations as columns.
    Grid,
}

impl Layout {
    /// Every layout, in menu order.
    pub const ALL: [Layout; 3] = [Self::Ortho, Self::Compare, Self::Grid];

    /// Menu name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ortho => "Ortho",
            Self::Compare => "Compare",
            Self::Grid => "Grid",
        }
    }
}

/// Which page the central area shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Tab {
    /// The slice views.
    #[default]
    Viewer,
    /// Fitting a prompt.
    Training,
    /// Measuring one.
    Evaluation,
}

/// Settings kept between runs. Never patient data.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The layout.
    pub layout: Layout,
    /// Orientation shown in the Compare layout (and stepped by keys when no view is hovered).
    pub active_view: View,
    /// Radiological or neurological display.
    pub convention: DisplayConvention,
    /// Whether label maps are drawn over the images.
    pub show_labels: bool,
    /// Filled or outlined labels.
    pub label_style: LabelStyle,
    /// Label opacity, 0 to 1.
    pub label_opacity: f32,
    /// Most recently opened files and folders, newest first.
    pub recent: Vec<PathBuf>,
    /// The CLIP backbone (folder or .bpk) last loaded.
    pub model_path: Option<PathBuf>,
    /// The trained prompt last chosen (None: newest compatible under weights/, else zero-shot).
    pub prompt_path: Option<PathBuf>,
    /// Clicking a slice maps it.
    pub map_on_click: bool,
    /// Colormap of anomaly maps.
    pub map_colormap: cue_render::Colormap,
    /// Opacity of anomaly maps, 0 to 1.
    pub map_opacity: f32,
    /// Map values below this fraction of the slice's range are not drawn.
    pub map_threshold: f32,
    /// The page shown.
    pub tab: Tab,
    /// Show maps cut from another orientation's maps where a view has none of its own.
    pub map_cross_orientation: bool,
    /// Memory the map store may use, MiB (maps and their overlay textures).
    pub map_budget_mib: usize,
    /// Where the model runs: auto, gpu, cpu, or a `cue serve` server with its token file.
    pub model_device: cue_model::device::DeviceChoice,
    /// The frozen towers' number type (f32 unless the user chose a faster one).
    pub model_precision: cue_model::clip::Precision,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            layout: Layout::Ortho,
            active_view: View::Axial,
            convention: DisplayConvention::Radiological,
            show_labels: true,
            label_style: LabelStyle::Filled,
            label_opacity: 0.45,
            recent: Vec::new(),
            model_path: None,
            prompt_path: None,
            map_on_click: true,
            map_colormap: cue_render::Colormap::Inferno,
            map_opacity: 0.55,
            map_threshold: 0.5,
            tab: Tab::Viewer,
            map_cross_orientation: true,
            map_budget_mib: crate::map_store::DEFAULT_BUDGET_BYTES >> 20,
            model_device: cue_model::device::DeviceChoice::Auto,
            model_precision: cue_model::clip::Precision::F32,
        }
    }
}

/// The settings of how maps are made and drawn, as the model panel edits them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MapDisplay {
    /// Clicking a slice maps it.
    pub map_on_click: bool,
    /// Show maps cut from another orientation's maps where a view has none of its own.
    pub map_cross_orientation: bool,
    /// Colormap of anomaly maps.
    pub map_colormap: Colormap,
    /// Opacity of anomaly maps, 0 to 1.
    pub map_opacity: f32,
    /// Map values below this fraction of the slice's range are not drawn.
    pub map_threshold: f32,
}

impl Settings {
    /// How maps are made and drawn.
    pub fn map_display(&self) -> MapDisplay {
        MapDisplay {
            map_on_click: self.map_on_click,
            map_cross_orientation: self.map_cross_orientation,
            map_colormap: self.map_colormap,
            map_opacity: self.map_opacity,
            map_threshold: self.map_threshold,
        }
    }

    /// Sets how maps are made and drawn.
    pub fn set_map_display(&mut self, d: MapDisplay) {
        self.map_on_click = d.map_on_click;
        self.map_cross_orientation = d.map_cross_orientation;
        self.map_colormap = d.map_colormap;
        self.map_opacity = d.map_opacity.clamp(0.0, 1.0);
        self.map_threshold = d.map_threshold.clamp(0.0, 1.0);
    }

    /// Puts `paths` at the top of the recent list (at most ten entries).
    pub fn remember(&mut self, paths: &[PathBuf]) {
        for path in paths.iter().rev() {
            self.recent.retain(|p| p != path);
            self.recent.insert(0, path.clone());
        }
        self.recent.truncate(10);
    }
}

/// Zoom and pan of one orientation, shared by every view of it (so Compare and Grid views stay
/// in step).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ViewTransform {
    /// 1 fits the slice to the view.
    pub zoom: f32,
    /// Offset of the slice centre from the view centre, in points.
    pub pan: ScreenVec,
}

impl Default for ViewTransform {
    fn default() -> Self {
        Self { zoom: 1.0, pan: ScreenVec::ZERO }
    }
}

/// A 2-D offset on screen, in points (the state's own type: it knows nothing of egui).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ScreenVec {
    /// Rightwards.
    pub x: f32,
    /// Downwards.
    pub y: f32,
}

impl ScreenVec {
    /// No offset.
    pub const ZERO: Self = Self { x: 0.0, y: 0.0 };

    /// An offset of `x` right and `y` down.
    pub const fn new(x: f32, y: f32) -> Self {
        Self { x, y }
    }
}

impl std::ops::Add for ScreenVec {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self::new(self.x + o.x, self.y + o.y)
    }
}

impl std::ops::Sub for ScreenVec {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        Self::new(self.x - o.x, self.y - o.y)
    }
}

impl std::ops::Mul<f32> for ScreenVec {
    type Output = Self;
    fn mul(self, k: f32) -> Self {
        Self::new(self.x * k, self.y * k)
    }
}

impl std::ops::AddAssign for ScreenVec {
    fn add_assign(&mut self, o: Self) {
        *self = *self + o;
    }
}

/// How one sequence is displayed.
#[derive(Clone, Debug)]
pub struct SequenceDisplay {
    /// Shown in Compare and Grid layouts.
    pub visible: bool,
    /// Intensity window.
    pub window: WindowLevel,
    /// The automatic window, restored by "Auto".
    pub auto_window: WindowLevel,
    /// Colormap.
    pub colormap: Colormap,
    /// The sequence's texture on the GPU.
    pub gpu_id: VolumeId,
}

/// The view of a study carried over a reload of it ([`StudyView::kept_view`]).
#[derive(Clone, Debug)]
pub struct KeptView {
    shape: [usize; 3],
    cursor: [usize; 3],
    selected: usize,
    transforms: [ViewTransform; 3],
    orbit: cue_render::Orbit,
    volume_overlay: cue_render::VolumeOverlay,
    displays: Vec<(bool, WindowLevel, Colormap)>,
}

/// An open study and its display state.
pub struct StudyView {
    /// The study.
    pub study: Study,
    /// Its identity (a fingerprint of its volumes): what its maps are keyed by.
    pub id: StudyId,
    /// Each sequence's volume fingerprint, in the order of `study.sequences`.
    pub volume_ids: Vec<MapVolumeId>,
    /// Display state, one per sequence of `study`.
    pub sequences: Vec<SequenceDisplay>,
    /// The crosshair: a canonical voxel.
    pub cursor: [usize; 3],
    /// The sequence shown in the Ortho layout.
    pub selected: usize,
    /// Zoom and pan per orientation, indexed by [`View::normal_axis`].
    pub transforms: [ViewTransform; 3],
    /// Whether the volumes are on the GPU.
    pub uploaded: bool,
    /// The 3-D view's camera.
    pub orbit: cue_render::Orbit,
    /// What the 3-D view draws over the brain.
    pub volume_overlay: cue_render::VolumeOverlay,
}

impl StudyView {
    /// Display state for a freshly loaded study: cursor at the centre, automatic windows.
    pub fn new(loaded: LoadedStudy, first_gpu_id: VolumeId) -> Self {
        let LoadedStudy { study, id, volume_ids } = loaded;
        let sequences = study
            .sequences
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let window = if s.kind.is_label() {
                    WindowLevel::from_range(0.0, 4.0)
                } else {
                    WindowLevel::auto(&s.volume.data)
                };
                SequenceDisplay {
                    visible: !s.kind.is_label(),
                    window,
                    auto_window: window,
                    colormap: Colormap::Gray,
                    gpu_id: first_gpu_id + i as u64,
                }
            })
            .collect();
        let shape = study.shape();
        Self {
            study,
            id,
            volume_ids,
            sequences,
            cursor: shape.map(|n| n / 2),
            selected: 0,
            transforms: [ViewTransform::default(); 3],
            uploaded: false,
            orbit: cue_render::Orbit::default(),
            volume_overlay: cue_render::VolumeOverlay::Findings,
        }
    }

    /// Indices of the image (non-label) sequences.
    pub fn image_indices(&self) -> Vec<usize> {
        (0..self.sequences.len()).filter(|&i| !self.study.sequences[i].kind.is_label()).collect()
    }

    /// Indices of the visible image sequences.
    pub fn visible_indices(&self) -> Vec<usize> {
        self.image_indices().into_iter().filter(|&i| self.sequences[i].visible).collect()
    }

    /// Index of the first label sequence.
    pub fn label_index(&self) -> Option<usize> {
        (0..self.sequences.len()).find(|&i| self.study.sequences[i].kind.is_label())
    }

    /// What a reload of this study keeps of its view: stepping through a 4-D file's volumes
    /// should not move the crosshair, the zoom or the windows.
    pub fn kept_view(&self) -> KeptView {
        KeptView {
            shape: self.study.shape(),
            cursor: self.cursor,
            selected: self.selected,
            transforms: self.transforms,
            orbit: self.orbit,
            volume_overlay: self.volume_overlay,
            displays: self.sequences.iter().map(|d| (d.visible, d.window, d.colormap)).collect(),
        }
    }

    /// Takes back a kept view when this study has the same grid and sequences; otherwise the
    /// fresh view stands (returns whether it was taken).
    pub fn restore(&mut self, kept: &KeptView) -> bool {
        if kept.shape != self.study.shape() || kept.displays.len() != self.sequences.len() {
            return false;
        }
        self.cursor = kept.cursor;
        self.selected = kept.selected;
        self.transforms = kept.transforms;
        self.orbit = kept.orbit;
        self.volume_overlay = kept.volume_overlay;
        for (display, &(visible, window, colormap)) in self.sequences.iter_mut().zip(&kept.displays) {
            display.visible = visible;
            display.window = window;
            display.colormap = colormap;
        }
        true
    }

    /// The transform of a view's orientation.
    pub fn transform(&self, view: View) -> ViewTransform {
        self.transforms[view.normal_axis()]
    }

    /// The transform of a view's orientation, mutably.
    pub fn transform_mut(&mut self, view: View) -> &mut ViewTransform {
        &mut self.transforms[view.normal_axis()]
    }
}
