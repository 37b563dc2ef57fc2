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

/// The memory this process can still take, in bytes, where the system says: `MemAvailable` of
/// `/proc/meminfo`, or less when the process's control group (a container) has a lower limit.
fn available_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let available = parse_available(&info)?;
    let groups = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let limited = groups.lines().filter_map(group_headroom).min();
    Some(limited.map_or(available, |room| room.min(available)))
}

/// The room under the memory limit of the control group on one line of `/proc/self/cgroup`
/// (version 2: `0::/path`; version 1: `N:memory:/path`): the limit less the group's anonymous
/// memory, as file pages can be reclaimed. `None` without a limit or a memory controller.
fn group_headroom(line: &str) -> Option<u64> {
    let mut parts = line.splitn(3, ':');
    let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
    let (dir, limit_file, anon_key) = if controllers.is_empty() {
        (format!("/sys/fs/cgroup{path}"), "memory.max", "anon")
    } else if controllers.split(',').any(|c| c == "memory") {
        let dir = format!("/sys/fs/cgroup/memory{path}");
        (dir, "memory.limit_in_bytes", "total_rss")
    } else {
        return None;
    };
    let read = |file: &str| std::fs::read_to_string(format!("{dir}/{file}")).ok();
    let limit: u64 = read(limit_file)?.trim().parse().ok()?;
    let anon = stat_value(&read("memory.stat")?, anon_key)?;
    Some(limit.saturating_sub(anon))
}

/// The value of `key` in a cgroup `memory.stat` text.
fn stat_value(stat: &str, key: &str) -> Option<u64> {
    stat.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
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
    fn reads_anonymous_memory_from_a_cgroup_stat() {
        let stat = "anon 1048576\nfile 4096\ntotal_rss 2048\n";
        assert_eq!(stat_value(stat, "anon"), Some(1 << 20));
        assert_eq!(stat_value(stat, "total_rss"), Some(2048));
        assert_eq!(stat_value(stat, "shmem"), None);
        assert_eq!(group_headroom("5:cpu,cpuacct:/"), None);
        assert_eq!(group_headroom("not a cgroup line"), None);
    }

    #[test]
    fn needs_grow_with_the_weights() {
        assert_eq!(needed(0), 256 << 20);
        assert_eq!(needed(2 << 30), (3 << 30) + (256 << 20));
        assert_eq!(gib(3 << 29), "1.5 GiB");
    }
}
