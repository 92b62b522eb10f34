//! One client's whole life, from its first byte to its close, without I/O:
//! the HTTP request, the upgrade, the open connection, and every deadline.
//!
//! ```text
//!                 ┌─ head incomplete: kept (max_header_bytes) ─┐
//!  accept ─► Handshake ◄────────────────────────────────────────┘
//!                 │ head complete
//!                 ├─ invalid ─────────────► Reject (4xx/5xx answer queued) ─► shut write, drain
//!                 ├─ plain HTTP ─► Action::Http ─► respond() ─► Reject
//!                 └─ upgrade ─► Open (deflate negotiated) ─► Action::Upgrade
//!                                   │ accept(): 101 first        │ reject()
//!                                   ▼                            ▼
//!                 Open: frames ─► Action::Message ... close ─► Closing ─► done
//!
//!  deadlines: handshake ─ idle (ping) ─ idle again (close 1001) ─ close ─ drain after the peer's FIN
//! ```
//!
//! How a loop drives it (the [`Server`](crate::Server) does exactly this):
//!
//! | when | call |
//! | --- | --- |
//! | a connection is accepted | [`Session::new`] (or [`Session::refuse_busy`] past the client limit) |
//! | bytes arrived | [`Session::read`] until every byte is consumed; act on each [`Action`] |
//! | the peer shut its sending side | [`Session::read_eof`] |
//! | the application sends | [`Session::send`], [`Session::send_broadcast`], [`Session::close`] |
//! | after any of these, and when the socket is writable | [`Session::transmit`], the one way bytes leave |
//! | to bound the poll timeout | [`Session::poll_timeout`] |
//! | that instant has come | [`Session::handle_timeout`] |
//! | [`Session::is_done`] | drop it and close the socket |
//!
//! Time comes in as `now`; the session never reads a clock, so a test can
//! drive every deadline with made-up instants, byte for byte.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use wsloop::proto::session::{Action, Session};
//! use wsloop::Config;
//!
//! let config = Config::default();
//! let t0 = Instant::now();
//! let mut session = Session::new(t0);
//! let mut input = b"GET /echo HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\
//!     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
//!     Sec-WebSocket-Version: 13\r\n\r\n".to_vec();
//! let len = input.len();
//! let (used, action) = session.read(t0, &config, &mut input);
//! assert_eq!(used, len);
//! let Some(Action::Upgrade(request)) = action else { unreachable!("a valid upgrade") };
//! session.accept(t0, &request, None);
//! let mut out = Vec::new();
//! session.transmit(&mut out).unwrap();
//! assert!(out.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
//!
//! // Silent for the idle timeout: a ping; silent again: close 1001.
//! let idle = config.idle_timeout.unwrap();
//! assert_eq!(session.poll_timeout(&config), Some(t0 + idle));
//! session.handle_timeout(t0 + idle, &config);
//! out.clear();
//! session.transmit(&mut out).unwrap();
//! assert_eq!(out, b"\x89\x00");
//! ```

use std::io;
use std::time::Instant;

use crate::buf::SendQueue;
use crate::config::Config;
use crate::id::SendStatus;
use crate::proto::connection::{Connection, Event};
use crate::proto::frame::{close_code, Role, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use crate::proto::handshake::{self, HandshakeError, HttpResponse, Parsed, Request};
use crate::proto::message::{Broadcast, Incoming, Message};
use crate::proto::time::{self, Stamp, Time, NEVER};
use crate::proto::transmit::{self, Transmit};
use crate::proto::utf8::truncate;
use crate::proto::ProtocolError;

/// Messages from this size on are written straight from the sender's
/// buffer (header and payload in one vectored write) when nothing is
/// queued, instead of being copied into the send queue first.
const WRITE_THROUGH: usize = 16 * 1024;

/// Where a client is in its life.
// Nearly every session is `Open`: boxing the connection would add an
// allocation and an indirection per client without saving memory.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum State {
    /// Waiting for the request head; `buf` holds an incomplete head only.
    Handshake { buf: Vec<u8> },
    /// Upgraded (or being decided by the application); closing once a
    /// close frame was sent.
    Open(Connection),
    /// Writing a final HTTP answer (an error or a plain page), then closing.
    Reject(SendQueue),
}

