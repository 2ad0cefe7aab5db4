#!/usr/bin/env python3
"""Writes NIfTI variants with nibabel and checks `cue canonical` on each against nibabel.

Usage: check_nifti_variants.py CUE_BINARY WORK_DIR

The variants are the ones a reader gets wrong where formats meet rather than in its common
path: every integer and float datatype in both byte orders, as `.nii`, `.nii.gz`, a
`.hdr`/`.img` pair and a gzipped pair (both pairs, with different voxels, side by side in one
folder under one stem, each opened by either member); scaling (slope 0, NaN, negative); every
qform/sform code combination with an oblique sform; 4-D and 5-D images and singleton axes;
NIfTI-2 in both byte orders; a header extension; RGB24 and RGBA32, which must stay colour; a
zero spacing (read as 1, as nibabel fixes it on load). For each, `cue canonical`'s output, read
by nibabel, must equal nibabel's `as_closest_canonical` of the input (affine 1e-4, voxels as
float32). Truncated files and an image without its header must be refused with one line naming
the file, leaving no output behind.

An sform that cannot place voxels (a NaN, an infinity, all-zero or rank-2 rows) is where nibabel
itself fails or returns NaN: beside a usable qform, CUE must read the qform (as ITK does), so the
output must equal nibabel's canonical of the file with its sform code set to 0; without one it
must be refused like the truncations.
"""

import os
import struct
import subprocess
import sys

import nibabel as nib
import numpy as np

AFFINE = np.array([[-1.2, 0, 0, 90], [0, 0, 1.5, -100], [0, -0.9, 0, 80], [0, 0, 0, 1.0]])
SHAPE = (7, 6, 5)
DTYPES = [np.uint8, np.int8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64, np.float32, np.float64]


def cue(binary, *args):
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120)


def first_volume(data):
    return data.reshape(data.shape[:3] + (-1,))[..., 0] if data.ndim > 3 else data


def check_canonical(binary, path, failures):
    out = path + ".canonical.nii"
    done = cue(binary, "canonical", path, out)
    name = os.path.basename(path)
    if done.returncode != 0:
        failures.append(f"{name}: refused: {done.stderr.strip()}")
        return
    reference = nib.as_closest_canonical(nib.load(path))
    expected = first_volume(reference.get_fdata(dtype=np.float64)).astype(np.float32)
    written = nib.load(out)
    actual = first_volume(np.asanyarray(written.dataobj, dtype=np.float32))
    if actual.shape != expected.shape:
        failures.append(f"{name}: shape {actual.shape}, nibabel {expected.shape}")
    elif not np.allclose(written.affine, reference.affine, atol=1e-4):
        failures.append(f"{name}: affine\n{written.affine}\nnibabel\n{reference.affine}")
    elif not np.array_equal(actual, expected, equal_nan=True):
        failures.append(f"{name}: voxels differ by up to {np.nanmax(np.abs(actual - expected))}")


def random_voxels(rng, dtype, shape=SHAPE):
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(max(int(info.min), -1000), min(int(info.max), 1000), size=shape).astype(dtype)
    return (rng.normal(size=shape) * 100).astype(dtype)


def save(image_class, voxels, path, byte_order="<", dtype=None):
    header = image_class.header_class()
    if byte_order == ">":
        header = header.as_byteswapped(">")
    image = image_class(voxels, AFFINE, header, dtype=dtype or voxels.dtype)
    nib.save(image, path)
    return path


def datatypes_and_file_kinds(rng, work, binary, failures):
    kinds = [(".nii", nib.Nifti1Image), (".nii.gz", nib.Nifti1Image), (".img", nib.Nifti1Pair), (".img.gz", nib.Nifti1Pair)]
    count = 0
    for dtype in DTYPES:
        for order in "<>":
            # All four kinds share one stem, so the plain and the gzipped pair lie side by side.
            stem = os.path.join(work, f"{np.dtype(dtype).name}{'le' if order == '<' else 'be'}")
            for ext, image_class in kinds:
                path = save(image_class, random_voxels(rng, dtype), stem + ext, order)
                check_canonical(binary, path, failures)
                if ext.startswith(".img"):
                    check_canonical(binary, stem + ext.replace(".img", ".hdr"), failures)
                count += 1
    return count


def scalings(rng, work, binary, failures):
    for index, (slope, inter) in enumerate([(2.5, -3.0), (0.0, 5.0), (float("nan"), float("nan")), (-1.5, 0.25)]):
        path = save(nib.Nifti1Image, random_voxels(rng, np.int16), os.path.join(work, f"scaled{index}.nii"))
        raw = bytearray(open(path, "rb").read())
        struct.pack_into("<ff", raw, 112, slope, inter)  # scl_slope, scl_inter
        open(path, "wb").write(raw)
        check_canonical(binary, path, failures)


