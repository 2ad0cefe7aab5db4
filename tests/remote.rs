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
        let server = Self::spawn(&["--listen", listen], token_file, "ws://");
        assert!(server.address.starts_with("127.0.0.1:"), "{}", server.address);
        server
    }

    /// `cue serve --transport iroh` as the identity in `key`, with an allow-list if given; its
    /// `address` is the `iroh:ID@HOST:PORT` it prints.
    fn start_iroh(token_file: &Path, key: &Path, allow: Option<&Path>) -> Self {
        let mut args = vec!["--transport", "iroh", "--listen", "127.0.0.1:0", "--iroh-identity", key.to_str().expect("utf-8 path")];
        if let Some(allow) = allow {
            args.extend(["--allow-clients", allow.to_str().expect("utf-8 path")]);
        }
        Self::spawn(&args, token_file, "remote:")
    }

    /// Starts `cue serve --device cpu ARGS` and takes the address after `marker` on the first
    /// line it prints.
    fn spawn(args: &[&str], token_file: &Path, marker: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cue"))
            .args(["serve", "--device", "cpu"])
            .args(args)
            .arg("--token-file")
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
        let address = line.rsplit(marker).next().expect("address").trim().to_string();
        Self { child, address }
    }

    fn device(&self, token_file: &Path) -> DeviceChoice {
        match format!("remote:{}", self.address).parse::<DeviceChoice>() {
            Ok(DeviceChoice::Remote(target)) => DeviceChoice::Remote(RemoteTarget { token_file: Some(token_file.to_path_buf()), ..target }),
            other => panic!("{} is not a remote device: {other:?}", self.address),
        }
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
    clip_embed_as(device, token_file, None)
}

/// `cue clip-embed` on the tiny CLIP, as the Iroh identity in `key` when given.
fn clip_embed_as(device: &str, token_file: Option<&Path>, key: Option<&Path>) -> std::process::Output {
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
    if let Some(key) = key {
        command.arg("--iroh-identity").arg(key);
    }
    command.output().expect("run cue clip-embed")
}

/// A remote `cue clip-embed` run succeeded and its embeddings equal a local run's to 1e-5 and
/// transformers' recorded answer to 1e-4.
fn assert_equals_local(remote: &std::process::Output) {
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
}

/// The one `error:` line a failed run printed, checked to be no panic.
fn error_line(output: &std::process::Output) -> String {
    assert!(!output.status.success(), "the run succeeded");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("no error line: {stderr}")).to_string()
}

#[test]
fn remote_embeddings_equal_local_ones_and_a_wrong_token_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = token(dir.path(), "token", "a-long-random-token-0f3c9e");
    let server = Server::start(&good);
    let device = format!("remote:{}", server.address);

    let remote = clip_embed(&device, Some(&good));
    assert_equals_local(&remote);

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
    worker.send(InferRequest::Load(ModelSpec { clip: common::tiny_clip(), prompt: Some(prompt.to_path_buf()), prompt_dir: None, device, precision: Default::default() }));
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
    worker.send(InferRequest::Load(ModelSpec { clip: common::tiny_clip(), prompt: Some(prompt.to_path_buf()), prompt_dir: None, device: restarted.device(&good), precision: Default::default() }));
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

/// This client's Iroh id for the key in `key`, as `cue iroh-id` prints it.
fn iroh_id(key: &Path, server: bool) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cue"));
    command.arg("iroh-id").arg("--iroh-identity").arg(key);
    if server {
        command.arg("--server");
    }
    let output = command.output().expect("run cue iroh-id");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8").trim().to_string()
}

