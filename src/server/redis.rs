//! The Redis backplane's socket in the loop (feature `redis`): connecting
//! without blocking, reading pushed messages into this loop's topics,
//! writing the turn's commands once, and reconnecting with backoff. The
//! protocol is [`RedisLink`]'s; this is only its I/O.
//!
//! ```text
//! set_redis ──► (a name: lookup thread ──Command::RedisResolved──►) connect (non-blocking)
//!           ──► a source in the Poll ──WRITABLE──► connected: HELLO, SUBSCRIBE held topics
//! Due::Redis(n) ──► the one current timer: retry after the backoff, give up a slow connect, PING
//! readable ──► RedisLink::read ──► Core::publish (this loop's subscribers only)
//! turn end ──► RedisLink::sync (the turn's topic changes) ──► one write of everything pending
//! EOF, error, HELLO refused ──► down: publishes dropped and counted; Due::Redis after the backoff ──► connect
//! ```

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
#[cfg(feature = "rediss")]
use std::sync::Arc;
use std::time::Duration;

use log::{debug, info, warn};
use mio::net::TcpStream;
use mio::Interest;
#[cfg(feature = "rediss")]
use rustls::pki_types::ServerName;

use super::core::Core;
use super::handle::Command;
use super::source::SourceId;
use super::timers::Due;
use super::{Handler, Server};
use crate::backplane::{LinkEvent, LinkState, LinkStats, RedisConfig, RedisLink};
use crate::proto::message::Broadcast;
use crate::proto::time;

/// Reads from Redis per turn before the clients get theirs again.
const READS_PER_TURN: usize = 16;

/// The connection to Redis: its socket, and rustls's client over it for
/// `rediss://` (records in and out of the socket here, the protocol's
/// bytes in and out of rustls).
struct Conn {
    stream: TcpStream,
    id: SourceId,
    #[cfg(feature = "rediss")]
    tls: Option<Box<rustls::ClientConnection>>,
}

impl Conn {
    /// Reads what Redis sent (decrypted): `Ok(0)` at its end,
    /// `WouldBlock` when the socket has nothing more.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(feature = "rediss")]
        if let Some(tls) = &mut self.tls {
            loop {
                match tls.reader().read(buf) {
                    Ok(n) => return Ok(n), // 0: close_notify
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                if tls.read_tls(&mut self.stream)? == 0 {
                    return Ok(0);
                }
                if let Err(e) = tls.process_new_packets() {
                    // The alert that says why, for Redis's log.
                    let _ = tls.write_tls(&mut self.stream);
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("TLS: {e}"),
                    ));
                }
            }
        }
        self.stream.read(buf)
    }

    /// Writes (encrypts) a prefix of `data` and returns its length;
    /// `WouldBlock` when the socket takes nothing now, `Ok(0)` when there
    /// is nothing to write (no data, no record waiting).
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        #[cfg(feature = "rediss")]
        if let Some(tls) = &mut self.tls {
            let mut taken = 0;
            loop {
                while tls.wants_write() {
                    match tls.write_tls(&mut self.stream) {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(_) => {}
                        // What rustls took is taken (given again, it
                        // would be sent twice); the records wait for the
                        // socket's WRITABLE edge, an error comes back at
                        // the next call.
                        Err(_) if taken > 0 => return Ok(taken),
                        Err(e) => return Err(e),
                    }
                }
                if taken > 0 || data.is_empty() {
                    return Ok(taken);
                }
                // rustls holds at most its buffer limit (64 KiB) of
                // records and, before the handshake is done, of plaintext.
                taken = tls.writer().write(data)?;
                if taken == 0 {
                    // Full, and nothing to send: the handshake waits for
                    // Redis, whose answer is read (and brings us back).
                    return Err(io::ErrorKind::WouldBlock.into());
                }
            }
        }
        if data.is_empty() {
            return Ok(0);
        }
        self.stream.write(data)
    }
}

