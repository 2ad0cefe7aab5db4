//! Facts about this process.

/// A memory field of `/proc/self/status` (`VmRSS`, `VmHWM`, ...) in bytes; `None` off Linux.
pub fn memory_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
