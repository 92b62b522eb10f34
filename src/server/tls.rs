//! wss: rustls between a client's socket and its session (feature `tls`).
//! rustls's `ServerConnection` is an encrypted pipe with no I/O of its own:
//! ciphertext from the socket goes in with `read_tls`, plaintext comes out
//! of `reader()` into `Session::read`; `Session::transmit` writes plaintext
//! into `writer()`, and `write_tls` takes ciphertext to the socket.
//!
//! ```text
//! readable ──► read_tls ──► process_new_packets ──► reader() ──► Server::on_bytes ──► Session::read
//! flush ──► Session::transmit(TlsSocket) ──► writer() ──► write_tls ──► socket
//! ```
//!
//! Two things differ from plain TCP. A short read is not "drained" (rustls
//! reads a record at a time): reading goes on until the socket says
//! `WouldBlock`. And bytes can wait inside rustls (the handshake's, or a
//! record the socket did not take): write interest follows `wants_write()`
//! as well as the session's queue, and a closing connection closes only
//! once rustls has written everything, `close_notify` last.

use std::io::{self, IoSlice, Read, Write};

use log::debug;
use mio::net::TcpStream;
use rustls::ServerConnection;

use super::core::{PAUSED, TLS};
use super::io::Peer;
use super::stats::Counters;
use super::Handler;
use super::Server;
use crate::proto::session::{Flow, Session};
use crate::proto::Transmit;

/// What rustls may hold, plaintext waiting for the handshake and
/// ciphertext waiting for the socket, each, per connection. The session's
/// queue holds the rest (and applies `max_send_queue`).
const BUFFER_LIMIT: usize = 64 * 1024;

/// Reads per client per readiness event (each takes at most one socket
/// read's worth of records).
const READS_PER_TURN: usize = 16;

/// The first byte of a TLS record carrying a handshake (a ClientHello).
const HANDSHAKE_RECORD: u8 = 0x16;

/// A client's TLS state.
pub(super) struct Tls {
    pub(super) conn: ServerConnection,
    /// The first byte was looked at (plain HTTP gets a plain answer).
    checked: bool,
}

impl Tls {
    pub(super) fn new(config: std::sync::Arc<rustls::ServerConfig>) -> Result<Tls, rustls::Error> {
        let mut conn = ServerConnection::new(config)?;
        conn.set_buffer_limit(Some(BUFFER_LIMIT));
        Ok(Tls {
            conn,
            checked: false,
        })
    }
}

/// A TLS client's way out: plaintext into rustls, ciphertext to the socket.
pub(super) struct TlsSocket<'a> {
    pub(super) conn: &'a mut ServerConnection,
    pub(super) stream: &'a TcpStream,
    /// Leave the ciphertext in rustls (up to its buffer limit) for the
    /// caller's one [`TlsSocket::push`]: what a flush produces (session
    /// tickets, the 101, a close frame, `close_notify`) then leaves in one
    /// `writev`, not one per piece. Off for a write-through from a
    /// handler's send, which nothing else would push.
    pub(super) gather: bool,
}

impl TlsSocket<'_> {
    /// Writes the ciphertext rustls holds until it holds none or the socket
    /// is full (`WouldBlock`).
    pub(super) fn push(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut &*self.stream) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Transmit for TlsSocket<'_> {
    fn transmit(&mut self, bufs: &[IoSlice<'_>], _last: bool) -> io::Result<usize> {
        // Twice at most: a second pass only after the push emptied rustls
        // (before the handshake ends, plaintext waits in rustls and no
        // push makes room for it).
        for _ in 0..2 {
            // rustls's queue keeps the order, and its buffer limit bounds
            // what it takes while the socket is full: the session keeps
            // the rest (and its queue limit applies).
            let n = self.conn.writer().write_vectored(bufs)?;
            if n > 0 && self.gather {
                return Ok(n);
            }
            match self.push() {
                Ok(()) if n == 0 && bufs.iter().any(|b| !b.is_empty()) => {
                    // rustls was full and the socket took all of it: room
                    // again, and no WRITABLE edge would come to say so.
                }
                Ok(()) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && n > 0 => return Ok(n),
                Err(e) => return Err(e),
            }
        }
        Err(io::ErrorKind::WouldBlock.into())
    }
}

/// Runs the session's transmit through rustls, then what rustls holds:
/// a connection is `Blocked` while rustls has bytes the socket did not
/// take, and one the session has finished with sends `close_notify` first.
pub(super) fn transmit(
    session: &mut Session,
    tls: &mut Tls,
    stream: &TcpStream,
) -> io::Result<Flow> {
    let mut sink = TlsSocket {
        conn: &mut tls.conn,
        stream,
        gather: true,
    };
    let mut flow = match session.transmit(&mut sink) {
        Ok(flow) => flow,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Flow::Blocked,
        Err(e) => return Err(e),
    };
    if matches!(flow, Flow::ShutWrite | Flow::Close) {
        sink.conn.send_close_notify(); // once: rustls ignores a second call
    }
    match sink.push() {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => flow = Flow::Blocked,
        Err(e) => return Err(e),
    }
    Ok(flow)
}

