//! Writing: read -> write -> read is exact for every datatype; pairs and gzip members agree.

mod common;

use common::shared_data;
use cue::volume::{Affine, DataType, NiftiImage, Volume, VoxelData, WriteOptions, write_nifti1};

fn round_trip(image: &NiftiImage, extension: &str) -> NiftiImage {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join(format!("out.{extension}"));
    let affine = image.header.world_from_voxel().expect("affine");
    let options = WriteOptions {
        rescale: image.header.rescale().expect("scaling"),
        extra_zooms: image.header.zooms().iter().skip(3).copied().collect(),
        ..Default::default()
    };
    write_nifti1(&out, &image.header.shape(), &image.data, &affine, &options).expect("write");
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "only the finished file remains: {names:?}");
    NiftiImage::read(&out).expect("read back")
}

#[test]
fn every_datatype_round_trips_exactly() {
    let Some(data) = shared_data("writer round trip") else { return };
    let corpus = data.join("nifti-corpus/nifti-rs");
    let mut files: Vec<_> = std::fs::read_dir(corpus.join("27")).unwrap().map(|e| e.unwrap().path()).collect();
    files.extend([corpus.join("rgb/3D.nii"), corpus.join("rgb/4D.nii"), corpus.join("rgba/4D.nii")]);
    files.push(data.join("nifti-corpus/nibabel/functional.nii"));
    files.push(data.join("nifti-corpus/nibabel/anatomical.nii"));
    let mut seen = std::collections::HashSet::new();
    for file in &files {
        let original = NiftiImage::read(file).expect("original");
        seen.insert(original.datatype());
        for extension in ["nii", "nii.gz"] {
            let back = round_trip(&original, extension);
            let name = format!("{} as .{extension}", file.display());
            assert_eq!(back.datatype(), original.datatype(), "{name}");
            assert_eq!(back.header.shape(), original.header.shape(), "{name}");
            assert_eq!(back.data, original.data, "{name}: voxel values differ");
            assert_eq!(back.header.rescale().unwrap(), original.header.rescale().unwrap(), "{name}");
            let (a, b) = (back.header.world_from_voxel().unwrap(), original.header.world_from_voxel().unwrap());
            assert!(a.max_abs_diff(&b) < 1e-5, "{name}: affine {a:?} vs {b:?}");
            assert_eq!(a.axcodes(), b.axcodes(), "{name}");
        }
    }
    for datatype in DataType::READABLE {
        assert!(seen.contains(&datatype), "no test file of datatype {}", datatype.name());
    }
}

#[test]
fn synthetic_volume_round_trips_with_an_oblique_affine() {
    let dir = tempfile::tempdir().unwrap();
    let t = 19f64.to_radians();
    let affine = Affine::from_rows([
        [-0.9, 0.0, 0.0, 90.0],
        [0.0, 1.1 * t.cos(), -2.0 * t.sin(), -120.0],
        [0.0, 1.1 * t.sin(), 2.0 * t.cos(), -60.0],
    ]);
    let values: Vec<f32> = (0..4 * 5 * 6).map(|v| v as f32 * 0.25 - 3.0).collect();
    let out = dir.path().join("oblique.nii.gz");
    write_nifti1(&out, &[4, 5, 6], &VoxelData::F32(values.clone()), &affine, &WriteOptions::default()).unwrap();
    let back = Volume::read(&out, 0).unwrap();
    assert_eq!(back.data, values);
    assert!(back.world_from_voxel.max_abs_diff(&affine) < 1e-5);
    // The qform approximates the same oblique rotation.
    let qform = back.source.header.qform_affine().unwrap();
    assert!(qform.max_abs_diff(&affine) < 1e-4, "{qform:?}");
}

#[test]
fn failed_writes_leave_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("missing-folder/out.nii");
    let error = write_nifti1(&out, &[2, 2, 2], &VoxelData::U8(vec![0; 8]), &Affine::identity(), &WriteOptions::default())
        .unwrap_err();
    assert!(error.to_string().ends_with("out.nii"), "path last: {error}");
    let wrong_size =
        write_nifti1(&dir.path().join("x.nii"), &[2, 2, 3], &VoxelData::U8(vec![0; 8]), &Affine::identity(), &WriteOptions::default());
    assert!(wrong_size.is_err());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn gzipped_pairs_match_plain_pairs() {
    let Some(data) = shared_data("gzipped pairs") else { return };
    let corpus = data.join("nifti-corpus/nifti-rs");
    let plain = NiftiImage::read(&corpus.join("minimal.hdr")).unwrap();
    let gz = NiftiImage::read(&corpus.join("minimal.hdr.gz")).unwrap();
    let single = NiftiImage::read(&corpus.join("minimal.nii.gz")).unwrap();
    // Opening the image member finds its header.
    let by_img = NiftiImage::read(&corpus.join("minimal.img")).unwrap();
    assert_eq!(plain.data, gz.data);
    assert_eq!(plain.data, single.data);
    assert_eq!(plain.data, by_img.data);
    // A header whose image member is absent names the file it looked for.
    let missing = Volume::read(&corpus.join("avg152T1_LR_nifti.hdr.gz"), 0).unwrap_err().to_string();
    assert!(missing.contains("avg152T1_LR_nifti.img.gz does not exist"), "{missing}");
    assert!(missing.ends_with("avg152T1_LR_nifti.hdr.gz"), "{missing}");
}
