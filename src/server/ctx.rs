//! [`Ctx`]: what a handler may do to the server during a callback. Each
//! method is one call on the loop's core; sends made in one iteration are
//! coalesced per client and written once when it ends.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::core::Core;
use super::source::SourceId;
use crate::id::{ConnId, SendStatus, TimerId};
use crate::proto::message::{Broadcast, Message};

/// The handler's view of the server during a callback.
///
/// A chat room: names kept per client, every message to everyone, and a
/// reminder to the quiet ones.
///
/// ```
/// use std::time::Duration;
/// use wsloop::{ConnId, Ctx, Decision, Handler, Message, Request, SendStatus};
///
/// #[derive(Default)]
/// struct Member { name: String }
///
/// struct Chat;
/// impl Handler for Chat {
///     type Data = Member;
///     fn on_open(&mut self, ctx: &mut Ctx<'_, Member>, id: ConnId, req: &Request) -> Decision {
///         let name = req.query().unwrap_or("guest").to_owned();
///         if let Some(member) = ctx.data(id) {
///             member.name = name;
///         }
///         ctx.set_timer(Duration::from_secs(30), id.to_u64());
///         Decision::accept()
///     }
///     fn on_message(&mut self, ctx: &mut Ctx<'_, Member>, id: ConnId, msg: Message<'_>) {
///         let Message::Text(text) = msg else { return };
///         let name = ctx.data(id).map(|m| m.name.clone()).unwrap_or_default();
///         // Encoded once, shared by every recipient.
///         ctx.broadcast_all(Message::Text(&format!("{name}: {text}")));
///     }
///     fn on_timer(&mut self, ctx: &mut Ctx<'_, Member>, _timer: wsloop::TimerId, tag: u64) {
///         let id = ConnId::from_u64(tag);
///         if ctx.send(id, Message::Text("still there?")) == SendStatus::Refused {
///             return; // gone, or closing
///         }
///     }
/// }
/// ```
pub struct Ctx<'a, D> {
    core: &'a mut Core<D>,
}

impl<'a, D> Ctx<'a, D> {
    pub(super) fn new(core: &'a mut Core<D>) -> Self {
        Ctx { core }
    }
}

