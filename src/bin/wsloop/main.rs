//! The `wsloop` binary: the demo routes of the classic PHP and Resin
//! servers and an HTML client page, on one mio loop that also carries the
//! signal handling.
//!
//! ```text
//!            ┌────────────── one mio::Poll ──────────────┐
//! SIGINT ──► Token(0): Signals ──► shutdown(): close all with 1001, stop accepting
//! SIGTERM    Token(1..): Server (listener, waker, clients) ──► app::App (routes)
//!            poll timeout = the server's next deadline; tick() after each batch
//! ```
//!
//! Exit codes: 0 after a clean shutdown, 1 when it cannot listen (or the
//! loop fails), 2 for bad flags (a `--listen` host name that does not
//! resolve among them).

mod app;
mod metrics;

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, ValueEnum};
use log::{debug, error, info, warn, LevelFilter};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use wsloop::backplane::{RedisConfig, RedisTls};
use wsloop::{Balance, Config, Handler, Loops, Server};

use crate::app::{App, PushInterval};

/// The signal source's token; the server gets every token after it.
const SIGNALS: Token = Token(0);
/// Tokens the server may use (it needs two plus one per client slot).
const SERVER_TOKENS: std::ops::Range<usize> = 1..usize::MAX;
/// Scrapers served at once by `--metrics`.
const METRICS_CLIENTS: usize = 16;

/// An RFC 6455 WebSocket server on one single-threaded mio loop, with the
/// classic demos and a browser page.
///
/// Routes: / (the HTML page on plain GET, the command demo on WebSocket),
/// /echo, /push and /chat (WebSocket only). Open the page at http://ADDR/
/// in a browser. SIGINT or SIGTERM closes every client with
/// 1001 and exits 0.
#[derive(Debug, Parser)]
#[command(name = "wsloop", version, about, long_about)]
struct Args {
    /// Address to listen on: IP:PORT, [IPv6]:PORT or HOST:PORT (port 0
    /// picks a free one). A host name listens on the first of its addresses
    /// that binds, IPv4 ones first
    #[arg(
        long,
        value_name = "ADDR",
        env = "WSLOOP_LISTEN",
        hide_env_values = true,
        default_value = "127.0.0.1:8080",
        value_parser = parse_listen
    )]
    listen: Listen,

    /// Event loops, each on its own thread, linked on one port: /chat and
    /// every topic span them all. 0: one per CPU core [default: 1, the
    /// single-threaded loop]
    #[arg(long, value_name = "N", default_value = "1",
          value_parser = clap::value_parser!(u16).range(0..=256))]
    threads: u16,

    /// How the loops of --threads share the port: `kernel`, a listener
    /// per loop with SO_REUSEPORT (the kernel spreads connections by a
    /// hash of their addresses), or `round-robin`, one listener handing
    /// each connection to the next loop [default: kernel on Linux,
    /// round-robin elsewhere]
    #[arg(long, value_name = "HOW", value_enum)]
    balance: Option<BalanceArg>,

    /// Clients served at once (over every loop); more get HTTP 503 with
    /// Retry-After
    #[arg(long, value_name = "N", default_value = "10000",
          allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(1..))]
    max_clients: u32,

    /// Largest message (and frame) accepted, in bytes or with a KiB/MiB/GiB
    /// suffix (KB, MB, GB mean the same); larger closes the client with 1009
    #[arg(long, value_name = "SIZE", default_value = "16MiB", allow_hyphen_values = true,
          value_parser = parse_size)]
    max_message_size: usize,

    /// Silence after which the server pings; after as long again without
    /// traffic it closes (e.g. 60, 90s, 500ms, 2m, 1m 30s; 0 or off
    /// disables)
    #[arg(long, value_name = "DURATION", default_value = "60s", allow_hyphen_values = true,
          value_parser = parse_idle)]
    idle_timeout: Idle,

    /// How long a new connection may take to complete its upgrade (TLS
    /// handshake included) before it is closed
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_positive_duration)]
    handshake_timeout: Duration,

    /// Allow WebSocket connections only from this Origin (repeatable; others
    /// get HTTP 403) [default: any origin]
    #[arg(long, value_name = "ORIGIN", action = clap::ArgAction::Append)]
    allow_origin: Vec<String>,

    /// Log level of the messages on stderr [default: info, or RUST_LOG
    /// when set; this flag wins over RUST_LOG]
    #[arg(long, value_name = "LEVEL", value_enum, ignore_case = true)]
    log_level: Option<LogLevel>,

    /// Waits of the /push demo, in seconds: MIN-MAX or one value, decimals
    /// allowed (e.g. 0.05-0.2 for tests)
    #[arg(
        long,
        value_name = "MIN-MAX",
        default_value = "2-5",
        allow_hyphen_values = true
    )]
    push_interval: PushInterval,

    #[command(flatten)]
    deflate: DeflateArgs,

    #[command(flatten)]
    tls: TlsArgs,

    #[command(flatten)]
    redis: RedisArgs,

    /// Serve Prometheus metrics (OpenMetrics text) at http://ADDR/metrics,
    /// on a port of their own: connections per route, handshakes, messages
    /// and bytes, closes by code, compression, topics, the Redis link,
    /// programs [default: off]
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,

    // Programs need Linux (pidfd); elsewhere the binary has no such flags.
    #[cfg(target_os = "linux")]
    #[command(flatten)]
    programs: ProgramArgs,
}

