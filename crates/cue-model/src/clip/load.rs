//! Loading CLIP checkpoints into [`ClipModel`]: transformers folders (`config.json` +
//! `model.safetensors`, HF key names), OpenAI/OpenCLIP state dicts in safetensors (through
//! [`super::openai`]'s key table) and CUE's Burnpack conversions (`.bpk`, optionally f16,
//! memory-mapped, with the source's SHA-256 and config in the metadata).
//!
//! Loading is strict: a key the model expects and the file lacks, a key the file has and the
//! model does not use (other than the few listed in [`IGNORED_KEYS`]), or a shape that differs
//! is an error listing every such key.

use std::io::Read;
use std::path::{Path, PathBuf};

use burn::tensor::{DType, Device};
use burn::store::{
    ApplyResult, BurnpackStore, FloatCastAdapter, HalfPrecisionAdapter, ModuleAdapter, ModuleSnapshot,
    PyTorchToBurnAdapter, SafetensorsStore,
};
use sha2::{Digest, Sha256};

use super::config::{ClipConfig, ConfigError};
use super::model::ClipModel;

/// Checkpoint keys that are read and deliberately not used: transformers' non-trainable
/// position-id buffers (saved by older versions) and the contrastive temperature.
pub const IGNORED_KEYS: [&str; 3] = [
    "logit_scale",
    "text_model.embeddings.position_ids",
    "vision_model.embeddings.position_ids",
];

/// Metadata keys CUE writes into a converted `.bpk`.
mod meta {
    pub const CONFIG: &str = "cue.clip.config";
    pub const SOURCE_SHA256: &str = "cue.clip.source_sha256";
    pub const SOURCE: &str = "cue.clip.source";
    pub const DTYPE: &str = "cue.clip.dtype";
}

/// Problems loading or converting a checkpoint; every message names the file last.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClipLoadError {
    /// A file that should be there is not.
    #[error("{what} not found: {}", path.display())]
    Missing {
        /// Which file.
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// Reading failed.
    #[error("cannot read {what} ({source}): {}", path.display())]
    Io {
        /// Which file.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
        /// The file.
        path: PathBuf,
    },
    /// `config.json` is unusable.
    #[error("{source}: {}", path.display())]
    Config {
        /// Why.
        source: ConfigError,
        /// The file.
        path: PathBuf,
    },
    /// The weights do not fit the configuration (missing/unused keys, shapes, dtypes).
    #[error("checkpoint does not match its config: {detail}: {}", path.display())]
    Mismatch {
        /// Every offending key.
        detail: String,
        /// The weights file.
        path: PathBuf,
    },
    /// The file is not a readable safetensors/Burnpack container.
    #[error("unreadable checkpoint ({detail}): {}", path.display())]
    Format {
        /// The reader's message.
        detail: String,
        /// The file.
        path: PathBuf,
    },
}

/// Where a loaded backbone came from; its SHA-256 identifies it in trained prompts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackboneId {
    /// A readable name: the model folder's (or Hugging Face repository's) name.
    pub name: String,
    /// SHA-256 of the source `model.safetensors`, lower-case hex.
    pub sha256: String,
}

/// A loaded CLIP: weights on a device, its config and identity.
#[derive(Debug)]
pub struct Clip {
    /// The towers.
    pub model: ClipModel,
    /// Its configuration.
    pub config: ClipConfig,
    /// Where its tensors live.
    pub device: Device,
    /// Source identity.
    pub id: BackboneId,
}

impl Clip {
    /// Loads a transformers folder, a safetensors file with a `config.json` beside it, or a
    /// `.bpk` written by [`Clip::save_burnpack`].
    pub fn load(path: &Path, device: &Device) -> Result<Self, ClipLoadError> {
        if !path.exists() {
            return Err(ClipLoadError::Missing { what: "CLIP model", path: path.to_path_buf() });
        }
        if path.extension().is_some_and(|e| e == "bpk") {
            return load_burnpack(path, device);
        }
        let (folder, weights) = if path.is_dir() {
            (path.to_path_buf(), path.join("model.safetensors"))
        } else {
            (path.parent().map(Path::to_path_buf).unwrap_or_default(), path.to_path_buf())
        };
        let config_path = folder.join("config.json");
        let config = read_config(&config_path)?;
        if !weights.exists() {
            return Err(ClipLoadError::Missing { what: "model.safetensors", path: weights });
        }
        let mut model = ClipModel::new(&config, device);
        let keys = safetensors_keys(&weights)?;
        if super::openai::is_openai_layout(&keys) {
            let bytes = super::openai::to_transformers_safetensors(&weights, &config)?;
            let store = SafetensorsStore::from_bytes(Some(bytes));
            apply(&mut model, store, &weights)?;
        } else {
            apply(&mut model, SafetensorsStore::from_file(&weights), &weights)?;
        }
        let id = BackboneId { name: display_name(&folder), sha256: source_sha256(&weights)? };
        Ok(Self { model, config, device: device.clone(), id })
    }

