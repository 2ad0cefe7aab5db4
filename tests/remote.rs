//! The shared GPU server on localhost: `cue serve` (burn's remote backend, WebSocket, burn's
//! `TokenAuthorizer`) against `--device remote:ADDR --token-file F` clients. Remote embeddings
//! equal local ones and transformers' recorded answers; a wrong token is refused with one clear
//! line; a server killed during a whole-view job leaves an error, not a hang, and the slices
//! mapped before it stay mapped for a retry.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cue::infer::{InferEvent, InferRequest, InferWorker, MapItem, ModelSpec};
use cue::model::device::{DeviceChoice, RemoteTarget};
use cue::volume::View;
use cue::workspace::map_store::{StudyId, VolumeId};
use serde_json::Value;

/// A `cue serve` child on a free localhost port; killed when dropped.
struct Server {
    child: Child,
    address: String,
}

impl Server {
    fn start(token_file: &Path) -> Self {
        Self::start_on("127.0.0.1:0", token_file)
    }

    fn start_on(listen: &str, token_file: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cue"))
            .args(["serve", "--device", "cpu", "--listen", listen, "--token-file"])
            .arg(token_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start cue serve");
        let stdout = child.stdout.take().expect("server stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("cue serve printed no address within 60 s");
        let address = line.rsplit("ws://").next().expect("address").trim().to_string();
        assert!(address.starts_with("127.0.0.1:"), "{line}");
        Self { child, address }
    }

    fn device(&self, token_file: &Path) -> DeviceChoice {
        DeviceChoice::Remote(RemoteTarget { address: self.address.clone(), token_file: Some(token_file.to_path_buf()) })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn token(dir: &Path, name: &str, value: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{value}\n")).expect("token file");
    path
}

fn flat(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) => items.iter().flat_map(flat).collect(),
        Value::Number(n) => vec![n.as_f64().expect("number")],
        other => panic!("not numeric: {other}"),
    }
}

fn worst_difference(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn clip_embed(device: &str, token_file: Option<&Path>) -> std::process::Output {
    let dir = common::tiny_clip();
    let mut command = Command::new(env!("CARGO_BIN_EXE_cue"));
    command
        .args(["clip-embed", "--model"])
        .arg(&dir)
        .arg("--image")
        .arg(dir.join("image.png"))
        .args(["--token-ids", "998,5,17,33,999", "--layers", "1,3", "--device", device, "--json"]);
    if let Some(file) = token_file {
        command.arg("--token-file").arg(file);
    }
    command.output().expect("run cue clip-embed")
}

#[test]
fn remote_embeddings_equal_local_ones_and_a_wrong_token_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = token(dir.path(), "token", "a-long-random-token-0f3c9e");
    let server = Server::start(&good);
    let device = format!("remote:{}", server.address);

    let remote = clip_embed(&device, Some(&good));
    assert!(remote.status.success(), "{}", String::from_utf8_lossy(&remote.stderr));
    let local = clip_embed("cpu", None);
    assert!(local.status.success(), "{}", String::from_utf8_lossy(&local.stderr));
    let remote: Value = serde_json::from_slice(&remote.stdout).expect("remote JSON");
    let local: Value = serde_json::from_slice(&local.stdout).expect("local JSON");
    assert!(remote["device"].as_str().is_some_and(|d| d.contains("remote")), "{}", remote["device"]);
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(common::tiny_clip().join("reference.json")).expect("reference")).expect("reference JSON");
    for key in ["image_embeds", "text_embeds"] {
        let worst = worst_difference(&flat(&remote[key]), &flat(&local[key]));
        assert!(worst <= 1e-5, "{key}: remote differs from local by {worst:e}");
    }
    for layer in ["1", "3"] {
        let worst = worst_difference(&flat(&remote["patch_embeds"][layer]), &flat(&local["patch_embeds"][layer]));
        assert!(worst <= 1e-5, "patch_embeds[{layer}]: remote differs from local by {worst:e}");
    }
    // And against transformers' own answer for the same checkpoint and image.
    let worst = worst_difference(&flat(&remote["image_embeds"]), &flat(&reference["image_embeds"]));
    assert!(worst <= 1e-4, "remote image_embeds differ from transformers by {worst:e}");

    let wrong = token(dir.path(), "wrong", "not-the-token");
    let refused = clip_embed(&device, Some(&wrong));
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    let message = stderr.lines().find(|l| l.starts_with("error:")).unwrap_or_default();
    assert!(message.contains("refused") && message.contains(&server.address), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let missing = clip_embed(&device, None);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("--token-file"), "{stderr}");

    // The server is still up for the right token after refusing the wrong one.
    let again = clip_embed(&device, Some(&good));
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
}

#[test]
fn serve_refuses_to_start_without_a_token() {
    let output = Command::new(env!("CARGO_BIN_EXE_cue")).args(["serve", "--device", "cpu", "--listen", "127.0.0.1:0"]).output().expect("run cue serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("error:") && stderr.contains("--token-file"), "{stderr}");
    let dir = tempfile::tempdir().expect("temp dir");
    let empty = token(dir.path(), "empty", "");
    let output = Command::new(env!("CARGO_BIN_EXE_cue")).args(["serve", "--device", "cpu", "--listen", "127.0.0.1:0", "--token-file"]).arg(&empty).output().expect("run cue serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("empty") && stderr.contains(&empty.display().to_string()), "{stderr}");
}

fn item(slice_index: usize) -> MapItem {
    let (width, height) = (64, 64);
    let values = (0..width * height).map(|i| ((i * 7 + slice_index * 3) % 50) as f32 / 50.0).collect();
    MapItem { study: StudyId(7), volume: VolumeId(3), sequence: "T1".into(), slice_index, values, width, height, pixel_spacing_mm: [1.0, 1.0] }
}

/// Events until `accept` says stop; panics after `limit` (a hang is a failure).
fn events_until(worker: &InferWorker, limit: Duration, mut accept: impl FnMut(&InferEvent) -> bool) -> Vec<InferEvent> {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Some(event) = worker.recv_timeout(Duration::from_millis(100)) {
            let stop = accept(&event);
            seen.push(event);
            if stop {
                return seen;
            }
        }
    }
    panic!("nothing conclusive within {limit:?}: {seen:?}");
}

fn load(worker: &InferWorker, device: DeviceChoice, prompt: &Path) {
    worker.send(InferRequest::Load(ModelSpec { clip: common::tiny_clip(), prompt: Some(prompt.to_path_buf()), prompt_dir: None, device }));
    let events = events_until(worker, Duration::from_secs(60), |e| matches!(e, InferEvent::Ready { .. } | InferEvent::Error(_)));
    assert!(matches!(events.last(), Some(InferEvent::Ready { .. })), "{events:?}");
}

#[test]
fn a_server_killed_during_a_view_leaves_an_error_and_the_mapped_slices() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = token(dir.path(), "token", "a-long-random-token-77aa01");
    let prompt = common::tiny_prompt_file_seeded(dir.path(), Some(5));
    let mut server = Server::start(&good);
    let worker = InferWorker::start(|| {});
    load(&worker, server.device(&good), &prompt);

    let slices = 400;
    worker.send(InferRequest::MapView { job: 1, view: View::Axial, items: (0..slices).map(item).collect() });
    let mut mapped = std::collections::BTreeSet::new();
    let mut killed = false;
    let events = events_until(&worker, Duration::from_secs(120), |e| {
        match e {
            InferEvent::Map { key, .. } => {
                mapped.insert(key.slice_index);
            }
            InferEvent::Progress { .. } if !killed => {
                server.child.kill().expect("kill the server");
                killed = true;
            }
            _ => {}
        }
        matches!(e, InferEvent::JobDone { job: 1, .. })
    });
    assert!(killed, "the job ended before the server could be killed: {events:?}");
    assert!(matches!(events.last(), Some(InferEvent::JobDone { job: 1, cancelled: true })), "{:?}", events.last());
    let error = events.iter().find_map(|e| if let InferEvent::Error(m) = e { Some(m.clone()) } else { None }).expect("an error event");
    assert!(error.contains(&server.address), "the error names the server: {error}");
    eprintln!("{} of {slices} slices mapped before the kill; the error: {error}", mapped.len());
    assert!(!mapped.is_empty() && mapped.len() < slices, "{} of {slices} slices mapped before the kill", mapped.len());

    // A restarted server at the same address: burn-remote 0.22.1 keeps the broken session for
    // the life of the process, so the load says so instead of reporting a model that is ready.
    let restarted = Server::start_on(&server.address, &good);
    worker.send(InferRequest::Load(ModelSpec { clip: common::tiny_clip(), prompt: Some(prompt.to_path_buf()), prompt_dir: None, device: restarted.device(&good) }));
    let events = events_until(&worker, Duration::from_secs(60), |e| matches!(e, InferEvent::Ready { .. } | InferEvent::Error(_)));
    match events.last() {
        Some(InferEvent::Error(message)) => assert!(message.contains("restart CUE") && message.contains(&server.address), "{message}"),
        other => panic!("a load on the broken session did not fail: {other:?}"),
    }
    assert!(error.contains("choose another device"), "{error}");

    // Retry on this machine: the slices mapped remotely come back from the store at once
    // (latency 0), only the rest are computed.
    load(&worker, DeviceChoice::Cpu, &prompt);
    worker.send(InferRequest::MapView { job: 2, view: View::Axial, items: (0..slices).map(item).collect() });
    let mut cached = std::collections::BTreeSet::new();
    let mut computed = std::collections::BTreeSet::new();
    let events = events_until(&worker, Duration::from_secs(300), |e| {
        if let InferEvent::Map { key, latency_ms, .. } = e {
            if *latency_ms == 0.0 { cached.insert(key.slice_index) } else { computed.insert(key.slice_index) };
        }
        matches!(e, InferEvent::JobDone { job: 2, .. })
    });
    assert!(matches!(events.last(), Some(InferEvent::JobDone { job: 2, cancelled: false })), "{:?}", events.last());
    assert_eq!(cached, mapped, "every slice mapped before the kill is kept");
    assert_eq!(cached.len() + computed.len(), slices);
    assert!(cached.is_disjoint(&computed));
}