/// `Session::stage`: reading and writing.
const LIVE: u8 = 0;
/// `Session::stage`: the peer shut its side; writing what it is owed.
const DRAINING: u8 = 1;
/// `Session::stage`: over; the socket is to be closed.
const DONE: u8 = 2;

/// What [`Session::read`] needs the application to know or decide.
#[derive(Debug)]
pub enum Action<'a> {
    /// A valid upgrade request. The connection is open (and its extensions
    /// negotiated), but nothing is sent until the application answers with
    /// [`Session::accept`] or [`Session::reject`]; sends made before the
    /// answer follow the `101`.
    Upgrade(Box<Request>),
    /// A plain HTTP request (`GET` or `HEAD` without `Upgrade: websocket`):
    /// answer with [`Session::respond`].
    Http(Box<Request>),
    /// A complete data message. Give its buffer back with
    /// [`Session::recycle`] once handled.
    Message(Incoming<'a>),
    /// The request was refused with the error's HTTP status (queued); for
    /// the log.
    Refused(HandshakeError),
    /// The peer broke RFC 6455: a close frame with the error's code is
    /// queued; for the log.
    Failed(ProtocolError),
    /// The peer pings faster than it reads pongs: its queue passed
    /// `max_send_queue`, so it is being closed with 1008; for the log.
    PongFlood,
}

/// What a send did, as the loop needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// What the application is told.
    Status(SendStatus),
    /// Refused, and the session closed with 1008: it would have passed the
    /// send limit.
    LimitClosed,
}

impl Sent {
    /// What the application is told.
    #[inline]
    pub(crate) fn status(self) -> SendStatus {
        match self {
            Sent::Status(s) => s,
            Sent::LimitClosed => SendStatus::Refused,
        }
    }
}

/// What a deadline did ([`Session::handle_timeout`]), for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// No complete request within `handshake_timeout`: done.
    Handshake,
    /// Silent for `idle_timeout`: a ping is queued.
    Ping,
    /// Silent for `idle_timeout` after the ping: closing with 1001.
    Idle,
    /// The close handshake (or a final HTTP answer) did not finish within
    /// `close_timeout`: done.
    Close,
    /// The peer shut its side and did not read its last bytes within
    /// `close_timeout`: done.
    Drain,
}

/// What the socket should do after [`Session::transmit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Everything was written; keep reading.
    Idle,
    /// Bytes remain: transmit again when the socket is writable.
    Blocked,
    /// Everything was written and nothing more will be: shut the socket's
    /// sending side and keep reading (and dropping) until the peer closes,
    /// so unread input cannot make the kernel reset the connection before
    /// the peer has read the answer.
    ShutWrite,
    /// Everything was written and the session is over: close the socket.
    Close,
}

/// One client from its first byte to its close. See the module docs.
#[derive(Debug)]
pub struct Session {
    state: State,
    /// When the current wait started (accept, the last traffic while open,
    /// the close, the answer, the peer's FIN), as a stamp: what is awaited
    /// and for how long follows from the state and the config
    /// ([`Session::deadline`]), so traffic costs one store.
    since: Stamp,
    /// The peer's close code and reason (boxed: most clients never get here).
    peer_close: Option<Box<(u16, Box<str>)>>,
    ping_sent: bool,
    /// The application accepted the upgrade: its close is owed.
    accepted: bool,
    /// [`LIVE`], [`DRAINING`] (the peer shut its sending side while bytes
    /// were still queued for it: they are written within the close
    /// timeout) or [`DONE`]: one byte, so the per-message check is one
    /// compare.
    stage: u8,
    /// The last transmit left bytes queued: the peer reads slower than the
    /// server writes.
    blocked: bool,
    /// Bits the loop that drives this session keeps about it (its
    /// registrations, its dirty-list place): held here, where the
    /// session's padding has room, so that an idle client costs the loop
    /// no extra word. The session never reads them.
    pub(crate) marks: u8,
    /// A number the loop keeps with the session (the index of its request
    /// path among the server's open-connection counts), in the same spare
    /// room. The session never reads it.
    pub(crate) tag: u16,
}

