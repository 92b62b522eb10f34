//! The loop's slab of clients and everything a handler may do to them,
//! as methods: [`Ctx`](super::Ctx) calls these and reaches no field.
//!
//! ```text
//! Ctx ──send / broadcast / close / timers──► Core ──► Session (policy) ──► queue or write-through
//!                                             └──► touch(key): dirty list, timer heap, answering count
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;

use log::warn;
use mio::event::Source;
use mio::net::TcpStream;
use mio::{Interest, Registry};
use slab::Slab;

use super::handle::{Command, Commands};
use super::io::{Peer, Socket};
use super::source::SourceId;
use super::stats::Counters;
use super::timers::{Due, Stamp, Timers};
use super::tokens::Tokens;
use super::topics::Topics;
use crate::config::Config;
use crate::id::{ConnId, SendStatus, TimerId, GEN_MASK, LOOP_SHIFT};
use crate::proto::message::{Broadcast, EncodedMessage, Message};
use crate::proto::session::{Sent, Session};
use crate::proto::time::{self, Time, NEVER};

/// `Client` marks (kept in the session's spare byte, see `Session::marks`).
/// Registered for `WRITABLE`.
pub(super) const WRITABLE: u8 = 1;
/// Bytes are waiting for the socket: `WRITABLE` is wanted.
pub(super) const WANT_WRITE: u8 = 2;
/// On the dirty list: flushed when the iteration ends.
pub(super) const DIRTY: u8 = 4;
/// Registered for `READABLE` (not while the handler paused reading).
pub(super) const READING: u8 = 8;
/// The handler paused reading from it.
pub(super) const PAUSED: u8 = 16;
/// Counted in `Core::answering` (writing a final HTTP answer).
pub(super) const ANSWERING: u8 = 32;
/// The handler asked for `on_drain` once its queue is empty
/// (`Ctx::notify_drained`), whether or not the socket ever fell behind.
pub(super) const DRAIN_WANTED: u8 = 64;
/// Its bytes go through rustls (`Core::tls[key]`).
#[cfg(feature = "tls")]
pub(super) const TLS: u8 = 128;

/// One accepted TCP connection: its socket, its session, the handler's data
/// and the loop's bookkeeping.
pub(super) struct Client<D> {
    pub(super) stream: TcpStream,
    pub(super) gen: u32,
    pub(super) session: Session,
    pub(super) data: D,
    /// Deadline of this client's entry in the timer heap ([`NEVER`]: none).
    pub(super) armed: Stamp,
}

