//! Getting CLIP weights: the standard Hugging Face cache (honouring `HF_HUB_CACHE`, `HF_HOME`
//! and `HF_HUB_OFFLINE`), downloads through `hf-hub`, and checks of what is there.

use std::path::{Path, PathBuf};

use super::clip::ClipConfig;

/// Files a transformers CLIP folder needs.
pub const REQUIRED_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];
/// The Burnpack conversion `cue weights fetch` writes beside a downloaded snapshot.
pub const BURNPACK_NAME: &str = "model.bpk";
/// The model CUE uses unless told otherwise.
pub const DEFAULT_MODEL: &str = "openai/clip-vit-large-patch14";

/// Problems getting or checking weights.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WeightsError {
    /// Downloads are off; the message says which files to place where.
    #[error("offline (HF_HUB_OFFLINE is set): {0}")]
    Offline(String),
    /// A download failed; the message says which files to place where.
    #[error("cannot download {file} of {repo} ({reason}); {hint}")]
    Download {
        /// The repository.
        repo: String,
        /// The file.
        file: String,
        /// What went wrong.
        reason: String,
        /// Where to put the file by hand.
        hint: String,
    },
    /// The user cancelled the download (what arrived is kept, and the next attempt resumes).
    #[error("download cancelled (it resumes where it stopped)")]
    Cancelled,
    /// A file is present but not what CLIP needs.
    #[error("{reason}: {}", path.display())]
    Invalid {
        /// What is wrong.
        reason: String,
        /// The file.
        path: PathBuf,
    },
}

/// The Hugging Face hub cache: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
/// `~/.cache/huggingface/hub`.
pub fn hub_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HF_HUB_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(home) = std::env::var_os("HF_HOME") {
        return PathBuf::from(home).join("hub");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    home.join(".cache/huggingface/hub")
}

/// The cache folder of a model repository (`models--org--name`).
pub fn repo_dir(cache: &Path, repo: &str) -> PathBuf {
    cache.join(format!("models--{}", repo.replace('/', "--")))
}

/// What the cache holds of a repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoStatus {
    /// The repository.
    pub repo: String,
    /// The snapshot `refs/main` points to, if any.
    pub snapshot: Option<PathBuf>,
    /// Required files present there.
    pub present: Vec<String>,
    /// Required files missing.
    pub missing: Vec<String>,
}

/// The cache's state for `repo`.
pub fn status(cache: &Path, repo: &str) -> RepoStatus {
    let dir = repo_dir(cache, repo);
    let snapshot = std::fs::read_to_string(dir.join("refs/main"))
        .ok()
        .map(|r| dir.join("snapshots").join(r.trim()))
        .filter(|p| p.is_dir());
    let (present, missing): (Vec<&str>, Vec<&str>) =
        REQUIRED_FILES.iter().partition(|f| snapshot.as_ref().is_some_and(|s| s.join(f).is_file()));
    RepoStatus {
        repo: repo.to_owned(),
        snapshot,
        present: present.into_iter().map(str::to_owned).collect(),
        missing: missing.into_iter().map(str::to_owned).collect(),
    }
}

/// How to provide the files by hand.
pub fn manual_hint(cache: &Path, repo: &str) -> String {
    let dir = repo_dir(cache, repo);
    format!(
        "download {} from https://huggingface.co/{repo} and place them in {}/snapshots/main/, then write `main` into {}/refs/main (or pass the folder holding them as --model)",
        REQUIRED_FILES.join(", "),
        dir.display(),
        dir.display()
    )
}

/// Downloads the required files of `repo` into `cache` with a progress bar, unless
/// `HF_HUB_OFFLINE` is set; returns the snapshot folder after checking it.
pub fn fetch(cache: &Path, repo: &str, offline: bool) -> Result<PathBuf, WeightsError> {
    if offline {
        return Err(WeightsError::Offline(manual_hint(cache, repo)));
    }
    let api = hf_hub::api::sync::ApiBuilder::from_cache(hf_hub::Cache::new(cache.to_path_buf()))
        .with_progress(true)
        .build()
        .map_err(|e| download_error(cache, repo, "(connection)", &e.to_string()))?;
    let model = api.model(repo.to_owned());
    let mut folder = None;
    for file in REQUIRED_FILES {
        let path = model.get(file).map_err(|e| download_error(cache, repo, file, &e.to_string()))?;
        folder = path.parent().map(Path::to_path_buf);
    }
    let folder = folder.unwrap_or_else(|| repo_dir(cache, repo));
    check_folder(&folder)?;
    Ok(folder)
}

fn download_error(cache: &Path, repo: &str, file: &str, reason: &str) -> WeightsError {
    WeightsError::Download { repo: repo.into(), file: file.into(), reason: reason.into(), hint: manual_hint(cache, repo) }
}

