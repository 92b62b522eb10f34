//! The mio readiness loop: the only code that does I/O. It moves bytes
//! between sockets and sessions, runs the poll and the timers, and applies
//! no protocol policy of its own (that is [`Session`]'s).
//!
//! ```text
//!              ┌──────────── one mio::Poll ────────────┐
//! listener ──► accept.rs ──► slab[key] = Client { socket, Session, data }     (core.rs)
//! readable ──► io.rs: read into the loop's one scratch buffer (until drained)
//!                 └─► Session::read ─► Action ─► Handler (on_open, on_http, on_message)
//! Handler ──Ctx──► core.rs ──► Session::send (write-through when nothing is queued)
//! dirty list ──► io.rs: Session::transmit(socket), once per client per iteration;
//!                WRITABLE only while bytes remain
//! timers.rs ──► one heap: sessions' deadlines, handler timers, accept pause
//! waker ──► handle.rs: shutdown
//! ```
//!
//! A client is removed in exactly one place, [`Server`]'s `remove`, which
//! frees its slot, calls `on_close` once if it was accepted, and closes its
//! socket (which also takes it out of the epoll set).

mod accept;
pub mod clock;
mod core;
mod ctx;
mod handle;
mod handler;
mod io;
mod loops;
#[cfg(feature = "redis")]
mod redis;
mod source;
mod stats;
mod timers;
#[cfg(feature = "tls")]
mod tls;
mod tokens;
mod topics;

use std::io as stdio;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Registry, Token, Waker};

use self::clock::{Clock, SystemClock};
use self::core::{Core, ANSWERING, PAUSED};
pub use self::ctx::Ctx;
use self::handle::{Command, Commands};
pub use self::handle::{HandleError, LoopHandle, ShutdownHandle};
pub use self::handler::{Decision, Handler};
use self::io::Peer;
pub use self::loops::{reuse_port_listeners, Balance, LoopThreads, Loops, MAX_LOOPS};
#[cfg(feature = "redis")]
pub use self::redis::RedisStats;
pub use self::source::SourceId;
use self::stats::Counters;
pub use self::stats::{Stats, StatsHandle};
use self::timers::Due;
use self::tokens::{Slot, Tokens};
use crate::config::Config;
use crate::id::ConnId;
use crate::proto::message::Broadcast;
use crate::proto::session::{Action, Expired};
use crate::proto::time::{self, NEVER};

/// Commands a loop's handles may have waiting at once (see
/// [`LoopHandle`]): enough for bursts from many threads, small enough that
/// a loop that stopped polling holds little (each is a message's bytes).
const COMMAND_QUEUE: usize = 4096;

/// The loop's one read buffer, shared by every client. Large enough that a
/// 64 KiB message usually arrives whole and is lent out without a copy.
const SCRATCH_SIZE: usize = 256 * 1024;

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
    poll: Option<Poll>,
    events: Option<Events>,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    clock: Box<dyn Clock + Send>,
    shutdown: ShutdownHandle,
    shutdown_deadline: Option<Instant>,
    /// Handles' commands were left for the next turn (one queue's worth
    /// is taken per turn).
    commands_left: bool,
    done: bool,
    accept_paused: bool,
    /// The loop that gets the next accepted connection, when linked loops
    /// share one listener.
    next_loop: usize,
    /// Where the counters are copied for other threads, once asked for.
    stats_out: Option<StatsHandle>,
    /// When the next copy may be made, and whether one is owed.
    stats_due: Instant,
    stats_owed: bool,
}

