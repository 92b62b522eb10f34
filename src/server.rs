//! The mio readiness loop: listener, slab of clients, token routing, reads,
//! writes, interest changes, timers and limits. The only layer that does I/O.
//!
//! ```text
//!              ┌──────────── one mio::Poll ────────────┐
//! listener ──► accept ──► slab[key] = Client { phase, data, deadline }
//!                                   │
//! readable ──► read into the loop's one scratch buffer (until drained)
//!                │ Handshake { buf }:  head complete? ─► on_open ─► 101 ─► Open
//!                │                     (only an incomplete head is kept in buf)
//!                │ Open(Connection):   frames ─► events ─► Handler::on_message
//!                │ Reject(queue):      input drained and dropped
//!                ▼
//! handler sends ─► per-client queues ─► dirty list ─► one vectored write per
//!                                      client per iteration; WRITABLE only while
//!                                      bytes remain
//! timers ──► one heap: handshake, idle ping, close and handler timers, accept pause
//! ```
//!
//! A client is removed in exactly one place, [`Server`]'s `remove`, which
//! frees its slot, calls `on_close` once if it was accepted, and closes its
//! socket (which also takes it out of the epoll set).

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use slab::Slab;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::frame::{close_code, Role, MAX_HEADER_LEN};
use crate::handler::{ConnId, Ctx, Decision, Handler, SendStatus, TimerId};
use crate::handshake::{self, HandshakeError, Parsed};
use crate::protocol::{Connection, Event, Message};
use crate::send_queue::SendQueue;
use crate::timers::{Due, Stamp, Timers};
use crate::utf8::truncate;

/// The loop's one read buffer, shared by every client. Large enough that a
/// 64 KiB message usually arrives whole and is lent out without a copy.
const SCRATCH_SIZE: usize = 256 * 1024;
/// Messages from this size on are written straight from the handler's
/// buffer instead of being copied into the send queue first.
const WRITE_THROUGH: usize = 16 * 1024;
/// Reads per client per readiness event before others get a turn; the
/// client is revisited in the next iteration.
const READS_PER_TURN: usize = 16;
/// How long accepting pauses after an accept error such as `EMFILE`.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// Over-capacity and refused connections being answered at once; past
/// this, new ones are dropped without an answer.
const MAX_REJECTING: usize = 1024;
/// Slices per vectored write.
const MAX_IOVECS: usize = 16;

const LISTENER: usize = 0;
const WAKER: usize = 1;
const FIRST_CLIENT: usize = 2;

/// Where a client is in its life.
// Nearly every client is `Open`: boxing the connection would add an
// allocation and an indirection per client without saving memory.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Phase {
    /// Waiting for the upgrade request; `buf` holds an incomplete head only.
    Handshake { buf: Vec<u8> },
    /// Upgraded (or being decided by `on_open`); closing once a close frame
    /// was sent.
    Open(Connection),
    /// Writing a final HTTP response (an error or a plain page), then closing.
    Reject(SendQueue),
}

pub(crate) struct Client<D> {
    stream: TcpStream,
    pub(crate) gen: u32,
    pub(crate) phase: Phase,
    pub(crate) data: D,
    /// Start of the current wait (accept, last traffic while open, or the
    /// start of closing), as a [`Stamp`].
    since: Stamp,
    /// Deadline of this client's entry in the timer heap ([`NOT_ARMED`]: none).
    armed: Stamp,
    ping_sent: bool,
    writable: bool,
    blocked: bool,
    dirty: bool,
    /// `on_open` accepted it, so `on_close` is owed.
    opened: bool,
    /// The peer's close code and reason (boxed: most clients never get here).
    peer_close: Option<Box<(u16, Box<str>)>>,
    /// The peer shut its sending side while bytes were still queued for it:
    /// they are written (within the close timeout), then it is removed.
    peer_eof: bool,
}

/// A client's address in log lines. The kernel is asked only when a line is
/// written, so a client does not carry its 32-byte address around.
pub(crate) struct Peer<'a>(&'a TcpStream);

impl std::fmt::Display for Peer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.peer_addr() {
            Ok(addr) => write!(f, "{addr}"),
            Err(_) => f.write_str("(disconnected peer)"),
        }
    }
}

/// Writes one frame straight to the socket, the caller's payload without a
/// copy; what the socket does not take is queued. A write error is left for
/// the next flush to find, so it is handled in one place.
fn write_through(stream: &mut TcpStream, conn: &mut Connection, head: &[u8], payload: &[u8]) {
    let written = loop {
        match stream.write_vectored(&[IoSlice::new(head), IoSlice::new(payload)]) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break 0,
        }
    };
    let queue = conn.outgoing();
    if written < head.len() {
        queue.push(&head[written..]);
        queue.push(payload);
    } else {
        queue.push(&payload[written - head.len()..]);
    }
}

