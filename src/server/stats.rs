//! What the loop counts about itself, for operators: [`Stats`] (a
//! snapshot, [`Server::stats`](crate::Server::stats)) and [`StatsHandle`]
//! (the latest snapshot from any thread, what a metrics endpoint reads).
//!
//! The loop counts in plain integers as it works (a few additions per
//! message) and copies them into a handle's snapshot at the end of a turn,
//! at most every [`REFRESH`]: no atomics on the message path, and a reader
//! never waits for the loop.

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often at most the loop refreshes its [`StatsHandle`] snapshot (it
/// refreshes at the end of a turn, and once more when it falls idle with
/// changes not yet copied).
pub const REFRESH: Duration = Duration::from_millis(100);

/// Most request paths counted apart in [`Stats::paths`]; the
/// connections of any further path are counted under `*` (a server that
/// accepts any path must not make a metric per path).
pub(super) const MAX_PATHS: usize = 64;

/// A snapshot of the server's counters ([`Server::stats`](crate::Server::stats)).
///
/// Counters (`u64`) only grow over the server's life; the others are
/// gauges (what is there now). One loop's: with [`Loops`](crate::Loops),
/// add up every loop's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Clients connected (handshaking, open or closing).
    pub clients: usize,
    /// Open WebSocket connections by request path (the handler accepted
    /// them and they have not closed); at most 64 paths, a path with none
    /// left giving its place to a new one, and the rest counted under `*`.
    pub paths: Vec<(Box<str>, usize)>,
    /// Upgrades accepted.
    pub handshakes_accepted: u64,
    /// Upgrades (and plain requests that wanted one) refused, by HTTP
    /// status: bad requests (400), origins (403), unknown paths (404),
    /// wrong versions (426), large headers (431), the client limit (503),
    /// the handler's own refusals. Sorted by status.
    pub handshakes_refused: Vec<(u16, u64)>,
    /// Messages the handler received.
    pub messages_received: u64,
    /// Their payload bytes (after decompression).
    pub message_bytes_received: u64,
    /// Messages queued for clients: one per recipient (a publish to 100
    /// subscribers counts 100).
    pub messages_sent: u64,
    /// Their payload bytes, per recipient, before compression.
    pub message_bytes_sent: u64,
    /// Accepted connections that ended, by close code (1006 when the
    /// connection ended without a close frame). Sorted by code.
    pub closes: Vec<(u16, u64)>,
    /// Clients closed with 1008 because their send queue would have passed
    /// `max_send_queue` (they read too slowly).
    pub backpressure_closes: u64,
    /// Bytes permessage-deflate took off messages sent on this loop's
    /// thread: payload minus compressed size, per recipient.
    pub deflate_bytes_saved: u64,
    /// Memory the open connections' permessage-deflate state may hold
    /// between messages, summed (see `DeflateConfig::max_memory`).
    pub deflate_memory: usize,
    /// Upgrades answered without permessage-deflate because their
    /// agreement would have passed `DeflateConfig::max_memory`.
    pub deflate_declined: u64,
    /// Topics with at least one subscriber on this loop.
    pub topics: usize,
    /// Subscriptions on this loop (a client in 3 topics counts 3).
    pub subscriptions: usize,
    /// Publishes for other linked loops dropped because those loops took
    /// none for too long (see [`Loops`](crate::Loops)).
    pub hub_dropped: u64,
    /// The Redis backplane's link and counters, when there is one.
    #[cfg(feature = "redis")]
    pub redis: Option<super::RedisStats>,
}

/// The latest [`Stats`] of a loop, readable from any thread
/// ([`Server::stats_handle`](crate::Server::stats_handle)): `Send + Sync +
/// Clone`. The loop refreshes it at the end of a turn, at most every
/// 100 ms; so it is at most that old (or as old as the loop's last
/// turn, when nothing has happened since).
#[derive(Debug, Clone, Default)]
pub struct StatsHandle(pub(super) Arc<Mutex<Stats>>);

impl StatsHandle {
    /// The snapshot the loop last made.
    pub fn get(&self) -> Stats {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The counters the loop keeps as it works (see [`Stats`] for each).
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) handshakes_accepted: u64,
    pub(super) handshakes_refused: Vec<(u16, u64)>,
    pub(super) messages_received: u64,
    pub(super) message_bytes_received: u64,
    pub(super) messages_sent: u64,
    pub(super) message_bytes_sent: u64,
    pub(super) closes: Vec<(u16, u64)>,
    pub(super) backpressure_closes: u64,
    /// Open connections by path; a client's index is in its session's
    /// spare bits (`Session::tag`).
    pub(super) paths: Vec<(Box<str>, usize)>,
}

impl Counters {
    /// One more of `key` in a short sorted list.
    pub(super) fn bump(list: &mut Vec<(u16, u64)>, key: u16) {
        match list.binary_search_by_key(&key, |&(k, _)| k) {
            Ok(i) => list[i].1 += 1,
            Err(i) => list.insert(i, (key, 1)),
        }
    }

    /// One more open connection on `path`; returns the path's index.
    pub(super) fn open_path(&mut self, path: &str) -> u16 {
        let idle = |(p, n): &(Box<str>, usize)| *n == 0 && &**p != "*";
        let i = match self.paths.iter().position(|(p, _)| &**p == path) {
            Some(i) => i,
            None if self.paths.len() < MAX_PATHS => {
                self.paths.push((path.into(), 0));
                self.paths.len() - 1
            }
            // A path with no connection left gives its place up (no session
            // holds its index any more).
            None if self.paths.iter().any(idle) => {
                let i = self.paths.iter().position(idle).unwrap_or(0);
                self.paths[i].0 = path.into();
                i
            }
            None => match self.paths.iter().position(|(p, _)| &**p == "*") {
                Some(i) => i,
                None => {
                    self.paths.push(("*".into(), 0));
                    self.paths.len() - 1
                }
            },
        };
        self.paths[i].1 += 1;
        i as u16
    }

    /// An open connection on the path of index `i` closed.
    pub(super) fn close_path(&mut self, i: u16) {
        if let Some(p) = self.paths.get_mut(usize::from(i)) {
            p.1 = p.1.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_stay_sorted_and_paths_bounded() {
        let mut list = Vec::new();
        for k in [1006, 1000, 1006, 4000] {
            Counters::bump(&mut list, k);
        }
        assert_eq!(list, [(1000, 1), (1006, 2), (4000, 1)]);
        let mut c = Counters::default();
        let chat = c.open_path("/chat");
        assert_eq!(c.open_path("/chat"), chat);
        for i in 0..100 {
            c.open_path(&format!("/room/{i}"));
        }
        assert_eq!(c.paths.len(), MAX_PATHS + 1, "the rest under *");
        assert_eq!(c.paths.last().unwrap(), &("*".into(), 37));
        c.close_path(chat);
        assert_eq!(c.paths[0], ("/chat".into(), 1));
        // A path with none left gives its place up.
        c.close_path(1); // /room/0
        let i = c.open_path("/new");
        assert_eq!((i, &*c.paths[1].0), (1, "/new"));
        assert_eq!(c.open_path("/newer"), MAX_PATHS as u16, "the rest under *");
    }
}
