//! Anomaly maps in the viewer (egui_kittest, tiny random-init CLIP): pressing M or clicking
//! maps the slice of every sequence shown, the overlay and score appear, switching sequences
//! reuses maps already computed, and mapping a whole view reports progress and can be
//! cancelled.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::shared_data;
use cue::app::CueApp;
use cue::app::maps::ModelStatus;
use cue::app::state::Layout;
use cue::ui::Command;
use cue::volume::View;
use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

fn tiny() -> PathBuf {
    common::tiny_clip()
}

fn prompt_file(dir: &std::path::Path) -> PathBuf {
    common::tiny_prompt_file(dir)
}

fn step_until(harness: &mut Harness<'_, CueApp>, what: &str, done: impl Fn(&CueApp) -> bool) {
    let start = Instant::now();
    while !done(harness.state()) {
        assert!(start.elapsed() < Duration::from_secs(120), "{what} did not happen; model status {:?}", harness.state().maps.status);
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn maps_appear_over_slices_are_reused_and_whole_views_can_be_cancelled() {
    let Some(data) = shared_data("maps in the viewer") else { return };
    let dir = tempfile::tempdir().unwrap();
    let prompt = prompt_file(dir.path());
    let case = data.join("cases/brats-sample");
    let mut harness = Harness::builder().with_size([1100.0, 700.0]).wgpu().build_eframe(move |cc| CueApp::new(cc, vec![case.clone()]));
    step_until(&mut harness, "loading", |app| !app.is_loading() && app.study.is_some());
    harness.state_mut().load_model(tiny(), Some(prompt), false);
    step_until(&mut harness, "model ready", |app| matches!(app.maps.status, ModelStatus::Ready { .. }));
    harness.get_by_label_contains("Prompt: ");

    // Compare layout, axial: M maps the cursor's slice of the four visible sequences.
    harness.state_mut().settings.layout = Layout::Compare;
    harness.remove_cursor();
    harness.run_steps(2);
    harness.key_press(egui::Key::M);
    step_until(&mut harness, "four maps", |app| app.maps.native_keys().len() >= 4);
    harness.run_steps(3);
    assert!(harness.get_all_by_label_contains("anomaly score").count() >= 4, "no score shown");
    assert!(harness.state().maps.last_latency_ms.is_some());
    // The slice shader draws each map: four overlay textures bound, and the pixels change when
    // the maps are made fully transparent.
    let with_maps = harness.render().expect("render");
    assert_eq!(harness.state().overlays_on_gpu(), Some(4));
    harness.state_mut().settings.map_opacity = 0.0;
    harness.run_steps(2);
    let without = harness.render().expect("render");
    let changed = with_maps.pixels().zip(without.pixels()).filter(|(a, b)| a != b).count();
    assert!(changed > 1000, "only {changed} pixels show the maps");
    harness.state_mut().settings.map_opacity = 0.55;

    // Ortho on another sequence: its axial map is shown from what was computed, no new work.
    let before = harness.state().maps.native_keys().len();
    harness.state_mut().settings.layout = Layout::Ortho;
    let study_view = harness.state().study.as_ref().unwrap();
    let flair = (0..study_view.study.sequences.len()).find(|&i| study_view.study.sequences[i].kind.label() == "FLAIR").unwrap();
    harness.state_mut().apply(Command::SelectSequence(flair), &egui::Context::default());
    harness.run_steps(3);
    assert_eq!(harness.get_all_by_label_contains("anomaly score").count(), 1, "the cached axial map of FLAIR is not shown");
    // Its sagittal and coronal views show the plane cut from the axial maps, labelled so.
    assert_eq!(harness.get_all_by_label("map from axial slices").count(), 2);
    assert_eq!(harness.state().maps.native_keys().len(), before);

    // A whole coronal view: progress, then cancel mid-way.
    harness.state_mut().apply(Command::MapWholeView(View::Coronal), &egui::Context::default());
    step_until(&mut harness, "progress", |app| app.maps.job.is_some_and(|j| j.done > 0));
    let total = harness.state().maps.job.unwrap().total;
    harness.run_steps(1);
    harness.get_by_label("Cancel mapping");
    harness.state_mut().apply(Command::CancelMapping, &egui::Context::default());
    harness.run_steps(2);
    assert!(harness.state().maps.job.is_none(), "still mapping after cancel");
    std::thread::sleep(Duration::from_millis(300));
    harness.run_steps(2);
    let coronal = harness.state().maps.native_keys().iter().filter(|k| k.view == View::Coronal).count();
    assert!(coronal > 0 && coronal < total, "{coronal} of {total} coronal maps");

    // All three orientations natively, one job after another; Cancel drops the queued ones.
    harness.state_mut().settings.layout = Layout::Ortho;
    harness.run_steps(1);
    harness.get_by_label("Map all orientations");
    harness.state_mut().apply(Command::MapAllViews, &egui::Context::default());
    harness.run_steps(2);
    assert_eq!(harness.state().maps.job.map(|j| j.view), Some(View::Axial));
    let queued: Vec<View> = harness.state().maps.queued_views.iter().map(|(v, _)| *v).collect();
    assert_eq!(queued, [View::Sagittal, View::Coronal]);
    harness.get_by_label_contains("then sagittal, coronal");
    step_until(&mut harness, "the sagittal job", |app| app.maps.job.is_some_and(|j| j.view == View::Sagittal));
    let axial_flair = harness.state().maps.native_keys().iter().filter(|k| k.view == View::Axial && k.sequence == "FLAIR").count();
    assert_eq!(axial_flair, 155, "every axial slice of the shown sequence");
    harness.state_mut().apply(Command::CancelMapping, &egui::Context::default());
    harness.run_steps(2);
    assert!(harness.state().maps.job.is_none() && harness.state().maps.queued_views.is_empty());

    // What "Export map volume" writes: the coronal maps of T1 on the study's grid.
    let app = harness.state();
    let study = app.study.as_ref().unwrap();
    let (volume, slices) = app.maps.map_volume(study, 0, View::Coronal);
    let t1_maps = app.maps.native_keys().iter().filter(|k| k.view == View::Coronal && k.sequence == "T1").count();
    assert_eq!(slices, t1_maps);
    let shape = study.study.shape();
    let filled: std::collections::BTreeSet<usize> =
        volume.iter().enumerate().filter(|(_, v)| **v != 0.0).map(|(i, _)| (i / shape[0]) % shape[1]).collect();
    assert_eq!(filled.len(), slices, "one coronal plane (constant j) per mapped slice");
}

#[test]
fn the_training_tab_trains_and_the_evaluation_tab_fills_its_table() {
    let Some(data) = shared_data("training and evaluation tabs") else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tab.bpk");
    let mut harness = Harness::builder().with_size([1100.0, 900.0]).wgpu().build_eframe(|cc| CueApp::new(cc, Vec::new()));
    {
        let app = harness.state_mut();
        app.settings.model_path = Some(tiny());
        app.training.data = data.join("cases/brats-sample").display().to_string();
        app.training.out = out.display().to_string();
        app.training.config.epochs = 2;
        app.training.config.max_slices = 6;
        app.training.config.context_tokens = 3;
        app.training.config.device = cue::model::device::DeviceChoice::Cpu;
    }
    harness.state_mut().apply(Command::SetTab(cue::app::tabs::Tab::Training), &egui::Context::default());
    harness.run_steps(2);
    harness.get_by_label("Start training").click();
    harness.run_steps(1);
    assert!(harness.state().runs.training.is_running(), "training did not start");
    step_until(&mut harness, "training to finish", |app| !app.runs.training.is_running());
    let tab = &harness.state().runs.training;
    assert!(tab.losses.len() >= 2, "the loss plot got {} points; log {:?}", tab.losses.len(), tab.log);
    assert_eq!(tab.finished.as_deref(), Some(out.as_path()), "{:?}", tab.log);
    harness.run_steps(2);
    harness.get_by_label("Use this prompt in the viewer").click();
    harness.run_steps(1);
    step_until(&mut harness, "the new prompt to load", |app| matches!(&app.maps.status, ModelStatus::Ready { prompt, .. } if prompt.ends_with("tab.bpk")));

    harness.state_mut().apply(Command::SetTab(cue::app::tabs::Tab::Evaluation), &egui::Context::default());
    {
        let app = harness.state_mut();
        app.evaluation.data = data.join("cases/brats-sample").display().to_string();
        app.evaluation.max_slices = 2;
        app.evaluation.views = vec!["axial".into()];
    }
    harness.run_steps(2);
    harness.get_by_label("Run evaluation").click();
    harness.run_steps(1);
    step_until(&mut harness, "evaluation to finish", |app| !app.runs.evaluation.is_running());
    harness.run_steps(2);
    let report = harness.state().runs.evaluation.report.as_ref().unwrap_or_else(|| panic!("no report: {}", harness.state().runs.evaluation.status));
    assert_eq!(report.cells.len(), 4);
    assert!(report.cells.values().all(|c| c.pixel_roc.first() == Some(&[0.0, 0.0]) && c.pixel_roc.last() == Some(&[1.0, 1.0])), "ROC curves missing");
    assert!(harness.get_all_by_label("FLAIR").count() >= 1);
    assert_eq!(report.precision, "f32");
    harness.get_by_label("Evaluated in f32");
}

#[test]
fn the_model_runs_on_the_device_the_window_draws_with() {
    use eframe::egui_wgpu::{WgpuSetup, wgpu};
    let Some(data) = shared_data("the display's device for the model") else { return };
    let dir = tempfile::tempdir().unwrap();
    let prompt = prompt_file(dir.path());
    let case = data.join("cases/brats-sample");
    // The window's own wgpu setup, on lavapipe's Vulkan adapter (burn does not compute on GL).
    let mut setup = cue::app::wgpu_setup();
    if let WgpuSetup::CreateNew(new) = &mut setup {
        new.instance_descriptor.backends = wgpu::Backends::VULKAN;
    }
    let mut harness = Harness::builder().with_size([1100.0, 700.0]).wgpu_setup(setup).build_eframe(move |cc| CueApp::new(cc, vec![case.clone()]));
    step_until(&mut harness, "loading", |app| !app.is_loading() && app.study.is_some());
    harness.state_mut().apply(Command::SetModelDevice(cue::model::device::DeviceChoice::Gpu), &egui::Context::default());
    harness.state_mut().load_model(tiny(), Some(prompt), false);
    step_until(&mut harness, "model ready", |app| matches!(app.maps.status, ModelStatus::Ready { .. }));
    let ModelStatus::Ready { device, .. } = &harness.state().maps.status else { unreachable!() };
    assert!(device.contains("shared with the display"), "the model runs on {device}");
    harness.get_by_label_contains("shared with the display");

    // A map computed on that device is drawn by the same device's slice shader.
    harness.remove_cursor();
    harness.run_steps(2);
    harness.key_press(egui::Key::M);
    step_until(&mut harness, "a map", |app| !app.maps.native_keys().is_empty());
    harness.run_steps(3);
    harness.render().expect("render");
    assert!(harness.state().overlays_on_gpu().is_some_and(|n| n >= 1), "no overlay on the GPU");
    assert!(harness.get_all_by_label_contains("anomaly score").count() >= 1, "no score shown");
}

/// The number type is chosen in the model panel; maps of one type never show under another:
/// after switching, the view waits for maps of the new type (which differ from f32's within
/// the bound `cue map` is held to), and switching back shows the stored f32 maps at once.
#[test]
fn maps_of_each_number_type_are_kept_apart() {
    use cue::model::clip::Precision;
    let Some(data) = shared_data("maps per number type") else { return };
    let dir = tempfile::tempdir().unwrap();
    let prompt = common::tiny_prompt_file_seeded(dir.path(), Some(7));
    let case = data.join("cases/brats-sample");
    let mut harness = Harness::builder().with_size([1100.0, 900.0]).wgpu().build_eframe(move |cc| CueApp::new(cc, vec![case.clone()]));
    step_until(&mut harness, "loading", |app| !app.is_loading() && app.study.is_some());
    harness.state_mut().apply(Command::SetModelDevice(cue::model::device::DeviceChoice::Cpu), &egui::Context::default());
    harness.state_mut().load_model(tiny(), Some(prompt), false);
    let ready = |precision: Precision| move |app: &CueApp| matches!(&app.maps.status, ModelStatus::Ready { precision: p, .. } if *p == precision);
    step_until(&mut harness, "model ready in f32", ready(Precision::F32));
    harness.get_by_label("Towers in f32");

    harness.remove_cursor();
    harness.run_steps(2);
    harness.key_press(egui::Key::M);
    step_until(&mut harness, "f32 maps", |app| !app.maps.native_keys().is_empty());
    harness.run_steps(3);
    let shown = harness.get_all_by_label_contains("anomaly score").count();
    assert!(shown >= 1, "no f32 score shown");
    let f32_keys = harness.state().maps.native_keys();

    // i16 through the panel's combo; on a CPU without AVX2 it runs f32 and the panel says so.
    harness.get_by_label("Number type").click();
    harness.run_steps(2);
    harness.get_by_label("i16 (CPU)").click();
    harness.run_steps(2);
    assert_eq!(harness.state().settings.model_precision, Precision::I16);
    #[cfg(target_arch = "x86_64")]
    let runs = if std::is_x86_feature_detected!("avx2") { Precision::I16 } else { Precision::F32 };
    #[cfg(not(target_arch = "x86_64"))]
    let runs = Precision::F32;
    step_until(&mut harness, "model ready in i16", ready(runs));
    harness.run_steps(3);
    harness.get_by_label(&format!("Towers in {runs}"));
    assert_eq!(runs == Precision::F32, harness.query_all_by_label_contains("has no path on this device").count() == 1);
    if runs == Precision::F32 {
        return;
    }
    assert_eq!(harness.query_all_by_label_contains("anomaly score").count(), 0, "an f32 map is shown under i16");

    harness.key_press(egui::Key::M);
    step_until(&mut harness, "i16 maps", |app| app.maps.native_keys().len() >= 2 * f32_keys.len());
    harness.run_steps(3);
    assert_eq!(harness.get_all_by_label_contains("anomaly score").count(), shown);
    let app = harness.state();
    let i16_keys: Vec<_> = app.maps.native_keys().into_iter().filter(|k| !f32_keys.contains(k)).collect();
    assert_eq!(i16_keys.len(), f32_keys.len());
    let stored = |key: &cue::workspace::map_store::MapKey| app.maps.stored(key).expect("a stored map");
    for key in &i16_keys {
        assert!(key.prompt_id.ends_with("/i16"), "{}", key.prompt_id);
        let twin = f32_keys.iter().find(|k| cue::workspace::map_store::MapKey { prompt_id: key.prompt_id.clone(), ..(*k).clone() } == *key).expect("its f32 twin");
        let (a, b) = (stored(twin), stored(key));
        let range = a.scores.iter().fold(f32::MIN, |m, v| m.max(*v)) - a.scores.iter().fold(f32::MAX, |m, v| m.min(*v));
        let worst = a.scores.iter().zip(&b.scores).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
        assert!(worst > 0.0 && worst <= 3e-3 * range, "{}: i16 differs from f32 by {worst} of a range of {range}", key.sequence);
    }

    let i16_export = dir.path().join("i16.nii.gz");
    harness.state_mut().apply(Command::ExportMapVolume { path: Some(i16_export.clone()) }, &egui::Context::default());

    // Back to f32: its maps are shown from the store, nothing is computed again.
    harness.get_by_label("Number type").click();
    harness.run_steps(2);
    harness.get_by_label("f32 (exact)").click();
    step_until(&mut harness, "model ready in f32 again", ready(Precision::F32));
    harness.run_steps(3);
    assert_eq!(harness.get_all_by_label_contains("anomaly score").count(), shown, "the stored f32 maps are not shown");
    assert_eq!(harness.state().maps.native_keys().len(), 2 * f32_keys.len());

    // "Export map volume" writes the maps of the type loaded, where they were computed, as
    // nibabel reads them.
    let f32_export = dir.path().join("f32.nii.gz");
    harness.state_mut().apply(Command::ExportMapVolume { path: Some(f32_export.clone()) }, &egui::Context::default());
    step_until(&mut harness, "both exports", |_| i16_export.exists() && f32_export.exists());
    let Some(python) = common::check_python("maps per number type") else { return };
    let app = harness.state();
    let study = app.study.as_ref().unwrap();
    let view = app.settings.active_view;
    // The sequence the export writes: the first the active view shows.
    let sequence = app.sequences_in(view)[0];
    let mapped = app.maps.native_keys().iter().filter(|k| k.view == view && k.sequence == study.study.sequences[sequence].kind.label() && !k.prompt_id.ends_with("/i16")).count();
    let source = study.study.sequences[sequence].volume.source.path.clone();
    common::run_check(
        &python,
        "check_exported_map.py",
        &[source.as_os_str(), f32_export.as_os_str(), i16_export.as_os_str(), "i16".as_ref(), "3e-3".as_ref(), view.name().as_ref(), mapped.to_string().as_ref()],
    );
}
