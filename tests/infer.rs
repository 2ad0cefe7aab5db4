//! The inference worker: model loading with events, slice maps with caching, whole-view jobs
//! with progress and cancellation, errors as events.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use cue::infer::{InferEvent, InferRequest, InferWorker, MapItem, ModelSpec};
use cue::workspace::map_store::{StudyId, VolumeId};
use cue::model::device::DeviceChoice;
use cue::volume::View;

fn tiny() -> PathBuf {
    common::tiny_clip()
}

fn prompt_file(dir: &std::path::Path) -> PathBuf {
    common::tiny_prompt_file(dir)
}

fn item(sequence: &str, slice_index: usize) -> MapItem {
    let (width, height) = (40, 30);
    let values = (0..width * height).map(|i| ((i * 7 + slice_index) % 50) as f32 / 50.0).collect();
    MapItem { study: StudyId(1), volume: VolumeId(1), sequence: sequence.into(), slice_index, values, width, height, pixel_spacing_mm: [1.0, 1.0] }
}

fn wait_for(worker: &InferWorker, what: &str, mut accept: impl FnMut(&InferEvent) -> bool) -> Vec<InferEvent> {
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if let Some(e) = worker.recv_timeout(Duration::from_millis(200)) {
            let done = accept(&e);
            seen.push(e);
            if done {
                return seen;
            }
        }
    }
    panic!("no {what} within 60 s; saw {seen:?}");
}

fn ready_worker(dir: &std::path::Path) -> InferWorker {
    let worker = InferWorker::start(|| {});
    worker.send(InferRequest::Load(ModelSpec { clip: tiny(), prompt: Some(prompt_file(dir)), prompt_dir: None, device: DeviceChoice::Cpu }));
    let events = wait_for(&worker, "ready", |e| matches!(e, InferEvent::Ready { .. } | InferEvent::Error(_)));
    assert!(events.iter().any(|e| matches!(e, InferEvent::Loading { .. })));
    assert!(matches!(events.last(), Some(InferEvent::Ready { .. })), "{events:?}");
    worker
}

#[test]
fn slices_are_mapped_then_served_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let worker = ready_worker(dir.path());
    let request = || InferRequest::MapSlices { view: View::Axial, items: vec![item("T1", 5), item("FLAIR", 5)] };
    worker.send(request());
    let mut maps = Vec::new();
    wait_for(&worker, "two maps", |e| {
        if let InferEvent::Map { key, map, latency_ms } = e {
            maps.push((key.clone(), map.clone(), *latency_ms));
        }
        maps.len() == 2
    });
    assert_eq!(maps[0].0.sequence, "T1");
    assert_eq!((maps[0].1.width, maps[0].1.height), (40, 30));
    assert_eq!(maps[0].1.scores.len(), 40 * 30);
    assert!(maps[0].2 > 0.0);
    worker.send(request());
    let mut again = Vec::new();
    wait_for(&worker, "cached maps", |e| {
        if let InferEvent::Map { latency_ms, map, .. } = e {
            again.push((*latency_ms, map.clone()));
        }
        again.len() == 2
    });
    assert!(again.iter().all(|(latency, _)| *latency == 0.0), "cache not used");
    assert_eq!(again[0].1, maps[0].1);
}

#[test]
fn a_whole_view_job_reports_progress_and_stops_when_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let worker = ready_worker(dir.path());
    let items: Vec<MapItem> = (0..400).map(|k| item("T1", k)).collect();
    worker.send(InferRequest::MapView { job: 7, view: View::Coronal, items });
    let mut progress = Vec::new();
    wait_for(&worker, "progress", |e| {
        if let InferEvent::Progress { job: 7, done, total } = e {
            progress.push((*done, *total));
        }
        !progress.is_empty()
    });
    worker.send(InferRequest::Cancel { job: 7 });
    let events = wait_for(&worker, "job end", |e| matches!(e, InferEvent::JobDone { job: 7, .. }));
    assert!(matches!(events.last(), Some(InferEvent::JobDone { job: 7, cancelled: true })), "{events:?}");
    let last_done = events.iter().filter_map(|e| if let InferEvent::Progress { done, .. } = e { Some(*done) } else { None }).next_back().unwrap_or(progress[0].0);
    assert!(last_done < 400, "the job ran to the end despite the cancel");
    assert_eq!(progress[0].1, 400);
}

#[test]
fn problems_arrive_as_error_events() {
    let worker = InferWorker::start(|| {});
    worker.send(InferRequest::MapSlices { view: View::Axial, items: vec![item("T1", 1)] });
    let events = wait_for(&worker, "an error", |e| matches!(e, InferEvent::Error(_)));
    assert!(matches!(&events[0], InferEvent::Error(m) if m.contains("no model loaded")));
    worker.send(InferRequest::Load(ModelSpec { clip: PathBuf::from("/nonexistent/clip"), prompt: None, prompt_dir: None, device: DeviceChoice::Cpu }));
    let events = wait_for(&worker, "a load error", |e| matches!(e, InferEvent::Error(_)));
    let InferEvent::Error(message) = events.last().unwrap() else { unreachable!() };
    assert!(message.contains("/nonexistent/clip"), "{message}");
}

#[test]
fn without_a_named_prompt_the_newest_compatible_one_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let path = prompt_file(dir.path());
    let worker = InferWorker::start(|| {});
    worker.send(InferRequest::Load(ModelSpec { clip: tiny(), prompt: None, prompt_dir: Some(dir.path().to_path_buf()), device: DeviceChoice::Cpu }));
    let events = wait_for(&worker, "ready", |e| matches!(e, InferEvent::Ready { .. } | InferEvent::Error(_)));
    match events.last() {
        Some(InferEvent::Ready { prompt, .. }) => assert_eq!(prompt, &path.display().to_string()),
        other => panic!("{other:?}"),
    }
}
