//! `cue bench frames`: frame timing with the window open, stepping one slice per frame, or
//! the mapping rate with the window idle.

use eframe::egui;

use cue_volume::View;
use cue_workspace::maps;

use crate::{CueApp, gpu};

/// Frame timing for `cue bench frames`: steps one slice per frame and records frame intervals.
pub struct FrameBench {
    /// Frames still to time.
    pub frames_left: usize,
    /// Intervals between frames, in seconds.
    pub intervals_s: Vec<f64>,
    /// Volume bytes uploaded to the GPU when timing started.
    pub uploaded_at_start: u64,
    /// Map the whole axial view while timing (a model must be loading).
    pub map_view: bool,
    /// With `map_view`: only the cursor's axial slice.
    pub one_slice: bool,
    /// With `map_view`: step nothing and leave the window idle until this many maps have
    /// arrived, then report the mapping rate with the window open.
    pub hold_until_maps: Option<usize>,
    /// Turn the 3-D view (Ortho layout) by a few degrees every frame instead of stepping slices,
    /// so every frame ray-marches it again.
    pub turn_volume: bool,
    last: Option<std::time::Instant>,
    rss_at_start: Option<u64>,
}

impl FrameBench {
    /// Times `frames` frames once the study is on screen.
    pub fn new(frames: usize) -> Self {
        Self {
            frames_left: frames,
            intervals_s: Vec::new(),
            uploaded_at_start: 0,
            map_view: false,
            one_slice: false,
            hold_until_maps: None,
            turn_volume: false,
            last: None,
            rss_at_start: None,
        }
    }
}

impl CueApp {
    pub(crate) fn bench_frame(&mut self, ctx: &egui::Context) {
        let (Some(bench), Some(study)) = (&mut self.bench, &mut self.workspace.study) else { return };
        if !study.uploaded && self.render_state.is_some() {
            return;
        }
        let uploaded = self.render_state.as_ref().map_or(0, gpu::uploaded_bytes);
        if bench.map_view && bench.last.is_none() {
            match &self.workspace.maps.status {
                maps::ModelStatus::Ready { .. } => {
                    let sequences = study.visible_indices();
                    if bench.one_slice {
                        self.workspace.maps.map_slice(study, View::Axial, &sequences[..sequences.len().min(1)]);
                    } else {
                        self.workspace.maps.map_view(study, View::Axial, &sequences, &mut self.workspace.jobs);
                    }
                }
                maps::ModelStatus::Failed(e) => {
                    println!("{}", serde_json::json!({ "error": e }));
                    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                    self.bench = None;
                    return;
                }
                _ => {
                    ctx.request_repaint();
                    return;
                }
            }
        }
        let now = std::time::Instant::now();
        if let Some(target) = bench.hold_until_maps {
            // Frames come only from the worker's events and the progress display here.
            let start = *bench.last.get_or_insert(now);
            bench.intervals_s.push(0.0);
            let received = self.workspace.maps.received;
            // A whole-view job that ended (or was cancelled) early also ends the run.
            if received >= target || (!bench.one_slice && self.workspace.maps.job.is_none()) {
                let seconds = (now - start).as_secs_f64();
                println!(
                    "{}",
                    serde_json::json!({
                        "layout": format!("{:?}", self.workspace.settings.layout),
                        "maps_received": received,
                        "seconds": seconds,
                        "seconds_per_map": seconds / received.max(1) as f64,
                        "last_map_latency_ms": self.workspace.maps.last_latency_ms,
                        "frames_drawn": bench.intervals_s.len(),
                    })
                );
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                self.bench = None;
            }
            return;
        }
        match bench.last {
            None => {
                bench.uploaded_at_start = uploaded;
                bench.rss_at_start = cue_volume::process::memory_status_bytes("VmRSS");
            }
            Some(last) => {
                bench.intervals_s.push((now - last).as_secs_f64());
                bench.frames_left = bench.frames_left.saturating_sub(1);
            }
        }
        bench.last = Some(now);
        if bench.frames_left == 0 {
            let mut sorted = bench.intervals_s.clone();
            sorted.sort_by(f64::total_cmp);
            let median = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
            let p95 = sorted.get(sorted.len() * 95 / 100).copied().unwrap_or(f64::NAN);
            let report = serde_json::json!({
                "frames": sorted.len(),
                "layout": format!("{:?}", self.workspace.settings.layout),
                "median_frame_ms": median * 1e3,
                "p95_frame_ms": p95 * 1e3,
                "volume_bytes_uploaded_while_stepping": uploaded - bench.uploaded_at_start,
                "rss_growth_bytes": cue_volume::process::memory_status_bytes("VmRSS").zip(bench.rss_at_start).map(|(a, b)| a as i64 - b as i64),
                "adapter": self.render_state.as_ref().map(|rs| rs.adapter.get_info().name),
                "mapping_while_timing": bench.map_view,
                "turning_3d_view": bench.turn_volume,
                "volume_images_rendered": self.render_state.as_ref().map(gpu::volume_images_rendered),
                "maps_received": self.workspace.maps.received,
                "mapping_job_left": self.workspace.maps.job.map(|j| j.total - j.done),
                "last_map_latency_ms": self.workspace.maps.last_latency_ms,
            });
            println!("{report}");
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            self.bench = None;
            return;
        }
        if bench.turn_volume {
            study.orbit = study.orbit.turned(3.0, 0.0);
        } else {
            let axis = View::Axial.normal_axis();
            let n = study.study.shape()[axis];
            study.cursor[axis] = (study.cursor[axis] + 1) % n;
        }
        ctx.request_repaint();
    }
}
