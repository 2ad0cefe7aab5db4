//! A fence around the DICOM crates: a malformed file must give an error naming it, but their
//! decoders can panic on some (dicom-transfer-syntax-registry 0.10.1's RLE decoder indexes past
//! a truncated segment, found by `tests/dicom.rs`). Decoding runs inside [`fenced`], which turns
//! a panic into an error and keeps the panic's report off the terminal while it does.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};

thread_local! {
    static FENCED: Cell<bool> = const { Cell::new(false) };
}

static HOOK: std::sync::Once = std::sync::Once::new();

/// Runs `f`; a panic inside becomes `Err` with its message. Panics elsewhere are reported as
/// before (the previous hook runs for them).
pub fn fenced<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !FENCED.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let outer = FENCED.with(|f| f.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    FENCED.with(|f| f.set(outer));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown failure".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_becomes_an_error() {
        assert_eq!(fenced(|| 3), Ok(3));
        let slice: &[u8] = &[1, 2];
        let index = slice.len() + 1;
        let caught = fenced(|| slice[index]);
        assert!(caught.unwrap_err().contains("index out of bounds"));
        // Outside a fence the flag is clear again.
        assert!(!FENCED.with(Cell::get));
    }
}