/// Writes the last bytes a connection will ever send, with `MSG_MORE` on
/// Linux: the segment waits for the FIN of the `close` or `shutdown` that
/// follows, and both leave in one packet instead of two (on loopback, the
/// sender pays for the receiver's processing of each). Data that does not all fit is
/// pushed as usual: `MSG_MORE` only holds back this call's last segment.
#[cfg(target_os = "linux")]
fn write_last(stream: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    socket2::SockRef::from(stream).send_with_flags(bytes, libc::MSG_MORE | libc::MSG_NOSIGNAL)
}

#[cfg(not(target_os = "linux"))]
fn write_last(mut stream: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    stream.write(bytes)
}

/// `Client::armed` when the client has no heap entry.
const NOT_ARMED: Stamp = Stamp::MAX;

impl<D> Client<D> {
    /// The peer's address; `None` once the connection was reset.
    pub(crate) fn peer_addr(&self) -> Option<SocketAddr> {
        self.stream.peer_addr().ok()
    }

    fn deadline(&self, config: &Config) -> Option<Stamp> {
        let after = |wait: Duration| Some(self.since.saturating_add(nanos(wait)));
        if self.peer_eof {
            return after(config.close_timeout);
        }
        match &self.phase {
            Phase::Handshake { .. } => after(config.handshake_timeout),
            Phase::Reject(_) => after(config.close_timeout),
            Phase::Open(conn) if conn.close_sent() => after(config.close_timeout),
            Phase::Open(_) => config
                .idle_timeout
                .and_then(|idle| after(if self.ping_sent { idle * 2 } else { idle })),
        }
    }
}

/// The server's state that handler callbacks may touch through [`Ctx`].
pub(crate) struct Core<D> {
    pub(crate) clients: Slab<Client<D>>,
    pub(crate) timers: Timers,
    pub(crate) user_timers: Slab<(u32, u64)>,
    pub(crate) timer_gen: u32,
    pub(crate) now: Instant,
    /// `now` as a [`Stamp`], kept with it.
    now_stamp: Stamp,
    /// What [`Stamp`]s count from.
    epoch: Instant,
    config: Config,
    dirty: Vec<usize>,
    next_gen: u32,
    rejecting: usize,
    /// The data of the client whose `on_close` is running.
    /// (Its socket is kept open until then, so the address can be asked.)
    pub(crate) departing: Option<(ConnId, TcpStream, D)>,
}

impl<D> Core<D> {
    pub(crate) fn client(&self, id: ConnId) -> Option<&Client<D>> {
        self.clients
            .get(id.key as usize)
            .filter(|c| c.gen == id.gen)
    }

    pub(crate) fn client_mut(&mut self, id: ConnId) -> Option<&mut Client<D>> {
        self.clients
            .get_mut(id.key as usize)
            .filter(|c| c.gen == id.gen)
    }

    fn id(&self, key: usize) -> ConnId {
        ConnId {
            key: key as u32,
            gen: self.clients[key].gen,
        }
    }

    pub(crate) fn open_ids(&self) -> Vec<ConnId> {
        self.clients
            .iter()
            .filter(|(_, c)| c.opened && matches!(&c.phase, Phase::Open(conn) if conn.is_open()))
            .map(|(key, c)| ConnId {
                key: key as u32,
                gen: c.gen,
            })
            .collect()
    }

    pub(crate) fn client_count(&self) -> usize {
        self.clients.len() - self.rejecting
    }

