//! `cue bench`: measured figures for the README, run in release builds.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Subcommand;

use cue_volume::process::memory_status_bytes;


#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Time loading volumes into canonical float32 (the viewer's load path) and report the
    /// peak memory. Defaults to the four BraTS sample sequences in ../shared/data.
    Load {
        /// Files to load (NIfTI files, DICOM files or folders: every series of a folder, the
        /// header scan included in the time); default: t1n, t1c, t2w, t2f of
        /// ../shared/data/cases/brats-sample.
        files: Vec<PathBuf>,
        /// Timed repetitions; the median is reported.
        #[arg(long, default_value_t = 5)]
        repeat: usize,
        /// Load one file after another on one thread only (no parallel run).
        #[arg(long)]
        sequential: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// CLIP: the vision tower's forward at each batch size (to image embeddings, CPU or wgpu),
    /// the text tower's forward, loading a full-size checkpoint from Burnpack, and peak memory.
    /// Without --model, a ViT-L/14-shaped model with random weights (the real key names) is
    /// built, saved as .bpk in a temporary folder and loaded back from it. Compare with
    /// `python3 scripts/bench_clip_torch.py` at the same thread count.
    Clip {
        /// A checkpoint (folder or .bpk); default: random weights of --preset.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Preset whose shapes to use without --model.
        #[arg(long, default_value = "ViT-L/14")]
        preset: String,
        /// Batch sizes to time, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,8")]
        batch: Vec<usize>,
        /// Timed repetitions per batch size (after one warm-up); the median is reported.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// auto, gpu or cpu.
        #[arg(long, default_value_t = cue_model::device::DeviceChoice::Cpu)]
        device: cue_model::device::DeviceChoice,
        /// The towers' number type: f32, f16, bf16 or i16 (LayerNorms stay f32; i16: CUE's integer product, CPU with AVX2).
        #[arg(long, default_value_t = cue_model::clip::Precision::F32)]
        precision: cue_model::clip::Precision,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The method at a preset's shapes (random weights): one slice map, and one training step
    /// with and without the frozen-feature cache.
    Method {
        /// Preset whose shapes to use.
        #[arg(long, default_value = "ViT-L/14")]
        preset: String,
        /// Slices per training step.
        #[arg(long, default_value_t = 8)]
        batch: usize,
        /// Timed repetitions (after one warm-up); the median is reported.
        #[arg(long, default_value_t = 2)]
        repeat: usize,
        /// Context tokens N.
        #[arg(long, default_value_t = 32)]
        context_tokens: usize,
        /// auto, gpu or cpu.
        #[arg(long, default_value_t = cue_model::device::DeviceChoice::Cpu)]
        device: cue_model::device::DeviceChoice,
        /// The towers' number type for the inference maps (a click's slice and the batch), as
        /// the viewer's Number type; training steps stay f32.
        #[arg(long, default_value_t = cue_model::clip::Precision::F32)]
        precision: cue_model::clip::Precision,
        /// Time the maps only, not the training steps (a whole view's batch, whose training
        /// step would need far more memory than its maps).
        #[arg(long)]
        maps_only: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The 3-D view's ray-march: a changed frame's time on the GPU (wgpu, lavapipe without a
    /// GPU) at a new angle, and its CPU twin's, on a real volume with a score overlay.
    Volume3d {
        /// A NIfTI volume; default: the BraTS sample's T1 in ../shared/data.
        file: Option<PathBuf>,
        /// Image side in pixels (the app renders at most 512).
        #[arg(long, default_value_t = 512)]
        size: u32,
        /// Frames to time.
        #[arg(long, default_value_t = 20)]
        frames: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Frame time of a layout (default Grid: every sequence x three orientations) while
    /// stepping one slice per frame, in a real window; prints one JSON line and closes. Under
    /// Xvfb use a screen of at least the window's size. The user's settings are not read or
    /// changed.
    #[cfg(feature = "gui")]
    Frames {
        /// Files or a study folder; default: ../shared/data/cases/brats-sample.
        paths: Vec<PathBuf>,
        /// Frames to time.
        #[arg(long, default_value_t = 200)]
        frames: usize,
        /// Window width in points.
        #[arg(long, default_value_t = 1920.0)]
        width: f32,
        /// Window height in points.
        #[arg(long, default_value_t = 1080.0)]
        height: f32,
        /// Layout: ortho, compare or grid.
        #[arg(long, default_value = "grid")]
        layout: String,
        /// With a CLIP model (zero-shot prompts): map the whole axial view while timing, and
        /// report how long the first batch took from request to map.
        #[arg(long)]
        map_with: Option<PathBuf>,
        /// With --map-with: map only the axial slice under the crosshair (what a click asks
        /// for), reporting its request-to-map time.
        #[arg(long, requires = "map_with")]
        one_slice: bool,
        /// With --map-with: step nothing and leave the window idle until this many maps have
        /// arrived; reports the mapping rate with the window open instead of frame times.
        #[arg(long, requires = "map_with")]
        hold_maps: Option<usize>,
        /// Turn the 3-D view (Ortho layout) a few degrees every frame instead of stepping
        /// slices: every frame ray-marches it again.
        #[arg(long)]
        turn_3d: bool,
    },
}

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Load { files, repeat, sequential, json } => load(files, repeat.max(1), sequential, json),
        BenchCommand::Method { preset, batch, repeat, context_tokens, device, precision, maps_only, json } => {
            let options = super::bench_method::MethodBench { batch: batch.max(1), repeat: repeat.max(1), context_tokens, device, precision, maps_only, json };
            super::bench_method::bench_method(&preset, options)
        }
        BenchCommand::Volume3d { file, size, frames, json } => super::bench_volume::bench_volume(file, size.clamp(16, 4096), frames, json),
        BenchCommand::Clip { model, preset, batch, repeat, device, precision, json } => {
            super::clip::bench(model, &preset, &batch, repeat.max(1), device, precision, json)
        }
        #[cfg(feature = "gui")]
        BenchCommand::Frames { paths, frames, width, height, layout, map_with, one_slice, hold_maps, turn_3d } => {
            use cue_app::state::Layout;
            let paths = if paths.is_empty() { vec![shared_data_dir().join("cases/brats-sample")] } else { paths };
            let layout = match layout.to_ascii_lowercase().as_str() {
                "ortho" => Layout::Ortho,
                "compare" => Layout::Compare,
                "grid" => Layout::Grid,
                other => anyhow::bail!("unknown layout '{other}' (ortho, compare or grid)"),
            };
            let scratch = std::env::temp_dir().join(format!("cue-bench-frames-{}", std::process::id()));
            let result = cue_app::run_window([width, height], Some(scratch.clone()), move |cc| {
                let mut app = cue_app::CueApp::new(cc, paths);
                app.settings.layout = layout;
                let mut bench = cue_app::FrameBench::new(frames);
                bench.turn_volume = turn_3d;
                if let Some(model) = map_with {
                    app.load_model(model, None, false);
                    bench.map_view = true;
                    bench.one_slice = one_slice;
                    bench.hold_until_maps = hold_maps;
                }
                app.bench = Some(bench);
                app
            });
            // Best effort: the folder holds only this run's throwaway settings.
            let _ = std::fs::remove_dir_all(&scratch);
            result
        }
    }
}

/// The shared test data folder beside the repository, or `$CUE_SHARED_DATA`.
pub fn shared_data_dir() -> PathBuf {
    std::env::var_os("CUE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
}

#[derive(Debug, serde::Serialize)]
struct LoadReport {
    files: Vec<String>,
    float32_bytes: u64,
    sequential_median_s: f64,
    parallel_median_s: Option<f64>,
    baseline_rss_bytes: u64,
    peak_rss_bytes: u64,
}

fn load(files: Vec<PathBuf>, repeat: usize, sequential_only: bool, json: bool) -> anyhow::Result<()> {
    let files = if files.is_empty() {
        let dir = shared_data_dir().join("cases/brats-sample");
        ["t1n", "t1c", "t2w", "t2f"].iter().map(|s| dir.join(format!("{s}.nii.gz"))).collect()
    } else {
        files
    };
    let baseline_rss_bytes = memory_status_bytes("VmRSS").unwrap_or(0);
    let mut float32_bytes = 0;
    let mut sequential = Vec::new();
    for _ in 0..repeat {
        let start = Instant::now();
        float32_bytes = 0;
        for source in sources_of(&files)? {
            let v = source.read_canonical()?;
            float32_bytes += (v.voxel_count() * 4) as u64;
        }
        sequential.push(start.elapsed().as_secs_f64());
    }
    // Peak of loading one volume at a time, before the parallel runs raise it.
    let peak_rss_bytes = memory_status_bytes("VmHWM").unwrap_or(0);
    let parallel = if sequential_only {
        None
    } else {
        let mut times = Vec::new();
        for _ in 0..repeat {
            let start = Instant::now();
            let sources = sources_of(&files)?;
            let volumes = cue_volume::study::load_parallel_sources(sources.iter().collect(), &|_, _| {})?;
            times.push(start.elapsed().as_secs_f64());
            drop(volumes);
        }
        Some(median(&mut times))
    };
    let report = LoadReport {
        files: files.iter().map(|f| f.display().to_string()).collect(),
        float32_bytes,
        sequential_median_s: median(&mut sequential),
        parallel_median_s: parallel,
        baseline_rss_bytes,
        peak_rss_bytes,
    };
    if json {
        println!("{}", serde_json::to_string(&report).context("cannot encode the report")?);
    } else {
        println!("files                 {}", report.files.len());
        println!("float32 size          {:.1} MiB", report.float32_bytes as f64 / 1048576.0);
        println!("sequential (median)   {:.3} s", report.sequential_median_s);
        if let Some(p) = report.parallel_median_s {
            println!("parallel (median)     {p:.3} s");
        }
        println!(
            "peak RSS, one at a time  {:.1} MiB (baseline {:.1} MiB)",
            report.peak_rss_bytes as f64 / 1048576.0,
            report.baseline_rss_bytes as f64 / 1048576.0
        );
    }
    Ok(())
}

/// What `files` name: NIfTI files as they are, every series of a DICOM file or folder
/// (scanned now, so that the header reading counts in the time).
fn sources_of(files: &[PathBuf]) -> anyhow::Result<Vec<cue_volume::ImageSource>> {
    let mut sources = Vec::new();
    for f in files {
        if cue_volume::dicom::is_dicom_path(f) {
            let folder = cue_volume::dicom::scan(f)?;
            sources.extend(folder.series.iter().filter(|s| s.geometry.is_ok()).map(|s| cue_volume::ImageSource::Series(s.clone())));
        } else {
            sources.push(cue_volume::ImageSource::File(f.clone()));
        }
    }
    Ok(sources)
}

pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
