//! The first run without weights, as a new user sees it: one clear state in the Model panel
//! (what is missing, the download with its size, a local checkpoint, what to do offline), a
//! failed load said in that state, and the state gone once a backbone is loaded.

mod common;

use std::time::{Duration, Instant};

use cue::app::CueApp;
use cue::app::maps::ModelStatus;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

#[test]
fn the_model_panel_says_what_is_missing_until_a_backbone_loads() {
    let mut harness = Harness::builder().with_size([1100.0, 1400.0]).wgpu().build_eframe(|cc| CueApp::new(cc, Vec::new()));
    harness.run_steps(2);
    harness.get_by_label_contains("No backbone yet: anomaly maps need CLIP ViT-L/14");
    harness.get_by_label_contains("about 1.71 GB");
    harness.get_by_label("Download openai/clip-vit-large-patch14");
    harness.get_by_label("Use a local checkpoint…");
    harness.get_by_label("Offline?");
    assert!(harness.query_by_label_contains("Zero-shot: no trained prompt").is_none());

    // Zero-shot needs CLIP's real 49408-token vocabulary; the committed tiny model has 1000, so
    // the load fails, and the panel says why while still offering the ways to get a backbone.
    harness.state_mut().load_model(common::tiny_clip(), None, false);
    let start = Instant::now();
    while !matches!(harness.state().maps.status, ModelStatus::Failed(_)) {
        assert!(start.elapsed() < Duration::from_secs(60), "no failure: {:?}", harness.state().maps.status);
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    harness.run_steps(2);
    assert!(harness.get_all_by_label_contains("outside the vocabulary").count() >= 1);
    harness.get_by_label("Download openai/clip-vit-large-patch14");
    harness.get_by_label("Use a local checkpoint…");

    // With a trained prompt the backbone loads and the missing-backbone state is gone.
    let dir = tempfile::tempdir().unwrap();
    let prompt = common::tiny_prompt_file(dir.path());
    harness.state_mut().load_model(common::tiny_clip(), Some(prompt), false);
    let start = Instant::now();
    while !matches!(harness.state().maps.status, ModelStatus::Ready { .. }) {
        assert!(start.elapsed() < Duration::from_secs(60), "model not ready: {:?}", harness.state().maps.status);
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    harness.run_steps(2);
    harness.get_by_label_contains("Prompt: ");
    assert!(harness.query_by_label_contains("No backbone yet").is_none());
    assert!(harness.query_by_label("Use a local checkpoint…").is_none(), "the missing-backbone state is gone");
    assert!(harness.query_by_label_contains("Zero-shot: no trained prompt").is_none(), "a trained prompt is not zero-shot");
}
