"""Writes small synthetic DICOM series that exercise what a reader must get right, with pydicom.

    python make_dicom_series.py OUT_DIR
    python make_dicom_series.py OUT_DIR echoes-and-prior   (three volumes numbered 7, see below)
    python make_dicom_series.py OUT_DIR enhanced-echoes    (one multi-frame file, two echoes)

Each sub-folder of OUT_DIR is one case; OUT_DIR/manifest.json says, for each, whether it must
convert (and then dcm2niix's answer is the reference, or pydicom's slice by slice where
dcm2niix cannot read the transfer syntax) or be refused (and which words the
one-line error must hold). File names are random and carry no order; InstanceNumber runs
against the slice position in one case, so only the geometry can order the slices.

The volumes are random integers (seeded): any mix-up of rows, columns, slices or signs shows.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import convert_color_space
from pydicom.uid import (DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit,
                         generate_uid)

MR = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
rng = np.random.default_rng(20261203)


def rotation(ax, ay, az):
    """Rotation matrix of angles (degrees) about x, then y, then z."""
    ax, ay, az = np.radians([ax, ay, az])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def base(study_uid, series_uid, number, description, rows, columns, bits_stored=16, signed=True):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MR
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = MR
    ds.Modality = "MR"
    ds.PatientName = "SYNTHETIC^SERIES"
    ds.PatientID = "SYN-1"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = study_uid[:60] + ".1"
    ds.StudyDate = "20261203"
    ds.SeriesNumber = number
    ds.SeriesDescription = description
    ds.ProtocolName = description
    ds.Rows = rows
    ds.Columns = columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    return ds


def jpeg_baseline(plane):
    """One 8-bit plane as a baseline JPEG (Pillow, quality 90): lossy, as a PACS may store it."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(plane.astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_series(folder, volume, directions, spacing, origin, description, number, *, study_uid=None,
                 slope=1.0, intercept=0.0, bits_stored=16, signed=True, reverse_instances=False,
                 positions=None, syntax=ExplicitVRLittleEndian, truncate=None, bits_allocated=16, colour=None,
                 float_pixels=None):
    """volume[k, r, c]; directions = (row direction, column direction, normal) as LPS unit
    vectors; spacing = (between rows, between columns, between slices). With colour =
    (PhotometricInterpretation, PlanarConfiguration), volume[k, r, c] is an 8-bit RGB triplet,
    stored as RGB or converted to YBR_FULL (pydicom's conversion), interleaved or planar. With
    float_pixels = np.float32 or np.float64, volume[k] goes to Float Pixel Data or Double Float
    Pixel Data, as a parametric map stores its values."""
    folder.mkdir(parents=True, exist_ok=True)
    study_uid = study_uid or generate_uid()
    series_uid = generate_uid()
    count, rows, columns = volume.shape[:3]
    row_dir, col_dir, normal = (np.asarray(d, float) for d in directions)
    for k in range(count):
        ds = base(study_uid, series_uid, number, description, rows, columns, bits_stored, signed)
        ds.file_meta.TransferSyntaxUID = syntax
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = count - k if reverse_instances else k + 1
        position = positions[k] if positions is not None else np.asarray(origin) + normal * spacing[2] * k
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*row_dir, *col_dir)]
        ds.PixelSpacing = [f"{spacing[0]:.6f}", f"{spacing[1]:.6f}"]
        ds.SliceThickness = f"{spacing[2]:.6f}"
        ds.SpacingBetweenSlices = f"{spacing[2]:.6f}"
        ds.RescaleSlope = f"{slope}"
        ds.RescaleIntercept = f"{intercept}"
        ds.EchoTime = "3"
        ds.RepetitionTime = "2000"
        if bits_allocated == 8:
            ds.BitsAllocated = 8
        if float_pixels is not None:
            for integer_only in ("PixelRepresentation", "BitsStored", "HighBit", "RescaleSlope", "RescaleIntercept"):
                delattr(ds, integer_only)
            ds.BitsAllocated = 32 if float_pixels == np.float32 else 64
            values = volume[k].astype(float_pixels).tobytes()
            if float_pixels == np.float32:
                ds.FloatPixelData = values
            else:
                ds.DoubleFloatPixelData = values
        elif colour is not None:
            photometric, planar = colour
            pixels = volume[k].astype(np.uint8)
            if photometric != "RGB":
                pixels = convert_color_space(pixels, "RGB", photometric)
            ds.SamplesPerPixel = 3
            ds.PhotometricInterpretation = photometric
            ds.PlanarConfiguration = planar
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
            ds.PixelData = (pixels.transpose(2, 0, 1) if planar else pixels).tobytes()
        elif syntax == JPEGBaseline8Bit:
            ds.PixelData = encapsulate([jpeg_baseline(volume[k])])
            ds["PixelData"].VR = "OB"
            ds.LossyImageCompression = "01"
        else:
            dtype = (np.int8 if signed else np.uint8) if bits_allocated == 8 else (np.int16 if signed else np.uint16)
            pixels = volume[k].astype(dtype).tobytes()
            if truncate is not None and k == truncate:
                pixels = pixels[: len(pixels) // 3]
            ds.PixelData = pixels
        name = f"{rng.integers(0, 2**48):012X}"
        ds.save_as(folder / name, enforce_file_format=True, implicit_vr=syntax == ImplicitVRLittleEndian)
    return series_uid


def write_enhanced(folder, volume, directions, spacing, origin, description, number, echo_times=None):
    """One Enhanced MR file holding every slice as a frame, placed by per-frame groups. With
    echo_times, volume[e] is echo e's stack, every echo's frames at the same positions and
    told apart only by their per-frame EffectiveEchoTime, as a multi-echo scan stores them."""
    folder.mkdir(parents=True, exist_ok=True)
    echoes = volume if echo_times is not None else volume[np.newaxis]
    echo_times = echo_times if echo_times is not None else [None]
    count, rows, columns = echoes.shape[1:4]
    row_dir, col_dir, normal = (np.asarray(d, float) for d in directions)
    ds = base(generate_uid(), generate_uid(), number, description, rows, columns)
    ds.SOPClassUID = ENHANCED_MR
    ds.file_meta.MediaStorageSOPClassUID = ENHANCED_MR
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = 1
    ds.NumberOfFrames = count * len(echo_times)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    shared = Dataset()
    orientation = Dataset()
    orientation.ImageOrientationPatient = [f"{v:.8f}" for v in (*row_dir, *col_dir)]
    measures = Dataset()
    measures.PixelSpacing = [f"{spacing[0]:.6f}", f"{spacing[1]:.6f}"]
    measures.SliceThickness = f"{spacing[2]:.6f}"
    measures.SpacingBetweenSlices = f"{spacing[2]:.6f}"
    transform = Dataset()
    transform.RescaleSlope = "1"
    transform.RescaleIntercept = "0"
    transform.RescaleType = "US"
    shared.PlaneOrientationSequence = [orientation]
    shared.PixelMeasuresSequence = [measures]
    shared.PixelValueTransformationSequence = [transform]
    ds.SharedFunctionalGroupsSequence = [shared]
    dimension = Dataset()
    dimension.DimensionIndexPointer = 0x00209057
    dimension.FunctionalGroupPointer = 0x00209111
    ds.DimensionIndexSequence = [dimension]
    if echo_times[0] is not None:
        by_echo = Dataset()
        by_echo.DimensionIndexPointer = 0x00189082  # EffectiveEchoTime
        by_echo.FunctionalGroupPointer = 0x00189114  # MREchoSequence
        ds.DimensionIndexSequence.append(by_echo)
    frames = []
    # Frames stored in a shuffled order: only their positions (and echo times) place them.
    order = [(e, k) for e, k in rng.permutation([(e, k) for e in range(len(echo_times)) for k in range(count)])]
    for e, k in order:
        frame = Dataset()
        plane = Dataset()
        plane.ImagePositionPatient = [f"{v:.6f}" for v in np.asarray(origin) + normal * spacing[2] * k]
        frame.PlanePositionSequence = [plane]
        content = Dataset()
        content.InStackPositionNumber = int(k) + 1
        content.StackID = "1"
        content.DimensionIndexValues = [int(k) + 1] if echo_times[e] is None else [int(k) + 1, int(e) + 1]
        frame.FrameContentSequence = [content]
        if echo_times[e] is not None:
            echo = Dataset()
            echo.EffectiveEchoTime = echo_times[e]
            frame.MREchoSequence = [echo]
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = frames
    ds.PixelData = np.stack([echoes[e, k] for e, k in order]).astype(np.int16).tobytes()
    ds.save_as(folder / f"{rng.integers(0, 2**48):012X}", enforce_file_format=True)


def main(out):
    out = Path(out)
    manifest = {}
    axial = ([1, 0, 0], [0, 1, 0], [0, 0, 1])

    r = rotation(25, -10, 15)
    oblique = (r[:, 0], r[:, 1], np.cross(r[:, 0], r[:, 1]))
    vol = rng.integers(-300, 1200, size=(12, 20, 24))
    write_series(out / "oblique", vol, oblique, (0.9, 1.1, 2.5), (-60.0, -80.0, -30.0), "t1_mprage_tra_oblique", 3,
                 slope=0.5, intercept=-100.0)
    manifest["oblique"] = {"convert": True, "sequence": "T1"}

    sagittal = ([0, 1, 0], [0, 0, -1], [-1, 0, 0])
    vol = rng.integers(0, 4096, size=(10, 18, 16))
    write_series(out / "sagittal-12bit", vol, sagittal, (1.2, 1.0, 1.5), (40.0, -90.0, 70.0), "T2 TSE SAG", 4,
                 bits_stored=12, signed=False)
    manifest["sagittal-12bit"] = {"convert": True, "sequence": "T2"}

    coronal = ([1, 0, 0], [0, 0, -1], [0, -1, 0])
    vol = rng.integers(-50, 900, size=(9, 14, 22))
    write_series(out / "coronal-reversed", vol, coronal, (1.0, 0.8, 3.0), (-80.0, 40.0, 60.0), "COR FLAIR", 5,
                 reverse_instances=True, syntax=ImplicitVRLittleEndian)
    manifest["coronal-reversed"] = {"convert": True, "sequence": "FLAIR"}

    study = generate_uid()
    write_series(out / "two-series", rng.integers(0, 500, size=(6, 12, 12)), axial, (2.0, 2.0, 4.0),
                 (-12.0, -12.0, -10.0), "AX T2", 7, study_uid=study)
    write_series(out / "two-series", rng.integers(0, 500, size=(5, 10, 12)), axial, (2.0, 2.0, 5.0),
                 (-12.0, -10.0, -10.0), "AX T1 POST GD", 8, study_uid=study)
    manifest["two-series"] = {"convert": True, "series": [7, 8], "sequences": {"7": "T2", "8": "T1CE"}}

    write_enhanced(out / "enhanced", rng.integers(0, 1000, size=(8, 16, 12)), oblique, (1.0, 1.5, 2.0),
                   (10.0, -20.0, 5.0), "enhanced t2 flair", 9)
    manifest["enhanced"] = {"convert": True, "sequence": "FLAIR"}

    write_series(out / "deflate", rng.integers(-1000, 3000, size=(7, 11, 13)), sagittal, (0.7, 0.9, 1.2),
                 (-20.0, -50.0, 40.0), "sag t1 mprage", 13, syntax=DeflatedExplicitVRLittleEndian)
    # dcm2niix 1.0.20220720 does not read deflate: pydicom, slice by slice, is the reference.
    manifest["deflate"] = {"convert": True, "sequence": "T1", "reference": "pydicom"}

    # Smooth content, so that the lossy coding stays close to the original everywhere.
    x, y, z = np.meshgrid(np.arange(16), np.arange(12), np.arange(6), indexing="ij")
    smooth = (128 + 100 * np.sin(x / 3.0) * np.cos(y / 4.0) * np.cos(z / 5.0)).transpose(2, 1, 0)
    write_series(out / "jpeg-baseline", smooth, axial, (1.5, 1.5, 3.0), (-10.0, -10.0, 0.0), "AX T2 FSE", 14,
                 syntax=JPEGBaseline8Bit, bits_stored=8, signed=False, bits_allocated=8)
    # Two JPEG decoders may round the inverse DCT differently: within 2 grey levels of dcm2niix.
    manifest["jpeg-baseline"] = {"convert": True, "sequence": "T2", "tolerance": 2.0}

    vol = rng.integers(0, 800, size=(8, 10, 10))
    positions = [np.array([0.0, 0.0, 2.0 * k]) for k in range(8)]
    del positions[4]
    write_series(out / "missing-slice", vol[:7], axial, (1.0, 1.0, 2.0), None, "AX T1", 10, positions=positions)
    manifest["missing-slice"] = {"convert": False, "error": ["missing", "4.000 mm"]}

    positions = [np.array([0.0, 0.0, z]) for z in (0.0, 2.0, 4.0, 6.7, 8.7, 10.7)]
    write_series(out / "irregular", vol[:6], axial, (1.0, 1.0, 2.0), None, "AX T1", 11, positions=positions)
    manifest["irregular"] = {"convert": False, "error": ["irregular slice spacing", "2.700 mm"]}

    write_series(out / "truncated-pixels", vol[:5], axial, (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), "AX T1", 12, truncate=2)
    manifest["truncated-pixels"] = {"convert": False, "error": ["pixel data"]}

    (out / "not-dicom").mkdir(parents=True, exist_ok=True)
    (out / "not-dicom" / "IM0001").write_text("this is a report, not an image\n")
    manifest["not-dicom"] = {"convert": False, "error": ["no DICOM images"]}

    # The same series exported twice into one folder (a CD's copy beside the export): the same
    # instances in two files each; read once, as dcm2niix reads them.
    write_series(out / "exported-twice", rng.integers(0, 900, size=(6, 10, 12)), axial, (1.1, 0.9, 3.0), (5.0, -5.0, -9.0),
                 "AX T1 SE", 15)
    (out / "exported-twice" / "copy").mkdir()
    for path in sorted((out / "exported-twice").iterdir()):
        if path.is_file():
            (out / "exported-twice" / "copy" / path.name).write_bytes(path.read_bytes())
    manifest["exported-twice"] = {"convert": True, "sequence": "T1", "copies": 6}

    # Colour, as a secondary capture or a fused map may come: kept as RGB, as dcm2niix writes it.
    write_series(out / "rgb-planar", rng.integers(0, 256, size=(5, 9, 11, 3)), coronal, (1.2, 0.8, 2.0), (3.0, 20.0, -4.0),
                 "fused colour map", 16, colour=("RGB", 1))
    manifest["rgb-planar"] = {"convert": True, "sequence": "T1"}
    write_series(out / "ybr-full", rng.integers(0, 256, size=(4, 8, 10, 3)), axial, (1.0, 1.0, 2.5), (-4.0, 6.0, 1.0),
                 "colour ybr", 17, colour=("YBR_FULL", 0))
    manifest["ybr-full"] = {"convert": True, "sequence": "T1"}

    # Parametric maps store real values in Float (or Double Float) Pixel Data, which
    # dicom-pixeldata does not decode: read as dcm2niix reads them.
    write_series(out / "float-map", rng.normal(size=(4, 6, 7)) * 1000, sagittal, (1.0, 1.5, 2.0), (3.0, 4.0, 5.0), "T1 map", 18,
                 float_pixels=np.float32, syntax=ImplicitVRLittleEndian)
    manifest["float-map"] = {"convert": True, "sequence": "T1"}
    write_series(out / "double-float-map", rng.normal(size=(3, 5, 6)) * 1e-3, axial, (2.0, 2.0, 4.0), (0.0, 0.0, 0.0), "ADC", 19,
                 float_pixels=np.float64)
    manifest["double-float-map"] = {"convert": True, "sequence": "T1"}

    # Direction cosines with noise around 0 ("0" beside "-1e-07") and either side of a
    # rounding edge (0.0004999 and 0.0005001): one stack, as dcm2niix reads it.
    write_series(out / "orientation-noise", rng.integers(0, 700, size=(6, 9, 10)), coronal, (1.0, 1.0, 2.0), (4.0, 30.0, -6.0),
                 "COR T2", 21)
    ordered = sorted((out / "orientation-noise").iterdir(), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[1]))
    for index, path in enumerate(ordered):
        ds = pydicom.dcmread(path)
        odd = index % 2 == 1
        ds.ImageOrientationPatient = ["1", "-1e-07" if odd else "0", "0.0005001" if odd else "0.0004999", "0", "0", "-1"]
        ds.save_as(path, enforce_file_format=True)
    manifest["orientation-noise"] = {"convert": True, "sequence": "T2"}

    # A Siemens mosaic (an EPI run's export): six 8 x 8 slices tiled in each 24 x 24 image.
    # Read as stacked images it would show tiles at the wrong place, so it is refused.
    write_series(out / "mosaic", rng.integers(0, 500, size=(2, 24, 24)), axial, (2.0, 2.0, 3.0), (0.0, 0.0, 0.0), "ep2d_bold", 20)
    for path in (out / "mosaic").iterdir():
        ds = pydicom.dcmread(path)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC"]
        ds.Manufacturer = "SIEMENS"
        ds.add_new(0x00190010, "LO", "SIEMENS MR HEADER")
        ds.add_new(0x0019100A, "US", 6)
        ds.save_as(path, enforce_file_format=True)
    manifest["mosaic"] = {"convert": False, "error": ["Siemens mosaic", "6 slices", "dcm2niix"]}

    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))