/// The backplane's state on one loop.
pub(super) struct Redis {
    pub(super) link: RedisLink,
    config: RedisConfig,
    /// The host as an address, when it is one (no lookup needed).
    literal: Option<IpAddr>,
    /// The addresses the host had at its last lookup (tried in turn).
    addrs: Vec<SocketAddr>,
    next_addr: usize,
    /// A lookup is running on a thread of its own.
    resolving: bool,
    conn: Option<Conn>,
    /// For `rediss://`: the client configuration and the name checked
    /// against Redis's certificate, or why there are none (each connection
    /// attempt fails with it).
    #[cfg(feature = "rediss")]
    tls: Option<Result<(Arc<rustls::ClientConfig>, ServerName<'static>), String>>,
    /// The TCP connect has not completed yet.
    connecting: bool,
    backoff: Duration,
    /// Connections given up since the link was last up.
    failures: u32,
    /// The link came up before: the next time it does is a reconnect.
    was_up: bool,
    reconnects: u64,
    /// The timer that counts (`Due::Redis` carries it; older ones are
    /// stale): a retry, a connect deadline, or the next `PING`.
    timer: u32,
    /// Topics that gained their first subscriber here or lost their last
    /// this turn (netted at the turn's end).
    pub(super) changed: Vec<Box<str>>,
    /// Reading stopped with bytes maybe left: read again next turn.
    pub(super) more: bool,
    /// Why connections failed since the link was last up, as logged (a
    /// new reason is a warning; a repeated one waits for the tenth
    /// attempt at the longest backoff).
    reasons: Vec<String>,
    /// Drops and errors reported so far (the log says when they pass a
    /// power of two).
    dropped_logged: u64,
    errors_logged: u64,
}

/// The backplane's counters ([`Stats::redis`](crate::Stats::redis)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStats {
    /// Whether the link is up (connected and `HELLO` answered).
    pub up: bool,
    /// Times the link came up again after it had been up.
    pub reconnects: u64,
    /// Connections given up (refused, timed out, closed, `HELLO` refused,
    /// no `PONG`) since the link was last up.
    pub failures: u32,
    /// The protocol's counters: published, received, dropped, unconfirmed.
    pub link: LinkStats,
}

impl Redis {
    pub(super) fn stats(&self) -> RedisStats {
        RedisStats {
            up: self.link.state() == LinkState::Up,
            reconnects: self.reconnects,
            failures: self.failures,
            link: self.link.stats(),
        }
    }

    /// Counts a publish the link dropped, and says so now and then.
    pub(super) fn dropped(&mut self) {
        let dropped = self.link.stats().dropped;
        if dropped.is_power_of_two() && dropped > self.dropped_logged {
            self.dropped_logged = dropped;
            let why = match self.link.state() {
                LinkState::Down => "the link is down",
                _ => "too many bytes wait for Redis",
            };
            warn!("redis: publish not sent to other processes ({why}): {dropped} dropped so far");
        }
    }

    /// rustls's client for the next connection (`None`: plain TCP), or
    /// why there can be none.
    #[cfg(feature = "rediss")]
    fn new_tls(&self) -> Result<Option<Box<rustls::ClientConnection>>, String> {
        let Some(tls) = &self.tls else {
            return Ok(None);
        };
        let (config, name) = tls.clone()?;
        rustls::ClientConnection::new(config, name)
            .map(|c| Some(Box::new(c)))
            .map_err(|e| format!("TLS: {e}"))
    }

    /// Arms the backplane's one timer `after` from `now`.
    fn arm(&mut self, timers: &mut super::timers::Timers, now: time::Stamp, after: Duration) {
        self.timer = self.timer.wrapping_add(1);
        timers.push(time::after(now, after), Due::Redis(self.timer));
    }
}

impl<D> Core<D> {
    /// A topic gained its first subscriber here or lost its last.
    pub(super) fn topic_changed(&mut self, topic: &str) {
        if let Some(r) = &mut self.redis {
            r.changed.push(topic.into());
        }
    }

    /// Sends a publish made here to the other processes.
    pub(super) fn relay(&mut self, topic: &str, msg: crate::Message<'_>) {
        if let Some(r) = &mut self.redis {
            if !r.link.publish(self.backplane_id, topic, msg) {
                r.dropped();
            }
        }
    }
}

