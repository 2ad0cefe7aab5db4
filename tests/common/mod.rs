//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

/// `../shared/data` (or `$CUE_SHARED_DATA`), or `None` with a message saying the test skips.
///
/// With `CUE_REQUIRE_SHARED=1` (CI) a missing folder fails the test, naming the path, so a run
/// without the data can never pass while testing nothing.
pub fn shared_data(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("CUE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    if dir.is_dir() {
        Some(dir)
    } else if shared_data_required() {
        panic!("{test}: CUE_REQUIRE_SHARED is set but the shared test data is missing: {}", dir.display());
    } else {
        eprintln!("SKIP {test}: shared test data not found at {} (set CUE_SHARED_DATA)", dir.display());
        None
    }
}

/// Whether `CUE_REQUIRE_SHARED` asks for the shared data to be present.
pub fn shared_data_required() -> bool {
    std::env::var_os("CUE_REQUIRE_SHARED").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Runs `f` on its own thread and fails the test if it does not finish in `limit`.
pub fn within<T: Send + 'static>(limit: Duration, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within {limit:?} (hang)"),
    }
}

/// `|actual - expected| <= tolerance * max(1, |expected|)`; NaN matches only NaN and
/// infinities only themselves.
pub fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
    if expected.is_nan() || actual.is_nan() {
        return expected.is_nan() && actual.is_nan();
    }
    if expected.is_infinite() {
        return actual == expected;
    }
    (actual - expected).abs() <= tolerance * expected.abs().max(1.0)
}

/// The committed tiny random-init CLIP (`scripts/make_clip_reference.py`).
pub fn tiny_clip() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/clip/tiny")
}

/// A fresh (untrained) prompt file for the tiny CLIP in `dir`, N = 3, layers 1-3.
pub fn tiny_prompt_file(dir: &std::path::Path) -> PathBuf {
    use cue::model::clip::Clip;
    use cue::model::prompt::PromptConfig;
    let clip = Clip::load(&tiny_clip(), &burn::tensor::Device::flex()).expect("tiny CLIP");
    let path = dir.join("p.bpk");
    let config = PromptConfig { context_tokens: 3, shared_context: true };
    cue::model::trained::save_untrained_prompt(&clip, &config, vec![1, 2, 3], &path).expect("write the prompt");
    path
}
