//! `cue reproduce`: the seed's protocol in one command (see `cue_method::reproduce`).

use std::path::PathBuf;

use clap::Args;

use cue_method::reproduce::{ReproduceRequest, reproduce};
use cue_method::train::trainer::TrainConfig;
use cue_model::device::DeviceChoice;

/// Options of `cue reproduce`.
#[derive(Debug, Args)]
pub struct ReproduceArgs {
    /// CLIP folder, .bpk, or hub id (openai/clip-vit-large-patch14 for the paper's figures).
    #[arg(long)]
    model: PathBuf,
    /// Dataset: a folder of case folders, BraTS 2021 (`BraTS2021_00000_t1.nii.gz`, ...) or 2023
    /// (`BraTS-GLI-00000-000-t1n.nii.gz`, ...) names.
    #[arg(long)]
    data: PathBuf,
    /// Output folder: split.json, seed-S/, results.json, results.md, roc-*.png. Running the
    /// same command again continues where a killed run stopped.
    #[arg(long)]
    out: PathBuf,
    /// Training seeds.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    seeds: Vec<u64>,
    /// Training epochs (the epoch is chosen on validation).
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// At most this many training slices per case (evenly spaced; 0: all).
    #[arg(long, default_value_t = 0)]
    max_slices: usize,
    /// At most this many evaluation slices per case, sequence and view.
    #[arg(long)]
    eval_max_slices: Option<usize>,
    /// Context tokens N (the paper: 32).
    #[arg(long, default_value_t = 32)]
    context_tokens: usize,
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Seed of the patient split.
    #[arg(long, default_value_t = 2024)]
    split_seed: u64,
    #[arg(long, default_value_t = 0.15)]
    validation_fraction: f64,
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    /// Skip the Gaussian-smoothing ablation.
    #[arg(long)]
    no_ablation: bool,
    /// Skip the baselines (zero-shot prompts, intensity z-score).
    #[arg(long)]
    no_baselines: bool,
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

/// Runs `cue reproduce`.
pub fn reproduce_command(args: ReproduceArgs) -> anyhow::Result<()> {
    let train = TrainConfig {
        epochs: args.epochs,
        max_slices: args.max_slices,
        context_tokens: args.context_tokens,
        batch_size: args.batch_size,
        device: args.device.clone(),
        ..TrainConfig::default()
    };
    let request = ReproduceRequest {
        model: args.model,
        data: args.data,
        out: args.out,
        seeds: args.seeds,
        train,
        eval_max_slices: args.eval_max_slices,
        split_seed: args.split_seed,
        validation_fraction: args.validation_fraction,
        test_fraction: args.test_fraction,
        ablation: !args.no_ablation,
        baselines: !args.no_baselines,
        device: args.device,
    };
    reproduce(&request, &mut |line| eprintln!("{line}"))?;
    println!("{}", request.out.join("results.md").display());
    Ok(())
}
