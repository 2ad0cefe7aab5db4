//! DICOM studies through the command line, checked against dcm2niix (its answers in
//! `../shared/data/dicom/expected.json`, and dcm2niix run here on synthetic series that
//! `tests/python/make_dicom_series.py` writes with pydicom) and pydicom, read by nibabel:
//! never through CUE's own reader.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn cue(args: &[&OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cue")).args(args).output().expect("run cue")
}

fn cue_ok(args: &[&OsStr]) -> String {
    let out = cue(args);
    assert!(out.status.success(), "cue {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn canonical(input: &Path, output: &Path, series: Option<&str>) -> Output {
    std::fs::create_dir_all(output.parent().unwrap()).unwrap();
    let mut args = vec![OsStr::new("canonical"), input.as_os_str(), output.as_os_str()];
    if let Some(choice) = series {
        args.extend([OsStr::new("--series"), OsStr::new(choice)]);
    }
    cue(&args)
}

fn info(path: &Path) -> serde_json::Value {
    serde_json::from_str(&cue_ok(&[OsStr::new("info"), path.as_os_str(), OsStr::new("--json")])).expect("JSON")
}

/// A refusal: a failed exit, one line on stderr naming `names` and holding every word of
/// `words`, no panic, and no output file left behind.
fn assert_refused(out: &Output, output_file: &Path, names: &str, words: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted, should be refused ({names})");
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "not one line: {stderr}");
    assert!(lines[0].contains(names), "the error does not name {names}: {stderr}");
    for word in words {
        assert!(lines[0].contains(word), "the error does not say {word:?}: {stderr}");
    }
    assert!(!output_file.exists(), "an output file was written for a refused input");
}

#[test]
fn every_series_agrees_with_dcm2niix_through_cue_canonical() {
    let test = "every_series_agrees_with_dcm2niix_through_cue_canonical";
    let Some(shared) = common::shared_data(test) else { return };
    let Some(python) = common::check_python(test) else { return };
    let dicom = shared.join("dicom");
    let expected: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dicom.join("expected.json")).unwrap()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut refused = 0;
    for case in expected["cases"].as_array().unwrap() {
        let path = case["path"].as_str().unwrap();
        let input = dicom.join(path);
        if case["reject"].as_bool() == Some(true) {
            let output = out.path().join(format!("{path}.nii.gz"));
            std::fs::create_dir_all(output.parent().unwrap()).unwrap();
            let name = Path::new(path).file_name().unwrap().to_str().unwrap();
            assert_refused(&canonical(&input, &output, None), &output, name, &["invalid DICOM"]);
            refused += 1;
        } else if let Some(series) = case["series"].as_array() {
            for s in series {
                let number: i64 = s["series"].as_str().unwrap().split('_').next().unwrap().parse().unwrap();
                let output = out.path().join(path).join(format!("{number}.nii.gz"));
                let result = canonical(&input, &output, Some(&number.to_string()));
                assert!(result.status.success(), "{path} series {number}: {}", String::from_utf8_lossy(&result.stderr));
            }
        } else {
            let output = out.path().join(format!("{path}.nii.gz"));
            let result = canonical(&input, &output, None);
            assert!(result.status.success(), "{path}: {}", String::from_utf8_lossy(&result.stderr));
        }
    }
    assert_eq!(refused, 1, "expected.json lists one broken file");
    let brats = shared.join("cases/brats-sample");
    let pairs: Vec<String> =
        [(2, "t1n"), (3, "t1c"), (4, "t2w"), (5, "t2f")].iter().map(|(n, s)| format!("{n}={}", brats.join(format!("{s}.nii.gz")).display())).collect();
    let expected_path = dicom.join("expected.json");
    let mut args: Vec<&OsStr> = vec![OsStr::new("expected"), expected_path.as_os_str(), dicom.as_os_str(), out.path().as_os_str()];
    args.extend(pairs.iter().map(OsStr::new));
    let report = common::run_check(&python, "check_dicom.py", &args);
    // 6 series of expected.json, 4 NIfTI equalities, 8 single files checked twice (pixel
    // places by pydicom, expected.json's figures): nothing was skipped.
    assert_eq!(report.lines().filter(|l| l.starts_with("ok ")).count(), 6 + 4 + 8 * 2, "{report}");
}

