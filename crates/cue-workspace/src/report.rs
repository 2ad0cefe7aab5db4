//! Findings leaving the app: a label NIfTI on the source grid, CSV, JSON, and a self-contained
//! HTML report (key slices with maps, the findings table, model and prompt identity with
//! checksums, date, "research use, not for diagnosis").

use std::fmt::Write as _;
use std::path::PathBuf;

use cue_render::Colormap;
use cue_volume::findings::{to_csv, write_labels};
use cue_volume::{DisplayConvention, SliceAxes, View, extract_slice};

use crate::command::Command;
use crate::findings::{FindingsResult, SortKey};
use crate::jobs::{JobKind, JobOutput};
use crate::maps::ModelStatus;
use crate::state::StudyView;
use crate::workspace::Workspace;

/// What to write of the findings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindingsExport {
    /// A label NIfTI (label k = finding k) on the sequence's source grid.
    Labels,
    /// The table as CSV.
    Csv,
    /// The table and its provenance as JSON.
    Json,
    /// The HTML report.
    Report,
}

impl FindingsExport {
    fn file_suffix(self) -> &'static str {
        match self {
            Self::Labels => "findings.nii.gz",
            Self::Csv => "findings.csv",
            Self::Json => "findings.json",
            Self::Report => "report.html",
        }
    }
}

/// Findings shown in the report with key slices (the table lists them all).
const KEY_SLICE_FINDINGS: usize = 6;

impl Workspace {
    /// The findings commands.
    pub(crate) fn apply_findings(&mut self, command: Command) {
        match command {
            Command::SetFindingsThreshold(choice) => self.findings.threshold = choice,
            Command::SetFindingsMinSize(mm3) => self.findings.min_size_mm3 = if mm3.is_finite() { mm3.max(0.0) } else { 0.0 },
            Command::SortFindings(key) => {
                let (old, descending) = self.findings.sort;
                // Sizes and scores read best largest first; a second click turns the order round.
                self.findings.sort = if old == key { (key, !descending) } else { (key, key != SortKey::Label) };
            }
            Command::SelectFinding(label) => {
                let (Some(study), Some(result)) = (&mut self.study, &self.findings.result) else { return };
                if result.key.study != study.id {
                    return;
                }
                if let Some(f) = result.findings.findings.iter().find(|f| f.label == label) {
                    study.cursor = f.max_voxel;
                    self.findings.selected = Some(label);
                }
            }
            Command::ExportFindings { format, path } => self.export_findings(format, path),
            _ => {}
        }
    }

    fn export_findings(&mut self, format: FindingsExport, path: Option<PathBuf>) {
        let Some(study) = &self.study else { return };
        let Some(result) = self.findings.current(study, &self.maps).cloned() else {
            self.message = Some("no findings to export: map slices first".into());
            return;
        };
        let name = format!("{}-{}-{}", study.study.name, result.sequence_label, format.file_suffix());
        let bytes: Vec<u8> = match format {
            FindingsExport::Labels => Vec::new(),
            FindingsExport::Csv => to_csv(&result.findings.findings).into_bytes(),
            FindingsExport::Json => findings_json(study, &self.maps.status, &result).to_string().into_bytes(),
            FindingsExport::Report => report_html(study, &self.maps.status, &result, &self.settings.map_colormap).into_bytes(),
        };
        // Labels go on the sequence's own file grid (voxel order, qform and sform), so they
        // overlay the source in any viewer; a sequence resampled into the study grid has no grid
        // of its own and gets the study's.
        let volume = &study.study.sequences[result.key.sequence].volume;
        let labels = match volume.to_file_grid(&result.findings.labels) {
            Ok((labels, shape)) => (labels, shape, volume.source.file_world_from_voxel, volume.source.series.is_none().then(|| volume.source.header.clone())),
            Err(_) => (result.findings.labels.clone(), study.study.shape(), study.study.world_from_voxel(), None),
        };
        let count = result.findings.findings.len();
        let inputs = study.study.input_files();
        self.jobs.spawn(JobKind::Export, format!("Saving {name}"), move |_| {
            let path = match path {
                Some(p) => p,
                None => match pollster::block_on(rfd::AsyncFileDialog::new().set_file_name(name).save_file()) {
                    Some(file) => file.path().to_path_buf(),
                    None => return Ok(JobOutput::Nothing),
                },
            };
            cue_volume::overwrite::ensure_not_an_input(&path, &inputs).map_err(|e| e.to_string())?;
            let written = if format == FindingsExport::Labels {
                let (data, shape, affine, header) = labels;
                write_labels(&path, &data, shape, &affine, header.as_ref()).map_err(|e| e.to_string())
            } else {
                cue_volume::write_file_atomically(&path, &bytes).map_err(|e| format!("cannot write ({e}): {}", path.display()))
            };
            written.map(|()| JobOutput::Message(format!("Saved {count} findings: {}", path.display())))
        });
    }
}

