//! A soak test for a wsloop server's `/echo` and `/chat` routes (the
//! `wsloop` binary's): N clients for T seconds on one mio loop, with random
//! message sizes (0 B to `--max-size`), random fragmentation, pings, and
//! random disconnects (abrupt FIN or RST, or a close handshake) followed by
//! reconnects. Every message carries its client, session, sequence number,
//! length and an FNV-1a 64 checksum of its body. At the end it checks that
//! nothing a healthy client was owed went missing, and prints the server's
//! resident memory (`--server-pid`) at the start and the end.
//!
//! ```text
//! cargo run --release --example soak -- --url ws://127.0.0.1:8080 \
//!     --clients 200 --seconds 20 --server-pid PID
//! ```
//!
//! What "nothing lost" means here:
//!
//! - `/echo`: every message sent on a session that is still connected at the
//!   end comes back exactly once, in order, byte for byte (opcode, length,
//!   header and checksum), and so does every ping's pong.
//! - `/chat` (text only; the server relays `<name>: <text>` to every chat
//!   client, the sender included): a message from sender S is owed to
//!   receiver R when R's `101` had arrived before S queued the message (so
//!   the server had R in the room when it relayed it) and both are still
//!   connected at the end. Every owed message must arrive; every message R
//!   gets from S, owed or not, must be intact and come in S's order, at most
//!   once.
//!
//! Sessions that a random disconnect ended are owed nothing, but whatever
//! they received before is checked like the rest. Any close or TCP end the
//! soak did not start itself, any protocol error and any failed connect is
//! an error too. The exit status is 0 only when there was no error.

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use fastrand::Rng;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use wsloop::proto::frame::{FrameHeader, MAX_HEADER_LEN};
use wsloop::proto::handshake::accept_key;
use wsloop::proto::mask::apply_mask;
use wsloop::proto::{Connection, Event, Role};
use wsloop::{Config, Message};

const USAGE: &str = "\
soak: N WebSocket clients against a wsloop server's /echo and /chat for T seconds,
checking that every message owed to a connected client arrives exactly once, in order, intact.

USAGE: soak [OPTIONS]

  --url URL               ws://HOST:PORT of the server (a path is ignored)
  --server-addr ADDR      the same as HOST:PORT
  --clients N             client slots, each reconnecting after a disconnect [200]
  --chat-clients N        how many of them use /chat [clients/10, at most 100]
  --seconds T             how long the load runs [20]
  --max-size SIZE         largest /echo message (0 B up to it) [1MiB]
  --chat-max-size SIZE    largest /chat message [64KiB]
  --rate R                messages per second per /echo client [1]
  --chat-rate R           messages per second per /chat client [0.2]
  --ping-rate R           pings per second per client [0.2]
  --session-seconds S     mean life of a session before a random disconnect [10]
  --drain-seconds S       how long the end waits for what is owed [60]
  --seed S                random seed [from the clock]
  --server-pid PID        the server's process, for its memory (VmRSS)
  --progress S            a progress line every S seconds, 0 for none [5]
  -h, --help              this text";

/// Largest number of /echo messages a client has in flight.
const MAX_OUTSTANDING: usize = 4;
/// Largest number of /echo bytes a client has in flight (beyond one message).
const MAX_OUTSTANDING_BYTES: usize = 4 << 20;
/// How often every client's timers are looked at.
const TICK: Duration = Duration::from_millis(10);
/// How long a connect plus upgrade, or a close handshake, may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Connects started per tick while ramping up.
const CONNECTS_PER_TICK: usize = 100;
/// Low bits of a token: the slot; high bits: its generation.
const IDX_BITS: u32 = 24;
const IDX_MASK: usize = (1 << IDX_BITS) - 1;
/// Errors printed as they happen (all are counted).
const ERRORS_SHOWN: usize = 50;

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
    match Soak::new(opts).and_then(Soak::run) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

// ---------------------------------------------------------------- options

#[derive(Debug, Clone)]
struct Opts {
    addr: SocketAddr,
    host: String,
    clients: usize,
    chat_clients: usize,
    seconds: f64,
    max_size: usize,
    chat_max_size: usize,
    rate: f64,
    chat_rate: f64,
    ping_rate: f64,
    session_seconds: f64,
    drain_seconds: f64,
    seed: u64,
    server_pid: Option<u32>,
    progress: f64,
}

