//! `cue clip-embed` and `cue weights convert`: CLIP from the command line.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use cue_model::clip::Clip;
use cue_model::clip::tokenizer::ClipTokenizer;
use cue_model::device::{DeviceChoice, choose};
use cue_model::preprocess::preprocess_planes;

/// Options of `cue clip-embed`.
#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// A transformers folder (config.json + model.safetensors), its safetensors file, or a .bpk.
    #[arg(long)]
    pub model: PathBuf,
    /// An image (PNG/JPEG; colour kept as RGB, grey replicated to three channels). At the
    /// model's input size it is only normalised; otherwise resized with its aspect kept and
    /// padded to a square.
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// A text to encode (CLIP's tokenizer, padded to the model's context); repeatable.
    #[arg(long)]
    pub text: Vec<String>,
    /// Token ids to encode as they are, comma-separated; repeatable. Rows are zero-padded to
    /// the longest one.
    #[arg(long, value_delimiter = ' ')]
    pub token_ids: Vec<String>,
    /// Vision blocks (1-based) whose projected patch tokens to print.
    #[arg(long, value_delimiter = ',')]
    pub layers: Vec<usize>,
    /// auto (a hardware GPU, else the CPU), gpu (wgpu, software adapters included), cpu,
    /// cuda:N (builds with the `cuda` feature) or remote:HOST:PORT.
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// The towers' number type: f32, f16, bf16 or i16 (LayerNorms stay f32; outputs are f32;
    /// i16: CUE's integer product for the blocks' linear layers, on a CPU with AVX2).
    #[arg(long, default_value_t = cue_model::clip::Precision::F32)]
    pub precision: cue_model::clip::Precision,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn values<const D: usize>(t: burn::tensor::Tensor<D>) -> anyhow::Result<Vec<f32>> {
    Ok(cue_model::to_host(t)?)
}

fn rows(flat: Vec<f32>, width: usize) -> Vec<Vec<f32>> {
    flat.chunks(width.max(1)).map(<[f32]>::to_vec).collect()
}

fn parse_ids(text: &str) -> anyhow::Result<Vec<u32>> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse::<u32>().with_context(|| format!("'{s}' in --token-ids is not a token id")))
        .collect()
}


/// Runs `cue clip-embed`.
pub fn embed(args: EmbedArgs) -> anyhow::Result<()> {
    let loaded = cue_model::loader::load_named(&args.model, args.device)?;
    let (mut clip, chosen) = (loaded.clip, loaded.device);
    clip.model = clip.model.with_precision(args.precision);
    let mut out = serde_json::Map::new();
    // The precision the towers run in, which falls back to f32 where the requested one has no
    // path (i16 without AVX2 or on a GPU).
    out.insert("precision".into(), clip.model.precision().to_string().into());
    out.insert("model".into(), clip.id.name.clone().into());
    out.insert("device".into(), chosen.description.clone().into());
    if let Some(path) = &args.image {
        let (w, h, channels, planes) = cue_method::train::dataset::read_planes(path)?;
        let size = clip.config.vision.image_size;
        let input = preprocess_planes(&planes, channels, w, h, [1.0, 1.0], size);
        let pixels = clip.pixels(&[&input.pixels], size, size)?;
        let result = clip.model.encode_image(pixels, &args.layers, true);
        if let Some(embeds) = result.image_embeds {
            out.insert("image_embeds".into(), serde_json::to_value(values(embeds)?)?);
        }
        let mut patches = serde_json::Map::new();
        for (layer, tensor) in result.patch_embeds {
            let width = tensor.dims()[2];
            patches.insert(layer.to_string(), serde_json::to_value(rows(values(tensor)?, width))?);
        }
        out.insert("patch_embeds".into(), patches.into());
    } else if !args.layers.is_empty() {
        anyhow::bail!("--layers needs --image");
    }
    let mut ids: Vec<Vec<u32>> = Vec::new();
    if !args.text.is_empty() {
        let tokenizer = ClipTokenizer::embedded()?;
        let context = clip.config.text.max_position_embeddings;
        ids.extend(args.text.iter().map(|t| tokenizer.tokenize(t, context).ids));
    }
    for row in &args.token_ids {
        ids.push(parse_ids(row)?);
    }
    if !ids.is_empty() {
        let longest = ids.iter().map(Vec::len).max().unwrap_or(0);
        // Padding after the end token cannot change the pooled output (causal attention), but
        // every row of a batch needs one length.
        for row in &mut ids {
            row.resize(longest, 0);
        }
        let embeds = clip.encode_text_ids(&ids)?;
        let width = embeds.dims()[1];
        out.insert("text_embeds".into(), serde_json::to_value(rows(values(embeds)?, width))?);
    }
    if args.json {
        println!("{}", serde_json::Value::Object(out));
    } else {
        for (key, value) in &out {
            match value {
                serde_json::Value::Array(a) => println!("{key:14} {} values", a.len()),
                serde_json::Value::Object(o) => println!("{key:14} layers {}", o.keys().cloned().collect::<Vec<_>>().join(", ")),
                other => println!("{key:14} {}", other.as_str().unwrap_or_default()),
            }
        }
    }
    Ok(())
}

