//! A trained prompt + adaptor on disk: Burnpack (`weights/NAME.bpk`) whose metadata carries a
//! JSON manifest (also written beside it as `NAME.json` for people): backbone name and
//! SHA-256, layers, N, temperature, preprocessing, training data summary, metrics, code
//! version. Loading one trained for another backbone fails naming both.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::Device;

use super::adaptor::ImageAdaptor;
use super::clip::Clip;
use super::prompt::{PromptConfig, PromptLearner};

/// Format tag of the manifest.
pub const FORMAT: &str = "cue-prompt-1";
const MANIFEST_KEY: &str = "cue.prompt.manifest";

/// The trainable part: prompts and adaptor.
#[derive(Module, Debug)]
pub struct PromptModel {
    /// Learned prompt vectors.
    pub prompt: PromptLearner,
    /// Image adaptor.
    pub adaptor: ImageAdaptor,
}

impl PromptModel {
    /// A copy on `device` that trains there: the parameters forked (gradients tracked on that
    /// device, same parameter ids) and the frozen start and end token embeddings, which are no
    /// parameters and so are not moved by `fork`, moved with them.
    pub fn fork_to(self, device: &Device) -> Self {
        let mut copy = self.fork(device);
        copy.prompt.start = copy.prompt.start.to_device(device).detach();
        copy.prompt.end = copy.prompt.end.to_device(device).detach();
        copy
    }

    /// Fresh weights for `clip` (seed `device` first for reproducibility).
    pub fn new(clip: &Clip, config: &PromptConfig, device: &Device) -> Self {
        Self {
            prompt: PromptLearner::new(clip, config, device),
            adaptor: ImageAdaptor::new(clip.config.projection_dim, clip.config.text.hidden_size, device),
        }
    }
}

/// Everything needed to use and to trust a trained prompt.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PromptManifest {
    /// [`FORMAT`].
    pub format: String,
    /// Backbone name (folder or hub repository).
    pub backbone: String,
    /// SHA-256 of the backbone's safetensors.
    pub backbone_sha256: String,
    /// Vision blocks the maps use (1-based).
    pub layers: Vec<usize>,
    /// Prompt shape.
    pub prompt: PromptConfig,
    /// Softmax temperature of the probability maps.
    pub temperature: f32,
    /// How slices become CLIP inputs.
    pub preprocessing: String,
    /// What it was trained on and how (the whole training configuration, data summary).
    pub training: serde_json::Value,
    /// Validation metrics of the last epoch.
    pub metrics: serde_json::Value,
    /// Epochs completed (a resumed run continues from here).
    pub epochs_done: usize,
    /// `cue` version that wrote it.
    pub code_version: String,
}

impl PromptManifest {
    /// The manifest of a freshly initialised prompt for `clip` (no training, no metrics).
    pub fn untrained(clip: &Clip, config: &PromptConfig, layers: Vec<usize>) -> Self {
        Self {
            format: FORMAT.into(),
            backbone: clip.id.name.clone(),
            backbone_sha256: clip.id.sha256.clone(),
            layers,
            prompt: config.clone(),
            temperature: 0.07,
            preprocessing: String::new(),
            training: serde_json::Value::Null,
            metrics: serde_json::Value::Null,
            epochs_done: 0,
            code_version: String::new(),
        }
    }
}

/// Problems with prompt files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PromptFileError {
    /// Not there.
    #[error("prompt file not found: {}", path.display())]
    Missing {
        /// The path.
        path: PathBuf,
    },
    /// Not a CUE prompt or unreadable.
    #[error("not a CUE prompt file ({detail}): {}", path.display())]
    Format {
        /// Why.
        detail: String,
        /// The path.
        path: PathBuf,
    },
    /// Trained on another backbone.
    #[error("prompt was trained for backbone {trained} (sha256 {trained_sha:.12}), but {loaded} (sha256 {loaded_sha:.12}) is loaded: {}", path.display())]
    WrongBackbone {
        /// The prompt's backbone.
        trained: String,
        /// Its hash.
        trained_sha: String,
        /// The loaded backbone.
        loaded: String,
        /// Its hash.
        loaded_sha: String,
        /// The prompt file.
        path: PathBuf,
    },
    /// Writing failed.
    #[error("cannot write prompt ({detail}): {}", path.display())]
    Write {
        /// Why.
        detail: String,
        /// The path.
        path: PathBuf,
    },
}

