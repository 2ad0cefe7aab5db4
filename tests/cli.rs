//! The `cue` command line: JSON output, canonical conversion, one-line errors, memory.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{close, shared_data};
use serde_json::Value;

fn cue(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cue")).args(args).output().expect("run cue")
}

/// Runs `cue` with `args`, which must fail with one line on stderr; returns that line.
fn refused_in_one_line(args: &[&str]) -> String {
    let output = cue(args);
    let stderr = String::from_utf8_lossy(&output.stderr).trim_end().to_owned();
    assert!(!output.status.success(), "{args:?} succeeded");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    stderr
}

fn json_of(output: &Output) -> Value {
    assert!(output.status.success(), "cue failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("one JSON object")
}

#[test]
fn help_documents_every_subcommand() {
    let output = cue(&["--help"]);
    let text = String::from_utf8_lossy(&output.stdout);
    for sub in ["info", "canonical", "bench"] {
        assert!(text.contains(sub), "--help lacks {sub}:\n{text}");
    }
}

#[test]
fn info_json_reports_the_header() {
    let Some(data) = shared_data("cue info") else { return };
    let file = data.join("nifti-corpus/nibabel/example_nifti2.nii.gz");
    let info = json_of(&cue(&["info", "--json", file.to_str().unwrap()]));
    assert_eq!(info["format"], "nifti2");
    assert_eq!(info["shape"], serde_json::json!([32, 20, 12, 2]));
    assert_eq!(info["datatype"], "int16");
    for key in ["voxel_size_mm", "affine", "axcodes", "sform_code", "qform_code"] {
        assert!(!info[key].is_null(), "missing {key}");
    }
    assert_eq!(info["affine"].as_array().unwrap().len(), 4);
    let be = json_of(&cue(&["info", "--json", data.join("nifti-corpus/nibabel/anatomical.nii").to_str().unwrap()]));
    assert_eq!(be["endianness"], "big");
    assert_eq!(be["axcodes"], "LAS");
    let rgb = json_of(&cue(&["info", "--json", data.join("nifti-corpus/niivue/ct_perfusion.nii.gz").to_str().unwrap()]));
    assert_eq!(rgb["datatype"], "rgb24");
}

#[test]
fn canonical_writes_ras_float32_with_the_updated_affine() {
    let Some(data) = shared_data("cue canonical") else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = data.join("nifti-corpus/niivue/nifti_space_PSL.nii.gz");
    let output = dir.path().join("canonical.nii.gz");
    let run = cue(&["canonical", input.to_str().unwrap(), output.to_str().unwrap()]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let info = json_of(&cue(&["info", "--json", output.to_str().unwrap()]));
    assert_eq!(info["axcodes"], "RAS");
    assert_eq!(info["datatype"], "float32");
    assert_eq!(info["sform_code"], 1);
    assert_eq!(info["qform_code"], 1);
    // The same world position as nibabel's canonical image of the RAS file.
    let expected_text = std::fs::read_to_string(data.join("nifti-corpus/expected.json")).unwrap();
    let entries: Vec<Value> = serde_json::from_str(&expected_text.replace("NaN", "null")).unwrap();
    let entry = entries.iter().find(|e| e["file"] == "niivue/nifti_space_PSL.nii.gz").unwrap();
    assert_eq!(info["shape"], entry["canonical_shape"]);
    for r in 0..4 {
        for c in 0..4 {
            let (a, e) = (info["affine"][r][c].as_f64().unwrap(), entry["canonical_affine"][r][c].as_f64().unwrap());
            assert!(close(a, e, 1e-4), "affine[{r}][{c}] {a} vs {e}");
        }
    }
}

/// Each bad input: non-zero exit, exactly one line on stderr, naming the problem and the file.
#[test]
fn bad_inputs_give_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let not_nifti = dir.path().join("notes.nii");
    std::fs::write(&not_nifti, b"this is not an image at all, just text that is long enough").unwrap();
    let truncated = dir.path().join("truncated.nii");
    let mut cases: Vec<(Vec<String>, String, &str)> = vec![
        (vec!["info".into(), "/no/such/file.nii".into()], "/no/such/file.nii".into(), "No such file"),
        (vec!["info".into(), not_nifti.display().to_string()], not_nifti.display().to_string(), "not a NIfTI file"),
        (
            vec!["canonical".into(), not_nifti.display().to_string(), dir.path().join("o.nii").display().to_string()],
            not_nifti.display().to_string(),
            "not a NIfTI file",
        ),
    ];
    // A mistyped dataset is named before any model is loaded (the tiny model's zero-shot texts
    // would fail first otherwise, naming no file).
    let tiny = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/clip/tiny").display().to_string();
    let missing = dir.path().join("no-such-dataset").display().to_string();
    cases.extend([
        (vec!["eval".into(), "--model".into(), tiny.clone(), "--data".into(), missing.clone(), "--device".into(), "cpu".into()], missing.clone(), "cannot open the dataset"),
        (
            vec!["train".into(), "--model".into(), tiny, "--data".into(), not_nifti.display().to_string(), "--out".into(), dir.path().join("p.bpk").display().to_string()],
            not_nifti.display().to_string(),
            "must be a folder of cases",
        ),
    ]);
    if let Some(data) = shared_data("bad inputs") {
        let complete = std::fs::read(data.join("nifti-corpus/nifti-rs/minimal.nii")).unwrap();
        std::fs::write(&truncated, &complete[..complete.len() / 2]).unwrap();
        let complex = data.join("nifti-corpus/nifti-rs/complex/complex64.nii").display().to_string();
        let cifti = data.join("nifti-corpus/niivue/Conte69.MyelinAndCorrThickness.32k_fs_LR.dtseries.nii").display().to_string();
        let crash = data.join("nifti-corpus/nifti-rs/fuzz_artifacts/crash-1.nii").display().to_string();
        let out = dir.path().join("out.nii").display().to_string();
        cases.extend([
            (vec!["info".into(), truncated.display().to_string()], truncated.display().to_string(), "truncated"),
            (vec!["canonical".into(), complex.clone(), out.clone()], complex, "complex"),
            (vec!["info".into(), cifti.clone()], cifti, "CIFTI"),
            (vec!["canonical".into(), crash.clone(), out.clone()], crash, "not a NIfTI"),
            (
                vec!["canonical".into(), data.join("nifti-corpus/nifti-rs/minimal.nii").display().to_string(), "--volume".into(), "3".into(), out],
                data.join("nifti-corpus/nifti-rs/minimal.nii").display().to_string(),
                "volume 3",
            ),
        ]);
    }
    for (args, path, words) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let stderr = refused_in_one_line(&args);
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(stderr.contains(words), "{args:?}: '{words}' not in {stderr}");
        assert!(stderr.ends_with(&path), "{args:?}: path not last in {stderr}");
    }
    assert!(!dir.path().join("out.nii").exists() && !dir.path().join("o.nii").exists());
}

