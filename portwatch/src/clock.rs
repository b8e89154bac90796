//! Kernel timestamps (CLOCK_BOOTTIME, which keeps counting through suspend) to wall-clock time.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Wall-clock nanoseconds since the epoch at boot time 0.
    boot_epoch_ns: i128,
    /// Tests: the boot-clock "now" (None: CLOCK_BOOTTIME), so records stamped with the time
    /// they are written are reproducible.
    fixed_now_ns: Option<u64>,
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
            fixed_now_ns: None,
        }
    }

    #[cfg(test)]
    pub const fn fixed(boot_epoch_ns: i128) -> Self {
        Self {
            boot_epoch_ns,
            fixed_now_ns: None,
        }
    }

    /// A clock whose "now" stays at boot-clock `now_ns` (tests).
    #[cfg(test)]
    pub const fn fixed_at(boot_epoch_ns: i128, now_ns: u64) -> Self {
        Self {
            boot_epoch_ns,
            fixed_now_ns: Some(now_ns),
        }
    }

    /// The boot clock now, in ns (the kernel's event clock).
    pub fn boot_now(&self) -> u64 {
        self.fixed_now_ns.unwrap_or_else(boottime_ns)
    }

    pub fn wall(&self, boot_ns: u64) -> SystemTime {
        let ns = (self.boot_epoch_ns + i128::from(boot_ns)).max(0);
        UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// RFC 3339 UTC with nanoseconds, e.g. `2026-11-22T10:00:00.123456789Z`. Written by hand:
    /// every record carries a time, and this costs a fraction of going through `fmt`.
    pub fn format(&self, boot_ns: u64) -> String {
        self.timestamp(boot_ns).as_str().to_owned()
    }

    /// `format` without allocating, for the records written per event.
    pub fn timestamp(&self, boot_ns: u64) -> Timestamp {
        let ns = (self.boot_epoch_ns + i128::from(boot_ns)).clamp(0, i128::from(u64::MAX));
        let (secs, nanos) = ((ns / 1_000_000_000) as u64, (ns % 1_000_000_000) as u64);
        let (year, month, day) = civil_from_days(secs / 86_400);
        let sod = secs % 86_400;
        let mut b = *b"0000-00-00T00:00:00.000000000Z";
        for (range, value) in [
            (0..4, year),
            (5..7, month),
            (8..10, day),
            (11..13, sod / 3600),
            (14..16, sod / 60 % 60),
            (17..19, sod % 60),
            (20..29, nanos),
        ] {
            put_digits(&mut b[range], value);
        }
        Timestamp {
            epoch_ns: ns as u64,
            text: b,
        }
    }

    /// Now, as a time records carry.
    pub fn stamp_now(&self) -> Timestamp {
        self.timestamp(self.boot_now())
    }

    pub fn format_now(&self) -> String {
        self.format(self.boot_now())
    }
}

/// A time: nanoseconds since the epoch, with its RFC 3339 text (see `Clock::format`) made once,
/// since every format writes it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    epoch_ns: u64,
    text: [u8; 30],
}

impl Timestamp {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.text).unwrap_or_default() // always ASCII
    }

    /// Milliseconds since the epoch (OCSF's times).
    pub const fn epoch_ms(&self) -> i64 {
        (self.epoch_ns / 1_000_000) as i64
    }
}

/// The text, for writers that need no `str` (see `json::Members::plain`).
impl AsRef<[u8]> for Timestamp {
    fn as_ref(&self) -> &[u8] {
        &self.text
    }
}

impl Default for Timestamp {
    fn default() -> Self {
        Self {
            epoch_ns: 0,
            text: *b"1970-01-01T00:00:00.000000000Z",
        }
    }
}

impl std::fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// As its text, the form every record writes.
impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Milliseconds since the epoch of a time written by `Clock::format`, read back (`timeline`),
/// None for any other text.
pub fn epoch_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 30 || b[29] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(r)?;
        digits.iter().try_fold(0i64, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
        })
    };
    let days = days_from_civil(num(0..4)?, num(5..7)?, num(8..10)?);
    let secs = days * 86_400 + num(11..13)? * 3600 + num(14..16)? * 60 + num(17..19)?;
    Some(secs * 1000 + num(20..23)?)
}

/// Days since 1970-01-01 of a civil date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + u64::from(month <= 2), month, day)
}

/// Writes `value` in decimal into `out`, zero-padded to its length.
fn put_digits(out: &mut [u8], mut value: u64) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
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
    fn formats_like_humantime_across_centuries() {
        let clock = Clock::fixed(0);
        let mut ns: u64 = 123_456_789;
        for _ in 0..10_000 {
            let expected = humantime::format_rfc3339_nanos(clock.wall(ns)).to_string();
            assert_eq!(clock.format(ns), expected);
            // Steps of about 13.5 days and odd nanoseconds, to the year 2339.
            ns += 1_166_399_999_999_987;
        }
        let leap_day = 1_709_164_800 * 1_000_000_000; // 2024-02-29T00:00:00Z
        assert_eq!(clock.format(leap_day), "2024-02-29T00:00:00.000000000Z");
        assert_eq!(clock.format(leap_day - 1), "2024-02-28T23:59:59.999999999Z");
    }

    #[test]
    fn epoch_ms_reads_back_what_format_wrote() {
        let clock = Clock::fixed(0);
        let mut ns: u64 = 987_654_321;
        for _ in 0..10_000 {
            let ms = i64::try_from(ns / 1_000_000).unwrap();
            assert_eq!(epoch_ms(&clock.format(ns)), Some(ms));
            ns += 1_166_399_999_999_987;
        }
        assert_eq!(epoch_ms("2026-01-01T00:00:00.000000000"), None);
        assert_eq!(epoch_ms("2026-0x-01T00:00:00.000000000Z"), None);
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
