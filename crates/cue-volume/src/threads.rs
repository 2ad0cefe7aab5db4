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

/// Makes the calling thread background work (model inference, training, evaluation in the
/// app): on Linux it is put under `SCHED_IDLE`, so any ordinary thread that wakes (the UI's,
/// the software rasteriser's) takes its core at once; when the window is idle the background
/// gets every core. A nice value only shares the CPU by weight: at nice 19 frames still
/// waited for the scheduler's slice of a running matmul (40-60 ms frames under llvmpipe while
/// a ViT-L/14 ran, against 30 ms idle). Elsewhere, or if refused, this does nothing more than
/// log at debug level.
pub fn make_this_thread_background() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: pid 0 is the calling thread; the parameter is read during the call only.
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "cannot make this thread background");
        }
    }
}

/// Builds rayon's global pool (which burn's CPU backend runs on) with background threads.
/// Call before any parallel work; if the pool already exists it is left as it is.
pub fn use_background_compute_pool() {
    let built = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("cue-compute-{i}"))
        .start_handler(|_| make_this_thread_background())
        .build_global();
    if let Err(e) = built {
        tracing::warn!("compute threads keep their priority: {e}");
    }
}

/// Whether the calling thread runs as background work (Linux; `None` elsewhere).
pub fn this_thread_is_background() -> Option<bool> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: pid 0 is the calling thread.
        let policy = unsafe { libc::sched_getscheduler(0) };
        return (policy >= 0).then_some(policy == libc::SCHED_IDLE);
    }
    #[allow(unreachable_code)]
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn background_threads_yield_and_others_keep_their_policy() {
        assert_eq!(this_thread_is_background(), Some(false));
        let background = std::thread::spawn(|| {
            make_this_thread_background();
            this_thread_is_background()
        })
        .join()
        .expect("thread");
        assert_eq!(background, Some(true));
        assert_eq!(this_thread_is_background(), Some(false), "only the calling thread changes");
    }
}