/// The server's state that handler callbacks act on through [`Ctx`](super::Ctx).
pub(crate) struct Core<D> {
    pub(super) clients: Slab<Client<D>>,
    /// Where clients and sources are registered, and with which tokens.
    pub(super) registry: Registry,
    pub(super) tokens: Tokens,
    /// Other event sources: their generations, by slot.
    sources: Slab<u32>,
    source_gen: u32,
    /// Clients with more to read than one turn took (or whose reading was
    /// resumed), and whether the peer's FIN was already reported: no new
    /// edge will come for them, so the next turn must read until EOF or
    /// `WouldBlock`.
    pub(super) backlog: Vec<(ConnId, bool)>,
    pub(super) timers: Timers,
    user_timers: Slab<(u32, u64)>,
    timer_gen: u32,
    pub(super) now: Instant,
    /// `now` as a [`Stamp`], kept with it.
    now_stamp: Stamp,
    /// What stamps count from ([`time::origin`], kept at hand).
    origin: Instant,
    pub(super) config: Config,
    pub(super) dirty: Vec<usize>,
    next_gen: u32,
    /// This loop's index among linked loops, in the top bits of every
    /// generation it hands out (so a `ConnId` says which loop owns it).
    pub(super) index: u32,
    /// Clients writing a final HTTP answer (refused, over capacity, plain
    /// HTTP): not counted as clients.
    pub(super) answering: usize,
    /// Compression memory charged to the open connections.
    pub(super) deflate_memory: usize,
    /// Upgrades answered without compression for the memory ceiling.
    pub(super) deflate_declined: u64,
    /// The client whose `on_close` is running: its data and socket stay
    /// reachable (the address can be asked) until it returns.
    pub(super) departing: Option<(ConnId, TcpStream, D)>,
    /// TLS clients' rustls state, by slab key (empty without TLS, so a
    /// plain client pays nothing for it).
    #[cfg(feature = "tls")]
    pub(super) tls: Vec<Option<Box<super::tls::Tls>>>,
    /// What new connections get, when the server speaks TLS.
    #[cfg(feature = "tls")]
    pub(super) tls_config: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// Topics and who is subscribed (`Ctx::subscribe`, `Ctx::publish`).
    pub(super) topics: Topics,
    /// What other threads asked for ([`LoopHandle`](super::LoopHandle)).
    pub(super) commands: Commands,
    /// Publishes for other loops whose queue was full, by loop index:
    /// retried every turn, at most [`HUB_BACKLOG`] held.
    pub(super) hub_backlog: VecDeque<(usize, Command)>,
    /// Publishes for other loops dropped with the backlog full.
    pub(super) hub_dropped: u64,
    /// Frames published to one topic in a row this turn, not yet queued.
    batch: Option<Batch>,
    /// The batch's buffer, kept between turns.
    batch_buf: Vec<u8>,
    /// Memory that sends to many clients took since the last flush: per
    /// recipient, the bytes copied into its queue or its queue entry (see
    /// [`per_recipient`]). Past [`TURN_QUEUE_BUDGET`] the loop flushes
    /// before the turn ends (`Server::flush_if_over_budget`).
    pub(super) queued_turn: usize,
    /// This turn's publishes to one topic, for the other linked loops:
    /// sent as one command per loop when the topic changes, a send goes to
    /// another loop, or the turn ends (so the other loop, too, writes each
    /// receiver once for the lot).
    outbox: Option<(Box<str>, Vec<EncodedMessage>)>,
    /// This process's mark on what it publishes through a backplane, so
    /// that it can leave out its own publishes coming back (linked loops
    /// share loop 0's).
    pub(super) backplane_id: u64,
    /// What operators read ([`Stats`](super::Stats)).
    pub(super) counters: Counters,
    /// The Redis backplane, when there is one.
    #[cfg(feature = "redis")]
    pub(super) redis: Option<Box<super::redis::Redis>>,
}

/// Memory a turn's sends to many clients may hold (see `queued_turn`)
/// before the loop flushes in the middle of the turn. Without it, a turn
/// that accepts hundreds of clients whose joins are announced to thousands
/// of others holds every one of those notices at once (29 MiB at the peak
/// of a 10,000-client join; 2 MiB of budget: BENCHMARKS.md). Shared
/// frames cost a queue entry per recipient, so coalescing large
/// broadcasts is not cut short by it.
pub(super) const TURN_QUEUE_BUDGET: usize = 2 * 1024 * 1024;

/// Queues with `push` (a session's checked send of a shared form) for
/// every id in `ids` still here, puts each that took it on the dirty list,
/// and collects those its send limit closed in `limited` (the caller says
/// so once it may borrow the core again); returns how many took it.
fn fan_out<D>(
    clients: &mut Slab<Client<D>>,
    dirty: &mut Vec<usize>,
    ids: impl IntoIterator<Item = ConnId>,
    limited: &mut Vec<ConnId>,
    mut push: impl FnMut(&mut Session) -> Sent,
) -> usize {
    write_out(clients, dirty, ids, limited, |c| push(&mut c.session))
}

/// [`fan_out`] with the whole client (its socket too) in hand.
fn write_out<D>(
    clients: &mut Slab<Client<D>>,
    dirty: &mut Vec<usize>,
    ids: impl IntoIterator<Item = ConnId>,
    limited: &mut Vec<ConnId>,
    mut push: impl FnMut(&mut Client<D>) -> Sent,
) -> usize {
    let mut taken = 0;
    for id in ids {
        let Some(c) = clients.get_mut(id.key()).filter(|c| id.is(c.gen)) else {
            continue;
        };
        match push(c) {
            Sent::Status(SendStatus::Refused) => {}
            Sent::Status(_) => {
                if !c.is(DIRTY) && c.session.has_pending() {
                    c.set(DIRTY, true);
                    dirty.push(id.key());
                }
                taken += 1;
            }
            Sent::LimitClosed => limited.push(id),
        }
    }
    taken
}

