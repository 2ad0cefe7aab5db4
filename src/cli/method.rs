//! `cue train`, `cue eval`, `cue map`: the method from the command line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use clap::Args;

use cue_method::eval::run::{EvalRequest, METRICS, Scorer, best_dice_thresholds, evaluate};
use cue_method::train::split::Split;
use cue_model::device::DeviceChoice;
use cue_method::train::trainer::{TrainConfig, TrainEvent, TrainOutcome, TrainRequest, train};
use cue_volume::{SequenceKind, View};

/// Options of `cue train` (each overrides the config file).
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// CLIP folder (config.json + model.safetensors) or .bpk.
    #[arg(long)]
    model: PathBuf,
    /// Dataset: a folder of case folders in the BraTS layout.
    #[arg(long)]
    data: PathBuf,
    /// The prompt file to write (Burnpack, with a .json manifest beside it).
    #[arg(long)]
    out: PathBuf,
    /// A JSON or TOML file with any TrainConfig fields.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Sequences, comma-separated (t1, t1ce, t2, flair).
    #[arg(long, value_delimiter = ',')]
    sequence: Option<Vec<String>>,
    /// Views, comma-separated (axial, sagittal, coronal).
    #[arg(long, value_delimiter = ',')]
    view: Option<Vec<String>>,
    #[arg(long)]
    epochs: Option<usize>,
    /// At most this many slices per case, sequence and view (evenly spaced).
    #[arg(long)]
    max_slices: Option<usize>,
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long)]
    learning_rate: Option<f64>,
    /// Vision blocks, comma-separated (default: ends of the tower's quarters).
    #[arg(long, value_delimiter = ',')]
    layers: Option<Vec<usize>>,
    /// Context tokens N of P_independent and P_dependent.
    #[arg(long)]
    context_tokens: Option<usize>,
    /// Separate contexts for the normal and anomalous prompts.
    #[arg(long)]
    separate_context: bool,
    #[arg(long)]
    temperature: Option<f32>,
    /// Focal loss gamma.
    #[arg(long)]
    focal_gamma: Option<f32>,
    /// Weight of the image-level BCE term.
    #[arg(long)]
    image_loss_weight: Option<f32>,
    /// Least fraction of non-zero pixels for a slice to be used.
    #[arg(long)]
    min_brain_fraction: Option<f32>,
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long)]
    validation_fraction: Option<f64>,
    /// Paste synthetic lesions into normal slices (folders of normal volumes).
    #[arg(long)]
    synthetic: bool,
    /// Feature-cache bound in MiB.
    #[arg(long)]
    cache_mb: Option<usize>,
    /// Continue from --out's last checkpoint (OUT.last.bpk) when it exists.
    #[arg(long)]
    resume: bool,
    /// A split file: train on its `train` part, choose the epoch on its `validation` part.
    #[arg(long)]
    split: Option<PathBuf>,
    /// auto, gpu or cpu.
    #[arg(long)]
    device: Option<DeviceChoice>,
    /// Share each batch over several devices, comma-separated (e.g. cpu,gpu or
    /// gpu,remote:HOST:PORT); the first is the primary, where the optimiser runs.
    #[arg(long, value_delimiter = ',', conflicts_with = "device")]
    devices: Option<Vec<DeviceChoice>>,
}

/// A dataset is a folder: checked before a model is loaded, so that a mistyped path is the
/// error a user sees, at once.
fn dataset_folder(path: &std::path::Path) -> anyhow::Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => anyhow::bail!("--data must be a folder of cases, not a file: {}", path.display()),
        Err(e) => anyhow::bail!("cannot open the dataset ({e}): {}", path.display()),
    }
}

/// Runs `cue train`.
pub fn train_command(args: TrainArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => TrainConfig::from_file(path)?,
        None => TrainConfig::default(),
    };
    macro_rules! set {
        ($field:ident) => {
            if let Some(v) = args.$field.clone() {
                config.$field = v;
            }
        };
    }
    set!(epochs);
    set!(max_slices);
    set!(batch_size);
    set!(learning_rate);
    set!(layers);
    set!(context_tokens);
    set!(temperature);
    set!(focal_gamma);
    set!(image_loss_weight);
    set!(min_brain_fraction);
    set!(seed);
    set!(validation_fraction);
    set!(cache_mb);
    set!(device);
    set!(devices);
    if let Some(v) = args.sequence.clone() {
        config.sequences = v;
    }
    if let Some(v) = args.view.clone() {
        config.views = v;
    }
    if args.separate_context {
        config.shared_context = false;
    }
    if args.synthetic {
        config.synthetic = true;
    }
    dataset_folder(&args.data)?;
    let split = args.split.as_deref().map(Split::read).transpose()?;
    let request = TrainRequest { config, model: args.model, data: args.data, out: args.out, resume: args.resume, split };
    let (tx, rx) = std::sync::mpsc::channel();
    let printer = std::thread::spawn(move || {
        for event in rx {
            match event {
                TrainEvent::Preparing { stage, done, total } => eprintln!("{stage} {done}/{total}"),
                TrainEvent::Started { train_slices, validation_slices, steps_per_epoch, first_epoch, devices } => eprintln!(
                    "training on {train_slices} slices, validating on {validation_slices}, {steps_per_epoch} steps per epoch, from epoch {}, on {}",
                    first_epoch + 1,
                    devices.join(" + ")
                ),
                TrainEvent::Step { epoch, step, steps, loss, eta_s, step_s, device_s, .. } => {
                    let shares: Vec<String> = device_s.iter().map(|s| format!("{s:.3}")).collect();
                    eprintln!(
                        "epoch {} step {}/{steps} loss {loss:.4} step {step_s:.3} s (devices {} s) eta {eta_s:.0} s",
                        epoch + 1,
                        step + 1,
                        shares.join(" / ")
                    )
                }
                TrainEvent::Epoch { epoch, loss, pixel_auroc, image_auroc, checkpoint } => println!(
                    "epoch {} loss {loss:.4} validation pixel-AUROC {} image-AUROC {} -> {}",
                    epoch + 1,
                    pixel_auroc.map_or("-".into(), |v| format!("{:.2}", 100.0 * v)),
                    image_auroc.map_or("-".into(), |v| format!("{:.2}", 100.0 * v)),
                    checkpoint.display()
                ),
            }
        }
    });
    let outcome = train(&request, &tx, &AtomicBool::new(false));
    drop(tx);
    let _ = printer.join();
    match outcome? {
        TrainOutcome::Finished { path } => println!("{}", path.display()),
        TrainOutcome::Cancelled { epochs_done } => println!("cancelled after {epochs_done} epochs"),
    }
    Ok(())
}

