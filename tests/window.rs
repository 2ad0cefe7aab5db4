//! The app in a real window (eframe's own wgpu device, under Xvfb): the Ortho layout with the
//! 3-D view draws frames while its camera turns. egui_kittest's harness creates its device with
//! other limits, so a pipeline the window's device cannot build (a storage buffer in a fragment
//! shader on GL) passes there and fails only here.

mod common;

use std::process::Command;

#[test]
fn the_ortho_layout_with_the_3d_view_runs_in_a_real_window() {
    let Some(data) = common::shared_data("a real window") else { return };
    let xvfb = Command::new("xvfb-run").arg("--help").output().is_ok();
    if !xvfb {
        assert!(!common::shared_data_required(), "xvfb-run is missing (apt-get install xvfb)");
        eprintln!("SKIP: xvfb-run is not installed");
        return;
    }
    let out = common::within(std::time::Duration::from_secs(300), "the window bench", move || {
        Command::new("xvfb-run")
            .args(["-a", "-s", "-screen 0 1280x800x24"])
            .arg(env!("CARGO_BIN_EXE_cue"))
            .args(["bench", "frames", "--layout", "ortho", "--width", "1000", "--height", "640", "--frames", "12", "--turn-3d"])
            .arg(data.join("cases/brats-sample"))
            .output()
            .expect("run xvfb-run")
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the window failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("one JSON line");
    assert_eq!(report["layout"], "Ortho");
    assert_eq!(report["turning_3d_view"], true);
    // One 3-D image per turned frame (and the first).
    assert!(report["volume_images_rendered"].as_u64().unwrap_or(0) >= 12, "{report}");
}
