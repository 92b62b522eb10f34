//! A WebSocket load generator on one mio loop (single-threaded: pin it to
//! one core with `taskset`), built on wsloop's sans-I/O `Connection` in the
//! client role. `scripts/bench` drives it against wsloop and its peers.
//!
//! ```text
//! cargo run --release --example loadgen -- echo --url ws://127.0.0.1:8080/echo \
//!     -c 100 -d 1 -s 16 -t 10 --server-pid PID
//! ```
//!
//! Modes: `echo`, `idle`, `handshake`, `broadcast`, `ticks` (`loadgen
//! --help`); `echo` and `idle` speak permessage-deflate with `--deflate`.
//! Every run goes through the same phases:
//!
//! ```text
//! Setup ──all open──► Warmup ──W s──► Measure ──T s──► Drain ──► Closing ──► End
//!  (connect, upgrade)        (server CPU, own CPU, counters and the latency
//!                             histogram are read at both ends of Measure)
//! ```
//!
//! The headline is work per **server CPU-second** (utime + stime of
//! `/proc/PID/stat` over the window), which stays honest when the load
//! generator, not the server, is the bottleneck; the load generator's own
//! CPU is reported too, and a run where it used more than 90 % of a core
//! is marked client-limited.

mod args;
mod hist;
mod net;
mod procfs;

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use wsloop::proto::deflate::Deflater;
use wsloop::proto::frame::FrameHeader;
use wsloop::proto::{Connection, OpCode, Role};
use wsloop::{Config, Message};

use args::{Mode, Opts, Payload, USAGE};
use hist::Hist;
use net::{Client, Handler, Readable, State, Upgrade};

