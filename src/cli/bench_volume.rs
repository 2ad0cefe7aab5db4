//! `cue bench volume3d`: the 3-D view's ray-march, timed on the GPU (wgpu; lavapipe where
//! there is no GPU) and its CPU twin, on a real volume.

use std::path::PathBuf;
use std::time::Instant;

use cue_render::{Colormap, Orbit, ScoreScale, SliceRenderer, VolumeDraw, VolumeOverlay, headless_device, render_mip_cpu};
use cue_volume::{Volume, WindowLevel};

#[derive(Debug, serde::Serialize)]
struct VolumeBenchReport {
    file: String,
    shape: [usize; 3],
    adapter: String,
    image: [u32; 2],
    frames: usize,
    /// Median time of one changed frame: the ray-march of a new angle, submitted and waited for
    /// (with the image read back, which a window does not need).
    gpu_ms_per_changed_frame: f64,
    gpu_ms_min: f64,
    /// The CPU twin, one frame (the fallback's size is smaller).
    cpu_ms_per_frame: f64,
}

/// Runs the benchmark.
pub fn bench_volume(file: Option<PathBuf>, size: u32, frames: usize, json: bool) -> anyhow::Result<()> {
    let file = file.unwrap_or_else(|| super::bench::shared_data_dir().join("cases/brats-sample/t1n.nii.gz"));
    let volume = Volume::read_canonical(&file, 0)?;
    let (device, queue, adapter) = headless_device().map_err(anyhow::Error::msg)?;
    let mut renderer = SliceRenderer::new(&device, &queue, wgpu::TextureFormat::Rgba8Unorm);
    renderer.upload(&device, &queue, 1, volume.shape, &volume.data);
    // A score volume of the same size, so the overlay's texture reads are paid for too.
    let scores: Vec<f32> = volume.data.iter().map(|v| v / 1000.0).collect();
    renderer.upload(&device, &queue, 2, volume.shape, &scores);
    let window = WindowLevel::auto(&volume.data);
    let scale = ScoreScale { threshold: 0.5, low: 0.0, high: 1.0, colormap: Colormap::Inferno };
    let draw_at = |yaw: f32, size: u32| VolumeDraw {
        volume: 1,
        scores: Some(2),
        labels: None,
        shape: volume.shape,
        voxel_size_mm: volume.voxel_size_mm(),
        orbit: Orbit::default().turned(yaw, 15.0),
        window,
        overlay: VolumeOverlay::Scores,
        scale: Some(scale),
        size: [size, size],
    };
    // Warm-up: pipeline and first-use costs.
    renderer.render_volume_to_vec(&device, &queue, &draw_at(0.0, size)).ok_or_else(|| anyhow::anyhow!("the 3-D view did not render"))?;
    let mut times = Vec::new();
    for n in 0..frames.max(1) {
        let started = Instant::now();
        renderer.render_volume_to_vec(&device, &queue, &draw_at(7.0 * (n + 1) as f32, size)).ok_or_else(|| anyhow::anyhow!("the 3-D view did not render"))?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    if std::env::var_os("CUE_BENCH_PROBE").is_some() {
        for (what, overlay, scores) in [("brain only", VolumeOverlay::None, None), ("scores", VolumeOverlay::Scores, Some(2))] {
            let mut t = Vec::new();
            for n in 0..5 {
                let mut d = draw_at(3.0 * n as f32, size);
                d.overlay = overlay;
                d.scores = scores;
                let started = Instant::now();
                renderer.render_volume_to_vec(&device, &queue, &d);
                t.push(started.elapsed().as_secs_f64() * 1e3);
            }
            eprintln!("{what}: {t:?}");
        }
        let started = Instant::now();
        let d = draw_at(0.0, size);
        renderer.render_volume_to_vec(&device, &queue, &d);
        eprintln!("same angle again: {:.1} ms", started.elapsed().as_secs_f64() * 1e3);
    }
    let cpu_size = 128;
    let draw = draw_at(30.0, cpu_size);
    let started = Instant::now();
    let image = render_mip_cpu(&draw.rays(), cpu_size, cpu_size, volume.shape, &volume.data, window, VolumeOverlay::Scores, Some((&scores, scale)), None);
    let cpu_ms = started.elapsed().as_secs_f64() * 1e3;
    std::hint::black_box(image);
    let report = VolumeBenchReport {
        file: file.display().to_string(),
        shape: volume.shape,
        adapter,
        image: [size, size],
        frames: times.len(),
        gpu_ms_per_changed_frame: times[times.len() / 2],
        gpu_ms_min: times[0],
        cpu_ms_per_frame: cpu_ms,
    };
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} {:?} on {}: {}x{} changed frame {:.1} ms median ({:.1} min) over {} frames; CPU twin {cpu_size}x{cpu_size} {:.1} ms",
            report.file, report.shape, report.adapter, size, size, report.gpu_ms_per_changed_frame, report.gpu_ms_min, report.frames, report.cpu_ms_per_frame
        );
    }
    Ok(())
}