impl Opts {
    /// `Err("")` asks for the usage text.
    fn parse(argv: &[String]) -> Result<Opts, String> {
        let mut addr: Option<String> = None;
        let mut clients = 200usize;
        let mut chat_clients: Option<usize> = None;
        let mut seconds = 20.0;
        let mut max_size = 1 << 20;
        let mut chat_max_size = 64 << 10;
        let mut rate = 1.0;
        let mut chat_rate = 0.2;
        let mut ping_rate = 0.2;
        let mut session_seconds = 10.0;
        let mut drain_seconds = 60.0;
        let mut seed = None;
        let mut server_pid = None;
        let mut progress = 5.0;
        let mut it = argv.iter();
        while let Some(flag) = it.next() {
            if flag == "-h" || flag == "--help" {
                return Err(String::new());
            }
            let value = it
                .next()
                .ok_or_else(|| format!("{flag} needs a value"))?
                .as_str();
            let num = |v: &str| -> Result<f64, String> {
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| format!("{flag}: {v:?} is not a non-negative number"))
            };
            let int = |v: &str| -> Result<usize, String> {
                v.parse::<usize>()
                    .map_err(|_| format!("{flag}: {v:?} is not a whole number"))
            };
            match flag.as_str() {
                "--url" => {
                    let rest = value
                        .strip_prefix("ws://")
                        .ok_or_else(|| format!("--url: {value:?} does not start with ws://"))?;
                    addr = Some(rest.split('/').next().unwrap_or(rest).to_owned());
                }
                "--server-addr" => addr = Some(value.to_owned()),
                "--clients" => clients = int(value)?,
                "--chat-clients" => chat_clients = Some(int(value)?),
                "--seconds" => seconds = num(value)?,
                "--max-size" => max_size = parse_size(value).map_err(|e| format!("{flag}: {e}"))?,
                "--chat-max-size" => {
                    chat_max_size = parse_size(value).map_err(|e| format!("{flag}: {e}"))?
                }
                "--rate" => rate = num(value)?,
                "--chat-rate" => chat_rate = num(value)?,
                "--ping-rate" => ping_rate = num(value)?,
                "--session-seconds" => session_seconds = num(value)?,
                "--drain-seconds" => drain_seconds = num(value)?,
                "--seed" => seed = Some(int(value)? as u64),
                "--server-pid" => {
                    server_pid = Some(
                        value
                            .parse()
                            .map_err(|_| format!("{flag}: {value:?} is not a pid"))?,
                    )
                }
                "--progress" => progress = num(value)?,
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        let host = addr.ok_or("--url or --server-addr is required")?;
        let addr = host
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host} resolves to nothing"))?;
        if clients == 0 || clients > IDX_MASK {
            return Err(format!("--clients must be 1 to {IDX_MASK}"));
        }
        let chat_clients = chat_clients.unwrap_or((clients / 10).min(100));
        if chat_clients > clients {
            return Err("--chat-clients is more than --clients".into());
        }
        let seed = seed.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
        Ok(Opts {
            addr,
            host,
            clients,
            chat_clients,
            seconds,
            max_size,
            chat_max_size,
            rate,
            chat_rate,
            ping_rate,
            session_seconds: session_seconds.max(0.1),
            drain_seconds,
            seed,
            server_pid,
            progress,
        })
    }
}

/// `65536`, `64KiB`, `1MiB` (K/M/G and KB/MB/GB are powers of 1024 too).
fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: usize = number
        .parse()
        .map_err(|_| format!("{s:?} is not a size such as 65536, 64KiB or 1MiB"))?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}")),
    };
    value
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

// ---------------------------------------------------------------- helpers

/// An exponentially distributed wait with the given mean (seconds).
fn exp_wait(rng: &mut Rng, mean: f64) -> Duration {
    let u = 1.0 - rng.f64(); // (0, 1]
    Duration::from_secs_f64((-u.ln() * mean).min(1e6))
}

/// A wait of mean `1 / rate` seconds; far away for a zero rate.
fn wait_for_rate(rng: &mut Rng, rate: f64) -> Duration {
    if rate <= 0.0 {
        Duration::from_secs(1 << 30)
    } else {
        exp_wait(rng, 1.0 / rate)
    }
}

/// FNV-1a, 64 bits.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Resident set size of `pid` in KiB (`VmRSS` of `/proc/PID/status`).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The soft limit on open descriptors, if known (Linux).
fn fd_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Makes the next close of `stream` send a RST instead of a FIN
/// (`SO_LINGER` 0, through socket2 rather than a hand-written FFI call).
fn linger_zero(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

// ---------------------------------------------------------------- messages

/// The header that starts every message: `#client.session.seq.len.fnv|`
/// in hex, `len` the whole message's length and `fnv` the checksum of what
/// follows the header. Messages shorter than their header are "tiny": the
/// first bytes of it, compared byte for byte.
struct Header {
    client: u32,
    session: u32,
    seq: u64,
    len: usize,
    checksum: u64,
    header_len: usize,
}

fn header_text(client: u32, session: u32, seq: u64, len: usize, checksum: u64) -> String {
    format!("#{client:x}.{session:x}.{seq:x}.{len:x}.{checksum:016x}|")
}

fn parse_header(bytes: &[u8]) -> Option<Header> {
    if bytes.first() != Some(&b'#') {
        return None;
    }
    let end = bytes.iter().take(80).position(|&b| b == b'|')?;
    let text = std::str::from_utf8(&bytes[1..end]).ok()?;
    let mut f = text.split('.');
    let mut hex = || u64::from_str_radix(f.next()?, 16).ok();
    let h = Header {
        client: u32::try_from(hex()?).ok()?,
        session: u32::try_from(hex()?).ok()?,
        seq: hex()?,
        len: usize::try_from(hex()?).ok()?,
        checksum: hex()?,
        header_len: end + 1,
    };
    f.next().is_none().then_some(h)
}

/// A text body of exactly `n` bytes: mostly ASCII, with two-, three- and
/// four-byte characters mixed in so that random fragment boundaries cut
/// through them.
fn text_body(rng: &mut Rng, n: usize) -> Vec<u8> {
    const ALNUM: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _";
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        for b in rng.u64(..).to_le_bytes() {
            let room = n - v.len();
            if room == 0 {
                break;
            }
            let wide: &[u8] = match b {
                248 | 249 => "é".as_bytes(),
                250 | 251 => "€".as_bytes(),
                252..=255 => "😀".as_bytes(),
                _ => &[],
            };
            if !wide.is_empty() && wide.len() <= room {
                v.extend_from_slice(wide);
            } else {
                v.push(ALNUM[usize::from(b) % 64]);
            }
        }
    }
    v
}

/// What an /echo client waits for.
struct Expect {
    seq: u64,
    len: usize,
    text: bool,
    checksum: u64,
    /// The whole message, for one shorter than its header.
    tiny: Option<Vec<u8>>,
}