impl<H: Handler> Server<H> {
    /// Shares topics with every process on the same Redis (see
    /// [`backplane`](crate::backplane)): publishes also go to Redis, and
    /// this loop subscribes to the topics its clients hold. Connects in the
    /// background: until the link is up the server serves its own clients,
    /// and it retries with backoff whenever the link is down. A host name
    /// is looked up again before each connection, on a short-lived thread
    /// (the loop never waits for DNS). With linked loops, call it on every
    /// loop (each has its own connection).
    pub fn set_redis(&mut self, config: RedisConfig) {
        if let Some(old) = self.core.redis.take() {
            self.drop_conn(old);
        }
        #[cfg(feature = "rediss")]
        let tls = config.tls.as_ref().map(|tls| {
            let name = ServerName::try_from(config.host.clone()).map_err(|e| {
                format!(
                    "TLS: {:?} is not a name to check a certificate for: {e}",
                    config.host
                )
            })?;
            let client = tls.client_config().map_err(|e| format!("TLS: {e}"))?;
            Ok((client, name))
        });
        #[cfg(feature = "rediss")]
        if let Some(Err(why)) = &tls {
            log::error!("redis: {why}: the link cannot come up");
        }
        self.core.redis = Some(Box::new(Redis {
            #[cfg(feature = "rediss")]
            tls,
            link: RedisLink::new(&config),
            backoff: config.min_backoff,
            literal: config.host.parse().ok(),
            config,
            addrs: Vec::new(),
            next_addr: 0,
            resolving: false,
            conn: None,
            connecting: false,
            failures: 0,
            was_up: false,
            reconnects: 0,
            timer: 0,
            changed: Vec::new(),
            more: false,
            reasons: Vec::new(),
            dropped_logged: 0,
            errors_logged: 0,
        }));
        self.redis_connect();
    }

    fn drop_conn(&mut self, mut r: Box<Redis>) {
        if let Some(mut conn) = r.conn.take() {
            let _ = self.core.deregister(conn.id, &mut conn.stream);
        }
    }

    /// Whether `key` is the backplane's source slot.
    pub(super) fn is_redis(&self, key: usize) -> bool {
        let Some(r) = &self.core.redis else {
            return false;
        };
        r.conn.as_ref().is_some_and(|c| c.id.key as usize == key)
    }

    /// Makes the next connection: to the host's address, or, for a name,
    /// after a lookup on a thread of its own (its answer comes back as a
    /// command, `redis_resolved`).
    pub(super) fn redis_connect(&mut self) {
        let Some(r) = self.core.redis.as_mut() else {
            return;
        };
        if r.conn.is_some() || r.resolving {
            return;
        }
        #[cfg(feature = "rediss")]
        if let Some(Err(why)) = &r.tls {
            let why = why.clone();
            return self.redis_down(&why);
        }
        if let Some(ip) = r.literal {
            let addr = SocketAddr::new(ip, r.config.port);
            return self.redis_connect_to(addr);
        }
        r.resolving = true;
        let (host, port) = (r.config.host.clone(), r.config.port);
        let inbox = self.core.commands.inbox();
        let looked_up = std::thread::Builder::new()
            .name("wsloop-redis-dns".into())
            .spawn(move || {
                let addrs = (host.as_str(), port)
                    .to_socket_addrs()
                    .map(|a| a.collect::<Vec<_>>())
                    .map_err(|e| e.to_string());
                // A loop that is gone needs no answer.
                let _ = inbox.push(Command::RedisResolved(addrs));
            });
        if let Err(e) = looked_up {
            self.redis_resolved(Err(format!("no thread for the lookup: {e}")));
        }
    }

    /// The host's lookup answered: connect to its next address (the last
    /// ones known when it failed, if any).
    pub(super) fn redis_resolved(&mut self, addrs: Result<Vec<SocketAddr>, String>) {
        let Some(r) = self.core.redis.as_mut() else {
            return;
        };
        r.resolving = false;
        let why = match addrs {
            Ok(addrs) if !addrs.is_empty() => {
                r.addrs = addrs;
                None
            }
            Ok(_) => Some(format!("{} has no address", r.config.host)),
            Err(e) => Some(format!("cannot resolve {}: {e}", r.config.host)),
        };
        if r.addrs.is_empty() {
            return self.redis_down(&why.unwrap_or_default());
        }
        if let Some(why) = why {
            debug!("redis: {why}; trying the addresses it had");
        }
        let addr = r.addrs[r.next_addr % r.addrs.len()];
        r.next_addr += 1;
        self.redis_connect_to(addr);
    }

