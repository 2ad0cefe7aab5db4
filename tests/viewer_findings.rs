//! Findings in the viewer (egui_kittest, wgpu on lavapipe, tiny random-init CLIP): mapping a
//! view fills the findings list, moving the threshold slider updates it, clicking a finding
//! moves the crosshair to its highest score, the 3-D view in the Ortho layout renders (a
//! snapshot) and turns with the mouse, and the exports write what the list shows.

mod common;

use common::shared_data;
use cue::app::CueApp;
use cue::app::maps::ModelStatus;
use cue::ui::Command;
use cue::volume::View;
use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};

use common::step_until;

fn summary(harness: &Harness<'_, CueApp>) -> String {
    harness.get_by_label_contains("finding(s) in").accesskit_node().value().unwrap_or_default()
}

#[test]
fn the_findings_list_follows_the_threshold_and_leads_the_crosshair() {
    let Some(data) = shared_data("findings in the viewer") else { return };
    let dir = tempfile::tempdir().unwrap();
    // Seeded: the snapshot shows the same maps every run.
    let prompt = common::tiny_prompt_file_seeded(dir.path(), Some(17));
    let case = data.join("cases/brats-sample");
    let mut harness = Harness::builder().with_size([1200.0, 760.0]).wgpu().build_eframe(move |cc| CueApp::new(cc, vec![case.clone()]));
    step_until(&mut harness, "loading", |app| !app.is_loading() && app.study.is_some());
    harness.state_mut().load_model(common::tiny_clip(), Some(prompt), false);
    step_until(&mut harness, "model ready", |app| matches!(app.maps.status, ModelStatus::Ready { .. }));
    harness.remove_cursor();
    harness.run_steps(2);
    // No maps yet: the panel says what to do.
    harness.get_by_label_contains("Map slices");

    let ctx = harness.ctx.clone();
    harness.state_mut().apply(Command::MapWholeView(View::Axial), &ctx);
    step_until(&mut harness, "the axial view mapped", |app| app.maps.job.is_none() && app.maps.native_keys().len() >= 155);
    step_until(&mut harness, "findings of the mapped view", |app| {
        app.findings.result.as_ref().is_some_and(|r| r.mapped_voxels > 0 && r.key.maps_received == app.maps.received) && !app.findings.is_computing()
    });
    harness.run_steps(2);
    let first = harness.state().findings.result.clone().unwrap();
    let shape = harness.state().study.as_ref().unwrap().study.shape();
    assert_eq!(first.mapped_voxels, shape.iter().product::<usize>(), "every axial slice mapped: every voxel has a score");
    assert!(!first.findings.findings.is_empty(), "the 99th percentile leaves regions");
    let text = summary(&harness);
    assert!(text.starts_with(&format!("{} finding(s) in T1 at score >=", first.findings.findings.len())), "{text}");
    assert_eq!(harness.get_all_by_label_contains("Finding ").filter(|n| n.accesskit_node().role() == egui::accesskit::Role::Button).count(), first.findings.findings.len().min(harness.get_all_by_label_contains("Finding ").count()));
    harness.get_by_label("Finding 1");

    // The slider: a higher percentile keeps fewer voxels, and the list and summary follow.
    harness.get_by_role_and_label(egui::accesskit::Role::Slider, "Threshold percentile").set_value_accesskit(99.9);
    step_until(&mut harness, "the list at the new threshold", |app| {
        app.findings.result.as_ref().is_some_and(|r| r.key.threshold == cue::app::findings::ThresholdChoice::Percentile(99.9)) && !app.findings.is_computing()
    });
    harness.run_steps(2);
    let second = harness.state().findings.result.clone().unwrap();
    assert!(second.threshold > first.threshold);
    let voxels = |r: &cue::app::findings::FindingsResult| r.findings.findings.iter().map(|f| f.voxels).sum::<usize>();
    assert!(voxels(&second) < voxels(&first), "{} voxels at 99.9 vs {} at 99", voxels(&second), voxels(&first));
    let text = summary(&harness);
    assert!(text.starts_with(&format!("{} finding(s)", second.findings.findings.len())) && text.contains(&format!("{:.4}", second.threshold)), "{text}");

    // Clicking a finding moves the crosshair to its highest score, in every view.
    let target = second.findings.findings.last().unwrap().clone();
    harness.get_by_label(&format!("Finding {}", target.label)).click();
    harness.run_steps(2);
    let study = harness.state().study.as_ref().unwrap();
    assert_eq!(study.cursor, target.max_voxel);
    assert_eq!(harness.state().findings.selected, Some(target.label));
    let [i, j, k] = target.max_voxel;
    harness.get_by_label(&format!("Voxel {i}, {j}, {k}"));

    // The 3-D view is drawn, and a drag on it turns it and renders it again.
    harness.render().expect("render");
    let rendered = harness.state().volume_images_rendered().unwrap();
    assert!(rendered > 0, "the 3-D view rendered nothing");
    let button = harness.get_by_label("MIP + findings").rect();
    let start = egui::pos2(button.min.x + 80.0, button.min.y - 80.0);
    let before = harness.state().study.as_ref().unwrap().orbit;
    harness.event(egui::Event::PointerMoved(start));
    harness.event(egui::Event::PointerButton { pos: start, button: egui::PointerButton::Primary, pressed: true, modifiers: Default::default() });
    harness.step();
    for n in 1..=4 {
        harness.event(egui::Event::PointerMoved(start + egui::vec2(15.0 * n as f32, 5.0 * n as f32)));
        harness.step();
    }
    harness.event(egui::Event::PointerButton { pos: start + egui::vec2(60.0, 20.0), button: egui::PointerButton::Primary, pressed: false, modifiers: Default::default() });
    harness.run_steps(2);
    harness.render().expect("render");
    let after = harness.state().study.as_ref().unwrap().orbit;
    assert!(after.yaw_deg != before.yaw_deg && after.pitch_deg != before.pitch_deg, "{before:?} -> {after:?}");
    assert!(harness.state().volume_images_rendered().unwrap() > rendered, "turning did not render the 3-D view again");
    harness.get_by_label("MIP + scores").click();
    harness.run_steps(3);
    assert_eq!(harness.state().study.as_ref().unwrap().volume_overlay, cue::render::VolumeOverlay::Scores);
    harness.get_by_label("MIP + findings").click();
    harness.state_mut().apply(Command::ResetViews, &ctx);
    harness.remove_cursor();
    harness.run_steps(3);
    let options = egui_kittest::SnapshotOptions::new().max_failed_pixels(1200 * 760 / 200);
    harness.snapshot_options("findings_3d", &options);

    // The exports: a label volume with one label per listed finding, a CSV row per finding.
    let csv = dir.path().join("findings.csv");
    let labels = dir.path().join("findings.nii.gz");
    harness.state_mut().apply(Command::ExportFindings { format: cue::app::report::FindingsExport::Csv, path: Some(csv.clone()) }, &ctx);
    harness.state_mut().apply(Command::ExportFindings { format: cue::app::report::FindingsExport::Labels, path: Some(labels.clone()) }, &ctx);
    step_until(&mut harness, "the exports", |_| csv.exists() && labels.exists());
    let rows = std::fs::read_to_string(&csv).unwrap().lines().count();
    assert_eq!(rows, second.findings.findings.len() + 1);

    // The report, opened in a real browser and printed, against the JSON export of the list.
    let (Some(python), Some(chromium)) = (common::check_python("findings report"), common::chromium("findings report")) else { return };
    let report = dir.path().join("report.html");
    let json = dir.path().join("findings.json");
    harness.state_mut().apply(Command::ExportFindings { format: cue::app::report::FindingsExport::Report, path: Some(report.clone()) }, &ctx);
    harness.state_mut().apply(Command::ExportFindings { format: cue::app::report::FindingsExport::Json, path: Some(json.clone()) }, &ctx);
    step_until(&mut harness, "the report", |_| report.exists() && json.exists());
    let listed: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(listed["findings"].as_array().unwrap().len(), second.findings.findings.len());
    common::run_check(&python, "check_report.py", &[report.as_os_str(), json.as_os_str(), chromium.as_os_str(), dir.path().as_os_str()]);
    // The saved labels, through nibabel: on the T1 file's own grid, one label per finding.
    let source = data.join("cases/brats-sample/t1n.nii.gz");
    common::run_check(&python, "check_app_labels.py", &[source.as_os_str(), labels.as_os_str(), json.as_os_str()]);
}