/// Builds message `seq` of `session` with `size` bytes.
fn build_message(
    rng: &mut Rng,
    client: u32,
    session: u32,
    seq: u64,
    size: usize,
    text: bool,
) -> (Vec<u8>, Expect) {
    let probe = header_text(client, session, seq, size, 0);
    if size < probe.len() {
        let bytes = probe.as_bytes()[..size].to_vec();
        let expect = Expect {
            seq,
            len: size,
            text,
            checksum: 0,
            tiny: Some(bytes.clone()),
        };
        return (bytes, expect);
    }
    let body_len = size - probe.len();
    let body = if text {
        text_body(rng, body_len)
    } else {
        let mut b = vec![0; body_len];
        rng.fill(&mut b);
        b
    };
    let checksum = fnv1a(&body);
    let mut bytes = header_text(client, session, seq, size, checksum).into_bytes();
    bytes.extend_from_slice(&body);
    debug_assert_eq!(bytes.len(), size);
    let expect = Expect {
        seq,
        len: size,
        text,
        checksum,
        tiny: None,
    };
    (bytes, expect)
}

/// A message size: mostly small, some medium, a few up to `max`, and now
/// and then exactly 0 or exactly `max`.
fn draw_size(rng: &mut Rng, max: usize) -> usize {
    let cap = match rng.u32(..100) {
        0 => return 0,
        1..=84 => 1024,
        85..=98 => 64 * 1024,
        _ if rng.f64() < 0.25 => return max,
        _ => max,
    };
    rng.usize(..=cap.min(max))
}

// ---------------------------------------------------------------- state

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Echo,
    Chat,
}

enum Phase {
    /// The TCP connect is under way; the request waits in the queue.
    Connecting {
        accept: String,
    },
    /// The request is out: waiting for the `101`.
    Upgrading {
        head: Vec<u8>,
        accept: String,
    },
    Open,
    /// Our close frame is queued: waiting for the server's and its FIN.
    Closing,
}

/// What a /chat receiver got from one sender session.
#[derive(Default)]
struct Pair {
    last: Option<u64>,
    /// Owed messages that were skipped.
    gaps: u64,
}

/// A /chat session that may still be owed to others: when it queued each
/// message (index = sequence number).
struct ChatSender {
    sent_at: Vec<Instant>,
}

impl ChatSender {
    /// The first sequence number queued after `t`.
    fn first_after(&self, t: Instant) -> u64 {
        self.sent_at.partition_point(|&s| s <= t) as u64
    }
}

struct Session {
    id: u32,
    /// The slot: the client id in the message headers.
    client: u32,
    kind: Kind,
    stream: TcpStream,
    conn: Connection,
    phase: Phase,
    /// Start of the current phase.
    since: Instant,
    /// When the `101` was read.
    joined: Option<Instant>,
    next_seq: u64,
    expect: VecDeque<Expect>,
    expect_bytes: usize,
    /// Ping payloads whose pongs are owed, in order.
    pings: VecDeque<Vec<u8>>,
    /// /chat: per sender session.
    chat_from: HashMap<u32, Pair>,
    life_end: Instant,
    next_send: Instant,
    next_ping: Instant,
    /// The close frame we sent was answered.
    close_answered: bool,
    /// The server closed it (an error already counted): owed nothing.
    broken: bool,
}

struct Slot {
    kind: Kind,
    gen: usize,
    session: Option<Session>,
    reconnect_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Running,
    Draining,
    Closing,
    Done,
}

#[derive(Default)]
struct Stats {
    sessions: u64,
    drops_fin: u64,
    drops_rst: u64,
    closes_midway: u64,
    closes_clean: u64,
    abandoned: u64,
    echo_sent: u64,
    echo_received: u64,
    echo_bytes: u64,
    chat_sent: u64,
    chat_delivered: u64,
    chat_bytes: u64,
    notices: u64,
    fragmented: u64,
    fragments: u64,
    pings: u64,
    pongs: u64,
    server_pings: u64,
    largest: usize,
    zero: u64,
}

struct Soak {
    opts: Opts,
    rng: Rng,
    poll: Poll,
    slots: Vec<Slot>,
    senders: HashMap<u32, ChatSender>,
    next_session: u32,
    buf: Vec<u8>,
    stats: Stats,
    errors: u64,
    stage: Stage,
    config: Config,
}

impl Soak {
    fn new(opts: Opts) -> io::Result<Soak> {
        let slots = (0..opts.clients)
            .map(|i| Slot {
                kind: if i < opts.chat_clients {
                    Kind::Chat
                } else {
                    Kind::Echo
                },
                gen: 0,
                session: None,
                reconnect_at: None,
            })
            .collect();
        let mut config = Config::default();
        let largest = opts.max_size.max(opts.chat_max_size + 64).max(16 << 20);
        config.max_frame_size = largest.min(u32::MAX as usize);
        config.max_message_size = largest.min(u32::MAX as usize);
        Ok(Soak {
            rng: Rng::with_seed(opts.seed),
            opts,
            poll: Poll::new()?,
            slots,
            senders: HashMap::new(),
            next_session: 1,
            buf: vec![0; 256 * 1024],
            stats: Stats::default(),
            errors: 0,
            stage: Stage::Running,
            config,
        })
    }

    fn error(&mut self, msg: String) {
        self.errors += 1;
        if self.errors as usize <= ERRORS_SHOWN {
            eprintln!("soak: ERROR: {msg}");
        } else if self.errors as usize == ERRORS_SHOWN + 1 {
            eprintln!("soak: (further errors are counted, not shown)");
        }
    }

    fn rss(&self) -> String {
        match self.opts.server_pid.and_then(rss_kib) {
            Some(kib) => format!("{kib} KiB"),
            None => "n/a".into(),
        }
    }

