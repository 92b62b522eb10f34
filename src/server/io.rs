//! Reads and writes: the only code that touches a client's socket. Bytes
//! read go to the client's session through the loop's one scratch buffer;
//! bytes leave through [`Session::transmit`](crate::proto::Session::transmit)
//! into a [`Socket`]. (Plain TCP today; TLS plugs in here, between the
//! socket and the session: `tls.rs`.)
//!
//! ```text
//! readable ──► read into scratch (until drained, or READS_PER_TURN) ──► Server::on_bytes ──► Session::read
//! dirty / writable ──► Session::transmit(Socket) ──► Flow: Idle | Blocked (WRITABLE) | ShutWrite | Close
//! ```

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;

use log::{debug, warn};
use mio::net::TcpStream;

#[cfg(feature = "tls")]
use super::core::TLS;
use super::core::{DIRTY, DRAIN_WANTED, PAUSED, WANT_WRITE};
use super::Handler;
use super::{Ctx, Server};
use crate::id::ConnId;
use crate::proto::session::Flow;
use crate::proto::Transmit;

/// Reads per client per readiness event before others get a turn; the
/// client is revisited in the next iteration.
const READS_PER_TURN: usize = 16;

/// A client's address in log lines. The kernel is asked only when a line is
/// written, so a client does not carry its 32-byte address around.
pub(super) struct Peer<'a>(pub(super) &'a TcpStream);

impl std::fmt::Display for Peer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.peer_addr() {
            Ok(addr) => write!(f, "{addr}"),
            Err(_) => f.write_str("(disconnected peer)"),
        }
    }
}

/// A client's socket as the session's way out.
pub(super) struct Socket<'a>(pub(super) &'a TcpStream);

impl Transmit for Socket<'_> {
    #[inline]
    fn transmit(&mut self, bufs: &[IoSlice<'_>], last: bool) -> io::Result<usize> {
        match bufs {
            [one] if last => write_last(self.0, one),
            [one] => (&mut &*self.0).write(one),
            _ => write_many(self.0, bufs),
        }
    }
}

/// Slices averaging at most this many bytes are gathered into one buffer
/// and written with one `send` instead of a `writev`.
const GATHER_AVERAGE: usize = 4 * 1024;
/// The most bytes gathered for one write.
const GATHER_LIMIT: usize = 64 * 1024;