/// No command writes over the file it read: the same file under another spelling, the other
/// half of a `.hdr`/`.img` pair, a score volume as its own labels. Each is refused in one line
/// naming the output, and the input's bytes are unchanged.
#[test]
fn an_output_never_replaces_its_input() {
    let Some(data) = shared_data("an_output_never_replaces_its_input") else { return };
    let dir = tempfile::tempdir().unwrap();
    let copy = |name: &str| {
        let to = dir.path().join(name.rsplit('/').next().unwrap());
        std::fs::copy(data.join("nifti-corpus/nifti-rs").join(name), &to).unwrap();
        to
    };
    let (single, header, image) = (copy("minimal.nii"), copy("minimal.hdr"), copy("minimal.img"));
    let before: Vec<Vec<u8>> = [&single, &header, &image].iter().map(|p| std::fs::read(p).unwrap()).collect();
    let show = |p: &Path| p.display().to_string();
    let respelled = dir.path().join(".").join("minimal.nii");
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/clip/tiny");
    let cases: Vec<(Vec<String>, String)> = vec![
        (vec!["canonical".into(), show(&single), show(&single)], show(&single)),
        (vec!["canonical".into(), show(&single), show(&respelled)], show(&respelled)),
        (vec!["canonical".into(), show(&header), show(&image)], show(&image)),
        (vec!["canonical".into(), show(&image), show(&header)], show(&header)),
        (vec!["findings".into(), show(&single), "--threshold".into(), "0".into(), "--labels-out".into(), show(&single)], show(&single)),
        (vec!["findings".into(), show(&single), "--threshold".into(), "0".into(), "--csv".into(), show(&single)], show(&single)),
        (
            vec!["map".into(), "--model".into(), show(&tiny), show(&header), "--all-slices".into(), "--device".into(), "cpu".into(), "--out".into(), show(&image)],
            show(&image),
        ),
    ];
    for (args, output) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let stderr = refused_in_one_line(&args);
        assert!(stderr.contains("would replace the input"), "{args:?}: {stderr}");
        assert!(stderr.ends_with(&output), "{args:?}: the output is not named last: {stderr}");
    }
    let after: Vec<Vec<u8>> = [&single, &header, &image].iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(before == after, "an input file was changed");
    // Another file in the same folder is written as before.
    let elsewhere = dir.path().join("canonical.nii");
    assert!(cue(&["canonical", &show(&single), &show(&elsewhere)]).status.success());
}