/// What queuing a frame of `len` bytes costs one recipient: its copy when
/// it is copied into the queue, else a queue entry.
fn per_recipient(len: usize) -> usize {
    if len <= crate::buf::send_queue::COPY_SHARED_UP_TO {
        len
    } else {
        std::mem::size_of::<usize>() * 4
    }
}

/// Consecutive publishes to one topic whose members all take the plain
/// frame: their frames, one after the other, go to each member as one
/// shared chunk when anything else is about to happen (another topic, a
/// direct send, a close, a change of members, the end of the turn). A
/// member then costs one queue entry per turn, not one per message, and
/// every member's bytes leave in one write, as uWebSockets does it.
struct Batch {
    topic: usize,
    frames: Vec<u8>,
    /// Messages in `frames`, and their payload bytes (for the counters).
    count: u64,
    payload: u64,
}

/// Messages larger than this are not batched: they are shared as they are
/// (a copy into the batch would cost more than the queue entries saved).
const BATCH_MESSAGE_LIMIT: usize = 16 * 1024;

/// Publishes held for loops whose queue is full, past which they are
/// dropped (and counted): a loop that stopped polling cannot make the
/// others grow without bound.
const HUB_BACKLOG: usize = 64 * 1024;

impl<D> Client<D> {
    #[inline]
    pub(super) fn is(&self, mark: u8) -> bool {
        self.session.marks & mark != 0
    }

    #[inline]
    pub(super) fn set(&mut self, mark: u8, on: bool) {
        if on {
            self.session.marks |= mark;
        } else {
            self.session.marks &= !mark;
        }
    }
}

impl<D> Core<D> {
    pub(super) fn new(
        config: Config,
        registry: Registry,
        tokens: Tokens,
        now: Instant,
        commands: Commands,
    ) -> Self {
        let capacity = config.max_clients.min(tokens.clients());
        Core {
            // Reserved up front: untouched capacity costs address space,
            // not memory, and the slab never doubles (and copies) under load.
            clients: Slab::with_capacity(capacity),
            registry,
            tokens,
            sources: Slab::new(),
            source_gen: 0,
            backlog: Vec::new(),
            timers: Timers::default(),
            user_timers: Slab::new(),
            timer_gen: 0,
            now,
            now_stamp: time::stamp(now),
            origin: time::origin(),
            config,
            dirty: Vec::new(),
            next_gen: 0,
            index: 0,
            answering: 0,
            deflate_memory: 0,
            deflate_declined: 0,
            departing: None,
            #[cfg(feature = "tls")]
            tls: Vec::new(),
            #[cfg(feature = "tls")]
            tls_config: None,
            topics: Topics::default(),
            commands,
            hub_backlog: VecDeque::new(),
            hub_dropped: 0,
            batch: None,
            batch_buf: Vec::new(),
            queued_turn: 0,
            outbox: None,
            backplane_id: rand::random(),
            counters: Counters::default(),
            #[cfg(feature = "redis")]
            redis: None,
        }
    }

    fn client(&self, id: ConnId) -> Option<&Client<D>> {
        self.clients.get(id.key()).filter(|c| id.is(c.gen))
    }

    /// The client `id` names, if it is still the one in its slot.
    pub(super) fn client_mut(&mut self, id: ConnId) -> Option<&mut Client<D>> {
        self.clients.get_mut(id.key()).filter(|c| id.is(c.gen))
    }

    /// Stores a new client and returns its slot.
    pub(super) fn insert(&mut self, stream: TcpStream, session: Session, data: D) -> usize {
        self.next_gen = self.next_gen.wrapping_add(1) & GEN_MASK;
        let key = self.clients.insert(Client {
            stream,
            gen: self.next_gen | self.index << LOOP_SHIFT,
            session,
            data,
            armed: NEVER,
        });
        self.clients[key].set(READING, true);
        self.touch(key);
        key
    }