    fn mark_dirty(&mut self, key: usize) {
        if let Some(c) = self.clients.get_mut(key) {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    /// Makes sure the heap holds an entry no later than the client's deadline.
    fn arm(&mut self, key: usize) {
        let Some(c) = self.clients.get_mut(key) else {
            return;
        };
        let Some(due) = c.deadline(&self.config) else {
            return;
        };
        if c.armed == NOT_ARMED || due < c.armed {
            c.armed = due;
            self.timers.push(due, Due::Client(key as u32, c.gen));
        }
    }

    /// `now` as a [`Stamp`].
    pub(crate) fn stamp(&self) -> Stamp {
        self.now_stamp
    }

    /// Moves the loop's time (once per event or tick, not per message).
    fn set_now(&mut self, now: Instant) {
        self.now = now;
        self.now_stamp = nanos(now.saturating_duration_since(self.epoch));
    }

    /// Queues up to `size` bytes for `id` with `push`, unless that would take
    /// its non-empty queue past `max_send_queue`: then the message is refused
    /// and the client, which is not reading, is closed with 1008. Its queue
    /// thus never holds more than the limit or one message (plus the close
    /// frame), and every frame in it stays whole.
    pub(crate) fn queue(
        &mut self,
        id: ConnId,
        size: usize,
        push: impl FnOnce(&mut Connection, &mut TcpStream, bool) -> bool,
    ) -> SendStatus {
        let key = id.key as usize;
        let limit = self.config.max_send_queue;
        let Some(client) = self.client_mut(id) else {
            return SendStatus::Refused;
        };
        let Phase::Open(conn) = &mut client.phase else {
            return SendStatus::Refused;
        };
        if !conn.is_open() {
            return SendStatus::Refused;
        }
        let queued = conn.buffered_amount();
        // An empty queue takes any one message, so a maximal message always
        // fits; memory stays bounded by the larger of the limit and it.
        if queued > 0 && queued + size > limit {
            warn!(
                "{}: send queue would pass {limit} bytes, closing with 1008",
                Peer(&client.stream)
            );
            let _ = conn.close(close_code::POLICY_VIOLATION, "send queue limit exceeded");
            self.start_closing(key);
            return SendStatus::Refused;
        }
        if !push(conn, &mut client.stream, client.blocked) {
            return SendStatus::Refused;
        }
        if conn.buffered_amount() == 0 {
            return SendStatus::Sent; // written through, all of it
        }
        let blocked = client.blocked;
        self.mark_dirty(key);
        if blocked {
            SendStatus::Queued
        } else {
            SendStatus::Sent
        }
    }

    /// Queues `msg` for `id`; a large message to a client with nothing
    /// queued is written at once, header and payload in one `writev`, and
    /// only what the socket does not take is copied into the queue.
    pub(crate) fn send(&mut self, id: ConnId, msg: Message<'_>) -> SendStatus {
        let size = msg.as_bytes().len();
        // A frame header is at most 14 bytes.
        self.queue(id, size + MAX_HEADER_LEN, |conn, stream, blocked| {
            if size >= WRITE_THROUGH && !blocked && conn.buffered_amount() == 0 {
                if let Some((head, n)) = conn.header_for(&msg) {
                    write_through(stream, conn, &head[..n], msg.as_bytes());
                    return true;
                }
            }
            conn.send(msg).is_ok()
        })
    }

    pub(crate) fn close(&mut self, id: ConnId, code: u16, reason: &str) -> bool {
        let Some(client) = self.client_mut(id) else {
            return false;
        };
        let Phase::Open(conn) = &mut client.phase else {
            return false;
        };
        let reason = truncate(reason, crate::frame::MAX_CONTROL_PAYLOAD - 2);
        if conn.close(code, reason).is_err() {
            return false;
        }
        self.start_closing(id.key as usize);
        true
    }

    /// The server's close frame was just queued: the close timeout starts.
    fn start_closing(&mut self, key: usize) {
        let now = self.stamp();
        if let Some(c) = self.clients.get_mut(key) {
            c.since = now;
        }
        self.mark_dirty(key);
        self.arm(key);
    }
}

/// Requests a running server to shut down, from any thread (or a signal
/// handler: it only stores a flag and writes to an eventfd).
#[derive(Clone)]
pub struct ShutdownHandle {
    flag: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl ShutdownHandle {
    /// Asks the loop to stop accepting, close every client with 1001 and
    /// return from [`Server::run`] once they are gone or the close timeout
    /// has passed.
    pub fn shutdown(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }
}

impl std::fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("requested", &self.flag.load(Ordering::SeqCst))
            .finish()
    }
}

/// A WebSocket server on one mio loop.
///
/// Standalone:
///
/// ```no_run
/// use wsloop::{Config, ConnId, Ctx, Handler, Message, Server};
/// struct Echo;
/// impl Handler for Echo {
///     type Data = ();
///     fn on_message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, msg: Message<'_>) {
///         ctx.send(id, msg);
///     }
/// }
/// let mut server = Server::bind("127.0.0.1:9001".parse().unwrap(), Config::default(), Echo)?;
/// server.run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// Embedded in a host's loop, see [`Server::embed`] and `examples/embed.rs`.
/// Stepped, see [`Server::poll_once`].
pub struct Server<H: Handler> {
    core: Core<H::Data>,
    handler: H,
    scratch: Vec<u8>,
    registry: Registry,
    poll: Option<Poll>,
    events: Option<Events>,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    tokens: Range<usize>,
    clock: Box<dyn Clock>,
    shutdown: ShutdownHandle,
    shutdown_deadline: Option<Instant>,
    done: bool,
    accept_paused: bool,
    /// Clients with more to read than one turn took: slab key, generation,
    /// and whether the peer's FIN was already reported (no new edge will
    /// come for it, so the next turn must read until EOF or `WouldBlock`).
    backlog: Vec<(usize, u32, bool)>,
}

impl<H: Handler> Server<H> {
    /// Binds `addr` and builds a server with its own `Poll`.
    pub fn bind(addr: SocketAddr, config: Config, handler: H) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        Self::with_listener(listener, config, handler)
    }