/// Loading one BraTS float64 volume into canonical float32 peaks under 3x its float32 size.
#[test]
fn loading_one_volume_peaks_under_three_times_its_float32_size() {
    let Some(data) = shared_data("load memory") else { return };
    let file = data.join("cases/brats-sample/t1n.nii.gz");
    let report = json_of(&cue(&["bench", "load", "--repeat", "1", "--sequential", "--json", file.to_str().unwrap()]));
    let float32 = report["float32_bytes"].as_f64().unwrap();
    let growth = report["peak_rss_bytes"].as_f64().unwrap() - report["baseline_rss_bytes"].as_f64().unwrap();
    assert!(float32 > 30e6, "{report}");
    assert!(growth < 3.0 * float32, "peak grew by {growth} bytes for a {float32}-byte volume: {report}");
    eprintln!("peak growth {:.2}x the float32 size", growth / float32);
    assert!(Path::new(&file).exists());
}

#[test]
fn weights_status_and_offline_fetch() {
    let cache = tempfile::tempdir().unwrap();
    let run = |args: &[&str], offline: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cue"));
        command.args(args).env("HF_HUB_CACHE", cache.path()).env_remove("HF_HOME");
        if offline {
            command.env("HF_HUB_OFFLINE", "1");
        }
        command.output().unwrap()
    };
    let status = run(&["weights", "status", "--model", "ViT-B/32"], false);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success());
    assert!(text.contains("openai/clip-vit-base-patch32") && text.contains("missing    config.json, model.safetensors, tokenizer.json"), "{text}");
    let fetch = run(&["weights", "fetch"], true);
    let stderr = String::from_utf8_lossy(&fetch.stderr);
    assert!(!fetch.status.success());
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("offline") && stderr.contains("models--openai--clip-vit-large-patch14"), "{stderr}");
}

#[test]
fn output_closed_early_ends_the_tool_quietly() {
    use std::os::unix::process::ExitStatusExt;
    // `cue clip-embed ... | head -c 0`: the reader is gone before the JSON is printed.
    let tiny = common::tiny_clip();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cue"))
        .args(["clip-embed", "--device", "cpu", "--json", "--token-ids", "998,5,999", "--model"])
        .arg(&tiny)
        .arg("--image")
        .arg(tiny.join("image.png"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run cue");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("wait for cue");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Ended by SIGPIPE (13 on Linux), as `cat` would be, not by a panic's exit code 101.
    assert_eq!(output.status.signal(), Some(13), "{:?}: {stderr}", output.status);
}

/// `cue bench method --precision`: a click's map and a batch in the chosen number type (the
/// one that ran is reported), the training steps left out with `--maps-only`.
#[test]
fn bench_method_times_maps_in_the_chosen_number_type() {
    let report = json_of(&cue(&["bench", "method", "--preset", "ViT-B/32", "--batch", "2", "--repeat", "1", "--precision", "bf16", "--maps-only", "--json"]));
    assert_eq!(report["precision"], "bf16", "{report}");
    for key in ["slice_map_s", "click_map_s", "map_batch_s"] {
        assert!(report[key].as_f64().is_some_and(|s| s > 0.0), "{key}: {report}");
    }
    assert!(report["train_step_uncached_s"].is_null() && report["train_step_cached_s"].is_null(), "{report}");
}
