//! Facts about this process.

/// A memory field of `/proc/self/status` (`VmRSS`, `VmHWM`, ...) in bytes; `None` off Linux.
pub fn memory_status_bytes(field: &str) -> Option<u64> {
    kib_field_bytes(&std::fs::read_to_string("/proc/self/status").ok()?, field)
}

/// The system's memory available to new work (`MemAvailable` of `/proc/meminfo`) in bytes;
/// `None` off Linux.
pub fn mem_available_bytes() -> Option<u64> {
    kib_field_bytes(&std::fs::read_to_string("/proc/meminfo").ok()?, "MemAvailable:")
}

/// The `field` line of a `/proc` file of `Name:  N kB` lines, in bytes.
fn kib_field_bytes(text: &str, field: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The largest allocation glibc serves from its heaps rather than a fresh mapping: above
/// ViT-L/14's largest buffer at batch 8, its MLP's `[2056, 4096]` f32 activations (33.7 MB,
/// just over glibc's former 32 MiB cap, so they were mapped and faulted in afresh every layer).
const MMAP_THRESHOLD_BYTES: i32 = 256 << 20;
/// Free memory glibc keeps at the top of a heap before it gives some back to the system.
const TRIM_THRESHOLD_BYTES: i32 = 1 << 30;

/// Keeps freed memory in the process for the next allocation of its size (glibc on Linux).
///
/// Tensor work frees and allocates buffers of the same megabytes every layer. By default glibc
/// serves the larger ones with fresh mappings and returns freed heap tops to the system, so
/// every layer's buffers were page-faulted and zeroed again by the kernel: a tenth of a ViT-L/14
/// forward on the CPU went to `clear_page` and page faults (perf), and these settings made batch
/// 8 about 17 % faster (README, "Measured"). The price is that the process keeps up to 1 GiB
/// of freed memory for reuse. Left alone when the user set `GLIBC_TUNABLES` for malloc. Returns
/// whether the settings were applied.
pub fn keep_freed_memory_for_reuse() -> bool {
    if std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("malloc")) {
        return false;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes glibc's malloc parameters; called before the threads
        // that allocate tensors start, and valid at any time besides.
        let mmap = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) };
        let trim = unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) };
        return mmap == 1 && trim == 1;
    }
    #[allow(unreachable_code)]
    false
}

/// Asks the kernel to back the whole 2 MiB pages inside `buffer` (a new `Vec`'s spare capacity)
/// with transparent huge pages, where the system leaves that to each process (`madvise` mode, the
/// usual default), before the memory is first written. For large buffers that are streamed
/// through again and again (a model's packed weights, a layer's activations): with 4 KiB pages
/// the TLB misses made ViT-L/14's bf16 product on the CPU vary by a fifth from one build to the
/// next, whichever way the allocator happened to lay the buffers out (README, "Measured").
/// Does nothing on other systems, for buffers smaller than a huge page, or where the kernel
/// declines.
pub fn advise_huge_pages<T>(buffer: &[std::mem::MaybeUninit<T>]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = buffer.as_ptr() as usize;
        let first = start.next_multiple_of(HUGE);
        let end = (start + std::mem::size_of_val(buffer)) / HUGE * HUGE;
        if end > first {
            // SAFETY: madvise with MADV_HUGEPAGE changes no contents and no mapping; the range
            // lies inside memory this process allocated.
            unsafe { libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = buffer;
}

/// Lets a closed output end the process quietly, as it ends `cat` or `grep`: `cue info F | head`
/// would otherwise panic on its next print. Rust ignores SIGPIPE, so a write to a closed pipe
/// fails and `println!` panics; the default action ends the process without a message. Sockets
/// are not affected (std and mio send with MSG_NOSIGNAL), so a remote client still reports a
/// server that went away. For the command-line tools only, not the desktop app.
pub fn end_quietly_when_output_closes() {
    #[cfg(unix)]
    // SAFETY: restores the default disposition of one signal, before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_accepts_the_allocator_settings() {
        // mallopt returns 0 for a value it rejects (an mmap threshold above its maximum).
        assert_eq!(keep_freed_memory_for_reuse(), cfg!(all(target_os = "linux", target_env = "gnu")));
    }

    #[test]
    fn kib_fields_are_read_in_bytes() {
        let text = "MemTotal:       24000000 kB\nMemFree:         1000 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(kib_field_bytes(text, "MemAvailable:"), Some(20_000_000 * 1024));
        assert_eq!(kib_field_bytes("MemTotal: 1 kB\n", "MemAvailable:"), None);
    }

    #[test]
    fn process_memory_is_read() {
        assert!(memory_status_bytes("VmRSS").is_some_and(|b| b > 0));
    }
}
