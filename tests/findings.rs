//! `cue findings` against scipy: the committed reference (`scripts/make_findings_reference.py`:
//! `scipy.ndimage.label` with 26-connectivity on score volumes stored RAS, LPS, oblique,
//! sagittal PSR and qform-only) and the label volume checked through nibabel and scipy
//! (`tests/python/check_findings_labels.py`).

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

fn cue(args: &[&OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cue")).args(args).output().expect("run cue")
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number")).collect()
}

fn ints(v: &serde_json::Value) -> Vec<i64> {
    v.as_array().expect("array").iter().flat_map(|x| match x.as_array() {
        Some(inner) => inner.iter().map(|y| y.as_i64().expect("int")).collect::<Vec<_>>(),
        None => vec![x.as_i64().expect("int")],
    }).collect()
}

#[test]
fn findings_agree_with_scipy_in_every_orientation() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/findings");
    let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(data.join("reference.json")).unwrap()).unwrap();
    let python = common::check_python("findings_agree_with_scipy_in_every_orientation");
    let dir = tempfile::tempdir().unwrap();
    let cases = reference["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 10);
    for (n, case) in cases.iter().enumerate() {
        let file = data.join(case["file"].as_str().unwrap());
        let (threshold, min_size) = (case["threshold"].as_f64().unwrap(), case["min_size_mm3"].as_f64().unwrap());
        let labels = dir.path().join(format!("labels{n}.nii.gz"));
        let out = cue(&[
            OsStr::new("findings"), file.as_os_str(), OsStr::new("--threshold"), OsStr::new(&threshold.to_string()),
            OsStr::new("--min-size-mm3"), OsStr::new(&min_size.to_string()), OsStr::new("--labels-out"), labels.as_os_str(), OsStr::new("--json"),
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mine: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let (mine, theirs) = (mine["findings"].as_array().unwrap(), case["findings"].as_array().unwrap());
        let what = format!("{} at {threshold}, min {min_size} mm^3", case["file"]);
        assert_eq!(mine.len(), theirs.len(), "{what}: finding count");
        assert!(case["count_6_connectivity"] != case["count_26_connectivity"], "the reference must tell 26- from 6-connectivity");
        // Both lists are sorted by size then maximum, and the reference has no ties.
        for (k, (a, b)) in mine.iter().zip(theirs).enumerate() {
            let at = format!("{what}, finding {k}");
            assert_eq!(a["voxels"], b["voxels"], "{at}: voxels");
            assert_eq!(a["label"].as_u64(), Some(k as u64 + 1), "{at}: label");
            assert!(common::close(a["volume_ml"].as_f64().unwrap(), b["volume_ml"].as_f64().unwrap(), 1e-9), "{at}: mL {} vs {}", a["volume_ml"], b["volume_ml"]);
            assert!(common::close(a["max_score"].as_f64().unwrap(), b["max_score"].as_f64().unwrap(), 1e-7), "{at}: max");
            assert!(common::close(a["mean_score"].as_f64().unwrap(), b["mean_score"].as_f64().unwrap(), 1e-6), "{at}: mean");
            for (key, tolerance) in [("centroid_ras_mm", 0.01), ("centroid_voxel", 1e-9)] {
                for (x, y) in floats(&a[key]).iter().zip(floats(&b[key])) {
                    assert!((x - y).abs() <= tolerance, "{at}: {key} {} vs {}", a[key], b[key]);
                }
            }
            assert_eq!(ints(&a["bbox_voxel"]), ints(&b["bbox_voxel"]), "{at}: bounding box");
            assert_eq!(ints(&a["max_voxel"]), ints(&b["max_voxel"]), "{at}: voxel of the maximum");
        }
        if let Some(python) = &python {
            let json = dir.path().join(format!("findings{n}.json"));
            std::fs::write(&json, &out.stdout).unwrap();
            common::run_check(python, "check_findings_labels.py", &[
                file.as_os_str(), labels.as_os_str(), OsStr::new(&threshold.to_string()), OsStr::new(&min_size.to_string()), json.as_os_str(),
            ]);
        }
    }
}

#[test]
fn a_percentile_threshold_and_a_csv_table() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/findings/lps.nii.gz");
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("f.csv");
    let out = cue(&[OsStr::new("findings"), file.as_os_str(), OsStr::new("--percentile"), OsStr::new("99"), OsStr::new("--csv"), csv.as_os_str(), OsStr::new("--json")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = json["findings"].as_array().unwrap();
    assert!(!findings.is_empty());
    let table = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(table.lines().count(), findings.len() + 1, "one row per finding and a header");
    assert!(table.starts_with("label,voxels,volume_ml"));
    // The 99th percentile keeps about 1% of the voxels.
    let voxels: u64 = findings.iter().map(|f| f["voxels"].as_u64().unwrap()).sum();
    let total: u64 = json["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).product();
    assert!((voxels as f64 / total as f64 - 0.01).abs() < 0.002, "{voxels} of {total} voxels at the 99th percentile");
}

#[test]
fn bad_findings_input_is_one_line_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("scores.nii.gz");
    std::fs::write(&text, b"not a nifti").unwrap();
    let labels = dir.path().join("labels.nii.gz");
    for (args, needle) in [
        (vec![text.as_os_str(), OsStr::new("--threshold"), OsStr::new("0.5"), OsStr::new("--labels-out"), labels.as_os_str()], "scores.nii.gz"),
        (vec![OsStr::new("missing.nii.gz"), OsStr::new("--threshold"), OsStr::new("0.5")], "missing.nii.gz"),
        (vec![text.as_os_str(), OsStr::new("--percentile"), OsStr::new("120")], "--percentile"),
    ] {
        let mut all = vec![OsStr::new("findings")];
        all.extend(args);
        let out = cue(&all);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle) && !stderr.contains("panicked"), "{stderr}");
        assert!(!labels.exists(), "no label file from bad input");
    }
}

#[test]
fn a_fused_score_volume_is_the_mean_of_its_views_and_gives_findings() {
    let Some(python) = common::check_python("a_fused_score_volume_is_the_mean_of_its_views_and_gives_findings") else { return };
    // An oblique, non-cubic volume: each view cuts it differently.
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/findings/oblique.nii.gz");
    let model = common::tiny_clip();
    let dir = tempfile::tempdir().unwrap();
    let prompt = common::tiny_prompt_file(dir.path());
    let map = |views: &str, out: &Path| {
        let mut args = vec![OsStr::new("map"), OsStr::new("--model"), model.as_os_str(), OsStr::new("--prompt"), prompt.as_os_str(), source.as_os_str(), OsStr::new("--all-slices"), OsStr::new("--device"), OsStr::new("cpu")];
        if views.contains(',') {
            args.extend([OsStr::new("--views"), OsStr::new(views), OsStr::new("--fuse"), OsStr::new("mean")]);
        } else {
            args.extend([OsStr::new("--view"), OsStr::new(views)]);
        }
        args.extend([OsStr::new("--out"), out.as_os_str()]);
        let out = cue(&args);
        assert!(out.status.success(), "cue map {views}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let fused = dir.path().join("fused.nii.gz");
    map("axial,coronal,sagittal", &fused);
    let singles: Vec<_> = ["axial", "coronal", "sagittal"].iter().map(|v| {
        let out = dir.path().join(format!("{v}.nii.gz"));
        map(v, &out);
        out
    }).collect();
    let mut args = vec![source.as_os_str(), fused.as_os_str()];
    args.extend(singles.iter().map(|p| p.as_os_str()));
    common::run_check(&python, "check_fused.py", &args);
    // The fused volume goes straight into findings.
    let labels = dir.path().join("labels.nii.gz");
    let out = cue(&[OsStr::new("findings"), fused.as_os_str(), OsStr::new("--percentile"), OsStr::new("98"), OsStr::new("--labels-out"), labels.as_os_str(), OsStr::new("--json")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let threshold = json["threshold"].as_f64().unwrap().to_string();
    let path = dir.path().join("findings.json");
    std::fs::write(&path, &out.stdout).unwrap();
    common::run_check(&python, "check_findings_labels.py", &[fused.as_os_str(), labels.as_os_str(), OsStr::new(&threshold), OsStr::new("0"), path.as_os_str()]);
}

/// A 4-D score file: `cue findings` and `cue map` refuse to read it as its first volume
/// unsaid; `--volume 1` finds the regions of volume 1, as scipy does on nibabel's volume 1.
#[test]
fn a_four_d_score_file_needs_its_volume_named() {
    let Some(python) = common::check_python("a_four_d_score_file_needs_its_volume_named") else { return };
    let dir = tempfile::tempdir().unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/findings/lps.nii.gz");
    let four_d = dir.path().join("scores-4d.nii.gz");
    common::run_check(&python, "check_findings_labels.py", &[OsStr::new("make-4d"), source.as_os_str(), four_d.as_os_str()]);
    let model = common::tiny_clip();
    let png = dir.path().join("map.png");
    for (args, output) in [
        (vec![OsStr::new("findings"), four_d.as_os_str(), OsStr::new("--threshold"), OsStr::new("0.5")], None),
        (vec![OsStr::new("map"), OsStr::new("--model"), model.as_os_str(), four_d.as_os_str(), OsStr::new("--out"), png.as_os_str()], Some(&png)),
    ] {
        let out = cue(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted a 4-D file without --volume");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("holds 3 volumes (4-D): pick one with --volume K (0 to 2)") && stderr.trim().ends_with("scores-4d.nii.gz"), "{stderr}");
        assert!(output.is_none_or(|p| !p.exists()), "an output was written");
    }
    let labels = dir.path().join("labels.nii.gz");
    let threshold = "0.5";
    let out = cue(&[
        OsStr::new("findings"), four_d.as_os_str(), OsStr::new("--volume"), OsStr::new("1"), OsStr::new("--threshold"), OsStr::new(threshold),
        OsStr::new("--labels-out"), labels.as_os_str(), OsStr::new("--json"),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["volume"], 1);
    let path = dir.path().join("findings.json");
    std::fs::write(&path, &out.stdout).unwrap();
    common::run_check(&python, "check_findings_labels.py", &[
        four_d.as_os_str(), labels.as_os_str(), OsStr::new(threshold), OsStr::new("0"), path.as_os_str(), OsStr::new("1"),
    ]);
}
