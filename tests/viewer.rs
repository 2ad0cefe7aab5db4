//! The desktop app under egui_kittest, rendered with wgpu (lavapipe where there is no GPU).

mod common;

use std::time::{Duration, Instant};

use common::shared_data;
use cue::app::CueApp;
use cue::app::state::Layout;
use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::NodeT;
use egui_kittest::kittest::Queryable;

/// Steps the app until its loader thread has finished.
fn wait_until_loaded(harness: &mut Harness<'_, CueApp>) {
    let start = Instant::now();
    while harness.state().is_loading() {
        assert!(start.elapsed() < Duration::from_secs(120), "study did not load");
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn open(paths: Vec<std::path::PathBuf>) -> Harness<'static, CueApp> {
    open_drawing(paths, false)
}

/// [`open`], the slices drawn on the CPU path where `cpu_slices`.
fn open_drawing(paths: Vec<std::path::PathBuf>, cpu_slices: bool) -> Harness<'static, CueApp> {
    let mut harness = Harness::builder().with_size([1100.0, 700.0]).wgpu().build_eframe(move |cc| {
        let app = CueApp::new(cc, paths.clone());
        if cpu_slices { app.with_cpu_slices() } else { app }
    });
    wait_until_loaded(&mut harness);
    harness.run_steps(3);
    harness
}

fn status_voxel(harness: &Harness<'_, CueApp>) -> String {
    // A Label's text is its AccessKit value.
    harness.get_by_label_contains("Voxel ").accesskit_node().value().unwrap_or_default()
}

#[test]
fn empty_state_explains_how_to_open_data() {
    let mut harness = open(Vec::new());
    harness.run_steps(2);
    assert!(harness.get_all_by_label("No study open").count() >= 1);
    assert!(harness.state().study.is_none());
}

#[test]
fn brats_study_opens_and_keys_step_slices() {
    let Some(data) = shared_data("viewer keys") else { return };
    let mut harness = open(vec![data.join("cases/brats-sample")]);
    let study = harness.state().study.as_ref().expect("study loaded");
    assert_eq!(study.study.sequences.len(), 5);
    assert_eq!(status_voxel(&harness), "Voxel 120, 120, 77");
    // No view hovered: keys step the active (axial) orientation.
    harness.remove_cursor();
    harness.key_press(egui::Key::ArrowUp);
    harness.run_steps(2);
    assert_eq!(status_voxel(&harness), "Voxel 120, 120, 78");
    harness.key_press(egui::Key::PageDown);
    harness.key_press(egui::Key::PageDown);
    harness.run_steps(2);
    assert_eq!(status_voxel(&harness), "Voxel 120, 120, 76");
    // 2 picks sagittal; stepping then moves x.
    harness.key_press(egui::Key::Num2);
    harness.key_press(egui::Key::ArrowUp);
    harness.run_steps(2);
    assert_eq!(status_voxel(&harness), "Voxel 121, 120, 76");
}

#[test]
fn only_views_whose_slice_changed_are_rendered_again() {
    let Some(data) = shared_data("slice images") else { return };
    let mut harness = open(vec![data.join("cases/brats-sample")]);
    harness.remove_cursor();
    harness.render().expect("render");
    let first = harness.state().slice_images_rendered().expect("wgpu");
    assert!(first >= 3, "the three Ortho views were never rendered ({first})");
    harness.run_steps(2);
    harness.render().expect("render");
    assert_eq!(harness.state().slice_images_rendered(), Some(first), "an unchanged frame rendered slices");
    // One axial step: the axial view changes; sagittal and coronal only move their crosshair.
    harness.key_press(egui::Key::ArrowUp);
    harness.run_steps(1);
    harness.render().expect("render");
    assert_eq!(harness.state().slice_images_rendered(), Some(first + 1));
}