def forms(rng, work, binary, failures):
    qform = np.array([[0, 0, 2.0, -10], [1.0, 0, 0, 20], [0, -1.1, 0, 30], [0, 0, 0, 1]])
    oblique_sform = np.array([[0.1, 1.2, 0.3, 5], [-0.9, 0.05, 0.2, 6], [0.2, -0.1, -1.7, 7], [0, 0, 0, 1]])
    for q_code, s_code in [(0, 0), (1, 0), (0, 1), (1, 2), (2, 1), (0, 4), (3, 0)]:
        image = nib.Nifti1Image(random_voxels(rng, np.float32), None)
        image.header.set_qform(qform, code=q_code)
        image.header.set_sform(oblique_sform, code=s_code)
        path = os.path.join(work, f"forms_{q_code}_{s_code}.nii")
        nib.save(image, path)
        check_canonical(binary, path, failures)


def shapes_and_versions(rng, work, binary, failures):
    for shape in [(7, 6, 5, 3), (7, 6, 5, 1), (7, 6, 1), (7, 6, 5, 1, 2), (1, 1, 1), (7, 1, 5), (1, 6, 5, 2)]:
        path = save(nib.Nifti1Image, random_voxels(rng, np.float32, shape), os.path.join(work, f"shape_{'x'.join(map(str, shape))}.nii.gz"))
        check_canonical(binary, path, failures)
    for dtype in (np.int16, np.float64):
        for order in "<>":
            path = save(nib.Nifti2Image, random_voxels(rng, dtype), os.path.join(work, f"nifti2_{np.dtype(dtype).name}{order == '>'}.nii.gz"), order)
            check_canonical(binary, path, failures)
    image = nib.Nifti1Image(random_voxels(rng, np.float32), AFFINE)
    image.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"a comment extension " * 9))
    path = os.path.join(work, "extension.nii")
    nib.save(image, path)
    check_canonical(binary, path, failures)


def colours(rng, work, binary, failures):
    """RGB24 and RGBA32 stay colour through `cue canonical` (a colour-FA map read as grey loses
    its directions), re-ordered as nibabel re-orders them; in a 4-D file `--volume` picks one."""
    for channels in ("RGB", "RGBA"):
        dtype = np.dtype([(c, "u1") for c in channels])
        for shape, volume, ext, image_class in [((7, 6, 5), 0, ".nii.gz", nib.Nifti1Image), ((7, 6, 5), 0, ".img", nib.Nifti1Pair), ((7, 6, 5, 3), 2, ".nii", nib.Nifti1Image)]:
            voxels = np.zeros(shape, dtype=dtype)
            for c in channels:
                voxels[c] = rng.integers(0, 256, size=shape)
            path = os.path.join(work, f"colour_{channels}_{len(shape)}d{ext}")
            nib.save(image_class(voxels, AFFINE), path)
            out = path + ".canonical.nii"
            done = cue(binary, "canonical", path, out, "--volume", str(volume))
            name = os.path.basename(path)
            if done.returncode != 0:
                failures.append(f"{name}: refused: {done.stderr.strip()}")
                continue
            reference = nib.as_closest_canonical(nib.load(path))
            expected = np.asanyarray(reference.dataobj)
            expected = expected[..., volume] if expected.ndim > 3 else expected
            written = nib.load(out)
            actual = np.asanyarray(written.dataobj)
            if written.get_data_dtype() != dtype:
                failures.append(f"{name}: written as {written.get_data_dtype()}, not {dtype}")
            elif actual.shape != expected.shape or not np.allclose(written.affine, reference.affine, atol=1e-4):
                failures.append(f"{name}: shape {actual.shape} or affine differs from nibabel's {expected.shape}")
            elif not all(np.array_equal(actual[c], expected[c]) for c in channels):
                failures.append(f"{name}: colours differ from nibabel's")


def write_with_sform(rng, path, srows, qform):
    image = nib.Nifti1Image(random_voxels(rng, np.float32), None)
    image.header.set_qform(qform, code=1 if qform is not None else 0)
    image.header.set_sform(np.eye(4), code=1)
    nib.save(image, path)
    raw = bytearray(open(path, "rb").read())
    struct.pack_into("<12f", raw, 280, *np.asarray(srows, dtype=np.float32).ravel())  # srow_x, srow_y, srow_z
    open(path, "wb").write(raw)
    return path


