//! Kernel timestamps (CLOCK_BOOTTIME, which keeps counting through suspend) to wall-clock time.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Wall-clock nanoseconds since the epoch at boot time 0.
    boot_epoch_ns: i128,
}

/// CLOCK_BOOTTIME now, in ns (the kernel's event clock).
pub fn boottime_ns() -> u64 {
    u64::try_from(boottime_ns_wide()).unwrap_or(0)
}

fn boottime_ns_wide() -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; CLOCK_BOOTTIME exists on every supported kernel.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

impl Clock {
    /// Samples both clocks now; call again now and then to follow wall-clock adjustments.
    pub fn now() -> Self {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        Self {
            boot_epoch_ns: wall - boottime_ns_wide(),
        }
    }

    #[cfg(test)]
    pub const fn fixed(boot_epoch_ns: i128) -> Self {
        Self { boot_epoch_ns }
    }

    pub fn wall(&self, boot_ns: u64) -> SystemTime {
        let ns = (self.boot_epoch_ns + i128::from(boot_ns)).max(0);
        UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// RFC 3339 UTC with nanoseconds, e.g. `2026-11-22T10:00:00.123456789Z`.
    pub fn format(&self, boot_ns: u64) -> String {
        humantime::format_rfc3339_nanos(self.wall(boot_ns)).to_string()
    }

    pub fn format_now(&self) -> String {
        self.format(boottime_ns())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_boot_time_to_rfc3339() {
        // Booted at 2026-01-01T00:00:00Z.
        let clock = Clock::fixed(1_767_225_600 * 1_000_000_000);
        assert_eq!(
            clock.format(1_500_000_001),
            "2026-01-01T00:00:01.500000001Z"
        );
    }

    #[test]
    fn now_is_close_to_system_time() {
        let clock = Clock::now();
        let a = clock.wall(boottime_ns());
        let b = SystemTime::now();
        let diff = b.duration_since(a).unwrap_or_else(|e| e.duration());
        assert!(diff < Duration::from_secs(1), "{diff:?}");
    }
}