    fn redis_connect_to(&mut self, addr: SocketAddr) {
        let Some(mut r) = self.core.redis.take() else {
            return;
        };
        #[cfg(feature = "rediss")]
        let tls = match r.new_tls() {
            Ok(tls) => tls,
            Err(why) => {
                self.core.redis = Some(r);
                return self.redis_down(&why);
            }
        };
        let started = TcpStream::connect(addr).and_then(|mut stream| {
            let id = self
                .core
                .register(&mut stream, Interest::READABLE | Interest::WRITABLE)?;
            Ok(Conn {
                stream,
                id,
                #[cfg(feature = "rediss")]
                tls,
            })
        });
        match started {
            Ok(conn) => {
                debug!("redis: connecting to {addr}");
                r.conn = Some(conn);
                r.connecting = true;
                let held: Vec<&str> = self.core.topics.names().collect();
                let (user, password) = (r.config.user.clone(), r.config.password.clone());
                r.link.connect(user.as_deref(), password.as_deref(), held);
                r.changed.clear(); // all of them were just subscribed
                let deadline = r.config.connect_timeout;
                let now = self.core.stamp();
                r.arm(&mut self.core.timers, now, deadline);
                self.core.redis = Some(r);
            }
            Err(e) => {
                self.core.redis = Some(r);
                self.redis_down(&format!("cannot connect to {addr}: {e}"));
            }
        }
    }

    /// The link failed: close it, count it, and try again after the
    /// backoff.
    fn redis_down(&mut self, why: &str) {
        let Some(mut r) = self.core.redis.take() else {
            return;
        };
        if let Some(mut conn) = r.conn.take() {
            let _ = self.core.deregister(conn.id, &mut conn.stream);
        }
        let was = r.link.state();
        r.link.disconnect();
        r.connecting = false;
        r.more = false;
        r.failures += 1;
        let wait = r.backoff;
        r.backoff = (r.backoff * 2).min(r.config.max_backoff);
        // A reason not seen since the link was up is said at once (a
        // refused first address, then a certificate that does not check
        // out), within a few, so that addresses taken in turn do not
        // repeat theirs at every attempt.
        let new = !r.reasons.iter().any(|seen| seen == why) && r.reasons.len() < 8;
        if new {
            r.reasons.push(why.to_owned());
        }
        if was == LinkState::Up || new {
            warn!("redis: {why}; serving this process's clients alone, retrying in {wait:?}");
        } else if wait == r.config.max_backoff && r.failures % 10 == 0 {
            // At the longest wait: once in a while, not every attempt.
            warn!("redis: still down after {} attempts: {why}", r.failures);
        } else {
            debug!("redis: {why}; retrying in {wait:?}");
        }
        let now = self.core.stamp();
        r.arm(&mut self.core.timers, now, wait);
        self.core.redis = Some(r);
    }

    /// The backplane's timer, if it is the current one: a retry, a connect
    /// that took too long, or the next `PING` (and the last one's answer).
    pub(super) fn redis_timer(&mut self, timer: u32) {
        let now = self.core.stamp();
        let Some(r) = self.core.redis.as_mut().filter(|r| r.timer == timer) else {
            return;
        };
        match (r.conn.is_some(), r.link.state()) {
            (false, _) => self.redis_connect(),
            (true, LinkState::Up) => {
                let every = r.config.ping_interval;
                if r.link.ping() {
                    r.arm(&mut self.core.timers, now, every);
                    self.redis_write();
                } else {
                    self.redis_down(&format!("no answer to PING within {every:?}"));
                }
            }
            (true, _) => {
                let within = r.config.connect_timeout;
                self.redis_down(&format!("not connected within {within:?}"));
            }
        }
    }

    /// Readiness of the backplane's socket.
    pub(super) fn redis_event(&mut self, event: &mio::event::Event) {
        let connecting = self.core.redis.as_ref().is_some_and(|r| r.connecting);
        if connecting {
            match self.redis_connected() {
                Ok(true) => self.redis_write(),
                Ok(false) => return, // not yet
                Err(e) => return self.redis_down(&e),
            }
        } else if event.is_writable() {
            self.redis_write();
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.redis_read();
        }
    }

