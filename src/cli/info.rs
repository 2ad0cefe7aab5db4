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
