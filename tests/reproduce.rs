//! `cue reproduce` end to end on synthetic cases (the phantom of the MNI template), half of
//! them named as BraTS 2021 and half as BraTS 2023: one uninterrupted run, and one killed
//! after its first evaluation and started again, which must reach the same results.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn cue() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cue"))
}

/// Five phantom cases: 1-3 keep BraTS 2023 names, 4-5 are renamed to BraTS 2021's.
fn cases(root: &Path, template: &Path) -> PathBuf {
    let data = root.join("data");
    let status = cue()
        .args(["phantom", "--cases", "5", "--downsample", "4", "--out"])
        .arg(&data)
        .arg("--template")
        .arg(template)
        .status()
        .unwrap();
    assert!(status.success());
    for i in [4, 5] {
        let old = data.join(format!("CUE-PHANTOM-{i:05}"));
        let new = data.join(format!("BraTS2021_{i:05}"));
        std::fs::create_dir(&new).unwrap();
        for (from, to) in [("t1n", "t1"), ("t1c", "t1ce"), ("t2w", "t2"), ("t2f", "flair"), ("seg", "seg")] {
            std::fs::rename(old.join(format!("CUE-PHANTOM-{i:05}-{from}.nii.gz")), new.join(format!("BraTS2021_{i:05}_{to}.nii.gz"))).unwrap();
        }
        std::fs::remove_dir(&old).unwrap();
    }
    data
}

fn reproduce(model: &Path, data: &Path, out: &Path) -> Command {
    let mut command = cue();
    command
        .args(["reproduce", "--model"])
        .arg(model)
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(["--seeds", "1,2", "--epochs", "2", "--context-tokens", "6", "--max-slices", "8", "--eval-max-slices", "5", "--device", "cpu"]);
    command
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

#[test]
fn reproduce_runs_the_protocol_and_continues_after_a_kill() {
    let Some(shared) = common::shared_data("reproduce") else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = cases(dir.path(), &shared.join("templates/mni152-2009a"));
    // With CLIP's whole vocabulary, so the zero-shot baseline runs too.
    let model = common::tiny_clip_with_vocabulary(dir.path());

    let whole = dir.path().join("whole");
    let out = reproduce(&model, &data, &whole).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("estimate: about"), "no estimate before the run: {stderr}");
    let results = json(&whole.join("results.json"));

    // The split: patient-disjoint parts covering every case, both naming schemes.
    let split = json(&whole.join("split.json"));
    let mut all: Vec<String> = Vec::new();
    for part in ["train", "validation", "test"] {
        let cases: Vec<String> = split[part].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
        assert!(!cases.is_empty(), "{part} is empty");
        all.extend(cases);
    }
    all.sort();
    let mut expected: Vec<String> = (1..=3).map(|i| format!("CUE-PHANTOM-{i:05}")).chain((4..=5).map(|i| format!("BraTS2021_{i:05}"))).collect();
    expected.sort();
    assert_eq!(all, expected);

    // Each seed: evaluated on exactly the split's parts, thresholds handed from validation.
    for seed in ["seed-1", "seed-2"] {
        let validation = json(&whole.join(seed).join("validation.json"));
        let test = json(&whole.join(seed).join("test.json"));
        let names = |report: &serde_json::Value| -> Vec<String> { report["evaluated"].as_object().unwrap().keys().cloned().collect() };
        let part = |name: &str| -> Vec<String> { split[name].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect() };
        assert_eq!(names(&validation), part("validation"));
        assert_eq!(names(&test), part("test"));
        for cell in ["t1/axial", "flair/coronal", "t2/sagittal"].iter().filter(|c| test["thresholds"].get(**c).is_some()) {
            assert_eq!(test["thresholds"][cell]["threshold"], validation["thresholds"][cell]["best_dice_threshold"], "{seed} {cell}");
        }
        assert_eq!(test["evaluated"].as_object().unwrap().values().next().unwrap().as_object().unwrap().len(), 12, "4 sequences x 3 views");
        assert!(results["runs"][seed]["chosen_epoch"].as_u64().is_some());
    }
    let summary = &results["summary"]["pixel_auroc"]["flair"]["axial"];
    assert_eq!(summary["n"], 2);
    assert!(summary["mean"].as_f64().is_some() && summary["sd"].as_f64().is_some());
    assert!(results["baselines"]["intensity_zscore"]["pixel_auroc"]["t1"]["axial"].is_number());
    let zero_shot = &results["baselines"]["zero_shot"];
    assert_eq!(zero_shot["prompt"], "zero-shot", "{zero_shot}");
    assert!(zero_shot["pixel_auroc"]["flair"]["coronal"].is_number());
    let markdown = std::fs::read_to_string(whole.join("results.md")).unwrap();
    assert!(markdown.contains("| FLAIR |") && markdown.contains("Baseline: intensity z-score") && markdown.contains("Baseline: zero-shot text prompts: pixel_auroc_brain"), "{markdown}");
    for s in ["t1", "t1ce", "t2", "flair"] {
        let png = image::open(whole.join(format!("roc-{s}.png"))).unwrap();
        assert_eq!(png.width(), 480);
    }

    // Killed after its first evaluation result, then run again: it continues, and the figures
    // equal the uninterrupted run's.
    let resumed = dir.path().join("resumed");
    let mut child = reproduce(&model, &data, &resumed).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let marker = resumed.join("seed-1/validation.json");
    let started = Instant::now();
    while !marker.exists() && started.elapsed() < Duration::from_secs(120) {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(marker.exists(), "the first evaluation never finished");
    let out = reproduce(&model, &data, &resumed).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = json(&resumed.join("results.json"));
    assert_eq!(again["summary"], results["summary"]);
    assert_eq!(again["split"], results["split"]);
}