/// wss:// and https:// on the same port, with rustls.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "TLS (wss://)")]
struct TlsArgs {
    /// Serve https:// and wss:// with this PEM certificate chain (leaf
    /// first); SIGHUP reloads it and the key (new connections get the new
    /// pair, open ones carry on; a bad pair is logged and the old one kept)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,

    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
}

impl TlsArgs {
    /// The configuration the files make now, if TLS was asked for.
    fn load(
        &self,
    ) -> Option<Result<std::sync::Arc<wsloop::tls::ServerConfig>, wsloop::tls::TlsError>> {
        let (cert, key) = (self.tls_cert.as_ref()?, self.tls_key.as_ref()?);
        Some(wsloop::tls::from_pem_files(cert, key))
    }
}

/// Programs as handlers: websocketd's model (one process per connection,
/// each text message a line on its stdin, each line of its stdout a text
/// message) and Resin's (one shared process per route speaking JSON lines,
/// docs/programs-protocol.md). With a program the demo routes are not
/// served.
#[cfg(target_os = "linux")]
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Programs as handlers")]
struct ProgramArgs {
    /// Serve PROGRAM on a path: /PATH=COMMAND [ARGS...], split as a shell
    /// would split it (quotes, escapes) but run without one (repeatable)
    #[arg(long = "route", value_name = "/PATH=COMMAND", value_parser = parse_route)]
    routes: Vec<(String, Vec<String>)>,

    /// Serve ONE long-lived program for every client of a path, speaking
    /// JSON lines (docs/programs-protocol.md): /PATH=COMMAND [ARGS...]
    /// (repeatable)
    #[arg(long = "shared-route", value_name = "/PATH=COMMAND", value_parser = parse_route)]
    shared_routes: Vec<(String, Vec<String>)>,

    /// The program after `--` is one shared program (JSON lines), not one
    /// per connection
    #[arg(long, requires = "command")]
    shared: bool,

    /// Messages to and from programs are raw bytes, as binary messages,
    /// instead of text lines
    #[arg(long)]
    binary: bool,

    /// Variables of wsloop's own environment passed on to programs, besides
    /// the CGI ones (comma-separated, repeatable) [default: PATH]
    #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
    passenv: Vec<String>,

    /// Programs running at once at most; past it upgrades get 503 with
    /// Retry-After [default: no limit]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_forks: Option<u32>,

    /// After a client leaves and its program's stdin is closed, how long
    /// the program may run before SIGTERM
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    term_after: Duration,

    /// How long after SIGTERM before SIGKILL
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    kill_after: Duration,

    /// The longest line a program may write (one message); longer closes
    /// its client with 1009 (a shared program's is dropped)
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = parse_size)]
    max_line: usize,

    /// Serve this program on every path: COMMAND [ARGS...] after `--`
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<std::ffi::OsString>,
}

#[cfg(target_os = "linux")]
impl ProgramArgs {
    /// The program routes, or `None` when no program is given.
    fn routes(&self) -> Option<Vec<(String, wsloop::programs::Program)>> {
        let mut passenv = vec!["PATH".to_owned()];
        passenv.extend(self.passenv.iter().cloned());
        let program = |argv: Vec<std::ffi::OsString>, shared: bool| {
            let mut p = wsloop::programs::Program::new(argv);
            p.binary = self.binary;
            p.passenv = passenv.clone();
            p.term_after = self.term_after;
            p.kill_after = self.kill_after;
            p.max_line = self.max_line;
            p.shared = shared;
            p
        };
        let words = |argv: &Vec<String>| argv.iter().map(Into::into).collect();
        let mut routes: Vec<_> = self
            .routes
            .iter()
            .map(|(path, argv)| (path.clone(), program(words(argv), false)))
            .chain(
                self.shared_routes
                    .iter()
                    .map(|(path, argv)| (path.clone(), program(words(argv), true))),
            )
            .collect();
        if !self.command.is_empty() {
            routes.push(("/".to_owned(), program(self.command.clone(), self.shared)));
        }
        (!routes.is_empty()).then_some(routes)
    }
}

