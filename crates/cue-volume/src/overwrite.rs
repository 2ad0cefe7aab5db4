//! The rule that a result is never written over the image it came from: an output path that
//! names an input file (or the other half of an input's `.hdr`/`.img` pair, or a DICOM file of
//! an input folder) is refused before anything is written.

use std::path::{Path, PathBuf};

use super::error::{Problem, Result, VolumeError};

/// Refuses `output` when it is one of `inputs`, the other member of a NIfTI pair among them,
/// or a DICOM file inside an input folder. An output that does not exist yet replaces nothing.
pub fn ensure_not_an_input(output: &Path, inputs: &[PathBuf]) -> Result<()> {
    let Ok(target) = output.canonicalize() else { return Ok(()) };
    for input in inputs {
        let replaced = if input.is_dir() {
            input.canonicalize().is_ok_and(|folder| target.starts_with(folder)) && crate::dicom::has_dicom_marker(&target)
        } else {
            with_pair_partners(input).iter().any(|candidate| candidate.canonicalize().is_ok_and(|c| c == target))
        };
        if replaced {
            return Err(VolumeError::invalid(
                Problem::Unwritable(format!("the output would replace the input {}; choose another file", input.display())),
                output,
            ));
        }
    }
    Ok(())
}

/// `path` and, for one member of a NIfTI pair, the other (the reader's own pairing rule).
fn with_pair_partners(path: &Path) -> Vec<PathBuf> {
    std::iter::once(path.to_path_buf()).chain(crate::source::pair_partner(path)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_or_its_pair_partner_is_never_an_output() {
        let dir = tempfile::tempdir().unwrap();
        let touch = |name: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, b"x").unwrap();
            path
        };
        let (single, header, image, other) = (touch("t1.nii"), touch("pair.hdr"), touch("pair.img"), touch("other.nii"));
        assert!(ensure_not_an_input(&single, std::slice::from_ref(&single)).is_err());
        // Through another spelling of the same path.
        assert!(ensure_not_an_input(&dir.path().join(".").join("t1.nii"), std::slice::from_ref(&single)).is_err());
        assert!(ensure_not_an_input(&image, std::slice::from_ref(&header)).is_err());
        assert!(ensure_not_an_input(&header, std::slice::from_ref(&image)).is_err());
        assert!(ensure_not_an_input(&other, &[single.clone(), header]).is_ok());
        assert!(ensure_not_an_input(&dir.path().join("new.nii"), &[single]).is_ok());
        // A folder's DICOM file, not its other files.
        let mut dicom = vec![0u8; 128];
        dicom.extend_from_slice(b"DICM");
        std::fs::write(dir.path().join("IM0001"), dicom).unwrap();
        let folder = vec![dir.path().to_path_buf()];
        assert!(ensure_not_an_input(&dir.path().join("IM0001"), &folder).is_err());
        assert!(ensure_not_an_input(&other, &folder).is_ok());
    }
}