/// The tensor names and shapes in a safetensors file's header (the file is not read further).
pub fn safetensors_shapes(path: &Path) -> Result<Vec<(String, Vec<usize>)>, WeightsError> {
    use std::io::Read;
    let invalid = |reason: String| WeightsError::Invalid { reason, path: path.into() };
    let mut file = std::fs::File::open(path).map_err(|e| invalid(format!("cannot open ({e})")))?;
    let mut length = [0u8; 8];
    file.read_exact(&mut length).map_err(|e| invalid(format!("no safetensors header ({e})")))?;
    let length = u64::from_le_bytes(length);
    if length > 100 << 20 {
        return Err(invalid(format!("safetensors header of {length} bytes")));
    }
    let mut header = vec![0u8; length as usize];
    file.read_exact(&mut header).map_err(|e| invalid(format!("truncated safetensors header ({e})")))?;
    let json: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| invalid(format!("invalid safetensors header ({e})")))?;
    let mut tensors: Vec<(String, Vec<usize>)> = json
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| *k != "__metadata__")
                .map(|(k, v)| {
                    let shape = v["shape"].as_array().map(|s| s.iter().filter_map(|d| d.as_u64().map(|d| d as usize)).collect());
                    (k.clone(), shape.unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default();
    tensors.sort();
    Ok(tensors)
}

/// Checks a transformers CLIP folder: a parsable config, and the checkpoint's patch
/// embedding, token embedding and projections shaped as the config says.
pub fn check_folder(folder: &Path) -> Result<ClipConfig, WeightsError> {
    let config_path = folder.join("config.json");
    let text = std::fs::read_to_string(&config_path)
        .map_err(|e| WeightsError::Invalid { reason: format!("cannot read ({e})"), path: config_path.clone() })?;
    let config = ClipConfig::from_json(&text).map_err(|e| WeightsError::Invalid { reason: e.to_string(), path: config_path })?;
    let weights = folder.join("model.safetensors");
    let shapes = safetensors_shapes(&weights)?;
    let (v, t) = (&config.vision, &config.text);
    let expected = [
        ("vision_model.embeddings.patch_embedding.weight", vec![v.hidden_size, v.num_channels, v.patch_size, v.patch_size]),
        ("text_model.embeddings.token_embedding.weight", vec![t.vocab_size, t.hidden_size]),
        ("visual_projection.weight", vec![config.projection_dim, v.hidden_size]),
        ("text_projection.weight", vec![config.projection_dim, t.hidden_size]),
    ];
    for (key, shape) in expected {
        match shapes.iter().find(|(k, _)| k == key) {
            None => return Err(WeightsError::Invalid { reason: format!("tensor {key} missing"), path: weights }),
            Some((_, found)) if *found != shape => {
                return Err(WeightsError::Invalid { reason: format!("tensor {key} is {found:?}, the config says {shape:?}"), path: weights });
            }
            Some(_) => {}
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_safetensors(path: &Path, tensors: &[(&str, Vec<usize>)]) {
        let mut header = serde_json::Map::new();
        let mut offset = 0;
        for (name, shape) in tensors {
            let bytes = shape.iter().product::<usize>() * 4;
            header.insert((*name).into(), serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + bytes]}));
            offset += bytes;
        }
        let header = serde_json::to_vec(&header).unwrap();
        let mut file = (header.len() as u64).to_le_bytes().to_vec();
        file.extend(header);
        file.extend(vec![0u8; offset]);
        std::fs::write(path, file).unwrap();
    }

    #[test]
    fn status_and_checks_of_a_cache() {
        let cache = tempfile::tempdir().unwrap();
        let repo = "openai/clip-tiny";
        let before = status(cache.path(), repo);
        assert_eq!((before.snapshot.clone(), before.missing.len()), (None, 3));
        let snapshot = repo_dir(cache.path(), repo).join("snapshots/abc");
        std::fs::create_dir_all(&snapshot).unwrap();
        std::fs::create_dir_all(repo_dir(cache.path(), repo).join("refs")).unwrap();
        std::fs::write(repo_dir(cache.path(), repo).join("refs/main"), "abc\n").unwrap();
        let config = r#"{"projection_dim": 8,
            "text_config": {"hidden_size": 16, "num_attention_heads": 2, "vocab_size": 100},
            "vision_config": {"hidden_size": 24, "num_attention_heads": 2, "patch_size": 8, "image_size": 32}}"#;
        std::fs::write(snapshot.join("config.json"), config).unwrap();
        let good = [
            ("vision_model.embeddings.patch_embedding.weight", vec![24, 3, 8, 8]),
            ("text_model.embeddings.token_embedding.weight", vec![100, 16]),
            ("visual_projection.weight", vec![8, 24]),
            ("text_projection.weight", vec![8, 16]),
        ];
        write_safetensors(&snapshot.join("model.safetensors"), &good);
        let after = status(cache.path(), repo);
        assert_eq!(after.snapshot, Some(snapshot.clone()));
        assert_eq!(after.missing, vec!["tokenizer.json".to_owned()]);
        assert_eq!(check_folder(&snapshot).unwrap().vision.patches_per_side(), 4);
        let mut bad = good.to_vec();
        bad[2].1 = vec![8, 25];
        write_safetensors(&snapshot.join("model.safetensors"), &bad);
        let error = check_folder(&snapshot).unwrap_err().to_string();
        assert!(error.contains("visual_projection.weight is [8, 25]") && error.ends_with("model.safetensors"), "{error}");
    }

    #[test]
    fn offline_fetch_says_which_files_go_where() {
        let cache = tempfile::tempdir().unwrap();
        let error = fetch(cache.path(), DEFAULT_MODEL, true).unwrap_err().to_string();
        assert!(error.contains("config.json, model.safetensors, tokenizer.json"), "{error}");
        assert!(error.contains("models--openai--clip-vit-large-patch14"), "{error}");
    }
}
