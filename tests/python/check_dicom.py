"""Checks CUE's DICOM conversions (`cue canonical`) through nibabel, pydicom and dcm2niix's
answers, never through CUE's own reader.

    python check_dicom.py expected EXPECTED_JSON DATA_DIR OURS_DIR [NUMBER=NIFTI ...]
        OURS_DIR/<case path>/<series number>.nii.gz for every series of expected.json, and
        OURS_DIR/<case path>.nii.gz for single files; NUMBER=NIFTI pairs say which NIfTI file
        a series of brats-study must equal exactly.
    python check_dicom.py dcm2niix REFERENCE.nii OURS.nii.gz [TOLERANCE]
        the closest-canonical volumes agree: shape, affine to 1e-3, every voxel (within
        TOLERANCE grey levels, for lossy JPEG, which two decoders may round differently).
    python check_dicom.py pixels DICOM_FILE OURS.nii.gz
        one slice: every pixel of pydicom's modality-LUT output is at its own world position.
    python check_dicom.py frames ENHANCED_FILE ECHO_TIME OURS.nii.gz
        the frames of one echo time of a multi-frame file: every pixel at its world position,
        and together they fill OURS.
    python check_dicom.py map EXPECTED_JSON SERIES MAP_OF_DICOM.nii.gz MAP_OF_NIFTI.nii.gz
        a map of a DICOM series lies on the series' grid as dcm2niix assembles it, and equals
        the map of the same image from its NIfTI file.

Prints one line per check; exits 1 with the reason at the first disagreement.
"""

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np


def fail(message):
    print(f"FAIL {message}")
    sys.exit(1)


def canonical(path):
    image = nib.as_closest_canonical(nib.load(str(path)))
    return image.get_fdata(dtype=np.float64), image.affine


def check_series(ours, expected, label):
    data, affine = canonical(ours)
    if list(data.shape) != expected["canonical_shape"]:
        fail(f"{label}: shape {list(data.shape)}, dcm2niix {expected['canonical_shape']}")
    difference = np.abs(affine - np.asarray(expected["canonical_affine"])).max()
    if difference > 1e-3:
        fail(f"{label}: affine differs by {difference}:\n{affine}\nvs\n{np.asarray(expected['canonical_affine'])}")
    total = data.sum()
    if abs(total - expected["sum"]) > 1e-4 * max(abs(expected["sum"]), 1.0):
        fail(f"{label}: sum {total}, dcm2niix {expected['sum']}")
    for index, value in expected["samples"]:
        if data[tuple(index)] != value:
            fail(f"{label}: voxel {index} is {data[tuple(index)]}, dcm2niix {value}")
    print(f"ok {label}: shape {list(data.shape)}, affine within {difference:.1e}, sum {total:.0f}, {len(expected['samples'])} samples")
    return data, affine


def world_of_pixels(dataset, plane=None):
    """RAS world position of every pixel (row, column) of a single-frame dataset, from its own
    ImagePositionPatient, ImageOrientationPatient and PixelSpacing (LPS); of a multi-frame
    one's frame when `plane` holds that frame's position, orientation and pixel measures."""
    plane = plane or dataset
    ipp = np.asarray(plane.ImagePositionPatient, float)
    iop = np.asarray(plane.ImageOrientationPatient, float)
    row_spacing, column_spacing = (float(v) for v in plane.PixelSpacing)
    rows, columns = np.mgrid[0 : dataset.Rows, 0 : dataset.Columns]
    lps = ipp + iop[:3] * column_spacing * columns[..., None] + iop[3:] * row_spacing * rows[..., None]
    return lps * np.array([-1.0, -1.0, 1.0])


def check_pixels(dicom_file, ours, label=None):
    import pydicom
    from pydicom.pixels import apply_modality_lut

    label = label or Path(dicom_file).name
    dataset = pydicom.dcmread(str(dicom_file))
    expected = apply_modality_lut(dataset.pixel_array, dataset).astype(np.float64)
    check_placed(expected, world_of_pixels(dataset), ours, label)
    return expected


