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
    tiny_prompt_file_seeded(dir, None)
}

/// The flex device's random generator is one for the process: a seeded prompt made while
/// another test of the same binary draws from it would differ from run to run (and a snapshot
/// of its maps with it), so prompts are made one at a time.
static PROMPT_RANDOM: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// [`tiny_prompt_file`] with the random initialisation seeded (the same prompt every run).
pub fn tiny_prompt_file_seeded(dir: &std::path::Path, seed: Option<u64>) -> PathBuf {
    use cue::model::clip::Clip;
    use cue::model::prompt::PromptConfig;
    let _one_at_a_time = PROMPT_RANDOM.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let device = burn::tensor::Device::flex();
    if let Some(seed) = seed {
        device.seed(seed);
    }
    let clip = Clip::load(&tiny_clip(), &device).expect("tiny CLIP");
    let path = dir.join("p.bpk");
    let config = PromptConfig { context_tokens: 3, shared_context: true };
    cue::model::trained::save_untrained_prompt(&clip, &config, vec![1, 2, 3], &path).expect("write the prompt");
    path
}

/// The Python of the independent checks (`$CUE_PYTHON`, a venv with `tests/python/requirements.txt`
/// that `.ci/run` sets up), or `None` with a message saying the test skips. Under
/// `CUE_REQUIRE_SHARED=1` (CI) a missing or broken interpreter fails the test instead.
pub fn check_python(test: &str) -> Option<PathBuf> {
    let python = std::env::var_os("CUE_PYTHON").map(PathBuf::from);
    let works = python.as_ref().is_some_and(|p| {
        std::process::Command::new(p)
            .args(["-c", "import nibabel, numpy, scipy, sklearn, pydicom"])
            .status()
            .is_ok_and(|s| s.success())
    });
    match python {
        Some(p) if works => Some(p),
        _ if shared_data_required() => panic!("{test}: CUE_PYTHON must name a Python with tests/python/requirements.txt (CI sets it up)"),
        _ => {
            eprintln!("SKIP {test}: set CUE_PYTHON to a Python with tests/python/requirements.txt");
            None
        }
    }
}

/// Runs `tests/python/SCRIPT` with `args`; panics with its output unless it succeeds, and
/// returns its stdout.
pub fn run_check(python: &std::path::Path, script: &str, args: &[&std::ffi::OsStr]) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python").join(script);
    let out = std::process::Command::new(python).arg(&path).args(args).output().expect("run the check script");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("{stdout}");
    stdout
}

/// The tiny CLIP with CLIP's whole vocabulary (49,408 tokens) and context (77), random
/// weights, written as Burnpack in `dir`: small enough for tests, and able to run the zero-shot
/// text prompts, which the committed tiny checkpoints' 1,000-token vocabulary cannot.
pub fn tiny_clip_with_vocabulary(dir: &std::path::Path) -> PathBuf {
    use cue::model::clip::{BackboneId, Clip, ClipModel};
    let device = burn::tensor::Device::flex();
    let tiny = Clip::load(&tiny_clip(), &device).expect("tiny CLIP");
    let _one_at_a_time = PROMPT_RANDOM.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut config = tiny.config.clone();
    config.text.vocab_size = 49_408;
    config.text.max_position_embeddings = 77;
    config.text.bos_token_id = 49_406;
    config.text.eos_token_id = 49_407;
    device.seed(5);
    let clip = Clip { model: ClipModel::new(&config, &device), config, device, id: BackboneId { name: "tiny-vocabulary".into(), sha256: "1".repeat(64) } };
    let path = dir.join("tiny-vocabulary.bpk");
    clip.save_burnpack(&path, false).expect("write the model");
    path
}

/// Debian's `dcm2niix`, the reference DICOM converter, or `None` with a message saying the test
/// skips; under `CUE_REQUIRE_SHARED=1` (CI, whose `.ci/run` installs it) its absence fails.
pub fn dcm2niix(test: &str) -> Option<PathBuf> {
    let found = std::process::Command::new("dcm2niix").arg("-v").output().is_ok();
    if found {
        Some(PathBuf::from("dcm2niix"))
    } else if shared_data_required() {
        panic!("{test}: dcm2niix is not installed (apt-get install dcm2niix)");
    } else {
        eprintln!("SKIP {test}: dcm2niix not installed");
        None
    }
}

/// Debian's headless Chromium (`chromium-headless-shell`, else `chromium`), the browser the
/// HTML report is opened in, or `None` with a message saying the test skips; under
/// `CUE_REQUIRE_SHARED=1` (CI, whose `.ci/run` installs it) its absence fails.
pub fn chromium(test: &str) -> Option<PathBuf> {
    for name in ["chromium-headless-shell", "chromium"] {
        if std::process::Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success()) {
            return Some(PathBuf::from(name));
        }
    }
    if shared_data_required() {
        panic!("{test}: no headless Chromium (apt-get install chromium-headless-shell)");
    }
    eprintln!("SKIP {test}: no headless Chromium installed");
    None
}

/// Steps the app until `done`, failing after 180 s with the app's last message.
#[cfg(feature = "gui")]
pub fn step_until(harness: &mut egui_kittest::Harness<'_, cue::app::CueApp>, what: &str, done: impl Fn(&cue::app::CueApp) -> bool) {
    let start = std::time::Instant::now();
    while !done(harness.state()) {
        assert!(start.elapsed() < Duration::from_secs(180), "{what} did not happen; message {:?}", harness.state().message);
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
}
