//! What the method's command lines write, checked through independent implementations:
//! transformers' answer for an RGB image (committed, `reference/make_rgb_embed.py`) and nibabel
//! for the grid of `cue map`'s NIfTI output (`tests/python/check_map_grid.py`).

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

fn cue(args: &[&OsStr]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cue")).args(args).output().expect("run cue");
    assert!(out.status.success(), "cue {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn clip_embed_keeps_an_rgb_image_in_colour() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/parity");
    let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(data.join("rgb_embed.json")).unwrap()).unwrap();
    let model = common::tiny_clip();
    let image = data.join("rgb.png");
    let out = cue(&[OsStr::new("clip-embed"), OsStr::new("--model"), model.as_os_str(), OsStr::new("--image"), image.as_os_str(), OsStr::new("--device"), OsStr::new("cpu"), OsStr::new("--json")]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let floats = |v: &serde_json::Value| -> Vec<f64> { v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect() };
    let mine = floats(&json["image_embeds"]);
    let max_diff = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    let theirs = floats(&reference["image_embeds"]);
    assert_eq!(mine.len(), theirs.len());
    let d = max_diff(&mine, &theirs);
    assert!(d < 1e-4, "image embedding differs from transformers' by {d}");
    // The grey reading of the same file is far off: the check can tell the two apart.
    assert!(max_diff(&mine, &floats(&reference["grey_image_embeds"])) > 100.0 * 1e-4);
}

#[test]
fn map_volumes_lie_on_the_source_grid_as_nibabel_reads_it() {
    let Some(shared) = common::shared_data("map_volumes_lie_on_the_source_grid_as_nibabel_reads_it") else { return };
    let Some(python) = common::check_python("map_volumes_lie_on_the_source_grid_as_nibabel_reads_it") else { return };
    let dir = tempfile::tempdir().unwrap();
    let model = common::tiny_clip();
    let prompt = common::tiny_prompt_file(dir.path());
    // The BraTS sample is LPS (affine diag(-1, -1, 1)); lesion-t1 has another orientation.
    for source in [shared.join("cases/brats-sample/t1n.nii.gz"), shared.join("cases/lesion-t1/brain1_t1.nii.gz")] {
        let on_source = dir.path().join("source.nii.gz");
        let on_canonical = dir.path().join("canonical.nii.gz");
        for (grid, out) in [("source", &on_source), ("canonical", &on_canonical)] {
            cue(&[
                OsStr::new("map"), OsStr::new("--model"), model.as_os_str(), OsStr::new("--prompt"), prompt.as_os_str(), source.as_os_str(),
                OsStr::new("--view"), OsStr::new("axial"), OsStr::new("--all-slices"), OsStr::new("--grid"), OsStr::new(grid),
                OsStr::new("--device"), OsStr::new("cpu"), OsStr::new("--out"), out.as_os_str(),
            ]);
        }
        common::run_check(&python, "check_map_grid.py", &[source.as_os_str(), on_source.as_os_str(), on_canonical.as_os_str()]);
    }
}

#[test]
fn eval_figures_agree_with_scikit_learn_on_the_maps_cue_map_writes() {
    let test = "eval_figures_agree_with_scikit_learn_on_the_maps_cue_map_writes";
    let Some(shared) = common::shared_data(test) else { return };
    let Some(python) = common::check_python(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let model = common::tiny_clip();
    let prompt = common::tiny_prompt_file(dir.path());
    let case = shared.join("cases/brats-sample");
    let files = [("t1", "t1n.nii.gz"), ("flair", "t2f.nii.gz")];
    let views = ["axial", "sagittal", "coronal"];
    for (sequence, file) in files {
        for view in views {
            let out = dir.path().join(format!("{sequence}-{view}.nii.gz"));
            let source = case.join(file);
            cue(&[
                OsStr::new("map"), OsStr::new("--model"), model.as_os_str(), OsStr::new("--prompt"), prompt.as_os_str(), source.as_os_str(),
                OsStr::new("--view"), OsStr::new(view), OsStr::new("--all-slices"), OsStr::new("--grid"), OsStr::new("canonical"),
                OsStr::new("--device"), OsStr::new("cpu"), OsStr::new("--out"), out.as_os_str(),
            ]);
        }
    }
    // A validation-style run hands its best-Dice thresholds to the scored run, as reproduce does.
    let eval = |extra: &[&OsStr]| {
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("eval"), OsStr::new("--model"), model.as_os_str(), OsStr::new("--prompt"), prompt.as_os_str(),
            OsStr::new("--data"), case.as_os_str(), OsStr::new("--sequences"), OsStr::new("t1,flair"),
            OsStr::new("--max-slices"), OsStr::new("12"), OsStr::new("--device"), OsStr::new("cpu"), OsStr::new("--json"),
        ];
        args.extend_from_slice(extra);
        cue(&args)
    };
    let first = dir.path().join("first.json");
    std::fs::write(&first, eval(&[])).unwrap();
    let report = dir.path().join("eval.json");
    std::fs::write(&report, eval(&[OsStr::new("--thresholds-from"), first.as_os_str()])).unwrap();
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert!(json["thresholds"]["t1/axial"]["threshold"].is_number(), "{}", json["thresholds"]);
    let mut args: Vec<std::ffi::OsString> = vec![report.into(), case.into(), dir.path().into()];
    args.extend(files.iter().map(|(s, f)| format!("{s}={f}").into()));
    args.push("seg=segmentation.nii.gz".into());
    let args: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    common::run_check(&python, "check_eval.py", &args);
}