#[test]
fn clicking_moves_the_crosshair_and_the_status_shows_the_intensity() {
    let Some(data) = shared_data("viewer click") else { return };
    let mut harness = open(vec![data.join("cases/brats-sample")]);
    // The axial view is the first cell; its letters bound it.
    let left = harness.get_all_by_label("R").next().expect("R letter").rect();
    let top = harness.get_all_by_label("A").next().expect("A letter").rect();
    let centre = egui::pos2(top.center().x, left.center().y);
    // Right of and below the crosshair: towards the patient's left (lower i) and posterior
    // (lower j) in radiological display.
    let target = centre + egui::vec2(40.0, 30.0);
    harness.hover_at(target);
    harness.drag_at(target);
    harness.drop_at(target);
    harness.run_steps(2);
    let study = harness.state().study.as_ref().unwrap();
    let [i, j, k] = study.cursor;
    assert!(i < 120 && j < 120 && k == 77, "cursor {:?}", study.cursor);
    assert_eq!(status_voxel(&harness), format!("Voxel {i}, {j}, {k}"));
    for sequence in &study.study.sequences {
        let value = sequence.volume.value([i, j, k]).unwrap();
        let expected = format!("{} {}", sequence.kind.label(), cue::ui::panels::format_intensity(value));
        harness.get_by_label(&expected);
    }
}

#[test]
fn layouts_window_level_and_radiological_switch() {
    let Some(data) = shared_data("viewer layouts") else { return };
    let mut harness = open(vec![data.join("cases/brats-sample")]);
    for (name, layout) in [("Compare", Layout::Compare), ("Grid", Layout::Grid), ("Ortho", Layout::Ortho)] {
        harness.get_by_label(name).click();
        harness.run_steps(2);
        assert_eq!(harness.state().settings.layout, layout);
    }
    harness.get_by_label("Compare").click();
    harness.run_steps(2);
    // Four sequences side by side, axial: each view reads R ... L.
    let positions = |harness: &Harness<'_, CueApp>, letter: &str| -> Vec<f32> {
        harness.get_all_by_label(letter).map(|n| n.rect().center().x).collect()
    };
    let (r, l) = (positions(&harness, "R"), positions(&harness, "L"));
    assert_eq!((r.len(), l.len()), (4, 4));
    assert!(r.iter().zip(&l).all(|(r, l)| r < l), "radiological: R left of L: {r:?} {l:?}");
    harness.get_by_role_and_label(egui::accesskit::Role::Button, "Radiological").click();
    harness.run_steps(2);
    harness.get_by_role_and_label(egui::accesskit::Role::Button, "Neurological");
    let (r, l) = (positions(&harness, "R"), positions(&harness, "L"));
    assert!(r.iter().zip(&l).all(|(r, l)| r > l), "neurological: L left of R: {r:?} {l:?}");
    // Right-drag on a view widens the window of that sequence.
    let before = harness.state().study.as_ref().unwrap().sequences[0].window;
    let centre = harness.get_all_by_label("A").next().unwrap().rect().center() + egui::vec2(0.0, 120.0);
    harness.hover_at(centre);
    harness.event(egui::Event::PointerButton { pos: centre, button: egui::PointerButton::Secondary, pressed: true, modifiers: Default::default() });
    harness.run_steps(1);
    for step in 1..=5 {
        harness.hover_at(centre + egui::vec2(10.0 * step as f32, -5.0 * step as f32));
        harness.run_steps(1);
    }
    harness.event(egui::Event::PointerButton { pos: centre + egui::vec2(50.0, -25.0), button: egui::PointerButton::Secondary, pressed: false, modifiers: Default::default() });
    harness.run_steps(2);
    let after = harness.state().study.as_ref().unwrap().sequences[0].window;
    assert!(after.width > before.width && after.level > before.level, "{before:?} -> {after:?}");
}

#[test]
fn a_bad_file_shows_a_readable_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken_t1.nii");
    std::fs::write(&bad, b"not a nifti file at all").unwrap();
    let mut harness = open(vec![bad.clone()]);
    harness.run_steps(2);
    assert!(harness.state().study.is_none());
    let message = harness.state().message.clone().expect("error shown");
    assert!(message.contains("not a NIfTI file") && message.ends_with("broken_t1.nii"), "{message}");
    harness.get_by_label(&message);
}