#[test]
fn a_study_folder_lists_its_series_with_their_sequences() {
    let Some(shared) = common::shared_data("a_study_folder_lists_its_series_with_their_sequences") else { return };
    let json = info(&shared.join("dicom/brats-study"));
    assert_eq!(json["format"], "dicom");
    let series = json["series"].as_array().unwrap();
    let summary: Vec<(i64, &str, &str)> = series
        .iter()
        .map(|s| (s["series_number"].as_i64().unwrap(), s["description"].as_str().unwrap(), s["sequence"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [(2, "T1 MPRAGE AX", "T1"), (3, "T1 MPRAGE AX POST GD", "T1CE"), (4, "T2 TSE AX", "T2"), (5, "T2 FLAIR AX", "FLAIR")]
    );
    for s in series {
        assert_eq!(s["shape"], serde_json::json!([240, 240, 155]));
        assert_eq!(s["voxel_size_mm"], serde_json::json!([1.0, 1.0, 1.0]));
        assert_eq!(s["orientation"], "axial");
        assert_eq!(s["files"], 155);
    }
    // Without --series, a folder of four series is refused, listing them.
    let out = tempfile::tempdir().unwrap();
    let output = out.path().join("x.nii.gz");
    assert_refused(&canonical(&shared.join("dicom/brats-study"), &output, None), &output, "brats-study", &["--series", "5 T2 FLAIR AX"]);
    assert_refused(&canonical(&shared.join("dicom/brats-study"), &output, Some("9")), &output, "brats-study", &["no series 9 here"]);
    // The sagittal acquisition is listed as such.
    let sagittal = info(&shared.join("dicom/mni-sagittal"));
    assert_eq!(sagittal["series"][0]["orientation"], "sagittal");
}

fn make_synthetic(python: &Path, dir: &Path) -> serde_json::Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/make_dicom_series.py");
    let made = Command::new(python).arg(&script).arg(dir).output().expect("run make_dicom_series.py");
    assert!(made.status.success(), "make_dicom_series.py: {}", String::from_utf8_lossy(&made.stderr));
    serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn synthetic_series_agree_with_dcm2niix_run_here() {
    let test = "synthetic_series_agree_with_dcm2niix_run_here";
    let Some(python) = common::check_python(test) else { return };
    let Some(dcm2niix) = common::dcm2niix(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let cases = make_synthetic(&python, &dir.path().join("in"));
    let mut compared = 0;
    for (name, case) in cases.as_object().unwrap() {
        let input = dir.path().join("in").join(name);
        let output = dir.path().join("cue").join(format!("{name}.nii.gz"));
        if case["convert"].as_bool() != Some(true) {
            let words: Vec<&str> = case["error"].as_array().unwrap().iter().map(|w| w.as_str().unwrap()).collect();
            std::fs::create_dir_all(output.parent().unwrap()).unwrap();
            let out = canonical(&input, &output, None);
            assert_refused(&out, &output, &dir.path().join("in").display().to_string(), &words);
            continue;
        }
        if case["reference"] == "pydicom" {
            // Every slice alone through `cue canonical`: each pixel pydicom decodes in its place.
            let whole = dir.path().join("cue").join(format!("{name}-whole.nii.gz"));
            assert!(canonical(&input, &whole, None).status.success(), "{name}: the series");
            for file in std::fs::read_dir(&input).unwrap().flatten() {
                let one = dir.path().join("cue").join(format!("{name}-slice.nii.gz"));
                let written = canonical(&file.path(), &one, None);
                assert!(written.status.success(), "{name}: {}", String::from_utf8_lossy(&written.stderr));
                common::run_check(&python, "check_dicom.py", &[OsStr::new("pixels"), file.path().as_os_str(), one.as_os_str()]);
            }
            assert_eq!(info(&input)["series"][0]["sequence"], case["sequence"]);
            compared += 1;
            continue;
        }
        let reference = dir.path().join("dcm2niix").join(name);
        std::fs::create_dir_all(&reference).unwrap();
        let converted = Command::new(&dcm2niix)
            .args(["-z", "n", "-b", "n", "-f", "%s"])
            .arg("-o")
            .arg(&reference)
            .arg(&input)
            .output()
            .expect("run dcm2niix");
        assert!(converted.status.success(), "dcm2niix {name}: {}", String::from_utf8_lossy(&converted.stdout));
        let listing = info(&input);
        let copies = listing["duplicates"].as_array().unwrap().len() as u64;
        assert_eq!(copies, case["copies"].as_u64().unwrap_or(0), "{name}: files passed over as copies");
        let series = listing["series"].as_array().unwrap();
        let numbers: Vec<i64> = series.iter().map(|s| s["series_number"].as_i64().unwrap()).collect();
        if let Some(expected) = case["series"].as_array() {
            assert_eq!(numbers, expected.iter().map(|n| n.as_i64().unwrap()).collect::<Vec<_>>(), "{name}");
        }
        for s in series {
            let number = s["series_number"].as_i64().unwrap();
            let sequence = case.get("sequence").or_else(|| case["sequences"].get(number.to_string())).unwrap();
            assert_eq!(&s["sequence"], sequence, "{name} series {number}");
            let output = dir.path().join("cue").join(name).join(format!("{number}.nii.gz"));
            let written = canonical(&input, &output, Some(&number.to_string()));
            assert!(written.status.success(), "{name}: {}", String::from_utf8_lossy(&written.stderr));
            let theirs = reference.join(format!("{number}.nii"));
            let tolerance = case["tolerance"].as_f64().map(|t| t.to_string());
            let mut args = vec![OsStr::new("dcm2niix"), theirs.as_os_str(), output.as_os_str()];
            args.extend(tolerance.as_deref().map(OsStr::new));
            common::run_check(&python, "check_dicom.py", &args);
            compared += 1;
        }
    }
    assert_eq!(compared, 14, "every convertible synthetic series compared");
    // One oblique slice on its own: each pixel pydicom decodes lies at its own world position.
    let oblique = dir.path().join("in/oblique");
    let slice = std::fs::read_dir(&oblique).unwrap().next().unwrap().unwrap().path();
    let output = dir.path().join("slice.nii.gz");
    assert!(canonical(&slice, &output, None).status.success());
    common::run_check(&python, "check_dicom.py", &[OsStr::new("pixels"), slice.as_os_str(), output.as_os_str()]);
}

/// A two-echo series and a prior study's series, all numbered 7, and a localizer (one slice
/// each way) in one folder: `cue info` gives each volume its own choice and names the
/// localizer's parts by orientation, `--series 7` is refused listing them, and each choice
/// writes the volume dcm2niix makes of that volume's files alone.
#[test]
fn an_enhanced_file_of_two_echoes_gives_a_volume_per_echo() {
    let test = "an_enhanced_file_of_two_echoes_gives_a_volume_per_echo";
    let Some(python) = common::check_python(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    common::run_check(&python, "make_dicom_series.py", &[input.as_os_str(), OsStr::new("enhanced-echoes")]);
    let file = std::fs::read_dir(&input).unwrap().next().unwrap().unwrap().path();
    let listing = info(&input);
    let parts: Vec<(&str, &str)> =
        listing["series"].as_array().unwrap().iter().map(|s| (s["choice"].as_str().unwrap(), s["part"].as_str().unwrap_or("-"))).collect();
    assert_eq!(parts, [("21:1", "echo 1"), ("21:2", "echo 2")]);
    for (choice, echo_time) in [("21:1", "4.5"), ("21:2", "9.0")] {
        let ours = dir.path().join(format!("{}.nii.gz", choice.replace(':', "-")));
        let written = canonical(&input, &ours, Some(choice));
        assert!(written.status.success(), "{choice}: {}", String::from_utf8_lossy(&written.stderr));
        common::run_check(&python, "check_dicom.py", &[OsStr::new("frames"), file.as_os_str(), OsStr::new(echo_time), ours.as_os_str()]);
    }
}

#[test]
fn volumes_sharing_a_series_number_are_picked_by_their_choice() {
    let test = "volumes_sharing_a_series_number_are_picked_by_their_choice";
    let Some(python) = common::check_python(test) else { return };
    let Some(dcm2niix) = common::dcm2niix(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    common::run_check(&python, "make_dicom_series.py", &[input.as_os_str(), OsStr::new("echoes-and-prior")]);
    let listing = info(&input);
    let series = listing["series"].as_array().unwrap();
    let mut choices: Vec<&str> = series.iter().map(|s| s["choice"].as_str().unwrap()).collect();
    choices.sort();
    assert_eq!(choices, ["1:1", "1:2", "1:3", "7:1", "7:2", "7:3", "8:1", "8:2", "9:1", "9:2", "9:3"]);
    let output = dir.path().join("refused.nii.gz");
    let refused = canonical(&input, &output, Some("7"));
    let root = input.display().to_string();
    assert_refused(&refused, &output, &root, &["3 volumes are numbered 7", "7:1 T2 DUAL ECHO", "7:3", "20251104"]);
    assert_refused(&canonical(&input, &output, Some("7:4")), &output, &root, &["no series 7:4 here"]);
    let mut seen = std::collections::BTreeSet::new();
    for s in series {
        // Which sub-folder holds this volume's files: the echo it is, or the prior study.
        let folder = match (s["series_number"].as_i64(), s["part"].as_str()) {
            (Some(7), Some("echo 1")) => "echo1".to_owned(),
            (Some(7), Some("echo 2")) => "echo2".to_owned(),
            (Some(8), Some("echo 1")) => "te12".to_owned(),
            (Some(8), Some("echo 2")) => "te96".to_owned(),
            (Some(9), Some(time)) if time.starts_with("time ") => format!("dynamic/t{}", &time[5..]),
            (Some(1), Some(way @ ("sagittal" | "coronal" | "axial"))) => format!("localizer/{way}"),
            (Some(7), None) => "prior".to_owned(),
            other => panic!("unexpected volume {other:?}"),
        };
        assert_eq!(s["folder"].as_str().map(|f| f.ends_with(&folder)), Some(true), "{s}");
        seen.insert(folder.clone());
        let choice = s["choice"].as_str().unwrap();
        let ours = dir.path().join("cue").join(format!("{}.nii.gz", folder.replace('/', "-")));
        let written = canonical(&input, &ours, Some(choice));
        assert!(written.status.success(), "{choice}: {}", String::from_utf8_lossy(&written.stderr));
        let reference = dir.path().join("dcm2niix").join(&folder);
        std::fs::create_dir_all(&reference).unwrap();
        let converted = Command::new(&dcm2niix)
            .args(["-z", "n", "-b", "n", "-f", "ref"])
            .arg("-o")
            .arg(&reference)
            .arg(input.join(&folder))
            .output()
            .expect("run dcm2niix");
        assert!(converted.status.success(), "dcm2niix {folder}: {}", String::from_utf8_lossy(&converted.stdout));
        // dcm2niix adds the echo to the name it is given (ref_e2.nii): take the one file it wrote.
        let theirs: Vec<PathBuf> = std::fs::read_dir(&reference).unwrap().flatten().map(|e| e.path()).collect();
        assert_eq!(theirs.len(), 1, "dcm2niix wrote one volume for {folder}: {theirs:?}");
        common::run_check(&python, "check_dicom.py", &[OsStr::new("dcm2niix"), theirs[0].as_os_str(), ours.as_os_str()]);
    }
    assert_eq!(seen.len(), 11, "each volume picked once: {seen:?}");
}

#[test]
fn malformed_files_give_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut preamble = vec![0u8; 128];
    preamble.extend_from_slice(b"DICM");
    let mut wrong_length = preamble.clone();
    // File meta group length element with a VR length far past the end of the file.
    wrong_length.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 0x04, 0x00, 0x10, 0x00, 0x00, 0x00]);
    wrong_length.extend_from_slice(&[0x02, 0x00, 0x10, 0x00, b'U', b'I', 0xff, 0xff, b'1', b'.', b'2']);
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("empty.dcm", Vec::new(), "not a DICOM file"),
        ("text.dcm", b"hello, not an image at all".repeat(10), "not a DICOM file"),
        ("marker-only.dcm", preamble, "invalid DICOM"),
        ("wrong-length.dcm", wrong_length, "invalid DICOM"),
    ];
    for (name, bytes, words) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let output = dir.path().join(format!("{name}.nii.gz"));
        let out = common::within(std::time::Duration::from_secs(60), name, move || canonical(&path, &output, None));
        assert_refused(&out, &dir.path().join(format!("{name}.nii.gz")), name, &[words]);
        let out = cue(&[OsStr::new("info"), dir.path().join(name).as_os_str()]);
        assert!(!out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("panicked"), "cue info {name}");
    }
}