/// Options of `cue eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// CLIP folder or .bpk (not needed with `--baseline zscore`).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Trained prompt (.bpk); without it, zero-shot text prompts.
    #[arg(long)]
    prompt: Option<PathBuf>,
    /// Dataset: a folder of case folders (BraTS layout); all of them unless `--split` names some.
    #[arg(long)]
    data: PathBuf,
    /// A split file (`cue reproduce` writes one): evaluate only its `--part`.
    #[arg(long)]
    split: Option<PathBuf>,
    /// The part of `--split` to evaluate: test, validation or train.
    #[arg(long, default_value = "test", value_parser = ["train", "validation", "test"])]
    part: String,
    #[arg(long, value_delimiter = ',', default_value = "t1,t1ce,t2,flair")]
    sequences: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "axial,sagittal,coronal")]
    views: Vec<String>,
    /// At most this many slices per case, sequence and view.
    #[arg(long)]
    max_slices: Option<usize>,
    /// Slices per forward pass.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Dice threshold for every cell (choose it on validation data).
    #[arg(long)]
    threshold: Option<f32>,
    /// Per-cell Dice thresholds: the `best_dice_threshold`s of a `cue eval --json` output on
    /// the validation part.
    #[arg(long, conflicts_with = "threshold")]
    thresholds_from: Option<PathBuf>,
    /// Gaussian smoothing of the maps at the model input, sigma in pixels (0: none; the CLIP
    /// anomaly papers use 4 at 224).
    #[arg(long, default_value_t = 0.0)]
    smooth_sigma: f32,
    /// Score with a baseline instead of the model: zscore (intensity z-score in the brain).
    #[arg(long, value_parser = ["zscore"])]
    baseline: Option<String>,
    /// Also write the table as CSV here.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// The number type of the frozen towers: f32, f16, bf16 or i16 (LayerNorms stay f32; i16: CUE's integer product, CPU with AVX2).
    #[arg(long, default_value_t = cue_model::clip::Precision::F32)]
    precision: cue_model::clip::Precision,
}

/// Per-cell thresholds from a validation run's JSON (`thresholds."t1/axial".best_dice_threshold`).
pub fn thresholds_from(path: &Path) -> anyhow::Result<BTreeMap<(String, String), f32>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("not a cue eval --json output: {}", path.display()))?;
    best_dice_thresholds(&json).map_err(|e| anyhow::anyhow!("{e}: {}", path.display()))
}

/// Runs `cue eval`.
pub fn eval_command(args: EvalArgs) -> anyhow::Result<()> {
    let sequences = args
        .sequences
        .iter()
        .map(|s| SequenceKind::parse_known(s).with_context(|| format!("unknown sequence '{s}'")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let views = args.views.iter().map(|v| v.parse::<View>().map_err(anyhow::Error::msg)).collect::<anyhow::Result<Vec<_>>>()?;
    let split = args.split.as_deref().map(Split::read).transpose()?;
    let scorer = if args.baseline.is_some() { Scorer::IntensityZScore } else { Scorer::Prompts };
    anyhow::ensure!(scorer == Scorer::IntensityZScore || args.model.is_some(), "--model is required (or --baseline zscore)");
    dataset_folder(&args.data)?;
    let mut thresholds = match &args.thresholds_from {
        Some(path) => thresholds_from(path)?,
        None => BTreeMap::new(),
    };
    if let Some(t) = args.threshold {
        for s in &sequences {
            for v in &views {
                thresholds.insert((s.label().to_lowercase(), v.name().to_string()), t);
            }
        }
    }
    let request = EvalRequest {
        prompt: args.prompt,
        sequences,
        views,
        max_slices: args.max_slices,
        batch_size: args.batch_size,
        device: args.device,
        precision: args.precision,
        cases: split.as_ref().and_then(|s| s.part(&args.part)).map(<[String]>::to_vec),
        thresholds,
        smooth_sigma_px: args.smooth_sigma,
        scorer,
        ..EvalRequest::new(args.model.unwrap_or_default(), args.data)
    };
    let mut report = evaluate(&request, |p| eprintln!("case {}/{} {}", p.done, p.total, p.case), &AtomicBool::new(false))?;
    report.split = split.as_ref().map(Split::to_json);
    if let Some(csv) = &args.csv {
        write_atomic(csv, report.to_csv().as_bytes())?;
    }
    if args.json {
        println!("{}", report.to_json());
    } else {
        println!("backbone {}  prompt {}  cases {}  precision {}", report.backbone, report.prompt, report.cases, report.precision);
        for metric in METRICS {
            println!("\n{}", report.table(metric));
        }
    }
    Ok(())
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    cue_volume::write_file_atomically(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