/// Low bits of a token: the slot; high bits: the slot's generation, so an
/// event for a socket that was replaced in the same batch is ignored.
const IDX_BITS: u32 = 24;
const IDX_MASK: usize = (1 << IDX_BITS) - 1;
/// How long the end of a run waits for answers and for close handshakes.
const DRAIN: Duration = Duration::from_secs(5);
/// Prepared upgrade requests (keys) cycled through.
const KEYS: usize = 64;
/// Bytes of different messages `--payload chat` sends in turn: twice the
/// largest deflate window, so that a server with context takeover never
/// finds a whole earlier message in its window (only words and JSON keys,
/// as with real chat).
const CHAT_BYTES: usize = 64 * 1024;
/// The client's permessage-deflate offers: echo promises to compress
/// without context (its frames are compressed once, ahead of the run);
/// idle offers what browsers do, so the server may keep a decompressor.
const OFFER_ECHO: &str = "permessage-deflate; client_no_context_takeover; client_max_window_bits";
const OFFER_IDLE: &str = "permessage-deflate; client_max_window_bits";

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let opts = match Opts::parse(&argv) {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    match run(opts) {
        Ok(report) => {
            print!("{}", report.human);
            println!("{}", report.json);
            if report.errors > 0 {
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

struct Slot {
    gen: usize,
    client: Option<Client>,
}

struct Net {
    poll: Poll,
    slots: Vec<Slot>,
    config: Config,
    /// The servers: connection `i` goes to `addrs[i % len]`.
    addrs: Vec<std::net::SocketAddr>,
    /// wss://: the TLS client configuration and the server's name.
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
}

impl Net {
    /// Starts a connection in slot `idx`, replacing whatever was there.
    fn connect(&mut self, idx: usize, upgrade: Upgrade, now: Instant) -> Result<(), String> {
        let addr = self.addrs[idx % self.addrs.len()];
        self.connect_to(idx, addr, upgrade, now)
    }

    /// Starts a connection to `addr` in slot `idx`.
    fn connect_to(
        &mut self,
        idx: usize,
        addr: std::net::SocketAddr,
        upgrade: Upgrade,
        now: Instant,
    ) -> Result<(), String> {
        let slot = &mut self.slots[idx];
        slot.client = None;
        slot.gen += 1;
        let mut stream =
            TcpStream::connect(addr).map_err(|e| format!("connect: {}", net::io_kind(&e)))?;
        let token = Token((slot.gen << IDX_BITS) | idx);
        self.poll
            .registry()
            .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| format!("register: {e}"))?;
        let stream = match &self.tls {
            Some((config, name)) => {
                let conn = rustls::ClientConnection::new(Arc::clone(config), name.clone())
                    .map_err(|e| format!("TLS: {e}"))?;
                net::Stream::Tls(Box::new((stream, conn)))
            }
            None => net::Stream::Plain(stream),
        };
        slot.client = Some(Client::new(stream, upgrade, &self.config, now));
        Ok(())
    }

    fn live(&self) -> usize {
        self.slots.iter().filter(|s| s.client.is_some()).count()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Setup,
    Warmup,
    Measure,
    Drain,
    Closing,
    End,
}

/// Readings at one end of the measured window.
#[derive(Debug, Clone, Copy)]
struct Mark {
    at: Instant,
    total: u64,
    rx_bytes: u64,
    server_cpu: Option<u64>,
    own_cpu: Option<u64>,
    rss_kib: Option<u64>,
    /// Server and children, PSS (idle mode only).
    tree_pss_kib: Option<u64>,
}

/// The broadcast mode's bookkeeping: the sender is slot `receivers`.
struct Broadcast {
    receivers: usize,
    /// Receivers still connected: a message is complete when this many
    /// have it.
    alive: usize,
    sender_launched: bool,
    sender_open: bool,
    /// Receivers that saw the sender's `s joined` notice (all of them:
    /// every join notice before it was delivered, the backlog is gone).
    joined_seen: usize,
    sent: u64,
    completed: u64,
    /// Per message in flight (`seq % depth`): receivers that have it, and
    /// when it was sent.
    have: Vec<usize>,
    sent_at: Vec<Instant>,
    next_seq: Vec<u64>,
    filler: Vec<u8>,
    notices: u64,
    text: String,
}

struct Logic {
    o: Opts,
    phase: Phase,
    phase_until: Instant,
    measuring: bool,
    /// Work done so far (echoes, handshakes, deliveries; pings when idle).
    total: u64,
    hist: Hist,
    errors: u64,
    error_kinds: BTreeMap<String, u64>,
    /// Connections started and opened during the setup, and set-ups in
    /// progress.
    launched: usize,
    opened: usize,
    pending: usize,
    setup_deadline: Instant,
    // echo (and idle with --deflate): the messages the ring's frames carry
    payloads: Vec<Vec<u8>>,
    in_flight: Vec<VecDeque<Instant>>,
    /// Average size of the data frames sent, on the wire.
    frame_bytes: usize,
    /// Bytes read from the server, all connections.
    rx_bytes: u64,
    unanswered: u64,
    // handshake
    reconnect: Vec<usize>,
    // broadcast
    bc: Option<Broadcast>,
    // idle (pings are answered in every mode; idle counts them)
    pings: u64,
    // ticks: each connection's last sequence number (u64::MAX: none yet),
    // and the sequence numbers skipped (ticks the server never sent us)
    tick_seq: Vec<u64>,
    tick_gaps: u64,
    /// The end of the setup (every connection open, and for broadcast
    /// joined): seconds since the start, and the server's VmRSS and
    /// VmHWM (KiB) at that moment.
    joined: Option<(f64, Option<u64>, Option<u64>)>,
    /// Connections still not closed when the run ended.
    close_timeouts: usize,
    /// Prepared upgrade requests, used in turn.
    upgrades: Vec<Upgrade>,
    next_upgrade: usize,
    // reporting
    start: Instant,
    rss_base: Option<u64>,
    /// Server and children, PSS before the first connection (idle mode).
    pss_base: Option<u64>,
    window: Option<(Mark, Mark)>,
    window_start: Option<Mark>,
    next_sec: Instant,
    sec_total: u64,
    per_second: Vec<u64>,
    aborted: Option<String>,
    closing_started: bool,
}

impl Logic {
    fn error(&mut self, what: impl Into<String>) {
        self.errors += 1;
        *self.error_kinds.entry(what.into()).or_insert(0) += 1;
    }

    fn upgrade(&mut self) -> Upgrade {
        self.next_upgrade = (self.next_upgrade + 1) % self.upgrades.len();
        self.upgrades[self.next_upgrade].clone()
    }

    fn mark(&self, now: Instant) -> Mark {
        Mark {
            at: now,
            total: self.total,
            rx_bytes: self.rx_bytes,
            server_cpu: self
                .o
                .server_pid
                .and_then(procfs::tree_cpu_ticks)
                .map(|first| {
                    let more = self
                        .o
                        .more_pids
                        .iter()
                        .filter_map(|&p| procfs::tree_cpu_ticks(p));
                    first + more.sum::<u64>()
                }),
            own_cpu: procfs::cpu_ticks(None),
            rss_kib: self.o.server_pid.and_then(procfs::rss_kib),
            tree_pss_kib: self
                .o
                .server_pid
                .filter(|_| self.o.mode == Mode::Idle)
                .and_then(procfs::tree_pss_kib),
        }
    }

    fn unit(&self) -> &'static str {
        match self.o.mode {
            Mode::Echo => "echoes",
            Mode::Idle => "pings",
            Mode::Handshake => "handshakes",
            Mode::Broadcast => "deliveries",
            Mode::Ticks => "ticks",
        }
    }

    fn enter(&mut self, phase: Phase, now: Instant, lasting: Duration) {
        self.phase = phase;
        self.phase_until = now + lasting;
    }

    fn abort(&mut self, why: String, now: Instant) {
        if self.aborted.is_none() {
            self.error(why.clone());
            self.aborted = Some(why);
        }
        self.measuring = false;
        if self.phase < Phase::Closing {
            self.enter(Phase::Closing, now, DRAIN);
            self.closing_started = false;
        }
    }

    /// How long the loop may sleep.
    fn timeout(&self, now: Instant) -> Duration {
        let until = self.phase_until.min(self.next_sec);
        until
            .saturating_duration_since(now)
            .min(Duration::from_millis(100))
    }

    /// Everything that is not a socket event: the phases, connecting, the
    /// broadcast sender, the per-second lines. False when the run is over.
    fn tick(&mut self, net: &mut Net, ring: &[Vec<u8>], now: Instant) -> bool {
        self.per_second_lines(now);
        self.broadcast_complete();
        match self.phase {
            Phase::Setup => self.setup(net, now),
            Phase::Warmup if now >= self.phase_until => {
                let mark = self.mark(now);
                self.window_start = Some(mark);
                self.hist.clear();
                self.measuring = true;
                self.next_sec = now + Duration::from_secs(1);
                self.sec_total = self.total;
                self.enter(Phase::Measure, now, self.o.duration);
            }
            Phase::Measure if now >= self.phase_until => {
                self.measuring = false;
                if let Some(start) = self.window_start.take() {
                    self.window = Some((start, self.mark(now)));
                }
                self.start_drain(net, ring, now);
            }
            Phase::Drain => self.drain(net, now),
            Phase::Closing => {
                if !self.closing_started {
                    self.closing_started = true;
                    for idx in 0..net.slots.len() {
                        if let Some(c) = net.slots[idx].client.as_mut() {
                            if c.state == State::Open {
                                c.close();
                                if let Err(e) = c.flush(ring) {
                                    self.on_failed(idx, c, e);
                                    net.slots[idx].client = None;
                                }
                            } else if c.state != State::Done {
                                net.slots[idx].client = None; // not open yet: just drop
                            }
                        }
                    }
                }
                let live = net.live();
                if self.o.mode == Mode::Broadcast {
                    // Close frames are out; wsloop's /chat answers each close
                    // with a `left` notice to everyone still there (N^2/2
                    // frames for N receivers): the server's work after the
                    // window, not worth waiting for.
                    self.phase = Phase::End;
                } else if live == 0 || now >= self.phase_until {
                    self.close_timeouts = live;
                    self.phase = Phase::End;
                }
            }
            _ => {}
        }
        if matches!(self.phase, Phase::Warmup | Phase::Measure) {
            match self.o.mode {
                Mode::Handshake => {
                    while let Some(idx) = self.reconnect.pop() {
                        self.launch(net, idx, now);
                    }
                }
                Mode::Broadcast => self.broadcast_send(net, ring, now),
                Mode::Echo | Mode::Idle | Mode::Ticks => {}
            }
        }
        self.phase != Phase::End
    }

    fn per_second_lines(&mut self, now: Instant) {
        if now < self.next_sec {
            return;
        }
        let done = self.total - self.sec_total;
        self.sec_total = self.total;
        self.next_sec += Duration::from_secs(1);
        if self.next_sec < now {
            self.next_sec = now + Duration::from_secs(1);
        }
        let label = match self.phase {
            Phase::Setup => "setup",
            Phase::Warmup => "warm-up",
            Phase::Measure => "measure",
            Phase::Drain => "drain",
            Phase::Closing | Phase::End => "closing",
        };
        if self.phase == Phase::Measure {
            self.per_second.push(done);
        }
        if !self.o.quiet {
            let t = now.duration_since(self.start).as_secs_f64();
            let extra = if self.phase == Phase::Setup {
                format!(", {} of {} connections open", self.opened, self.launched)
            } else {
                String::new()
            };
            eprintln!(
                "[{t:6.1} s] {label:8} {} {}/s{extra}",
                group(done),
                self.unit()
            );
        }
    }

    fn launch(&mut self, net: &mut Net, idx: usize, now: Instant) {
        let upgrade = self.upgrade();
        match net.connect(idx, upgrade, now) {
            Ok(()) => self.pending += 1,
            Err(e) => {
                self.error(e);
                if self.o.mode == Mode::Handshake && self.phase < Phase::Drain {
                    self.reconnect.insert(0, idx); // retry on the next tick
                }
            }
        }
    }

    fn setup(&mut self, net: &mut Net, now: Instant) {
        if self.errors > 0 {
            let first = self.error_kinds.keys().next().cloned().unwrap_or_default();
            self.abort(format!("setup failed: {first}"), now);
            return;
        }
        let target = self.o.connections;
        while self.launched < target && self.pending < self.o.connect_burst {
            let idx = self.launched;
            self.launched += 1;
            self.launch(net, idx, now);
        }
        let all_open = self.opened >= target;
        if let Some(bc) = self.bc.as_mut().filter(|b| all_open && !b.sender_launched) {
            // The receivers are in: now the sender (its slot is the last).
            bc.sender_launched = true;
            let sender = Upgrade::new(
                &self.o.url.host,
                &self.o.url.with_query("name=s"),
                &mut fastrand::Rng::new(),
            );
            if let Err(e) = net.connect_to(target, self.o.url.addr, sender, now) {
                self.abort(format!("setup failed: sender {e}"), now);
                return;
            }
            self.pending += 1;
        }
        let ready = all_open
            && self
                .bc
                .as_ref()
                .is_none_or(|b| b.sender_open && b.joined_seen >= b.receivers);
        if ready {
            let pid = self.o.server_pid;
            self.joined = Some((
                now.duration_since(self.start).as_secs_f64(),
                pid.and_then(procfs::rss_kib),
                pid.and_then(procfs::hwm_kib),
            ));
            if !self.o.quiet {
                eprintln!(
                    "[{:6.1} s] {} connections open",
                    now.duration_since(self.start).as_secs_f64(),
                    self.opened
                );
            }
            self.next_sec = now + Duration::from_secs(1);
            self.sec_total = self.total;
            self.enter(Phase::Warmup, now, self.o.warmup);
        } else if now >= self.setup_deadline {
            let why = format!(
                "setup timed out: {} of {} connections open after {:?}",
                self.opened, target, self.o.setup_timeout
            );
            self.abort(why, now);
        }
    }

    fn start_drain(&mut self, net: &mut Net, ring: &[Vec<u8>], now: Instant) {
        self.enter(Phase::Drain, now, DRAIN);
        if self.o.mode == Mode::Echo {
            for idx in 0..net.slots.len() {
                if self.in_flight[idx].is_empty() {
                    if let Some(c) = net.slots[idx].client.as_mut() {
                        c.close();
                        if let Err(e) = c.flush(ring) {
                            self.on_failed(idx, c, e);
                            net.slots[idx].client = None;
                        }
                    }
                }
            }
        }
    }

    fn drain(&mut self, net: &mut Net, now: Instant) {
        let done = match self.o.mode {
            Mode::Echo => self.in_flight.iter().all(VecDeque::is_empty),
            Mode::Handshake => net.live() == 0,
            Mode::Broadcast => self.bc.as_ref().is_none_or(|b| b.completed >= b.sent),
            Mode::Idle | Mode::Ticks => true,
        };
        if done {
            self.enter(Phase::Closing, now, DRAIN);
            self.closing_started = false;
        } else if now >= self.phase_until {
            match (self.o.mode, &self.bc) {
                (Mode::Echo, _) => {
                    let stalled = self.in_flight.iter().filter(|q| !q.is_empty()).count();
                    let left: usize = self.in_flight.iter().map(VecDeque::len).sum();
                    self.unanswered = left as u64;
                    self.error(format!(
                        "messages unanswered {DRAIN:?} after the window \
                         ({left} on {stalled} connections)"
                    ));
                }
                (Mode::Broadcast, Some(bc)) => {
                    let (seq, have, alive) = (
                        bc.completed,
                        bc.have[(bc.completed % self.o.depth as u64) as usize],
                        bc.alive,
                    );
                    self.error(format!(
                        "broadcast message {seq} reached {have} of {alive} receivers \
                         {DRAIN:?} after the window"
                    ));
                }
                _ => self.error(format!("cycles still running {DRAIN:?} after the window")),
            }
            self.enter(Phase::Closing, now, DRAIN);
            self.closing_started = false;
        }
    }

    /// Completes, in order, every broadcast message all receivers have.
    fn broadcast_complete(&mut self) {
        let depth = self.o.depth as u64;
        let Some(bc) = self.bc.as_mut() else { return };
        while bc.completed < bc.sent {
            let slot = (bc.completed % depth) as usize;
            if bc.have[slot] < bc.alive {
                break;
            }
            bc.have[slot] = 0;
            bc.completed += 1;
        }
    }

    /// Keeps `depth` broadcast messages in flight.
    fn broadcast_send(&mut self, net: &mut Net, ring: &[Vec<u8>], now: Instant) {
        let depth = self.o.depth as u64;
        let Some(bc) = self.bc.as_mut() else { return };
        let Some(sender) = net.slots[bc.receivers].client.as_mut() else {
            return;
        };
        let mut failed = None;
        while bc.sent - bc.completed < depth {
            let seq = bc.sent;
            bc.text.clear();
            let _ = write!(bc.text, "{seq:010} ");
            // The filler is ASCII.
            bc.text
                .push_str(std::str::from_utf8(&bc.filler).unwrap_or_default());
            bc.sent_at[(seq % depth) as usize] = now;
            bc.sent += 1;
            if let Err(e) = sender.send_now(Message::Text(&bc.text), ring) {
                failed = Some(e);
                break;
            }
        }
        if let Some(e) = failed {
            let receivers = bc.receivers;
            let sender = net.slots[receivers].client.as_mut().expect("sender");
            self.on_failed(receivers, sender, e);
            net.slots[receivers].client = None;
        }
    }
}

/// What each mode does with a client's events (called by `net::drive`).
impl Handler for Logic {
    fn on_open(&mut self, idx: usize, c: &mut Client, now: Instant) {
        self.pending = self.pending.saturating_sub(1);
        match self.o.mode {
            Mode::Echo => {
                self.opened += 1;
                if self.phase <= Phase::Measure {
                    c.out.frames += self.o.depth;
                    self.in_flight[idx].extend(std::iter::repeat_n(now, self.o.depth));
                }
            }
            // With --deflate a connection counts as open once it has
            // exchanged its --messages compressed messages, one at a time.
            Mode::Idle if self.o.deflate => c.out.frames += 1,
            Mode::Idle | Mode::Ticks => self.opened += 1,
            Mode::Handshake => {
                if self.measuring {
                    self.hist
                        .record(now.duration_since(c.started).as_nanos() as u64);
                }
                c.close();
            }
            Mode::Broadcast => {
                let bc = self.bc.as_mut().expect("broadcast state");
                if idx == bc.receivers {
                    bc.sender_open = true;
                } else {
                    self.opened += 1;
                }
            }
        }
    }

    fn on_message(&mut self, idx: usize, c: &mut Client, text: bool, data: &[u8], now: Instant) {
        match self.o.mode {
            Mode::Echo => {
                let expected = &self.payloads[(c.received - 1) % self.payloads.len()];
                if text == self.o.binary || data != expected.as_slice() {
                    self.error(format!(
                        "echo differs from the message sent ({} {} bytes back)",
                        if text { "text" } else { "binary" },
                        data.len()
                    ));
                }
                let Some(sent) = self.in_flight[idx].pop_front() else {
                    self.error("message that answers nothing");
                    return;
                };
                self.total += 1;
                if self.measuring {
                    self.hist.record(now.duration_since(sent).as_nanos() as u64);
                }
                if self.phase <= Phase::Measure {
                    c.out.frames += 1;
                    self.in_flight[idx].push_back(now);
                } else if self.in_flight[idx].is_empty() {
                    c.close();
                }
            }
            Mode::Idle if self.o.deflate => {
                let expected = &self.payloads[(c.received - 1) % self.payloads.len()];
                if c.received > self.o.messages {
                    self.error("a message that answers nothing");
                } else if text == self.o.binary || data != expected.as_slice() {
                    self.error("the answer differs from the compressed message sent");
                } else if c.received < self.o.messages {
                    c.out.frames += 1; // the next one
                } else {
                    self.opened += 1;
                }
            }
            Mode::Idle | Mode::Handshake => {}
            Mode::Ticks => self.on_tick(idx, text, data),
            Mode::Broadcast => {
                let depth = self.o.depth as u64;
                let Some(bc) = self.bc.as_mut() else { return };
                if idx == bc.receivers {
                    return; // the sender's own copies and notices
                }
                let Some(rest) = data.strip_prefix(b"s: ") else {
                    if data == b"s joined" {
                        bc.joined_seen += 1;
                    } else {
                        bc.notices += 1;
                    }
                    return;
                };
                let seq = std::str::from_utf8(rest.get(..10).unwrap_or_default())
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok());
                let well_formed = rest.len() == 11 + bc.filler.len()
                    && rest[10] == b' '
                    && rest[11..] == bc.filler[..];
                let Some(seq) = seq.filter(|_| well_formed) else {
                    self.error("broadcast delivery differs from the message sent");
                    return;
                };
                if seq != bc.next_seq[idx] {
                    let expected = bc.next_seq[idx];
                    bc.next_seq[idx] = seq + 1;
                    self.error(format!(
                        "broadcast out of order or lost (got {seq}, expected {expected})"
                    ));
                    return;
                }
                bc.next_seq[idx] = seq + 1;
                if seq < bc.completed || seq >= bc.sent {
                    self.error("broadcast delivery of a message not in flight");
                    return;
                }
                let slot = (seq % depth) as usize;
                bc.have[slot] += 1;
                self.total += 1;
                if self.measuring {
                    let sent = bc.sent_at[slot];
                    self.hist.record(now.duration_since(sent).as_nanos() as u64);
                }
            }
        }
    }

    fn on_read(&mut self, n: usize) {
        self.rx_bytes += n as u64;
    }

    fn on_ping(&mut self, _idx: usize) {
        self.pings += 1;
        if self.o.mode == Mode::Idle {
            self.total += 1;
        }
    }

    fn on_close_frame(&mut self, _idx: usize, c: &mut Client, code: u16) {
        if !c.closing {
            self.error(format!("the server closed the connection with {code}"));
        }
    }

    fn on_finished(&mut self, idx: usize, _c: &mut Client, _now: Instant) {
        if self.o.mode == Mode::Handshake {
            self.total += 1;
            if self.phase <= Phase::Measure {
                self.reconnect.push(idx);
            }
        }
    }

    fn on_failed(&mut self, idx: usize, c: &mut Client, error: String) {
        if matches!(c.state, State::Connecting | State::Upgrading) {
            self.pending = self.pending.saturating_sub(1);
        }
        self.error(error);
        match self.o.mode {
            Mode::Echo => self.in_flight[idx].clear(),
            Mode::Handshake => {
                if self.phase <= Phase::Measure {
                    self.reconnect.push(idx);
                }
            }
            Mode::Broadcast => {
                let Some(bc) = self.bc.as_mut() else { return };
                if idx == bc.receivers {
                    bc.sent = bc.completed; // nothing more will complete
                    self.abort("the broadcast sender failed".into(), Instant::now());
                } else if c.state == State::Open {
                    bc.alive = bc.alive.saturating_sub(1);
                }
            }
            Mode::Idle | Mode::Ticks => {}
        }
    }
}

impl Logic {
    /// A message in `ticks` mode: `STAMP[ SEQ]`, STAMP the publisher's
    /// CLOCK_MONOTONIC in nanoseconds; its latency is our clock now minus
    /// the stamp (read here, per message: a batch read at once is stamped
    /// message by message as it is handled).
    fn on_tick(&mut self, idx: usize, text: bool, data: &[u8]) {
        let arrived = procfs::monotonic_ns();
        let mut fields = std::str::from_utf8(data)
            .unwrap_or_default()
            .split(' ')
            .map(str::parse::<u64>);
        let (stamp, seq) = match (fields.next(), fields.next()) {
            (Some(Ok(stamp)), None) if text => (stamp, None),
            (Some(Ok(stamp)), Some(Ok(seq))) if text => (stamp, Some(seq)),
            _ => {
                self.error("a message that is not a tick (STAMP[ SEQ], text)");
                return;
            }
        };
        if let Some(seq) = seq {
            let last = self.tick_seq[idx];
            if last != u64::MAX && seq <= last {
                self.error(format!("ticks out of order (got {seq} after {last})"));
            } else if last != u64::MAX {
                self.tick_gaps += seq - last - 1;
            }
            self.tick_seq[idx] = seq;
        }
        self.total += 1;
        if self.measuring {
            self.hist.record(arrived.saturating_sub(stamp));
        }
    }
}

struct Report {
    human: String,
    json: String,
    errors: u64,
}

fn run(o: Opts) -> Result<Report, String> {
    let config = Config::default();
    let now = Instant::now();
    let broadcast = o.mode == Mode::Broadcast;
    let slots = o.connections + usize::from(broadcast);
    // Upgrade keys and masks only need to differ, not to be secret.
    let mut rng = fastrand::Rng::new();
    let target = if broadcast {
        o.url.with_query("name=r")
    } else {
        o.url.target.clone()
    };
    let offer = match o.mode {
        _ if !o.deflate => None,
        Mode::Idle => Some(OFFER_IDLE),
        _ => Some(OFFER_ECHO),
    };
    let upgrades: Vec<Upgrade> = (0..KEYS)
        .map(|_| Upgrade::with_extensions(&o.url.host, &target, &mut rng, offer))
        .collect();

    // The messages, and their frames: encoded, compressed and masked once.
    let payloads = match o.payload {
        Payload::Ascii => vec![(0..o.size)
            .map(|i| {
                if o.binary {
                    (i * 7 + 13) as u8
                } else {
                    b'!' + (i % 94) as u8
                }
            })
            .collect()],
        Payload::Chat => chat_messages(o.size, CHAT_BYTES.div_ceil(o.size.max(1)).clamp(16, 1024)),
    };
    let mut ring = Vec::new();
    if o.mode == Mode::Echo || (o.mode == Mode::Idle && o.deflate) {
        for payload in &payloads {
            let frame = if o.deflate {
                compressed_frame(payload, o.binary, &mut rng)
            } else {
                plain_frame(payload, o.binary, &config)?
            };
            ring.push(frame);
        }
    }
    let frame_bytes = ring.iter().map(Vec::len).sum::<usize>() / ring.len().max(1);

    let poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
    let mut net = Net {
        poll,
        slots: (0..slots)
            .map(|_| Slot {
                gen: 0,
                client: None,
            })
            .collect(),
        config: config.clone(),
        addrs: std::iter::once(&o.url)
            .chain(&o.also)
            .map(|u| u.addr)
            .collect(),
        tls: tls_client(&o)?,
    };
    let rss_base = o.server_pid.and_then(procfs::rss_kib);
    let pss_base = o
        .server_pid
        .filter(|_| o.mode == Mode::Idle)
        .and_then(procfs::tree_pss_kib);
    if let Some(pid) = o.server_pid {
        if procfs::cpu_ticks(Some(pid)).is_none() {
            return Err(format!("cannot read /proc/{pid}/stat"));
        }
    }
    let bc = broadcast.then(|| Broadcast {
        receivers: o.connections,
        alive: o.connections,
        sender_launched: false,
        sender_open: false,
        joined_seen: 0,
        sent: 0,
        completed: 0,
        have: vec![0; o.depth],
        sent_at: vec![now; o.depth],
        next_seq: vec![0; o.connections],
        filler: (0..o.size - 11).map(|i| b'a' + (i % 26) as u8).collect(),
        notices: 0,
        text: String::with_capacity(o.size),
    });
    let mut logic = Logic {
        phase: Phase::Setup,
        phase_until: now + o.setup_timeout,
        measuring: false,
        total: 0,
        hist: Hist::new(),
        errors: 0,
        error_kinds: BTreeMap::new(),
        launched: 0,
        opened: 0,
        pending: 0,
        setup_deadline: now + o.setup_timeout,
        payloads,
        frame_bytes,
        rx_bytes: 0,
        in_flight: (0..slots).map(|_| VecDeque::new()).collect(),
        unanswered: 0,
        reconnect: Vec::new(),
        bc,
        pings: 0,
        tick_seq: vec![u64::MAX; slots],
        tick_gaps: 0,
        joined: None,
        close_timeouts: 0,
        upgrades,
        next_upgrade: 0,
        start: now,
        rss_base,
        pss_base,
        window: None,
        window_start: None,
        next_sec: now + Duration::from_secs(1),
        sec_total: 0,
        per_second: Vec::new(),
        aborted: None,
        closing_started: false,
        o,
    };
    if logic.o.mode == Mode::Handshake {
        // No setup: the slots start cycling at once.
        for idx in 0..logic.o.connections {
            logic.launch(&mut net, idx, now);
        }
        logic.enter(Phase::Warmup, now, logic.o.warmup);
    }

    let mut buf = vec![0u8; 256 * 1024];
    let mut events = Events::with_capacity(1024);
    loop {
        let timeout = logic.timeout(Instant::now());
        if let Err(e) = net.poll.poll(&mut events, Some(timeout)) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("poll: {e}"));
            }
        }
        for event in events.iter() {
            let idx = event.token().0 & IDX_MASK;
            let gen = event.token().0 >> IDX_BITS;
            let Some(slot) = net.slots.get_mut(idx) else {
                continue;
            };
            if slot.gen != gen {
                continue;
            }
            let Some(c) = slot.client.as_mut() else {
                continue;
            };
            let readable = if event.is_read_closed() || event.is_error() {
                Readable::Closed
            } else if event.is_readable() {
                Readable::Data
            } else {
                Readable::No
            };
            net::drive(c, idx, readable, &mut buf, &ring, &mut logic);
            if c.state == State::Done {
                slot.client = None;
            }
        }
        if !logic.tick(&mut net, &ring, Instant::now()) {
            break;
        }
    }
    Ok(report(&logic))
}