def unusable_sforms(rng, work, binary, failures):
    """Returns the paths that have no usable transform, for `refusals`."""
    zero_spacing = os.path.join(work, "zero_spacing.nii")
    image = nib.Nifti1Image(random_voxels(rng, np.float32), None)
    image.header.set_qform(np.diag([1.0, 2.0, 3.0, 1.0]), code=1)
    nib.save(image, zero_spacing)
    raw = bytearray(open(zero_spacing, "rb").read())
    struct.pack_into("<f", raw, 84, 0.0)  # pixdim[2]
    open(zero_spacing, "wb").write(raw)
    check_canonical(binary, zero_spacing, failures)
    qform = np.array([[0, 0, 2.0, -10], [1.1, 0, 0, 20], [0, -1.2, 0, 30], [0, 0, 0, 1]])
    bad = {
        "nan": [[np.nan, 0, 0, 1], [0, 1, 0, 2], [0, 0, 1, 3]],
        "inf": [[1, 0, 0, np.inf], [0, 1, 0, 2], [0, 0, 1, 3]],
        "zero": np.zeros((3, 4)),
        "rank2": [[1, 0, 0, 1], [0, 1, 0, 2], [0, 0, 0, 3]],
    }
    unplaceable = []
    for name, srows in bad.items():
        path = write_with_sform(rng, os.path.join(work, f"sform_{name}_with_qform.nii"), srows, qform)
        out = path + ".canonical.nii"
        done = cue(binary, "canonical", path, out)
        as_itk = nib.load(path)
        as_itk.header.set_sform(None, code=0)
        reference = nib.as_closest_canonical(nib.Nifti1Image(np.asanyarray(as_itk.dataobj), as_itk.header.get_qform(), as_itk.header))
        if done.returncode != 0:
            failures.append(f"{os.path.basename(path)}: refused although the qform is usable: {done.stderr.strip()}")
        elif not np.allclose(nib.load(out).affine, reference.affine, atol=1e-4):
            failures.append(f"{os.path.basename(path)}: affine\n{nib.load(out).affine}\nthe qform's\n{reference.affine}")
        elif not np.array_equal(np.asanyarray(nib.load(out).dataobj), reference.get_fdata(dtype=np.float32)):
            failures.append(f"{os.path.basename(path)}: voxels differ from the qform's canonical")
        unplaceable.append(write_with_sform(rng, os.path.join(work, f"sform_{name}_alone.nii"), srows, None))
    return unplaceable


def refusals(rng, work, binary, failures, unplaceable):
    whole = open(save(nib.Nifti1Image, random_voxels(rng, np.int16), os.path.join(work, "whole.nii")), "rb").read()
    cases = {f"cut{n}.nii": whole[:n] for n in (100, 348, 362, len(whole) - 1)}
    orphan = save(nib.Nifti1Pair, random_voxels(rng, np.int16), os.path.join(work, "orphan.img.gz"))
    os.remove(os.path.join(work, "orphan.hdr.gz"))
    open(os.path.join(work, "orphan.hdr"), "wb").write(open(os.path.join(work, "whole.nii"), "rb").read()[:348])
    for name, content in cases.items():
        open(os.path.join(work, name), "wb").write(content)
    for name in list(cases) + [os.path.basename(orphan)] + [os.path.basename(p) for p in unplaceable]:
        path = os.path.join(work, name)
        out = path + ".canonical.nii"
        done = cue(binary, "canonical", path, out)
        message = done.stderr.strip()
        if done.returncode == 0:
            failures.append(f"{name}: accepted")
        elif "\n" in message or "panick" in message or not message.endswith(name):
            failures.append(f"{name}: the error is not one line ending with the file: {message!r}")
        elif "vox_offset" in message and "vox_offset 352 " not in message:
            failures.append(f"{name}: the error misstates the header's vox_offset (352): {message!r}")
        elif os.path.exists(out):
            failures.append(f"{name}: an output was left behind")
        else:
            print(f"refused {name}: {message}")


def main(binary, work):
    rng = np.random.default_rng(20261207)
    failures = []
    count = datatypes_and_file_kinds(rng, work, binary, failures)
    scalings(rng, work, binary, failures)
    forms(rng, work, binary, failures)
    shapes_and_versions(rng, work, binary, failures)
    colours(rng, work, binary, failures)
    unplaceable = unusable_sforms(rng, work, binary, failures)
    refusals(rng, work, binary, failures, unplaceable)
    assert not failures, f"{len(failures)} variants disagree with nibabel:\n" + "\n".join(failures)
    print(f"ok: {count} datatype x byte order x file kind variants and the rest agree with nibabel")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