/// `/PATH=COMMAND ARGS`: the path and the command's words.
#[cfg(target_os = "linux")]
fn parse_route(s: &str) -> Result<(String, Vec<String>), String> {
    let (path, command) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not /PATH=COMMAND"))?;
    if !path.starts_with('/') {
        return Err(format!("{path:?} is not a path (it starts with /)"));
    }
    let words = shell_words::split(command).map_err(|e| format!("{command:?}: {e}"))?;
    if words.is_empty() {
        return Err(format!("{s:?} names no command"));
    }
    let path = match path.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    };
    Ok((path.to_owned(), words))
}

/// The permessage-deflate flags (feature `deflate`).
#[cfg(feature = "deflate")]
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Compression (permessage-deflate, RFC 7692)")]
struct DeflateArgs {
    /// Refuse every client's permessage-deflate offer: all messages go
    /// uncompressed [default: offers are accepted]
    #[arg(long)]
    no_deflate: bool,

    /// Largest window the server compresses with, as a power of two: 9
    /// (512 bytes) to 15 (32 KiB); a client may ask for less. With context
    /// takeover the server keeps this much of what it sent, per client
    #[arg(long, value_name = "BITS", default_value = "12", allow_negative_numbers = true,
          conflicts_with = "no_deflate", value_parser = clap::value_parser!(u8).range(9..=15))]
    deflate_window_bits: u8,

    /// Largest window asked of clients that offer to limit theirs (as
    /// browsers do), 8 to 15; with context takeover the server keeps this
    /// much of what each such client sent. Other clients use up to 15
    #[arg(long, value_name = "BITS", default_value = "12", allow_negative_numbers = true,
          conflicts_with = "no_deflate", value_parser = clap::value_parser!(u8).range(8..=15))]
    deflate_client_window_bits: u8,

    /// Reset the compressor after every message, the server's and (asked of
    /// every client) the client's: no memory kept between messages, at a
    /// worse ratio [default: context takeover]
    #[arg(long, conflicts_with = "no_deflate")]
    deflate_no_context_takeover: bool,

    /// Messages shorter than this are sent uncompressed, in bytes or with a
    /// KiB/MiB suffix (0: every message may be compressed)
    #[arg(long, value_name = "SIZE", default_value = "64", allow_hyphen_values = true,
          conflicts_with = "no_deflate", value_parser = parse_bytes)]
    deflate_threshold: usize,

    /// Compression level: 1 (fastest) to 9 (smallest); 0 only stores, which
    /// never makes a message smaller, so every message goes uncompressed
    #[arg(long, value_name = "N", default_value = "1", allow_negative_numbers = true,
          conflicts_with = "no_deflate", value_parser = clap::value_parser!(u32).range(0..=9))]
    deflate_level: u32,

    /// Most memory the compression state of all clients together may hold
    /// (their windows); past it new clients are served without compression
    /// (logged), in bytes or with a KiB/MiB/GiB suffix
    #[arg(long, value_name = "SIZE", default_value = "256MiB", allow_hyphen_values = true,
          conflicts_with = "no_deflate", value_parser = parse_bytes)]
    deflate_max_memory: usize,
}

/// Without the `deflate` feature the binary has no compression flags.
#[cfg(not(feature = "deflate"))]
#[derive(Debug, clap::Args)]
struct DeflateArgs {}