    /// Runs the whole soak; true when it passed.
    fn run(mut self) -> io::Result<bool> {
        let o = self.opts.clone();
        println!(
            "soak: {} clients ({} /echo, {} /chat) against ws://{} for {} s, seed {}",
            o.clients,
            o.clients - o.chat_clients,
            o.chat_clients,
            o.host,
            o.seconds,
            o.seed
        );
        println!(
            "soak: /echo up to {} B at {}/s, /chat up to {} B at {}/s, pings {}/s, sessions live {} s on average",
            o.max_size, o.rate, o.chat_max_size, o.chat_rate, o.ping_rate, o.session_seconds
        );
        if let Some(limit) = fd_limit() {
            if limit < o.clients as u64 + 64 {
                eprintln!(
                    "soak: warning: ulimit -n is {limit}, below {} clients plus spare",
                    o.clients
                );
            }
        }
        let rss_start = self.rss();
        let mut rss_peak = 0u64;
        let mut rss_ramped = None;
        println!("soak: server RSS at start: {rss_start}");

        let start = Instant::now();
        let end = start + Duration::from_secs_f64(o.seconds);
        let mut drain_deadline = None;
        let mut close_deadline = None;
        for slot in &mut self.slots {
            slot.reconnect_at = Some(start);
        }
        let mut events = Events::with_capacity(4096);
        let mut next_tick = start;
        let mut next_rss = start;
        let mut next_progress = start + Duration::from_secs_f64(o.progress.max(0.001));
        loop {
            let now = Instant::now();
            if now >= next_rss {
                next_rss = now + Duration::from_secs(1);
                if let Some(kib) = o.server_pid.and_then(rss_kib) {
                    rss_peak = rss_peak.max(kib);
                }
                if rss_ramped.is_none() && self.open_count() * 10 >= o.clients * 9 {
                    rss_ramped = Some(self.rss());
                }
            }
            if o.progress > 0.0 && now >= next_progress {
                next_progress = now + Duration::from_secs_f64(o.progress);
                self.progress(start);
            }
            match self.stage {
                Stage::Running if now >= end => {
                    self.begin_drain();
                    drain_deadline = Some(now + Duration::from_secs_f64(o.drain_seconds));
                }
                Stage::Draining => {
                    let owed = self.owed(false);
                    if owed == 0 || drain_deadline.is_some_and(|d| now >= d) {
                        if owed > 0 {
                            self.owed(true);
                        }
                        println!(
                            "soak: load stopped after {:.1} s, drained in {:.1} s; server RSS {}",
                            (end - start).as_secs_f64(),
                            now.saturating_duration_since(end).as_secs_f64(),
                            self.rss()
                        );
                        self.begin_close();
                        close_deadline = Some(now + STEP_TIMEOUT);
                    }
                }
                Stage::Closing => {
                    let left = self.slots.iter().filter(|s| s.session.is_some()).count();
                    if left == 0 {
                        self.stage = Stage::Done;
                    } else if close_deadline.is_some_and(|d| now >= d) {
                        self.error(format!(
                            "{left} sessions did not finish their close handshake in {STEP_TIMEOUT:?}"
                        ));
                        for i in 0..self.slots.len() {
                            if let Some(s) = self.slots[i].session.take() {
                                self.end_session(i, s);
                            }
                        }
                        self.stage = Stage::Done;
                    }
                }
                _ => {}
            }
            if self.stage == Stage::Done {
                break;
            }
            let timeout = next_tick.saturating_duration_since(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            for event in events.iter() {
                let token = event.token().0;
                self.on_event(token & IDX_MASK, token >> IDX_BITS);
            }
            if Instant::now() >= next_tick {
                next_tick = Instant::now() + TICK;
                self.tick();
            }
        }
        // Let the server finish its side of the last closes.
        std::thread::sleep(Duration::from_millis(500));
        let rss_end = self.rss();
        if let Some(kib) = o.server_pid.and_then(rss_kib) {
            rss_peak = rss_peak.max(kib);
        }
        self.summary(start, &rss_start, rss_ramped.as_deref(), rss_peak, &rss_end);
        Ok(self.errors == 0)
    }

    fn open_count(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s.session.as_ref().map(|s| &s.phase), Some(Phase::Open)))
            .count()
    }

    fn progress(&self, start: Instant) {
        let s = &self.stats;
        println!(
            "soak: {:>6.1} s  open {:>5}  sessions {:>6}  echo {}/{}  chat sent {} delivered {}  pings {}/{}  errors {}  server RSS {}",
            start.elapsed().as_secs_f64(),
            self.open_count(),
            s.sessions,
            s.echo_received,
            s.echo_sent,
            s.chat_sent,
            s.chat_delivered,
            s.pongs,
            s.pings,
            self.errors,
            self.rss()
        );
    }

    fn summary(
        &self,
        start: Instant,
        rss_start: &str,
        rss_ramped: Option<&str>,
        rss_peak: u64,
        rss_end: &str,
    ) {
        let s = &self.stats;
        println!(
            "soak: ---- summary after {:.1} s ----",
            start.elapsed().as_secs_f64()
        );
        println!(
            "soak: sessions {} (random disconnects: {} FIN, {} RST, {} close handshakes); {} close handshakes completed; {} abandoned mid-upgrade at the end",
            s.sessions, s.drops_fin, s.drops_rst, s.closes_midway, s.closes_clean, s.abandoned
        );
        println!(
            "soak: /echo: {} messages sent, {} echoes verified ({:.1} MiB), largest {} B, {} empty",
            s.echo_sent,
            s.echo_received,
            s.echo_bytes as f64 / (1 << 20) as f64,
            s.largest,
            s.zero
        );
        println!(
            "soak: /chat: {} messages sent, {} deliveries verified ({:.1} MiB), {} join/leave/welcome notices",
            s.chat_sent,
            s.chat_delivered,
            s.chat_bytes as f64 / (1 << 20) as f64,
            s.notices
        );
        println!(
            "soak: {} messages fragmented into {} frames; {} pings, {} pongs verified; {} server pings answered",
            s.fragmented, s.fragments, s.pings, s.pongs, s.server_pings
        );
        let peak = if rss_peak > 0 {
            format!("{rss_peak} KiB")
        } else {
            "n/a".into()
        };
        println!(
            "soak: server RSS: start {rss_start}, ramped up (90 % open) {}, peak {peak}, end {rss_end}",
            rss_ramped.unwrap_or("n/a")
        );
        if self.errors == 0 {
            println!("soak: PASS: nothing lost, duplicated, reordered or corrupted");
        } else {
            println!("soak: FAIL: {} errors", self.errors);
        }
    }

    // ------------------------------------------------------------ stages

    /// The load stops: no new sessions, sends or disconnects; sessions not
    /// open yet are dropped.
    fn begin_drain(&mut self) {
        self.stage = Stage::Draining;
        for i in 0..self.slots.len() {
            self.slots[i].reconnect_at = None;
            let pending = matches!(
                self.slots[i].session.as_ref().map(|s| &s.phase),
                Some(Phase::Connecting { .. } | Phase::Upgrading { .. })
            );
            if pending {
                if let Some(s) = self.slots[i].session.take() {
                    self.stats.abandoned += 1;
                    self.end_session(i, s);
                }
            }
        }
    }

    /// Messages, pongs and queued bytes still owed to the sessions that are
    /// open; with `report`, each shortfall is an error.
    fn owed(&mut self, report: bool) -> u64 {
        let mut owed = 0;
        let mut found = Vec::new();
        for slot in &self.slots {
            let Some(s) = &slot.session else { continue };
            if !matches!(s.phase, Phase::Open) || s.broken {
                continue;
            }
            owed += s.conn.buffered_amount() as u64;
            if !s.expect.is_empty() {
                owed += s.expect.len() as u64;
                found.push(format!(
                    "session {} (/echo): {} messages never echoed, from seq {}",
                    s.id,
                    s.expect.len(),
                    s.expect[0].seq
                ));
            }
            if !s.pings.is_empty() {
                owed += s.pings.len() as u64;
                found.push(format!(
                    "session {}: {} pings never answered",
                    s.id,
                    s.pings.len()
                ));
            }
            if s.kind != Kind::Chat {
                continue;
            }
            let Some(joined) = s.joined else { continue };
            for (&sender, info) in &self.senders {
                let first = info.first_after(joined);
                let sent = info.sent_at.len() as u64;
                if first >= sent {
                    continue;
                }
                let (missing, gaps) = match s.chat_from.get(&sender) {
                    None => (sent - first, 0),
                    Some(p) => {
                        let tail = p
                            .last
                            .map_or(sent - first, |l| (sent - 1).saturating_sub(l));
                        (tail, p.gaps)
                    }
                };
                if missing + gaps > 0 {
                    owed += missing + gaps;
                    found.push(format!(
                        "session {} (/chat): {} messages of session {sender} skipped and {} not received (owed from seq {first} to {})",
                        s.id,
                        gaps,
                        missing,
                        sent - 1
                    ));
                }
            }
        }
        if report {
            for f in found {
                self.error(format!("lost: {f}"));
            }
        }
        owed
    }

    /// Every open session starts a close handshake.
    fn begin_close(&mut self) {
        self.stage = Stage::Closing;
        for i in 0..self.slots.len() {
            let Some(mut s) = self.slots[i].session.take() else {
                continue;
            };
            if matches!(s.phase, Phase::Open) {
                let _ = s.conn.close(1000, "soak done");
                s.phase = Phase::Closing;
                s.since = Instant::now();
            }
            if self.flush(&mut s) {
                self.slots[i].session = Some(s);
            } else {
                self.end_session(i, s);
            }
        }
    }

    // ------------------------------------------------------------ sessions

    fn connect(&mut self, idx: usize) {
        let now = Instant::now();
        self.slots[idx].reconnect_at = None;
        let kind = self.slots[idx].kind;
        let id = self.next_session;
        self.next_session += 1;
        let mut stream = match TcpStream::connect(self.opts.addr) {
            Ok(s) => s,
            Err(e) => {
                self.error(format!("session {id}: connect: {e}"));
                self.slots[idx].reconnect_at = Some(now + Duration::from_secs(1));
                return;
            }
        };
        let gen = (self.slots[idx].gen + 1) & (usize::MAX >> IDX_BITS);
        self.slots[idx].gen = gen;
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(gen << IDX_BITS | idx),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.error(format!("session {id}: register: {e}"));
            self.slots[idx].reconnect_at = Some(now + Duration::from_secs(1));
            return;
        }
        let mut raw = [0u8; 16];
        self.rng.fill(&mut raw);
        let key = base64::engine::general_purpose::STANDARD.encode(raw);
        let path = match kind {
            Kind::Echo => "/echo".to_owned(),
            Kind::Chat => format!("/chat?name=s{id}"),
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
            self.opts.host
        );
        let mut conn = Connection::new(Role::Client, &self.config);
        // Raw bytes ahead of any frame; written once the connect completes.
        conn.outgoing().push(request.as_bytes());
        let far = now + Duration::from_secs(1 << 30);
        self.slots[idx].session = Some(Session {
            id,
            client: idx as u32,
            kind,
            stream,
            conn,
            phase: Phase::Connecting {
                accept: accept_key(key.as_bytes()),
            },
            since: now,
            joined: None,
            next_seq: 0,
            expect: VecDeque::new(),
            expect_bytes: 0,
            pings: VecDeque::new(),
            chat_from: HashMap::new(),
            life_end: far,
            next_send: far,
            next_ping: far,
            close_answered: false,
            broken: false,
        });
    }

    /// A session is over: deregistered, closed, and no longer owed anything
    /// or owing anything to others. Its slot reconnects later while running.
    fn end_session(&mut self, idx: usize, mut s: Session) {
        let _ = self.poll.registry().deregister(&mut s.stream);
        self.senders.remove(&s.id);
        if self.stage == Stage::Running {
            let delay = Duration::from_millis(self.rng.u64(..1000));
            self.slots[idx].reconnect_at = Some(Instant::now() + delay);
        }
    }

    fn on_event(&mut self, idx: usize, gen: usize) {
        if idx >= self.slots.len() || self.slots[idx].gen != gen {
            return;
        }
        let Some(mut s) = self.slots[idx].session.take() else {
            return;
        };
        let mut buf = std::mem::take(&mut self.buf);
        let alive = self.drive(&mut s, &mut buf);
        self.buf = buf;
        if alive {
            self.slots[idx].session = Some(s);
        } else {
            self.end_session(idx, s);
        }
    }

    /// Completes a connect, reads what arrived, writes what is queued.
    /// False when the session is over.
    fn drive(&mut self, s: &mut Session, buf: &mut [u8]) -> bool {
        if let Phase::Connecting { accept } = &s.phase {
            match s.stream.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => {
                    self.error(format!("session {}: connect failed: {e}", s.id));
                    return false;
                }
            }
            match s.stream.peer_addr() {
                Ok(_) => {
                    let _ = s.stream.set_nodelay(true);
                    s.phase = Phase::Upgrading {
                        head: Vec::new(),
                        accept: accept.clone(),
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return true,
                Err(e) => {
                    self.error(format!("session {}: connect failed: {e}", s.id));
                    return false;
                }
            }
        }
        loop {
            match s.stream.read(buf) {
                Ok(0) => {
                    self.on_eof(s);
                    return false;
                }
                Ok(n) => {
                    if !self.on_bytes(s, &mut buf[..n]) {
                        return false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if !s.broken {
                        self.error(format!("session {} ({:?}): read failed: {e}", s.id, s.kind));
                    }
                    return false;
                }
            }
        }
        self.flush(s)
    }

    fn on_eof(&mut self, s: &mut Session) {
        match s.phase {
            Phase::Closing if s.close_answered => self.stats.closes_clean += 1,
            _ if s.broken => {}
            _ => self.error(format!(
                "session {} ({:?}): the server ended the connection without a close handshake",
                s.id, s.kind
            )),
        }
    }

    fn on_bytes(&mut self, s: &mut Session, bytes: &mut [u8]) -> bool {
        let Phase::Upgrading { head, accept } = &mut s.phase else {
            return self.feed(s, bytes);
        };
        head.extend_from_slice(bytes);
        let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
            if head.len() > 16 * 1024 {
                self.error(format!("session {}: response head too long", s.id));
                return false;
            }
            return true;
        };
        let mut rest = head.split_off(end + 4);
        let text = String::from_utf8_lossy(head).to_ascii_lowercase();
        let ok = text.starts_with("http/1.1 101 ")
            && text.lines().any(|l| {
                l.strip_prefix("sec-websocket-accept:")
                    .is_some_and(|v| v.trim() == accept.to_ascii_lowercase())
            });
        if !ok {
            let first = text.lines().next().unwrap_or("").to_owned();
            self.error(format!("session {}: upgrade refused: {first}", s.id));
            return false;
        }
        self.opened(s);
        rest.is_empty() || self.feed(s, &mut rest)
    }

    /// The `101` arrived.
    fn opened(&mut self, s: &mut Session) {
        let now = Instant::now();
        s.phase = Phase::Open;
        s.since = now;
        s.joined = Some(now);
        self.stats.sessions += 1;
        if s.kind == Kind::Chat {
            self.senders.insert(
                s.id,
                ChatSender {
                    sent_at: Vec::new(),
                },
            );
        }
        let rate = match s.kind {
            Kind::Echo => self.opts.rate,
            Kind::Chat => self.opts.chat_rate,
        };
        s.next_send = now + wait_for_rate(&mut self.rng, rate);
        s.next_ping = now + wait_for_rate(&mut self.rng, self.opts.ping_rate);
        s.life_end = now + exp_wait(&mut self.rng, self.opts.session_seconds);
    }

    /// WebSocket bytes from the server.
    fn feed(&mut self, s: &mut Session, bytes: &mut [u8]) -> bool {
        let mut pos = 0;
        while pos < bytes.len() {
            let (used, event) = match s.conn.read(&mut bytes[pos..]) {
                Ok(r) => r,
                Err(e) => {
                    self.error(format!(
                        "session {} ({:?}): protocol error from the server: {e}",
                        s.id, s.kind
                    ));
                    return false;
                }
            };
            pos += used;
            match event {
                None => {}
                Some(Event::Message(m)) => match (s.kind, m.message()) {
                    (Kind::Echo, Message::Text(t)) => self.check_echo(s, true, t.as_bytes()),
                    (Kind::Echo, Message::Binary(b)) => self.check_echo(s, false, b),
                    (Kind::Chat, Message::Text(t)) => self.check_chat(s, t),
                    (Kind::Chat, Message::Binary(b)) => self.error(format!(
                        "session {} (/chat): unexpected binary message of {} bytes",
                        s.id,
                        b.len()
                    )),
                },
                Some(Event::Ping(_)) => self.stats.server_pings += 1,
                Some(Event::Pong(p)) => match s.pings.pop_front() {
                    Some(want) if want == p.as_bytes() => self.stats.pongs += 1,
                    other => self.error(format!(
                        "session {}: pong {:?} does not answer the oldest ping {:?}",
                        s.id,
                        p.as_bytes(),
                        other
                    )),
                },
                Some(Event::Close(c)) => {
                    if matches!(s.phase, Phase::Closing) {
                        s.close_answered = true;
                    } else {
                        self.error(format!(
                            "session {} ({:?}): the server closed it with {} {:?}",
                            s.id,
                            s.kind,
                            c.code,
                            c.reason()
                        ));
                        s.broken = true;
                        s.phase = Phase::Closing;
                        s.since = Instant::now();
                        self.senders.remove(&s.id);
                    }
                }
            }
        }
        true
    }

    fn check_echo(&mut self, s: &mut Session, text: bool, bytes: &[u8]) {
        let Some(want) = s.expect.pop_front() else {
            self.error(format!(
                "session {} (/echo): a message of {} bytes that was not owed (duplicate?): {:?}",
                s.id,
                bytes.len(),
                String::from_utf8_lossy(&bytes[..bytes.len().min(64)])
            ));
            return;
        };
        s.expect_bytes -= want.len;
        let what = format!("session {} (/echo) seq {}", s.id, want.seq);
        if want.text != text || want.len != bytes.len() {
            let kind = |t: bool| if t { "text" } else { "binary" };
            return self.error(format!(
                "{what}: expected {} of {} bytes, got {} of {} bytes",
                kind(want.text),
                want.len,
                kind(text),
                bytes.len()
            ));
        }
        if let Some(tiny) = &want.tiny {
            if tiny.as_slice() != bytes {
                return self.error(format!("{what}: tiny message differs"));
            }
        } else {
            let Some(h) = parse_header(bytes) else {
                return self.error(format!("{what}: no header"));
            };
            if h.client != s.client
                || h.session != s.id
                || h.seq != want.seq
                || h.len != bytes.len()
            {
                return self.error(format!(
                    "{what}: got client {} session {} seq {} len {} instead (lost, duplicated or reordered)",
                    h.client, h.session, h.seq, h.len
                ));
            }
            if h.checksum != want.checksum || fnv1a(&bytes[h.header_len..]) != want.checksum {
                return self.error(format!("{what}: checksum mismatch (corrupted)"));
            }
        }
        self.stats.echo_received += 1;
        self.stats.echo_bytes += bytes.len() as u64;
    }

    fn check_chat(&mut self, s: &mut Session, text: &str) {
        if text.starts_with("welcome ") {
            self.stats.notices += 1;
            return;
        }
        let Some((name, body)) = text.split_once(": ") else {
            if text.ends_with(" joined") || text.ends_with(" left") {
                self.stats.notices += 1;
            } else {
                self.error(format!(
                    "session {} (/chat): unexpected text {:?}",
                    s.id,
                    text.chars().take(80).collect::<String>()
                ));
            }
            return;
        };
        let Some(sender) = name.strip_prefix('s').and_then(|n| n.parse::<u32>().ok()) else {
            return self.error(format!("session {} (/chat): unknown sender {name:?}", s.id));
        };
        let bytes = body.as_bytes();
        let Some(h) = parse_header(bytes) else {
            return self.error(format!(
                "session {} (/chat): message from {name} has no header",
                s.id
            ));
        };
        let what = format!("session {} (/chat) from {sender} seq {}", s.id, h.seq);
        if h.session != sender || h.len != bytes.len() {
            return self.error(format!(
                "{what}: header says session {} len {}, got {} bytes",
                h.session,
                h.len,
                bytes.len()
            ));
        }
        if fnv1a(&bytes[h.header_len..]) != h.checksum {
            return self.error(format!("{what}: checksum mismatch (corrupted)"));
        }
        let pair = s.chat_from.entry(sender).or_default();
        let lo = pair.last.map_or(0, |l| l + 1);
        if pair.last.is_some() && h.seq < lo {
            let last = lo - 1;
            return self.error(format!(
                "{what}: after seq {last} (duplicated or reordered)"
            ));
        }
        if h.seq > lo {
            if let (Some(info), Some(joined)) = (self.senders.get(&sender), s.joined) {
                let from = lo.max(info.first_after(joined));
                pair.gaps += h.seq.saturating_sub(from);
            }
        }
        pair.last = Some(h.seq);
        self.stats.chat_delivered += 1;
        self.stats.chat_bytes += bytes.len() as u64;
    }

    // ------------------------------------------------------------ timers

    fn tick(&mut self) {
        let now = Instant::now();
        let mut connects = 0;
        for idx in 0..self.slots.len() {
            if self.stage == Stage::Running
                && self.slots[idx].session.is_none()
                && self.slots[idx].reconnect_at.is_some_and(|t| t <= now)
                && connects < CONNECTS_PER_TICK
            {
                connects += 1;
                self.connect(idx);
            }
            let Some(mut s) = self.slots[idx].session.take() else {
                continue;
            };
            if self.tick_session(&mut s, now) && self.flush(&mut s) {
                self.slots[idx].session = Some(s);
            } else {
                self.end_session(idx, s);
            }
        }
    }

    /// False when the session is over.
    fn tick_session(&mut self, s: &mut Session, now: Instant) -> bool {
        match s.phase {
            Phase::Connecting { .. } | Phase::Upgrading { .. } | Phase::Closing
                if now.duration_since(s.since) > STEP_TIMEOUT =>
            {
                let what = match s.phase {
                    Phase::Closing => "close handshake",
                    _ => "connect and upgrade",
                };
                if !s.broken {
                    self.error(format!(
                        "session {} ({:?}): {what} took longer than {STEP_TIMEOUT:?}",
                        s.id, s.kind
                    ));
                }
                return false;
            }
            Phase::Open if self.stage == Stage::Running => {}
            _ => return true,
        }
        if now >= s.life_end {
            return self.random_disconnect(s, now);
        }
        if now >= s.next_send {
            match s.kind {
                Kind::Echo => {
                    if s.expect.len() < MAX_OUTSTANDING && s.expect_bytes < MAX_OUTSTANDING_BYTES {
                        self.send_echo(s);
                        s.next_send = now + wait_for_rate(&mut self.rng, self.opts.rate);
                    }
                }
                Kind::Chat => {
                    self.send_chat(s, now);
                    s.next_send = now + wait_for_rate(&mut self.rng, self.opts.chat_rate);
                }
            }
        }
        if now >= s.next_ping {
            self.send_ping(s);
            s.next_ping = now + wait_for_rate(&mut self.rng, self.opts.ping_rate);
        }
        true
    }

    /// Ends a session the way a flaky client would: a FIN or a RST without
    /// a close frame (whatever is queued either way), or a close handshake.
    fn random_disconnect(&mut self, s: &mut Session, now: Instant) -> bool {
        self.senders.remove(&s.id);
        match self.rng.u32(..3) {
            0 => {
                self.stats.drops_fin += 1;
                false
            }
            1 => {
                linger_zero(&s.stream);
                self.stats.drops_rst += 1;
                false
            }
            _ => {
                self.stats.closes_midway += 1;
                let _ = s.conn.close(1000, "bye for now");
                s.phase = Phase::Closing;
                s.since = now;
                true
            }
        }
    }

    fn send_echo(&mut self, s: &mut Session) {
        let size = draw_size(&mut self.rng, self.opts.max_size);
        let text = self.rng.f64() < 0.5;
        let (bytes, expect) = build_message(&mut self.rng, s.client, s.id, s.next_seq, size, text);
        s.next_seq += 1;
        s.expect_bytes += expect.len;
        s.expect.push_back(expect);
        self.stats.echo_sent += 1;
        self.stats.largest = self.stats.largest.max(size);
        self.stats.zero += u64::from(size == 0);
        self.queue_message(s, &bytes, text);
    }

    fn send_chat(&mut self, s: &mut Session, now: Instant) {
        let Some(info) = self.senders.get_mut(&s.id) else {
            return;
        };
        info.sent_at.push(now);
        let seq = s.next_seq;
        s.next_seq += 1;
        let min = header_text(s.client, s.id, seq, self.opts.chat_max_size, 0).len();
        let size = draw_size(&mut self.rng, self.opts.chat_max_size).max(min);
        let (bytes, _) = build_message(&mut self.rng, s.client, s.id, seq, size, true);
        self.stats.chat_sent += 1;
        self.queue_message(s, &bytes, true);
    }

    fn send_ping(&mut self, s: &mut Session) {
        let len = self.rng.usize(..126);
        let mut payload = vec![0; len];
        self.rng.fill(&mut payload);
        if s.conn.ping(&payload).is_ok() {
            s.pings.push_back(payload);
            self.stats.pings += 1;
        }
    }

    /// Queues a message, either whole (through the `Connection`) or cut at
    /// random points (empty fragments included) into masked frames built
    /// here, with pings now and then between the fragments.
    fn queue_message(&mut self, s: &mut Session, payload: &[u8], text: bool) {
        let whole = payload.len() < 2 || self.rng.f64() < 0.4;
        if whole {
            let msg = match (text, std::str::from_utf8(payload)) {
                (true, Ok(t)) => Message::Text(t),
                _ => Message::Binary(payload),
            };
            let _ = s.conn.send(msg);
            return;
        }
        let pieces = self.rng.usize(2..9);
        let mut cuts: Vec<usize> = (1..pieces)
            .map(|_| self.rng.usize(..=payload.len()))
            .collect();
        cuts.sort_unstable();
        cuts.push(payload.len());
        self.stats.fragmented += 1;
        let mut from = 0;
        for (i, &to) in cuts.iter().enumerate() {
            if i > 0 && self.rng.f64() < 0.1 {
                self.send_ping(s);
            }
            let opcode = match (i, text) {
                (0, true) => 0x1,
                (0, false) => 0x2,
                _ => 0x0,
            };
            let mut mask = [0u8; 4];
            self.rng.fill(&mut mask);
            let header = FrameHeader {
                fin: i + 1 == cuts.len(),
                rsv: 0,
                opcode,
                mask: Some(mask),
                len: (to - from) as u64,
            };
            let mut head = [0u8; MAX_HEADER_LEN];
            let n = header.encode(&mut head);
            let mut frame = Vec::with_capacity(n + to - from);
            frame.extend_from_slice(&head[..n]);
            frame.extend_from_slice(&payload[from..to]);
            apply_mask(&mut frame[n..], mask, 0);
            s.conn.outgoing().push(&frame);
            self.stats.fragments += 1;
            from = to;
        }
    }

    /// Writes what the session has queued. False when the socket failed.
    fn flush(&mut self, s: &mut Session) -> bool {
        if matches!(s.phase, Phase::Connecting { .. }) {
            return true;
        }
        let queue = s.conn.outgoing();
        while !queue.is_empty() {
            let written = {
                let mut slices = [IoSlice::new(&[]); 64];
                let n = queue.io_slices(&mut slices);
                s.stream.write_vectored(&slices[..n])
            };
            match written {
                Ok(0) => return false,
                Ok(n) => queue.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if !s.broken {
                        self.error(format!(
                            "session {} ({:?}): write failed: {e}",
                            s.id, s.kind
                        ));
                    }
                    return false;
                }
            }
        }
        true
    }
}