def check_placed(expected, world, ours, label):
    """Every pixel of `expected` (rows x columns) is CUE's voxel at its world position."""
    image = nib.load(str(ours))
    data = image.get_fdata(dtype=np.float64)
    voxel = np.linalg.inv(image.affine) @ np.concatenate([world.reshape(-1, 3).T, np.ones((1, world[..., 0].size))])
    ijk = np.rint(voxel[:3]).astype(int)
    if np.abs(voxel[:3] - ijk).max() > 1e-3:
        fail(f"{label}: pixel centres fall {np.abs(voxel[:3] - ijk).max()} voxels off CUE's grid")
    if (ijk < 0).any() or (ijk >= np.asarray(data.shape)[:, None]).any():
        fail(f"{label}: pixels fall outside CUE's volume {data.shape}")
    got = data[ijk[0], ijk[1], ijk[2]].reshape(expected.shape)
    wrong = np.argwhere(got != expected)
    if len(wrong):
        r, c = wrong[0]
        fail(f"{label}: {len(wrong)} pixels differ, the first (row {r}, column {c}): CUE {got[r, c]}, pydicom {expected[r, c]}")
    print(f"ok {label}: {expected.size} pixels in place, sum {expected.sum():.0f}")
    return ijk


def frames_mode(dicom_file, echo_time, ours):
    """Every frame of an Enhanced MR file whose per-frame EffectiveEchoTime is `echo_time`:
    each pixel, as pydicom decodes it (rescale 1, 0), lies at its world position in OURS (from
    the frame's plane position and the shared orientation and spacing), and those frames fill
    OURS's every slice."""
    import pydicom
    from pydicom.dataset import Dataset

    dataset = pydicom.dcmread(str(dicom_file))
    shared = dataset.SharedFunctionalGroupsSequence[0]
    pixels = dataset.pixel_array
    slices = 0
    covered = np.zeros(nib.load(str(ours)).shape, dtype=bool)
    for index, frame in enumerate(dataset.PerFrameFunctionalGroupsSequence):
        if float(frame.MREchoSequence[0].EffectiveEchoTime) != float(echo_time):
            continue
        plane = Dataset()
        plane.ImagePositionPatient = frame.PlanePositionSequence[0].ImagePositionPatient
        plane.ImageOrientationPatient = shared.PlaneOrientationSequence[0].ImageOrientationPatient
        plane.PixelSpacing = shared.PixelMeasuresSequence[0].PixelSpacing
        ijk = check_placed(pixels[index].astype(np.float64), world_of_pixels(dataset, plane), ours, f"frame {index + 1} (TE {echo_time})")
        covered[ijk[0], ijk[1], ijk[2]] = True
        slices += 1
    if not covered.all():
        fail(f"the {slices} frames of echo time {echo_time} fill {covered.sum()} of the {covered.size} voxels of {Path(ours).name}")
    print(f"ok {Path(ours).name}: the {slices} frames of echo time {echo_time}, each pixel in place")