    /// Writes the weights as Burnpack (f32, or f16 with `half`), atomically, with the config,
    /// the source's SHA-256 and name in the metadata.
    pub fn save_burnpack(&self, out: &Path, half: bool) -> Result<(), ClipLoadError> {
        let config_json = self.config.to_json();
        let mut store = BurnpackStore::from_file(out)
            .auto_extension(false)
            .overwrite(true)
            .metadata(meta::CONFIG, config_json)
            .metadata(meta::SOURCE_SHA256, self.id.sha256.clone())
            .metadata(meta::SOURCE, self.id.name.clone())
            .metadata(meta::DTYPE, if half { "f16" } else { "f32" });
        if half {
            store = store.with_to_adapter(HalfPrecisionAdapter::new());
        }
        self.model
            .save_into(&mut store)
            .map_err(|e| ClipLoadError::Format { detail: e.to_string(), path: out.to_path_buf() })
    }
}

fn read_config(path: &Path) -> Result<ClipConfig, ClipLoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => ClipLoadError::Missing { what: "config.json", path: path.to_path_buf() },
        _ => ClipLoadError::Io { what: "config.json", source, path: path.to_path_buf() },
    })?;
    ClipConfig::from_json(&text).map_err(|source| ClipLoadError::Config { source, path: path.to_path_buf() })
}

fn display_name(folder: &Path) -> String {
    // A hub snapshot lives at models--org--name/snapshots/<rev>: name it org/name.
    let parts: Vec<String> = folder.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    if let Some(i) = parts.iter().position(|p| p.starts_with("models--")) {
        return parts[i].trim_start_matches("models--").replacen("--", "/", 1);
    }
    folder.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "clip".into())
}

fn safetensors_keys(path: &Path) -> Result<Vec<String>, ClipLoadError> {
    let shapes = crate::weights::safetensors_shapes(path)
        .map_err(|e| ClipLoadError::Format { detail: e.to_string(), path: path.to_path_buf() })?;
    Ok(shapes.into_iter().map(|(k, _)| k).collect())
}

fn apply(model: &mut ClipModel, store: SafetensorsStore, path: &Path) -> Result<(), ClipLoadError> {
    let adapter = PyTorchToBurnAdapter.chain(FloatCastAdapter::to(DType::F32));
    let mut store = store.with_from_adapter(adapter).allow_partial(true).validate(false);
    let result = model
        .load_from(&mut store)
        .map_err(|e| ClipLoadError::Format { detail: e.to_string(), path: path.to_path_buf() })?;
    check(&result, path)
}

fn check(result: &ApplyResult, path: &Path) -> Result<(), ClipLoadError> {
    let mut problems = Vec::new();
    if !result.missing.is_empty() {
        let keys: Vec<&str> = result.missing.iter().map(|(k, _)| k.as_str()).collect();
        problems.push(format!("missing {}", keys.join(", ")));
    }
    let unused: Vec<&str> = result
        .unused
        .iter()
        .map(String::as_str)
        .filter(|k| !IGNORED_KEYS.contains(k))
        .collect();
    if !unused.is_empty() {
        problems.push(format!("unused {}", unused.join(", ")));
    }
    problems.extend(result.errors.iter().map(ToString::to_string));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ClipLoadError::Mismatch { detail: problems.join("; "), path: path.to_path_buf() })
    }
}

/// SHA-256 of a checkpoint: taken from the Hugging Face cache's blob name when the file is a
/// link into `blobs/` (the hub names LFS blobs by their SHA-256), computed otherwise.
pub fn source_sha256(path: &Path) -> Result<String, ClipLoadError> {
    if let Ok(target) = std::fs::canonicalize(path) {
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let in_blobs = target.parent().and_then(Path::file_name).is_some_and(|p| p == "blobs");
        if in_blobs && name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(name.to_ascii_lowercase());
        }
    }
    let io = |source| ClipLoadError::Io { what: "checkpoint", source, path: path.to_path_buf() };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn load_burnpack(path: &Path, device: &Device) -> Result<Clip, ClipLoadError> {
    if !path.exists() {
        return Err(ClipLoadError::Missing { what: "Burnpack file", path: path.to_path_buf() });
    }
    let format = |detail: String| ClipLoadError::Format { detail, path: path.to_path_buf() };
    let reader = burn::store::burn_pack::Reader::from_file_exact(path).map_err(|e| format(e.to_string()))?;
    let metadata = reader.metadata();
    let field = |key: &str| {
        metadata.get(key).cloned().ok_or_else(|| format(format!("not a CUE CLIP conversion: no '{key}' metadata")))
    };
    let config = ClipConfig::from_json(&field(meta::CONFIG)?)
        .map_err(|source| ClipLoadError::Config { source, path: path.to_path_buf() })?;
    let id = BackboneId { name: field(meta::SOURCE)?, sha256: field(meta::SOURCE_SHA256)? };
    drop(reader);
    let mut model = ClipModel::new(&config, device);
    let mut store = BurnpackStore::from_file(path)
        .auto_extension(false)
        .with_from_adapter(FloatCastAdapter::to(DType::F32))
        .allow_partial(true)
        .validate(false);
    let result = model.load_from(&mut store).map_err(|e| format(e.to_string()))?;
    check(&result, path)?;
    Ok(Clip { model, config, device: device.clone(), id })
}