    /// Whether the non-blocking connect has completed.
    fn redis_connected(&mut self) -> Result<bool, String> {
        let Some(r) = self.core.redis.as_mut() else {
            return Ok(false);
        };
        let Some(Conn { stream, .. }) = &r.conn else {
            return Ok(false);
        };
        if let Ok(Some(e)) | Err(e) = stream.take_error() {
            return Err(format!("cannot connect: {e}"));
        }
        match stream.peer_addr() {
            Ok(addr) => {
                debug!("redis: connected to {addr}");
                let _ = stream.set_nodelay(true);
                r.connecting = false;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(format!("cannot connect: {e}")),
        }
    }

    /// Reads what Redis sent and hands its messages to this loop's topics.
    pub(super) fn redis_read(&mut self) {
        let Some(mut r) = self.core.redis.take() else {
            return;
        };
        r.more = false;
        let mut failed = None;
        let mut scratch = std::mem::take(&mut self.scratch);
        for i in 0..READS_PER_TURN {
            let Some(conn) = r.conn.as_mut().filter(|_| !r.connecting) else {
                break;
            };
            let n = match conn.read(&mut scratch) {
                Ok(0) => {
                    failed = Some("Redis closed the connection".to_owned());
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    failed = Some(format!("read failed: {e}"));
                    break;
                }
            };
            let core = &mut self.core;
            let origin = core.backplane_id;
            let mut up = false;
            let mut last_error = None;
            let read = r.link.read(origin, &scratch[..n], |event| match event {
                LinkEvent::Message { topic, msg } => {
                    core.publish(topic, &mut Broadcast::new(msg));
                }
                LinkEvent::Up => up = true,
                LinkEvent::Refused(why) => failed = Some(format!("HELLO refused: {why}")),
                LinkEvent::Error(why) => last_error = Some(why),
            });
            if up {
                if r.was_up {
                    r.reconnects += 1;
                }
                let after = match (r.was_up, r.failures) {
                    (true, _) => " again".to_owned(),
                    (false, 0) => String::new(),
                    (false, n) => format!(" after {n} failed attempts"),
                };
                info!(
                    "redis: link up ({}:{}){after}",
                    r.config.host, r.config.port
                );
                r.was_up = true;
                r.failures = 0;
                r.reasons.clear();
                r.backoff = r.config.min_backoff;
                let every = r.config.ping_interval;
                let now = self.core.stamp();
                r.arm(&mut self.core.timers, now, every);
            }
            let errors = r.link.stats().errors;
            if errors.is_power_of_two() && errors > r.errors_logged {
                r.errors_logged = errors;
                if let Some(why) = &last_error {
                    warn!("redis: a command failed: {why} ({errors} errors so far)");
                }
            }
            if let Err(e) = read {
                failed = Some(e.to_string());
            }
            if failed.is_some() {
                break;
            }
            if i + 1 == READS_PER_TURN {
                r.more = true; // come back next turn
            }
            // A flood from Redis is bounded like any other fan-out: past
            // the turn's budget, what is queued goes out before reading on.
            if self.core.queued_turn > super::core::TURN_QUEUE_BUDGET {
                self.core.redis = Some(r);
                self.scratch = std::mem::take(&mut scratch);
                self.flush_if_over_budget();
                scratch = std::mem::take(&mut self.scratch);
                // Invariant: nothing in a flush takes the backplane away
                // (a failed write closes its connection, not the backplane).
                r = self.core.redis.take().expect("the backplane stays");
            }
        }
        self.scratch = scratch;
        #[cfg(feature = "rediss")]
        let tls = r.conn.as_ref().is_some_and(|c| c.tls.is_some());
        self.core.redis = Some(r);
        if let Some(why) = failed {
            return self.redis_down(&why);
        }
        // What was read may have moved the handshake on: its records, and
        // the commands rustls held until it was done, go out now.
        #[cfg(feature = "rediss")]
        if tls {
            self.redis_write();
        }
    }

    /// The turn's end: subscriptions brought in line, and everything
    /// pending written in one go.
    pub(super) fn redis_flush(&mut self) {
        let Some(r) = self.core.redis.as_mut() else {
            return;
        };
        if !r.changed.is_empty() {
            let changed = std::mem::take(&mut r.changed);
            let topics = &self.core.topics;
            r.link
                .sync(changed.iter().map(|t| (&**t, topics.find(t).is_some())));
        }
        self.redis_write();
    }

    /// Writes what is pending until the socket takes no more (the
    /// `WRITABLE` edge brings the loop back for the rest).
    fn redis_write(&mut self) {
        let Some(r) = self.core.redis.as_mut() else {
            return;
        };
        let mut failed = None;
        while let Some(conn) = r.conn.as_mut().filter(|_| !r.connecting) {
            // Through TLS, called with nothing pending too: records may
            // wait (the handshake's, after a read).
            match conn.write(r.link.pending()) {
                Ok(0) => break,
                Ok(n) => r.link.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failed = Some(format!("write failed: {e}"));
                    break;
                }
            }
        }
        if let Some(why) = failed {
            self.redis_down(&why);
        }
    }
}
