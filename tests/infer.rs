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
    worker.send(InferRequest::Load(ModelSpec { clip: tiny(), prompt: Some(prompt_file(dir)), prompt_dir: None, device: DeviceChoice::Cpu, precision: Default::default() }));
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
    worker.send(InferRequest::Load(ModelSpec { clip: PathBuf::from("/nonexistent/clip"), prompt: None, prompt_dir: None, device: DeviceChoice::Cpu, precision: Default::default() }));
    let events = wait_for(&worker, "a load error", |e| matches!(e, InferEvent::Error(_)));
    let InferEvent::Error(message) = events.last().unwrap() else { unreachable!() };
    assert!(message.contains("/nonexistent/clip"), "{message}");
}

#[test]
fn without_a_named_prompt_the_newest_compatible_one_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let path = prompt_file(dir.path());
    let worker = InferWorker::start(|| {});
    worker.send(InferRequest::Load(ModelSpec { clip: tiny(), prompt: None, prompt_dir: Some(dir.path().to_path_buf()), device: DeviceChoice::Cpu, precision: Default::default() }));
    let events = wait_for(&worker, "ready", |e| matches!(e, InferEvent::Ready { .. } | InferEvent::Error(_)));
    match events.last() {
        Some(InferEvent::Ready { prompt, .. }) => assert_eq!(prompt, &path.display().to_string()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn whole_view_batches_grow_past_the_first_when_slices_are_quick() {
    // The tiny CLIP maps a slice in milliseconds, far under the 1 s a batch may take, so after
    // the first batch (4 slices, before any timing) batches reach the CPU's memory-sized cap of 8.
    let dir = tempfile::tempdir().unwrap();
    let worker = ready_worker(dir.path());
    let items: Vec<MapItem> = (0..40).map(|k| item("T1", k)).collect();
    worker.send(InferRequest::MapView { job: 9, view: View::Axial, items });
    let events = wait_for(&worker, "job end", |e| matches!(e, InferEvent::JobDone { job: 9, .. }));
    assert!(matches!(events.last(), Some(InferEvent::JobDone { job: 9, cancelled: false })), "{events:?}");
    let done: Vec<usize> = events.iter().filter_map(|e| if let InferEvent::Progress { job: 9, done, .. } = e { Some(*done) } else { None }).collect();
    let steps: Vec<usize> = done.iter().scan(0, |last, &d| { let step = d - *last; *last = d; Some(step) }).collect();
    assert_eq!(done.last(), Some(&40), "{done:?}");
    assert_eq!(steps[0], 4, "{steps:?}");
    assert!(steps.iter().all(|&s| s <= cue::model::batch::CPU_MAX_SLICES), "{steps:?}");
    assert!(steps.contains(&cue::model::batch::CPU_MAX_SLICES), "batches never grew: {steps:?}");
    let maps = events.iter().filter(|e| matches!(e, InferEvent::Map { .. })).count();
    assert_eq!(maps, 40);
}

#[test]
fn on_lavapipe_batches_are_sized_from_device_memory_and_map_as_single_slices_do() {
    use burn::tensor::{Device, DeviceKind};
    use cue::model::batch::{BatchSizer, MAX_SLICES, device_memory, slice_bytes};
    use cue::model::clip::Clip;
    use cue::model::mapper::{AnomalyModel, SliceImage};

    let dir = tempfile::tempdir().unwrap();
    let prompt = prompt_file(dir.path());
    let gpu = Device::wgpu(DeviceKind::DefaultDevice);
    let before = device_memory(&gpu);
    let capacity = before.capacity_bytes.expect("the Vulkan adapter reports its heaps");
    assert!(capacity > 64 << 20, "{capacity}");
    assert!(!before.is_cpu);
    let model = AnomalyModel::with_prompt(Clip::load(&tiny(), &gpu).expect("tiny CLIP on wgpu"), Some(&prompt)).expect("prompt");
    let loaded = device_memory(&gpu);
    assert!(loaded.in_use_bytes > before.in_use_bytes, "weights not counted: {before:?} -> {loaded:?}");

    let per_slice = slice_bytes(&model.clip.config.vision, model.layers.len());
    let expected = ((loaded.free_bytes().unwrap() as f64 * 0.5 / per_slice as f64) as usize).clamp(1, MAX_SLICES);
    let sizer = BatchSizer::for_device(&gpu, &model.clip.config.vision, model.layers.len(), None);
    assert_eq!(sizer.memory_limit(), expected);
    assert!(expected > 4, "lavapipe's heap holds more than 4 tiny slices: {expected}");
    eprintln!("lavapipe: {capacity} bytes, {} in use, {per_slice} bytes a slice: {expected} slices a batch", loaded.in_use_bytes);

    // One batch of 6 and six batches of one: the same maps (and the CPU's, to float tolerance).
    let items: Vec<MapItem> = (0..6).map(|k| item("T1", k)).collect();
    let images: Vec<SliceImage<'_>> =
        items.iter().map(|i| SliceImage { values: &i.values, channels: 1, width: i.width, height: i.height, pixel_spacing_mm: i.pixel_spacing_mm }).collect();
    let batched = model.map(&images).expect("batch on wgpu");
    let cpu = AnomalyModel::with_prompt(Clip::load(&tiny(), &Device::flex()).unwrap(), Some(&prompt)).unwrap();
    for (k, image) in images.iter().enumerate() {
        let single = model.map(std::slice::from_ref(image)).expect("one slice on wgpu");
        let on_cpu = cpu.map(std::slice::from_ref(image)).expect("one slice on the CPU");
        let worst = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
        assert!(worst(&batched[k].scores, &single[0].scores) < 1e-5, "slice {k}: batch vs single");
        assert!(worst(&batched[k].scores, &on_cpu[0].scores) < 1e-4, "slice {k}: wgpu vs CPU");
        assert!((batched[k].image_score - on_cpu[0].image_score).abs() < 1e-4);
    }
}

#[test]
fn a_device_made_for_the_display_carries_the_model_and_maps_as_the_cpu_does() {
    use burn::tensor::Device;
    use cue::model::clip::Clip;
    use cue::model::device::{DeviceChoice, choose};
    use cue::model::display::{compute_device_descriptor, share, unfit_for_compute};
    use cue::model::mapper::{AnomalyModel, SliceImage};
    use std::task::{Context, Poll, Waker};

    // The display's device as the app's window makes it (lavapipe's Vulkan adapter here).
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let mut found = std::pin::pin!(instance.enumerate_adapters(wgpu::Backends::VULKAN));
    let Poll::Ready(adapters) = found.as_mut().poll(&mut Context::from_waker(Waker::noop())) else { panic!("adapter enumeration pending") };
    let adapter = adapters.into_iter().next().expect("a Vulkan adapter (lavapipe)");
    let block = |descriptor: &wgpu::DeviceDescriptor<'_>| pollster::block_on(adapter.request_device(descriptor)).expect("a wgpu device");
    // A device made with wgpu's defaults is not taken: burn's kernels need more.
    let (plain, _) = block(&wgpu::DeviceDescriptor::default());
    let reason = unfit_for_compute(&adapter, &plain).expect("wgpu's default device is not enough");
    assert!(reason.contains("lacks features") || reason.contains("lower limits"), "{reason}");
    let (device, queue) = block(&compute_device_descriptor(&adapter));
    assert_eq!(unfit_for_compute(&adapter, &device), None);
    let description = share(&instance, &adapter, &device, &queue).expect("shared");
    assert!(description.contains("shared with the display"), "{description}");
    let chosen = choose(DeviceChoice::Gpu).expect("gpu");
    assert_eq!(chosen.description, description, "--device gpu takes the display's device");

    let dir = tempfile::tempdir().unwrap();
    let prompt = prompt_file(dir.path());
    let on_display = AnomalyModel::with_prompt(Clip::load(&tiny(), &chosen.device).expect("tiny CLIP on the display device"), Some(&prompt)).expect("prompt");
    let on_cpu = AnomalyModel::with_prompt(Clip::load(&tiny(), &Device::flex()).unwrap(), Some(&prompt)).unwrap();
    let items: Vec<MapItem> = (0..3).map(|k| item("T1", k)).collect();
    let images: Vec<SliceImage<'_>> =
        items.iter().map(|i| SliceImage { values: &i.values, channels: 1, width: i.width, height: i.height, pixel_spacing_mm: i.pixel_spacing_mm }).collect();
    let shared_maps = on_display.map(&images).expect("maps on the display device");
    let cpu_maps = on_cpu.map(&images).expect("maps on the CPU");
    for (k, (a, b)) in shared_maps.iter().zip(&cpu_maps).enumerate() {
        let worst = a.scores.iter().zip(&b.scores).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-4, "slice {k}: the display device's map differs from the CPU's by {worst:e}");
        assert!((a.image_score - b.image_score).abs() < 1e-4);
    }
    // The device still draws: a buffer written through its queue reads back.
    let buffer = device.create_buffer(&wgpu::BufferDescriptor { label: None, size: 16, usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ, mapped_at_creation: false });
    queue.write_buffer(&buffer, 0, &[7u8; 16]);
    queue.submit([]);
    buffer.slice(..).map_async(wgpu::MapMode::Read, |r| r.expect("map"));
    device.poll(wgpu::PollType::wait_indefinitely()).expect("poll");
    assert_eq!(&buffer.slice(..).get_mapped_range().expect("mapped")[..], &[7u8; 16]);
}
