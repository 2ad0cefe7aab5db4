//! Every file of ../shared/data agrees with what nibabel reports in its expected.json, and
//! `cue canonical` agrees with nibabel on variants nibabel writes (`tests/python/check_nifti_variants.py`).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{close, shared_data, within};
use cue::volume::{OpenImage, Volume};
use serde_json::Value;

const TOLERANCE: f64 = 1e-4;

/// nibabel's dtype spelling (`>i2`, `int16`, a structured RGB dtype) as CUE's datatype name.
fn nibabel_datatype(dtype: &str) -> String {
    if dtype.starts_with('[') {
        return if dtype.contains("'A'") { "rgba32" } else { "rgb24" }.to_owned();
    }
    let bare = dtype.trim_start_matches(['<', '>', '|', '=']);
    match bare {
        "i1" => "int8",
        "u1" => "uint8",
        "i2" => "int16",
        "u2" => "uint16",
        "i4" => "int32",
        "u4" => "uint32",
        "i8" => "int64",
        "u8" => "uint64",
        "f4" => "float32",
        "f8" => "float64",
        "c8" => "complex64",
        "c16" => "complex128",
        other => other,
    }
    .to_owned()
}

/// A number, or the strings `nan`, `inf`, `-inf` that stand for Python's non-JSON floats.
fn number(v: &Value) -> f64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(f64::NAN),
        other => other.as_f64().unwrap_or(f64::NAN),
    }
}

fn as_f64s(v: &Value) -> Vec<f64> {
    v.as_array().map(|a| a.iter().map(number).collect()).unwrap_or_default()
}

fn check_affine(file: &str, what: &str, actual: [[f64; 4]; 4], expected: &Value) -> Vec<String> {
    let mut failures = Vec::new();
    for (r, row) in expected.as_array().into_iter().flatten().enumerate() {
        for (c, e) in as_f64s(row).into_iter().enumerate() {
            if !close(actual[r][c], e, TOLERANCE) {
                failures.push(format!("{file}: {what}[{r}][{c}] is {} expected {e}", actual[r][c]));
            }
        }
    }
    failures
}

/// Checks one expected.json entry; returns the failures.
fn check_entry(root: &Path, entry: &Value) -> Vec<String> {
    let file = entry["file"].as_str().unwrap_or_default().to_owned();
    let path = root.join(&file);
    let mut failures = Vec::new();
    if let Some(error) = entry.get("nibabel_error").and_then(Value::as_str) {
        // nibabel rejects it: so must we, for the header-and-data check and for loading.
        let verified = OpenImage::open(&path).and_then(OpenImage::verify_data);
        let loaded = Volume::read(&path, 0);
        match (&verified, &loaded) {
            (Err(a), Err(b)) => eprintln!("{file}: rejected as nibabel does ({error}): {a} / {b}"),
            _ => failures.push(format!("{file}: nibabel rejects it ({error}) but CUE accepted it")),
        }
        return failures;
    }
    let header = match OpenImage::open(&path).and_then(OpenImage::verify_data) {
        Ok(h) => h,
        Err(e) => return vec![format!("{file}: cannot read: {e}")],
    };
    let expect_eq = |failures: &mut Vec<String>, what: &str, actual: String, expected: String| {
        if actual != expected {
            failures.push(format!("{file}: {what} is {actual} expected {expected}"));
        }
    };
    expect_eq(&mut failures, "format", header.format.name().into(), entry["format"].as_str().unwrap_or("").into());
    expect_eq(&mut failures, "shape", format!("{:?}", header.shape()), format!("{:?}", as_f64s(&entry["shape"]).iter().map(|v| *v as usize).collect::<Vec<_>>()));
    expect_eq(
        &mut failures,
        "datatype",
        header.datatype().name().into(),
        nibabel_datatype(entry["datatype"].as_str().unwrap_or("")),
    );
    expect_eq(&mut failures, "sform_code", header.sform_code.to_string(), entry["sform_code"].to_string());
    expect_eq(&mut failures, "qform_code", header.qform_code.to_string(), entry["qform_code"].to_string());
    for (a, e) in header.zooms().iter().zip(as_f64s(&entry["zooms"])) {
        if !close(*a, e, TOLERANCE) {
            failures.push(format!("{file}: zooms {:?} expected {}", header.zooms(), entry["zooms"]));
        }
    }
    match header.world_from_voxel() {
        Ok(affine) => {
            failures.extend(check_affine(&file, "affine", affine.to_rows(), &entry["affine"]));
            expect_eq(&mut failures, "axcodes", affine.axcodes(), entry["axcodes"].as_str().unwrap_or("").into());
        }
        Err(e) => failures.push(format!("{file}: no affine: {e}")),
    }
    let dtype = header.datatype();
    if dtype.ensure_readable().is_err() {
        // Complex: nibabel reads it, CUE must refuse to display it with a clear message.
        match Volume::read(&path, 0) {
            Err(e) if e.to_string().contains("complex") => {}
            Err(e) => failures.push(format!("{file}: unclear rejection of complex data: {e}")),
            Ok(_) => failures.push(format!("{file}: complex data loaded as an image")),
        }
        return failures;
    }
    let volume = match Volume::read_canonical(&path, 0) {
        Ok(v) => v,
        Err(e) => return vec![format!("{file}: cannot load: {e}")],
    };
    let Some(shape) = entry.get("canonical_shape") else {
        return failures;
    };
    let shape: Vec<usize> = as_f64s(shape).iter().map(|v| *v as usize).collect();
    expect_eq(&mut failures, "canonical shape", format!("{:?}", volume.shape.to_vec()), format!("{shape:?}"));
    failures.extend(check_affine(&file, "canonical affine", volume.world_from_voxel.to_rows(), &entry["canonical_affine"]));
    // nibabel's figure skips NaN voxels (numpy.nansum).
    let sum: f64 = volume.data.iter().filter(|v| !v.is_nan()).map(|v| f64::from(*v)).sum();
    let expected_sum = number(&entry["canonical_sum"]);
    if !close(sum, expected_sum, TOLERANCE) {
        failures.push(format!("{file}: canonical sum {sum} expected {expected_sum}"));
    }
    for sample in entry["canonical_samples"].as_array().into_iter().flatten() {
        let ijk: Vec<usize> = as_f64s(&sample["ijk"]).iter().map(|v| *v as usize).collect();
        let expected = number(&sample["value"]);
        let actual = volume.value([ijk[0], ijk[1], ijk[2]]).map_or(f64::NAN, f64::from);
        if !close(actual, expected, TOLERANCE) {
            failures.push(format!("{file}: canonical voxel {ijk:?} is {actual} expected {expected}"));
        }
    }
    failures
}