    /// Brings the loop's bookkeeping in line with the client's session
    /// after anything that may have changed it: queued bytes put it on the
    /// dirty list, an earlier deadline arms the timer heap, a final answer
    /// takes it out of the client count. The one place these are kept.
    #[inline]
    /// Returns whether the session is over (the caller removes it).
    pub(super) fn touch(&mut self, key: usize) -> bool {
        let Some(c) = self.clients.get_mut(key) else {
            return false;
        };
        if c.session.is_done() {
            return true;
        }
        let answering = c.session.is_answering();
        if answering != c.is(ANSWERING) {
            c.set(ANSWERING, answering);
            if answering {
                self.answering += 1;
            } else {
                self.answering -= 1;
            }
        }
        if !c.is(DIRTY) && c.session.wants_transmit() {
            c.set(DIRTY, true);
            self.dirty.push(key);
        }
        let due = c.session.deadline(&self.config);
        if due < c.armed {
            c.armed = due;
            self.timers.push(due, Due::Client(ConnId::new(key, c.gen)));
        }
        false
    }

    /// `now` as a [`Stamp`].
    pub(super) fn stamp(&self) -> Stamp {
        self.now_stamp
    }

    /// `now` as sessions take it (converted once per event, not per call).
    pub(super) fn time(&self) -> Time {
        Time(self.now_stamp)
    }

    /// Moves the loop's time (once per event or tick, not per message).
    pub(super) fn set_now(&mut self, now: Instant) {
        self.now = now;
        self.now_stamp = time::stamp_since(self.origin, now);
    }

    #[inline]
    pub(crate) fn send(&mut self, id: ConnId, msg: Message<'_>) -> SendStatus {
        if self.batch.is_some() {
            self.flush_batch();
        }
        let Core {
            clients,
            config,
            now_stamp,
            dirty,
            #[cfg(feature = "tls")]
            tls,
            ..
        } = self;
        let Some(c) = clients.get_mut(id.key()).filter(|c| id.is(c.gen)) else {
            return SendStatus::Refused;
        };
        let now = Time(*now_stamp);
        // A large message may be written at once (write-through): through
        // rustls for a TLS client.
        #[cfg(feature = "tls")]
        let sent = match tls.get_mut(id.key()) {
            Some(Some(t)) if c.is(TLS) => {
                let mut out = super::tls::TlsSocket {
                    conn: &mut t.conn,
                    stream: &c.stream,
                    gather: false,
                };
                c.session.send_checked(now, config, msg, &mut out)
            }
            _ => c
                .session
                .send_checked(now, config, msg, &mut Socket(&c.stream)),
        };
        #[cfg(not(feature = "tls"))]
        let sent = c
            .session
            .send_checked(now, config, msg, &mut Socket(&c.stream));
        match sent {
            Sent::Status(status) => {
                if !c.is(DIRTY) && c.session.has_pending() {
                    c.set(DIRTY, true);
                    dirty.push(id.key());
                }
                if status != SendStatus::Refused {
                    self.counters.messages_sent += 1;
                    self.counters.message_bytes_sent += msg.as_bytes().len() as u64;
                }
                status
            }
            Sent::LimitClosed => self.limit_closed(id),
        }
    }

    pub(crate) fn broadcast(
        &mut self,
        ids: impl IntoIterator<Item = ConnId>,
        msg: Message<'_>,
    ) -> usize {
        self.deliver(ids, &mut Broadcast::new(msg))
    }

    /// Queues `b` for every id in `ids` that is still open; returns how
    /// many took it.
    pub(super) fn deliver(
        &mut self,
        ids: impl IntoIterator<Item = ConnId>,
        b: &mut Broadcast<'_>,
    ) -> usize {
        self.flush_batch();
        let Core {
            clients,
            config,
            dirty,
            now_stamp,
            ..
        } = self;
        let now = Time(*now_stamp);
        let mut limited = Vec::new();
        let taken = fan_out(clients, dirty, ids, &mut limited, |session| {
            session.send_broadcast_checked(now, config, b)
        });
        for id in limited {
            self.limit_closed(id);
        }
        let len = b.message().as_bytes().len();
        self.queued_turn += taken * per_recipient(len);
        self.count_sent(taken as u64, len as u64);
        taken
    }

    /// `n` recipients took a message of `len` payload bytes.
    #[inline]
    fn count_sent(&mut self, n: u64, len: u64) {
        self.counters.messages_sent += n;
        self.counters.message_bytes_sent += n * len;
    }

