//! 2-D slices of canonical (RAS+) volumes in display orientation.
//!
//! Conventions, as in ITK-SNAP: axial and coronal views show anterior/superior at the top;
//! radiological display puts the patient's right on the screen's left (neurological the
//! reverse); sagittal views show anterior on the left whichever convention is chosen.

use super::error::Problem;

/// A viewing plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum View {
    /// Plane of constant z (S/I): seen from the feet.
    Axial,
    /// Plane of constant x (R/L).
    Sagittal,
    /// Plane of constant y (A/P): seen from the front.
    Coronal,
}

impl View {
    /// All views, in the order of the number keys 1-3.
    pub const ALL: [View; 3] = [View::Axial, View::Sagittal, View::Coronal];

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Axial => "axial",
            Self::Sagittal => "sagittal",
            Self::Coronal => "coronal",
        }
    }

    /// The canonical axis held constant.
    pub fn normal_axis(self) -> usize {
        match self {
            Self::Sagittal => 0,
            Self::Coronal => 1,
            Self::Axial => 2,
        }
    }
}

impl std::str::FromStr for View {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "axial" | "ax" | "transverse" => Ok(Self::Axial),
            "sagittal" | "sag" => Ok(Self::Sagittal),
            "coronal" | "cor" => Ok(Self::Coronal),
            other => Err(format!("unknown view '{other}' (axial, sagittal or coronal)")),
        }
    }
}

/// Left-right convention of axial and coronal views.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DisplayConvention {
    /// Patient's left on the screen's right, as if facing the patient (radiology default).
    #[default]
    Radiological,
    /// Patient's left on the screen's left, as if looking from behind (neurology).
    Neurological,
}

/// How the screen axes of a view map to canonical voxel axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceAxes {
    /// Canonical axis along screen columns (left to right).
    pub column_axis: usize,
    /// Whether the voxel index decreases left to right.
    pub column_reversed: bool,
    /// Canonical axis along screen rows (top to bottom).
    pub row_axis: usize,
    /// Whether the voxel index decreases top to bottom.
    pub row_reversed: bool,
    /// Canonical axis held constant.
    pub normal_axis: usize,
}

impl SliceAxes {
    /// The axes of `view` under `convention`.
    pub fn new(view: View, convention: DisplayConvention) -> Self {
        let lateral_reversed = convention == DisplayConvention::Radiological;
        match view {
            View::Axial => Self {
                column_axis: 0,
                column_reversed: lateral_reversed,
                row_axis: 1,
                row_reversed: true,
                normal_axis: 2,
            },
            View::Coronal => Self {
                column_axis: 0,
                column_reversed: lateral_reversed,
                row_axis: 2,
                row_reversed: true,
                normal_axis: 1,
            },
            View::Sagittal => Self {
                column_axis: 1,
                column_reversed: true,
                row_axis: 2,
                row_reversed: true,
                normal_axis: 0,
            },
        }
    }

    /// The orientation letters at the left, right, top and bottom edges.
    pub fn edge_labels(&self) -> EdgeLabels {
        const LETTERS: [[char; 2]; 3] = [['R', 'L'], ['A', 'P'], ['S', 'I']];
        // `[positive, negative]`: a reversed axis shows its positive end first.
        let ends = |axis: usize, reversed: bool| {
            let [pos, neg] = LETTERS[axis];
            if reversed { (pos, neg) } else { (neg, pos) }
        };
        let (left, right) = ends(self.column_axis, self.column_reversed);
        let (top, bottom) = ends(self.row_axis, self.row_reversed);
        EdgeLabels { left, right, top, bottom }
    }

    /// Width and height in pixels of slices of a volume of `shape`.
    pub fn size(&self, shape: [usize; 3]) -> (usize, usize) {
        (shape[self.column_axis], shape[self.row_axis])
    }

    /// The canonical voxel shown at (column, row) of slice `slice_index`.
    pub fn voxel_at(&self, shape: [usize; 3], slice_index: usize, column: usize, row: usize) -> [usize; 3] {
        let mut ijk = [0usize; 3];
        ijk[self.normal_axis] = slice_index;
        ijk[self.column_axis] =
            if self.column_reversed { shape[self.column_axis] - 1 - column } else { column };
        ijk[self.row_axis] = if self.row_reversed { shape[self.row_axis] - 1 - row } else { row };
        ijk
    }

