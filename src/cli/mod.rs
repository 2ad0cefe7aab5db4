//! The command line: `cue` opens the app; subcommands inspect and convert files.

mod bench;
mod bench_method;
mod bench_volume;
mod clip;
mod findings;
mod info;
mod map;
mod method;
mod reproduce;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// CUE: multi-sequence MRI viewer with CLIP-guided anomaly maps.
///
/// Without a subcommand, opens the desktop app on the bundled synthetic demo case. Logging goes to stderr, filtered by RUST_LOG
/// (for example RUST_LOG=cue=debug).
#[derive(Debug, Parser)]
#[command(name = "cue", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The token of the server a `--device remote:HOST:PORT` runs on (a file holding it, as
    /// given to `cue serve --token-file`).
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
    /// The key file of this process's Iroh identity (a client's for `--device
    /// remote:iroh:...`, the server's for `cue serve --transport iroh`); default
    /// ~/.config/cue/iroh-client.key or iroh-server.key, created on first use.
    #[arg(long, global = true)]
    iroh_identity: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Open files or a study folder in the desktop app.
    ///
    /// Sequences are recognised from BraTS 2021/2023 and bare names (t1, t1ce/t1c, t2/t2w,
    /// flair/t2f, seg); name one yourself as KIND=FILE (e.g. flair=scan_004.nii.gz). A sequence
    /// on another grid is resampled into the first one's.
    View {
        /// NIfTI files (optionally KIND=FILE), or a folder holding one case.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// CLIP backbone for anomaly maps: a transformers folder or a .bpk.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Trained prompt (.bpk); default: the newest compatible one under ./weights, else
        /// zero-shot text prompts.
        #[arg(long, requires = "model")]
        prompt: Option<PathBuf>,
    },
    /// Print a NIfTI file's header: format, shape, datatype, voxel size, affine, axis codes;
    /// or, for a DICOM file or folder, its series as assembled (number, description,
    /// recognised sequence, shape, RAS affine, voxel size).
    ///
    /// Reads the whole file to check its data are complete, so a truncated file fails here.
    Info {
        /// A .nii, .nii.gz, .hdr or .img file, a DICOM file, or a folder of DICOM files.
        file: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write a volume re-oriented to closest-canonical RAS+ (axis permutation and flips, no
    /// resampling), as float32 with scaling applied and the updated affine (sform and qform
    /// code 1); colour stays colour (RGB24 and RGBA32 NIfTI, RGB and YBR DICOM as RGB24, as
    /// dcm2niix writes them). Writes .nii.gz when OUT ends in .gz.
    Canonical {
        /// The input: a NIfTI file, a DICOM file, or a folder of DICOM files.
        input: PathBuf,
        /// The output file.
        output: PathBuf,
        /// Which 3-D volume of a 4-D file (0 is the first).
        #[arg(long, default_value_t = 0)]
        volume: usize,
        /// The DICOM volume to write, when the folder holds several: its SeriesNumber (7), a
        /// part of a numbered series (7:2, as `cue info` lists them) or a position (#3).
        #[arg(long)]
        series: Option<cue_volume::dicom::SeriesChoice>,
    },
    /// Generate synthetic four-sequence studies with a glioma from the MNI152 2009a template
    /// (BraTS 2023 layout: CASE-t1n, -t1c, -t2w, -t2f, -seg .nii.gz).
    Phantom {
        /// Output folder; with --cases, one sub-folder per case.
        #[arg(long)]
        out: PathBuf,
        /// Seed of the first case (case i uses seed + i).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Number of cases.
        #[arg(long, default_value_t = 1)]
        cases: usize,
        /// Block size of downsampling (1 keeps the template's 1 mm grid).
        #[arg(long, default_value_t = 1)]
        downsample: usize,
        /// Folder of the template (scripts/fetch_mni_template.sh fetches it).
        #[arg(long)]
        template: Option<PathBuf>,
    },
    /// CLIP weights in the Hugging Face cache ($HF_HUB_CACHE, $HF_HOME/hub or
    /// ~/.cache/huggingface/hub).
    Weights {
        #[command(subcommand)]
        what: WeightsCommand,
    },
    /// Encode an image and/or texts with a CLIP checkpoint and print the embeddings
    /// (`image_embeds`, `text_embeds`, projected `patch_embeds` of chosen blocks).
    ClipEmbed(clip::EmbedArgs),
    /// Fit the learnable prompt and image adaptor on labelled volumes (CLIP frozen).
    Train(method::TrainArgs),
    /// Pixel- and image-AUROC, AUPRO, AP and Dice per sequence x view on a dataset folder.
    Eval(method::EvalArgs),
    /// Anomaly map of a slice (PNG overlay or NIfTI) or of a whole view (NIfTI on the
    /// volume's grid).
    Map(map::MapArgs),
    /// Findings of a score volume: its 26-connected regions at or above a threshold, with
    /// voxels, volume in mL, max and mean score, centroid (voxels and RAS mm) and bounding box.
    Findings(findings::FindingsArgs),
    /// The seed's protocol in one run: patient split, train on T1 axial (3 seeds), thresholds
    /// on validation, test on 4 sequences x 3 views, baselines, results.json/.md, ROC plots.
    Reproduce(reproduce::ReproduceArgs),
    /// Host this machine's GPU (or CPU) for other CUE processes: burn's remote backend, for
    /// clients that pass `--device remote:HOST:PORT --token-file F` (WebSocket) or
    /// `--device remote:iroh:ID@HOST:PORT --token-file F` (`--transport iroh`).
    ///
    /// Listens on localhost unless --listen says otherwise. Over WebSocket the token travels
    /// unencrypted, so reach a server on another machine through an SSH tunnel or use Iroh
    /// (encrypted, relays off, optionally an allow-list of client ids; README).
    Serve(serve::ServeArgs),
    /// Print this machine's Iroh endpoint id, the line a server's --allow-clients file takes
    /// (the client key, or with --server the server's; created on first use).
    IrohId {
        /// The server's id instead of the client's.
        #[arg(long)]
        server: bool,
    },
    /// Benchmarks (release builds only give meaningful figures).
    Bench {
        #[command(subcommand)]
        what: bench::BenchCommand,
    },
}

#[derive(Debug, Subcommand)]
enum WeightsCommand {
    /// List what the cache holds of a model and check it.
    Status {
        /// Repository (openai/clip-vit-large-patch14) or preset (ViT-B/32, ViT-B/16, ViT-L/14,
        /// ViT-L/14-336).
        #[arg(long, default_value = cue_model::weights::DEFAULT_MODEL)]
        model: String,
    },
    /// Download config.json, model.safetensors and tokenizer.json with progress, then check
    /// them; offline (HF_HUB_OFFLINE=1) or failed downloads say which file to place where.
    Fetch {
        /// Repository or preset, as for `status`.
        #[arg(long, default_value = cue_model::weights::DEFAULT_MODEL)]
        model: String,
        /// Do not convert to Burnpack after downloading.
        #[arg(long)]
        no_convert: bool,
    },
    /// Convert a checkpoint (transformers folder or OpenAI-layout safetensors with a
    /// config.json beside it) to Burnpack for fast memory-mapped loading; the source's SHA-256
    /// and config travel in the file.
    Convert {
        /// The checkpoint folder or file.
        #[arg(long)]
        model: PathBuf,
        /// The .bpk to write (atomically).
        #[arg(long)]
        out: PathBuf,
        /// Store f16 (half the size; outputs differ from f32 by about 1e-3).
        #[arg(long)]
        half: bool,
    },
}

fn weights(command: WeightsCommand) -> anyhow::Result<()> {
    use cue_model::clip::ClipConfig;
    use cue_model::weights::{check_folder, fetch, hub_cache_dir, status};
    let repo = |model: &str| ClipConfig::preset_repository(model).unwrap_or(model).to_owned();
    let cache = hub_cache_dir();
    match command {
        WeightsCommand::Status { model } => {
            let s = status(&cache, &repo(&model));
            println!("cache      {}", cache.display());
            println!("model      {}", s.repo);
            match &s.snapshot {
                Some(snapshot) => println!("snapshot   {}", snapshot.display()),
                None => println!("snapshot   none"),
            }
            println!("present    {}", if s.present.is_empty() { "-".into() } else { s.present.join(", ") });
            println!("missing    {}", if s.missing.is_empty() { "-".into() } else { s.missing.join(", ") });
            if let Some(snapshot) = s.snapshot.filter(|_| s.missing.is_empty()) {
                let config = check_folder(&snapshot)?;
                println!(
                    "checked    vision {}x{} layers, patch {}, text {} layers, projection {}",
                    config.vision.hidden_size, config.vision.num_hidden_layers, config.vision.patch_size,
                    config.text.num_hidden_layers, config.projection_dim
                );
            }
            Ok(())
        }
        WeightsCommand::Fetch { model, no_convert } => {
            let offline = std::env::var_os("HF_HUB_OFFLINE").is_some_and(|v| v != "0" && !v.is_empty());
            let folder = fetch(&cache, &repo(&model), offline)?;
            println!("{}", folder.display());
            if !no_convert {
                clip::convert(&folder, &folder.join(cue_model::weights::BURNPACK_NAME), false)?;
            }
            Ok(())
        }
        WeightsCommand::Convert { model, out, half } => clip::convert(&model, &out, half),
    }
}

/// Parses the command line and runs it; errors print as one line on stderr.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    crate::process::keep_freed_memory_for_reuse();
    if !matches!(cli.command, None | Some(Command::View { .. }) | Some(Command::Serve(_))) {
        crate::process::end_quietly_when_output_closes();
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and those of its causes that its message does not already include, on one line.
fn one_line(error: &anyhow::Error) -> String {
    let mut message = error.to_string();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
    }
    message.replace('\n', " ")
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

fn run(cli: Cli) -> anyhow::Result<()> {
    cue_model::device::set_default_token_file(cli.token_file.clone());
    cue_model::remote::set_iroh_identity_file(cli.iroh_identity.clone());
    match cli.command {
        #[cfg(feature = "gui")]
        None => cue_app::run_demo(),
        #[cfg(feature = "gui")]
        Some(Command::View { paths, model, prompt }) => {
            cue_app::run(paths.into_iter().map(|p| named_sequence(&p)).map(|(p, k)| (cue_volume::ImageSource::File(p), k)).collect(), model.map(|m| (m, prompt)))
        }
        #[cfg(not(feature = "gui"))]
        Some(Command::View { .. }) => anyhow::bail!("this build of cue has no desktop app (built without the `gui` feature)"),
        #[cfg(not(feature = "gui"))]
        None => anyhow::bail!("this build of cue has no desktop app (built without the `gui` feature); see --help"),
        Some(Command::Info { file, json }) => info::run(&file, json),
        Some(Command::Canonical { input, output, volume, series }) => canonical(&input, &output, volume, series),
        Some(Command::Bench { what }) => bench::run(what),
        Some(Command::ClipEmbed(args)) => clip::embed(args),
        Some(Command::Train(args)) => method::train_command(args),
        Some(Command::Eval(args)) => method::eval_command(args),
        Some(Command::Map(args)) => map::map_command(args),
        Some(Command::Findings(args)) => findings::findings_command(args),
        Some(Command::Reproduce(args)) => reproduce::reproduce_command(args),
        Some(Command::Serve(args)) => serve::serve_command(args, cli.token_file),
        Some(Command::IrohId { server }) => {
            let (id, file) = cue_model::remote::iroh_identity_id(if server { "server" } else { "client" })?;
            println!("{id}");
            eprintln!("(the key is in {})", file.display());
            Ok(())
        }
        Some(Command::Weights { what }) => weights(what),
        Some(Command::Phantom { out, seed, cases, downsample, template }) => {
            phantom(&out, seed, cases, downsample, template)
        }
    }
}

/// `KIND=FILE` as the file with its named sequence; anything else as a plain path.
#[cfg(feature = "gui")]
fn named_sequence(arg: &std::path::Path) -> (PathBuf, Option<cue_volume::SequenceKind>) {
    if let Some((kind, file)) = arg.to_str().and_then(|s| s.split_once('='))
        && let Some(kind) = cue_volume::SequenceKind::parse_known(kind)
    {
        return (PathBuf::from(file), Some(kind));
    }
    (arg.to_path_buf(), None)
}

fn phantom(out: &std::path::Path, seed: u64, cases: usize, downsample: usize, template: Option<PathBuf>) -> anyhow::Result<()> {
    use cue_volume::phantom::{PhantomConfig, Template, generate, write_case};
    anyhow::ensure!(downsample >= 1, "--downsample must be at least 1");
    let template_dir = template.unwrap_or_else(|| bench::shared_data_dir().join("templates/mni152-2009a"));
    let template = Template::load(&template_dir)?;
    for i in 0..cases.max(1) {
        let config = PhantomConfig { seed: seed + i as u64, downsample, ..Default::default() };
        let phantom = generate(&template, &config);
        let case = format!("CUE-PHANTOM-{:05}", config.seed);
        let folder = if cases > 1 { out.join(&case) } else { out.to_path_buf() };
        for file in write_case(&phantom, &folder, &case)? {
            println!("{}", file.display());
        }
    }
    Ok(())
}

/// The 3-D volume `requested` of a NIfTI file, or its only one: a 4-D file read without
/// `--volume` is refused rather than read as its first volume unsaid, since a map or findings
/// of volume 0 would pass for the file's.
pub(crate) fn read_one_volume(path: &std::path::Path, requested: Option<usize>) -> anyhow::Result<cue_volume::Volume> {
    let volume = cue_volume::Volume::read(path, requested.unwrap_or(0))?;
    let count = volume.source.header.volume_count();
    if requested.is_none() && volume.source.series.is_none() && count > 1 {
        anyhow::bail!("the file holds {count} volumes (4-D): pick one with --volume K (0 to {}): {}", count - 1, path.display());
    }
    Ok(volume)
}

fn canonical(input: &std::path::Path, output: &std::path::Path, volume_index: usize, series: Option<cue_volume::dicom::SeriesChoice>) -> anyhow::Result<()> {
    use cue_volume::{Volume, VoxelData, WriteOptions, write_nifti1};
    cue_volume::overwrite::ensure_not_an_input(output, &[input.to_path_buf()])?;
    let (volume, colours) = if series.is_some() || cue_volume::dicom::is_dicom_path(input) {
        anyhow::ensure!(volume_index == 0, "--volume applies to 4-D NIfTI files; a DICOM series is picked with --series");
        let (volume, colours) = cue_volume::dicom::read_series_with_colours(input, series)?;
        let volume = volume.into_canonical();
        let colours = colours.map(|c| volume.from_file_grid(&c).map(VoxelData::Rgb24)).transpose().map_err(anyhow::Error::msg)?;
        (volume, colours)
    } else {
        let volume = Volume::read_canonical(input, volume_index)?;
        let colours = volume.colour_voxels()?;
        (volume, colours)
    };
    tracing::info!(from = %volume.source.header.world_from_voxel().map(|a| a.axcodes()).unwrap_or_default(), shape = ?volume.shape, "re-oriented to RAS");
    let options = WriteOptions { descrip: format!("CUE canonical of volume {volume_index}"), ..Default::default() };
    let shape = volume.shape;
    let data = colours.unwrap_or(VoxelData::F32(volume.data));
    write_nifti1(output, &shape, &data, &volume.world_from_voxel, &options)?;
    Ok(())
}

#[cfg(all(test, feature = "gui"))]
mod tests {
    use super::*;
    use cue_volume::SequenceKind;
    use std::path::Path;

    #[test]
    fn kind_equals_file_names_the_sequence() {
        assert_eq!(named_sequence(Path::new("flair=a/scan.nii")), (PathBuf::from("a/scan.nii"), Some(SequenceKind::Flair)));
        assert_eq!(named_sequence(Path::new("t1c=x.nii.gz")), (PathBuf::from("x.nii.gz"), Some(SequenceKind::T1ce)));
        // Not a sequence name: the whole argument is a path.
        assert_eq!(named_sequence(Path::new("run=2/t1.nii")), (PathBuf::from("run=2/t1.nii"), None));
        assert_eq!(named_sequence(Path::new("plain.nii")), (PathBuf::from("plain.nii"), None));
    }
}