#[test]
fn a_file_read_from_memory_equals_the_file_and_fuzz_regressions_are_refused() {
    let Some(shared) = common::shared_data("a_file_read_from_memory_equals_the_file") else { return };
    for name in ["MR_small.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm", "MR_small_RLE.dcm"] {
        let bytes = std::fs::read(shared.join("dicom/pydicom").join(name)).unwrap();
        let (series, pixels) = cue::volume::dicom::read_bytes(&bytes).expect(name);
        assert_eq!(series.len(), 1);
        // expected.json's pixel sum for these slices.
        assert_eq!(pixels[0].iter().map(|&v| f64::from(v)).sum::<f64>(), 2125338.0, "{name}");
        // Cut anywhere, the bytes give an error, never a panic.
        for cut in [0, 100, 131, 132, 200, bytes.len() / 2, bytes.len() - 1] {
            let _ = cue::volume::dicom::read_bytes(&bytes[..cut]);
        }
    }
    // The RLE slice cut short, its last fragment's length made to match the cut (a cut alone
    // is refused by the length check before decoding), panics inside dicom-rs' RLE decoder
    // (0.10.1): through the command line it is one line naming the file all the same.
    let dir = tempfile::tempdir().unwrap();
    let rle = std::fs::read(shared.join("dicom/pydicom/MR_small_RLE.dcm")).unwrap();
    let last_item = rle.windows(4).rposition(|w| w == [0xFE, 0xFF, 0x00, 0xE0]).expect("a fragment");
    let cut_with_honest_length = |n: usize| {
        let mut bytes = rle[..n].to_vec();
        bytes[last_item + 4..last_item + 8].copy_from_slice(&((n - last_item - 8) as u32).to_le_bytes());
        bytes
    };
    let panicking = (last_item + 8..rle.len())
        .rev()
        .map(cut_with_honest_length)
        .find(|bytes| cue::volume::dicom::read_bytes(bytes).is_err_and(|e| e.to_string().contains("cannot be decoded")))
        .expect("a cut of the RLE slice on which the pinned RLE decoder panics");
    let cut = dir.path().join("rle-cut.dcm");
    std::fs::write(&cut, &panicking).unwrap();
    let output = dir.path().join("out.nii.gz");
    assert_refused(&canonical(&cut, &output, None), &output, "rle-cut.dcm", &["cannot be decoded"]);
    let truncated = std::fs::read(shared.join("dicom/pydicom/MR_truncated.dcm")).unwrap();
    assert!(cue::volume::dicom::read_bytes(&truncated).is_err());
    // Inputs the DICOM fuzzer found (fuzz/README.md), replayed.
    let regressions = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz-regressions/dicom");
    for entry in std::fs::read_dir(&regressions).into_iter().flatten().flatten() {
        let bytes = std::fs::read(entry.path()).unwrap();
        let name = entry.path().display().to_string();
        // Each is refused, and at once: the first ones made dicom-object allocate 4 GB first.
        let started = std::time::Instant::now();
        let outcome = common::within(std::time::Duration::from_secs(30), &name, move || cue::volume::dicom::read_bytes(&bytes).map(|_| ()));
        assert!(outcome.is_err(), "{name}: accepted");
        assert!(started.elapsed().as_secs_f64() < 5.0, "{name}: refused after {:?}", started.elapsed());
    }
}

