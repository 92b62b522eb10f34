//! What an application implements ([`Handler`]) and how it acts on the
//! server ([`Ctx`]).
//!
//! ```text
//! loop ──on_open / on_message / on_close / on_timer──► Handler
//! Handler ──ctx.send / broadcast / close / set_timer──► queues, flushed once per iteration
//! ```
//!
//! The handler runs on the loop's thread and is never re-entered: every
//! callback returns before the next one starts (Resin's model). Sends made
//! during one loop iteration are coalesced per client and written once when
//! the iteration ends.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::frame::MAX_HEADER_LEN;
use crate::handshake::Request;
use crate::protocol::{Broadcast, Message};
use crate::server::{Core, Phase};
use crate::timers::Due;

/// Identifies one client for its whole life. It carries the slab slot and
/// a generation, so an id kept after its client left never reaches the
/// client that later gets the same slot: `send` and `close` refuse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(crate) key: u32,
    pub(crate) gen: u32,
}

impl ConnId {
    /// The id as one number (for timer tags, maps, logs).
    pub fn to_u64(self) -> u64 {
        (u64::from(self.gen) << 32) | u64::from(self.key)
    }

    /// The id back from [`ConnId::to_u64`].
    pub fn from_u64(v: u64) -> ConnId {
        ConnId {
            key: v as u32,
            gen: (v >> 32) as u32,
        }
    }
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}.{}", self.key, self.gen)
    }
}

/// Identifies a handler timer, for [`Ctx::cancel_timer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId {
    pub(crate) key: u32,
    pub(crate) gen: u32,
}

/// What became of a message given to [`Ctx::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Queued with the socket keeping up: it is written when this loop
    /// iteration ends, together with the client's other sends.
    Sent,
    /// Queued behind bytes the socket has not taken yet: the client is
    /// reading slower than the server writes. [`Ctx::buffered_amount`] says
    /// how far behind it is; past `max_send_queue` it is closed with 1008.
    Queued,
    /// Not sent: the client is gone, closing, or was just closed with 1008
    /// because this message would have taken its queue past
    /// `max_send_queue`.
    Refused,
}

/// The answer of [`Handler::on_open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Upgrade, optionally with one of the subprotocols the client offered.
    Accept {
        /// The chosen subprotocol (must be one of `Request::protocols`).
        protocol: Option<String>,
    },
    /// Refuse with an HTTP status and a one-line reason.
    Reject {
        /// HTTP status, e.g. 403 or 404.
        status: u16,
        /// The response body.
        reason: String,
    },
}

impl Decision {
    /// Accept without a subprotocol.
    pub fn accept() -> Decision {
        Decision::Accept { protocol: None }
    }

    /// Accept with a subprotocol the client offered.
    pub fn accept_protocol(protocol: impl Into<String>) -> Decision {
        Decision::Accept {
            protocol: Some(protocol.into()),
        }
    }

    /// Refuse with `status` and `reason`.
    pub fn reject(status: u16, reason: impl Into<String>) -> Decision {
        Decision::Reject {
            status,
            reason: reason.into(),
        }
    }
}

/// A plain HTTP response, for requests that are not WebSocket upgrades
/// (see [`Handler::on_http`]). The connection closes after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type` header.
    pub content_type: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a body of the given type.
    pub fn new(status: u16, content_type: impl Into<String>, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type: content_type.into(),
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// A one-line plain-text response.
    pub fn text(status: u16, message: &str) -> Response {
        Response::new(status, "text/plain; charset=utf-8", format!("{message}\n"))
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let extra: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        crate::handshake::http_response(self.status, &extra, &self.content_type, &self.body)
    }
}

/// An application on the loop. Only `on_message` is required.
///
/// ```
/// use wsloop::{Ctx, ConnId, Handler, Message};
/// struct Echo;
/// impl Handler for Echo {
///     type Data = ();
///     fn on_message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, msg: Message<'_>) {
///         ctx.send(id, msg);
///     }
/// }
/// ```
pub trait Handler {
    /// Per-connection state of the handler's own type, created with
    /// `Default` when a client connects; see [`Ctx::data`].
    type Data: Default;

    /// A valid upgrade request arrived. Sends made here are delivered right
    /// after the `101` response. Default: accept without a subprotocol.
    fn on_open(&mut self, ctx: &mut Ctx<'_, Self::Data>, id: ConnId, req: &Request) -> Decision {
        let _ = (ctx, id, req);
        Decision::accept()
    }

    /// A complete text or binary message. It is borrowed from the loop's
    /// buffer: copy what must outlive the call.
    fn on_message(&mut self, ctx: &mut Ctx<'_, Self::Data>, id: ConnId, msg: Message<'_>);

    /// The client is gone; called exactly once for every accepted client.
    /// `code` is the peer's close code if it sent a close frame, else the
    /// code the server closed with, else 1006 (the TCP connection ended
    /// without a close frame).
    fn on_close(&mut self, ctx: &mut Ctx<'_, Self::Data>, id: ConnId, code: u16, reason: &str) {
        let _ = (ctx, id, code, reason);
    }

    /// A timer set with [`Ctx::set_timer`] is due.
    fn on_timer(&mut self, ctx: &mut Ctx<'_, Self::Data>, timer: TimerId, tag: u64) {
        let _ = (ctx, timer, tag);
    }