/// Inputs the model cannot take.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClipInputError {
    /// Rows of ids of different lengths, or none.
    #[error("token rows must be non-empty and of equal length")]
    Ragged,
    /// More tokens than the text tower's context.
    #[error("{tokens} tokens exceed the model's context of {context}")]
    TooLong {
        /// Tokens given.
        tokens: usize,
        /// `max_position_embeddings`.
        context: usize,
    },
    /// An id outside the vocabulary.
    #[error("token id {id} outside the vocabulary of {vocab}")]
    OutOfVocabulary {
        /// The id.
        id: u32,
        /// `vocab_size`.
        vocab: usize,
    },
    /// An image buffer whose length is not `channels x height x width`.
    #[error("image buffer of {got} values, expected {expected}")]
    PixelCount {
        /// Values given.
        got: usize,
        /// Values expected.
        expected: usize,
    },
    /// An image whose side is not a multiple of the patch size.
    #[error("image of {height}x{width} pixels is not a multiple of the {patch}-pixel patch")]
    ImageSize {
        /// Height.
        height: usize,
        /// Width.
        width: usize,
        /// Patch side.
        patch: usize,
    },
}

impl Clip {
    /// The end-of-text position of each row as transformers pools it: the first
    /// `eos_token_id`, or the argmax of the ids for legacy configs (`eos_token_id == 2`); the
    /// last position when a row has no end token.
    pub fn eot_positions(&self, ids: &[Vec<u32>]) -> Vec<usize> {
        ids.iter()
            .map(|row| {
                if self.config.text.pools_at_argmax() {
                    // First maximum, as torch.argmax.
                    let max = row.iter().copied().max().unwrap_or(0);
                    row.iter().position(|&id| id == max).unwrap_or(0)
                } else {
                    row.iter().position(|&id| id == self.config.text.eos_token_id).unwrap_or(row.len().saturating_sub(1))
                }
            })
            .collect()
    }

    fn check_ids(&self, ids: &[Vec<u32>]) -> Result<(), ClipInputError> {
        let tokens = ids.first().map_or(0, Vec::len);
        if tokens == 0 || ids.iter().any(|r| r.len() != tokens) {
            return Err(ClipInputError::Ragged);
        }
        let context = self.config.text.max_position_embeddings;
        if tokens > context {
            return Err(ClipInputError::TooLong { tokens, context });
        }
        let vocab = self.config.text.vocab_size;
        match ids.iter().flatten().find(|&&id| id as usize >= vocab) {
            Some(&id) => Err(ClipInputError::OutOfVocabulary { id, vocab }),
            None => Ok(()),
        }
    }

    /// `get_text_features` for rows of token ids: `[rows, projection]`, not normalised.
    pub fn encode_text_ids(&self, ids: &[Vec<u32>]) -> Result<burn::tensor::Tensor<2>, ClipInputError> {
        self.check_ids(ids)?;
        let embeddings = self.model.token_embeddings(ids, &self.device);
        Ok(self.model.encode_text_embeddings(embeddings, &self.eot_positions(ids)))
    }

    /// Normalised CHW images of one size to a `[batch, 3, height, width]` tensor on the device.
    pub fn pixels(&self, images: &[&[f32]], height: usize, width: usize) -> Result<burn::tensor::Tensor<4>, ClipInputError> {
        let patch = self.config.vision.patch_size;
        if !height.is_multiple_of(patch) || !width.is_multiple_of(patch) || height == 0 || width == 0 {
            return Err(ClipInputError::ImageSize { height, width, patch });
        }
        let channels = self.config.vision.num_channels;
        let mut flat = Vec::with_capacity(images.len() * channels * height * width);
        for image in images {
            if image.len() != channels * height * width {
                return Err(ClipInputError::PixelCount { got: image.len(), expected: channels * height * width });
            }
            flat.extend_from_slice(image);
        }
        let data = burn::tensor::TensorData::new(flat, [images.len(), channels, height, width]);
        Ok(burn::tensor::Tensor::from_data(data, &self.device))
    }
}
