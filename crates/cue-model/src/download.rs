//! Downloading a backbone from the Hugging Face hub for the app: byte progress per file,
//! cancel, resume (hf-hub keeps a `.part` file and continues it with a range request) and a
//! SHA-256 check of every large file against the hub's content hash.

use std::path::{Path, PathBuf};

use hf_hub::api::Progress;
use sha2::Digest;

use crate::weights::{REQUIRED_FILES, WeightsError, check_folder, manual_hint, repo_dir};

/// Approximate size of the default backbone's files (the hub reports the exact size when
/// the download starts).
pub const DEFAULT_MODEL_BYTES: u64 = 1_710_000_000;

/// Where a download stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DownloadProgress {
    /// The file being fetched or checked.
    pub file: String,
    /// Its position among the files (from 1).
    pub file_number: usize,
    /// How many files.
    pub files: usize,
    /// Bytes of this file done.
    pub bytes_done: u64,
    /// Bytes of this file in all (0 until the hub says).
    pub bytes_total: u64,
    /// Checking the checksum rather than downloading.
    pub verifying: bool,
}

/// The download was cancelled (the part file stays, so the next attempt resumes).
struct Cancelled;

struct Reporter<'a> {
    state: DownloadProgress,
    report: &'a mut dyn FnMut(&DownloadProgress),
    cancelled: &'a dyn Fn() -> bool,
}

impl Progress for Reporter<'_> {
    fn init(&mut self, size: usize, _filename: &str) {
        self.state.bytes_total = size as u64;
        self.state.bytes_done = 0;
        (self.report)(&self.state);
    }

    fn update(&mut self, size: usize) {
        if (self.cancelled)() {
            // hf-hub offers no way to stop a transfer: unwind out of it. Its file handles and
            // lock are dropped on the way and the part file is kept for a resume.
            std::panic::resume_unwind(Box::new(Cancelled));
        }
        self.state.bytes_done += size as u64;
        (self.report)(&self.state);
    }

    fn finish(&mut self) {}
}

/// Downloads the required files of `repo` from `endpoint` (None: the hub, or `HF_ENDPOINT`)
/// into `cache`, reporting progress; `cancelled` is polled as bytes arrive. Files already in
/// the cache are checked, not fetched again. Returns the snapshot folder after checking it.
pub fn fetch_with_progress(
    cache: &Path,
    repo: &str,
    endpoint: Option<&str>,
    offline: bool,
    report: &mut dyn FnMut(&DownloadProgress),
    cancelled: &dyn Fn() -> bool,
) -> Result<PathBuf, WeightsError> {
    if offline {
        return Err(WeightsError::Offline(manual_hint(cache, repo)));
    }
    let mut builder = hf_hub::api::sync::ApiBuilder::from_env().with_cache_dir(cache.to_path_buf()).with_progress(false);
    if let Some(endpoint) = endpoint {
        builder = builder.with_endpoint(endpoint.to_owned());
    }
    let api = builder.build().map_err(|e| download_error(cache, repo, "(connection)", &e.to_string()))?;
    let model = api.model(repo.to_owned());
    let cached = hf_hub::Cache::new(cache.to_path_buf()).model(repo.to_owned());
    let mut folder = None;
    for (index, file) in REQUIRED_FILES.iter().enumerate() {
        let state = DownloadProgress { file: (*file).to_owned(), file_number: index + 1, files: REQUIRED_FILES.len(), ..Default::default() };
        let path = match cached.get(file) {
            Some(path) => path,
            None => {
                let mut reporter = Reporter { state: state.clone(), report: &mut *report, cancelled };
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.download_with_progress(file, &mut reporter)));
                match outcome {
                    Ok(Ok(path)) => path,
                    Ok(Err(e)) => return Err(download_error(cache, repo, file, &e.to_string())),
                    Err(payload) if payload.is::<Cancelled>() => return Err(WeightsError::Cancelled),
                    Err(payload) => std::panic::resume_unwind(payload),
                }
            }
        };
        verify(&path, &state, report, cancelled)?;
        folder = path.parent().map(Path::to_path_buf);
    }
    let folder = folder.unwrap_or_else(|| repo_dir(cache, repo));
    check_folder(&folder)?;
    Ok(folder)
}

impl Progress for &mut Reporter<'_> {
    fn init(&mut self, size: usize, filename: &str) {
        (**self).init(size, filename);
    }
    fn update(&mut self, size: usize) {
        (**self).update(size);
    }
    fn finish(&mut self) {
        (**self).finish();
    }
}

/// Checks a downloaded file against the content hash the hub stored it under: large (LFS)
/// files are kept as `blobs/<sha256>`; small git files have a shorter (git) hash, which only
/// hf-hub's transfer checks.
fn verify(path: &Path, state: &DownloadProgress, report: &mut dyn FnMut(&DownloadProgress), cancelled: &dyn Fn() -> bool) -> Result<(), WeightsError> {
    let blob = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let Some(expected) = blob.file_name().and_then(|n| n.to_str()).filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit())) else {
        return Ok(());
    };
    let invalid = |reason: String| WeightsError::Invalid { reason, path: path.to_path_buf() };
    let mut file = std::fs::File::open(&blob).map_err(|e| invalid(format!("cannot read ({e})")))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut state = DownloadProgress { verifying: true, bytes_total: total, bytes_done: 0, ..state.clone() };
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        if cancelled() {
            return Err(WeightsError::Cancelled);
        }
        let n = std::io::Read::read(&mut file, &mut buffer).map_err(|e| invalid(format!("cannot read ({e})")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        state.bytes_done += n as u64;
        report(&state);
    }
    let actual: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if actual != expected.to_ascii_lowercase() {
        // A corrupt blob would be found again by the cache: remove it so a retry downloads.
        let _ = std::fs::remove_file(&blob);
        return Err(invalid(format!("checksum mismatch (SHA-256 {actual}, the hub says {expected}); removed, download again")));
    }
    Ok(())
}

fn download_error(cache: &Path, repo: &str, file: &str, reason: &str) -> WeightsError {
    WeightsError::Download { repo: repo.to_owned(), file: file.to_owned(), reason: reason.to_owned(), hint: manual_hint(cache, repo) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_blob_is_caught_and_removed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let bytes = b"the real content";
        let good: String = sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
        let blob = dir.path().join(&good);
        std::fs::write(&blob, bytes).expect("write");
        let state = DownloadProgress::default();
        let mut seen = Vec::new();
        verify(&blob, &state, &mut |p| seen.push(p.clone()), &|| false).expect("matches");
        assert!(seen.last().is_some_and(|p| p.verifying && p.bytes_done == bytes.len() as u64));

        let bad = dir.path().join("a".repeat(64));
        std::fs::write(&bad, bytes).expect("write");
        let err = verify(&bad, &state, &mut |_| {}, &|| false).expect_err("mismatch");
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        assert!(!bad.exists(), "the corrupt blob is removed");
    }

    #[test]
    fn offline_says_where_the_files_go() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = fetch_with_progress(dir.path(), "org/name", None, true, &mut |_| {}, &|| false).expect_err("offline");
        assert!(matches!(err, WeightsError::Offline(_)));
    }
}
