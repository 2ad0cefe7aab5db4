//! The open study's findings: each sequence's maps fused over the views mapped so far into one
//! score volume, cut at a threshold into 26-connected regions, measured, and told in which
//! other sequences each region is present. Computed as a job, keyed by what produced it (study,
//! prompt, the maps received, sequence, threshold, minimum size), so a stale list is never
//! shown as the current one.

use std::sync::Arc;

use cue_volume::findings::{Findings, ViewScores, find_findings, fuse_mean, percentile, present_in};
use cue_volume::{DisplayConvention, SliceAxes, View};

use crate::jobs::{JobId, JobKind, JobOutput, JobRunner};
use crate::map_store::{MapKey, SharedMapStore, StudyId, lock};
use crate::maps::{MapState, ModelStatus};
use crate::state::StudyView;

/// How the findings threshold is set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ThresholdChoice {
    /// A score: regions are the voxels at or above it.
    Score(f32),
    /// A percentile (0-100) of the mapped voxels' fused scores.
    Percentile(f32),
}

/// The percentile the threshold starts at when the prompt has no validation threshold.
pub const DEFAULT_PERCENTILE: f32 = 99.0;

/// What a findings list was computed from.
#[derive(Clone, Debug, PartialEq)]
pub struct FindingsKey {
    /// The study.
    pub study: StudyId,
    /// The model and prompt.
    pub prompt_id: String,
    /// How many maps had arrived (new maps change the fused volume).
    pub maps_received: usize,
    /// The sequence the list is of.
    pub sequence: usize,
    /// The threshold asked for.
    pub threshold: ThresholdChoice,
    /// Regions smaller than this were dropped, mm^3.
    pub min_size_mm3: f64,
}

/// A computed findings list.
pub struct FindingsResult {
    /// What it was computed from.
    pub key: FindingsKey,
    /// The sequence's label (T1, FLAIR, ...).
    pub sequence_label: String,
    /// The score threshold used (a percentile resolved to its score).
    pub threshold: f32,
    /// The views whose maps were fused.
    pub views: Vec<View>,
    /// Voxels with a fused score.
    pub mapped_voxels: usize,
    /// The regions, largest first, and their label volume on the study grid.
    pub findings: Findings,
    /// Per finding, the other sequences in which a region at the same threshold overlaps it.
    pub present_in: Vec<Vec<String>>,
    /// The fused score volume on the study grid (NaN where no view was mapped).
    pub scores: Vec<f32>,
    /// Lowest and highest fused score (0, 0 when nothing is mapped).
    pub score_range: (f32, f32),
}

/// What it was computed from and the list, not the volumes.
impl std::fmt::Debug for FindingsResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FindingsResult")
            .field("key", &self.key)
            .field("threshold", &self.threshold)
            .field("views", &self.views)
            .field("findings", &self.findings)
            .finish_non_exhaustive()
    }
}

/// Columns the list can be sorted by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortKey {
    /// Finding number (largest first).
    #[default]
    Label,
    /// Volume.
    Volume,
    /// Highest score.
    MaxScore,
    /// Mean score.
    MeanScore,
}

impl SortKey {
    /// Every column, in table order.
    pub const ALL: [SortKey; 4] = [Self::Label, Self::Volume, Self::MaxScore, Self::MeanScore];

    /// Column heading.
    pub fn name(self) -> &'static str {
        match self {
            Self::Label => "#",
            Self::Volume => "Volume mL",
            Self::MaxScore => "Max",
            Self::MeanScore => "Mean",
        }
    }
}

/// The findings panel's state.
#[derive(Debug, Default)]
pub struct FindingsState {
    /// The threshold the user set (`None`: the prompt's validation threshold, else the
    /// [`DEFAULT_PERCENTILE`]).
    pub threshold: Option<ThresholdChoice>,
    /// Minimum region size, mm^3.
    pub min_size_mm3: f64,
    /// Sort column and whether descending.
    pub sort: (SortKey, bool),
    /// The latest list.
    pub result: Option<Arc<FindingsResult>>,
    /// The finding last clicked.
    pub selected: Option<u32>,
    running: Option<(JobId, FindingsKey)>,
}