/// `payload` in a masked client frame, as wsloop's client role sends it.
fn plain_frame(payload: &[u8], binary: bool, config: &Config) -> Result<Vec<u8>, String> {
    let mut enc = Connection::new(Role::Client, config);
    let msg = if binary {
        Message::Binary(payload)
    } else {
        Message::Text(std::str::from_utf8(payload).map_err(|e| e.to_string())?)
    };
    enc.send(msg).map_err(|e| e.to_string())?;
    let mut frame = Vec::new();
    let q = enc.outgoing();
    while !q.is_empty() {
        let n = q.front().len();
        frame.extend_from_slice(q.front());
        q.consume(n);
    }
    Ok(frame)
}

/// `payload` compressed without context (deflate level 6, zlib's default
/// and what browsers use) in a masked frame with RSV1 (RFC 7692 §6): valid
/// to send any number of times, whatever the server keeps between
/// messages. The window is 9 bits (512 bytes, the smallest zlib
/// compresses with), so the frames honour any `client_max_window_bits`
/// the server may ask for (9 to 15).
fn compressed_frame(payload: &[u8], binary: bool, rng: &mut fastrand::Rng) -> Vec<u8> {
    let mut body = Vec::new();
    Deflater::new(9, 6, true).compress(payload, &mut body);
    let mask = rng.u32(..).to_le_bytes();
    let op = if binary { OpCode::Binary } else { OpCode::Text };
    let header = FrameHeader {
        fin: true,
        rsv: net::RSV1,
        opcode: op.as_u8(),
        mask: Some(mask),
        len: body.len() as u64,
    };
    let mut head = [0u8; wsloop::proto::frame::MAX_HEADER_LEN];
    let n = header.encode(&mut head);
    wsloop::proto::mask::apply_mask(&mut body, mask, 0);
    let mut frame = head[..n].to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// `count` different chat messages of exactly `size` bytes each: JSON
/// objects of the kind a chat sends (type, room, user, id, text) with text
/// of common words drawn from a fixed generator, so every run sends the
/// same messages. Compressible like real chat text (deflate at level 1
/// shrinks a 1 KiB one to about a third; see BENCHMARKS.md for the sizes
/// a run measured). Sizes below the JSON frame are cut (no longer JSON).
fn chat_messages(size: usize, count: usize) -> Vec<Vec<u8>> {
    const WORDS: &[&str] = &[
        "the",
        "a",
        "to",
        "and",
        "of",
        "is",
        "it",
        "you",
        "that",
        "in",
        "we",
        "for",
        "on",
        "this",
        "be",
        "can",
        "with",
        "have",
        "are",
        "not",
        "just",
        "build",
        "deploy",
        "server",
        "message",
        "review",
        "patch",
        "test",
        "tomorrow",
        "meeting",
        "thanks",
        "looks",
        "good",
        "fixed",
        "issue",
        "merge",
        "branch",
        "release",
        "latency",
        "memory",
        "client",
        "socket",
        "window",
        "deflate",
        "compress",
        "benchmark",
        "ok",
        "yes",
        "no",
        "maybe",
        "later",
        "lunch",
    ];
    let mut rng = fastrand::Rng::with_seed(0x0123_4567_89ab_cdef);
    (0..count)
        .map(|i| {
            let mut m = format!(
                "{{\"type\":\"message\",\"room\":\"general\",\"user\":\"user{:04}\",\
                 \"id\":{},\"text\":\"",
                (i * 7919) % 10_000,
                1_000_000 + i * 37
            );
            while m.len() + 2 < size {
                m.push_str(rng.choice(WORDS).unwrap());
                m.push(' ');
            }
            m.truncate(size.saturating_sub(2));
            while m.len() + 2 < size {
                m.push(' ');
            }
            m.push_str("\"}");
            m.truncate(size);
            m.into_bytes()
        })
        .collect()
}

/// 1234567 -> "1,234,567".
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn ms(nanos: u64) -> String {
    let ms = nanos as f64 / 1e6;
    if ms < 1.0 {
        format!("{ms:.3} ms")
    } else if ms < 100.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// A JSON value, written by hand.
enum J {
    Num(f64),
    Int(u64),
    Bool(bool),
    Str(String),
    Null,
    Arr(Vec<J>),
    Obj(Vec<(&'static str, J)>),
}

impl J {
    fn opt_num(v: Option<f64>) -> J {
        v.filter(|x| x.is_finite()).map_or(J::Null, J::Num)
    }

    fn opt_int(v: Option<u64>) -> J {
        v.map_or(J::Null, J::Int)
    }

    fn write(&self, out: &mut String) {
        match self {
            J::Num(x) if x.is_finite() => {
                let _ = write!(out, "{}", (x * 1000.0).round() / 1000.0);
            }
            J::Num(_) | J::Null => out.push_str("null"),
            J::Int(n) => {
                let _ = write!(out, "{n}");
            }
            J::Bool(b) => {
                let _ = write!(out, "{b}");
            }
            J::Str(s) => {
                out.push('"');
                for ch in s.chars() {
                    match ch {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        c if (c as u32) < 0x20 => {
                            let _ = write!(out, "\\u{:04x}", c as u32);
                        }
                        c => out.push(c),
                    }
                }
                out.push('"');
            }
            J::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            J::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    J::Str((*k).to_owned()).write(out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

fn report(l: &Logic) -> Report {
    let o = &l.o;
    let ticks = procfs::clock_ticks() as f64;
    let mut h = String::new();
    let mut j: Vec<(&'static str, J)> = vec![
        ("mode", J::Str(o.mode.to_string())),
        ("url", J::Str(o.url.text.clone())),
        (
            "also_urls",
            J::Arr(o.also.iter().map(|u| J::Str(u.text.clone())).collect()),
        ),
        ("connections", J::Int(o.connections as u64)),
    ];
    let what = match o.mode {
        Mode::Echo => format!(
            "{} connections x {} in flight, {} B {}",
            o.connections,
            o.depth,
            o.size,
            if o.binary { "binary" } else { "text" }
        ),
        Mode::Idle if o.deflate => format!(
            "{} idle connections, each after {} compressed echoes",
            o.connections, o.messages
        ),
        Mode::Idle => format!("{} idle connections", o.connections),
        Mode::Handshake => format!("{} slots of connect, upgrade, close", o.connections),
        Mode::Broadcast => format!(
            "{} receivers, 1 sender, {} messages of {} B in flight",
            o.connections, o.depth, o.size
        ),
        Mode::Ticks => format!("{} connections receiving stamped ticks", o.connections),
    };
    let _ = writeln!(h, "{} {}: {what}", o.mode, o.url.text);
    if matches!(o.mode, Mode::Echo | Mode::Broadcast) {
        j.push(("depth", J::Int(o.depth as u64)));
        j.push(("size", J::Int(o.size as u64)));
        j.push(("binary", J::Bool(o.binary)));
    }
    if o.mode == Mode::Echo || o.deflate {
        let payload = match o.payload {
            Payload::Ascii => "ascii",
            Payload::Chat => "chat",
        };
        let _ = writeln!(
            h,
            "  messages    {} {payload} of {} B, {}: {} B frames on the wire (average)",
            l.payloads.len(),
            o.size,
            if o.deflate {
                "permessage-deflate"
            } else {
                "uncompressed"
            },
            l.frame_bytes
        );
        j.extend([
            ("payload", J::Str(payload.to_owned())),
            ("deflate", J::Bool(o.deflate)),
            ("frame_bytes", J::Int(l.frame_bytes as u64)),
        ]);
        if o.mode == Mode::Idle {
            j.push(("messages", J::Int(o.messages as u64)));
        }
    }
    j.push(("warmup_s", J::Num(o.warmup.as_secs_f64())));
    let unit = l.unit();
    if let Some((a, b)) = l.window {
        let secs = b.at.duration_since(a.at).as_secs_f64();
        let count = b.total - a.total;
        let rate = count as f64 / secs;
        let server_cpu = a
            .server_cpu
            .zip(b.server_cpu)
            .map(|(x, y)| y.saturating_sub(x) as f64 / ticks);
        let own_cpu = a
            .own_cpu
            .zip(b.own_cpu)
            .map(|(x, y)| y.saturating_sub(x) as f64 / ticks);
        let per_cpu = server_cpu.filter(|&c| c > 0.0).map(|c| count as f64 / c);
        let client_limited = own_cpu.is_some_and(|c| c / secs > 0.9);
        let label = if o.mode == Mode::Idle {
            "held"
        } else {
            "window"
        };
        let _ = writeln!(
            h,
            "  {label:11} {secs:.2} s after {:.1} s",
            o.warmup.as_secs_f64()
        );
        let (min, max) = (
            l.per_second.iter().min().copied(),
            l.per_second.iter().max().copied(),
        );
        let spread = match (min, max) {
            (Some(lo), Some(hi)) => format!("; per second {} to {}", group(lo), group(hi)),
            _ => String::new(),
        };
        let _ = writeln!(
            h,
            "  {unit:11} {} ({}/s{spread})",
            group(count),
            group(rate as u64)
        );
        if l.hist.total() > 0 {
            let what = match o.mode {
                Mode::Handshake => "upgrade",
                Mode::Broadcast => "delivery",
                Mode::Ticks => "tick",
                _ => "round trip",
            };
            let _ = writeln!(
                h,
                "  {what:11} p50 {}  p99 {}  p99.9 {}  max {}",
                ms(l.hist.quantile(0.5)),
                ms(l.hist.quantile(0.99)),
                ms(l.hist.quantile(0.999)),
                ms(l.hist.max())
            );
        }
        match server_cpu {
            Some(cpu) => {
                let per = per_cpu.map_or_else(|| "n/a".to_owned(), |p| group(p as u64));
                let _ = writeln!(
                    h,
                    "  server CPU  {cpu:.2} s ({:.0} % of a core): {per} {unit} per server CPU-second",
                    100.0 * cpu / secs
                );
            }
            None => {
                let _ = writeln!(h, "  server CPU  unknown (no --server-pid)");
            }
        }
        if let Some(cpu) = own_cpu {
            let _ = writeln!(
                h,
                "  loadgen CPU {cpu:.2} s ({:.0} % of a core){}",
                100.0 * cpu / secs,
                if client_limited {
                    ": CLIENT-LIMITED"
                } else {
                    ""
                }
            );
        }
        j.extend([
            ("duration_s", J::Num(secs)),
            ("count", J::Int(count)),
            ("rate", J::Num(rate)),
            ("server_cpu_s", J::opt_num(server_cpu)),
            ("server_cpu_util", J::opt_num(server_cpu.map(|c| c / secs))),
            ("per_server_cpu_s", J::opt_num(per_cpu)),
            ("loadgen_cpu_s", J::opt_num(own_cpu)),
            ("loadgen_cpu_util", J::opt_num(own_cpu.map(|c| c / secs))),
            ("client_limited", J::Bool(client_limited)),
            (
                "latency_us",
                if l.hist.total() > 0 {
                    J::Obj(vec![
                        ("p50", J::Num(l.hist.quantile(0.5) as f64 / 1e3)),
                        ("p99", J::Num(l.hist.quantile(0.99) as f64 / 1e3)),
                        ("p999", J::Num(l.hist.quantile(0.999) as f64 / 1e3)),
                        ("max", J::Num(l.hist.max() as f64 / 1e3)),
                        ("samples", J::Int(l.hist.total())),
                    ])
                } else {
                    J::Null
                },
            ),
            (
                "per_second",
                J::Arr(l.per_second.iter().map(|&n| J::Int(n)).collect()),
            ),
        ]);
        if o.mode == Mode::Idle {
            let n = o.connections as f64;
            let delta = |x: Option<u64>| {
                l.rss_base
                    .zip(x)
                    .map(|(base, x)| (x as f64 - base as f64) * 1024.0 / n)
            };
            let per_open = delta(a.rss_kib);
            let per_held = delta(b.rss_kib);
            let pss_per_conn = l
                .pss_base
                .zip(b.tree_pss_kib)
                .map(|(base, x)| (x as f64 - base as f64) * 1024.0 / n);
            if let (Some(held), Some(per)) = (b.tree_pss_kib, pss_per_conn) {
                let _ = writeln!(
                    h,
                    "  server and its children, PSS: {} KiB holding, {per:.0} bytes per connection",
                    group(held)
                );
            }
            if let (Some(base), Some(open), Some(held)) = (l.rss_base, a.rss_kib, b.rss_kib) {
                let _ = writeln!(
                    h,
                    "  server RSS  {} KiB before, {} KiB open, {} KiB after holding: \
                     {:.0} bytes per connection",
                    group(base),
                    group(open),
                    group(held),
                    per_held.unwrap_or(0.0)
                );
            }
            j.extend([
                ("rss_base_kib", J::opt_int(l.rss_base)),
                ("rss_open_kib", J::opt_int(a.rss_kib)),
                ("rss_held_kib", J::opt_int(b.rss_kib)),
                ("rss_per_conn_open_bytes", J::opt_num(per_open)),
                ("rss_per_conn_bytes", J::opt_num(per_held)),
                ("tree_pss_base_kib", J::opt_int(l.pss_base)),
                ("tree_pss_held_kib", J::opt_int(b.tree_pss_kib)),
                ("tree_pss_per_conn_bytes", J::opt_num(pss_per_conn)),
                ("pings", J::Int(l.pings)),
            ]);
        } else {
            j.extend([
                ("rss_base_kib", J::opt_int(l.rss_base)),
                ("rss_end_kib", J::opt_int(b.rss_kib)),
            ]);
        }
        if o.mode == Mode::Echo && count > 0 {
            // The answers' frames (and the odd ping) on the wire.
            let per = (b.rx_bytes - a.rx_bytes) as f64 / count as f64;
            let _ = writeln!(h, "  received    {per:.0} B per echo on the wire");
            j.push(("rx_bytes_per_echo", J::Num(per)));
        }
        if let Some(bc) = &l.bc {
            j.extend([
                ("messages_completed", J::Int(bc.completed)),
                ("notices", J::Int(bc.notices)),
            ]);
        }
        if o.mode == Mode::Ticks {
            if l.tick_gaps > 0 {
                let _ = writeln!(h, "  gaps        {} ticks skipped", group(l.tick_gaps));
            }
            j.push(("tick_gaps", J::Int(l.tick_gaps)));
        }
    } else {
        let _ = writeln!(h, "  no measured window");
    }
    if let Some((secs, rss, hwm)) = l.joined {
        if let (Some(rss), Some(hwm)) = (rss, hwm) {
            let _ = writeln!(
                h,
                "  all open    after {secs:.1} s; server RSS then {} KiB, its peak so far {} KiB",
                group(rss),
                group(hwm)
            );
        }
    }
    let (setup_s, rss_joined, hwm_joined) = l.joined.unwrap_or((f64::NAN, None, None));
    j.extend([
        ("setup_s", J::opt_num(Some(setup_s))),
        ("rss_after_join_kib", J::opt_int(rss_joined)),
        ("rss_peak_after_join_kib", J::opt_int(hwm_joined)),
    ]);
    let _ = writeln!(h, "  errors      {}", group(l.errors));
    for (kind, n) in &l.error_kinds {
        let _ = writeln!(h, "    {} x {kind}", group(*n));
    }
    if l.close_timeouts > 0 {
        let _ = writeln!(
            h,
            "  note        {} connections still closing after {DRAIN:?}: dropped",
            l.close_timeouts
        );
    }
    j.extend([
        ("errors", J::Int(l.errors)),
        (
            "error_kinds",
            J::Arr(
                l.error_kinds
                    .iter()
                    .map(|(k, n)| J::Arr(vec![J::Str(k.clone()), J::Int(*n)]))
                    .collect(),
            ),
        ),
        ("unanswered", J::Int(l.unanswered)),
        ("close_timeouts", J::Int(l.close_timeouts as u64)),
        ("server_pid", J::opt_int(o.server_pid.map(u64::from))),
    ]);
    let mut json = String::new();
    J::Obj(j).write(&mut json);
    Report {
        human: h,
        json,
        errors: l.errors,
    }
}

/// wss://: a rustls client that trusts `--tls-ca` only, with the server's
/// settings (aws-lc-rs, TLS 1.3 and 1.2, ALPN http/1.1); resumption only
/// with `--tls-resume`.
#[allow(clippy::type_complexity)]
fn tls_client(
    o: &Opts,
) -> Result<
    Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
    String,
> {
    use rustls::pki_types::pem::PemObject;
    if !o.url.tls {
        return Ok(None);
    }
    let ca = o
        .tls_ca
        .as_ref()
        .ok_or("a wss:// URL needs --tls-ca FILE (the CA to trust)")?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca)
        .map_err(|e| format!("--tls-ca {}: {e}", ca.display()))?
    {
        let cert = cert.map_err(|e| format!("--tls-ca {}: {e}", ca.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("--tls-ca {}: {e}", ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if !o.tls_resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    let name = rustls::pki_types::ServerName::try_from(o.url.name.clone())
        .map_err(|e| format!("{}: {e}", o.url.name))?;
    Ok(Some((Arc::new(config), name)))
}