/// An export never replaces the image it came from: "Export map volume" and Findings › Labels
/// aimed at the open file (or its pair's other half) are refused with a message naming it, and
/// the file's bytes stay as they were; a new file is written as usual.
#[test]
fn an_export_never_replaces_the_open_file() {
    let Some(data) = shared_data("an_export_never_replaces_the_open_file") else { return };
    let dir = tempfile::tempdir().unwrap();
    let prompt = common::tiny_prompt_file(dir.path());
    let (header, image) = (dir.path().join("minimal.hdr"), dir.path().join("minimal.img"));
    for file in [&header, &image] {
        std::fs::copy(data.join("nifti-corpus/nifti-rs").join(file.file_name().unwrap()), file).unwrap();
    }
    let before = (std::fs::read(&header).unwrap(), std::fs::read(&image).unwrap());
    let opened = header.clone();
    let mut harness = Harness::builder().with_size([1100.0, 700.0]).wgpu().build_eframe(move |cc| CueApp::new(cc, vec![opened.clone()]));
    step_until(&mut harness, "loading", |app| !app.is_loading() && app.study.is_some());
    harness.state_mut().load_model(common::tiny_clip(), Some(prompt), false);
    step_until(&mut harness, "model ready", |app| matches!(app.maps.status, ModelStatus::Ready { .. }));
    let ctx = harness.ctx.clone();
    harness.state_mut().apply(Command::MapWholeView(View::Axial), &ctx);
    step_until(&mut harness, "findings", |app| {
        app.findings.result.as_ref().is_some_and(|r| r.mapped_voxels > 0 && r.key.maps_received == app.maps.received) && !app.findings.is_computing()
    });
    let refused = |harness: &mut Harness<'_, CueApp>, command: Command, target: &std::path::Path| {
        harness.state_mut().message = None;
        harness.state_mut().apply(command, &ctx);
        step_until(harness, "the refusal", |app| app.message.is_some());
        let message = harness.state().message.clone().unwrap();
        assert!(message.contains("would replace the input") && message.ends_with(&target.display().to_string()), "{message}");
    };
    refused(&mut harness, Command::ExportMapVolume { path: Some(image.clone()) }, &image);
    refused(&mut harness, Command::ExportFindings { format: cue::app::report::FindingsExport::Labels, path: Some(header.clone()) }, &header);
    assert!((std::fs::read(&header).unwrap(), std::fs::read(&image).unwrap()) == before, "the open file was changed");
    let elsewhere = dir.path().join("map.nii.gz");
    harness.state_mut().apply(Command::ExportMapVolume { path: Some(elsewhere.clone()) }, &ctx);
    step_until(&mut harness, "the export elsewhere", |_| elsewhere.exists());
}