/// One small snapshot per layout, rendered with wgpu (lavapipe in CI).
#[test]
fn layout_snapshots() {
    let Some(data) = shared_data("layout snapshots") else { return };
    let mut harness = Harness::builder()
        .with_size([640.0, 400.0])
        .wgpu()
        .build_eframe(move |cc| CueApp::new(cc, vec![data.join("cases/brats-sample")]));
    wait_until_loaded(&mut harness);
    harness.remove_cursor();
    for (name, layout) in [("Ortho", "layout_ortho"), ("Compare", "layout_compare"), ("Grid", "layout_grid")] {
        harness.get_by_label(name).click();
        harness.run_steps(3);
        // Tolerates the few anti-aliased pixels in which llvmpipe builds for other CPUs differ.
        let options = egui_kittest::SnapshotOptions::new().max_failed_pixels(640 * 400 / 200);
        harness.snapshot_options(layout, &options);
    }
}

/// Reading files is a debug-build error on the UI thread; the loader thread does it instead.
#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "must never block")]
fn reading_a_file_on_the_ui_thread_panics_in_debug_builds() {
    cue::threads::forbid_blocking_work("UI");
    let _ = cue::volume::Volume::read(std::path::Path::new("/no/such/file.nii"), 0);
}

/// `cue` with no arguments: the bundled synthetic demo opens, says it is synthetic, and its
/// four sequences stand side by side in the Compare layout.
#[test]
fn startup_opens_the_synthetic_demo_in_compare_layout() {
    let mut harness = Harness::builder().with_size([1100.0, 700.0]).wgpu().build_eframe(|cc| CueApp::new_with_demo(cc));
    wait_until_loaded(&mut harness);
    harness.run_steps(3);
    let study = harness.state().study.as_ref().expect("demo loaded from assets/demo");
    assert!(study.study.name.contains("Synthetic"), "{}", study.study.name);
    assert_eq!(study.study.sequences.len(), 5);
    assert_eq!(harness.state().settings.layout, Layout::Compare);
    assert_eq!(study.visible_indices().len(), 4);
    assert_eq!(harness.get_all_by_label("R").count(), 4, "four axial views");
    assert!(harness.get_all_by_label_contains("Synthetic").count() >= 1, "the UI says it is synthetic");
    for label in ["T1", "T1CE", "T2", "FLAIR"] {
        assert!(harness.get_all_by_label(label).count() >= 1, "{label} missing from the study panel");
    }
}

/// A file whose name says nothing shows as itself; the user names its sequence and the study
/// reloads with that choice.
#[test]
fn the_user_names_a_sequence_the_file_name_did_not_tell() {
    let Some(data) = shared_data("assign sequence") else { return };
    let dir = tempfile::tempdir().unwrap();
    let scan = dir.path().join("scan_004.nii.gz");
    std::fs::copy(data.join("cases/brats-sample/t2f.nii.gz"), &scan).unwrap();
    let mut harness = open(vec![scan.clone()]);
    let kind = |h: &Harness<'_, CueApp>| h.state().study.as_ref().unwrap().study.sequences[0].kind.clone();
    assert_eq!(kind(&harness), cue::volume::SequenceKind::Other("scan_004.nii.gz".into()));
    harness.get_by_label("is").click();
    harness.run_steps(2);
    harness.get_by_label("FLAIR").click();
    harness.run_steps(2);
    wait_until_loaded(&mut harness);
    harness.run_steps(2);
    assert_eq!(kind(&harness), cue::volume::SequenceKind::Flair);
}

/// The intensity the status bar shows for the first sequence at the crosshair.
fn status_value(harness: &Harness<'_, CueApp>) -> String {
    let kind = harness.state().study.as_ref().expect("a study").study.sequences[0].kind.label();
    let prefix = format!("{kind} ");
    harness
        .get_all_by_label_contains(&prefix)
        .filter_map(|node| node.accesskit_node().value().and_then(|text| text.strip_prefix(&prefix).map(str::to_owned)))
        .find(|rest| rest.parse::<f64>().is_ok())
        .expect("the status bar's value")
}

