//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

/// `../shared/data` (or `$CUE_SHARED_DATA`), or `None` with a message saying the test skips.
pub fn shared_data(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("CUE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIP {test}: shared test data not found at {} (set CUE_SHARED_DATA)", dir.display());
        None
    }
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