/// The model identity the outputs carry: backbone, prompt, their checksums.
fn identity(status: &ModelStatus) -> serde_json::Value {
    match status {
        ModelStatus::Ready { backbone, prompt, precision, prompt_id, backbone_sha256, prompt_sha256, validation_threshold, .. } => serde_json::json!({
            "backbone": backbone, "backbone_sha256": backbone_sha256, "prompt": prompt, "prompt_sha256": prompt_sha256,
            "prompt_id": prompt_id, "validation_threshold": validation_threshold, "precision": precision,
        }),
        _ => serde_json::Value::Null,
    }
}

/// The findings and what they came from, as JSON (`findings` as `cue findings --json`).
pub fn findings_json(study: &StudyView, status: &ModelStatus, result: &FindingsResult) -> serde_json::Value {
    serde_json::json!({
        "study": study.study.name,
        "sequence": result.sequence_label,
        "views_fused": result.views.iter().map(|v| v.name()).collect::<Vec<_>>(),
        "fusion": "mean of the mapped views at each voxel",
        "threshold": result.threshold,
        "min_size_mm3": result.key.min_size_mm3,
        "connectivity": 26,
        "grid": "study (closest-canonical RAS+) voxels",
        "model": identity(status),
        "findings": result.findings.findings.iter().zip(&result.present_in).map(|(f, present)| {
            let mut value = serde_json::to_value(f).unwrap_or_default();
            value["present_in"] = serde_json::json!(present);
            value
        }).collect::<Vec<_>>(),
    })
}

