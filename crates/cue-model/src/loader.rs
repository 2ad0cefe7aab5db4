//! The one way to get a backbone: a source (a path, a Hugging Face repository id or a bundled
//! name) is resolved to weights on disk, then loaded onto the chosen device. The command
//! line, the app's inference worker, training, evaluation and the tests all come through
//! here, so they resolve and place a model the same way.

use std::path::{Path, PathBuf};

use crate::clip::{Clip, ClipLoadError};
use crate::device::{ChosenDevice, DeviceChoice, DeviceError, choose};
use crate::weights::{BURNPACK_NAME, DEFAULT_MODEL, WeightsError, hub_cache_dir, status};

/// Names that stand for the default backbone.
pub const DEFAULT_NAMES: [&str; 3] = ["default", "vitl14", "vit-l-14"];

/// Where a backbone comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSource {
    /// A transformers folder, a safetensors file or a Burnpack (`.bpk`).
    Path(PathBuf),
    /// A Hugging Face repository (`org/name`), read from the hub cache.
    Hub(String),
}

impl ModelSource {
    /// Reads what the user typed: an existing path is a path; a bundled name ("vitl14",
    /// "default") is the default repository; `org/name` that is not a path is a repository.
    pub fn parse(text: &str) -> Self {
        let path = Path::new(text);
        if path.exists() {
            return Self::Path(path.to_path_buf());
        }
        if DEFAULT_NAMES.contains(&text.to_ascii_lowercase().as_str()) {
            return Self::Hub(DEFAULT_MODEL.to_owned());
        }
        let is_file_name = [".bpk", ".safetensors", ".json"].iter().any(|ext| text.ends_with(ext));
        let looks_like_repo = text.matches('/').count() == 1 && !text.starts_with(['/', '.', '~']) && !text.ends_with('/') && !is_file_name;
        if looks_like_repo { Self::Hub(text.to_owned()) } else { Self::Path(path.to_path_buf()) }
    }

    /// The weights on disk: the path itself, or the repository's cached snapshot (its Burnpack
    /// when converted, else the folder).
    pub fn resolve(&self) -> Result<PathBuf, ModelLoadError> {
        self.resolve_in(&hub_cache_dir())
    }

    /// [`ModelSource::resolve`] with the hub cache at `cache`.
    pub fn resolve_in(&self, cache: &Path) -> Result<PathBuf, ModelLoadError> {
        match self {
            Self::Path(path) => Ok(path.clone()),
            Self::Hub(repo) => {
                let found = status(cache, repo);
                match found.snapshot {
                    Some(snapshot) if found.missing.is_empty() => {
                        let burnpack = snapshot.join(BURNPACK_NAME);
                        Ok(if burnpack.is_file() { burnpack } else { snapshot })
                    }
                    _ => Err(ModelLoadError::NotCached {
                        repo: repo.clone(),
                        missing: found.missing,
                        hint: crate::weights::manual_hint(cache, repo),
                    }),
                }
            }
        }
    }
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Path(p) => write!(f, "{}", p.display()),
            Self::Hub(repo) => write!(f, "{repo}"),
        }
    }
}

/// Errors getting a backbone.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelLoadError {
    /// The device asked for is not there.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The weights could not be read.
    #[error(transparent)]
    Load(#[from] ClipLoadError),
    /// A repository that is not (fully) in the hub cache.
    #[error("{repo} is not in the Hugging Face cache (missing {}): run `cue weights fetch --model {repo}`, or {hint}", missing.join(", "))]
    NotCached {
        /// The repository.
        repo: String,
        /// The files missing.
        missing: Vec<String>,
        /// How to place them by hand.
        hint: String,
    },
    /// The cache is there but its files are wrong.
    #[error(transparent)]
    Weights(#[from] WeightsError),
}

/// A backbone on its device.
pub struct LoadedModel {
    /// The model.
    pub clip: Clip,
    /// Where it runs.
    pub device: ChosenDevice,
    /// The weights it was read from.
    pub path: PathBuf,
}

/// Resolves `source`, chooses the device and loads the backbone onto it.
pub fn load(source: &ModelSource, device: DeviceChoice) -> Result<LoadedModel, ModelLoadError> {
    let path = source.resolve()?;
    let chosen = choose(device)?;
    let clip = Clip::load(&path, &chosen.device)?;
    Ok(LoadedModel { clip, device: chosen, path })
}

/// Resolves `source` and loads the backbone onto `device` (training's autodiff device).
pub fn load_onto(source: &ModelSource, device: &burn::tensor::Device) -> Result<Clip, ModelLoadError> {
    Ok(Clip::load(&source.resolve()?, device)?)
}

/// [`load`] for a path or repository id as typed (see [`ModelSource::parse`]).
pub fn load_named(model: &Path, device: DeviceChoice) -> Result<LoadedModel, ModelLoadError> {
    load(&ModelSource::parse(&model.to_string_lossy()), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_read_as_a_user_means_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        let folder = dir.path().join("org");
        std::fs::create_dir_all(folder.join("name")).expect("folder");
        let existing = folder.join("name").display().to_string();
        assert_eq!(ModelSource::parse(&existing), ModelSource::Path(PathBuf::from(&existing)));
        assert_eq!(ModelSource::parse("openai/clip-vit-base-patch16"), ModelSource::Hub("openai/clip-vit-base-patch16".into()));
        assert_eq!(ModelSource::parse("vitl14"), ModelSource::Hub(DEFAULT_MODEL.into()));
        assert_eq!(ModelSource::parse("weights/missing.bpk"), ModelSource::Path(PathBuf::from("weights/missing.bpk")), "a file name");
        assert_eq!(ModelSource::parse("./missing.bpk"), ModelSource::Path(PathBuf::from("./missing.bpk")));
        assert_eq!(ModelSource::parse("/abs/missing"), ModelSource::Path(PathBuf::from("/abs/missing")));
    }

    #[test]
    fn an_uncached_repository_says_how_to_get_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = ModelSource::Hub("org/absent".into()).resolve_in(dir.path()).expect_err("not cached");
        let text = err.to_string();
        assert!(text.contains("org/absent") && text.contains("cue weights fetch") && !text.contains('\n'), "{text}");
    }
}
