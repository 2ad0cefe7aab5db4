//! [`Volume`]: one 3-D scalar volume in `f32`, with its place in the world, and its
//! re-orientation to the closest canonical RAS+ voxel order.

use std::path::{Path, PathBuf};

use super::affine::{Affine, AxisOrientation};
use super::datatype::VoxelData;
use super::error::{Problem, Result, VolumeError};
use super::header::NiftiHeader;
use super::read::OpenImage;

/// One 3-D volume of intensities.
///
/// `data[i + nx * (j + ny * k)]` is voxel (i, j, k), the NIfTI storage order.
#[derive(Clone, Debug)]
pub struct Volume {
    /// Intensities after `scl_slope`/`scl_inter`; colours as luminance.
    pub data: Vec<f32>,
    /// (nx, ny, nz).
    pub shape: [usize; 3],
    /// Voxel indices to RAS+ millimetres.
    pub world_from_voxel: Affine,
    /// Where it came from.
    pub source: VolumeSource,
}

/// The file a [`Volume`] was read from and how it was re-arranged since.
#[derive(Clone, Debug)]
pub struct VolumeSource {
    /// The file (the header file of a pair).
    pub path: PathBuf,
    /// The header as read.
    pub header: NiftiHeader,
    /// Which 3-D volume of a 4-D file this is (0 for 3-D files).
    pub volume_index: usize,
    /// `world_from_voxel` of the file's own voxel grid.
    pub file_world_from_voxel: Affine,
    /// Voxel indices of this volume to voxel indices of the file's grid.
    pub file_voxel_from_voxel: Affine,
    /// The DICOM series it was assembled from (`path` is then the series' folder and `header`
    /// the NIfTI header dcm2niix would write for it), `None` for NIfTI files.
    pub series: Option<crate::dicom::SeriesOrigin>,
}

impl Volume {
    /// Reads volume `volume_index` (0 for the first) of a file, in the file's voxel order.
    ///
    /// A folder or a DICOM file is read as the one DICOM series it holds (an error lists
    /// them when there are several: [`Volume::read_series`] picks one).
    pub fn read(path: &Path, volume_index: usize) -> Result<Self> {
        if crate::dicom::is_dicom_path(path) {
            if volume_index > 0 {
                return Err(super::error::VolumeError::invalid(
                    super::error::Problem::OutOfRange(format!("volume {volume_index} requested of a DICOM series (one volume each)")),
                    path,
                ));
            }
            return crate::dicom::read_series(path, None);
        }
        let image = OpenImage::open(path)?;
        let header_path = image.header_path.clone();
        let (header, data) = image.read_volume_f32(volume_index)?;
        let world_from_voxel = header.world_from_voxel().map_err(|p| super::error::VolumeError::invalid(p, &header_path))?;
        let mut volume = Self::from_parts(data, header, world_from_voxel);
        volume.source.path = header_path;
        volume.source.volume_index = volume_index;
        Ok(volume)
    }

    /// A volume of the file's first three dimensions from its voxels and header.
    ///
    /// `data` must hold `header.voxels_per_volume()` values.
    pub fn from_parts(data: Vec<f32>, header: NiftiHeader, world_from_voxel: Affine) -> Self {
        debug_assert_eq!(data.len(), header.voxels_per_volume());
        Self {
            data,
            shape: header.spatial_shape(),
            world_from_voxel,
            source: VolumeSource {
                path: PathBuf::new(),
                header,
                volume_index: 0,
                file_world_from_voxel: world_from_voxel,
                file_voxel_from_voxel: Affine::identity(),
                series: None,
            },
        }
    }

    /// Reads the volume of a DICOM folder that `choice` picks, or its only one with `None`,
    /// re-oriented to closest canonical RAS+.
    pub fn read_series_canonical(path: &Path, choice: Option<crate::dicom::SeriesChoice>) -> Result<Self> {
        Ok(crate::dicom::read_series(path, choice)?.into_canonical())
    }

    /// Reads volume `volume_index` of a file and re-orients it to closest canonical RAS+.
    pub fn read_canonical(path: &Path, volume_index: usize) -> Result<Self> {
        Ok(Self::read(path, volume_index)?.into_canonical())
    }

    /// Number of voxels.
    pub fn voxel_count(&self) -> usize {
        self.shape.iter().product()
    }

    /// Index into `data` of voxel (i, j, k).
    #[inline]
    pub fn index(&self, [i, j, k]: [usize; 3]) -> usize {
        i + self.shape[0] * (j + self.shape[1] * k)
    }

    /// The value at voxel (i, j, k), `None` outside the volume.
    pub fn value(&self, ijk: [usize; 3]) -> Option<f32> {
        if (0..3).all(|a| ijk[a] < self.shape[a]) { self.data.get(self.index(ijk)).copied() } else { None }
    }

    /// Size of a voxel along each axis in millimetres.
    pub fn voxel_size_mm(&self) -> [f64; 3] {
        self.world_from_voxel.column_norms()
    }

