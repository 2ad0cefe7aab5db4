//! The model panel's download button, offline: the message says so and names what to place
//! where. Its own test binary because it sets process-wide environment variables.

use std::time::{Duration, Instant};

use cue::app::CueApp;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

#[test]
fn downloading_offline_says_which_files_to_place_where() {
    let home = tempfile::tempdir().unwrap();
    // SAFETY: the only test in this binary; set before any thread reads the environment.
    unsafe {
        std::env::set_var("HF_HUB_OFFLINE", "1");
        std::env::set_var("HF_HOME", home.path());
        std::env::remove_var("HF_HUB_CACHE");
    }
    let mut harness = Harness::builder().with_size([1100.0, 1400.0]).wgpu().build_eframe(|cc| CueApp::new(cc, Vec::new()));
    harness.run_steps(2);
    harness.get_by_label("Download openai/clip-vit-large-patch14").click();
    let start = Instant::now();
    while harness.state().message.is_none() {
        assert!(start.elapsed() < Duration::from_secs(30), "no message");
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    let message = harness.state().message.clone().unwrap();
    assert!(message.contains("offline (HF_HUB_OFFLINE is set)"), "{message}");
    assert!(message.contains("model.safetensors") && message.contains(&home.path().display().to_string()), "{message}");
    assert!(!harness.state().maps.downloading());
}