    /// The (column, row, slice index) at which a canonical voxel is shown.
    pub fn pixel_of(&self, shape: [usize; 3], ijk: [usize; 3]) -> (usize, usize, usize) {
        let c = ijk[self.column_axis];
        let r = ijk[self.row_axis];
        (
            if self.column_reversed { shape[self.column_axis] - 1 - c } else { c },
            if self.row_reversed { shape[self.row_axis] - 1 - r } else { r },
            ijk[self.normal_axis],
        )
    }

    /// Writes a slice's row-major `values` (`width` per row, in these axes) into canonical
    /// voxels `data` of `shape` at slice `slice_index`.
    pub fn write_slice(&self, data: &mut [f32], shape: [usize; 3], slice_index: usize, width: usize, values: &[f32]) {
        for (n, &v) in values.iter().enumerate() {
            let [i, j, k] = self.voxel_at(shape, slice_index, n % width, n / width);
            data[i + shape[0] * (j + shape[1] * k)] = v;
        }
    }

    /// For every pixel of slice `slice_index` in these axes (row-major), `sample` of the
    /// (column, row, slice index) where `other` axes show the same voxel.
    pub fn resample_from<T>(
        &self,
        other: &SliceAxes,
        shape: [usize; 3],
        slice_index: usize,
        mut sample: impl FnMut(usize, usize, usize) -> T,
    ) -> Vec<T> {
        let (width, height) = self.size(shape);
        let mut out = Vec::with_capacity(width * height);
        for row in 0..height {
            for column in 0..width {
                let (c, r, k) = other.pixel_of(shape, self.voxel_at(shape, slice_index, column, row));
                out.push(sample(c, r, k));
            }
        }
        out
    }
}

/// Orientation letters at the four edges of a view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EdgeLabels {
    /// Letter at the left edge.
    pub left: char,
    /// Letter at the right edge.
    pub right: char,
    /// Letter at the top edge.
    pub top: char,
    /// Letter at the bottom edge.
    pub bottom: char,
}

/// A 2-D slice ready for display: row 0 at the top, column 0 at the left.
#[derive(Clone, Debug, PartialEq)]
pub struct Slice<T = f32> {
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// `pixels[column + width * row]`.
    pub pixels: Vec<T>,
    /// Physical size of a pixel: (across, down) in millimetres.
    pub pixel_spacing_mm: [f64; 2],
    /// Orientation letters.
    pub edge_labels: EdgeLabels,
}

/// Number of slices of a canonical volume of `shape` in `view`.
pub fn slice_count(shape: [usize; 3], view: View) -> usize {
    shape[view.normal_axis()]
}

