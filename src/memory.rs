//! Resident memory of this process, as the kernel counts it (Linux `/proc/self/status`).

/// Bytes resident now (`VmRSS`), where the kernel tells.
pub fn resident_bytes() -> Option<u64> {
    status_kilobytes("VmRSS:").map(|kb| kb * 1024)
}

/// The most bytes ever resident (`VmHWM`), where the kernel tells.
pub fn peak_resident_bytes() -> Option<u64> {
    status_kilobytes("VmHWM:").map(|kb| kb * 1024)
}

fn status_kilobytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