#[cfg(feature = "deflate")]
impl DeflateArgs {
    fn apply(&self, deflate: &mut wsloop::proto::deflate::DeflateConfig) {
        deflate.enabled = !self.no_deflate;
        deflate.server_max_window_bits = self.deflate_window_bits;
        deflate.client_max_window_bits = self.deflate_client_window_bits;
        deflate.max_memory = self.deflate_max_memory;
        deflate.server_no_context_takeover = self.deflate_no_context_takeover;
        deflate.client_no_context_takeover = self.deflate_no_context_takeover;
        deflate.compress_threshold = self.deflate_threshold;
        deflate.level = self.deflate_level;
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BalanceArg {
    Kernel,
    RoundRobin,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl From<LogLevel> for LevelFilter {
    fn from(level: LogLevel) -> LevelFilter {
        match level {
            LogLevel::Off => LevelFilter::Off,
            LogLevel::Error => LevelFilter::Error,
            LogLevel::Warn => LevelFilter::Warn,
            LogLevel::Info => LevelFilter::Info,
            LogLevel::Debug => LevelFilter::Debug,
            LogLevel::Trace => LevelFilter::Trace,
        }
    }
}

/// `--listen`: the address as given and the addresses it stands for.
#[derive(Debug, Clone)]
struct Listen {
    given: String,
    /// Whether `given` was a host name (resolved) rather than an address.
    from_name: bool,
    /// At least one; IPv4 before IPv6, each family in the resolver's order.
    addrs: Vec<SocketAddr>,
}

/// What a handler adds to the metrics beyond the loops' own stats.
trait Gauges {
    /// Programs running (updated by the handler's loop), if it runs any.
    fn programs_running(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicUsize>> {
        None
    }
}

impl Gauges for App {}

#[cfg(target_os = "linux")]
impl Gauges for wsloop::programs::Programs {
    fn programs_running(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicUsize>> {
        Some(self.running_gauge())
    }
}

/// The Redis backplane's flags.
#[derive(Debug, clap::Args)]
struct RedisArgs {
    /// Share topics (every /chat) with each wsloop on the same Redis, through
    /// its pub/sub: redis://[[user]:password@]host[:port][/db], or
    /// rediss://... over TLS (Redis's certificate checked against the
    /// system's trusted roots for the host). Each loop has its own
    /// connection; while Redis is unreachable the server serves its own
    /// clients and retries. Delivery across processes is at most once, as
    /// Redis pub/sub is
    #[arg(long, value_name = "URL", env = "WSLOOP_REDIS", hide_env_values = true,
          value_parser = parse_redis)]
    redis: Option<RedisConfig>,

    /// Put before every topic to make its Redis channel (`chat` is
    /// published on `wsloop:chat`); processes that share topics share it
    #[arg(
        long,
        value_name = "PREFIX",
        default_value = "wsloop:",
        requires = "redis"
    )]
    redis_prefix: String,

    /// For rediss://: check Redis's certificate against the CA
    /// certificates in this PEM file (a private CA) instead of the system's
    /// trusted roots
    #[arg(long, value_name = "FILE", requires = "redis")]
    redis_ca: Option<std::path::PathBuf>,

    /// For rediss://: the client certificate (a PEM chain, leaf first) shown
    /// to a Redis that asks for one (`tls-auth-clients yes`)
    #[arg(long, value_name = "FILE", requires_all = ["redis", "redis_key"])]
    redis_cert: Option<std::path::PathBuf>,

    /// The PEM private key of --redis-cert
    #[arg(long, value_name = "FILE", requires = "redis_cert")]
    redis_key: Option<std::path::PathBuf>,
}

impl RedisArgs {
    /// The backplane's configuration, its TLS files read (and, for the
    /// system's roots, the store read): an error is a bad flag.
    fn config(&self) -> Result<Option<RedisConfig>, String> {
        let Some(mut config) = self.redis.clone() else {
            return Ok(None);
        };
        config.prefix = self.redis_prefix.clone();
        let files = self.redis_ca.is_some() || self.redis_cert.is_some();
        match config.tls.take() {
            None if files => {
                return Err("--redis-ca and --redis-cert are for a rediss:// URL".into());
            }
            None => {}
            Some(tls) => {
                let tls = if files {
                    let client = self.redis_cert.as_deref().zip(self.redis_key.as_deref());
                    RedisTls::from_pem_files(self.redis_ca.as_deref(), client)
                } else {
                    // Read once here, not by every loop.
                    tls.client_config().map(RedisTls::from_config)
                };
                config.tls = Some(tls.map_err(|e| format!("rediss://: {e}"))?);
            }
        }
        Ok(Some(config))
    }
}

fn parse_redis(s: &str) -> Result<RedisConfig, String> {
    RedisConfig::from_url(s).map_err(|e| e.to_string())
}

/// `127.0.0.1:8080`, `[::1]:8080` (taken as they are) or `localhost:8080`
/// (resolved now, so a name that does not resolve is a bad flag).
fn parse_listen(s: &str) -> Result<Listen, String> {
    let given = s.trim().to_owned();
    if let Ok(addr) = given.parse::<SocketAddr>() {
        return Ok(Listen {
            given,
            from_name: false,
            addrs: vec![addr],
        });
    }
    let usage = "use HOST:PORT, such as 127.0.0.1:8080, localhost:8080 or [::1]:8080";
    let split = given.rsplit_once(':').filter(|_| !given.ends_with(']'));
    let Some((host, port)) = split else {
        return Err(format!("{s:?} has no port: {usage}"));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("the port in {s:?} is not a number from 0 to 65535"))?;
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(bracketed) => bracketed,
        None if host.contains(':') => {
            return Err(format!(
                "{s:?}: an IPv6 address goes in brackets, as [::1]:8080"
            ))
        }
        None => host,
    };
    if host.is_empty() {
        return Err(format!("{s:?} has no host: {usage}"));
    }
    let resolved = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host:?}: {e}"))?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for addr in resolved {
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    // IPv4 first (a stable sort keeps the resolver's order within each
    // family), as Go's net.Listen picks: a `localhost` that also names ::1
    // still listens where clients told 127.0.0.1 connect.
    addrs.sort_by_key(SocketAddr::is_ipv6);
    if addrs.is_empty() {
        return Err(format!("{host:?} resolved to no address"));
    }
    Ok(Listen {
        given,
        from_name: true,
        addrs,
    })
}

