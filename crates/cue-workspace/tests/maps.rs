//! The workspace without a window: real NIfTI studies written here, the committed tiny
//! random-init CLIP, the real inference worker and job runner. A map belongs to the study,
//! volume and prompt that produced it, and the store keeps to its budget.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cue_model::clip::Clip;
use cue_model::prompt::PromptConfig;
use cue_model::trained::save_untrained_prompt;
use cue_volume::{Affine, View, VoxelData, WriteOptions, write_nifti1};
use cue_workspace::maps::ModelStatus;
use cue_workspace::state::Settings;
use cue_workspace::workspace::DRAIN_BUDGET;
use cue_workspace::{Command, Workspace};

const SHAPE: [usize; 3] = [20, 24, 12];

fn tiny_clip() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/clip/tiny")
}

/// A one-sequence study (`t1.nii.gz`) in `dir` whose voxels depend on `seed`.
fn study(dir: &Path, seed: u32) -> PathBuf {
    std::fs::create_dir_all(dir).expect("study folder");
    let data: Vec<f32> = (0..SHAPE.iter().product::<usize>() as u32).map(|i| ((i.wrapping_mul(2654435761) ^ seed.wrapping_mul(97)) % 1000) as f32).collect();
    let affine = Affine::from_rows([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]]);
    write_nifti1(&dir.join("t1.nii.gz"), &SHAPE, &VoxelData::F32(data), &affine, &WriteOptions::default()).expect("write the study");
    dir.to_path_buf()
}

/// An untrained prompt for the tiny CLIP at `path`, with `tokens` context tokens.
fn prompt_with(path: &Path, tokens: usize) -> PathBuf {
    let clip = Clip::load(&tiny_clip(), &burn::tensor::Device::flex()).expect("tiny CLIP");
    save_untrained_prompt(&clip, &PromptConfig { context_tokens: tokens, shared_context: true }, vec![1, 2, 3], path).expect("write the prompt");
    path.to_path_buf()
}

fn prompt(path: &Path) -> PathBuf {
    prompt_with(path, 3)
}

/// A workspace with study `a` open, prompt `p` loaded and the cursor's axial slice mapped.
fn mapped() -> (tempfile::TempDir, Workspace, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let a = study(&dir.path().join("a"), 1);
    let p = prompt(&dir.path().join("p.bpk"));
    let mut ws = Workspace::new(Settings::default(), || {});
    open(&mut ws, &a);
    load_prompt(&mut ws, &p);
    map_cursor_slice(&mut ws);
    (dir, ws, a, p)
}

fn until(ws: &mut Workspace, what: &str, done: impl Fn(&Workspace) -> bool) {
    let start = Instant::now();
    while !done(ws) {
        assert!(start.elapsed() < Duration::from_secs(120), "{what} did not happen; message {:?}, model {:?}", ws.message, ws.maps.status);
        ws.update(DRAIN_BUDGET);
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Lets every job and worker event of the last second land.
fn settle(ws: &mut Workspace) {
    for _ in 0..100 {
        ws.update(DRAIN_BUDGET);
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn open(ws: &mut Workspace, folder: &Path) {
    ws.apply(Command::Open(vec![folder.to_path_buf()]));
    until(ws, "the study to load", |ws| !ws.is_loading() && ws.study.as_ref().is_some_and(|s| s.study.sequences[0].volume.source.path.starts_with(folder)));
}

fn load_prompt(ws: &mut Workspace, prompt: &Path) {
    ws.apply(Command::LoadModel { clip: tiny_clip(), prompt: Some(prompt.to_path_buf()), search_weights: false });
    until(ws, "the model to load", |ws| matches!(&ws.maps.status, ModelStatus::Ready { prompt: p, .. } if Path::new(p) == prompt));
}

/// The map the views would draw for the cursor's axial slice of the first sequence.
fn shown(ws: &Workspace) -> Option<std::sync::Arc<cue_model::mapper::SliceMap>> {
    let study = ws.study.as_ref()?;
    ws.maps.map_of(study, 0, View::Axial, study.cursor[2])
}

fn map_cursor_slice(ws: &mut Workspace) {
    ws.apply(Command::MapSlice(View::Axial));
    until(ws, "the slice's map", |ws| shown(ws).is_some());
}

#[test]
fn maps_do_not_leak_across_studies() {
    let (dir, mut ws, a, _) = mapped();
    let b = study(&dir.path().join("b"), 2);
    let a_map = shown(&ws).expect("A's map");

    // B has the same shape, sequence and cursor: only its identity tells the maps apart.
    open(&mut ws, &b);
    settle(&mut ws);
    assert!(shown(&ws).is_none(), "study B shows a map it never had (A's)");
    map_cursor_slice(&mut ws);
    let b_map = shown(&ws).expect("B's own map");
    assert_ne!(a_map.scores, b_map.scores, "B's map is computed from B's voxels");

    // Reopening A finds A's map in the store again, without mapping.
    open(&mut ws, &a);
    let again = shown(&ws).expect("A's map is back from the store");
    assert_eq!(again.scores, a_map.scores);
}

#[test]
fn maps_follow_the_prompt() {
    let (dir, mut ws, _, p) = mapped();
    let q = prompt(&dir.path().join("q.bpk"));
    let with_p = shown(&ws).expect("the map with p");

    load_prompt(&mut ws, &q);
    settle(&mut ws);
    assert!(shown(&ws).is_none(), "a map made with another prompt is shown");
    map_cursor_slice(&mut ws);

    load_prompt(&mut ws, &p);
    assert_eq!(shown(&ws).expect("p's map is kept").scores, with_p.scores);

    // The same file name with new contents (a prompt retrained in place) is another prompt:
    // maps are keyed by the file's checksum, not its name.
    prompt_with(&p, 4);
    load_prompt(&mut ws, &p);
    settle(&mut ws);
    assert!(shown(&ws).is_none(), "a map of the old contents of {} is shown for the new", p.display());
}

#[test]
fn a_whole_view_stays_within_a_small_budget() {
    let (_dir, mut ws, _, _) = mapped();
    // Room for about ten of these small maps (the axial ones; other views' differ); the three
    // views make 56.
    let one = cue_workspace::map_store::map_bytes(&shown(&ws).expect("a map"));
    let budget = 10 * one;
    cue_workspace::map_store::lock(&ws.maps.store).set_budget_bytes(budget);
    ws.apply(Command::MapAllViews);
    until(&mut ws, "mapping to start", |ws| ws.maps.job.is_some());
    until(&mut ws, "all three views", |ws| ws.maps.job.is_none() && ws.maps.queued_views.is_empty());
    assert!(ws.maps.received >= SHAPE.iter().sum::<usize>(), "{} maps received", ws.maps.received);
    let store = cue_workspace::map_store::lock(&ws.maps.store);
    assert!(store.used_bytes() <= budget, "{} bytes in a {budget}-byte store", store.used_bytes());
    assert!(!store.is_empty() && store.len() < ws.maps.received, "{} of {} maps kept: nothing was evicted", store.len(), ws.maps.received);
}