    /// Axis codes of the voxel order, `RAS` once canonical.
    pub fn axcodes(&self) -> String {
        self.world_from_voxel.axcodes()
    }

    /// Re-orders the voxels so that i, j and k run closest to R, A and S, by axis permutation
    /// and flips only (no resampling), updating `world_from_voxel` to match. Oblique and
    /// sheared affines keep their exact transform; only the voxel order changes.
    pub fn into_canonical(self) -> Self {
        let orientations = self.world_from_voxel.axis_orientations();
        let identity = orientations.iter().enumerate().all(|(i, o)| o.world_axis == i && !o.flipped);
        if identity {
            return self;
        }
        let (data, shape, voxel_from_canonical) = reorient(&self.data, self.shape, &orientations);
        Self {
            data,
            shape,
            world_from_voxel: self.world_from_voxel.then_after(&voxel_from_canonical),
            source: VolumeSource {
                file_voxel_from_voxel: self.source.file_voxel_from_voxel.then_after(&voxel_from_canonical),
                ..self.source
            },
        }
    }
}

impl Volume {
    /// Values laid out on this volume's voxels (`data`-ordered, e.g. a map computed on the
    /// canonical volume) carried back to the voxel order of the file it was read from, so that
    /// they can be written with the file's own affine and header geometry. Fails when this
    /// volume was resampled rather than only permuted and flipped (a study's secondary
    /// sequence on another grid).
    pub fn to_file_grid<T: Copy + Default>(&self, values: &[T]) -> std::result::Result<(Vec<T>, [usize; 3]), String> {
        if values.len() != self.voxel_count() {
            return Err(format!("{} values for a volume of {} voxels", values.len(), self.voxel_count()));
        }
        let file_shape = self.source.header.spatial_shape();
        let m = self.source.file_voxel_from_voxel.to_rows();
        // Each file axis must come from exactly one of this volume's axes, step +-1.
        let mut from = [(0usize, false); 3];
        for (row, axis) in m.iter().zip(from.iter_mut()) {
            let nonzero: Vec<usize> = (0..3).filter(|&c| row[c].abs() > 1e-9).collect();
            match nonzero.as_slice() {
                [c] if (row[*c].abs() - 1.0).abs() < 1e-9 => *axis = (*c, row[*c] < 0.0),
                _ => return Err("the volume was resampled, not only re-ordered, from its file".into()),
            }
        }
        let mut out = vec![T::default(); values.len()];
        let [fx, fy, _] = file_shape;
        for (file_index, value) in out.iter_mut().enumerate() {
            let file_voxel = [file_index % fx, (file_index / fx) % fy, file_index / (fx * fy)];
            let mut ijk = [0usize; 3];
            for (f, &(axis, flipped)) in from.iter().enumerate() {
                // file[f] = +-ijk[axis] + offset: solve for ijk[axis].
                let offset = m[f][3];
                let v = if flipped { offset - file_voxel[f] as f64 } else { file_voxel[f] as f64 - offset };
                let v = v.round();
                if v < 0.0 || v as usize >= self.shape[axis] {
                    return Err("the volume does not cover its file's grid".into());
                }
                ijk[axis] = v as usize;
            }
            *value = values[self.index(ijk)];
        }
        Ok((out, file_shape))
    }
}

impl Volume {
    /// The source file's colours (RGB24 or RGBA32, unscaled as the standard says) laid out on
    /// this volume's voxels, so that a re-oriented copy keeps them instead of the luminance in
    /// `data`. `None` when the source is not a colour NIfTI file.
    pub fn colour_voxels(&self) -> Result<Option<VoxelData>> {
        if self.source.series.is_some() || !self.source.header.datatype().is_colour() {
            return Ok(None);
        }
        let image = OpenImage::open(&self.source.path)?.read_all()?;
        let per_volume = self.source.header.voxels_per_volume();
        let range = self.source.volume_index * per_volume..(self.source.volume_index + 1) * per_volume;
        let on_this_grid = |message: String| VolumeError::invalid(Problem::OutOfRange(message), &self.source.path);
        Ok(Some(match &image.data {
            VoxelData::Rgb24(all) => VoxelData::Rgb24(self.from_file_grid(&all[range]).map_err(on_this_grid)?),
            VoxelData::Rgba32(all) => VoxelData::Rgba32(self.from_file_grid(&all[range]).map_err(on_this_grid)?),
            _ => return Ok(None),
        }))
    }