/// `--idle-timeout`: `None` disables the idle ping.
#[derive(Debug, Clone, Copy)]
struct Idle(Option<Duration>);

fn parse_idle(s: &str) -> Result<Idle, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("off") || t.eq_ignore_ascii_case("none") {
        return Ok(Idle(None));
    }
    let d = parse_duration(t)?;
    Ok(Idle((!d.is_zero()).then_some(d)))
}

/// A duration as humantime reads it (`90s`, `1.5s`, `500ms`, `2m`, `1h`,
/// `1m 30s`, `2 min`), or a plain number of seconds (`60`, `0.5`).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let bad = |why: &dyn std::fmt::Display| {
        format!("{s:?} is not a duration such as 60, 90s, 500ms, 2m or 1m 30s ({why})")
    };
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = t.parse().map_err(|e| bad(&e))?;
        return Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is out of range"));
    }
    humantime::parse_duration(t).map_err(|e| bad(&e))
}

/// A duration as [`parse_duration`] reads it, longer than zero.
fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

/// `65536`, `64KiB`, `16MiB`, `1GiB`, `1.5 MiB`, at least one byte. K, M, G
/// and T with or without `B` or `iB`, in any case, all mean powers of 1024.
fn parse_size(s: &str) -> Result<usize, String> {
    let bytes = parse_bytes(s)?;
    if bytes == 0 {
        return Err("must be at least 1 byte".into());
    }
    Ok(bytes)
}

/// A size as [`parse_size`] reads it (parse-size in its binary mode), where
/// 0 is allowed.
fn parse_bytes(s: &str) -> Result<usize, String> {
    let too_large = || format!("{s:?} is too large");
    let bytes = parse_size::Config::new()
        .with_binary()
        .parse_size(s.trim())
        .map_err(|e| match e {
            parse_size::Error::PosOverflow => too_large(),
            _ => format!("{s:?} is not a size such as 65536, 64KiB or 16MiB"),
        })?;
    usize::try_from(bytes).map_err(|_| too_large())
}

impl Args {
    fn config(&self) -> Config {
        let mut config = Config::default();
        config.max_clients = self.max_clients as usize;
        config.max_message_size = self.max_message_size;
        config.max_frame_size = self.max_message_size;
        // An echoed maximal message must fit in the client's send queue.
        config.max_send_queue = config.max_send_queue.max(self.max_message_size + 64);
        config.idle_timeout = self.idle_timeout.0;
        config.handshake_timeout = self.handshake_timeout;
        config.allowed_origins = self.allow_origin.clone();
        #[cfg(feature = "deflate")]
        self.deflate.apply(&mut config.deflate);
        config
    }
}

/// The compression policy in one log line.
#[cfg(feature = "deflate")]
fn compression(config: &Config) -> String {
    let d = &config.deflate;
    if !d.enabled {
        return "permessage-deflate: off (--no-deflate)".into();
    }
    let takeover = if d.server_no_context_takeover {
        "no context takeover"
    } else {
        "context takeover"
    };
    format!(
        "permessage-deflate: accepted (window {} bits, client window {} bits, level {}, \
         threshold {} bytes, {takeover}, at most {} MiB of compression state)",
        d.server_max_window_bits,
        d.client_max_window_bits,
        d.level,
        d.compress_threshold,
        d.max_memory >> 20
    )
}

#[cfg(not(feature = "deflate"))]
fn compression(_: &Config) -> String {
    "permessage-deflate: not built in (feature `deflate`)".into()
}

fn init_logging(level: Option<LogLevel>) {
    let mut builder = match level {
        Some(level) => {
            let mut b = env_logger::Builder::new();
            b.filter_level(level.into());
            b
        }
        None => env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")),
    };
    builder.target(env_logger::Target::Stderr).init();
}

/// A listen error in plain words, without the OS error number.
fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse => "address already in use".into(),
        io::ErrorKind::AddrNotAvailable => "address not available on this machine".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Listens on the first of `listen`'s addresses that binds (`loops`