    /// A plain HTTP GET (no `Upgrade: websocket`). Return a response to
    /// serve it; `None` (the default) answers 426 Upgrade Required.
    fn on_http(&mut self, req: &Request) -> Option<Response> {
        let _ = req;
        None
    }
}

/// The handler's view of the server during a callback.
pub struct Ctx<'a, D> {
    pub(crate) core: &'a mut Core<D>,
}

impl<D> Ctx<'_, D> {
    /// Queues `msg` for client `id`.
    pub fn send(&mut self, id: ConnId, msg: Message<'_>) -> SendStatus {
        self.core.send(id, msg)
    }

    /// Sends `msg` to every id in `ids`: the frame is encoded once and its
    /// bytes are shared by every recipient's queue (with permessage-deflate:
    /// compressed once for the recipients that share parameters without
    /// context takeover, see [`Connection::send_broadcast`]). Returns how
    /// many recipients took it.
    ///
    /// [`Connection::send_broadcast`]: crate::protocol::Connection::send_broadcast
    pub fn broadcast(&mut self, ids: impl IntoIterator<Item = ConnId>, msg: Message<'_>) -> usize {
        let mut b = Broadcast::new(msg);
        let size = msg.as_bytes().len() + MAX_HEADER_LEN;
        ids.into_iter()
            .filter(|&id| {
                let status = self
                    .core
                    .queue(id, size, |conn, _, _| conn.send_broadcast(&mut b).is_ok());
                status != SendStatus::Refused
            })
            .count()
    }

    /// Sends `msg` to every open client (see [`Ctx::broadcast`]).
    pub fn broadcast_all(&mut self, msg: Message<'_>) -> usize {
        let ids = self.ids();
        self.broadcast(ids, msg)
    }

    /// Starts the closing handshake with client `id`: a close frame with
    /// `code` and `reason` (at most 123 bytes; longer is cut at a character
    /// boundary). Returns false if the client is gone or already closing, or
    /// the code may not be sent (RFC 6455 §7.4).
    pub fn close(&mut self, id: ConnId, code: u16, reason: &str) -> bool {
        self.core.close(id, code, reason)
    }

    /// Bytes queued for `id` that the socket has not taken yet.
    pub fn buffered_amount(&self, id: ConnId) -> Option<usize> {
        let client = self.core.client(id)?;
        match &client.phase {
            Phase::Open(conn) => Some(conn.buffered_amount()),
            _ => None,
        }
    }

    /// Whether `id` is an open client (accepted and not closing).
    pub fn is_open(&self, id: ConnId) -> bool {
        matches!(self.core.client(id).map(|c| &c.phase), Some(Phase::Open(conn)) if conn.is_open())
    }

    /// The ids of every open client.
    pub fn ids(&self) -> Vec<ConnId> {
        self.core.open_ids()
    }

    /// How many clients are connected (handshaking, open or closing).
    pub fn client_count(&self) -> usize {
        self.core.client_count()
    }

    /// The handler's data for `id` (also during its `on_close`).
    pub fn data(&mut self, id: ConnId) -> Option<&mut D> {
        let core = &mut *self.core;
        match core.clients.get_mut(id.key as usize) {
            Some(c) if c.gen == id.gen => Some(&mut c.data),
            _ => match &mut core.departing {
                Some((departed, _, data)) if *departed == id => Some(data),
                _ => None,
            },
        }
    }

    /// The `Sec-WebSocket-Extensions` answer the client was accepted with
    /// (for example `permessage-deflate; client_max_window_bits=15`), or
    /// `None` when no extension is in force. Known from `on_open` on.
    pub fn extensions(&self, id: ConnId) -> Option<&str> {
        match &self.core.client(id)?.phase {
            Phase::Open(conn) => conn.extensions(),
            _ => None,
        }
    }

    /// The peer's address (also during its `on_close`); `None` once the
    /// connection was reset, when the kernel no longer knows it.
    pub fn peer_addr(&self, id: ConnId) -> Option<SocketAddr> {
        match (self.core.client(id), &self.core.departing) {
            (Some(c), _) => c.peer_addr(),
            (None, Some((departed, stream, _))) if *departed == id => stream.peer_addr().ok(),
            _ => None,
        }
    }

    /// Calls [`Handler::on_timer`] with `tag` once `after` has passed.
    pub fn set_timer(&mut self, after: Duration, tag: u64) -> TimerId {
        let at = self
            .core
            .stamp()
            .saturating_add(crate::server::nanos(after));
        let entry = self.core.user_timers.vacant_entry();
        let key = entry.key();
        self.core.timer_gen = self.core.timer_gen.wrapping_add(1);
        let gen = self.core.timer_gen;
        entry.insert((gen, tag));
        self.core.timers.push(at, Due::User(key as u32, gen));
        TimerId {
            key: key as u32,
            gen,
        }
    }

    /// Cancels a timer; false if it already fired or was cancelled.
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        let key = timer.key as usize;
        match self.core.user_timers.get(key) {
            Some((gen, _)) if *gen == timer.gen => {
                self.core.user_timers.remove(key);
                true
            }
            _ => false,
        }
    }

    /// The loop's current time (from its clock).
    pub fn now(&self) -> Instant {
        self.core.now
    }
}
