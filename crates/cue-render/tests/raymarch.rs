//! The ray-march shader against its CPU twin (`render_mip_cpu`) on a real wgpu device
//! (lavapipe in CI): same rays, same composite, for the brain alone, scores and findings, from
//! several angles.

use cue_render::{Colormap, Orbit, ScoreScale, SliceRenderer, VolumeDraw, VolumeOverlay, headless_device, render_mip_cpu};
use cue_volume::WindowLevel;

fn device() -> Option<(wgpu::Device, wgpu::Queue, String)> {
    match headless_device() {
        Ok(d) => Some(d),
        Err(e) if std::env::var_os("CUE_REQUIRE_SHARED").is_some_and(|v| v == "1") => panic!("CI needs a wgpu adapter (lavapipe): {e}"),
        Err(e) => {
            eprintln!("SKIP: {e}");
            None
        }
    }
}

#[test]
fn the_shader_draws_what_the_cpu_reference_draws() {
    let Some((device, queue, adapter)) = device() else { return };
    eprintln!("adapter: {adapter}");
    // An anisotropic, non-cubic grid: a bright shell, a blob of scores, two findings.
    let shape = [36usize, 30, 22];
    let voxel_size_mm = [1.0, 1.2, 2.0];
    let count = shape.iter().product::<usize>();
    let (mut intensities, mut scores, mut labels) = (vec![0f32; count], vec![f32::NEG_INFINITY; count], vec![0u32; count]);
    for k in 0..shape[2] {
        for j in 0..shape[1] {
            for i in 0..shape[0] {
                let n = i + shape[0] * (j + shape[1] * k);
                let d = |c: f32, p: usize, n: usize| (p as f32 + 0.5) / n as f32 - c;
                let r = (d(0.5, i, shape[0]).powi(2) + d(0.5, j, shape[1]).powi(2) + d(0.5, k, shape[2]).powi(2)).sqrt();
                intensities[n] = if r < 0.45 { 100.0 * (1.0 - r) + (i % 5) as f32 * 3.0 } else { 0.0 };
                let blob = (d(0.35, i, shape[0]).powi(2) + d(0.6, j, shape[1]).powi(2) + d(0.5, k, shape[2]).powi(2)).sqrt();
                if r < 0.45 {
                    scores[n] = 1.0 - 3.0 * blob;
                }
                if blob < 0.12 {
                    labels[n] = 1;
                } else if (i, j) == (25, 10) && k > 5 {
                    labels[n] = 2;
                }
            }
        }
    }
    let mut renderer = SliceRenderer::new(&device, &queue, wgpu::TextureFormat::Rgba8Unorm);
    renderer.upload(&device, &queue, 1, shape, &intensities);
    renderer.upload(&device, &queue, 2, shape, &scores);
    renderer.upload(&device, &queue, 3, shape, &labels.iter().map(|&l| l as f32).collect::<Vec<_>>());
    let window = WindowLevel::from_range(10.0, 110.0);
    let scale = ScoreScale { threshold: 0.4, low: 0.0, high: 1.0, colormap: Colormap::Inferno };
    for (orbit, overlay) in [
        (Orbit::default(), VolumeOverlay::None),
        (Orbit::default().turned(35.0, 20.0), VolumeOverlay::Scores),
        (Orbit::default().turned(-120.0, -40.0).zoomed(1.7), VolumeOverlay::Findings),
        (Orbit::default().turned(90.0, 0.0), VolumeOverlay::Scores),
    ] {
        let draw = VolumeDraw { volume: 1, scores: Some(2), labels: Some(3), shape, voxel_size_mm, orbit, window, overlay, scale: Some(scale), size: [96, 72] };
        let gpu = renderer.render_volume_to_vec(&device, &queue, &draw).expect("render");
        let cpu = render_mip_cpu(&draw.rays(), 96, 72, shape, &intensities, window, overlay, Some((&scores, scale)), Some(&labels));
        assert_eq!(gpu.len(), cpu.len());
        let pixels = gpu.len() / 4;
        let off = (0..pixels).filter(|&p| (0..3).any(|c| gpu[4 * p + c].abs_diff(cpu[4 * p + c]) > 3)).count();
        let lit = (0..pixels).filter(|&p| cpu[4 * p] > 20).count();
        let coloured = (0..pixels).filter(|&p| cpu[4 * p] != cpu[4 * p + 2]).count();
        eprintln!("{orbit:?} {overlay:?}: {off} of {pixels} pixels differ by more than 3 levels; {lit} lit, {coloured} coloured");
        assert!(lit > pixels / 10, "the volume must show");
        if overlay != VolumeOverlay::None {
            assert!(coloured > 20, "the overlay must show");
        }
        // Rounding at voxel borders may put a ray's sample in the next voxel on one side only.
        assert!(off * 100 <= pixels, "{off} of {pixels} pixels differ between the shader and the CPU reference");
    }
    // An unchanged view is not rendered again.
    let draw = VolumeDraw { volume: 1, scores: None, labels: None, shape, voxel_size_mm, orbit: Orbit::default(), window, overlay: VolumeOverlay::None, scale: None, size: [96, 72] };
    renderer.prepare_volume(&device, &queue, &draw);
    let mut encoder = device.create_command_encoder(&Default::default());
    renderer.render_volume_image(&mut encoder);
    let before = renderer.volume_images_rendered();
    renderer.prepare_volume(&device, &queue, &draw);
    renderer.render_volume_image(&mut encoder);
    assert_eq!(renderer.volume_images_rendered(), before);
    queue.submit([encoder.finish()]);
}
