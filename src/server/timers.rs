//! The loop's deadlines: one min-heap for every kind of timer.
//!
//! ```text
//! set(deadline, entry) ──► BinaryHeap ──► pop_due(now) ──► the loop checks the entry is
//!                                                         still current, then acts
//! ```
//!
//! Entries are never removed from the middle of the heap. A cancelled or
//! superseded entry stays until it comes due and is then skipped by its
//! owner's check, which is why activity on a connection costs no heap
//! operation at all: the connection only moves its own deadline field, and
//! its one heap entry is re-armed when it comes due early. Stale entries are
//! purged when they outnumber live ones, so memory stays bounded.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::id::ConnId;
pub(crate) use crate::proto::time::Stamp;

/// What a heap entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Due {
    /// A client's own deadline (handshake, idle, close).
    Client(ConnId),
    /// A handler timer: timer slab key, generation.
    User(u32, u32),
    /// Resume accepting after an accept error.
    Accept,
    /// The Redis backplane's timer (a retry, a connect deadline, the next
    /// `PING`), by the number it was armed with.
    #[cfg(feature = "redis")]
    Redis(u32),
}

/// A min-heap of 24-byte entries: every client has one.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Stamp, Due)>>,
}

impl Timers {
    pub(crate) fn push(&mut self, at: Stamp, due: Due) {
        self.heap.push(Reverse((at, due)));
    }

    /// The earliest deadline, stale or not.
    pub(crate) fn next(&self) -> Option<Stamp> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Stamp) -> Option<(Stamp, Due)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(entry)| entry),
            _ => None,
        }
    }

    /// Drops entries for which `live` says no, when there are more than
    /// `2 * live_count + 1024` entries.
    pub(crate) fn purge_if_bloated(
        &mut self,
        live_count: usize,
        mut live: impl FnMut(Stamp, Due) -> bool,
    ) {
        if self.heap.len() <= 2 * live_count + 1024 {
            return;
        }
        let entries = std::mem::take(&mut self.heap).into_vec();
        self.heap = entries
            .into_iter()
            .filter(|Reverse((at, due))| live(*at, *due))
            .collect();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_order_only_when_due() {
        let t0: Stamp = 1_000;
        let mut t = Timers::default();
        t.push(t0 + 3_000, Due::Accept);
        t.push(t0 + 1_000, Due::Client(ConnId::new(1, 1)));
        t.push(t0 + 2_000, Due::User(0, 1));
        assert_eq!(t.next(), Some(t0 + 1_000));
        assert_eq!(t.pop_due(t0), None);
        let now = t0 + 2_000;
        assert_eq!(
            t.pop_due(now).map(|(_, d)| d),
            Some(Due::Client(ConnId::new(1, 1)))
        );
        assert_eq!(t.pop_due(now).map(|(_, d)| d), Some(Due::User(0, 1)));
        assert_eq!(t.pop_due(now), None);
    }

    #[test]
    fn purge_drops_stale_entries_when_bloated() {
        let t0: Stamp = 0;
        let mut t = Timers::default();
        for i in 0..3000 {
            t.push(t0, Due::User(i, 0));
        }
        t.purge_if_bloated(10, |_, d| matches!(d, Due::User(k, _) if k < 10));
        assert_eq!(t.len(), 10);
    }
}
