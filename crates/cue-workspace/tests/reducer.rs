//! The reducer without a window: commands change the workspace, jobs report back through
//! `update`, and what only a window can do comes out as effects.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cue_volume::{Affine, SequenceKind, View, VoxelData, WindowLevel, WriteOptions, write_nifti1};
use cue_workspace::state::{Layout, ScreenVec, Settings};
use cue_workspace::workspace::DRAIN_BUDGET;
use cue_workspace::{Command, Effect, Workspace};

const SHAPE: [usize; 3] = [16, 12, 10];

fn write(path: &Path, seed: u32) -> PathBuf {
    let data: Vec<f32> = (0..SHAPE.iter().product::<usize>() as u32).map(|i| ((i * 7 + seed * 13) % 100) as f32).collect();
    let affine = Affine::from_rows([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]);
    write_nifti1(path, &SHAPE, &VoxelData::F32(data), &affine, &WriteOptions::default()).expect("write");
    path.to_path_buf()
}

fn until(ws: &mut Workspace, what: &str, done: impl Fn(&Workspace) -> bool) {
    let start = Instant::now();
    while !done(ws) {
        assert!(start.elapsed() < Duration::from_secs(60), "{what} did not happen; message {:?}", ws.message);
        ws.update(DRAIN_BUDGET);
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn opened(dir: &Path) -> Workspace {
    let mut ws = Workspace::new(Settings::default(), || {});
    ws.apply(Command::Open(vec![write(&dir.join("t1.nii.gz"), 1), write(&dir.join("flair.nii.gz"), 2)]));
    assert!(ws.is_loading(), "opening is a job");
    assert!(ws.study.is_none(), "nothing opens on the calling thread");
    until(&mut ws, "the study", |ws| ws.study.is_some());
    ws
}

#[test]
fn view_commands_change_only_the_view_state() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ws = opened(dir.path());
    let study = ws.study.as_ref().expect("study");
    assert_eq!(study.cursor, SHAPE.map(|n| n / 2));

    ws.apply(Command::StepSlice { view: View::Axial, delta: 100 });
    assert_eq!(ws.study.as_ref().unwrap().cursor[2], SHAPE[2] - 1, "stepping stops at the last slice");
    ws.apply(Command::StepSlice { view: View::Axial, delta: -100 });
    assert_eq!(ws.study.as_ref().unwrap().cursor[2], 0);

    // Zooming about a point keeps that point where it was on screen.
    let about = ScreenVec::new(30.0, -10.0);
    ws.apply(Command::Zoom { view: View::Coronal, factor: 2.0, about });
    let t = ws.study.as_ref().unwrap().transform(View::Coronal);
    assert_eq!(t.zoom, 2.0);
    assert_eq!(t.pan, about - about * 2.0);
    assert_eq!(ws.study.as_ref().unwrap().transform(View::Axial).zoom, 1.0, "other orientations keep theirs");
    ws.apply(Command::ResetViews);
    assert_eq!(ws.study.as_ref().unwrap().transform(View::Coronal).zoom, 1.0);

    ws.apply(Command::SetWindow { sequence: 1, window: WindowLevel { width: 10.0, level: 5.0 } });
    assert_eq!(ws.study.as_ref().unwrap().sequences[1].window, WindowLevel { width: 10.0, level: 5.0 });
    ws.apply(Command::SetSequenceVisible { sequence: 0, visible: false });
    ws.apply(Command::SetLayout(Layout::Compare));
    assert_eq!(ws.cells().0, vec![(View::Axial, 1)], "Compare shows the visible sequences");
    // Out-of-range indices change nothing.
    ws.apply(Command::SelectSequence(99));
    assert_eq!(ws.study.as_ref().unwrap().selected, 0);
}

#[test]
fn screenshots_are_effects_for_the_window() {
    let mut ws = Workspace::new(Settings::default(), || {});
    ws.apply(Command::Screenshot { view_only: true });
    assert_eq!(ws.take_effects(), vec![Effect::Screenshot { view_only: true }]);
    assert!(ws.take_effects().is_empty(), "taken once");
}

#[test]
fn a_new_study_frees_the_old_one_s_textures_and_keeps_its_name_when_reassigned() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ws = opened(dir.path());
    let old: Vec<u64> = ws.study.as_ref().unwrap().sequences.iter().map(|s| s.gpu_id).collect();
    let name = ws.study.as_ref().unwrap().study.name.clone();
    ws.take_effects();
    ws.apply(Command::AssignSequence { index: 1, kind: SequenceKind::T2 });
    until(&mut ws, "the reload", |ws| !ws.is_loading() && ws.study.as_ref().is_some_and(|s| s.study.sequences[1].kind == SequenceKind::T2));
    assert_eq!(ws.study.as_ref().unwrap().study.name, name);
    let freed: Vec<u64> = ws.take_effects().into_iter().filter_map(|e| if let Effect::FreeGpuVolume(id) = e { Some(id) } else { None }).collect();
    assert_eq!(freed, old);
    assert!(ws.study.as_ref().unwrap().sequences.iter().all(|s| !old.contains(&s.gpu_id)), "new ids for new textures");
}

#[test]
fn a_bad_file_is_one_line_naming_it_and_a_superseded_open_is_dropped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("broken_t1.nii");
    std::fs::write(&bad, b"not a nifti file at all").expect("write");
    let mut ws = Workspace::new(Settings::default(), || {});
    ws.apply(Command::Open(vec![bad.clone()]));
    until(&mut ws, "the error", |ws| ws.message.is_some());
    let message = ws.message.clone().unwrap();
    assert!(!message.contains('\n') && message.ends_with(&bad.display().to_string()), "{message}");
    assert!(ws.study.is_none() && !ws.is_loading());

    // Two opens in a row: only the second becomes the study.
    let first = dir.path().join("a");
    let second = dir.path().join("b");
    std::fs::create_dir_all(&first).unwrap();
    std::fs::create_dir_all(&second).unwrap();
    write(&first.join("t1.nii.gz"), 1);
    write(&second.join("t2.nii.gz"), 2);
    ws.apply(Command::Open(vec![first]));
    ws.apply(Command::Open(vec![second.clone()]));
    until(&mut ws, "the second study", |ws| !ws.is_loading() && ws.study.is_some());
    std::thread::sleep(Duration::from_millis(200));
    ws.update(DRAIN_BUDGET);
    assert!(ws.study.as_ref().unwrap().study.sequences[0].volume.source.path.starts_with(&second));
}

#[test]
fn cancelling_the_open_leaves_the_workspace_as_it_was() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ws = Workspace::new(Settings::default(), || {});
    ws.apply(Command::Open(vec![write(&dir.path().join("t1.nii.gz"), 1)]));
    let id = ws.loading.expect("a job");
    ws.apply(Command::CancelJob(id));
    assert!(!ws.is_loading());
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..20 {
        ws.update(DRAIN_BUDGET);
    }
    assert!(ws.study.is_none(), "a cancelled open's study is never shown");
}
