//! Any byte string given to the DICOM reader yields slices or an error: never a panic, a hang
//! or an allocation the input cannot justify. Inputs without the 128-byte preamble and `DICM`
//! marker are given one, so the fuzzer spends its time inside the data set.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    if bytes.len() < 132 || &bytes[128..132] != b"DICM" {
        let mut framed = vec![0u8; 128];
        framed.extend_from_slice(b"DICM");
        framed.extend_from_slice(data);
        bytes = framed;
    }
    if let Ok((series, _pixels)) = cue_volume::dicom::read_bytes(&bytes) {
        for s in &series {
            let _ = s.label();
            let _ = s.orientation_name();
        }
    }
});
