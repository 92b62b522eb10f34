//! Instants as 8-byte stamps: nanoseconds since one process-wide origin.
//! A session keeps its deadline as a stamp (an `Instant` takes 16 bytes),
//! and the loop's timer heap orders stamps.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// An instant as nanoseconds since [`origin`].
pub(crate) type Stamp = u64;

/// A stamp that never comes: no deadline.
pub(crate) const NEVER: Stamp = Stamp::MAX;

/// The origin of every stamp: set once, well before any instant a caller
/// can hold (a manual clock made before the first stamp included), so that
/// no instant is ever clamped to it.
pub(crate) fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(|| {
        let now = Instant::now();
        [365 * 86_400, 86_400, 3_600, 60, 1]
            .into_iter()
            .find_map(|secs| now.checked_sub(Duration::from_secs(secs)))
            .unwrap_or(now)
    })
}

/// `t` as a stamp.
pub(crate) fn stamp(t: Instant) -> Stamp {
    stamp_since(origin(), t)
}

/// `t` as a stamp, for a caller that keeps [`origin`] at hand (the loop
/// converts its time once per event).
#[inline]
pub(crate) fn stamp_since(origin: Instant, t: Instant) -> Stamp {
    nanos(t.saturating_duration_since(origin))
}

/// The instant of stamp `s`.
pub(crate) fn instant(s: Stamp) -> Instant {
    origin() + Duration::from_nanos(s)
}

/// `d` in nanoseconds, saturating (u64 nanoseconds span 584 years).
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// `s` moved `d` later, saturating (in u64 arithmetic: this runs for
/// every message, `nanos` goes through u128).
#[inline]
pub(crate) fn after(s: Stamp, d: Duration) -> Stamp {
    let d = d
        .as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()));
    s.saturating_add(d)
}

/// An instant as a session keeps it: 8 bytes (an `Instant` takes 16).
/// Every `Instant` converts into one, so the session's methods take either;
/// a loop that handles many events at one instant converts it once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub(crate) Stamp);

impl From<Instant> for Time {
    #[inline]
    fn from(t: Instant) -> Time {
        Time(stamp(t))
    }
}

impl From<Time> for Instant {
    fn from(t: Time) -> Instant {
        instant(t.0)
    }
}