def expected_mode(expected_json, data_dir, ours_dir, pairs):
    nifti = dict(pair.split("=", 1) for pair in pairs)
    cases = json.loads(Path(expected_json).read_text())["cases"]
    for case in cases:
        path = case["path"]
        if case.get("reject"):
            continue
        if "series" in case:
            for series in case["series"]:
                number = series["series"].split("_", 1)[0]
                ours = Path(ours_dir) / path / f"{number}.nii.gz"
                data, affine = check_series(ours, series, f"{path} series {series['series']}")
                if number in nifti:
                    reference, reference_affine = canonical(nifti[number])
                    if reference.shape != data.shape or np.abs(reference_affine - affine).max() > 1e-3:
                        fail(f"{path} series {number}: grid differs from {nifti[number]}")
                    if not np.array_equal(reference, data):
                        fail(f"{path} series {number}: {np.count_nonzero(reference != data)} voxels differ from {nifti[number]}")
                    print(f"ok {path} series {number}: equals {Path(nifti[number]).name} voxel for voxel")
        else:
            ours = Path(ours_dir) / f"{path}.nii.gz"
            pixels = check_pixels(Path(data_dir) / path, ours, path)
            rows, columns = pixels.shape
            checks = {
                "rows": (rows, case["rows"]),
                "columns": (columns, case["columns"]),
                "pixel_sum": (pixels.sum(), case["pixel_sum"]),
                "pixel_00": (pixels[0, 0], case["pixel_00"]),
                "pixel_mid": (pixels[rows // 2, columns // 2], case["pixel_mid"]),
            }
            for name, (got, want) in checks.items():
                if got != want:
                    fail(f"{path}: {name} {got}, expected.json {want}")
            total = nib.load(str(ours)).get_fdata().sum()
            if total != case["pixel_sum"]:
                fail(f"{path}: CUE's volume sums to {total}, expected.json {case['pixel_sum']}")
            print(f"ok {path}: rows, columns, sum, pixel_00, pixel_mid as expected.json")


def colour_mode(reference, ours):
    """Both RGB24, every channel of every voxel equal, the affines within 1e-3."""
    ref_image = nib.as_closest_canonical(nib.load(str(reference)))
    image = nib.as_closest_canonical(nib.load(str(ours)))
    label = Path(ours).name
    if image.get_data_dtype().names != ("R", "G", "B"):
        fail(f"{label}: written as {image.get_data_dtype()}, dcm2niix as {ref_image.get_data_dtype()} (colour)")
    ref_data, data = np.asanyarray(ref_image.dataobj), np.asanyarray(image.dataobj)
    if ref_data.shape[:3] != data.shape:
        fail(f"{label}: shape {data.shape}, dcm2niix {ref_data.shape}")
    difference = np.abs(ref_image.affine - image.affine).max()
    if difference > 1e-3:
        fail(f"{label}: affine differs from dcm2niix's by {difference}")
    for channel in "RGB":
        if not np.array_equal(ref_data[channel].reshape(data.shape), data[channel]):
            fail(f"{label}: the {channel} channel differs from dcm2niix's")
    print(f"ok {label}: colour, shape {data.shape}, affine within {difference:.1e}, every channel equal to dcm2niix's")


def dcm2niix_mode(reference, ours, tolerance=None):
    if nib.load(str(reference)).get_data_dtype().names:
        return colour_mode(reference, ours)
    ref_data, ref_affine = canonical(reference)
    data, affine = canonical(ours)
    label = Path(ours).name
    if ref_data.shape[:3] != data.shape:
        fail(f"{label}: shape {data.shape}, dcm2niix {ref_data.shape}")
    difference = np.abs(ref_affine - affine).max()
    if difference > 1e-3:
        fail(f"{label}: affine differs from dcm2niix's by {difference}:\n{affine}\nvs\n{ref_affine}")
    ref_data = ref_data.reshape(data.shape)
    worst = np.abs(ref_data - data).max()
    allowed = float(tolerance) if tolerance is not None else 1e-4 * max(1.0, np.abs(ref_data).max())
    if worst > allowed:
        fail(f"{label}: voxels differ from dcm2niix's by up to {worst}")
    print(f"ok {label}: shape {data.shape}, affine within {difference:.1e}, voxels within {worst:.1e} of dcm2niix")


def map_mode(expected_json, series, of_dicom, of_nifti):
    cases = json.loads(Path(expected_json).read_text())["cases"]
    expected = next(s for c in cases for s in c.get("series", []) if s["series"] == series)
    data, affine = canonical(of_dicom)
    if list(data.shape) != expected["canonical_shape"] or np.abs(affine - np.asarray(expected["canonical_affine"])).max() > 1e-3:
        fail(f"map of series {series}: grid {data.shape}\n{affine}\nis not dcm2niix's {expected['canonical_shape']}\n{expected['canonical_affine']}")
    reference, reference_affine = canonical(of_nifti)
    if not np.array_equal(reference, data) or np.abs(reference_affine - affine).max() > 1e-6:
        fail(f"map of series {series}: {np.count_nonzero(reference != data)} voxels differ from the NIfTI file's map")
    if np.ptp(data) == 0:
        fail(f"map of series {series} is constant")
    print(f"ok map of series {series}: on dcm2niix's grid, equal to the NIfTI file's map in all {data.size} voxels")


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "expected":
        expected_mode(args[0], args[1], args[2], args[3:])
    elif mode == "dcm2niix":
        dcm2niix_mode(*args)
    elif mode == "pixels":
        check_pixels(args[0], args[1])
    elif mode == "frames":
        frames_mode(*args)
    elif mode == "map":
        map_mode(*args)
    else:
        fail(f"unknown mode {mode}")
