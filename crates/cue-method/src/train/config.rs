//! Every option of a training run, from a JSON or TOML file and flags.

use std::path::Path;

use crate::train::dataset::DatasetConfig;
use crate::train::trainer::TrainError;
use cue_model::device::DeviceChoice;
use cue_model::mapper::DEFAULT_TEMPERATURE;
use cue_volume::{SequenceKind, View};

/// Every training option (a JSON or TOML file may set any subset; flags override).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Seed of the split, the shuffles, the initial prompts and synthetic lesions.
    pub seed: u64,
    /// Passes over the training slices.
    pub epochs: usize,
    /// Slices per step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Vision blocks (1-based); empty: the ends of the tower's quarters (6, 12, 18, 24).
    pub layers: Vec<usize>,
    /// Tokens of `P_independent` and of `P_dependent` (N).
    pub context_tokens: usize,
    /// One context for both prompts.
    pub shared_context: bool,
    /// Temperature of the probabilities.
    pub temperature: f32,
    /// Focal loss gamma.
    pub focal_gamma: f32,
    /// Weight of the image-level BCE.
    pub image_loss_weight: f32,
    /// Sequences (t1, t1ce, t2, flair).
    pub sequences: Vec<String>,
    /// Views (axial, sagittal, coronal).
    pub views: Vec<String>,
    /// At most this many slices per case, sequence and view (evenly spaced); 0: all.
    pub max_slices: usize,
    /// Fraction of patients held out for validation.
    pub validation_fraction: f64,
    /// Least fraction of non-zero pixels for a slice to be used.
    pub min_brain_fraction: f32,
    /// Paste synthetic lesions into normal slices (for folders of normal volumes).
    pub synthetic: bool,
    /// Bound of the in-memory feature cache, MiB.
    pub cache_mb: usize,
    /// auto, gpu, cpu, cuda:N or remote:HOST:PORT.
    pub device: DeviceChoice,
    /// Several devices sharing each batch (data parallel; the first is the primary, where the
    /// optimiser runs); empty: `device` alone.
    pub devices: Vec<DeviceChoice>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            epochs: 5,
            batch_size: 8,
            learning_rate: 1e-3,
            layers: Vec::new(),
            context_tokens: 32,
            shared_context: true,
            temperature: DEFAULT_TEMPERATURE,
            focal_gamma: 2.0,
            image_loss_weight: 1.0,
            sequences: vec!["t1".into()],
            views: vec!["axial".into()],
            max_slices: 0,
            validation_fraction: 0.2,
            min_brain_fraction: 0.05,
            synthetic: false,
            cache_mb: 4096,
            device: DeviceChoice::Auto,
            devices: Vec::new(),
        }
    }
}

impl TrainConfig {
    /// Reads a JSON (`.json`) or TOML (anything else) file.
    pub fn from_file(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::Config(format!("cannot read ({e}): {}", path.display())))?;
        let parsed = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            toml::from_str(&text).map_err(|e| e.to_string())
        };
        parsed.map_err(|e| TrainError::Config(format!("{e}: {}", path.display())))
    }

    /// The devices a run trains on: `devices`, or `device` alone when that is empty.
    pub fn training_devices(&self) -> Vec<DeviceChoice> {
        if self.devices.is_empty() { vec![self.device.clone()] } else { self.devices.clone() }
    }

    pub(crate) fn dataset(&self) -> Result<DatasetConfig, TrainError> {
        let sequences = self
            .sequences
            .iter()
            .map(|s| SequenceKind::parse_known(s).ok_or_else(|| TrainError::Config(format!("unknown sequence '{s}'"))))
            .collect::<Result<Vec<_>, _>>()?;
        let views = self.views.iter().map(|v| v.parse::<View>().map_err(TrainError::Config)).collect::<Result<Vec<_>, _>>()?;
        Ok(DatasetConfig {
            sequences,
            views,
            min_brain_fraction: self.min_brain_fraction,
            max_slices: (self.max_slices > 0).then_some(self.max_slices),
        })
    }
}