/// listeners with SO_REUSEPORT on it when there is more than one loop);
/// when none does, says why for each.
fn bind_first(listen: &Listen, loops: usize) -> Result<Vec<TcpListener>, String> {
    let (given, addrs) = (&listen.given, &listen.addrs);
    let mut failed = Vec::new();
    for (i, &addr) in addrs.iter().enumerate() {
        let bound = match loops {
            1 => TcpListener::bind(addr).map(|l| vec![l]),
            n => wsloop::reuse_port_listeners(addr, n),
        };
        let why = match bound {
            Ok(listener) => {
                if listen.from_name {
                    let all: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
                    info!(
                        "--listen {given} resolved to {}; listening on {addr}",
                        all.join(", ")
                    );
                }
                for unused in &addrs[i + 1..] {
                    debug!("--listen {given}: not also listening on {unused} (one listener)");
                }
                return Ok(listener);
            }
            Err(e) => describe(&e),
        };
        if i + 1 < addrs.len() {
            warn!("--listen {given}: cannot listen on {addr}: {why}; trying the next address");
        }
        failed.push((addr, why));
    }
    Err(match failed.as_slice() {
        [(_, why)] => why.clone(),
        all => {
            let each: Vec<String> = all.iter().map(|(a, why)| format!("{a}: {why}")).collect();
            each.join("; ")
        }
    })
}