    pub(crate) fn subscribe(&mut self, id: ConnId, topic: &str) -> bool {
        // What was published before it joined is not for it.
        self.flush_batch();
        // Any client still here (in `on_open` it is not open yet); it
        // leaves every topic when it goes, accepted or not.
        let Some(c) = self.client(id) else {
            return false;
        };
        let compressing = c.session.extensions().is_some();
        let joined = self.topics.subscribe(id, topic, compressing);
        #[cfg(feature = "redis")]
        if joined && self.topics.count(topic) == 1 {
            self.topic_changed(topic);
        }
        joined
    }

    pub(crate) fn unsubscribe(&mut self, id: ConnId, topic: &str) -> bool {
        self.flush_batch();
        let left = self.client(id).is_some() && self.topics.unsubscribe(id, topic);
        #[cfg(feature = "redis")]
        if left && self.topics.count(topic) == 0 {
            self.topic_changed(topic);
        }
        left
    }

    /// Takes the client in slot `key` out of its topics (it is leaving).
    pub(super) fn leave_topics(&mut self, key: usize) {
        self.flush_batch();
        #[cfg(feature = "redis")]
        if let Some(r) = &mut self.redis {
            let changed = &mut r.changed;
            self.topics.leave_all(key, |t| changed.push(t.into()));
            return;
        }
        self.topics.leave_all(key, |_| {});
    }

    /// Whether publishes wait in an open batch.
    #[inline]
    pub(super) fn has_batch(&self) -> bool {
        self.batch.is_some()
    }

    /// Queues the open batch for its topic's members.
    pub(super) fn flush_batch(&mut self) {
        self.send_batch(false);
    }

    /// Sends the open batch when the loop flushes (at the end of a turn, or
    /// in its middle past the turn budget): written at once to each plain
    /// member with nothing queued, as the flush would write it next anyway;
    /// queued for the others.
    pub(super) fn flush_batch_at_turn_end(&mut self) {
        self.send_batch(true);
    }

    fn send_batch(&mut self, through: bool) {
        let Some(batch) = self.batch.take() else {
            return;
        };
        let frames: Arc<[u8]> = Arc::from(&batch.frames[..]);
        self.batch_buf = batch.frames;
        let Core {
            topics,
            clients,
            config,
            dirty,
            now_stamp,
            ..
        } = self;
        let now = Time(*now_stamp);
        let mut limited = Vec::new();
        let taken = if through {
            write_out(
                clients,
                dirty,
                topics.members_of(batch.topic),
                &mut limited,
                |c| {
                    // Through rustls, not the socket: queued as ever.
                    #[cfg(feature = "tls")]
                    if c.is(TLS) {
                        return c.session.send_frames_checked(now, config, &frames);
                    }
                    c.session
                        .send_frames_through(now, config, &frames, &mut Socket(&c.stream))
                },
            )
        } else {
            fan_out(
                clients,
                dirty,
                topics.members_of(batch.topic),
                &mut limited,
                |session| session.send_frames_checked(now, config, &frames),
            )
        };
        self.queued_turn += taken * per_recipient(frames.len());
        self.counters.messages_sent += taken as u64 * batch.count;
        self.counters.message_bytes_sent += taken as u64 * batch.payload;
        for id in limited {
            self.limit_closed(id);
        }
    }

    /// Queues `b` for every subscriber of `topic` (the frame encoded once,
    /// its bytes shared, or batched with the topic's other messages of this
    /// turn); returns how many subscribers the topic has here.
    pub(crate) fn publish(&mut self, topic: &str, b: &mut Broadcast<'_>) -> usize {
        let Some(t) = self.topics.find(topic) else {
            return 0;
        };
        if self.topics.all_plain(t) && b.message().as_bytes().len() <= BATCH_MESSAGE_LIMIT {
            if self.batch.as_ref().is_some_and(|open| open.topic != t) {
                self.flush_batch();
            }
            let buf = &mut self.batch_buf;
            let batch = self.batch.get_or_insert_with(|| {
                let mut frames = std::mem::take(buf);
                frames.clear();
                Batch {
                    topic: t,
                    frames,
                    count: 0,
                    payload: 0,
                }
            });
            batch.frames.extend_from_slice(b.plain());
            batch.count += 1;
            batch.payload += b.message().as_bytes().len() as u64;
            return self.topics.len_of(t);
        }
        self.flush_batch();
        let Core {
            topics,
            clients,
            config,
            dirty,
            now_stamp,
            ..
        } = self;
        let now = Time(*now_stamp);
        let mut limited = Vec::new();
        let taken = fan_out(
            clients,
            dirty,
            topics.members_of(t),
            &mut limited,
            |session| session.send_broadcast_checked(now, config, b),
        );
        let n = self.topics.len_of(t);
        let len = b.message().as_bytes().len();
        self.queued_turn += n * per_recipient(len);
        self.count_sent(taken as u64, len as u64);
        for id in limited {
            self.limit_closed(id);
        }
        n
    }