impl FindingsState {
    /// The threshold in force: the user's, else the prompt's validation threshold, else the
    /// default percentile.
    pub fn threshold_choice(&self, maps: &MapState) -> ThresholdChoice {
        self.threshold.unwrap_or(match &maps.status {
            ModelStatus::Ready { validation_threshold: Some(t), .. } => ThresholdChoice::Score(*t),
            _ => ThresholdChoice::Percentile(DEFAULT_PERCENTILE),
        })
    }

    /// The list if it belongs to the open study and the loaded prompt.
    pub fn current(&self, study: &StudyView, maps: &MapState) -> Option<&Arc<FindingsResult>> {
        self.result.as_ref().filter(|r| r.key.study == study.id && maps.prompt_id() == Some(r.key.prompt_id.as_str()))
    }

    /// Whether a list is being computed.
    pub fn is_computing(&self) -> bool {
        self.running.is_some()
    }

    /// The rows in display order.
    pub fn sorted_rows(&self, result: &FindingsResult) -> Vec<usize> {
        let f = &result.findings.findings;
        let mut rows: Vec<usize> = (0..f.len()).collect();
        let (key, descending) = self.sort;
        rows.sort_by(|&a, &b| {
            let order = match key {
                SortKey::Label => f[a].label.cmp(&f[b].label),
                SortKey::Volume => f[a].voxels.cmp(&f[b].voxels),
                SortKey::MaxScore => f[a].max_score.total_cmp(&f[b].max_score),
                SortKey::MeanScore => f[a].mean_score.total_cmp(&f[b].mean_score),
            };
            if descending { order.reverse() } else { order }
        });
        rows
    }

    /// Starts computing the list when what it depends on changed and no computation is
    /// running (the next one starts when it ends, so a dragged slider never queues up work).
    pub fn refresh(&mut self, study: &StudyView, maps: &MapState, jobs: &mut JobRunner) {
        let Some(prompt_id) = maps.prompt_id() else { return };
        let key = FindingsKey {
            study: study.id,
            prompt_id: prompt_id.to_string(),
            maps_received: maps.received,
            sequence: study.selected,
            threshold: self.threshold_choice(maps),
            min_size_mm3: self.min_size_mm3,
        };
        if self.running.is_some() || self.result.as_ref().is_some_and(|r| r.key == key) {
            return;
        }
        if study.study.sequences.get(key.sequence).is_none_or(|s| s.kind.is_label()) {
            return;
        }
        let sources: Vec<SequenceSource> = study
            .image_indices()
            .into_iter()
            .map(|s| SequenceSource {
                label: study.study.sequences[s].kind.label().to_string(),
                views: View::ALL.iter().filter_map(|&v| Some((v, maps.key_of(study, s, v, 0)?))).collect(),
                selected: s == key.sequence,
            })
            .collect();
        let shape = study.study.shape();
        let world_from_voxel = study.study.world_from_voxel();
        let store = maps.store.clone();
        let job_key = key.clone();
        let label = format!("Finding regions in {}", study.study.sequences[key.sequence].kind.label());
        let id = jobs.spawn(JobKind::Findings, label, move |cx| {
            compute(&store, &sources, shape, &world_from_voxel, job_key, &|| cx.is_cancelled()).map(|r| JobOutput::Findings(Box::new(r)))
        });
        self.running = Some((id, key));
    }

    /// Takes in a finished computation; `false` when `id` is not this state's job.
    pub fn finish(&mut self, id: JobId, result: Result<FindingsResult, String>) -> Result<bool, String> {
        if self.running.as_ref().is_none_or(|(job, _)| *job != id) {
            return Ok(false);
        }
        self.running = None;
        let result = result?;
        if self.result.as_ref().is_none_or(|old| old.key.study != result.key.study) {
            self.selected = None;
        }
        self.result = Some(Arc::new(result));
        Ok(true)
    }