impl<D> Ctx<'_, D> {
    /// Queues `msg` for client `id`. A large message to a client with
    /// nothing queued is written at once, without a copy.
    ///
    /// An id of another linked loop's client is passed to that loop
    /// (`Queued`, or `Refused` when that loop's queue is full or gone).
    pub fn send(&mut self, id: ConnId, msg: Message<'_>) -> SendStatus {
        if id.loop_index() != self.core.index as usize {
            return self.core.send_elsewhere(id, msg);
        }
        self.core.send(id, msg)
    }

    /// Sends `msg` to every id in `ids`: the frame is encoded once and its
    /// bytes are shared by every recipient's queue (with permessage-deflate:
    /// compressed once for the recipients that share parameters without
    /// context takeover, see [`Broadcast`](crate::proto::Broadcast)).
    /// Returns how many recipients took it.
    pub fn broadcast(&mut self, ids: impl IntoIterator<Item = ConnId>, msg: Message<'_>) -> usize {
        self.core.broadcast(ids, msg)
    }

    /// Sends `msg` to every open client (see [`Ctx::broadcast`]).
    pub fn broadcast_all(&mut self, msg: Message<'_>) -> usize {
        let ids = self.ids();
        self.broadcast(ids, msg)
    }

    /// Subscribes client `id` to `topic`: from now on it receives what is
    /// published there, until [`Ctx::unsubscribe`] or its close (a client
    /// leaves all its topics when it goes). Works in `on_open`. False if
    /// it was subscribed already or is gone.
    pub fn subscribe(&mut self, id: ConnId, topic: &str) -> bool {
        self.core.subscribe(id, topic)
    }

    /// Unsubscribes client `id` from `topic`; false if it was not subscribed.
    pub fn unsubscribe(&mut self, id: ConnId, topic: &str) -> bool {
        self.core.unsubscribe(id, topic)
    }

    /// Sends `msg` to every subscriber of `topic`: the frame is encoded
    /// once and its bytes shared by every queue, as [`Ctx::broadcast`]
    /// does (with permessage-deflate, compressed once per parameter set
    /// for clients without server context takeover, and once per client
    /// for those with it: broadcast-heavy servers should offer
    /// `server_no_context_takeover`). Consecutive publishes to one topic
    /// whose subscribers all take the plain frame are queued together, one
    /// chunk per subscriber, when anything else happens or the turn ends;
    /// the order of everything a client is sent stays as it was made.
    /// Returns how many subscribers the topic has (a closing one among
    /// them refuses it).
    ///
    /// With linked loops ([`Loops`](crate::Loops)) the same bytes also go
    /// to every other loop, whose subscribers get them when it next turns;
    /// the count is this loop's. With a Redis backplane
    /// ([`Server::set_redis`](crate::Server::set_redis)) the message also
    /// goes to the other processes (at most once, see
    /// [`backplane`](crate::backplane)).
    pub fn publish(&mut self, topic: &str, msg: Message<'_>) -> usize {
        let mut b = Broadcast::new(msg);
        let n = self.core.publish(topic, &mut b);
        self.core.forward_publish(topic, &mut b);
        #[cfg(feature = "redis")]
        self.core.relay(topic, msg);
        n
    }

    /// How many clients are subscribed to `topic`.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.core.topics.count(topic)
    }

    /// The topics client `id` is subscribed to.
    pub fn subscriptions(&self, id: ConnId) -> impl Iterator<Item = &str> + '_ {
        let key = self.core.is_client(id).then_some(id.key());
        key.into_iter().flat_map(|key| self.core.topics.of(key))
    }

    /// A handle to this loop for other threads (see
    /// [`LoopHandle`](crate::LoopHandle)).
    pub fn handle(&self) -> crate::LoopHandle {
        self.core.commands.handle()
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
        self.core.buffered_amount(id)
    }

    /// Whether `id` is an open client (accepted and not closing).
    pub fn is_open(&self, id: ConnId) -> bool {
        self.core.is_open(id)
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
        self.core.data(id)
    }

    /// The `Sec-WebSocket-Extensions` answer the client was accepted with
    /// (for example `permessage-deflate; client_max_window_bits=15`), or
    /// `None` when no extension is in force. Known from `on_open` on.
    pub fn extensions(&self, id: ConnId) -> Option<&str> {
        self.core.extensions(id)
    }

    /// The peer's address (also during its `on_close`); `None` once the
    /// connection was reset, when the kernel no longer knows it.
    pub fn peer_addr(&self, id: ConnId) -> Option<SocketAddr> {
        self.core.peer_addr(id)
    }

    /// Calls [`Handler::on_timer`](crate::Handler::on_timer) with `tag`
    /// once `after` has passed.
    pub fn set_timer(&mut self, after: Duration, tag: u64) -> TimerId {
        self.core.set_timer(after, tag)
    }

    /// Cancels a timer; false if it already fired or was cancelled.
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.core.cancel_timer(timer)
    }

    /// Registers another event source (a child process's pipe, a socket
    /// to another service) in the loop's `Poll`: its readiness comes to
    /// [`Handler::on_source`](crate::Handler::on_source) with the returned
    /// id. Deregister it before dropping it.
    pub fn register(
        &mut self,
        source: &mut impl mio::event::Source,
        interest: mio::Interest,
    ) -> std::io::Result<SourceId> {
        self.core.register(source, interest)
    }

    /// Changes what a registered source is polled for.
    pub fn reregister(
        &mut self,
        id: SourceId,
        source: &mut impl mio::event::Source,
        interest: mio::Interest,
    ) -> std::io::Result<()> {
        self.core.reregister(id, source, interest)
    }

    /// Takes a source out of the loop; its id is no longer valid.
    pub fn deregister(
        &mut self,
        id: SourceId,
        source: &mut impl mio::event::Source,
    ) -> std::io::Result<()> {
        self.core.deregister(id, source)
    }

    /// Stops reading from client `id` (backpressure: what it sends waits in
    /// the kernel, and TCP tells it to slow down) until
    /// [`Ctx::resume_reading`]. False if the client is gone.
    pub fn pause_reading(&mut self, id: ConnId) -> bool {
        self.core.pause_reading(id)
    }

    /// Asks for [`Handler::on_drain`](crate::Handler::on_drain) once client
    /// `id` has written out everything queued so far, even if its socket
    /// never fell behind: for a handler that stops producing at a bound of
    /// its own (checked with [`Ctx::buffered_amount`]) and must learn when
    /// to go on. False if the client is gone.
    pub fn notify_drained(&mut self, id: ConnId) -> bool {
        self.core.notify_drained(id)
    }

    /// Reads from client `id` again, starting with what arrived meanwhile.
    pub fn resume_reading(&mut self, id: ConnId) -> bool {
        self.core.resume_reading(id)
    }

    /// The loop's current time (from its clock).
    pub fn now(&self) -> Instant {
        self.core.now
    }
}