fn check_folder(folder: &str) {
    let Some(data) = shared_data(folder) else { return };
    let root = data.join(folder);
    let text = std::fs::read_to_string(root.join("expected.json")).expect("expected.json");
    // Python's json writes NaN and Infinity, which JSON lacks.
    let text = text.replace("-Infinity", "\"-inf\"").replace("Infinity", "\"inf\"").replace("NaN", "\"nan\"");
    let entries: Vec<Value> = serde_json::from_str(&text).expect("valid JSON");
    assert!(!entries.is_empty());
    let mut failures = Vec::new();
    for entry in &entries {
        let root = root.clone();
        let entry = entry.clone();
        let name = entry["file"].to_string();
        failures.extend(within(Duration::from_secs(120), &name, move || check_entry(&root, &entry)));
    }
    assert!(failures.is_empty(), "{} mismatches with nibabel:\n{}", failures.len(), failures.join("\n"));
    eprintln!("{} files of {folder} agree with nibabel", entries.len());
}

#[test]
fn nifti_corpus_agrees_with_nibabel() {
    check_folder("nifti-corpus");
}

#[test]
fn cases_agree_with_nibabel() {
    check_folder("cases");
}

#[test]
fn all_48_orientations_give_identical_canonical_arrays() {
    let Some(data) = shared_data("orientations") else { return };
    let dir = data.join("nifti-corpus/niivue");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("niivue folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("nifti_space_")))
        .collect();
    files.sort();
    assert_eq!(files.len(), 48, "expected 48 nifti_space_* files in {}", dir.display());
    let reference = Volume::read_canonical(&files[0], 0).expect("first orientation");
    for file in &files[1..] {
        let v = Volume::read_canonical(file, 0).expect("orientation file");
        assert_eq!(v.shape, reference.shape, "{}", file.display());
        if let Some(i) = v.data.iter().zip(&reference.data).position(|(a, b)| a != b) {
            panic!("{}: first differing canonical voxel index {i}", file.display());
        }
        assert!(v.world_from_voxel.max_abs_diff(&reference.world_from_voxel) < 1e-4, "{}", file.display());
        assert_eq!(v.axcodes(), "RAS");
    }
}

#[test]
fn fuzz_artifacts_never_panic_or_hang() {
    let Some(data) = shared_data("fuzz artifacts") else { return };
    let mut files: Vec<_> = std::fs::read_dir(data.join("nifti-corpus/nifti-rs/fuzz_artifacts"))
        .expect("fuzz_artifacts")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    // Regression inputs found by our own fuzzing.
    if let Ok(ours) = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz-regressions")) {
        // Files only: `dicom/` beside them holds the DICOM fuzzer's, which tests/dicom.rs replays.
        files.extend(ours.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()));
    }
    assert!(files.len() >= 5);
    for file in files {
        let name = file.display().to_string();
        let outcome = within(Duration::from_secs(30), &name, move || {
            let by_path = Volume::read(&file, 0).map(|_| ()).map_err(|e| e.to_string());
            let bytes = std::fs::read(&file).expect("readable");
            let by_bytes = OpenImage::from_bytes(bytes).and_then(OpenImage::read_all).map(|_| ()).map_err(|e| e.to_string());
            (by_path, by_bytes)
        });
        eprintln!("{name}: {outcome:?}");
        for message in [&outcome.0, &outcome.1].into_iter().filter_map(|r| r.as_ref().err()) {
            assert!(!message.is_empty());
        }
    }
}

/// Datatypes x byte orders x file kinds (both pairs side by side under one stem), scalings,
/// qform/sform codes, 4-D/5-D, NIfTI-2, extensions and truncations, written by nibabel and
/// checked by nibabel after `cue canonical`.
#[test]
fn canonical_agrees_with_nibabel_on_the_variants_nibabel_writes() {
    let Some(python) = common::check_python("nifti variants") else { return };
    let dir = tempfile::tempdir().expect("temporary folder");
    let binary = Path::new(env!("CARGO_BIN_EXE_cue"));
    common::run_check(&python, "check_nifti_variants.py", &[binary.as_os_str(), dir.path().as_os_str()]);
}