def echoes_and_prior(out):
    """One folder holding a two-echo series (one SeriesInstanceUID, EchoNumbers 1 and 2) and a
    prior study's series with the same SeriesNumber: three volumes numbered 7; a two-echo series
    8 without EchoNumbers (echo times 12 and 96 ms); a dynamic series 9 of three repeats without
    temporal positions; and a localizer (series 1, one slice each way). Each volume's files lie in their own sub-folder (echo1,
    echo2, prior, localizer/sagittal, ...), so dcm2niix can convert each alone."""
    out = Path(out)
    axial = ([1, 0, 0], [0, 1, 0], [0, 0, 1])
    study, prior_study = generate_uid(), generate_uid()
    first = rng.integers(0, 1000, size=(5, 8, 9))
    write_series(out / "echo1", first, axial, (1.0, 1.2, 2.0), (-4.0, -5.0, 0.0), "T2 DUAL ECHO", 7, study_uid=study)
    write_series(out / "echo2", first[:, ::-1] // 2 + 7, axial, (1.0, 1.2, 2.0), (-4.0, -5.0, 0.0), "T2 DUAL ECHO", 7, study_uid=study)
    write_series(out / "prior", rng.integers(0, 1000, size=(4, 8, 9)), axial, (1.0, 1.2, 2.5), (-4.0, -5.0, 1.0), "T2 DUAL ECHO", 7,
                 study_uid=prior_study)
    series_uid = None
    for echo, echo_time in ((1, "12"), (2, "96")):
        for path in sorted((out / f"echo{echo}").iterdir()):
            ds = pydicom.dcmread(path)
            series_uid = series_uid or ds.SeriesInstanceUID
            ds.SeriesInstanceUID = series_uid
            ds.EchoNumbers = echo
            ds.EchoTime = echo_time
            ds.save_as(path, enforce_file_format=True)
    for path in sorted((out / "prior").iterdir()):
        ds = pydicom.dcmread(path)
        ds.StudyDate = "20251104"
        ds.save_as(path, enforce_file_format=True)
    # Series 8: two echoes told apart only by EchoTime (no EchoNumbers), as some exports
    # write them; dcm2niix splits them by echo time.
    late = rng.integers(0, 1000, size=(4, 8, 9))
    write_series(out / "te12", rng.integers(0, 1000, size=(4, 8, 9)), axial, (1.0, 1.2, 2.0), (-4.0, -5.0, 0.0), "T2 DE", 8,
                 study_uid=study)
    write_series(out / "te96", late, axial, (1.0, 1.2, 2.0), (-4.0, -5.0, 0.0), "T2 DE", 8, study_uid=study)
    series_uid = None
    for folder in ("te12", "te96"):
        for path in sorted((out / folder).iterdir()):
            ds = pydicom.dcmread(path)
            series_uid = series_uid or ds.SeriesInstanceUID
            ds.SeriesInstanceUID = series_uid
            ds.EchoTime = folder[2:]
            ds.save_as(path, enforce_file_format=True)
    # Series 9: a dynamic run without TemporalPositionIdentifier, three repeats of four
    # positions, told apart only by AcquisitionNumber (InstanceNumber runs the other way). Each
    # repeat's files lie in dynamic/tK, so dcm2niix can convert each alone.
    series_uid = None
    for repeat in range(3):
        folder = out / "dynamic" / f"t{repeat + 1}"
        write_series(folder, rng.integers(0, 1000, size=(4, 8, 9)), axial, (1.0, 1.2, 2.0), (-4.0, -5.0, 0.0), "ep2d_perf", 9,
                     study_uid=study)
        for path in sorted(folder.iterdir()):
            ds = pydicom.dcmread(path)
            series_uid = series_uid or ds.SeriesInstanceUID
            ds.SeriesInstanceUID = series_uid
            ds.AcquisitionNumber = repeat + 1
            ds.AcquisitionTime = f"1200{10 * repeat:02d}.000"
            ds.InstanceNumber = 100 - 10 * repeat - int(ds.InstanceNumber)
            ds.save_as(path, enforce_file_format=True)
    # A localizer: one series, one slice each way (split by orientation into three volumes).
    ways = {"sagittal": ([0, 1, 0], [0, 0, -1], [-1, 0, 0]), "coronal": ([1, 0, 0], [0, 0, -1], [0, -1, 0]), "axial": axial}
    localizer_uid = None
    for way, directions in ways.items():
        write_series(out / "localizer" / way, rng.integers(0, 500, size=(1, 8, 8)), directions, (2.0, 2.0, 5.0), (0.0, 0.0, 0.0),
                     "LOCALIZER", 1, study_uid=study)
        for path in sorted((out / "localizer" / way).iterdir()):
            ds = pydicom.dcmread(path)
            localizer_uid = localizer_uid or ds.SeriesInstanceUID
            ds.SeriesInstanceUID = localizer_uid
            ds.save_as(path, enforce_file_format=True)


def enhanced_echoes(out):
    """One Enhanced MR file of series 21 holding two echoes (EffectiveEchoTime 4.5 and 9 ms),
    five oblique slices each, at the same positions, frames shuffled. dcm2niix 1.0.20220720
    interleaves such echoes in its output, so the check is pydicom's, frame by frame
    (`check_dicom.py frames`)."""
    r = rotation(25, -10, 15)
    oblique = (r[:, 0], r[:, 1], np.cross(r[:, 0], r[:, 1]))
    write_enhanced(Path(out), rng.integers(0, 1000, size=(2, 5, 8, 9)), oblique, (1.0, 1.5, 2.0), (10.0, -20.0, 5.0), "me_gre",
                   21, echo_times=[4.5, 9.0])


if __name__ == "__main__":
    if sys.argv[2:] == ["echoes-and-prior"]:
        echoes_and_prior(sys.argv[1])
    elif sys.argv[2:] == ["enhanced-echoes"]:
        enhanced_echoes(sys.argv[1])
    else:
        main(sys.argv[1])