fn main() -> ExitCode {
    let mut args = Args::parse(); // bad flags: a message and exit code 2
    let config = args.config();
    if let Err(e) = config.validate() {
        Args::command()
            .error(clap::error::ErrorKind::ValueValidation, e)
            .exit();
    }
    // From here on `--redis` is the whole backplane configuration.
    args.redis.redis = match args.redis.config() {
        Ok(redis) => redis,
        Err(e) => Args::command()
            .error(clap::error::ErrorKind::ValueValidation, e)
            .exit(),
    };
    init_logging(args.log_level);

    let loops = match args.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => usize::from(n),
    };
    let balance = match args.balance {
        Some(BalanceArg::Kernel) => Balance::Kernel,
        Some(BalanceArg::RoundRobin) => Balance::RoundRobin,
        None => Balance::default(),
    };
    let listening = match balance {
        Balance::Kernel => loops,
        Balance::RoundRobin => 1,
    };
    let listeners = match bind_first(&args.listen, listening) {
        Ok(l) => l,
        Err(why) => {
            eprintln!("error: cannot listen on {}: {why}", args.listen.given);
            return ExitCode::FAILURE;
        }
    };
    #[cfg(target_os = "linux")]
    let programs = args.programs.routes();
    #[cfg(not(target_os = "linux"))]
    let programs: Option<std::convert::Infallible> = None;
    let served = match programs {
        Some(routes) => serve_programs((listeners, loops), config, &args, routes),
        None => {
            let push = args.push_interval;
            let banner = format!("page: http://ADDR/, push waits {push} s");
            let room = std::sync::Arc::new(app::Room::default());
            let make = || App::new(push, room.clone());
            serve((listeners, loops), config, &args, make, banner)
        }
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Serves the programs `routes` instead of the demos.
#[cfg(target_os = "linux")]
fn serve_programs(
    listeners: (Vec<TcpListener>, usize),
    config: Config,
    args: &Args,
    routes: Vec<(String, wsloop::programs::Program)>,
) -> std::io::Result<()> {
    let banner: Vec<String> = routes
        .iter()
        .map(|(path, p)| {
            let shared = if p.shared { " (shared)" } else { "" };
            format!("{path} -> {:?}{shared}", p.argv)
        })
        .collect();
    let banner = format!("programs: {}", banner.join(", "));
    // One set per loop: a shared program runs once per loop and route,
    // and --max-forks counts per loop.
    let max_forks = args.programs.max_forks;
    let make = move || {
        let programs = wsloop::programs::Programs::new(routes.clone());
        match max_forks {
            Some(n) => programs.with_max_forks(n as usize),
            None => programs,
        }
    };
    serve(listeners, config, args, make, banner)
}

#[cfg(not(target_os = "linux"))]
fn serve_programs(
    _: (Vec<TcpListener>, usize),
    _: Config,
    _: &Args,
    never: std::convert::Infallible,
) -> std::io::Result<()> {
    match never {}
}

/// The host loop: signals and the first loop's server on one `Poll`, the
/// other loops (`--threads`) on threads of their own, linked, until a
/// requested shutdown has closed every client on every loop. `loops`
/// beyond the listeners have none: the first hands them connections.
fn serve<H>(
    (listeners, loops): (Vec<TcpListener>, usize),
    config: Config,
    args: &Args,
    mut make: impl FnMut() -> H,
    banner: String,
) -> io::Result<()>
where
    H: Handler + Send + 'static + Gauges,
    H::Data: Send,
{
    let mut poll = Poll::new()?;
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)?;
    let compression = compression(&config);
    let n = loops.max(listeners.len());
    let mut listeners = listeners.into_iter();
    let first = listeners
        .next()
        .ok_or_else(|| io::Error::other("no listener"))?;
    let mut servers = vec![Server::embed(
        poll.registry(),
        SERVER_TOKENS,
        first,
        config.clone(),
        make(),
    )?];
    for listener in listeners {
        servers.push(Server::with_listener(listener, config.clone(), make())?);
    }
    let round_robin = servers.len() < n;
    while servers.len() < n {
        servers.push(Server::without_listener(config.clone(), make())?);
    }
    let tls = &args.tls;
    if let Some(redis) = &args.redis.redis {
        for server in &mut servers {
            server.set_redis(redis.clone());
        }
        let over = if redis.tls.is_some() { " over TLS" } else { "" };
        info!(
            "redis: topics shared through {}:{}{over} (channels {}*)",
            redis.host, redis.port, redis.prefix
        );
    }
    let scheme = match tls.load() {
        Some(Ok(tls_config)) => {
            for server in &mut servers {
                server.set_tls(tls_config.clone());
            }
            "wss"
        }
        Some(Err(e)) => return Err(io::Error::new(io::ErrorKind::InvalidInput, e)),
        None => "ws",
    };
    let mut metrics = match args.metrics {
        Some(addr) => {
            let listener = TcpListener::bind(addr).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("--metrics {addr}: cannot listen: {}", describe(&e)),
                )
            })?;
            let sources = metrics::Sources {
                loops: servers.iter_mut().map(Server::stats_handle).collect(),
                programs: servers
                    .iter()
                    .filter_map(|s| s.handler().programs_running())
                    .collect(),
                redis: args.redis.redis.is_some(),
            };
            let mut config = Config::default();
            config.max_clients = METRICS_CLIENTS;
            let endpoint = metrics::Endpoint::new(sources);
            // A loop of its own, on a thread of its own: a scrape (which
            // renders every counter) never delays a WebSocket client, and
            // it reads nothing but the loops' snapshots.
            let mut m = Server::with_listener(listener, config, endpoint)?;
            info!("metrics on http://{}/metrics", m.local_addr());
            let stop = m.shutdown_handle();
            let thread = std::thread::Builder::new()
                .name("wsloop-metrics".into())
                .spawn(move || m.run())?;
            Some((stop, thread))
        }
        None => None,
    };
    let (mut server, others) = Loops::link(servers)?.spawn_others()?;
    let addr = server.local_addr();
    let banner = banner.replace("ADDR", &addr.to_string());
    let banner = if scheme == "wss" {
        banner.replace("http://", "https://")
    } else {
        banner
    };
    let loops = match (n, round_robin) {
        (1, _) => String::new(),
        (n, false) => format!(", {n} loops"),
        (n, true) => format!(", {n} loops, connections handed round-robin"),
    };
    info!("listening on {scheme}://{addr} ({banner}){loops}");
    info!("{compression}");

    // Reaches every loop: a shutdown or a new certificate goes to all.
    let handle = server.handle();
    let mut stopping = false;
    let mut events = Events::with_capacity(1024);
    let result = loop {
        if server.is_shut_down() {
            break Ok(());
        }
        let timeout = server.poll_timeout(None);
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                handle.shutdown();
                break Err(e);
            }
            events.clear();
        }
        for event in events.iter() {
            if event.token() == SIGNALS {
                for signal in signals.pending() {
                    if signal == SIGHUP {
                        match tls.load() {
                            Some(Ok(tls_config)) => match handle.set_tls(tls_config) {
                                Ok(()) => info!(
                                    "SIGHUP: certificate and key reloaded; new connections get them"
                                ),
                                Err(e) => warn!("SIGHUP: not reloaded: {e}"),
                            },
                            Some(Err(e)) => {
                                warn!("SIGHUP: {e}; keeping the certificate in use");
                            }
                            None => info!("SIGHUP: no certificate to reload (no --tls-cert)"),
                        }
                        continue;
                    }
                    let name = if signal == SIGINT {
                        "SIGINT"
                    } else {
                        "SIGTERM"
                    };
                    if stopping {
                        warn!("{name} again: exiting without waiting for the clients");
                        return Ok(());
                    }
                    info!("{name}: closing every client with 1001 and stopping");
                    stopping = true;
                    handle.shutdown();
                }
            } else if server.owns(event.token()) {
                server.handle_event(event);
            }
        }
        server.tick();
    };
    let joined = others.join();
    if let Some((stop, thread)) = metrics.take() {
        stop.shutdown();
        let _ = thread.join();
    }
    info!("stopped");
    result.and(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_takes_addresses_as_they_are_and_resolves_names() {
        let addrs = |s: &str| {
            parse_listen(s)
                .unwrap_or_else(|e| panic!("{s:?}: {e}"))
                .addrs
        };
        let v4: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let v6: SocketAddr = "[::1]:8080".parse().unwrap();
        assert_eq!(addrs("127.0.0.1:8080"), [v4]);
        assert_eq!(addrs("[::1]:8080"), [v6]);
        // /etc/hosts: no DNS query leaves the machine.
        let local = addrs("localhost:8080");
        assert_eq!(local[0], v4, "IPv4 first: {local:?}");
        assert!(local.iter().all(|a| a.ip().is_loopback()), "{local:?}");
        assert_eq!(
            parse_listen("localhost:8080").unwrap().given,
            "localhost:8080"
        );
        for (s, says) in [
            ("nonsense", "has no port"),
            ("127.0.0.1", "has no port"),
            ("[::1]", "has no port"),
            (":8080", "has no host"),
            ("localhost:99999", "not a number from 0 to 65535"),
            ("localhost:http", "not a number from 0 to 65535"),
            ("::1:8080", "goes in brackets"),
            // Malformed, so the resolver refuses it without asking DNS.
            (
                "no-such-host..invalid:8080",
                "cannot resolve \"no-such-host..invalid\"",
            ),
        ] {
            let e = parse_listen(s).unwrap_err();
            assert!(e.contains(says), "{s:?}: {e}");
        }
    }

    /// `n` addresses already taken on 127.0.0.1, kept while the listeners live.
    fn taken(n: usize) -> Vec<std::net::TcpListener> {
        (0..n)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect()
    }

    #[test]
    fn listen_binds_the_first_address_that_binds() {
        let busy = taken(2);
        let busy: Vec<SocketAddr> = busy.iter().map(|l| l.local_addr().unwrap()).collect();
        let free: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let listen = |addrs: Vec<SocketAddr>| Listen {
            given: "somewhere:1".into(),
            from_name: true,
            addrs,
        };
        let got = bind_first(&listen(vec![busy[0], free, busy[1]]), 1).unwrap();
        let at = got[0].local_addr().unwrap();
        assert!(!busy.contains(&at) && at.port() != 0, "{at}");
        // Three loops: three listeners sharing the port the first got.
        let three = bind_first(&listen(vec![busy[0], free]), 3).unwrap();
        let ports: Vec<u16> = three
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        assert_eq!(ports, [ports[0]; 3]);
        // One address: the reason alone, as before names resolved.
        assert_eq!(
            bind_first(&listen(vec![busy[0]]), 1).unwrap_err(),
            "address already in use"
        );
        // Several: every address with its reason.
        assert_eq!(
            bind_first(&listen(busy.clone()), 2).unwrap_err(),
            format!(
                "{}: address already in use; {}: address already in use",
                busy[0], busy[1]
            )
        );
    }

    #[test]
    fn durations_are_humantime_or_plain_seconds() {
        let ok = |s: &str| parse_duration(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
        for (s, ms) in [
            ("60", 60_000),
            ("0.5", 500),
            ("0", 0),
            ("90s", 90_000),
            ("1.5s", 1_500),
            ("500ms", 500),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("5sec", 5_000),
            ("5secs", 5_000),
            ("2min", 120_000),
            ("90 s", 90_000),
            (" 1m 30s ", 90_000),
            ("1h30m", 5_400_000),
        ] {
            assert_eq!(ok(s), Duration::from_millis(ms), "{s:?}");
        }
        for s in ["", "soon", "-3", "-3s", "5 parsecs", "1.2.3", "1e3"] {
            let e = parse_duration(s).unwrap_err();
            assert!(e.contains("is not a duration such as 60"), "{s:?}: {e}");
        }
        assert!(matches!(parse_idle("off"), Ok(Idle(None))));
        assert!(matches!(parse_idle("None"), Ok(Idle(None))));
        assert!(matches!(parse_idle("0s"), Ok(Idle(None))));
        assert!(matches!(parse_idle("2m"), Ok(Idle(Some(d))) if d.as_secs() == 120));
    }

    #[test]
    fn sizes_are_powers_of_1024_with_or_without_the_i() {
        let ok = |s: &str| parse_bytes(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
        for (s, bytes) in [
            ("0", 0),
            ("65536", 65_536),
            ("1b", 1),
            ("64k", 64 << 10),
            ("64KB", 64 << 10),
            ("64KiB", 64 << 10),
            ("64 kib", 64 << 10),
            (" 16MiB ", 16 << 20),
            ("16MB", 16 << 20),
            ("16m", 16 << 20),
            ("1GiB", 1 << 30),
            ("1.5KiB", 1536),
        ] {
            assert_eq!(ok(s), bytes, "{s:?}");
        }
        for s in ["", "lots", "-5", "12 parsecs", "1 KiBs"] {
            let e = parse_bytes(s).unwrap_err();
            assert!(e.contains("is not a size such as 65536"), "{s:?}: {e}");
        }
        assert!(parse_bytes("99999999999GiB")
            .unwrap_err()
            .contains("too large"));
        assert_eq!(parse_size("0"), Err("must be at least 1 byte".into()));
        assert_eq!(parse_size("1"), Ok(1));
    }
}