    /// The send limit just closed `id`: say so, schedule its close frame
    /// and arm its close timeout.
    #[cold]
    fn limit_closed(&mut self, id: ConnId) -> SendStatus {
        self.counters.backpressure_closes += 1;
        warn!(
            "{}: send queue would pass {} bytes, closing with 1008",
            Peer(&self.clients[id.key()].stream),
            self.config.max_send_queue
        );
        let _ = self.touch(id.key()); // closing never ends a session at once
        SendStatus::Refused
    }

    pub(crate) fn close(&mut self, id: ConnId, code: u16, reason: &str) -> bool {
        self.flush_batch();
        let Core {
            clients, now_stamp, ..
        } = self;
        let Some(c) = clients.get_mut(id.key()).filter(|c| id.is(c.gen)) else {
            return false;
        };
        let closed = c.session.close(Time(*now_stamp), code, reason);
        let _ = self.touch(id.key()); // a close never ends a session at once
        closed
    }

    /// A send to another loop's client, through the hub.
    #[cold]
    pub(crate) fn send_elsewhere(&mut self, id: ConnId, msg: Message<'_>) -> SendStatus {
        // After this turn's publishes: that loop gets them in order.
        self.flush_outbox();
        let inbox = self
            .commands
            .hub()
            .and_then(|hub| hub.inboxes.get(id.loop_index()));
        match inbox.map(|i| i.push(Command::Send(id, EncodedMessage::new(msg)))) {
            Some(Ok(())) => SendStatus::Queued,
            _ => SendStatus::Refused,
        }
    }

    /// Sends a publish made on this loop to every other linked loop: the
    /// frame's bytes as they are, for each loop to queue.
    pub(crate) fn forward_publish(&mut self, topic: &str, b: &mut Broadcast<'_>) {
        if self.commands.hub().is_none() {
            return;
        }
        if self.outbox.as_ref().is_some_and(|(t, _)| &**t != topic) {
            self.flush_outbox();
        }
        let msg = b.to_encoded();
        self.outbox
            .get_or_insert_with(|| (topic.into(), Vec::new()))
            .1
            .push(msg);
    }

    /// Sends the outbox's publishes to every other linked loop: the frames'
    /// bytes as they are, for each loop to queue.
    pub(super) fn flush_outbox(&mut self) {
        let Some((topic, msgs)) = self.outbox.take() else {
            return;
        };
        let Some(hub) = self.commands.hub().cloned() else {
            return;
        };
        for (i, inbox) in hub.inboxes.iter().enumerate() {
            if i == self.index as usize {
                continue;
            }
            let command = Command::PublishMany(topic.clone(), msgs.clone());
            if !self.hub_backlog.is_empty() {
                self.hold(i, command); // behind what waits already: in order
                continue;
            }
            match inbox.try_push(command) {
                Ok(()) => {}
                Err(Some(command)) => self.hold(i, command),
                Err(None) => {} // that loop has shut down
            }
        }
    }

    fn hold(&mut self, to: usize, command: Command) {
        if self.hub_backlog.len() < HUB_BACKLOG {
            self.hub_backlog.push_back((to, command));
        } else {
            if self.hub_dropped.is_power_of_two() || self.hub_dropped == 0 {
                warn!(
                    "loop {to} is not taking publishes: dropped {} so far",
                    self.hub_dropped + 1
                );
            }
            self.hub_dropped += 1;
        }
    }