    /// Values laid out on the voxels of the file this volume was read from, carried to this
    /// volume's voxel order: the inverse of [`Volume::to_file_grid`], with the same
    /// restriction to volumes only permuted and flipped from their file.
    pub fn from_file_grid<T: Copy + Default>(&self, file_values: &[T]) -> std::result::Result<Vec<T>, String> {
        let [fx, fy, fz] = self.source.header.spatial_shape();
        if file_values.len() != fx * fy * fz {
            return Err(format!("{} values for a file grid of {} voxels", file_values.len(), fx * fy * fz));
        }
        let mut out = Vec::with_capacity(self.voxel_count());
        for k in 0..self.shape[2] {
            for j in 0..self.shape[1] {
                for i in 0..self.shape[0] {
                    let file_voxel = self.source.file_voxel_from_voxel.apply([i as f64, j as f64, k as f64]);
                    let index = |v: f64, n: usize| (v.fract().abs() < 1e-6 && v >= 0.0 && (v as usize) < n).then_some(v.round() as usize);
                    match (index(file_voxel[0], fx), index(file_voxel[1], fy), index(file_voxel[2], fz)) {
                        (Some(x), Some(y), Some(z)) => out.push(file_values[x + fx * (y + fy * z)]),
                        _ => return Err("the volume was resampled, not only re-ordered, from its file".into()),
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Permutes and flips a volume so that input axis `a` lands on output axis
/// `orientations[a].world_axis`, reversed when flipped. Returns the new data, its shape and
/// the transform from new voxel indices to old ones.
pub fn reorient<T: Copy + Default>(data: &[T], shape: [usize; 3], orientations: &[AxisOrientation; 3]) -> (Vec<T>, [usize; 3], Affine) {
    let mut out_shape = [1usize; 3];
    for (a, o) in orientations.iter().enumerate() {
        out_shape[o.world_axis] = shape[a];
    }
    let out_strides = [1, out_shape[0], out_shape[0] * out_shape[1]];
    // For each input axis: where index 0 lands and the step per index in the output.
    let mut start = 0isize;
    let mut step = [0isize; 3];
    for (a, o) in orientations.iter().enumerate() {
        let stride = out_strides[o.world_axis] as isize;
        if o.flipped {
            start += (shape[a] as isize - 1) * stride;
            step[a] = -stride;
        } else {
            step[a] = stride;
        }
    }
    let mut out = vec![T::default(); data.len()];
    let mut src = 0usize;
    for k in 0..shape[2] {
        let base_k = start + k as isize * step[2];
        for j in 0..shape[1] {
            let mut dst = base_k + j as isize * step[1];
            for value in &data[src..src + shape[0]] {
                out[dst as usize] = *value;
                dst += step[0];
            }
            src += shape[0];
        }
    }
    let mut rows = [[0.0; 4]; 3];
    for (a, o) in orientations.iter().enumerate() {
        if o.flipped {
            rows[a][o.world_axis] = -1.0;
            rows[a][3] = shape[a] as f64 - 1.0;
        } else {
            rows[a][o.world_axis] = 1.0;
        }
    }
    (out, out_shape, Affine::from_rows(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_values_go_back_to_the_file_order() {
        // An LPS-like file: i along -x, j along -y.
        let rows = [[-1.0, 0.0, 0.0, 3.0], [0.0, -1.0, 0.0, 2.0], [0.0, 0.0, 1.0, 0.0]];
        let data: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let voxels = crate::VoxelData::F32(data.clone());
        let header = crate::write::header_for(&[4, 3, 2], &voxels, &Affine::from_rows(rows), &crate::WriteOptions::default());
        let volume = Volume::from_parts(data.clone(), header, Affine::from_rows(rows));
        let canonical = volume.clone().into_canonical();
        assert_eq!(canonical.axcodes(), "RAS");
        let (back, shape) = canonical.to_file_grid(&canonical.data).unwrap();
        assert_eq!(shape, [4, 3, 2]);
        assert_eq!(back, data);
        assert!(volume.to_file_grid(&[0.0f32; 3]).is_err());
        let file_values: Vec<u32> = (0..24).collect();
        let on_canonical = canonical.from_file_grid(&file_values).unwrap();
        assert_eq!(canonical.to_file_grid(&on_canonical).unwrap().0, file_values);
        assert_eq!(on_canonical, canonical.data.iter().map(|v| *v as u32).collect::<Vec<_>>());
    }

    #[test]
    fn reorient_permutes_and_flips() {
        // Shape (2, 3, 1): i along -y (P), j along +x (R).
        let data: Vec<u32> = (0..6).collect();
        let o = [
            AxisOrientation { world_axis: 1, flipped: true },
            AxisOrientation { world_axis: 0, flipped: false },
            AxisOrientation { world_axis: 2, flipped: false },
        ];
        let (out, shape, voxel_from_canonical) = reorient(&data, [2, 3, 1], &o);
        assert_eq!(shape, [3, 2, 1]);
        for i in 0..2 {
            for j in 0..3 {
                let old = data[i + 2 * j];
                let (x, y) = (j, 1 - i);
                assert_eq!(out[x + 3 * y], old, "voxel ({i}, {j})");
                let back = voxel_from_canonical.apply([x as f64, y as f64, 0.0]);
                assert_eq!(back, [i as f64, j as f64, 0.0]);
            }
        }
    }
}