impl<H: Handler> Server<H> {
    /// Binds `addr` and builds a server with its own `Poll`.
    pub fn bind(addr: SocketAddr, config: Config, handler: H) -> stdio::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        Self::with_listener(listener, config, handler)
    }

    /// Builds a server with its own `Poll` on a bound listener.
    pub fn with_listener(listener: TcpListener, config: Config, handler: H) -> stdio::Result<Self> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        Self::build(
            Some(poll),
            registry,
            0..usize::MAX,
            Some(listener),
            config,
            handler,
        )
    }

    /// Builds a server with its own `Poll` and no listener: it accepts
    /// nothing itself. Linked by [`Loops::link`] with one that listens, it
    /// serves the connections that loop accepts and hands round to every
    /// loop (how loops share a port where the kernel does not spread
    /// connections, see [`Loops`]).
    pub fn without_listener(config: Config, handler: H) -> stdio::Result<Self> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        Self::build(Some(poll), registry, 0..usize::MAX, None, config, handler)
    }

    /// Builds a server inside a host's loop: it registers the listener and
    /// its clients on `registry` with tokens from `tokens`, a range the host
    /// reserves for it (it needs 2 tokens plus two per client slot: clients and other event sources take every other token). The host
    /// forwards the events for which [`Server::owns`] is true to
    /// [`Server::handle_event`], calls [`Server::tick`] after each batch, and
    /// bounds its poll timeout with [`Server::poll_timeout`].
    ///
    /// The server registers a mio `Waker` (for its handles), and mio
    /// supports one per `Poll` (debug builds assert it; some platforms'
    /// pollers have room for only one): a host with a `Waker` of its own,
    /// or a second server in the same `Poll`, is outside that. Run a second
    /// server on its own `Poll` instead.
    pub fn embed(
        registry: &Registry,
        tokens: Range<usize>,
        listener: TcpListener,
        config: Config,
        handler: H,
    ) -> stdio::Result<Self> {
        if tokens.len() < Tokens::MIN {
            return Err(stdio::Error::new(
                stdio::ErrorKind::InvalidInput,
                "token range needs at least 3 tokens",
            ));
        }
        Self::build(
            None,
            registry.try_clone()?,
            tokens,
            Some(listener),
            config,
            handler,
        )
    }

    fn build(
        poll: Option<Poll>,
        registry: Registry,
        tokens: Range<usize>,
        mut listener: Option<TcpListener>,
        config: Config,
        handler: H,
    ) -> stdio::Result<Self> {
        config
            .validate()
            .map_err(|e| stdio::Error::new(stdio::ErrorKind::InvalidInput, e))?;
        let tokens = Tokens::new(tokens);
        let mut local_addr = SocketAddr::from(([0, 0, 0, 0], 0));
        if let Some(listener) = &mut listener {
            registry.register(listener, tokens.listener(), Interest::READABLE)?;
            // Linux copies the listener's TCP_NODELAY to every accepted
            // socket: set once here, it saves a setsockopt per connection.
            #[cfg(target_os = "linux")]
            socket2::SockRef::from(&*listener).set_tcp_nodelay(true)?;
            local_addr = listener.local_addr()?;
        }
        let waker = Waker::new(&registry, tokens.waker())?;
        let clock: Box<dyn Clock + Send> = Box::new(SystemClock);
        let shutdown = ShutdownHandle::new(waker);
        let commands = Commands::new(COMMAND_QUEUE, shutdown.clone());
        Ok(Server {
            core: Core::new(config, registry, tokens, clock.now(), commands),
            handler,
            scratch: vec![0; SCRATCH_SIZE],
            poll,
            events: Some(Events::with_capacity(1024)),
            local_addr,
            listener,
            clock,
            shutdown,
            shutdown_deadline: None,
            commands_left: false,
            done: false,
            accept_paused: false,
            next_loop: 0,
            stats_out: None,
            stats_due: Instant::now(),
            stats_owed: false,
        })
    }

    /// Replaces the clock (tests use [`crate::server::clock::ManualClock`]).
    pub fn set_clock(&mut self, clock: impl Clock + Send + 'static) {
        self.clock = Box::new(clock);
        self.core.set_now(self.clock.now());
    }

    /// The address the listener is bound to (for a server
    /// [without one](Server::without_listener), that of the first linked
    /// loop that listens; `0.0.0.0:0` before it is linked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that asks the loop to shut down, from anywhere.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// A handle that sends, publishes, closes and shuts down from any
    /// thread (see [`LoopHandle`]). An embedded server takes its commands
    /// when its host forwards the waker's event (a token it
    /// [owns](Server::owns)) and calls [`Server::tick`].
    pub fn handle(&self) -> LoopHandle {
        self.core.commands.handle()
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
        (&mut self.handler, Ctx::new(&mut self.core))
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
    pub fn run(&mut self) -> stdio::Result<()> {
        while !self.done {
            self.poll_once(None)?;
        }
        Ok(())
    }

    /// Waits at most `timeout` (or until the nearest deadline; `None`: no
    /// limit of its own) for events, handles them and every due timer, and
    /// flushes what was sent. Only for a server with its own `Poll`.
    pub fn poll_once(&mut self, timeout: Option<Duration>) -> stdio::Result<()> {
        let wait = self.poll_timeout(timeout);
        let mut events = self
            .events
            .take()
            .unwrap_or_else(|| Events::with_capacity(1024));
        let Some(poll) = self.poll.as_mut() else {
            self.events = Some(events);
            return Err(stdio::Error::new(
                stdio::ErrorKind::Unsupported,
                "an embedded server is polled by its host",
            ));
        };
        match poll.poll(&mut events, wait) {
            Ok(()) => {}
            Err(e) if e.kind() == stdio::ErrorKind::Interrupted => events.clear(),
            Err(e) => {
                self.events = Some(events);
                return Err(e);
            }
        }
        // One instant for the whole batch: the clock is read once per poll,
        // not once per event.
        self.core.set_now(self.clock.now());
        for event in events.iter() {
            self.dispatch(event);
        }
        self.events = Some(events);
        self.run_due();
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
        #[cfg(feature = "redis")]
        let redis_more = self.core.redis.as_ref().is_some_and(|r| r.more);
        #[cfg(not(feature = "redis"))]
        let redis_more = false;
        if !self.core.backlog.is_empty()
            || !self.core.dirty.is_empty()
            || self.commands_left
            || redis_more
            || self.shutdown.requested() && self.shutdown_deadline.is_none()
        {
            return Some(self.core.now);
        }
        let timer = self.core.timers.next().map(time::instant);
        // Publishes held for a full loop: retried soon, not in a spin.
        let held =
            (!self.core.hub_backlog.is_empty()).then(|| self.core.now + Duration::from_millis(1));
        let stats = self.stats_owed.then_some(self.stats_due);
        [timer, self.shutdown_deadline, held, stats]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether `token` belongs to this server.
    pub fn owns(&self, token: Token) -> bool {
        self.core.tokens.owns(token)
    }

    /// Handles one readiness event for a token this server owns.
    pub fn handle_event(&mut self, event: &mio::event::Event) {
        self.core.set_now(self.clock.now());
        self.dispatch(event);
    }

    fn dispatch(&mut self, event: &mio::event::Event) {
        match self.core.tokens.slot(event.token()) {
            Slot::Listener => self.accept(),
            // The shutdown flag is read in tick().
            Slot::Waker => self.run_commands(),
            Slot::Client(key) => {
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.read_ready(key, event.is_read_closed() || event.is_error());
                }
                if event.is_writable() {
                    self.flush(key);
                }
            }
            #[cfg(feature = "redis")]
            Slot::Source(key) if self.is_redis(key) => self.redis_event(event),
            Slot::Source(key) => {
                if let Some(source) = self.core.source_id(key) {
                    self.handler
                        .on_source(&mut Ctx::new(&mut self.core), source, event);
                }
            }
            Slot::Foreign => {}
        }
    }

    /// Runs what is due: clients left with unread input, timers, a requested
    /// shutdown, and the flush of everything queued in this iteration.
    pub fn tick(&mut self) {
        self.core.set_now(self.clock.now());
        self.run_due();
    }

    /// Carries out what the loop's handles asked for.
    fn run_commands(&mut self) {
        let mut left = false;
        let commands = self.core.commands.take(&mut left);
        self.commands_left = left;
        for command in commands {
            match command {
                Command::Send(id, msg) => {
                    self.core.deliver([id], &mut Broadcast::encoded(&msg));
                }
                Command::Publish(topic, msg, relay) => {
                    self.core.publish(&topic, &mut Broadcast::encoded(&msg));
                    #[cfg(feature = "redis")]
                    if relay {
                        self.core.relay(&topic, msg.message());
                    }
                    #[cfg(not(feature = "redis"))]
                    let _ = relay;
                    self.flush_if_over_budget();
                }
                Command::PublishMany(topic, msgs) => {
                    for msg in &msgs {
                        self.core.publish(&topic, &mut Broadcast::encoded(msg));
                    }
                    self.flush_if_over_budget();
                }
                Command::Close(id, code, reason) => {
                    self.core.close(id, code, &reason);
                }
                Command::Adopt(stream, peer) => self.adopt(stream, peer),
                #[cfg(feature = "redis")]
                Command::RedisResolved(addrs) => self.redis_resolved(addrs),
                #[cfg(feature = "tls")]
                Command::Tls(config) => self.set_tls(config),
            }
        }
    }

    fn run_due(&mut self) {
        if self.commands_left {
            self.run_commands();
        }
        if !self.core.hub_backlog.is_empty() {
            self.core.retry_held();
        }
        #[cfg(feature = "redis")]
        if self.core.redis.as_ref().is_some_and(|r| r.more) {
            self.redis_read();
        }
        for (id, read_closed) in std::mem::take(&mut self.core.backlog) {
            if self.core.client_mut(id).is_some_and(|c| !c.is(PAUSED)) {
                self.read_ready(id.key(), read_closed);
            }
        }
        self.run_timers();
        if self.shutdown.requested() && self.shutdown_deadline.is_none() {
            self.begin_shutdown();
        }
        self.flush_dirty();
        // After the flush, which may have ended clients (their on_close),
        // so that what those queued is done in this turn too; what the
        // handler sends now is flushed now.
        self.handler.on_turn_end(&mut Ctx::new(&mut self.core));
        self.flush_dirty();
        self.refresh_stats();
        if let Some(hub) = self.core.commands.hub() {
            hub.clients[self.core.index as usize].store(
                self.core.client_count(),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        if let Some(deadline) = self.shutdown_deadline {
            if self.core.clients.is_empty() || self.core.now >= deadline {
                let keys: Vec<usize> = self.core.clients.iter().map(|(k, _)| k).collect();
                for key in keys {
                    self.remove(key);
                }
                self.done = true;
                self.core.commands.finish();
                // The last counts (the clients removed just now) reach the
                // stats handle, owed or not.
                self.stats_due = self.core.now;
                self.refresh_stats();
            }
        }
    }

    /// Feeds bytes read from `key` to its session and dispatches what the
    /// session asks of the handler.
    fn on_bytes(&mut self, key: usize, bytes: &mut [u8]) {
        let now = self.core.time();
        let mut pos = 0;
        while pos < bytes.len() {
            if self.core.has_batch()
                && self
                    .core
                    .clients
                    .get(key)
                    .is_some_and(|c| c.session.may_read_close(&bytes[pos..]))
            {
                // A close frame may be read (begun here, or in an earlier
                // read): what this turn published goes into the queues
                // first, ahead of the close reply the session is about to
                // queue. (A payload byte that only looks like it costs an
                // early flush.)
                self.core.flush_batch();
            }
            let Some(c) = self.core.clients.get_mut(key) else {
                return;
            };
            let gen = c.gen;
            let (used, action) = c.session.read(now, &self.core.config, &mut bytes[pos..]);
            pos += used;
            if let Some(action) = action {
                self.act(ConnId::new(key, gen), action);
                self.flush_if_over_budget();
            }
        }
        self.settle(key);
    }

    /// Removes `key` if its session is over, else brings the loop's
    /// bookkeeping in line with it.
    fn settle(&mut self, key: usize) {
        if self.core.touch(key) {
            self.remove(key);
        }
    }

    /// Does what the session of `key` asked: the handler decides upgrades
    /// and plain HTTP requests and receives messages; the rest is logged.
    fn act(&mut self, id: ConnId, action: Action<'_>) {
        let key = id.key();
        match action {
            Action::Message(incoming) => {
                let counters = &mut self.core.counters;
                counters.messages_received += 1;
                counters.message_bytes_received += incoming.message().as_bytes().len() as u64;
                self.handler
                    .on_message(&mut Ctx::new(&mut self.core), id, incoming.message());
                // A message borrowed from the input has no buffer to give back.
                if !incoming.is_borrowed() {
                    if let Some(c) = self.core.clients.get_mut(key) {
                        c.session.recycle(incoming);
                    }
                }
            }
            Action::Upgrade(request) => {
                #[cfg(feature = "deflate")]
                self.charge_deflate(key);
                let decision = self
                    .handler
                    .on_open(&mut Ctx::new(&mut self.core), id, &request);
                let now = self.core.time();
                let (c, counters) = (&mut self.core.clients[key], &mut self.core.counters);
                match decision {
                    Decision::Accept { protocol } => {
                        counters.handshakes_accepted += 1;
                        c.session.tag = counters.open_path(request.path());
                        c.session.accept(now, &request, protocol.as_deref());
                        debug!("{} {} opened as {id}", Peer(&c.stream), request.path());
                    }
                    refusal => {
                        // The compression charged at the upgrade goes back.
                        #[cfg(feature = "deflate")]
                        {
                            self.core.deflate_memory -= c.session.deflate_memory().unwrap_or(0);
                        }
                        match refusal {
                            Decision::Reject { status, reason } => {
                                Counters::bump(&mut counters.handshakes_refused, status);
                                debug!(
                                    "{}: refused by the handler with {status}: {reason}",
                                    Peer(&c.stream)
                                );
                                c.session.reject(now, status, &reason);
                            }
                            Decision::Respond(response) => {
                                Counters::bump(&mut counters.handshakes_refused, response.status);
                                debug!(
                                    "{}: refused by the handler with {}",
                                    Peer(&c.stream),
                                    response.status
                                );
                                c.session.respond(now, &request, Some(&response));
                            }
                            Decision::Accept { .. } => {}
                        }
                    }
                }
            }
            Action::Http(request) => {
                let response = self.handler.on_http(&request);
                let now = self.core.time();
                let c = &mut self.core.clients[key];
                debug!(
                    "{}: plain HTTP {} {}",
                    Peer(&c.stream),
                    request.method(),
                    request.target()
                );
                c.session.respond(now, &request, response.as_ref());
            }
            Action::Refused(e) => {
                Counters::bump(&mut self.core.counters.handshakes_refused, e.status());
                debug!(
                    "{}: handshake refused with {}: {e}",
                    Peer(&self.core.clients[key].stream),
                    e.status()
                )
            }
            Action::Failed(e) => warn!(
                "{}: protocol error, closing with {}: {e}",
                Peer(&self.core.clients[key].stream),
                e.close_code()
            ),
            Action::PongFlood => warn!(
                "{}: pongs queued past the send limit, closing with 1008",
                Peer(&self.core.clients[key].stream)
            ),
        }
    }

    /// Charges the compression state just agreed for `key` against the
    /// ceiling, or declines it (before `on_open`, so the handler and the
    /// `101` see no extension).
    #[cfg(feature = "deflate")]
    fn charge_deflate(&mut self, key: usize) {
        let core = &mut self.core;
        let c = &mut core.clients[key];
        let Some(cost) = c.session.deflate_memory() else {
            return;
        };
        let ceiling = core.config.deflate.max_memory;
        match core.deflate_memory.checked_add(cost) {
            Some(total) if total <= ceiling => core.deflate_memory = total,
            _ => {
                c.session.decline_deflate();
                core.deflate_declined += 1;
                warn!(
                    "{}: permessage-deflate declined: the connections' compression state \
                     would pass its ceiling of {ceiling} bytes ({} held, {cost} asked)",
                    Peer(&c.stream),
                    core.deflate_memory
                );
            }
        }
    }

    /// Speaks TLS (wss://) from now on: every connection accepted after
    /// this call goes through rustls with `config`; connections already
    /// open carry on with what they had. Calling it again is how
    /// certificates are reloaded ([`tls::from_pem_files`](crate::tls::from_pem_files)
    /// builds a configuration from PEM files).
    #[cfg(feature = "tls")]
    pub fn set_tls(&mut self, config: std::sync::Arc<rustls::ServerConfig>) {
        self.core.tls_config = Some(config);
    }

    /// The server's counters.
    pub fn stats(&self) -> Stats {
        let c = &self.core.counters;
        Stats {
            clients: self.core.client_count(),
            paths: c.paths.clone(),
            handshakes_accepted: c.handshakes_accepted,
            handshakes_refused: c.handshakes_refused.clone(),
            messages_received: c.messages_received,
            message_bytes_received: c.message_bytes_received,
            messages_sent: c.messages_sent,
            message_bytes_sent: c.message_bytes_sent,
            closes: c.closes.clone(),
            backpressure_closes: c.backpressure_closes,
            #[cfg(feature = "deflate")]
            deflate_bytes_saved: crate::proto::deflate::bytes_saved(),
            #[cfg(not(feature = "deflate"))]
            deflate_bytes_saved: 0,
            deflate_memory: self.core.deflate_memory,
            deflate_declined: self.core.deflate_declined,
            topics: self.core.topics.len(),
            subscriptions: self.core.topics.subscriptions(),
            hub_dropped: self.core.hub_dropped,
            #[cfg(feature = "redis")]
            redis: self.core.redis.as_ref().map(|r| r.stats()),
        }
    }

    /// The latest [`Stats`] of this loop for any thread (a metrics
    /// endpoint): from now on the loop copies its counters into the
    /// handle's snapshot at the end of a turn, at most every 100 ms (and
    /// once more when it falls idle with changes not yet copied).
    pub fn stats_handle(&mut self) -> StatsHandle {
        let handle = self
            .stats_out
            .get_or_insert_with(StatsHandle::default)
            .clone();
        *handle.0.lock().unwrap_or_else(|e| e.into_inner()) = self.stats();
        handle
    }

    /// Copies the counters into the stats handle's snapshot when the last
    /// copy is old enough; else notes that one is owed.
    fn refresh_stats(&mut self) {
        let Some(out) = &self.stats_out else {
            return;
        };
        if self.core.now < self.stats_due {
            self.stats_owed = true;
            return;
        }
        let stats = self.stats();
        *out.0.lock().unwrap_or_else(|e| e.into_inner()) = stats;
        self.stats_due = self.core.now + stats::REFRESH;
        self.stats_owed = false;
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
                Due::Client(id) => {
                    let key = id.key();
                    let Some(c) = self.core.clients.get_mut(key).filter(|c| id.is(c.gen)) else {
                        continue;
                    };
                    if c.armed != at {
                        continue; // superseded by an earlier entry
                    }
                    c.armed = NEVER;
                    let due = c.session.deadline(&self.core.config);
                    if due <= now {
                        self.expire(key);
                    } else {
                        self.core.touch(key);
                    }
                }
                Due::User(key, gen) => {
                    if let Some((timer, tag)) = self.core.take_timer(key, gen) {
                        self.handler
                            .on_timer(&mut Ctx::new(&mut self.core), timer, tag);
                    }
                }
                Due::Accept => self.resume_accept(),
                #[cfg(feature = "redis")]
                Due::Redis(timer) => self.redis_timer(timer),
            }
        }
        self.core.purge_timers();
    }

    /// A client's deadline passed.
    fn expire(&mut self, key: usize) {
        // A timeout may close: what this turn published goes first.
        self.core.flush_batch();
        let (now, config) = (self.core.time(), &self.core.config);
        let c = &mut self.core.clients[key];
        match c.session.handle_timeout(now, config) {
            Some(Expired::Handshake) => debug!(
                "{}: timed out before the upgrade completed",
                Peer(&c.stream)
            ),
            Some(Expired::Close) => debug!("{}: close handshake timed out", Peer(&c.stream)),
            Some(Expired::Drain) => debug!(
                "{}: half-closed peer did not read its last bytes in time",
                Peer(&c.stream)
            ),
            Some(Expired::Idle) => {
                debug!("{}: no traffic after a ping, closing", Peer(&c.stream))
            }
            Some(Expired::Ping) | None => {}
        }
        self.settle(key);
    }

    fn begin_shutdown(&mut self) {
        info!(
            "shutting down: closing {} clients",
            self.core.client_count()
        );
        if let Some(mut listener) = self.listener.take() {
            let _ = self.core.registry.deregister(&mut listener);
        }
        self.shutdown_deadline = Some(self.core.now + self.core.config.close_timeout);
        // Published this turn: out ahead of the 1001s.
        self.core.flush_batch();
        let keys: Vec<usize> = self.core.clients.iter().map(|(k, _)| k).collect();
        for key in keys {
            let now = self.core.time();
            self.core.clients[key].session.shutdown(now);
            self.settle(key);
        }
    }

    /// The one exit of every client.
    fn remove(&mut self, key: usize) {
        let Some(client) = self.core.clients.try_remove(key) else {
            return;
        };
        self.core.leave_topics(key);
        #[cfg(feature = "tls")]
        if client.is(core::TLS) {
            if let Some(mut tls) = self.core.tls.get_mut(key).and_then(Option::take) {
                // A last close_notify, best-effort: the socket closes now.
                tls.conn.send_close_notify();
                let _ = tls.conn.write_tls(&mut &client.stream);
            }
        }
        // No epoll_ctl(DEL): closing the socket (when `client.stream` is
        // dropped below) removes it from the epoll set, one syscall fewer
        // per connection.
        if client.is(ANSWERING) {
            self.core.answering -= 1;
        }
        #[cfg(feature = "deflate")]
        if client.session.is_accepted() {
            // What `charge_deflate` charged at the upgrade: an accepted
            // session keeps its agreement to the end.
            self.core.deflate_memory -= client.session.deflate_memory().unwrap_or(0);
        }
        if !client.session.is_accepted() {
            return;
        }
        let id = ConnId::new(key, client.gen);
        let (code, reason) = client.session.close_status();
        Counters::bump(&mut self.core.counters.closes, code);
        self.core.counters.close_path(client.session.tag);
        let reason: Box<str> = reason.into();
        debug!("{} {id} closed with {code}", Peer(&client.stream));
        // Its data and address stay reachable through Ctx during on_close.
        self.core.departing = Some((id, client.stream, client.data));
        self.handler
            .on_close(&mut Ctx::new(&mut self.core), id, code, &reason);
        self.core.departing = None;
    }
}