/// Runs `cue weights convert`: a checkpoint to Burnpack.
pub fn convert(model: &Path, out: &Path, half: bool) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let clip = Clip::load(model, &burn::tensor::Device::flex())?;
    clip.save_burnpack(out, half)?;
    println!(
        "{} ({}, source sha256 {}) in {:.1} s",
        out.display(),
        if half { "f16" } else { "f32" },
        clip.id.sha256,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[derive(Debug, serde::Serialize)]
struct ClipBenchReport {
    model: String,
    device: String,
    threads: usize,
    /// The number type the towers computed in.
    precision: String,
    /// Whether the blocks ran through CUE's bf16 CPU product (bf16 on a CPU where it runs and
    /// was timed faster than f32), else burn's kernels.
    bf16_cpu_kernel: bool,
    /// The level of CUE's own CPU loops (softmax, activations, LayerNorm, the bf16 product):
    /// the CPU's best unless `CUE_CPU_ISA` caps it.
    cpu_isa: &'static str,
    parameters: usize,
    /// Seconds to open the checkpoint (Burnpack tensors are memory-mapped and read lazily).
    load_s: f64,
    /// Seconds from opening to the first batch-1 image embedding (reads every weight once).
    load_to_first_embedding_s: f64,
    /// GFLOP/s of one `[2056, width] x [width, mlp]` matmul (the MLP's first layer at batch 8).
    matmul_gflops: f64,
    /// The same product in CUE's bf16 CPU kernel (inputs rounded to bf16 included), where this
    /// CPU has AVX-512 BF16.
    bf16_matmul_gflops: Option<f64>,
    /// The same product in CUE's integer CPU kernel (inputs quantized included), where this
    /// CPU has AVX2.
    i16_matmul_gflops: Option<f64>,
    /// Which integer kernel `--precision i16` runs here (`avx2`, `avx512-vnni`).
    i16_kernel: Option<&'static str>,
    /// (batch, median seconds) of the vision tower to image embeddings.
    vision_median_s: Vec<(usize, f64)>,
    /// Median seconds of the text tower for two prompts that fill the 77-token context.
    text_median_s: f64,
    /// The same for two 6-token sentences padded to the context (the tokens after the end
    /// token are not computed).
    text_short_median_s: f64,
    peak_rss_bytes: u64,
}

/// Runs `cue bench clip`.
pub fn bench(
    model: Option<PathBuf>,
    preset: &str,
    batches: &[usize],
    repeat: usize,
    device: DeviceChoice,
    precision: cue_model::clip::Precision,
    json: bool,
) -> anyhow::Result<()> {
    use cue_model::clip::{BackboneId, ClipConfig, ClipModel};
    use burn::module::Module;
    use std::time::Instant;
    let chosen = choose(device)?;
    let temp = tempfile_dir()?;
    let path = match model {
        Some(path) => path,
        None => {
            let config = ClipConfig::preset(preset).with_context(|| format!("unknown preset '{preset}'"))?;
            let random = Clip {
                model: ClipModel::new(&config, &burn::tensor::Device::flex()),
                config,
                device: burn::tensor::Device::flex(),
                id: BackboneId { name: format!("random {preset}"), sha256: "0".repeat(64) },
            };
            let path = temp.join("random.bpk");
            random.save_burnpack(&path, false)?;
            path
        }
    };
    let started = Instant::now();
    let mut clip = Clip::load(&path, &chosen.device)?;
    clip.model = clip.model.with_precision(precision);
    chosen.device.sync().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let load_s = started.elapsed().as_secs_f64();
    let size = clip.config.vision.image_size;
    let first = {
        let image: Vec<f32> = (0..3 * size * size).map(|i| ((i % 97) as f32 / 97.0) - 0.5).collect();
        let out = clip.model.encode_image(clip.pixels(&[&image], size, size)?, &[], true);
        std::hint::black_box(values(out.image_embeds.context("no image embeddings")?)?);
        started.elapsed().as_secs_f64()
    };
    let matmul_gflops = {
        let (m, k, n) = (8 * 257, clip.config.vision.hidden_size, clip.config.vision.intermediate_size);
        let a = burn::tensor::Tensor::<2>::ones([m, k], &chosen.device);
        let b = burn::tensor::Tensor::<2>::ones([k, n], &chosen.device);
        let mut times = Vec::new();
        for _ in 0..=repeat {
            let start = Instant::now();
            std::hint::black_box(values(a.clone().matmul(b.clone()).slice([0..1, 0..1]))?);
            times.push(start.elapsed().as_secs_f64());
        }
        2.0 * (m * k * n) as f64 / super::bench::median(&mut times[1..].to_vec()) / 1e9
    };
    // CUE's own CPU products on the same shape, the rounding or quantizing of the inputs
    // included.
    let (m, k, n) = (8 * 257, clip.config.vision.hidden_size, clip.config.vision.intermediate_size);
    let x: Vec<f32> = (0..m * k).map(|i| ((i % 89) as f32 / 89.0) - 0.5).collect();
    let w: Vec<f32> = (0..k * n).map(|i| ((i % 83) as f32 / 83.0) - 0.5).collect();
    let product_gflops = |product: &dyn Fn()| {
        let mut times = Vec::new();
        for _ in 0..=repeat {
            let start = Instant::now();
            product();
            times.push(start.elapsed().as_secs_f64());
        }
        2.0 * (m * k * n) as f64 / super::bench::median(&mut times[1..].to_vec()) / 1e9
    };
    let bf16_matmul_gflops = cue_model::clip::bf16_gemm::available().then(|| {
        let packed = cue_model::clip::bf16_gemm::Bf16Weights::pack(&w, k, n, None);
        product_gflops(&|| drop(std::hint::black_box(packed.matmul(&x, m))))
    });
    let i16_matmul_gflops = cue_model::clip::i16_gemm::available().then(|| {
        let packed = cue_model::clip::i16_gemm::I16Weights::pack(&w, k, n, None);
        product_gflops(&|| drop(std::hint::black_box(packed.matmul(&x, m))))
    });
    let mut vision = Vec::new();
    for &batch in batches {
        let image: Vec<f32> = (0..3 * size * size).map(|i| ((i % 97) as f32 / 97.0) - 0.5).collect();
        let images: Vec<&[f32]> = (0..batch).map(|_| image.as_slice()).collect();
        let mut times = Vec::new();
        for run in 0..=repeat {
            let pixels = clip.pixels(&images, size, size)?;
            let start = Instant::now();
            let out = clip.model.encode_image(pixels, &[], true);
            let embeds = values(out.image_embeds.context("no image embeddings")?)?;
            std::hint::black_box(embeds);
            if run > 0 {
                times.push(start.elapsed().as_secs_f64());
            }
        }
        vision.push((batch, super::bench::median(&mut times)));
    }
    // Two prompts that fill the context (the end token last, as a learned prompt's does), then
    // two short sentences padded to it (the end token sixth), as scripts/bench_clip_torch.py.
    let context = clip.config.text.max_position_embeddings;
    let text_median = |end: usize| -> anyhow::Result<f64> {
        let mut ids = vec![vec![0u32; context]; 2];
        for row in &mut ids {
            row[0] = clip.config.text.bos_token_id.min(clip.config.text.vocab_size as u32 - 1);
            row[end.min(context - 1)] = clip.config.text.eos_token_id.min(clip.config.text.vocab_size as u32 - 1);
        }
        let mut times = Vec::new();
        for run in 0..=repeat {
            let start = Instant::now();
            std::hint::black_box(values(clip.encode_text_ids(&ids)?)?);
            if run > 0 {
                times.push(start.elapsed().as_secs_f64());
            }
        }
        Ok(super::bench::median(&mut times))
    };
    let text_median_s = text_median(context - 1)?;
    let text_short_median_s = text_median(5)?;
    let report = ClipBenchReport {
        model: clip.id.name.clone(),
        device: chosen.description.clone(),
        precision: precision.to_string(),
        bf16_cpu_kernel: clip.model.uses_bf16_cpu_product(),
        cpu_isa: cue_model::clip::isa::Isa::current().name(),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        parameters: clip.model.num_params(),
        load_s,
        load_to_first_embedding_s: first,
        matmul_gflops,
        bf16_matmul_gflops,
        i16_matmul_gflops,
        i16_kernel: cue_model::clip::i16_gemm::available().then(|| cue_model::clip::i16_gemm::Kernel::best().name()),
        vision_median_s: vision,
        text_median_s,
        text_short_median_s,
        peak_rss_bytes: cue_volume::process::memory_status_bytes("VmHWM").unwrap_or(0),
    };
    let _ = std::fs::remove_dir_all(&temp);
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("model        {} ({:.0} M parameters)", report.model, report.parameters as f64 / 1e6);
        let kernel = if report.bf16_cpu_kernel { ", CUE's bf16 CPU product" } else { "" };
        println!("device       {} ({}{kernel}; CPU loops {})", report.device, report.precision, report.cpu_isa);
        println!("load         {:.2} s (to the first embedding {:.2} s)", report.load_s, report.load_to_first_embedding_s);
        println!("matmul       {:.1} GFLOP/s", report.matmul_gflops);
        if let Some(gflops) = report.bf16_matmul_gflops {
            println!("bf16 matmul  {gflops:.1} GFLOP/s (CUE's AVX-512 BF16 kernel)");
        }
        if let (Some(gflops), Some(kernel)) = (report.i16_matmul_gflops, report.i16_kernel) {
            println!("i16 matmul   {gflops:.1} GFLOP/s (CUE's {kernel} integer kernel)");
        }
        for (batch, s) in &report.vision_median_s {
            println!("vision b={batch:<3} {:.3} s (median of {repeat})", s);
        }
        let (full, short) = (report.text_median_s, report.text_short_median_s);
        println!("text 2x{context}  {full:.3} s (end token last; a 6-token sentence {short:.3} s)");
        println!("peak RSS     {:.2} GiB", report.peak_rss_bytes as f64 / (1u64 << 30) as f64);
    }
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("cue-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