/// `cue eval --baseline zscore` runs without a model, and its figures are those check_eval.py
/// computes from z-score volumes made independently (`make_zscore_maps.py`).
#[test]
fn the_zscore_baseline_needs_no_model_and_agrees_with_scikit_learn() {
    let test = "the_zscore_baseline_needs_no_model_and_agrees_with_scikit_learn";
    let Some(shared) = common::shared_data(test) else { return };
    let Some(python) = common::check_python(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let case = shared.join("cases/brats-sample");
    let report = dir.path().join("eval.json");
    let json = cue(&[
        OsStr::new("eval"), OsStr::new("--baseline"), OsStr::new("zscore"), OsStr::new("--data"), case.as_os_str(),
        OsStr::new("--sequences"), OsStr::new("t1,flair"), OsStr::new("--views"), OsStr::new("axial,coronal"),
        OsStr::new("--max-slices"), OsStr::new("12"), OsStr::new("--json"),
    ]);
    std::fs::write(&report, &json).unwrap();
    let pairs = ["t1=t1n.nii.gz", "flair=t2f.nii.gz"];
    let mut args = vec![case.as_os_str(), dir.path().as_os_str(), OsStr::new("axial,coronal")];
    args.extend(pairs.iter().map(OsStr::new));
    common::run_check(&python, "make_zscore_maps.py", &args);
    let mut args = vec![report.as_os_str(), case.as_os_str(), dir.path().as_os_str()];
    args.extend(pairs.iter().map(OsStr::new));
    args.push(OsStr::new("seg=segmentation.nii.gz"));
    common::run_check(&python, "check_eval.py", &args);
}

#[test]
fn reduced_number_types_move_the_written_map_within_their_bounds() {
    let test = "reduced_number_types_move_the_written_map_within_their_bounds";
    let Some(shared) = common::shared_data(test) else { return };
    let Some(python) = common::check_python(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let model = common::tiny_clip();
    let prompt = common::tiny_prompt_file_seeded(dir.path(), Some(7));
    let source = shared.join("cases/brats-sample/t1n.nii.gz");
    // Measured with this prompt on the BraTS sample's 155 axial slices (README, "Reduced
    // precision"), worst voxel over the f32 map's range: i16 6.4e-4, f16 2.3e-3, bf16 1.2e-2
    // through CUE's product and 2.3e-2 through burn's cast (CPUs without fast AVX-512 BF16).
    let bounds = [("f32", 0.0), ("i16", 3e-3), ("f16", 5e-3), ("bf16", 4e-2)];
    let mut written = Vec::new();
    for (precision, _) in bounds {
        let out = dir.path().join(format!("{precision}.nii.gz"));
        let run = Command::new(env!("CARGO_BIN_EXE_cue"))
            .args([OsStr::new("map"), OsStr::new("--model"), model.as_os_str(), OsStr::new("--prompt"), prompt.as_os_str(), source.as_os_str()])
            .args(["--view", "axial", "--all-slices", "--device", "cpu", "--precision", precision, "--out"])
            .arg(&out)
            .output()
            .expect("run cue");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "cue map --precision {precision} failed: {stderr}");
        let ran = stderr.lines().find_map(|l| l.strip_prefix("precision ")).unwrap_or_else(|| panic!("no precision line: {stderr}")).to_string();
        // The CPU runs f32, bf16 and f16 everywhere; i16 needs AVX2 (CI's machines have it),
        // unless CUE_CPU_ISA keeps CUE's loops to portable code.
        let portable = std::env::var("CUE_CPU_ISA").is_ok_and(|isa| isa == "portable");
        let expected = if precision == "i16" && (portable || !has_avx2()) { "f32" } else { precision };
        assert_eq!(ran, expected, "--precision {precision}");
        written.push((out, ran));
    }
    let (f32_map, _) = &written[0];
    for ((out, ran), (_, bound)) in written.iter().zip(bounds).skip(1) {
        let bound = bound.to_string();
        common::run_check(&python, "check_map_precision.py", &[source.as_os_str(), f32_map.as_os_str(), out.as_os_str(), OsStr::new(ran), OsStr::new(&bound)]);
    }
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    false
}
