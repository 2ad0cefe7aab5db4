//! A DICOM study in the app (egui_kittest, tiny random-init CLIP): the BraTS study exported as
//! four DICOM series in one flat folder is dropped on the window, its series are listed with
//! the sequences recognised, the four open, and a click maps a slice exactly as the same
//! study opened from its NIfTI files does.

mod common;

use std::path::PathBuf;

use cue::app::CueApp;
use cue::app::maps::ModelStatus;
use cue::app::state::Layout;
use cue::volume::{SequenceKind, View};
use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

/// A folder dropped on the window, as the windowing layer hands it to egui.
#[derive(Debug)]
struct Dropped(PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        Err("a folder".into())
    }
}

use common::step_until;

/// Loads the tiny model, clicks the middle of the axial view in the Compare layout (the four
/// sequences side by side) and returns, per sequence, its kind and the map of the axial slice
/// under the cursor, with the study's identity.
/// A sequence's kind, its map of the clicked slice, the map's score, its volume's fingerprint.
type Mapped = (SequenceKind, Vec<f32>, f32, u64);

fn click_and_collect(harness: &mut Harness<'_, CueApp>, prompt: PathBuf) -> (Vec<Mapped>, usize) {
    harness.state_mut().load_model(common::tiny_clip(), Some(prompt), false);
    step_until(harness, "model ready", |app| matches!(app.maps.status, ModelStatus::Ready { .. }));
    harness.state_mut().settings.layout = Layout::Compare;
    harness.run_steps(3);
    // The first cell's orientation letters bound it: click at its centre.
    let left = harness.get_all_by_label("R").next().expect("R letter").rect();
    let top = harness.get_all_by_label("A").next().expect("A letter").rect();
    let centre = egui::pos2(top.center().x, left.center().y);
    harness.hover_at(centre);
    harness.drag_at(centre);
    harness.drop_at(centre);
    step_until(harness, "four maps", |app| app.maps.native_keys().len() >= 4);
    let app = harness.state();
    let study = app.study.as_ref().expect("a study");
    let slice = study.cursor[2];
    let maps = (0..study.study.sequences.len())
        .filter(|&s| !study.study.sequences[s].kind.is_label())
        .map(|s| {
            let map = app.maps.map_of(study, s, View::Axial, slice).unwrap_or_else(|| {
                panic!("no map of sequence {s} at axial slice {slice}; maps: {:?}", app.maps.native_keys().iter().map(|k| (&k.sequence, k.view, k.slice_index)).collect::<Vec<_>>())
            });
            (study.study.sequences[s].kind.clone(), map.scores.clone(), map.image_score, study.volume_ids[s].0)
        })
        .collect();
    (maps, slice)
}

#[test]
fn a_dicom_folder_opens_by_drop_and_maps_a_slice_as_its_nifti_files_do() {
    let Some(data) = common::shared_data("a DICOM study in the app") else { return };
    let dir = tempfile::tempdir().unwrap();
    let prompt = common::tiny_prompt_file(dir.path());

    let folder = data.join("dicom/brats-study");
    let mut harness = Harness::builder().with_size([1100.0, 700.0]).wgpu().build_eframe(|cc| CueApp::new(cc, Vec::new()));
    harness.input_mut().dropped_files.push(std::sync::Arc::new(Dropped(folder.clone())));
    step_until(&mut harness, "the series list", |app| app.series_picker.is_some());
    harness.run_steps(2);
    // Listed with number, description, size and orientation; the four recognised and ticked.
    for label in ["2 T1 MPRAGE AX", "3 T1 MPRAGE AX POST GD", "4 T2 TSE AX", "5 T2 FLAIR AX"] {
        harness.get_by_label(label);
    }
    assert_eq!(harness.get_all_by_label("240×240×155  1.00×1.00×1.00 mm").count(), 4);
    assert_eq!(harness.get_all_by_label("axial").count(), 4);
    let picker = harness.state().series_picker.as_ref().unwrap();
    let kinds: Vec<(SequenceKind, bool)> = picker.choices.iter().map(|c| (c.kind.clone(), c.picked)).collect();
    use SequenceKind::*;
    assert_eq!(kinds, [(T1, true), (T1ce, true), (T2, true), (Flair, true)]);
    // The folder is remembered among the recent ones.
    assert_eq!(harness.state().settings.recent.first(), Some(&folder));
    harness.get_by_label("Open 4 series").click();
    step_until(&mut harness, "the study", |app| !app.is_loading() && app.study.is_some());
    assert!(harness.state().series_picker.is_none());
    let (from_dicom, dicom_slice) = click_and_collect(&mut harness, prompt.clone());
    assert_eq!(harness.state().study.as_ref().unwrap().study.name, "brats-study");
    drop(harness);

    let case = data.join("cases/brats-sample");
    let mut harness = Harness::builder().with_size([1100.0, 700.0]).wgpu().build_eframe(move |cc| CueApp::new(cc, vec![case.clone()]));
    step_until(&mut harness, "the NIfTI study", |app| !app.is_loading() && app.study.is_some());
    let (from_nifti, nifti_slice) = click_and_collect(&mut harness, prompt);

    // The same voxels on the same grid (the volumes' fingerprints agree), and the same maps
    // bit for bit. (The NIfTI case also holds the segmentation, which the DICOM study lacks.)
    assert_eq!(dicom_slice, nifti_slice);
    assert_eq!(from_dicom.len(), 4);
    assert_eq!(from_nifti.len(), 4);
    for ((kind_d, map_d, score_d, id_d), (kind_n, map_n, score_n, id_n)) in from_dicom.iter().zip(&from_nifti) {
        assert_eq!(kind_d, kind_n);
        assert_eq!(id_d, id_n, "{}: the DICOM volume is not the NIfTI file's image", kind_d.label());
        assert_eq!(map_d.len(), 240 * 240);
        assert!(map_d == map_n, "{}: the maps differ", kind_d.label());
        assert_eq!(score_d, score_n);
        // Not a blank map: the check could tell two different maps apart.
        assert!(map_d.iter().any(|v| *v != map_d[0]), "{}: a constant map", kind_d.label());
    }
}

/// A folder holding one slice twice (a copy in a sub-folder): listed as one series, and the
/// copy said to be passed over.
#[test]
fn a_copy_of_a_slice_is_listed_as_passed_over() {
    let Some(data) = common::shared_data("a copy of a slice in the app") else { return };
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("export");
    std::fs::create_dir_all(folder.join("copy")).unwrap();
    for to in [folder.join("IM0001"), folder.join("copy/IM0001")] {
        std::fs::copy(data.join("dicom/pydicom/MR_small.dcm"), to).unwrap();
    }
    let mut harness = Harness::builder().with_size([1100.0, 700.0]).wgpu().build_eframe(|cc| CueApp::new(cc, Vec::new()));
    harness.input_mut().dropped_files.push(std::sync::Arc::new(Dropped(folder)));
    step_until(&mut harness, "the series list", |app| app.series_picker.is_some());
    harness.run_steps(2);
    assert_eq!(harness.state().series_picker.as_ref().unwrap().choices.len(), 1);
    harness.get_by_label("1 file(s) passed over as copies of images read from another file");
}