    /// Retries the publishes held for full loops, in order, until one
    /// is still full.
    pub(super) fn retry_held(&mut self) {
        let Some(hub) = self.commands.hub().cloned() else {
            return;
        };
        while let Some((to, command)) = self.hub_backlog.pop_front() {
            match hub.inboxes[to].try_push(command) {
                Ok(()) => {}
                Err(Some(command)) => {
                    self.hub_backlog.push_front((to, command));
                    return;
                }
                Err(None) => {} // gone
            }
        }
    }

    /// Whether a client was ever stored (linking comes before any).
    pub(super) fn has_had_clients(&self) -> bool {
        self.next_gen != 0
    }

    /// Whether `id` names a client that is still here.
    pub(crate) fn is_client(&self, id: ConnId) -> bool {
        self.client(id).is_some()
    }

    pub(crate) fn buffered_amount(&self, id: ConnId) -> Option<usize> {
        self.client(id)?.session.buffered_amount()
    }

    pub(crate) fn is_open(&self, id: ConnId) -> bool {
        self.client(id).is_some_and(|c| c.session.is_open())
    }

    pub(crate) fn open_ids(&self) -> Vec<ConnId> {
        self.clients
            .iter()
            .filter(|(_, c)| c.session.is_open())
            .map(|(key, c)| ConnId::new(key, c.gen))
            .collect()
    }

    pub(crate) fn client_count(&self) -> usize {
        self.clients.len() - self.answering
    }

    pub(crate) fn data(&mut self, id: ConnId) -> Option<&mut D> {
        match self.clients.get_mut(id.key()) {
            Some(c) if id.is(c.gen) => Some(&mut c.data),
            _ => match &mut self.departing {
                Some((departed, _, data)) if *departed == id => Some(data),
                _ => None,
            },
        }
    }

    pub(crate) fn extensions(&self, id: ConnId) -> Option<&str> {
        self.client(id)?.session.extensions()
    }

    pub(crate) fn peer_addr(&self, id: ConnId) -> Option<SocketAddr> {
        match (self.client(id), &self.departing) {
            (Some(c), _) => c.stream.peer_addr().ok(),
            (None, Some((departed, stream, _))) if *departed == id => stream.peer_addr().ok(),
            _ => None,
        }
    }

    pub(crate) fn set_timer(&mut self, after: Duration, tag: u64) -> TimerId {
        let at = time::after(self.stamp(), after);
        let entry = self.user_timers.vacant_entry();
        let key = entry.key();
        self.timer_gen = self.timer_gen.wrapping_add(1);
        let gen = self.timer_gen;
        entry.insert((gen, tag));
        self.timers.push(at, Due::User(key as u32, gen));
        TimerId {
            key: key as u32,
            gen,
        }
    }

    pub(crate) fn cancel_timer(&mut self, timer: TimerId) -> bool {
        let key = timer.key as usize;
        match self.user_timers.get(key) {
            Some((gen, _)) if *gen == timer.gen => {
                self.user_timers.remove(key);
                true
            }
            _ => false,
        }
    }

    /// Takes the handler timer of a heap entry that came due, if it was not
    /// cancelled: its id and tag.
    pub(super) fn take_timer(&mut self, key: u32, gen: u32) -> Option<(TimerId, u64)> {
        match self.user_timers.get(key as usize) {
            Some((g, _)) if *g == gen => {
                let (_, tag) = self.user_timers.remove(key as usize);
                Some((TimerId { key, gen }, tag))
            }
            _ => None,
        }
    }

    pub(crate) fn register(
        &mut self,
        source: &mut impl Source,
        interest: Interest,
    ) -> io::Result<SourceId> {
        let entry = self.sources.vacant_entry();
        let key = entry.key();
        if key >= self.tokens.sources() {
            return Err(io::Error::other("no token left for an event source"));
        }
        self.registry
            .register(source, self.tokens.source(key), interest)?;
        self.source_gen = self.source_gen.wrapping_add(1);
        entry.insert(self.source_gen);
        Ok(SourceId {
            key: key as u32,
            gen: self.source_gen,
        })
    }

    pub(crate) fn reregister(
        &mut self,
        id: SourceId,
        source: &mut impl Source,
        interest: Interest,
    ) -> io::Result<()> {
        self.source_slot(id)?;
        self.registry
            .reregister(source, self.tokens.source(id.key as usize), interest)
    }

