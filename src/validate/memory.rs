//! Whether this machine has the memory to hold both models in tract, checked before either is
//! loaded so that a model too large to validate ends with a clear error rather than the system
//! killing the process.

use anyhow::bail;

/// Memory tract needs per byte of weights held: the model's own copy plus the packed copies
/// optimisation makes of convolution and matrix weights while it runs.
const BYTES_PER_WEIGHT_BYTE: f64 = 1.5;

/// Memory needed besides the weights (the program, tract's plans, activations), in bytes.
const BASE: u64 = 256 << 20;

/// Fails when validating models holding `weight_bytes` bytes of weights (both models together)
/// needs more memory than the system reports available. Passes where the system does not say.
pub(super) fn check(weight_bytes: u64) -> anyhow::Result<()> {
    let Some(available) = available_bytes() else {
        return Ok(());
    };
    let need = needed(weight_bytes);
    if need > available {
        bail!(
            "holding both models in tract needs about {} of memory but {} is available",
            gib(need),
            gib(available)
        );
    }
    Ok(())
}

/// The memory validating `weight_bytes` bytes of weights needs, in bytes.
fn needed(weight_bytes: u64) -> u64 {
    (weight_bytes as f64 * BYTES_PER_WEIGHT_BYTE) as u64 + BASE
}

/// While alive, large allocations are mapped from the system one by one, so that what tract frees
/// while it loads and optimises a model (the weights it repacks) goes back to the system instead
/// of staying in the heap; on drop, they come from the heap again, as the repeated runs want.
/// Where the C library is not glibc this does nothing.
pub(super) struct LargeAllocationsMapped;

/// Largest allocation served from the heap while a [`LargeAllocationsMapped`] lives (glibc's
/// default).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MAPPED_FROM: libc::c_int = 128 << 10;

/// Largest allocation served from the heap otherwise (the most glibc's own adjustment reaches).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const HEAP_UP_TO: libc::c_int = 32 << 20;

impl LargeAllocationsMapped {
    /// Maps large allocations until dropped.
    pub(super) fn new() -> Self {
        set_mmap_threshold(true);
        Self
    }
}

impl Drop for LargeAllocationsMapped {
    fn drop(&mut self) {
        set_mmap_threshold(false);
    }
}

/// Sets the size above which glibc maps allocations: small when `mapped`, else large.
fn set_mmap_threshold(mapped: bool) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let bytes = if mapped { MAPPED_FROM } else { HEAP_UP_TO };
        // SAFETY: mallopt only changes a tuning parameter of the allocator; M_MMAP_THRESHOLD
        // with a value below glibc's maximum is always accepted.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, bytes);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = mapped;
}

/// `MemAvailable` of `/proc/meminfo`, in bytes, where the system has it.
fn available_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_available(&info)
}

/// The `MemAvailable` line of a `/proc/meminfo` text, in bytes.
fn parse_available(info: &str) -> Option<u64> {
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// `bytes` in GiB, one decimal.
fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_available_memory_from_meminfo() {
        let info = "MemTotal:       24576000 kB\nMemAvailable:    2097152 kB\n";
        assert_eq!(parse_available(info), Some(2 << 30));
        assert_eq!(parse_available("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn too_large_a_model_is_refused_with_the_way_out() {
        if available_bytes().is_none() {
            return; // a system that does not say how much memory it has is not checked
        }
        assert!(check(0).is_ok());
        let err = check(u64::MAX / 4).unwrap_err().to_string();
        assert!(
            err.starts_with("holding both models in tract needs about "),
            "{err}"
        );
        assert!(err.ends_with(" is available"), "{err}");
    }

    #[test]
    fn needs_grow_with_the_weights() {
        assert_eq!(needed(0), 256 << 20);
        assert_eq!(needed(2 << 30), (3 << 30) + (256 << 20));
        assert_eq!(gib(3 << 29), "1.5 GiB");
    }
}