/// Writes a freshly initialised (untrained) prompt for `clip` to `path`: the starting point
/// of training, and what tests map with when the weights do not matter.
pub fn save_untrained_prompt(clip: &Clip, config: &PromptConfig, layers: Vec<usize>, path: &Path) -> Result<(), PromptFileError> {
    save_prompt(&PromptModel::new(clip, config, &clip.device), &PromptManifest::untrained(clip, config, layers), path)
}

/// Writes `model` and `manifest` atomically to `path` (Burnpack, temp file + rename) and the
/// manifest beside it as JSON.
pub fn save_prompt(model: &PromptModel, manifest: &PromptManifest, path: &Path) -> Result<(), PromptFileError> {
    let write = |detail: String| PromptFileError::Write { detail, path: path.to_path_buf() };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| write(e.to_string()))?;
    }
    let json = serde_json::to_string_pretty(manifest).map_err(|e| write(e.to_string()))?;
    let mut store = BurnpackStore::from_file(path).auto_extension(false).overwrite(true).metadata(MANIFEST_KEY, json.clone());
    model.save_into(&mut store).map_err(|e| write(e.to_string()))?;
    let sidecar = path.with_extension("json");
    let temp = sidecar.with_extension("json.tmp");
    std::fs::write(&temp, json).and_then(|()| std::fs::rename(&temp, &sidecar)).map_err(|e| write(e.to_string()))
}

/// Reads only the manifest of a prompt file.
pub fn read_manifest(path: &Path) -> Result<PromptManifest, PromptFileError> {
    if !path.exists() {
        return Err(PromptFileError::Missing { path: path.to_path_buf() });
    }
    let format = |detail: String| PromptFileError::Format { detail, path: path.to_path_buf() };
    let reader = burn::store::burn_pack::Reader::from_file_exact(path).map_err(|e| format(e.to_string()))?;
    let json = reader.metadata().get(MANIFEST_KEY).cloned().ok_or_else(|| format("no manifest".into()))?;
    let manifest: PromptManifest = serde_json::from_str(&json).map_err(|e| format(e.to_string()))?;
    if manifest.format != FORMAT {
        return Err(format(format!("format {} (expected {FORMAT})", manifest.format)));
    }
    Ok(manifest)
}

/// Loads a prompt file for `clip`, refusing one trained for another backbone.
pub fn load_prompt(path: &Path, clip: &Clip, device: &Device) -> Result<(PromptModel, PromptManifest), PromptFileError> {
    let manifest = read_manifest(path)?;
    if manifest.backbone_sha256 != clip.id.sha256 {
        return Err(PromptFileError::WrongBackbone {
            trained: manifest.backbone.clone(),
            trained_sha: manifest.backbone_sha256.clone(),
            loaded: clip.id.name.clone(),
            loaded_sha: clip.id.sha256.clone(),
            path: path.to_path_buf(),
        });
    }
    let mut model = PromptModel::new(clip, &manifest.prompt, device);
    let mut store = BurnpackStore::from_file(path).auto_extension(false).allow_partial(true).validate(false);
    let result = model
        .load_from(&mut store)
        .map_err(|e| PromptFileError::Format { detail: e.to_string(), path: path.to_path_buf() })?;
    if !result.missing.is_empty() || !result.errors.is_empty() || !result.unused.is_empty() {
        let detail = format!(
            "missing {:?}, unused {:?}, errors {:?}",
            result.missing.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            result.unused,
            result.errors.iter().map(ToString::to_string).collect::<Vec<_>>()
        );
        return Err(PromptFileError::Format { detail, path: path.to_path_buf() });
    }
    Ok((model, manifest))
}

/// The newest prompt file under `folder` whose manifest names `clip`'s backbone.
pub fn newest_compatible(folder: &Path, clip: &Clip) -> Option<PathBuf> {
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(folder)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "bpk"))
        .filter(|p| read_manifest(p).is_ok_and(|m| m.backbone_sha256 == clip.id.sha256))
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p)
}