/// Clicks `button`, waits for the study it reloads, and finds `label` in the window.
fn click_and_reload(harness: &mut Harness<'_, CueApp>, button: &str, label: &str) {
    harness.get_by_label(button).click();
    harness.run_steps(2);
    wait_until_loaded(harness);
    harness.run_steps(3);
    harness.get_by_label(label);
}

/// A 4-D file opens as its first volume, and the sequence list says so; < and > step through
/// its volumes keeping the crosshair, and the status bar shows the new volume's value there,
/// as nibabel reads it.
#[test]
fn a_four_d_file_says_which_volume_is_shown() {
    let test = "a_four_d_file_says_which_volume_is_shown";
    let Some(data) = shared_data(test) else { return };
    let Some(python) = common::check_python(test) else { return };
    let file = data.join("nifti-corpus/nibabel/example4d.nii.gz");
    let mut harness = open(vec![file.clone()]);
    assert!(harness.state().study.is_some(), "the 4-D file did not open");
    harness.get_by_label("(volume 1 of 2)");
    // Off the centre, so that a view reset would show.
    harness.remove_cursor();
    for _ in 0..3 {
        harness.key_press(egui::Key::ArrowUp);
    }
    harness.run_steps(2);
    let voxel = status_voxel(&harness);
    let [i, j, k] = harness.state().study.as_ref().unwrap().cursor.map(|v| v.to_string());
    let check = |volume: &str, shown: &str| {
        let args = [file.as_os_str(), volume.as_ref(), i.as_ref(), j.as_ref(), k.as_ref(), shown.as_ref()];
        common::run_check(&python, "check_app_value.py", &args);
    };
    let first = status_value(&harness);
    check("0", &first);
    click_and_reload(&mut harness, ">", "(volume 2 of 2)");
    assert_eq!(status_voxel(&harness), voxel, "stepping to the next volume moved the crosshair");
    let second = status_value(&harness);
    assert_ne!(first, second, "this voxel's value should differ between the two volumes");
    check("1", &second);
    click_and_reload(&mut harness, "<", "(volume 1 of 2)");
    assert_eq!(status_value(&harness), first);
    let three_d = open(vec![data.join("nifti-corpus/nibabel/anatomical.nii")]);
    assert!(three_d.state().study.is_some());
    assert!(three_d.query_by_label_contains("(volume ").is_none(), "a 3-D file is one volume");
}

/// Colour images show their own colours in the slice views and the status bar, as nibabel
/// reads them, not their luminance, drawn by the slice shader and by the CPU path: RGB24 and
/// RGBA32 NIfTI files written by nibabel on a grid the app flips, and a colour DICOM series
/// written by pydicom (planar RGB, coronal slices), read back through dcm2niix's conversion.
#[test]
fn colour_images_show_their_colours() {
    let test = "colour_images_show_their_colours";
    let Some(python) = common::check_python(test) else { return };
    let Some(dcm2niix) = common::dcm2niix(test) else { return };
    let dir = tempfile::tempdir().expect("temporary folder");
    let nifti = dir.path().join("colour-fa.nii.gz");
    common::run_check(&python, "check_app_colours.py", &["make".as_ref(), nifti.as_os_str()]);
    let rgba = dir.path().join("colour-rgba.nii");
    common::run_check(&python, "check_app_colours.py", &["make".as_ref(), rgba.as_os_str(), "rgba".as_ref()]);
    common::run_check(&python, "make_dicom_series.py", &[dir.path().join("dicom").as_os_str()]);
    let series = dir.path().join("dicom/rgb-planar");
    let converted = std::process::Command::new(&dcm2niix)
        .args(["-z", "n", "-b", "n", "-f", "rgb-planar"])
        .arg("-o")
        .arg(dir.path())
        .arg(&series)
        .output()
        .expect("run dcm2niix");
    assert!(converted.status.success(), "dcm2niix: {}", String::from_utf8_lossy(&converted.stderr));
    let dcm2niix_nifti = dir.path().join("rgb-planar.nii");
    for (case, (opened, reference)) in [(&nifti, &nifti), (&rgba, &rgba), (&series, &dcm2niix_nifti)].into_iter().enumerate() {
        for cpu_slices in [false, true] {
            let what = format!("{} ({} slices)", opened.display(), if cpu_slices { "CPU" } else { "GPU" });
            let mut harness = open_drawing(vec![opened.clone()], cpu_slices);
            if harness.state().series_picker.is_some() {
                // A DICOM folder lists its series first; the sequence box is named for screen
                // readers though its column shows no label.
                harness.get_by_label_contains("Sequence of ");
                harness.get_by_label("Open 1 series").click();
                common::step_until(&mut harness, "the series", |app| !app.is_loading() && app.study.is_some());
                harness.run_steps(3);
            }
            assert!(harness.state().study.is_some(), "{what} did not open");
            assert_eq!(harness.state().slice_images_rendered().is_none(), cpu_slices, "{what}: not the slice path asked for");
            harness.get_by_label_contains("RGB, shown as stored");
            // Off the centre slice, whose colours would not tell a flipped slice axis.
            harness.remove_cursor();
            harness.key_press(egui::Key::ArrowUp);
            harness.run_steps(2);
            let shown = harness
                .get_all_by_label_contains(" RGB ")
                .filter_map(|node| node.accesskit_node().value().and_then(|text| text.split_once(" RGB ").map(|(_, rgb)| rgb.to_owned())))
                .next()
                .unwrap_or_else(|| panic!("{what}: no colour in the status bar"));
            let [i, j, k] = harness.state().study.as_ref().expect("a study").cursor.map(|v| v.to_string());
            let screenshot = dir.path().join(format!("window-{case}-{cpu_slices}.png"));
            harness.render().expect("render").save(&screenshot).expect("save the screenshot");
            let args = ["check".as_ref(), reference.as_os_str(), screenshot.as_os_str(), i.as_ref(), j.as_ref(), k.as_ref(), shown.as_ref()];
            eprintln!("{what}");
            common::run_check(&python, "check_app_colours.py", &args);
        }
    }
}