/// A real slice in three encodings with one element's declared length raised to the 4 GB the
/// DICOM fuzzer found: refused at once (dicom-object 0.10.1 alone allocated and zeroed the
/// 4 GB first: 25 s and 4.1 GB of memory), one line naming the element and the file.
#[test]
fn a_declared_length_past_the_end_of_the_file_is_refused_at_once() {
    let Some(shared) = common::shared_data("a_declared_length_past_the_end_of_the_file_is_refused_at_once") else { return };
    let lie: u32 = 4_227_858_432;
    // (file, the element's header as it lies in the file, where its 4-byte length follows, byte order)
    let cases: [(&str, &[u8], bool, &str); 3] = [
        ("MR_small.dcm", &[0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0], false, "(7FE0,0010)"),
        ("MR_small_bigendian.dcm", &[0x7F, 0xE0, 0x00, 0x10, b'O', b'W', 0, 0], true, "(7FE0,0010)"),
        ("MR_small_implicit.dcm", &[0x10, 0x00, 0x10, 0x00], false, "(0010,0010)"),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (name, header, big_endian, element) in cases {
        let mut bytes = std::fs::read(shared.join("dicom/pydicom").join(name)).unwrap();
        let at = bytes.windows(header.len()).position(|w| w == header).expect("the element in the file") + header.len();
        let length = if big_endian { lie.to_be_bytes() } else { lie.to_le_bytes() };
        bytes[at..at + 4].copy_from_slice(&length);
        let file = dir.path().join(format!("lying-{name}"));
        std::fs::write(&file, &bytes).unwrap();
        let output = dir.path().join("out.nii.gz");
        let started = std::time::Instant::now();
        let refused = canonical(&file, &output, None);
        let seconds = started.elapsed().as_secs_f64();
        assert_refused(&refused, &output, &format!("lying-{name}"), &[&format!("element {element} declares {lie} bytes")]);
        assert!(seconds < 5.0, "{name}: refused after {seconds:.1} s");
    }
}

#[test]
fn a_map_of_a_dicom_series_lies_on_its_grid_and_equals_the_nifti_map() {
    let test = "a_map_of_a_dicom_series_lies_on_its_grid_and_equals_the_nifti_map";
    let Some(shared) = common::shared_data(test) else { return };
    let Some(python) = common::check_python(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let model = common::tiny_clip();
    let prompt = common::tiny_prompt_file(dir.path());
    let of_dicom = dir.path().join("dicom-map.nii.gz");
    let of_nifti = dir.path().join("nifti-map.nii.gz");
    let study = shared.join("dicom/brats-study");
    let flair = shared.join("cases/brats-sample/t2f.nii.gz");
    for (input, series, out) in [(&study, Some("5"), &of_dicom), (&flair, None, &of_nifti)] {
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("map"), OsStr::new("--model"), model.as_os_str(), OsStr::new("--prompt"), prompt.as_os_str(), input.as_os_str(),
            OsStr::new("--view"), OsStr::new("axial"), OsStr::new("--all-slices"), OsStr::new("--device"), OsStr::new("cpu"), OsStr::new("--out"), out.as_os_str(),
        ];
        if let Some(n) = series {
            args.extend([OsStr::new("--series"), OsStr::new(n)]);
        }
        cue_ok(&args);
    }
    let expected = shared.join("dicom/expected.json");
    common::run_check(&python, "check_dicom.py", &[OsStr::new("map"), expected.as_os_str(), OsStr::new("5_T2_FLAIR_AX"), of_dicom.as_os_str(), of_nifti.as_os_str()]);
}

#[test]
fn evaluation_of_a_dicom_case_equals_that_of_its_nifti_files() {
    let test = "evaluation_of_a_dicom_case_equals_that_of_its_nifti_files";
    let Some(shared) = common::shared_data(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let model = common::tiny_clip();
    let prompt = common::tiny_prompt_file(dir.path());
    // One case folder: the four DICOM series (one level down, as a PACS export nests them) and
    // the NIfTI segmentation beside them; the other the NIfTI case itself.
    let dicom_case = dir.path().join("dicom-data/BraTS-DICOM-00000-000");
    std::fs::create_dir_all(dicom_case.join("DICOM")).unwrap();
    for entry in std::fs::read_dir(shared.join("dicom/brats-study")).unwrap().flatten() {
        std::os::unix::fs::symlink(entry.path(), dicom_case.join("DICOM").join(entry.file_name())).unwrap();
    }
    std::os::unix::fs::symlink(shared.join("cases/brats-sample/segmentation.nii.gz"), dicom_case.join("segmentation.nii.gz")).unwrap();
    let eval = |data: &Path| -> serde_json::Value {
        let out = cue_ok(&[
            OsStr::new("eval"), OsStr::new("--model"), model.as_os_str(), OsStr::new("--prompt"), prompt.as_os_str(),
            OsStr::new("--data"), data.as_os_str(), OsStr::new("--sequences"), OsStr::new("t1,flair"), OsStr::new("--views"), OsStr::new("axial,sagittal"),
            OsStr::new("--max-slices"), OsStr::new("8"), OsStr::new("--device"), OsStr::new("cpu"), OsStr::new("--json"),
        ]);
        let mut json: serde_json::Value = serde_json::from_str(&out).unwrap();
        // Keyed or listed by case name, which differs; every figure stays.
        json.as_object_mut().unwrap().remove("evaluated");
        json.as_object_mut().unwrap().remove("split");
        json
    };
    let from_dicom = eval(&dir.path().join("dicom-data"));
    let from_nifti = eval(&shared.join("cases/brats-sample"));
    assert_eq!(from_dicom["cases"], 1);
    assert!(from_dicom.to_string().contains("auroc"), "no figures: {from_dicom}");
    assert_eq!(from_dicom, from_nifti);
}
