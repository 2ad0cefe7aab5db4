//! A scanned DICOM folder waiting for the user to pick the series to open and say what each
//! one is: the step between "open this folder" and a study, as a radiologist meets it when a
//! PACS export holds localizers, diffusion and repeats beside the four sequences.

use std::path::PathBuf;
use std::sync::Arc;

use cue_volume::dicom::{DicomFolder, Series};
use cue_volume::{ImageSource, SequenceKind, study::default_series};

use crate::loader::OpenRequest;

/// One series of the list.
#[derive(Clone, Debug)]
pub struct SeriesChoice {
    /// The assembled series.
    pub series: Arc<Series>,
    /// Whether it will be opened.
    pub picked: bool,
    /// What it will be opened as (recognised, or the user's choice).
    pub kind: SequenceKind,
}

/// The series of a scanned folder, with the user's picks.
#[derive(Clone, Debug)]
pub struct SeriesPicker {
    /// The folder scanned.
    pub root: PathBuf,
    /// Every series, by study and series number.
    pub choices: Vec<SeriesChoice>,
    /// DICOM files that could not be read, with the reason.
    pub unreadable: Vec<(PathBuf, String)>,
    /// Files passed over as copies of images another file holds.
    pub duplicates: Vec<PathBuf>,
}

impl SeriesPicker {
    /// The list of `folder`'s series, those [`default_series`] picks already ticked.
    pub fn new(folder: DicomFolder) -> Self {
        let defaults = default_series(&folder.series);
        let choices = folder
            .series
            .iter()
            .map(|series| {
                let default = defaults.iter().find(|(s, _)| Arc::ptr_eq(s, series));
                SeriesChoice {
                    series: series.clone(),
                    picked: default.is_some(),
                    kind: default
                        .map(|(_, k)| k.clone())
                        .or_else(|| series.sequence.clone())
                        .unwrap_or_else(|| SequenceKind::Other(series.label())),
                }
            })
            .collect();
        Self { root: folder.root, choices, unreadable: folder.unreadable, duplicates: folder.duplicates }
    }

    /// Ticks or unticks series `index`; a series that makes no volume stays unticked.
    pub fn pick(&mut self, index: usize, picked: bool) {
        if let Some(choice) = self.choices.get_mut(index) {
            choice.picked = picked && choice.series.geometry.is_ok();
        }
    }

    /// Says what series `index` is; another picked series of the same sequence is unticked,
    /// since a study holds one of each.
    pub fn assign(&mut self, index: usize, kind: SequenceKind) {
        if index >= self.choices.len() {
            return;
        }
        for (i, choice) in self.choices.iter_mut().enumerate() {
            if i != index && choice.kind == kind {
                choice.picked = false;
            }
        }
        self.choices[index].kind = kind;
    }

    /// What opening the picked series asks for.
    pub fn request(&self) -> OpenRequest {
        self.choices
            .iter()
            .filter(|c| c.picked)
            .map(|c| (ImageSource::Series(c.series.clone()), Some(c.kind.clone())))
            .collect()
    }

    /// The study's display name: the folder's name.
    pub fn name(&self) -> String {
        self.root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| self.root.display().to_string())
    }
}
