//! Marks threads on which blocking work (file reading, model inference) is forbidden, so a
//! debug build catches the UI thread doing it.

use std::cell::Cell;

thread_local! {
    static FORBIDDEN: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// Forbids blocking work on the calling thread from now on; `name` appears in the panic.
pub fn forbid_blocking_work(name: &'static str) {
    FORBIDDEN.with(|f| f.set(Some(name)));
}

/// Whether the calling thread forbids blocking work.
pub fn blocking_work_forbidden() -> bool {
    FORBIDDEN.with(|f| f.get().is_some())
}

/// Debug-asserts that the calling thread allows blocking work such as `what`.
#[inline]
pub fn debug_assert_may_block(what: &str) {
    if cfg!(debug_assertions)
        && let Some(name) = FORBIDDEN.with(|f| f.get())
    {
        panic!("{what} on the {name} thread, which must never block");
    }
}
