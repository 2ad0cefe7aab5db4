//! `cue findings`: the connected regions of a score volume, measured, as JSON or a table, with
//! a label volume on the score volume's own grid.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use cue_volume::findings::{Findings, find_findings, percentile, to_csv, write_labels};

use super::method::write_atomic;

/// Options of `cue findings`.
#[derive(Debug, Args)]
pub struct FindingsArgs {
    /// A score volume (NIfTI), such as `cue map --all-slices` writes.
    scores: PathBuf,
    /// Regions are the voxels with a score at or above this.
    #[arg(long, conflicts_with = "percentile", required_unless_present = "percentile")]
    threshold: Option<f32>,
    /// Or: the threshold is this percentile (0-100) of the volume's finite scores.
    #[arg(long)]
    percentile: Option<f64>,
    /// Regions smaller than this many cubic millimetres are dropped.
    #[arg(long, default_value_t = 0.0)]
    min_size_mm3: f64,
    /// Write the regions as a label volume (label k = finding k) on the score volume's grid.
    #[arg(long)]
    labels_out: Option<PathBuf>,
    /// Write the findings table as CSV.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Which 3-D volume of a 4-D score file (0 is the first); required when it holds several.
    #[arg(long)]
    volume: Option<usize>,
}

/// Runs `cue findings`.
pub fn findings_command(args: FindingsArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.min_size_mm3 >= 0.0 && args.min_size_mm3.is_finite(), "--min-size-mm3 must be a size in mm^3, not {}", args.min_size_mm3);
    if let Some(p) = args.percentile {
        anyhow::ensure!((0.0..=100.0).contains(&p), "--percentile must be between 0 and 100, not {p}");
    }
    for output in args.labels_out.iter().chain(&args.csv) {
        cue_volume::overwrite::ensure_not_an_input(output, std::slice::from_ref(&args.scores))?;
    }
    // The file's own grid: voxel indices and bounding boxes count in the file's order.
    let volume = super::read_one_volume(&args.scores, args.volume)?;
    let threshold = match (args.threshold, args.percentile) {
        (Some(t), _) => t,
        (None, Some(p)) => {
            percentile(&volume.data, p).with_context(|| format!("no finite score in {}", args.scores.display()))?
        }
        (None, None) => anyhow::bail!("give --threshold or --percentile"),
    };
    anyhow::ensure!(threshold.is_finite(), "--threshold must be a number, not {threshold}");
    let found: Findings = find_findings(&volume.data, volume.shape, &volume.world_from_voxel, threshold, args.min_size_mm3);
    if let Some(path) = &args.labels_out {
        let geometry = volume.source.series.is_none().then_some(&volume.source.header);
        write_labels(path, &found.labels, volume.shape, &volume.world_from_voxel, geometry).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.csv {
        write_atomic(path, to_csv(&found.findings).as_bytes())?;
    }
    if args.json {
        let out = serde_json::json!({
            "scores": args.scores.display().to_string(),
            "threshold": threshold,
            "min_size_mm3": args.min_size_mm3,
            "connectivity": 26,
            "shape": volume.shape,
            "volume": volume.source.volume_index,
            "findings": found.findings,
        });
        println!("{out}");
    } else {
        println!("{} finding(s) at score >= {threshold} (26-connected, min size {} mm^3) in {}", found.findings.len(), args.min_size_mm3, args.scores.display());
        println!("{:>5} {:>8} {:>9} {:>7} {:>7}  centroid RAS mm", "label", "voxels", "mL", "max", "mean");
        for f in &found.findings {
            let [x, y, z] = f.centroid_ras_mm;
            println!("{:>5} {:>8} {:>9.3} {:>7.4} {:>7.4}  ({x:.1}, {y:.1}, {z:.1})", f.label, f.voxels, f.volume_ml, f.max_score, f.mean_score);
        }
    }
    Ok(())
}