#[test]
fn iroh_embeddings_equal_local_ones_and_only_allowed_clients_with_the_token_get_in() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = token(dir.path(), "token", "a-long-random-token-iroh-51d2");
    let (allowed_key, stranger_key, server_key) = (dir.path().join("allowed.key"), dir.path().join("stranger.key"), dir.path().join("server.key"));
    let allowed_id = iroh_id(&allowed_key, false);
    let allow_list = dir.path().join("clients");
    std::fs::write(&allow_list, format!("# workstations\n{allowed_id}  # reading room\n")).expect("allow-list");
    let server = Server::start_iroh(&good, &server_key, Some(&allow_list));
    // The server serves as the id its key file holds, so a client can pin it ahead of time.
    let server_id = iroh_id(&server_key, true);
    assert!(server.address.starts_with(&format!("iroh:{server_id}@127.0.0.1:")), "{}", server.address);
    let device = format!("remote:{}", server.address);

    assert_equals_local(&clip_embed_as(&device, Some(&good), Some(&allowed_key)));

    let stranger_id = iroh_id(&stranger_key, false);
    let message = error_line(&clip_embed_as(&device, Some(&good), Some(&stranger_key)));
    assert!(message.contains("refused") && message.contains(&stranger_id) && message.contains("--allow-clients"), "{message}");
    let wrong = token(dir.path(), "wrong", "not-the-token");
    let message = error_line(&clip_embed_as(&device, Some(&wrong), Some(&allowed_key)));
    assert!(message.contains("refused") && message.contains(&allowed_id), "{message}");

    // A server that is not the one the client named is not trusted, even at the right address.
    let impostor = iroh_id(&dir.path().join("impostor.key"), true);
    let port = server.address.rsplit(':').next().expect("port");
    let started = Instant::now();
    let message = error_line(&clip_embed_as(&format!("remote:iroh:{impostor}@127.0.0.1:{port}"), Some(&good), Some(&allowed_key)));
    assert!(message.contains("cannot open a session") && message.contains(&impostor), "{message}");
    eprintln!("a client dialing the wrong id gave up after {:.1} s: {message}", started.elapsed().as_secs_f64());

    // Still serving the allowed client after the refusals.
    assert_equals_local(&clip_embed_as(&device, Some(&good), Some(&allowed_key)));
}

#[test]
fn iroh_serve_refuses_a_malformed_allow_list_and_websocket_allow_lists() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = token(dir.path(), "token", "a-long-random-token-iroh-77c0");
    let allow_list = dir.path().join("clients");
    std::fs::write(&allow_list, "not-a-client-id\n").expect("allow-list");
    let serve = |transport: &str| {
        Command::new(env!("CARGO_BIN_EXE_cue"))
            .args(["serve", "--device", "cpu", "--listen", "127.0.0.1:0", "--transport", transport, "--allow-clients"])
            .arg(&allow_list)
            .arg("--iroh-identity")
            .arg(dir.path().join("server.key"))
            .arg("--token-file")
            .arg(&good)
            .output()
            .expect("run cue serve")
    };
    let message = error_line(&serve("iroh"));
    assert!(message.contains("line 1") && message.contains(&allow_list.display().to_string()), "{message}");
    let message = error_line(&serve("websocket"));
    assert!(message.contains("--transport iroh"), "{message}");
}

#[test]
fn an_iroh_server_killed_during_a_view_leaves_an_error_and_the_mapped_slices() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = token(dir.path(), "token", "a-long-random-token-iroh-0b9e");
    let prompt = common::tiny_prompt_file_seeded(dir.path(), Some(5));
    // Any client with the token: this process's identity is the default one, set here.
    cue::model::remote::set_iroh_identity_file(Some(dir.path().join("client.key")));
    let mut server = Server::start_iroh(&good, &dir.path().join("server.key"), None);
    let worker = InferWorker::start(|| {});
    load(&worker, server.device(&good), &prompt);

    let slices = 400;
    worker.send(InferRequest::MapView { job: 1, view: View::Axial, items: (0..slices).map(item).collect() });
    let mut mapped = std::collections::BTreeSet::new();
    let mut killed_at = None;
    let events = events_until(&worker, Duration::from_secs(120), |e| {
        match e {
            InferEvent::Map { key, .. } => {
                mapped.insert(key.slice_index);
            }
            InferEvent::Progress { .. } if killed_at.is_none() => {
                server.child.kill().expect("kill the server");
                killed_at = Some(Instant::now());
            }
            _ => {}
        }
        matches!(e, InferEvent::JobDone { job: 1, .. })
    });
    let killed_at = killed_at.unwrap_or_else(|| panic!("the job ended before the server could be killed: {events:?}"));
    assert!(matches!(events.last(), Some(InferEvent::JobDone { job: 1, cancelled: true })), "{:?}", events.last());
    let error = events.iter().find_map(|e| if let InferEvent::Error(m) = e { Some(m.clone()) } else { None }).expect("an error event");
    assert!(error.contains(&server.address), "the error names the server: {error}");
    eprintln!("{} of {slices} slices mapped; the error came {:.1} s after the kill: {error}", mapped.len(), killed_at.elapsed().as_secs_f64());
    assert!(!mapped.is_empty() && mapped.len() < slices, "{} of {slices} slices mapped before the kill", mapped.len());
    // QUIC notices a silent peer after CUE's 8 s idle timeout, not its default 30 s.
    assert!(killed_at.elapsed() < Duration::from_secs(20), "the kill was reported only after {:?}", killed_at.elapsed());
}