/// The model panel chooses where the model runs: a local device at once, a remote server once
/// its address and token file are given ("Connect"); the choice lands in the settings.
#[test]
fn the_model_device_is_chosen_in_the_model_panel() {
    use cue::model::device::{DeviceChoice, RemoteTarget};
    let mut harness = open(Vec::new());
    assert_eq!(harness.state().settings.model_device, DeviceChoice::Auto);
    let pick = |harness: &mut Harness<'_, CueApp>, name: &str| {
        harness.get_by_label("Model device").click();
        harness.run_steps(2);
        harness.get_by_label(name).click();
        harness.run_steps(2);
    };
    pick(&mut harness, "CPU");
    assert_eq!(harness.state().settings.model_device, DeviceChoice::Cpu);

    // Remote: nothing changes until an address and a token file are given and "Connect" is
    // pressed; a malformed address is named.
    pick(&mut harness, "Remote server");
    assert_eq!(harness.state().settings.model_device, DeviceChoice::Cpu);
    harness.get_by_label("Server address").click();
    harness.run_steps(1);
    harness.get_by_label("Server address").type_text("gpu-box");
    harness.run_steps(2);
    assert!(harness.get_all_by_label_contains("is not HOST:PORT").count() == 1, "a bad address is not explained");
    harness.get_by_label("Connect").click();
    harness.run_steps(2);
    assert_eq!(harness.state().settings.model_device, DeviceChoice::Cpu, "a bad address was accepted");
    harness.get_by_label("Server address").click();
    harness.run_steps(1);
    harness.get_by_label("Server address").type_text(":7399");
    harness.get_by_label("Token file").click();
    harness.run_steps(1);
    harness.get_by_label("Token file").type_text("/tmp/cue-token");
    harness.run_steps(2);
    harness.get_by_label("Connect").click();
    harness.run_steps(2);
    let expected = RemoteTarget::websocket("gpu-box:7399", Some("/tmp/cue-token".into()));
    assert_eq!(harness.state().settings.model_device, DeviceChoice::Remote(expected));
    assert_eq!(harness.get_by_label("Model device").accesskit_node().value().as_deref(), Some("Remote server"));

    pick(&mut harness, "Automatic");
    assert_eq!(harness.state().settings.model_device, DeviceChoice::Auto);
}