/// The plain-HTTP answer on the TLS port (nginx answers 497 in its log,
/// 400 on the wire).
const PLAIN_HTTP: &str = "This port speaks TLS: use https:// or wss://";

/// What delivering a TLS client's plaintext came to.
enum Delivered {
    /// All of it went to the session; read on.
    All,
    /// The session stopped taking input (paused, closing, gone).
    Stopped,
    /// `close_notify`: the peer sends nothing more.
    Closed,
}

impl<H: Handler> Server<H> {
    /// Reads what a TLS client has sent: records until the socket is
    /// drained (or the turn is over), their plaintext to the session. What
    /// rustls decrypted while the session was paused goes first.
    pub(super) fn read_tls(&mut self, key: usize) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut turn_over = true;
        for _ in 0..READS_PER_TURN {
            match self.deliver_tls(key, &mut scratch) {
                Delivered::All => {}
                Delivered::Stopped => {
                    turn_over = false;
                    break;
                }
                Delivered::Closed => {
                    self.scratch = scratch;
                    return self.on_eof(key);
                }
            }
            let core = &mut self.core;
            let (Some(client), Some(Some(tls))) =
                (core.clients.get_mut(key), core.tls.get_mut(key))
            else {
                turn_over = false;
                break;
            };
            if !tls.checked {
                let mut first = [0u8; 1];
                match client.stream.peek(&mut first) {
                    Ok(0) => {}
                    Ok(_) => {
                        tls.checked = true;
                        if first[0] != HANDSHAKE_RECORD {
                            // Plain HTTP (or anything else) on the TLS port:
                            // answered in plain text, as a plain client.
                            debug!("{}: not TLS: answering 400", Peer(&client.stream));
                            let now = core.time();
                            let client = &mut core.clients[key];
                            client.session = Session::refuse_with(now, 400, PLAIN_HTTP);
                            Counters::bump(&mut core.counters.handshakes_refused, 400);
                            client.set(TLS, false);
                            core.tls[key] = None;
                            self.scratch = scratch;
                            return self.read_ready(key, false);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        turn_over = false;
                        break;
                    }
                    Err(_) => {} // read_tls below meets it too
                }
            }
            match tls.conn.read_tls(&mut &client.stream) {
                Ok(0) => {
                    self.scratch = scratch;
                    return self.on_eof(key);
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    turn_over = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    debug!("{}: read error: {e}", Peer(&client.stream));
                    self.scratch = scratch;
                    return self.remove(key);
                }
            }
            if let Err(e) = tls.conn.process_new_packets() {
                // Garbage, a bad handshake, a failed record: rustls queued
                // an alert; it goes out best-effort, then the connection.
                debug!("{}: TLS: {e}", Peer(&client.stream));
                let _ = tls.conn.write_tls(&mut &client.stream);
                self.scratch = scratch;
                return self.remove(key);
            }
            if tls.conn.wants_write() {
                core.mark_dirty(key); // the handshake's answer
            }
        }
        // What the last read decrypted.
        match self.deliver_tls(key, &mut scratch) {
            Delivered::Closed => {
                self.scratch = scratch;
                return self.on_eof(key);
            }
            Delivered::Stopped => turn_over = false,
            Delivered::All => {}
        }
        self.scratch = scratch;
        if turn_over {
            // More may be waiting; no new edge will say so.
            if let Some(c) = self.core.clients.get(key) {
                let id = crate::id::ConnId::new(key, c.gen);
                self.core.backlog.push((id, false));
            }
        }
    }

    /// Hands the plaintext rustls holds for `key` to its session while the
    /// session takes input.
    fn deliver_tls(&mut self, key: usize, scratch: &mut [u8]) -> Delivered {
        loop {
            let core = &mut self.core;
            let takes = core
                .clients
                .get(key)
                .is_some_and(|c| c.session.wants_input() && !c.is(PAUSED));
            let Some(Some(tls)) = core.tls.get_mut(key).filter(|_| takes) else {
                return Delivered::Stopped;
            };
            match tls.conn.reader().read(scratch) {
                Ok(0) => return Delivered::Closed,
                Ok(n) => self.on_bytes(key, &mut scratch[..n]),
                // Nothing decrypted yet, or the socket ended without
                // close_notify (read_tls reports that end).
                Err(_) => return Delivered::All,
            }
        }
    }
}
