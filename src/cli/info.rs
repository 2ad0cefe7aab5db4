//! `cue info`.

use std::path::Path;

use cue_volume::OpenImage;

/// What `cue info --json` prints.
#[derive(Debug, serde::Serialize)]
struct Info {
    file: String,
    data_file: String,
    format: &'static str,
    endianness: cue_volume::Endianness,
    shape: Vec<usize>,
    datatype: &'static str,
    voxel_size_mm: [f64; 3],
    zooms: Vec<f64>,
    affine: [[f64; 4]; 4],
    axcodes: String,
    sform_code: i32,
    qform_code: i32,
    scl_slope: Option<f64>,
    scl_inter: Option<f64>,
    volume_count: usize,
    intent_code: i32,
    descrip: String,
}

pub fn run(path: &Path, json: bool) -> anyhow::Result<()> {
    if cue_volume::dicom::is_dicom_path(path) {
        return dicom(path, json);
    }
    let image = OpenImage::open(path)?;
    let (header_path, data_path) = (image.header_path.clone(), image.data_path.clone());
    let header = image.verify_data()?;
    let problem = |p| cue_volume::VolumeError::invalid(p, &header_path);
    let affine = header.world_from_voxel().map_err(problem)?;
    let rescale = header.rescale().map_err(problem)?;
    let info = Info {
        file: header_path.display().to_string(),
        data_file: data_path.display().to_string(),
        format: header.format.name(),
        endianness: header.endianness,
        shape: header.shape(),
        datatype: header.datatype().name(),
        voxel_size_mm: header.voxel_size_mm(),
        zooms: header.zooms(),
        affine: affine.to_rows(),
        axcodes: affine.axcodes(),
        sform_code: header.sform_code,
        qform_code: header.qform_code,
        scl_slope: rescale.map(|r| r.slope),
        scl_inter: rescale.map(|r| r.intercept),
        volume_count: header.volume_count(),
        intent_code: header.intent_code,
        descrip: header.descrip.clone(),
    };
    if json {
        println!("{}", serde_json::to_string(&info)?);
        return Ok(());
    }
    println!("file         {}", info.file);
    if info.data_file != info.file {
        println!("data file    {}", info.data_file);
    }
    println!("format       {} ({:?} endian)", info.format, info.endianness);
    println!("shape        {:?} ({} volume(s))", info.shape, info.volume_count);
    println!("datatype     {}", info.datatype);
    println!("voxel size   {:?} mm", info.voxel_size_mm);
    println!("axcodes      {}", info.axcodes);
    println!("sform_code   {}   qform_code {}", info.sform_code, info.qform_code);
    match rescale {
        Some(r) => println!("scaling      {} * stored + {}", r.slope, r.intercept),
        None => println!("scaling      none"),
    }
    println!("affine (world_from_voxel)");
    for row in &info.affine {
        println!("  {:>12.6} {:>12.6} {:>12.6} {:>12.6}", row[0], row[1], row[2], row[3]);
    }
    if !info.descrip.is_empty() {
        println!("descrip      {}", info.descrip);
    }
    Ok(())
}

/// One assembled series of `cue info --json` on DICOM.
#[derive(Debug, serde::Serialize)]
struct SeriesInfo {
    /// What `--series` takes to pick this volume (`7`, `7:2` or `#3`).
    choice: String,
    series_number: Option<i32>,
    description: String,
    protocol: String,
    sequence: Option<String>,
    modality: String,
    part: Option<String>,
    study_uid: String,
    series_uid: String,
    folder: String,
    files: usize,
    /// (columns, rows, slices), `null` when the slices do not make one volume.
    shape: Option<[usize; 3]>,
    /// RAS world from voxel (column, row, slice) of the assembled volume.
    affine: Option<[[f64; 4]; 4]>,
    voxel_size_mm: Option<[f64; 3]>,
    axcodes: Option<String>,
    orientation: String,
    /// Why the slices were refused as a volume.
    problem: Option<String>,
}

#[derive(Debug, serde::Serialize)]
struct DicomInfo {
    format: &'static str,
    path: String,
    series: Vec<SeriesInfo>,
    unreadable: Vec<[String; 2]>,
    other_files: usize,
    /// Files passed over as copies of instances another file holds.
    duplicates: Vec<String>,
}

fn dicom(path: &Path, json: bool) -> anyhow::Result<()> {
    let folder = cue_volume::dicom::scan(path)?;
    let choices = cue_volume::dicom::choices(&folder.series);
    let labels = cue_volume::dicom::listing(&folder);
    let series: Vec<SeriesInfo> = folder
        .series
        .iter()
        .zip(&choices)
        .map(|(s, choice)| {
            let geometry = s.geometry.as_ref().ok();
            let files: std::collections::BTreeSet<&Path> = s.slices.iter().map(|x| x.path.as_path()).collect();
            SeriesInfo {
                choice: choice.to_string(),
                series_number: s.number,
                description: s.description.clone(),
                protocol: s.protocol.clone(),
                sequence: s.sequence.as_ref().map(|k| k.label().to_owned()),
                modality: s.modality.clone(),
                part: s.part.clone(),
                study_uid: s.study.uid.clone(),
                series_uid: s.uid.clone(),
                folder: s.folder().display().to_string(),
                files: files.len(),
                shape: geometry.map(|g| g.shape),
                affine: geometry.map(|g| g.world_from_voxel.to_rows()),
                voxel_size_mm: geometry.map(|g| g.world_from_voxel.column_norms()),
                axcodes: geometry.map(|g| g.world_from_voxel.axcodes()),
                orientation: s.orientation_name(),
                problem: s.geometry.as_ref().err().cloned(),
            }
        })
        .collect();
    let info = DicomInfo {
        format: "dicom",
        path: path.display().to_string(),
        series,
        unreadable: folder.unreadable.iter().map(|(p, e)| [p.display().to_string(), e.clone()]).collect(),
        other_files: folder.other_files,
        duplicates: folder.duplicates.iter().map(|p| p.display().to_string()).collect(),
    };
    if json {
        println!("{}", serde_json::to_string(&info)?);
        return Ok(());
    }
    println!("DICOM        {} ({} series)", info.path, info.series.len());
    let width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0).max(32);
    for (s, label) in info.series.iter().zip(&labels) {
        let what = s.sequence.clone().unwrap_or_else(|| "?".into());
        match (&s.shape, &s.voxel_size_mm, &s.problem) {
            (Some(shape), Some(size), _) => println!(
                "  {label:<width$} {what:<6} {:>4}x{}x{} {:.2}x{:.2}x{:.2} mm {} {}",
                shape[0], shape[1], shape[2], size[0], size[1], size[2], s.axcodes.clone().unwrap_or_default(), s.orientation
            ),
            (_, _, Some(problem)) => println!("  {label:<width$} {what:<6} refused: {problem}"),
            _ => println!("  {label:<width$} {what:<6}"),
        }
    }
    for [file, error] in &info.unreadable {
        println!("  unreadable: {error} ({file})");
    }
    if let Some(first) = info.duplicates.first() {
        println!("  {} file(s) passed over as copies of images read from another file (the first: {first})", info.duplicates.len());
    }
    Ok(())
}
