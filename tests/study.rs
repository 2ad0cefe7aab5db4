//! Studies built from real folders and files.

mod common;

use std::path::PathBuf;

use common::shared_data;
use cue::volume::{DisplayConvention, SequenceKind, Study, View, WindowLevel, extract_slice, slice_count};

#[test]
fn brats_folder_becomes_a_five_sequence_study_on_one_grid() {
    let Some(data) = shared_data("brats study") else { return };
    let study = Study::load_folder(&data.join("cases/brats-sample")).expect("study");
    let kinds: Vec<_> = study.sequences.iter().map(|s| s.kind.clone()).collect();
    assert_eq!(
        kinds,
        [SequenceKind::T1, SequenceKind::T1ce, SequenceKind::T2, SequenceKind::Flair, SequenceKind::Segmentation]
    );
    assert_eq!(study.shape(), [240, 240, 155]);
    assert!(study.sequences.iter().all(|s| !s.resampled && s.volume.axcodes() == "RAS"));
    // The tumour's labels sit where the FLAIR is bright: mean FLAIR inside the oedema exceeds
    // the mean over the brain.
    let seg = &study.sequence(&SequenceKind::Segmentation).unwrap().volume.data;
    let flair = &study.sequence(&SequenceKind::Flair).unwrap().volume.data;
    let mean = |pick: &dyn Fn(usize) -> bool| {
        let (sum, n) = (0..seg.len()).filter(|&i| pick(i)).fold((0.0, 0), |(s, n), i| (s + f64::from(flair[i]), n + 1));
        sum / f64::from(n)
    };
    let oedema = mean(&|i| seg[i] == 2.0);
    let brain = mean(&|i| flair[i] > 0.0);
    assert!(oedema > 1.2 * brain, "oedema {oedema} vs brain {brain}");
    // An axial slice through the tumour, in radiological orientation.
    let volume = &study.sequence(&SequenceKind::T1).unwrap().volume;
    assert_eq!(slice_count(volume.shape, View::Axial), 155);
    let slice = extract_slice(&volume.data, volume.shape, volume.voxel_size_mm(), View::Axial, 77, DisplayConvention::Radiological).unwrap();
    assert_eq!((slice.width, slice.height), (240, 240));
    assert_eq!((slice.edge_labels.left, slice.edge_labels.right), ('R', 'L'));
    let window = WindowLevel::auto(&volume.data);
    assert!(window.width > 0.0 && window.low() > 0.0, "{window:?}");
}

#[test]
fn a_folder_of_two_patients_is_refused_clearly() {
    let Some(data) = shared_data("two patients") else { return };
    let error = Study::load_folder(&data.join("cases/lesion-t1")).unwrap_err().to_string();
    assert!(error.contains("two images are") && error.contains("brain1_") && error.contains("brain2_"), "{error}");
    let files = [
        (data.join("cases/lesion-t1/brain1_t1.nii.gz"), None),
        (data.join("cases/lesion-t1/brain1_label.nii.gz"), None),
    ];
    let study = Study::load_files("brain1", &files).expect("one patient");
    assert_eq!(study.sequences.len(), 2);
    assert_eq!(study.sequences[1].kind, SequenceKind::Segmentation);
}

#[test]
fn a_sequence_on_another_grid_is_resampled_into_the_reference() {
    let Some(data) = shared_data("resampling") else { return };
    let dir = data.join("nifti-corpus/nibabel");
    let files: Vec<(PathBuf, Option<SequenceKind>)> = vec![
        (dir.join("anatomical.nii"), Some(SequenceKind::T1)),
        (dir.join("resampled_anat_moved.nii"), Some(SequenceKind::T2)),
    ];
    let study = Study::load_files("moved", &files).expect("study");
    let t1 = &study.sequences[0];
    let moved = &study.sequences[1];
    assert!(!t1.resampled && moved.resampled);
    assert_eq!(moved.volume.shape, t1.volume.shape);
    assert_eq!(moved.volume.world_from_voxel, t1.volume.world_from_voxel);
    let nonzero = moved.volume.data.iter().filter(|v| **v != 0.0 && v.is_finite()).count();
    assert!(nonzero > moved.volume.data.len() / 10, "resampled volume mostly empty: {nonzero}");
    // A user-named sequence of a file whose name says nothing.
    let named = Study::load_files("x", &[(dir.join("anatomical.nii"), None)]).unwrap();
    assert_eq!(named.sequences[0].kind, SequenceKind::Other("anatomical.nii".into()));
}

#[test]
fn training_slices_of_the_brats_case_skip_empty_slices_and_carry_masks() {
    use cue::train::dataset::{DatasetConfig, find_cases, slices_of};
    let Some(data) = shared_data("dataset slices") else { return };
    let cases = find_cases(&data.join("cases/brats-sample")).expect("one case");
    assert_eq!(cases.len(), 1);
    let study = Study::load_folder(&cases[0]).unwrap();
    let config = DatasetConfig { sequences: vec![SequenceKind::T1, SequenceKind::Flair], views: View::ALL.to_vec(), ..Default::default() };
    let samples = slices_of(&study, &config);
    let axial_t1: Vec<_> = samples.iter().filter(|s| s.view == View::Axial && s.sequence == SequenceKind::T1).collect();
    assert!(axial_t1.len() > 60 && axial_t1.len() < 155, "{} axial slices kept", axial_t1.len());
    assert!(samples.iter().any(|s| s.is_anomalous()) && samples.iter().any(|s| !s.is_anomalous()));
    let seg = &study.sequence(&SequenceKind::Segmentation).unwrap().volume;
    for s in &samples {
        assert!(s.image.iter().all(|v| (0.0..=1.0).contains(v)));
        // The mask counts the same voxels as the segmentation's slice.
        let axis = s.view.normal_axis();
        let labelled = (0..seg.data.len()).filter(|&i| {
            let ijk = [i % seg.shape[0], (i / seg.shape[0]) % seg.shape[1], i / (seg.shape[0] * seg.shape[1])];
            ijk[axis] == s.slice_index && seg.data[i] > 0.0
        });
        if s.slice_index % 37 == 0 {
            assert_eq!(s.mask.iter().filter(|&&m| m == 1).count(), labelled.count(), "{:?} {}", s.view, s.slice_index);
        }
    }
    let few = slices_of(&study, &DatasetConfig { max_slices: Some(8), ..Default::default() });
    assert_eq!(few.len(), 8);
}