    /// Whether `id` is this state's job.
    pub fn owns(&self, id: JobId) -> bool {
        self.running.as_ref().is_some_and(|(job, _)| *job == id)
    }

    /// Forgets the list (a new study was opened).
    pub fn clear(&mut self, jobs: &mut JobRunner) {
        if let Some((id, _)) = self.running.take() {
            jobs.cancel(id);
        }
        self.result = None;
        self.selected = None;
    }
}

/// Where one sequence's maps are in the store.
struct SequenceSource {
    label: String,
    /// Each view's key of slice 0 (the others differ by slice index only).
    views: Vec<(View, MapKey)>,
    selected: bool,
}

/// One sequence's maps fused over its mapped views, and which views those were.
fn fused_scores(store: &SharedMapStore, source: &SequenceSource, shape: [usize; 3]) -> (Vec<f32>, Vec<View>) {
    let mut volumes = Vec::new();
    for (view, first) in &source.views {
        let axes = SliceAxes::new(*view, DisplayConvention::Radiological);
        let mut scores = vec![0f32; shape.iter().product()];
        let mut mapped = vec![false; shape[view.normal_axis()]];
        // One view at a time, so the worker is never kept from the store for long.
        let mut store = lock(store);
        for key in store.keys_where(|k| MapKey { slice_index: 0, ..k.clone() } == *first) {
            if let Some(map) = store.get(&key)
                && let Some(m) = mapped.get_mut(key.slice_index)
            {
                axes.write_slice(&mut scores, shape, key.slice_index, map.width, &map.scores);
                *m = true;
            }
        }
        drop(store);
        if mapped.contains(&true) {
            volumes.push((*view, scores, mapped));
        }
    }
    let views = volumes.iter().map(|(v, _, _)| *v).collect();
    let inputs: Vec<ViewScores<'_>> = volumes.iter().map(|(v, s, m)| ViewScores { scores: s, normal_axis: v.normal_axis(), mapped: m }).collect();
    (fuse_mean(shape, &inputs), views)
}

fn compute(
    store: &SharedMapStore,
    sources: &[SequenceSource],
    shape: [usize; 3],
    world_from_voxel: &cue_volume::Affine,
    key: FindingsKey,
    cancelled: &dyn Fn() -> bool,
) -> Result<FindingsResult, String> {
    let selected = sources.iter().find(|s| s.selected).ok_or("the selected sequence has no maps")?;
    let (scores, views) = fused_scores(store, selected, shape);
    let mapped_voxels = scores.iter().filter(|v| v.is_finite()).count();
    let threshold = match key.threshold {
        ThresholdChoice::Score(t) => t,
        ThresholdChoice::Percentile(p) => percentile(&scores, f64::from(p)).unwrap_or(f32::INFINITY),
    };
    let findings = find_findings(&scores, shape, world_from_voxel, threshold, key.min_size_mm3);
    let mut present: Vec<Vec<String>> = vec![Vec::new(); findings.findings.len()];
    for other in sources.iter().filter(|s| !s.selected) {
        if cancelled() {
            return Err("finding regions was cancelled".into());
        }
        let (other_scores, other_views) = fused_scores(store, other, shape);
        if other_views.is_empty() {
            continue;
        }
        let theirs = find_findings(&other_scores, shape, world_from_voxel, threshold, key.min_size_mm3);
        for (row, here) in present.iter_mut().zip(present_in(&findings, &theirs)) {
            if here {
                row.push(other.label.clone());
            }
        }
    }
    let finite = scores.iter().copied().filter(|v| v.is_finite());
    let score_range = finite.fold(None, |r: Option<(f32, f32)>, v| Some(r.map_or((v, v), |(a, b)| (a.min(v), b.max(v))))).unwrap_or((0.0, 0.0));
    Ok(FindingsResult { key, sequence_label: selected.label.clone(), threshold, views, mapped_voxels, findings, present_in: present, scores, score_range })
}