/// Cuts slice `slice_index` of `view` from canonical voxels `data` of `shape`, whose voxel
/// sizes are `voxel_size_mm`.
pub fn extract_slice<T: Copy>(
    data: &[T],
    shape: [usize; 3],
    voxel_size_mm: [f64; 3],
    view: View,
    slice_index: usize,
    convention: DisplayConvention,
) -> Result<Slice<T>, Problem> {
    let count = slice_count(shape, view);
    if slice_index >= count {
        return Err(Problem::OutOfRange(format!(
            "{} slice {slice_index} requested, the volume has {count}",
            view.name()
        )));
    }
    let axes = SliceAxes::new(view, convention);
    let (width, height) = axes.size(shape);
    let strides = [1, shape[0], shape[0] * shape[1]];
    let mut pixels = Vec::with_capacity(width * height);
    for row in 0..height {
        for column in 0..width {
            let ijk = axes.voxel_at(shape, slice_index, column, row);
            pixels.push(data[ijk[0] * strides[0] + ijk[1] * strides[1] + ijk[2] * strides[2]]);
        }
    }
    Ok(Slice {
        width,
        height,
        pixels,
        pixel_spacing_mm: [voxel_size_mm[axes.column_axis], voxel_size_mm[axes.row_axis]],
        edge_labels: axes.edge_labels(),
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn written_slices_read_back_and_planes_resample_through_voxels() {
        let shape = [4, 3, 5];
        let axes = SliceAxes::new(View::Coronal, DisplayConvention::Radiological);
        let (w, h) = axes.size(shape);
        let values: Vec<f32> = (0..w * h).map(|n| n as f32 + 1.0).collect();
        let mut data = vec![0.0; 60];
        axes.write_slice(&mut data, shape, 2, w, &values);
        let back = extract_slice(&data, shape, [1.0; 3], View::Coronal, 2, DisplayConvention::Radiological).unwrap();
        assert_eq!(back.pixels, values);
        // Through the axial axes: each axial pixel lands on the coronal plane j = 2 or not.
        let axial = SliceAxes::new(View::Axial, DisplayConvention::Neurological);
        let picked = axial.resample_from(&axes, shape, 1, |c, r, k| (k == 2).then(|| values[r * w + c]));
        let direct = extract_slice(&data, shape, [1.0; 3], View::Axial, 1, DisplayConvention::Neurological).unwrap();
        for (p, d) in picked.iter().zip(&direct.pixels) {
            assert_eq!(p.unwrap_or(0.0), *d);
        }
        assert!(picked.iter().any(Option::is_some));
    }

    use super::*;

    #[test]
    fn radiological_axial_puts_patient_right_on_screen_left() {
        let axes = SliceAxes::new(View::Axial, DisplayConvention::Radiological);
        let labels = axes.edge_labels();
        assert_eq!((labels.left, labels.right, labels.top, labels.bottom), ('R', 'L', 'A', 'P'));
        let neuro = SliceAxes::new(View::Axial, DisplayConvention::Neurological).edge_labels();
        assert_eq!((neuro.left, neuro.right), ('L', 'R'));
        let coronal = SliceAxes::new(View::Coronal, DisplayConvention::Radiological).edge_labels();
        assert_eq!((coronal.left, coronal.right, coronal.top, coronal.bottom), ('R', 'L', 'S', 'I'));
        let sagittal = SliceAxes::new(View::Sagittal, DisplayConvention::Neurological).edge_labels();
        assert_eq!((sagittal.left, sagittal.right, sagittal.top, sagittal.bottom), ('A', 'P', 'S', 'I'));
    }

    #[test]
    fn slice_pixels_follow_the_labels() {
        // A 3x4x5 volume whose value encodes its voxel index.
        let shape = [3, 4, 5];
        let data: Vec<usize> = (0..60).collect();
        let index = |i: usize, j: usize, k: usize| i + 3 * (j + 4 * k);
        let s = extract_slice(&data, shape, [1.0, 2.0, 3.0], View::Axial, 2, DisplayConvention::Radiological)
            .unwrap();
        assert_eq!((s.width, s.height), (3, 4));
        assert_eq!(s.pixel_spacing_mm, [1.0, 2.0]);
        // Top-left: most right (i = 2), most anterior (j = 3).
        assert_eq!(s.pixels[0], index(2, 3, 2));
        // Bottom-right: most left (i = 0), most posterior (j = 0).
        assert_eq!(s.pixels[11], index(0, 0, 2));
        let s = extract_slice(&data, shape, [1.0, 2.0, 3.0], View::Sagittal, 1, DisplayConvention::Radiological)
            .unwrap();
        assert_eq!((s.width, s.height), (4, 5));
        assert_eq!(s.pixels[0], index(1, 3, 4));
        assert!(extract_slice(&data, shape, [1.0; 3], View::Coronal, 4, DisplayConvention::Radiological).is_err());
    }

    #[test]
    fn voxel_and_pixel_mappings_are_inverse() {
        let shape = [5, 6, 7];
        for view in View::ALL {
            for convention in [DisplayConvention::Radiological, DisplayConvention::Neurological] {
                let axes = SliceAxes::new(view, convention);
                let (w, h) = axes.size(shape);
                for row in 0..h {
                    for column in 0..w {
                        let ijk = axes.voxel_at(shape, 3, column, row);
                        assert_eq!(axes.pixel_of(shape, ijk), (column, row, 3));
                    }
                }
            }
        }
    }
}