thread_local! {
    /// The loop's gather buffer (one per thread, so one per loop).
    static GATHER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Writes several slices: many small ones (a burst of broadcasts queued
/// for one client) are copied into one buffer and sent at once, because
/// the kernel's cost per iovec (about 50 ns on loopback, measured with
/// `perf` under `loadgen broadcast`) is more than copying a kilobyte here;
/// large ones (a header and a big payload) go as they are, with `writev`.
fn write_many(stream: &TcpStream, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let total: usize = bufs.iter().map(|b| b.len()).sum();
    if total > GATHER_AVERAGE * bufs.len() {
        return (&mut &*stream).write_vectored(bufs);
    }
    GATHER.with(|gather| {
        let mut gather = gather.borrow_mut();
        gather.clear();
        for b in bufs {
            // Whole slices up to the limit, and always the first: a partial
            // write is fine, the queue consumes what the socket took.
            if !gather.is_empty() && gather.len() + b.len() > GATHER_LIMIT {
                break;
            }
            gather.extend_from_slice(b);
        }
        let n = (&mut &*stream).write(&gather);
        if gather.capacity() > GATHER_LIMIT {
            // A first slice larger than the limit: do not keep its size.
            *gather = Vec::new();
        }
        n
    })
}

/// Writes the last bytes a connection will ever send, with `MSG_MORE` on
/// Linux: the segment waits for the FIN of the `close` or `shutdown` that
/// follows, and both leave in one packet instead of two (on loopback, the
/// sender pays for the receiver's processing of each). Data that does not
/// all fit is pushed as usual: `MSG_MORE` only holds back this call's last
/// segment.
#[cfg(target_os = "linux")]
fn write_last(stream: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    socket2::SockRef::from(stream).send_with_flags(bytes, libc::MSG_MORE | libc::MSG_NOSIGNAL)
}

#[cfg(not(target_os = "linux"))]
fn write_last(mut stream: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    stream.write(bytes)
}

impl<H: Handler> Server<H> {
    /// Flushes now when what this turn broadcast and published so far
    /// passed [`TURN_QUEUE_BUDGET`](super::core::TURN_QUEUE_BUDGET): the
    /// bytes go to the kernel instead of waiting, all at once, for the end
    /// of the turn.
    pub(super) fn flush_if_over_budget(&mut self) {
        if self.core.queued_turn > super::core::TURN_QUEUE_BUDGET {
            self.flush_dirty();
        }
    }

    /// Reads what `key` has sent until its socket is drained (or its turn is
    /// over). A short read means the socket is drained; new data raises a
    /// new edge, except a FIN that arrived with this event (`read_closed`).
    pub(super) fn read_ready(&mut self, key: usize, read_closed: bool) {
        #[cfg(feature = "tls")]
        if self.core.clients.get(key).is_some_and(|c| c.is(TLS)) {
            return self.read_tls(key);
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut turn_over = true;
        for _ in 0..READS_PER_TURN {
            let Some(client) = self
                .core
                .clients
                .get_mut(key)
                .filter(|c| c.session.wants_input() && !c.is(PAUSED))
            else {
                turn_over = false;
                break;
            };
            match client.stream.read(&mut scratch) {
                Ok(0) => {
                    self.on_eof(key);
                    turn_over = false;
                    break;
                }
                Ok(n) => {
                    self.on_bytes(key, &mut scratch[..n]);
                    if n < scratch.len() && !read_closed {
                        turn_over = false;
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    turn_over = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!("{}: read error: {e}", Peer(&client.stream));
                    self.remove(key);
                    turn_over = false;
                    break;
                }
            }
        }
        if turn_over {
            // More may be waiting; no new edge will say so. Come back next
            // iteration, after the other clients had their turn.
            if let Some(c) = self.core.clients.get(key) {
                self.core
                    .backlog
                    .push((ConnId::new(key, c.gen), read_closed));
            }
        }
        self.scratch = scratch;
    }

    /// The peer shut its sending side. It may still read: give it what it
    /// is owed (a reply, the close echo) before closing; the session says
    /// when it is over.
    pub(super) fn on_eof(&mut self, key: usize) {
        // What this turn published is in the client's queue before the
        // session decides whether anything is left to write (a client that
        // sends a message to its own topic and half-closes gets it back).
        self.core.flush_batch();
        self.flush(key);
        let now = self.core.time();
        let Some(c) = self.core.clients.get_mut(key) else {
            return; // flush finished it
        };
        c.session.read_eof(now);
        self.settle(key);
    }

    pub(super) fn flush_dirty(&mut self) {
        // The turn's last publishes go out first (written at once where
        // nothing waits), and to the other loops.
        self.core.flush_batch_at_turn_end();
        self.core.flush_outbox();
        #[cfg(feature = "redis")]
        self.redis_flush();
        self.core.queued_turn = 0;
        while let Some(key) = self.core.dirty.pop() {
            if let Some(c) = self.core.clients.get_mut(key) {
                c.set(DIRTY, false);
                self.flush(key);
            }
        }
    }

    /// Transmits what `key` has queued, adjusts its interest, and shuts or
    /// ends it as its session says.
    pub(super) fn flush(&mut self, key: usize) {
        let core = &mut self.core;
        let Some(client) = core.clients.get_mut(key) else {
            return;
        };
        #[cfg(feature = "tls")]
        let transmitted = match core.tls.get_mut(key) {
            Some(Some(tls)) if client.is(TLS) => {
                super::tls::transmit(&mut client.session, tls, &client.stream)
            }
            _ => client.session.transmit(&mut Socket(&client.stream)),
        };
        #[cfg(not(feature = "tls"))]
        let transmitted = client.session.transmit(&mut Socket(&client.stream));
        let flow = match transmitted {
            Ok(flow) => flow,
            Err(e) => {
                debug!("{}: write error: {e}", Peer(&client.stream));
                return self.remove(key);
            }
        };
        let pending = flow == Flow::Blocked;
        let drained = client.is(WANT_WRITE | DRAIN_WANTED) && !pending;
        if drained {
            client.set(DRAIN_WANTED, false);
        }
        if pending != client.is(WANT_WRITE) {
            client.set(WANT_WRITE, pending);
            if let Err(e) = self.core.update_interest(key) {
                warn!(
                    "{}: registering interest failed: {e}",
                    Peer(&self.core.clients[key].stream)
                );
                return self.remove(key);
            }
        }
        match flow {
            Flow::Close => self.remove(key),
            Flow::ShutWrite => {
                let _ = self.core.clients[key].stream.shutdown(Shutdown::Write);
            }
            Flow::Idle if drained && self.core.clients[key].session.is_open() => {
                // The client caught up after falling behind: a handler that
                // held back (a program's output, say) may go on.
                let id = ConnId::new(key, self.core.clients[key].gen);
                self.handler.on_drain(&mut Ctx::new(&mut self.core), id);
            }
            Flow::Idle | Flow::Blocked => {}
        }
    }
}