impl Session {
    /// A session for a connection accepted at `now`: it waits for the
    /// request head until `config.handshake_timeout`.
    pub fn new(now: impl Into<Time>) -> Session {
        let now = now.into().0;
        Session::with_state(State::Handshake { buf: Vec::new() }, now)
    }

    /// A session for a connection over the client limit: it answers `503`
    /// with `Retry-After`, then closes.
    pub fn refuse_busy(now: impl Into<Time>) -> Session {
        Session::refusing(
            now,
            handshake::error_response(
                503,
                &[("Retry-After", "5")],
                "server is at its connection limit",
            ),
        )
    }

    /// A session that answers whatever comes with `status` and `message`
    /// (plain text), then closes: plain HTTP on a TLS port, say.
    pub fn refuse_with(now: impl Into<Time>, status: u16, message: &str) -> Session {
        Session::refusing(now, handshake::error_response(status, &[], message))
    }

    fn refusing(now: impl Into<Time>, answer: Vec<u8>) -> Session {
        let mut q = SendQueue::new();
        q.push(&answer);
        Session::with_state(State::Reject(q), now.into().0)
    }

    fn with_state(state: State, since: Stamp) -> Session {
        Session {
            state,
            since,
            peer_close: None,
            ping_sent: false,
            accepted: false,
            stage: LIVE,
            blocked: false,
            marks: 0,
            tag: 0,
        }
    }