    pub(crate) fn deregister(&mut self, id: SourceId, source: &mut impl Source) -> io::Result<()> {
        let key = self.source_slot(id)?;
        self.sources.remove(key);
        self.registry.deregister(source)
    }

    fn source_slot(&self, id: SourceId) -> io::Result<usize> {
        match self.sources.get(id.key as usize) {
            Some(gen) if *gen == id.gen => Ok(id.key as usize),
            _ => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "no such event source (deregistered)",
            )),
        }
    }

    /// The id of the source in slot `key`, if one is registered there.
    pub(super) fn source_id(&self, key: usize) -> Option<SourceId> {
        self.sources.get(key).map(|gen| SourceId {
            key: key as u32,
            gen: *gen,
        })
    }

    pub(crate) fn pause_reading(&mut self, id: ConnId) -> bool {
        let Some(c) = self.client_mut(id) else {
            return false;
        };
        c.set(PAUSED, true);
        let _ = self.update_interest(id.key());
        true
    }

    /// Puts `key` on the dirty list (flushed when the iteration ends).
    #[cfg(feature = "tls")]
    pub(super) fn mark_dirty(&mut self, key: usize) {
        if let Some(c) = self.clients.get_mut(key) {
            if !c.is(DIRTY) {
                c.set(DIRTY, true);
                self.dirty.push(key);
            }
        }
    }

    pub(crate) fn notify_drained(&mut self, id: ConnId) -> bool {
        let Core { clients, dirty, .. } = self;
        let Some(c) = clients.get_mut(id.key()).filter(|c| id.is(c.gen)) else {
            return false;
        };
        c.set(DRAIN_WANTED, true);
        // Flushed when the iteration ends, even with nothing queued: the
        // flush is what calls on_drain.
        if !c.is(DIRTY) {
            c.set(DIRTY, true);
            dirty.push(id.key());
        }
        true
    }

    pub(crate) fn resume_reading(&mut self, id: ConnId) -> bool {
        let Some(c) = self.client_mut(id) else {
            return false;
        };
        if !c.is(PAUSED) {
            return true;
        }
        c.set(PAUSED, false);
        let _ = self.update_interest(id.key());
        // Edge-triggered: what arrived while paused raises no new edge.
        self.backlog.push((id, false));
        true
    }

    /// Registers the client for what it needs now: `READABLE` unless paused,
    /// `WRITABLE` while bytes wait for the socket; neither: deregistered.
    pub(super) fn update_interest(&mut self, key: usize) -> io::Result<()> {
        let Some(c) = self.clients.get_mut(key) else {
            return Ok(());
        };
        let want = (!c.is(PAUSED), c.is(WANT_WRITE));
        let have = (c.is(READING), c.is(WRITABLE));
        if want == have {
            return Ok(());
        }
        let token = self.tokens.client(key);
        let interest = match want {
            (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        };
        let registered = have.0 || have.1;
        let result = match (registered, interest) {
            (true, Some(i)) => self.registry.reregister(&mut c.stream, token, i),
            (false, Some(i)) => self.registry.register(&mut c.stream, token, i),
            (true, None) => self.registry.deregister(&mut c.stream),
            (false, None) => Ok(()),
        };
        c.set(READING, want.0);
        c.set(WRITABLE, want.1);
        result
    }

    /// Drops stale heap entries when they outnumber live ones.
    pub(super) fn purge_timers(&mut self) {
        let Core {
            clients,
            user_timers,
            timers,
            ..
        } = self;
        let live = user_timers.len() + clients.len() + 2;
        timers.purge_if_bloated(live, |at, due| match due {
            Due::Client(id) => clients
                .get(id.key())
                .is_some_and(|c| id.is(c.gen) && c.armed == at),
            Due::User(k, g) => user_timers.get(k as usize).is_some_and(|(tg, _)| *tg == g),
            Due::Accept => true,
            #[cfg(feature = "redis")]
            Due::Redis(_) => true,
        });
    }
}

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    /// An idle client is this struct, plus its slab entry's tag: the
    /// benchmarks' "idle memory" row (about 250 bytes) is mostly it. A
    /// field added here should come with a reason.
    #[test]
    fn an_idle_client_stays_at_192_bytes() {
        assert_eq!(std::mem::size_of::<super::Client<()>>(), 192);
    }
}
