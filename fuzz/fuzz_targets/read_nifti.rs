//! Any byte string given to the NIfTI reader yields an image or an error: never a panic, a
//! hang or an allocation the input cannot justify.
#![no_main]

use cue_volume::{OpenImage, Volume};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(image) = OpenImage::from_bytes(data.to_vec()) {
        let header = image.header.clone();
        if let Ok(image) = image.read_all() {
            // A readable header and data must also give an affine, axis codes and a
            // canonical volume without panicking.
            if let Ok(affine) = header.world_from_voxel() {
                let _ = affine.axcodes();
            }
            let _ = image.data.to_f32();
        }
    }
    if let Ok(image) = OpenImage::from_bytes(data.to_vec()) {
        if let Ok((header, values)) = image.read_volume_f32(0) {
            if let Ok(world_from_voxel) = header.world_from_voxel() {
                let volume = Volume::from_parts(values, header, world_from_voxel);
                let _ = volume.into_canonical();
            }
        }
    }
});