    /// Feeds bytes that arrived at `now`. Returns how many were consumed
    /// and at most one [`Action`]; call again with the rest until all are
    /// consumed (each call consumes at least one byte or yields an action).
    /// WebSocket payloads are unmasked in place, hence `&mut`. An
    /// incomplete request head or frame is kept inside the session, so the
    /// caller never keeps leftovers. Replies the protocol owes (pongs, the
    /// close echo, error answers) are queued for [`Session::transmit`].
    // Always inlined: this is the per-message path, and a call here costs
    // the loop about 20 instructions a message (scripts/instructions).
    #[inline(always)]
    pub fn read<'a>(
        &mut self,
        now: impl Into<Time>,
        config: &Config,
        input: &'a mut [u8],
    ) -> (usize, Option<Action<'a>>) {
        let now = now.into().0;
        match &mut self.state {
            // The hot path: an open connection that still reads.
            State::Open(conn) if self.stage == LIVE => {
                if !conn.is_open() {
                    return self.read_closing(now, config, input);
                }
                // Traffic: the idle wait starts again.
                self.ping_sent = false;
                self.since = now;
                let len = input.len();
                match conn.read(input) {
                    // The common cases, straight through.
                    Ok((used, Some(Event::Message(m)))) => (used, Some(Action::Message(m))),
                    Ok((used, None)) => (used, None),
                    other => self.after_event(now, config, len, true, other),
                }
            }
            State::Handshake { .. } if self.stage == LIVE => self.read_request(now, config, input),
            // Drained and dropped: an answer being written, or input after
            // the peer's FIN or the end.
            _ => (input.len(), None),
        }
    }

    fn read_request<'a>(
        &mut self,
        now: Stamp,
        config: &Config,
        input: &mut [u8],
    ) -> (usize, Option<Action<'a>>) {
        let limit = config.max_header_bytes;
        let State::Handshake { buf } = &mut self.state else {
            unreachable!("read_request is only called while handshaking")
        };
        if buf.is_empty() {
            // The common case: the whole head in one read, parsed in place.
            if handshake::head_complete(input, 0) {
                return self.request(now, config, input, 0);
            }
            if input.len() < limit {
                buf.extend_from_slice(input);
                return (input.len(), None);
            }
        } else {
            let from = buf.len();
            buf.extend_from_slice(input);
            if handshake::head_complete(buf, from) {
                let mut head = std::mem::take(buf);
                return self.request(now, config, &mut head, from);
            }
            if buf.len() < limit {
                return (input.len(), None);
            }
        }
        let action = self.refuse(now, HandshakeError::HeadersTooLarge(limit));
        (input.len(), action)
    }

    /// A complete head is at the start of `head`, of which the first `kept`
    /// bytes came from earlier reads. Returns how much of this read's input
    /// the head took: what follows it belongs to the WebSocket connection
    /// and is fed again by the caller.
    fn request<'a>(
        &mut self,
        now: Stamp,
        config: &Config,
        head: &mut [u8],
        kept: usize,
    ) -> (usize, Option<Action<'a>>) {
        let read = head.len() - kept;
        let (request, len) = match handshake::parse_head(head, config) {
            Ok(Parsed::Complete { request, len }) => (request, len),
            Ok(Parsed::Partial) => {
                // The blank line was inside something httparse still reads
                // as incomplete; keep the bytes and wait.
                self.state = State::Handshake { buf: head.to_vec() };
                return (read, None);
            }
            Err(e) => return (read, self.refuse(now, e)),
        };
        let used = len - kept;
        match request.validate(config) {
            Ok(()) => {}
            Err(HandshakeError::NotWebSocket) => {
                return (used, Some(Action::Http(Box::new(request))))
            }
            Err(e) => return (read, self.refuse(now, e)),
        }
        #[allow(unused_mut)] // mutated with the `deflate` feature only
        let mut conn = Connection::new(Role::Server, config);
        #[cfg(feature = "deflate")]
        if config.deflate.enabled {
            if let Some(agreed) =
                crate::proto::deflate::negotiate(&request.extensions(), &config.deflate)
            {
                conn.set_deflate(agreed);
            }
        }
        self.state = State::Open(conn);
        (used, Some(Action::Upgrade(Box::new(request))))
    }

    fn refuse<'a>(&mut self, now: Stamp, e: HandshakeError) -> Option<Action<'a>> {
        self.finish_with(now, e.response());
        Some(Action::Refused(e))
    }

    /// Input for a connection that sent its close frame: data is dropped
    /// by the connection, the peer's close is recorded.
    fn read_closing<'a>(
        &mut self,
        now: Stamp,
        config: &Config,
        input: &'a mut [u8],
    ) -> (usize, Option<Action<'a>>) {
        let State::Open(conn) = &mut self.state else {
            unreachable!("read_closing is only called on an open session")
        };
        let was_open = conn.is_open();
        let len = input.len();
        let result = conn.read(input);
        self.after_event(now, config, len, was_open, result)
    }

    /// What the connection's event (other than a message) means for the
    /// session: the pong-flood guard, the peer's close, a protocol error,
    /// and the close timeout when our close frame was just queued.
    fn after_event<'a>(
        &mut self,
        now: Stamp,
        config: &Config,
        len: usize,
        was_open: bool,
        result: Result<(usize, Option<Event<'a>>), ProtocolError>,
    ) -> (usize, Option<Action<'a>>) {
        let State::Open(conn) = &mut self.state else {
            unreachable!("after_event is only called on an open session")
        };
        let (used, action) = match result {
            Ok((used, None)) => (used, None),
            Ok((used, Some(Event::Message(m)))) => (used, Some(Action::Message(m))),
            Ok((used, Some(Event::Ping(_)))) => {
                // Pongs are owed, but a peer that pings without reading must
                // not grow its queue without bound. Once closing, no pongs
                // are queued.
                if conn.is_open() && conn.buffered_amount() > config.max_send_queue {
                    let _ = conn.close(close_code::POLICY_VIOLATION, "send queue limit exceeded");
                    (used, Some(Action::PongFlood))
                } else {
                    (used, None)
                }
            }
            Ok((used, Some(Event::Pong(_)))) => (used, None),
            Ok((used, Some(Event::Close(frame)))) => {
                self.peer_close = Some(Box::new((frame.code, frame.reason().into())));
                (used, None)
            }
            Err(e) => (len, Some(Action::Failed(e))),
        };
        if was_open && !conn.is_open() {
            // Our close frame (an echo, an error's, the pong-flood guard's)
            // was just queued: the close timeout starts.
            self.since = now;
        }
        (used, action)
    }

    /// Accepts the upgrade announced by [`Action::Upgrade`]: the `101`
    /// answer goes out first, with `protocol` if the client offered it
    /// (§4.2.2: one it did not offer is dropped, with a warning, rather than
    /// failing a connection already accepted). The idle wait starts.
    pub fn accept(&mut self, now: impl Into<Time>, request: &Request, protocol: Option<&str>) {
        let now = now.into().0;
        let State::Open(conn) = &mut self.state else {
            return;
        };
        let protocol = protocol.filter(|p| {
            let offered = request.protocols().any(|o| o == *p);
            if !offered {
                log::warn!("handler chose subprotocol {p:?}, which the client did not offer; accepting without one");
            }
            offered
        });
        let response = handshake::accept_response(request, protocol, conn.extensions());
        conn.outgoing().push_front(response);
        self.accepted = true;
        self.since = now;
    }

    /// Refuses the upgrade announced by [`Action::Upgrade`] with `status`
    /// and a one-line `reason`; what was sent meanwhile is dropped.
    pub fn reject(&mut self, now: impl Into<Time>, status: u16, reason: &str) {
        let now = now.into().0;
        self.finish_with(now, handshake::error_response(status, &[], reason));
    }

    /// Answers the plain HTTP request announced by [`Action::Http`] with
    /// `response`, or `426 Upgrade Required` when there is none. A `HEAD`
    /// request gets the status and headers without the body.
    pub fn respond(
        &mut self,
        now: impl Into<Time>,
        request: &Request,
        response: Option<&HttpResponse>,
    ) {
        let now = now.into().0;
        let head_only = request.method() == "HEAD";
        let bytes = match response {
            Some(r) => r.to_bytes(head_only),
            None => HandshakeError::NotWebSocket.response_for(head_only),
        };
        self.finish_with(now, bytes);
    }

    /// The final HTTP answer `bytes` replaces whatever was queued.
    fn finish_with(&mut self, now: Stamp, bytes: Vec<u8>) {
        let mut q = SendQueue::new();
        q.push(&bytes);
        self.state = State::Reject(q);
        self.accepted = false;
        self.since = now;
    }

    /// Gives back a message's buffer ([`Action::Message`]) to the thread's
    /// buffer pool, for the next message that needs one.
    #[inline]
    pub fn recycle(&mut self, message: Incoming<'_>) {
        if let (Some(buf), State::Open(conn)) = (message.into_buffer(), &mut self.state) {
            conn.recycle(buf);
        }
    }

    /// The peer shut its sending side at `now`. It may still read: what it
    /// is owed (a reply, the close echo) is written within the close
    /// timeout, then the session is done; with nothing owed it is done at
    /// once.
    pub fn read_eof(&mut self, now: impl Into<Time>) {
        let now = now.into().0;
        if self.has_pending() {
            self.stage = DRAINING;
            self.since = now;
        } else {
            self.stage = DONE;
        }
    }

    /// Queues `msg`; a large message with nothing queued before it is
    /// written to `out` at once (header and payload in one vectored write,
    /// the payload without a copy) and only what `out` does not take is
    /// queued. Call [`Session::transmit`] before waiting for events.
    ///
    /// The send limit: a message that would take a non-empty queue past
    /// `config.max_send_queue` is refused and the client, which is not
    /// reading, is closed with 1008. A queue thus never holds more than the
    /// limit or one message (plus the close frame), and every frame in it
    /// stays whole.
    #[inline]
    pub fn send(
        &mut self,
        now: impl Into<Time>,
        config: &Config,
        msg: Message<'_>,
        out: &mut (impl Transmit + ?Sized),
    ) -> SendStatus {
        self.send_checked(now.into(), config, msg, out).status()
    }

    /// [`Session::send`], saying whether the send limit closed the session.
    #[inline]
    pub(crate) fn send_checked(
        &mut self,
        now: Time,
        config: &Config,
        msg: Message<'_>,
        out: &mut (impl Transmit + ?Sized),
    ) -> Sent {
        let size = msg.as_bytes().len();
        let blocked = self.blocked;
        self.queue(now.0, config, size + MAX_HEADER_LEN, |conn| {
            if size >= WRITE_THROUGH && !blocked && conn.buffered_amount() == 0 {
                if let Some((head, n)) = conn.header_for(&msg) {
                    transmit::write_through(conn.outgoing(), out, &head[..n], msg.as_bytes());
                    return true;
                }
            }
            conn.send(msg).is_ok()
        })
    }

    /// Queues a message that goes to many sessions: each form of its frame
    /// is encoded once and its bytes shared (see [`Broadcast`]). The send
    /// limit applies as for [`Session::send`].
    pub fn send_broadcast(
        &mut self,
        now: impl Into<Time>,
        config: &Config,
        broadcast: &mut Broadcast<'_>,
    ) -> SendStatus {
        self.send_broadcast_checked(now.into(), config, broadcast)
            .status()
    }

    /// [`Session::send_broadcast`], saying whether the send limit closed
    /// the session.
    pub(crate) fn send_broadcast_checked(
        &mut self,
        now: Time,
        config: &Config,
        broadcast: &mut Broadcast<'_>,
    ) -> Sent {
        let size = broadcast.message().as_bytes().len() + MAX_HEADER_LEN;
        self.queue(now.0, config, size, |conn| {
            conn.send_broadcast(broadcast).is_ok()
        })
    }

    /// Queues frames already encoded (plain, unmasked: for connections
    /// without permessage-deflate), shared with other queues, with the
    /// send limit applied as to any send.
    pub(crate) fn send_frames_checked(
        &mut self,
        now: Time,
        config: &Config,
        frames: &std::sync::Arc<[u8]>,
    ) -> Sent {
        self.queue(now.0, config, frames.len(), |conn| {
            conn.send_shared(frames).is_ok()
        })
    }

    /// [`Session::send_frames_checked`], written at once when nothing is
    /// queued and the peer keeps up (what the socket does not take is
    /// queued): for the end of a turn, when no later send to this client
    /// can join the same write.
    pub(crate) fn send_frames_through(
        &mut self,
        now: Time,
        config: &Config,
        frames: &std::sync::Arc<[u8]>,
        out: &mut (impl Transmit + ?Sized),
    ) -> Sent {
        let blocked = self.blocked;
        self.queue(now.0, config, frames.len(), |conn| {
            if !blocked && conn.buffered_amount() == 0 && conn.is_open() {
                transmit::write_shared_through(conn.outgoing(), out, frames);
                return true;
            }
            conn.send_shared(frames).is_ok()
        })
    }

    #[inline]
    fn queue(
        &mut self,
        now: Stamp,
        config: &Config,
        size: usize,
        push: impl FnOnce(&mut Connection) -> bool,
    ) -> Sent {
        let State::Open(conn) = &mut self.state else {
            return Sent::Status(SendStatus::Refused);
        };
        if !conn.is_open() {
            return Sent::Status(SendStatus::Refused);
        }
        let queued = conn.buffered_amount();
        // An empty queue takes any one message, so a maximal message always
        // fits; memory stays bounded by the larger of the limit and it.
        if queued > 0 && queued + size > config.max_send_queue {
            let _ = conn.close(close_code::POLICY_VIOLATION, "send queue limit exceeded");
            self.since = now;
            return Sent::LimitClosed;
        }
        Sent::Status(if !push(conn) {
            SendStatus::Refused
        } else if conn.buffered_amount() > 0 && self.blocked {
            SendStatus::Queued
        } else {
            SendStatus::Sent
        })
    }

    /// Starts the closing handshake: a close frame with `code` and `reason`
    /// (cut to 123 bytes at a character boundary). False if the session is
    /// not open, already closing, or the code may not be sent (§7.4).
    pub fn close(&mut self, now: impl Into<Time>, code: u16, reason: &str) -> bool {
        let now = now.into().0;
        let State::Open(conn) = &mut self.state else {
            return false;
        };
        let reason = truncate(reason, MAX_CONTROL_PAYLOAD - 2);
        if conn.close(code, reason).is_err() {
            return false;
        }
        self.since = now;
        true
    }

    /// The server is shutting down: an open session closes with 1001, one
    /// still reading its request is done at once, a final answer is left
    /// to finish.
    pub fn shutdown(&mut self, now: impl Into<Time>) {
        let now = now.into().0;
        match &self.state {
            State::Handshake { .. } => self.stage = DONE,
            State::Open(_) => {
                self.close(Time(now), close_code::GOING_AWAY, "server shutting down");
            }
            State::Reject(_) => {}
        }
    }

    /// Writes what is queued to `out` until it is empty or `out` would
    /// block: the one way bytes leave a session (the `101`, HTTP answers,
    /// frames, shared broadcast bytes, the last bytes before the FIN). Call
    /// it after anything that may have queued bytes ([`Session::read`],
    /// sends, [`Session::handle_timeout`]) and when the socket becomes
    /// writable again after [`Flow::Blocked`]. An error means the
    /// connection is gone: drop the session.
    #[inline(always)] // the per-flush path: see `read`
    pub fn transmit(&mut self, out: &mut (impl Transmit + ?Sized)) -> io::Result<Flow> {
        // What is queued is all the session will ever send: the socket is
        // closed or shut for writing as soon as it is written.
        let last = self.stage == DRAINING
            || match &self.state {
                State::Open(c) => c.sends_nothing_more(),
                State::Reject(_) => true,
                State::Handshake { .. } => false,
            };
        let queue = match &mut self.state {
            State::Open(conn) => conn.outgoing(),
            State::Reject(q) => q,
            State::Handshake { .. } => return Ok(Flow::Idle),
        };
        let drained = transmit::drain(queue, out, last)?;
        self.blocked = !drained;
        if !drained {
            return Ok(Flow::Blocked);
        }
        if self.stage == DRAINING {
            // The peer half-closed earlier and now has everything.
            self.stage = DONE;
            return Ok(Flow::Close);
        }
        Ok(match &self.state {
            // §7.1.1: after the closing handshake the server closes TCP first.
            State::Open(conn) if conn.is_finished() && conn.close_received() => {
                self.stage = DONE;
                Flow::Close
            }
            // Our close (after an error) or answer is out: half-close and
            // drain until the peer closes.
            State::Open(conn) if conn.is_finished() => Flow::ShutWrite,
            State::Reject(_) => Flow::ShutWrite,
            _ => Flow::Idle,
        })
    }

    /// The instant at which [`Session::handle_timeout`] has work to do:
    /// the end of the handshake, idle, close or drain wait. `None`: nothing
    /// is awaited (an open session with no idle timeout, or one that is
    /// done). Call it after anything that changed the session, to bound the
    /// poll timeout.
    pub fn poll_timeout(&self, config: &Config) -> Option<Instant> {
        let at = self.deadline(config);
        (at != NEVER).then(|| time::instant(at))
    }

    /// [`Session::poll_timeout`] as a stamp, for the loop's timer heap.
    pub(crate) fn deadline(&self, config: &Config) -> Stamp {
        let after = |wait| time::after(self.since, wait);
        if self.stage == DONE {
            return NEVER;
        }
        if self.stage == DRAINING {
            return after(config.close_timeout);
        }
        match &self.state {
            State::Handshake { .. } => after(config.handshake_timeout),
            State::Reject(_) => after(config.close_timeout),
            State::Open(conn) if conn.close_sent() => after(config.close_timeout),
            // Not answered yet (the application decides now): no wait.
            State::Open(_) if !self.accepted => NEVER,
            // Idle: a ping after `idle`, the close after another `idle`.
            State::Open(_) => match config.idle_timeout {
                Some(idle) if self.ping_sent => after(idle.saturating_mul(2)),
                Some(idle) => after(idle),
                None => NEVER,
            },
        }
    }

    /// Acts on the deadline if it has passed at `now` (earlier calls do
    /// nothing and return `None`): a handshake, close or drain that took too
    /// long is done; an idle client is pinged, and closed with 1001 if it
    /// stays silent for another idle period. Transmit afterwards.
    pub fn handle_timeout(&mut self, now: impl Into<Time>, config: &Config) -> Option<Expired> {
        let now = now.into().0;
        if self.deadline(config) > now {
            return None;
        }
        let expired = if self.stage == DRAINING {
            Expired::Drain
        } else {
            match &mut self.state {
                State::Handshake { .. } => Expired::Handshake,
                State::Reject(_) => Expired::Close,
                State::Open(conn) if conn.close_sent() => Expired::Close,
                State::Open(conn) if !self.ping_sent => {
                    // Silent for `idle`: ask for a sign of life.
                    let _ = conn.ping(b"");
                    self.ping_sent = true;
                    return Some(Expired::Ping);
                }
                State::Open(conn) => {
                    let _ = conn.close(close_code::GOING_AWAY, "idle timeout");
                    self.since = now;
                    return Some(Expired::Idle);
                }
            }
        };
        self.stage = DONE;
        Some(expired)
    }

    /// The most memory permessage-deflate can hold for this session
    /// between messages (its windows; 0 without context takeover), if it
    /// was agreed. Known from [`Action::Upgrade`] on.
    #[cfg(feature = "deflate")]
    pub fn deflate_memory(&self) -> Option<usize> {
        match &self.state {
            State::Open(conn) => conn.deflate_memory(),
            _ => None,
        }
    }

    /// Declines the permessage-deflate agreement of an upgrade not yet
    /// accepted: the `101` then carries no extension (a server over its
    /// compression memory ceiling still serves the client, uncompressed).
    #[cfg(feature = "deflate")]
    pub fn decline_deflate(&mut self) {
        if let (State::Open(conn), false) = (&mut self.state, self.accepted) {
            conn.clear_deflate();
        }
    }

    /// Whether the session is over: close the socket and drop it (with the
    /// application told, if [`Session::is_accepted`]).
    #[inline]
    pub fn is_done(&self) -> bool {
        self.stage == DONE
    }

    /// Whether the session still reads: false once the peer shut its
    /// sending side (or the session is done).
    #[inline]
    pub fn wants_input(&self) -> bool {
        self.stage == LIVE
    }

    /// Whether the application accepted the upgrade, so it is owed a close.
    #[inline]
    pub fn is_accepted(&self) -> bool {
        self.accepted
    }

    /// Whether reading `input` next may queue the reply to a close frame
    /// (see [`Connection::may_read_close`]): a caller holding messages
    /// back for this client queues them first, so they go out ahead of
    /// the close.
    pub fn may_read_close(&self, input: &[u8]) -> bool {
        matches!(&self.state, State::Open(c) if c.may_read_close(input))
    }

    /// Whether data messages can be sent: accepted and not closing.
    #[inline]
    pub fn is_open(&self) -> bool {
        self.accepted && matches!(&self.state, State::Open(c) if c.is_open())
    }

    /// Whether [`Session::transmit`] has work: bytes are queued, or the
    /// close handshake just completed and the socket is to be closed.
    #[inline]
    pub fn wants_transmit(&self) -> bool {
        match &self.state {
            State::Open(conn) => {
                conn.buffered_amount() > 0 || (conn.sends_nothing_more() && conn.close_received())
            }
            State::Reject(q) => !q.is_empty(),
            State::Handshake { .. } => false,
        }
    }

    /// Whether bytes are queued for [`Session::transmit`].
    #[inline]
    pub fn has_pending(&self) -> bool {
        match &self.state {
            State::Open(conn) => conn.buffered_amount() > 0,
            State::Reject(q) => !q.is_empty(),
            State::Handshake { .. } => false,
        }
    }

    /// Whether the session is writing a final HTTP answer (refused, plain
    /// HTTP, over capacity) rather than serving a client.
    #[inline]
    pub fn is_answering(&self) -> bool {
        matches!(self.state, State::Reject(_))
    }

    /// Bytes queued and not yet written, for an upgraded session.
    #[inline]
    pub fn buffered_amount(&self) -> Option<usize> {
        match &self.state {
            State::Open(conn) => Some(conn.buffered_amount()),
            _ => None,
        }
    }

    /// The `Sec-WebSocket-Extensions` answer in force (known from
    /// [`Action::Upgrade`] on), or `None`.
    #[inline]
    pub fn extensions(&self) -> Option<&str> {
        match &self.state {
            State::Open(conn) => conn.extensions(),
            _ => None,
        }
    }

    /// The code and reason the application is told at the end: the peer's
    /// close frame, else the code the server closed with, else 1006 (the
    /// TCP connection ended without a close frame).
    pub fn close_status(&self) -> (u16, &str) {
        if let Some(close) = &self.peer_close {
            return (close.0, &close.1);
        }
        match &self.state {
            State::Open(conn) => (conn.close_code_sent().unwrap_or(close_code::ABNORMAL), ""),
            _ => (close_code::ABNORMAL, ""),
        }
    }
}