/// The self-contained HTML report (images inline as PNG data URIs, A4 print layout).
pub fn report_html(study: &StudyView, status: &ModelStatus, result: &FindingsResult, colormap: &Colormap) -> String {
    let model = identity(status);
    let text = |v: &serde_json::Value| escape(v.as_str().unwrap_or("-"));
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>CUE findings: {title}</title>\n<style>\n\
         @page {{ size: A4; margin: 12mm; }}\n\
         body {{ font-family: sans-serif; font-size: 10pt; color: #111; }}\n\
         .warning {{ border: 2px solid #b00; color: #b00; padding: 4px 8px; font-weight: bold; }}\n\
         table {{ border-collapse: collapse; width: 100%; }} th, td {{ border: 1px solid #999; padding: 2px 4px; text-align: right; }}\n\
         .finding {{ break-inside: avoid; margin-top: 8px; }} figure {{ display: inline-block; margin: 0 2mm 0 0; vertical-align: top; }}\n\
         figure img {{ width: 58mm; display: block; }} figcaption {{ font-size: 8pt; color: #444; }}\n\
         dl {{ display: grid; grid-template-columns: max-content auto; gap: 1px 8px; }} dt {{ font-weight: bold; }} dd {{ margin: 0; word-break: break-all; }}\n\
         </style></head><body>\n<h1>CUE findings report</h1>\n\
         <p class=\"warning\">Research use only, not for diagnosis. Regions are where a CLIP-based anomaly map exceeds a threshold; they are not a clinical finding.</p>\n",
        title = escape(&study.study.name),
    );
    let (seconds, date) = utc_now();
    let _ = write!(
        html,
        "<dl>\n<dt>Study</dt><dd>{}</dd>\n<dt>Sequence</dt><dd>{}</dd>\n<dt>Date (UTC)</dt><dd id=\"date\" data-unix=\"{seconds}\">{date}</dd>\n\
         <dt>Backbone</dt><dd>{}</dd>\n<dt>Backbone SHA-256</dt><dd>{}</dd>\n<dt>Prompt</dt><dd>{}</dd>\n<dt>Prompt SHA-256</dt><dd>{}</dd>\n\
         <dt>Views fused</dt><dd>{} (mean of the mapped views at each voxel)</dd>\n<dt>Threshold</dt><dd>score &ge; {:.5}</dd>\n\
         <dt>Minimum size</dt><dd>{} mm&sup3;</dd>\n<dt>Connectivity</dt><dd>26 (faces, edges, corners)</dd>\n<dt>CUE</dt><dd>{}</dd>\n</dl>\n",
        escape(&study.study.name),
        escape(&result.sequence_label),
        text(&model["backbone"]),
        text(&model["backbone_sha256"]),
        text(&model["prompt"]),
        text(&model["prompt_sha256"]),
        result.views.iter().map(|v| v.name()).collect::<Vec<_>>().join(", "),
        result.threshold,
        result.key.min_size_mm3,
        env!("CARGO_PKG_VERSION"),
    );
    html.push_str(
        "<h2>Findings</h2>\n<table id=\"findings\"><thead><tr><th>#</th><th>Voxels</th><th>Volume mL</th><th>Max</th><th>Mean</th>\
         <th>Centroid RAS mm</th><th>Axial slices</th><th>Coronal slices</th><th>Sagittal slices</th><th>Also in</th></tr></thead>\n<tbody>\n",
    );
    for (f, present) in result.findings.findings.iter().zip(&result.present_in) {
        let [x, y, z] = f.centroid_ras_mm;
        let span = |view: View| {
            let (a, b) = f.slices_along(view.normal_axis());
            format!("{a}-{b}")
        };
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.4}</td><td>{:.4}</td><td>({x:.1}, {y:.1}, {z:.1})</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            f.label, f.voxels, f.volume_ml, f.max_score, f.mean_score, span(View::Axial), span(View::Coronal), span(View::Sagittal),
            escape(&if present.is_empty() { "-".to_string() } else { present.join(", ") }),
        );
    }
    html.push_str("</tbody></table>\n");
    if result.findings.findings.is_empty() {
        html.push_str("<p>No region at or above the threshold.</p>\n");
    }
    html.push_str("<h2>Key slices</h2>\n<p>Through each finding's highest score; map in colour, the finding outlined in cyan; radiological display (patient's right on the left).</p>\n");
    for f in result.findings.findings.iter().take(KEY_SLICE_FINDINGS) {
        let _ = write!(html, "<div class=\"finding\"><h3>Finding {}</h3>", f.label);
        for view in View::ALL {
            if let Some(png) = key_slice_png(study, result, f.label, f.max_voxel, view, colormap) {
                let (slice, count) = (f.max_voxel[view.normal_axis()], result.findings.shape[view.normal_axis()]);
                let _ = write!(
                    html,
                    "<figure><img alt=\"Finding {} {}\" src=\"data:image/png;base64,{}\"><figcaption>{} {}/{count}</figcaption></figure>",
                    f.label,
                    view.name(),
                    base64(&png),
                    view.name(),
                    slice + 1
                );
            }
        }
        html.push_str("</div>\n");
    }
    html.push_str("</body></html>\n");
    html
}

/// One view's slice through `voxel`: the sequence in grey, the fused map over it, the finding's
/// outline; PNG bytes.
fn key_slice_png(study: &StudyView, result: &FindingsResult, label: u32, voxel: [usize; 3], view: View, colormap: &Colormap) -> Option<Vec<u8>> {
    let sequence = &study.study.sequences[result.key.sequence];
    let shape = sequence.volume.shape;
    let convention = DisplayConvention::Radiological;
    let k = voxel[view.normal_axis()];
    let spacing = sequence.volume.voxel_size_mm();
    let grey = extract_slice(&sequence.volume.data, shape, spacing, view, k, convention).ok()?;
    let scores = extract_slice(&result.scores, shape, spacing, view, k, convention).ok()?;
    let axes = SliceAxes::new(view, convention);
    let (width, height) = axes.size(shape);
    let labels: Vec<u32> = (0..width * height)
        .map(|n| {
            let [i, j, kk] = axes.voxel_at(shape, k, n % width, n / width);
            result.findings.labels[i + shape[0] * (j + shape[1] * kk)]
        })
        .collect();
    let window = study.sequences[result.key.sequence].window;
    let (low, high) = result.score_range;
    let range = (high - low).max(1e-12);
    let mut rgb = Vec::with_capacity(width * height * 3);
    for n in 0..width * height {
        let g = window.apply(grey.pixels[n]);
        let s = scores.pixels[n];
        let mut pixel = [g; 3];
        if s.is_finite() && s >= result.threshold.min(high) {
            let heat = colormap.rgb((s - low) / range);
            for c in 0..3 {
                pixel[c] = 0.5 * g + 0.5 * f32::from(heat[c]) / 255.0;
            }
        }
        let (c, r) = (n % width, n / width);
        let here = labels[n] == label;
        let edge = here && [(c.wrapping_sub(1), r), (c + 1, r), (c, r.wrapping_sub(1)), (c, r + 1)].iter().any(|&(a, b)| a >= width || b >= height || labels[a + width * b] != label);
        if edge {
            pixel = [0.0, 1.0, 1.0];
        }
        rgb.extend(pixel.map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8));
    }
    // Pixels are not square in every view: scale to the physical aspect for the page.
    let image = image::RgbImage::from_raw(width as u32, height as u32, rgb)?;
    let aspect = grey.pixel_spacing_mm[1] / grey.pixel_spacing_mm[0];
    let out_height = ((height as f64) * aspect).round().max(1.0) as u32;
    let image = image::imageops::resize(&image, width as u32, out_height, image::imageops::FilterType::Nearest);
    let mut png = std::io::Cursor::new(Vec::new());
    image.write_to(&mut png, image::ImageFormat::Png).ok()?;
    Some(png.into_inner())
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Now as Unix seconds and "YYYY-MM-DD HH:MM" in UTC.
fn utc_now() -> (u64, String) {
    let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (seconds / 86_400) as i64;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let minute = (seconds % 86_400) / 60;
    (seconds, format!("{year:04}-{month:02}-{day:02} {:02}:{:02}", minute / 60, minute % 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_pads_like_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(escape("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