    /// Builds a server with its own `Poll` on a bound listener.
    pub fn with_listener(listener: TcpListener, config: Config, handler: H) -> io::Result<Self> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        Self::build(
            Some(poll),
            registry,
            0..usize::MAX,
            listener,
            config,
            handler,
        )
    }

    /// Builds a server inside a host's loop: it registers the listener and
    /// its clients on `registry` with tokens from `tokens`, a range the host
    /// reserves for it (it needs 2 tokens plus one per client slot). The host
    /// forwards the events for which [`Server::owns`] is true to
    /// [`Server::handle_event`], calls [`Server::tick`] after each batch, and
    /// bounds its poll timeout with [`Server::poll_timeout`].
    pub fn embed(
        registry: &Registry,
        tokens: Range<usize>,
        listener: TcpListener,
        config: Config,
        handler: H,
    ) -> io::Result<Self> {
        if tokens.len() <= FIRST_CLIENT {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "token range needs at least 3 tokens",
            ));
        }
        Self::build(
            None,
            registry.try_clone()?,
            tokens,
            listener,
            config,
            handler,
        )
    }

    fn build(
        poll: Option<Poll>,
        registry: Registry,
        tokens: Range<usize>,
        mut listener: TcpListener,
        config: Config,
        handler: H,
    ) -> io::Result<Self> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        registry.register(
            &mut listener,
            Token(tokens.start + LISTENER),
            Interest::READABLE,
        )?;
        // Linux copies the listener's TCP_NODELAY to every accepted socket:
        // set once here, it saves a setsockopt per connection.
        #[cfg(target_os = "linux")]
        socket2::SockRef::from(&listener).set_tcp_nodelay(true)?;
        let waker = Arc::new(Waker::new(&registry, Token(tokens.start + WAKER))?);
        let clock: Box<dyn Clock> = Box::new(SystemClock);
        Ok(Server {
            core: Core {
                // Reserved up front: untouched capacity costs address space,
                // not memory, and the slab never doubles (and copies) under load.
                clients: Slab::with_capacity(config.max_clients.min(tokens.len() - FIRST_CLIENT)),
                timers: Timers::default(),
                user_timers: Slab::new(),
                timer_gen: 0,
                now: clock.now(),
                now_stamp: 0,
                epoch: clock.now(),
                config,
                dirty: Vec::new(),
                next_gen: 0,
                rejecting: 0,
                departing: None,
            },
            handler,
            scratch: vec![0; SCRATCH_SIZE],
            registry,
            poll,
            events: Some(Events::with_capacity(1024)),
            local_addr: listener.local_addr()?,
            listener: Some(listener),
            tokens,
            clock,
            shutdown: ShutdownHandle {
                flag: Arc::new(AtomicBool::new(false)),
                waker,
            },
            shutdown_deadline: None,
            done: false,
            accept_paused: false,
            backlog: Vec::new(),
        })
    }

    /// Replaces the clock (tests use [`crate::clock::ManualClock`]).
    pub fn set_clock(&mut self, clock: impl Clock + 'static) {
        self.clock = Box::new(clock);
        self.core.epoch = self.clock.now();
        self.core.set_now(self.core.epoch);
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that asks the loop to shut down, from anywhere.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The handler and a [`Ctx`] to act on the server from outside a
    /// callback (an embedding host forwarding data, say). What is sent goes
    /// out at the next [`Server::tick`].
    pub fn context(&mut self) -> (&mut H, Ctx<'_, H::Data>) {
        self.core.set_now(self.clock.now());
        (
            &mut self.handler,
            Ctx {
                core: &mut self.core,
            },
        )
    }

    /// How many clients are connected (handshaking, open or closing).
    pub fn client_count(&self) -> usize {
        self.core.client_count()
    }

    /// Whether a requested shutdown has completed: every client is gone.
    pub fn is_shut_down(&self) -> bool {
        self.done
    }

    /// Runs the loop until a shutdown is requested and completed.
    pub fn run(&mut self) -> io::Result<()> {
        while !self.done {
            self.poll_once(None)?;
        }
        Ok(())
    }

    /// Waits at most `timeout` (or until the nearest deadline; `None`: no
    /// limit of its own) for events, handles them and every due timer, and
    /// flushes what was sent. Only for a server with its own `Poll`.
    pub fn poll_once(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let wait = self.poll_timeout(timeout);
        let mut events = self
            .events
            .take()
            .unwrap_or_else(|| Events::with_capacity(1024));
        let Some(poll) = self.poll.as_mut() else {
            self.events = Some(events);
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "an embedded server is polled by its host",
            ));
        };
        match poll.poll(&mut events, wait) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => events.clear(),
            Err(e) => {
                self.events = Some(events);
                return Err(e);
            }
        }
        for event in events.iter() {
            self.handle_event(event);
        }
        self.events = Some(events);
        self.tick();
        Ok(())
    }

    /// The poll timeout that wakes the loop for its nearest deadline, capped
    /// by `max`.
    pub fn poll_timeout(&self, max: Option<Duration>) -> Option<Duration> {
        let now = self.clock.now();
        let until_deadline = self
            .next_deadline()
            .map(|d| d.saturating_duration_since(now));
        match (max, until_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The nearest instant at which [`Server::tick`] has work to do: now
    /// when input is left over, sends (made through [`Server::context`])
    /// wait for their flush, or a shutdown was requested.
    pub fn next_deadline(&self) -> Option<Instant> {
        if !self.backlog.is_empty()
            || !self.core.dirty.is_empty()
            || self.shutdown.flag.load(Ordering::Relaxed) && self.shutdown_deadline.is_none()
        {
            return Some(self.core.now);
        }
        let timer = self
            .core
            .timers
            .next()
            .map(|at| self.core.epoch + Duration::from_nanos(at));
        [timer, self.shutdown_deadline].into_iter().flatten().min()
    }

    /// Whether `token` belongs to this server.
    pub fn owns(&self, token: Token) -> bool {
        self.tokens.contains(&token.0)
    }

    /// Handles one readiness event for a token this server owns.
    pub fn handle_event(&mut self, event: &mio::event::Event) {
        self.core.set_now(self.clock.now());
        let Some(slot) = event.token().0.checked_sub(self.tokens.start) else {
            return;
        };
        match slot {
            LISTENER => self.accept(),
            WAKER => {} // the shutdown flag is read in tick()
            _ => {
                let key = slot - FIRST_CLIENT;
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.read_ready(key, event.is_read_closed() || event.is_error());
                }
                if event.is_writable() {
                    self.flush(key);
                }
            }
        }
    }

    /// Runs what is due: clients left with unread input, timers, a requested
    /// shutdown, and the flush of everything queued in this iteration.
    pub fn tick(&mut self) {
        self.core.set_now(self.clock.now());
        for (key, gen, read_closed) in std::mem::take(&mut self.backlog) {
            if self.core.clients.get(key).is_some_and(|c| c.gen == gen) {
                self.read_ready(key, read_closed);
            }
        }
        self.run_timers();
        if self.shutdown.flag.load(Ordering::SeqCst) && self.shutdown_deadline.is_none() {
            self.begin_shutdown();
        }
        self.flush_dirty();
        if let Some(deadline) = self.shutdown_deadline {
            if self.core.clients.is_empty() || self.core.now >= deadline {
                let keys: Vec<usize> = self.core.clients.iter().map(|(k, _)| k).collect();
                for key in keys {
                    self.remove(key);
                }
                self.done = true;
            }
        }
    }

    fn accept(&mut self) {
        while !self.accept_paused {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS...: the pending connection stays
                    // in the backlog; retry later instead of spinning on it.
                    warn!("accept failed: {e}; pausing accepts for {ACCEPT_PAUSE:?}");
                    self.accept_paused = true;
                    self.core
                        .timers
                        .push(self.core.stamp() + nanos(ACCEPT_PAUSE), Due::Accept);
                }
            }
        }
    }

    fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr) {
        let over = self.core.client_count() >= self.core.config.max_clients;
        if over && self.core.rejecting >= MAX_REJECTING {
            debug!("{peer}: dropped, over capacity");
            return;
        }
        let key = self.core.clients.vacant_key();
        if key >= self.tokens.len() - FIRST_CLIENT {
            warn!("{peer}: dropped, no token left in the server's range");
            return;
        }
        // Inherited from the listener on Linux (see `build`).
        #[cfg(not(target_os = "linux"))]
        let _ = stream.set_nodelay(true);
        if let Err(e) = self.registry.register(
            &mut stream,
            Token(self.tokens.start + FIRST_CLIENT + key),
            Interest::READABLE,
        ) {
            warn!("{peer}: register failed: {e}");
            return;
        }
        self.core.next_gen = self.core.next_gen.wrapping_add(1);
        let phase = if over {
            debug!("{peer}: refused with 503, at max_clients");
            self.core.rejecting += 1;
            let mut q = SendQueue::new();
            q.push(&handshake::error_response(
                503,
                &[("Retry-After", "5")],
                "server is at its connection limit",
            ));
            Phase::Reject(q)
        } else {
            Phase::Handshake { buf: Vec::new() }
        };
        self.core.clients.insert(Client {
            stream,
            gen: self.core.next_gen,
            phase,
            data: H::Data::default(),
            since: self.core.stamp(),
            armed: NOT_ARMED,
            ping_sent: false,
            writable: false,
            blocked: false,
            dirty: false,
            opened: false,
            peer_close: None,
            peer_eof: false,
        });
        self.core.arm(key);
        if over {
            self.core.mark_dirty(key);
        }
    }

    /// Reads what `key` has sent until its socket is drained (or its turn is
    /// over). A short read means the socket is drained; new data raises a
    /// new edge, except a FIN that arrived with this event (`read_closed`).
    fn read_ready(&mut self, key: usize, read_closed: bool) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut turn_over = true;
        for _ in 0..READS_PER_TURN {
            let Some(client) = self.core.clients.get_mut(key).filter(|c| !c.peer_eof) else {
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
                self.backlog.push((key, c.gen, read_closed));
            }
        }
        self.scratch = scratch;
    }

    fn on_bytes(&mut self, key: usize, bytes: &mut [u8]) {
        let now = self.core.stamp();
        let limit = self.core.config.max_header_bytes;
        let client = &mut self.core.clients[key];
        match &mut client.phase {
            Phase::Reject(_) => {} // drained before the close
            Phase::Open(conn) => {
                if conn.is_open() {
                    client.since = now;
                    client.ping_sent = false;
                }
                self.feed(key, bytes);
            }
            Phase::Handshake { buf } if buf.is_empty() => {
                // The common case: the whole head in one read, parsed in place.
                if handshake::head_complete(bytes, 0) {
                    self.handshake(key, bytes);
                } else if bytes.len() >= limit {
                    self.reject(key, HandshakeError::HeadersTooLarge(limit).response());
                } else {
                    buf.extend_from_slice(bytes);
                }
            }
            Phase::Handshake { buf } => {
                let from = buf.len();
                buf.extend_from_slice(bytes);
                if handshake::head_complete(buf, from) {
                    let mut head = std::mem::take(buf);
                    self.handshake(key, &mut head);
                } else if buf.len() >= limit {
                    self.reject(key, HandshakeError::HeadersTooLarge(limit).response());
                }
            }
        }
    }

    /// A complete request head is at the start of `bytes`.
    fn handshake(&mut self, key: usize, bytes: &mut [u8]) {
        let config = &self.core.config;
        let (request, len) = match handshake::parse_head(bytes, config) {
            Ok(Parsed::Complete { request, len }) => (request, len),
            Ok(Parsed::Partial) => {
                // The blank line was inside something httparse still reads
                // as incomplete; keep the bytes and wait.
                if let Phase::Handshake { buf } = &mut self.core.clients[key].phase {
                    *buf = bytes.to_vec();
                }
                return;
            }
            Err(e) => return self.refuse(key, e),
        };
        match request.validate(config) {
            Ok(()) => {}
            Err(HandshakeError::NotWebSocket) => {
                let response = match self.handler.on_http(&request) {
                    Some(r) => r.to_bytes(),
                    None => HandshakeError::NotWebSocket.response(),
                };
                debug!(
                    "{}: plain HTTP {} {}",
                    Peer(&self.core.clients[key].stream),
                    request.method(),
                    request.target()
                );
                return self.reject(key, response);
            }
            Err(e) => return self.refuse(key, e),
        }
        let id = self.core.id(key);
        #[allow(unused_mut)] // mutated with the `deflate` feature only
        let mut conn = Connection::new(Role::Server, &self.core.config);
        #[cfg(feature = "deflate")]
        if self.core.config.deflate.enabled {
            let offers = request.extensions();
            if let Some(agreed) = crate::deflate::negotiate(&offers, &self.core.config.deflate) {
                conn.set_deflate(agreed);
            }
        }
        self.core.clients[key].phase = Phase::Open(conn);
        let decision = self.handler.on_open(
            &mut Ctx {
                core: &mut self.core,
            },
            id,
            &request,
        );
        let protocol = match decision {
            Decision::Accept { protocol } => protocol,
            Decision::Reject { status, reason } => {
                debug!(
                    "{}: refused by the handler with {status}: {reason}",
                    Peer(&self.core.clients[key].stream)
                );
                return self.reject(key, handshake::error_response(status, &[], &reason));
            }
        };
        // §4.2.2: the subprotocol must be one the client offered; a handler
        // that picks another is answered without one rather than failing a
        // connection it already accepted.
        let protocol = protocol.filter(|p| {
            let offered = request.protocols().any(|o| o == p);
            if !offered {
                warn!("handler chose subprotocol {p:?}, which the client did not offer; accepting without one");
            }
            offered
        });
        let now = self.core.stamp();
        let client = &mut self.core.clients[key];
        let Phase::Open(conn) = &mut client.phase else {
            return;
        };
        let response = handshake::accept_response(&request, protocol.as_deref(), conn.extensions());
        conn.outgoing().push_front(response);
        client.opened = true;
        client.since = now;
        debug!("{} {} opened as {id}", Peer(&client.stream), request.path());
        self.core.mark_dirty(key);
        self.core.arm(key);
        let rest = &mut bytes[len..];
        if !rest.is_empty() {
            self.feed(key, rest);
        }
    }

    fn refuse(&mut self, key: usize, e: HandshakeError) {
        debug!(
            "{}: handshake refused with {}: {e}",
            Peer(&self.core.clients[key].stream),
            e.status()
        );
        self.reject(key, e.response());
    }

    fn reject(&mut self, key: usize, response: Vec<u8>) {
        let mut q = SendQueue::new();
        q.push(&response);
        let now = self.core.stamp();
        let client = &mut self.core.clients[key];
        client.phase = Phase::Reject(q);
        client.since = now;
        self.core.rejecting += 1;
        self.core.mark_dirty(key);
        self.core.arm(key);
    }

    /// Feeds WebSocket bytes to an open client and dispatches the events.
    fn feed(&mut self, key: usize, data: &mut [u8]) {
        let mut pos = 0;
        while pos < data.len() {
            let Some(client) = self.core.clients.get_mut(key) else {
                return;
            };
            let Phase::Open(conn) = &mut client.phase else {
                return;
            };
            let (used, event) = match conn.read(&mut data[pos..]) {
                Ok(read) => read,
                Err(e) => {
                    warn!(
                        "{}: protocol error, closing with {}: {e}",
                        Peer(&client.stream),
                        e.close_code()
                    );
                    self.core.start_closing(key);
                    return;
                }
            };
            pos += used;
            let id = ConnId {
                key: key as u32,
                gen: client.gen,
            };
            match event {
                None => {}
                Some(Event::Message(incoming)) => {
                    self.handler.on_message(
                        &mut Ctx {
                            core: &mut self.core,
                        },
                        id,
                        incoming.message(),
                    );
                    if let Some(buf) = incoming.into_buffer() {
                        if let Some(Phase::Open(conn)) =
                            self.core.clients.get_mut(key).map(|c| &mut c.phase)
                        {
                            conn.recycle(buf);
                        }
                    }
                }
                Some(Event::Ping(_)) => {
                    // Pongs are owed, but a peer that pings without reading
                    // must not grow its queue without bound. Once closing, no
                    // pongs are queued, and the close timeout must not restart.
                    if conn.is_open() && conn.buffered_amount() > self.core.config.max_send_queue {
                        warn!(
                            "{}: pongs queued past the send limit, closing with 1008",
                            Peer(&client.stream)
                        );
                        let _ =
                            conn.close(close_code::POLICY_VIOLATION, "send queue limit exceeded");
                        self.core.start_closing(key);
                    } else {
                        self.core.mark_dirty(key);
                    }
                }
                Some(Event::Pong(_)) => {}
                Some(Event::Close(frame)) => {
                    client.peer_close = Some(Box::new((frame.code, frame.reason().into())));
                    self.core.mark_dirty(key);
                    self.core.arm(key);
                }
            }
        }
    }

    /// The peer shut its sending side. It may still read: give it what it
    /// is owed (a reply, the close echo) before closing. What the socket
    /// does not take at once is written as it drains, within the close
    /// timeout; `flush` removes the client once it is out.
    fn on_eof(&mut self, key: usize) {
        self.flush(key);
        let now = self.core.stamp();
        let Some(client) = self.core.clients.get_mut(key) else {
            return; // flush finished it
        };
        let pending = match &client.phase {
            Phase::Open(conn) => conn.buffered_amount() > 0,
            Phase::Reject(queue) => !queue.is_empty(),
            Phase::Handshake { .. } => false,
        };
        if pending {
            client.peer_eof = true;
            client.since = now;
            self.core.arm(key);
        } else {
            self.remove(key);
        }
    }

    fn flush_dirty(&mut self) {
        while let Some(key) = self.core.dirty.pop() {
            if let Some(c) = self.core.clients.get_mut(key) {
                c.dirty = false;
                self.flush(key);
            }
        }
    }

    /// Writes what `key` has queued, adjusts its interest, and ends it if
    /// its last bytes are out.
    fn flush(&mut self, key: usize) {
        let Some(client) = self.core.clients.get_mut(key) else {
            return;
        };
        // What is queued is all the connection will ever send: the socket is
        // closed or shut for writing as soon as it is written (see the end).
        let last = client.peer_eof
            || match &client.phase {
                Phase::Open(c) => c.sends_nothing_more(),
                Phase::Reject(_) => true,
                Phase::Handshake { .. } => false,
            };
        let queue = match &mut client.phase {
            Phase::Open(conn) => conn.outgoing(),
            Phase::Reject(q) => q,
            Phase::Handshake { .. } => return,
        };
        let mut failed = false;
        while !queue.is_empty() {
            let result = if queue.is_contiguous() {
                // The common case (one coalesced chunk): no iovec array.
                if last {
                    write_last(&client.stream, queue.front())
                } else {
                    client.stream.write(queue.front())
                }
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let n = queue.io_slices(&mut slices);
                client.stream.write_vectored(&slices[..n])
            };
            match result {
                Ok(0) => {
                    failed = true;
                    break;
                }
                Ok(written) => queue.consume(written),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!("{}: write error: {e}", Peer(&client.stream));
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            return self.remove(key);
        }
        let pending = !queue.is_empty();
        client.blocked = pending;
        if pending != client.writable {
            let interest = if pending {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let token = Token(self.tokens.start + FIRST_CLIENT + key);
            if let Err(e) = self
                .registry
                .reregister(&mut client.stream, token, interest)
            {
                warn!("{}: reregister failed: {e}", Peer(&client.stream));
                return self.remove(key);
            }
            client.writable = pending;
        }
        if pending {
            return;
        }
        if client.peer_eof {
            // The peer half-closed earlier and now has everything.
            return self.remove(key);
        }
        match &client.phase {
            // §7.1.1: after the closing handshake the server closes TCP first.
            Phase::Open(conn) if conn.is_finished() && conn.close_received() => self.remove(key),
            // Our close (after an error) or refusal is out: half-close and
            // drain until the peer closes, so unread input cannot make the
            // kernel reset the connection before the peer reads it.
            Phase::Open(conn) if conn.is_finished() => {
                let _ = client.stream.shutdown(Shutdown::Write);
            }
            Phase::Reject(_) => {
                let _ = client.stream.shutdown(Shutdown::Write);
            }
            _ => {}
        }
    }

    fn run_timers(&mut self) {
        let now = self.core.stamp();
        // Take every entry due now before acting on any: what is armed
        // during this pass (a zero-delay timer set in `on_timer`, say) runs
        // at the next tick, so the loop always gets back to its I/O.
        let mut due_now = Vec::new();
        while let Some(entry) = self.core.timers.pop_due(now) {
            due_now.push(entry);
        }
        for (at, due) in due_now {
            match due {
                Due::Client(key, gen) => {
                    let key = key as usize;
                    let config = &self.core.config;
                    let Some(c) = self.core.clients.get_mut(key).filter(|c| c.gen == gen) else {
                        continue;
                    };
                    if c.armed != at {
                        continue; // superseded by an earlier entry
                    }
                    c.armed = NOT_ARMED;
                    match c.deadline(config) {
                        Some(deadline) if deadline <= now => self.expire(key),
                        Some(_) => self.core.arm(key),
                        None => {}
                    }
                }
                Due::User(key, gen) => {
                    let key = key as usize;
                    match self.core.user_timers.get(key) {
                        Some((g, _)) if *g == gen => {}
                        _ => continue, // cancelled
                    }
                    let (_, tag) = self.core.user_timers.remove(key);
                    let timer = TimerId {
                        key: key as u32,
                        gen,
                    };
                    self.handler.on_timer(
                        &mut Ctx {
                            core: &mut self.core,
                        },
                        timer,
                        tag,
                    );
                }
                Due::Accept => {
                    self.accept_paused = false;
                    self.accept();
                }
            }
        }
        let Core {
            clients,
            user_timers,
            timers,
            ..
        } = &mut self.core;
        let live = user_timers.len() + clients.len() + 1;
        timers.purge_if_bloated(live, |at, due| match due {
            Due::Client(k, g) => clients
                .get(k as usize)
                .is_some_and(|c| c.gen == g && c.armed == at),
            Due::User(k, g) => user_timers.get(k as usize).is_some_and(|(tg, _)| *tg == g),
            Due::Accept => true,
        });
    }

    /// A client's deadline passed.
    fn expire(&mut self, key: usize) {
        let idle = self.core.config.idle_timeout;
        let client = &mut self.core.clients[key];
        if client.peer_eof {
            debug!(
                "{}: half-closed peer did not read its last bytes in time",
                Peer(&client.stream)
            );
            return self.remove(key);
        }
        let Phase::Open(conn) = &mut client.phase else {
            debug!(
                "{}: timed out before the upgrade completed",
                Peer(&client.stream)
            );
            return self.remove(key);
        };
        if conn.close_sent() {
            debug!("{}: close handshake timed out", Peer(&client.stream));
            return self.remove(key);
        }
        if idle.is_some() && !client.ping_sent {
            // Silent for `idle`: ask for a sign of life.
            let _ = conn.ping(b"");
            client.ping_sent = true;
            self.core.mark_dirty(key);
            self.core.arm(key);
        } else {
            debug!("{}: no traffic after a ping, closing", Peer(&client.stream));
            let _ = conn.close(close_code::GOING_AWAY, "idle timeout");
            self.core.start_closing(key);
        }
    }

    fn begin_shutdown(&mut self) {
        info!(
            "shutting down: closing {} clients",
            self.core.client_count()
        );
        if let Some(mut listener) = self.listener.take() {
            let _ = self.registry.deregister(&mut listener);
        }
        self.shutdown_deadline = Some(self.core.now + self.core.config.close_timeout);
        let keys: Vec<usize> = self.core.clients.iter().map(|(k, _)| k).collect();
        for key in keys {
            match &mut self.core.clients[key].phase {
                Phase::Handshake { .. } => self.remove(key),
                Phase::Open(conn) => {
                    if conn
                        .close(close_code::GOING_AWAY, "server shutting down")
                        .is_ok()
                    {
                        self.core.start_closing(key);
                    }
                }
                Phase::Reject(_) => {}
            }
        }
    }

    /// The one exit of every client.
    fn remove(&mut self, key: usize) {
        let Some(mut client) = self.core.clients.try_remove(key) else {
            return;
        };
        // No epoll_ctl(DEL): closing the socket (when `client.stream` is
        // dropped below) removes it from the epoll set, one syscall fewer
        // per connection.
        if matches!(client.phase, Phase::Reject(_)) {
            self.core.rejecting -= 1;
        }
        if !client.opened {
            return;
        }
        let id = ConnId {
            key: key as u32,
            gen: client.gen,
        };
        let (code, reason) = match (client.peer_close.take(), &client.phase) {
            (Some(close), _) => *close,
            (None, Phase::Open(conn)) => (
                conn.close_code_sent().unwrap_or(close_code::ABNORMAL),
                "".into(),
            ),
            (None, _) => (close_code::ABNORMAL, "".into()),
        };
        debug!("{} {id} closed with {code}", Peer(&client.stream));
        // Its data and address stay reachable through Ctx during on_close.
        self.core.departing = Some((id, client.stream, client.data));
        self.handler.on_close(
            &mut Ctx {
                core: &mut self.core,
            },
            id,
            code,
            &reason,
        );
        self.core.departing = None;
    }
}

/// A duration in nanoseconds, saturating (u64 nanoseconds span 584 years).
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
