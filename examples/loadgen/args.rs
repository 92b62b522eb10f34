//! Command-line flags, parsed by hand (the example uses only mio and
//! wsloop).

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

pub const USAGE: &str = "\
usage: loadgen MODE [FLAGS]

A single-threaded mio WebSocket load generator (pin it to one core with
taskset). Modes:
  echo       C connections, D messages of S bytes in flight on each, every
             echo checked; T seconds measured after a W-second warm-up
  idle       open C connections, hold them (answering pings) and report the
             server's resident memory per connection
  handshake  C slots, each: connect, upgrade, close, wait for the server's
             close and TCP FIN, repeat
  broadcast  C receivers on a chat route (wsloop's /chat) and one sender with
             D messages of S bytes in flight; a message is done when every
             receiver has it; counts deliveries
  ticks      C connections that only receive: each text message starts
             with a CLOCK_MONOTONIC stamp in nanoseconds (then, optionally,
             a space and a sequence number), as examples/ticker publishes
             them; latency = this process's CLOCK_MONOTONIC on reading it
             minus the stamp (same machine: one clock); counts messages

Flags:
  --url URL            ws://HOST:PORT/PATH or wss://... [default ws://127.0.0.1:8080/echo,
                       broadcast: ws://127.0.0.1:8080/chat, ticks: ws://127.0.0.1:9003/]
      --also-url URL   another server of the same service (repeatable): the
                       connections are spread over --url and these in turn
                       (connection i to the (i mod n)-th), with --url's path;
                       broadcast's sender stays on --url, so its messages
                       reach the others' receivers through the servers'
                       backplane (wsloop --redis)
  -c, --connections N  connections (handshake: slots, broadcast: receivers)
                       [default echo 100, idle 1000, handshake 16, broadcast 100,
                       ticks 1000]
  -d, --depth N        messages in flight per connection (broadcast: in total)
                       [default echo 1, broadcast 4]
  -s, --size SIZE      message size: 16, 1KiB, 64KiB [default echo 16, broadcast 100]
      --binary         binary messages (default text)
      --payload KIND   echo: `ascii` (one message of printable characters
                       in turn) or `chat` (64 KiB worth, at least 16, of
                       different JSON chat messages of words, compressible,
                       sent in turn) [default ascii, with --deflate chat]
      --deflate        echo, idle: offer permessage-deflate (RFC 7692) and
                       send the messages compressed (RSV1, each compressed
                       and masked once, ahead of the run, without context);
                       every answer is inflated (one decompressor per
                       connection: the server may keep context) and
                       checked. echo offers `permessage-deflate;
                       client_no_context_takeover; client_max_window_bits`;
                       idle offers what browsers do (`permessage-deflate;
                       client_max_window_bits`) and each connection
                       exchanges --messages compressed messages of
                       --size bytes [default 1KiB] before it idles, so
                       that the server holds the codecs it keeps per
                       connection
      --messages N     idle --deflate: messages each connection exchanges,
                       one at a time, before it idles; 64 of 1 KiB fill the
                       32 KiB windows, so every page of them is resident
                       [default 1]
  -t, --duration SECS  measured window (idle: the hold) [default 10, idle 5]
  -w, --warmup SECS    warm-up before the window (idle: settle) [default 2, idle 1]
      --tls-ca FILE    wss:// URLs: the PEM CA (or self-signed certificate)
                       to trust; TLS with rustls (aws-lc-rs), TLS 1.3 or
                       1.2 as the server picks, ALPN http/1.1, every
                       handshake a full one
      --tls-resume     wss://: resume TLS sessions (tickets) after the
                       first connection
      --server-pid PID read the server's CPU time and memory from /proc/PID
                       (CPU: the server's and its children's, reaped or
                       running; idle also reports the PSS of the server
                       and its children together); repeatable: the CPU of
                       every PID given is added up (servers and a Redis
                       behind them), memory is the first's
      --connect-burst N  connections being set up at once [default 256]
      --setup-timeout SECS  limit for opening every connection [default 60]
  -q, --quiet          no per-second lines on stderr
  -h, --help           this text

Output: a human summary on stdout, then one line of JSON (the last line).
The JSON's setup_s is how long opening (and, broadcast, joining) every
connection took; with --server-pid, rss_after_join_kib and
rss_peak_after_join_kib are the server's VmRSS and VmHWM (its peak so far)
at that moment.
Exit status 0 when there were no errors, 1 otherwise, 2 for bad flags.
Durations are seconds (2, 0.5) or carry a unit (500ms, 2s, 1m).";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Echo,
    Idle,
    Handshake,
    Broadcast,
    Ticks,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Echo => "echo",
            Mode::Idle => "idle",
            Mode::Handshake => "handshake",
            Mode::Broadcast => "broadcast",
            Mode::Ticks => "ticks",
        })
    }
}

/// A `ws://` or `wss://` URL, resolved.
#[derive(Debug, Clone)]
pub struct Url {
    pub text: String,
    /// `wss://`: TLS (trusting `--tls-ca`).
    pub tls: bool,
    /// The host without its port: the TLS server name.
    pub name: String,
    pub addr: SocketAddr,
    /// The `Host` header: the URL's authority.
    pub host: String,
    /// Path and query, as sent in the request line.
    pub target: String,
}

impl Url {
    pub fn parse(s: &str) -> Result<Url, String> {
        let (rest, tls) = match (s.strip_prefix("ws://"), s.strip_prefix("wss://")) {
            (Some(rest), _) => (rest, false),
            (_, Some(rest)) => (rest, true),
            _ => return Err(format!("{s:?}: only ws:// and wss:// URLs are supported")),
        };
        let (host, target) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        if host.is_empty() {
            return Err(format!("{s:?}: no host"));
        }
        let has_port = host.rsplit_once(':').is_some_and(|(_, p)| !p.contains(']'));
        let with_port = if has_port {
            host.to_owned()
        } else {
            format!("{host}:{}", if tls { 443 } else { 80 })
        };
        let name = match host.rsplit_once(':') {
            Some((name, _)) if has_port => name,
            _ => host,
        };
        let name = name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("{s:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("{s:?}: host has no address"))?;
        Ok(Url {
            text: s.to_owned(),
            tls,
            name,
            addr,
            host: host.to_owned(),
            target,
        })
    }

    /// The target with `key=value` added to its query.
    pub fn with_query(&self, pair: &str) -> String {
        let sep = if self.target.contains('?') { '&' } else { '?' };
        format!("{}{sep}{pair}", self.target)
    }
}

/// What the echo messages contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// One message: printable ASCII in turn (binary: a byte pattern).
    Ascii,
    /// Several JSON-like chat messages of words, sent in turn.
    Chat,
}

#[derive(Debug, Clone)]
pub struct Opts {
    pub mode: Mode,
    pub url: Url,
    pub connections: usize,
    pub depth: usize,
    pub size: usize,
    pub binary: bool,
    pub payload: Payload,
    pub deflate: bool,
    /// idle --deflate: messages exchanged before idling.
    pub messages: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub server_pid: Option<u32>,
    /// More processes whose CPU counts as the server's (`--server-pid`
    /// given again).
    pub more_pids: Vec<u32>,
    /// More servers of the same service (`--also-url`).
    pub also: Vec<Url>,
    /// wss://: the PEM CA (or self-signed certificate) to trust.
    pub tls_ca: Option<std::path::PathBuf>,
    /// wss://: resume sessions instead of a full handshake each time.
    pub tls_resume: bool,
    pub connect_burst: usize,
    pub setup_timeout: Duration,
    pub quiet: bool,
}

/// `16`, `1KiB`, `64k`, `1MiB`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: usize = n.parse().map_err(|_| format!("{s:?} is not a size"))?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        _ => return Err(format!("{s:?}: unknown size unit")),
    };
    Ok(n << shift)
}

/// `2`, `0.5`, `500ms`, `2s`, `1m`.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().map_err(|_| format!("{s:?} is not a duration"))?;
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        _ => return Err(format!("{s:?}: unknown duration unit")),
    };
    Duration::try_from_secs_f64(n * scale).map_err(|_| format!("{s:?} is out of range"))
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{flag}: {v:?} is not a valid number"))
}

impl Opts {
    pub fn parse(args: &[String]) -> Result<Opts, String> {
        let mut it = args.iter();
        let mode = match it.next().map(String::as_str) {
            Some("echo") => Mode::Echo,
            Some("idle") => Mode::Idle,
            Some("handshake") => Mode::Handshake,
            Some("broadcast") => Mode::Broadcast,
            Some("ticks") => Mode::Ticks,
            Some("-h" | "--help") => return Err(String::new()),
            Some(other) => return Err(format!("unknown mode {other:?}")),
            None => return Err("a mode is required".into()),
        };
        let (mut url, mut connections, mut depth, mut size) = (None, None, None, None);
        let (mut duration, mut warmup) = (None, None);
        let mut opts_binary = false;
        let (mut payload, mut deflate, mut messages) = (None, false, 1);
        let mut server_pid = None;
        let mut more_pids = Vec::new();
        let mut also = Vec::new();
        let mut tls_ca = None;
        let mut tls_resume = false;
        let mut connect_burst = 256;
        let mut setup_timeout = Duration::from_secs(60);
        let mut quiet = false;
        while let Some(arg) = it.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
                _ => (arg.as_str(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| it.next().cloned())
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag {
                "--url" => url = Some(Url::parse(&value()?)?),
                "--also-url" => also.push(Url::parse(&value()?)?),
                "-c" | "--connections" => connections = Some(number(flag, &value()?)?),
                "-d" | "--depth" => depth = Some(number(flag, &value()?)?),
                "-s" | "--size" => size = Some(parse_size(&value()?)?),
                "--binary" => opts_binary = true,
                "--text" => opts_binary = false,
                "--payload" => {
                    payload = Some(match value()?.as_str() {
                        "ascii" => Payload::Ascii,
                        "chat" => Payload::Chat,
                        other => return Err(format!("--payload: unknown kind {other:?}")),
                    })
                }
                "--deflate" => deflate = true,
                "--messages" => messages = number(flag, &value()?)?,
                "-t" | "--duration" => duration = Some(parse_secs(&value()?)?),
                "-w" | "--warmup" => warmup = Some(parse_secs(&value()?)?),
                "--server-pid" if server_pid.is_some() => more_pids.push(number(flag, &value()?)?),
                "--server-pid" => server_pid = Some(number(flag, &value()?)?),
                "--tls-ca" => tls_ca = Some(std::path::PathBuf::from(value()?)),
                "--tls-resume" => tls_resume = true,
                "--connect-burst" => connect_burst = number(flag, &value()?)?,
                "--setup-timeout" => setup_timeout = parse_secs(&value()?)?,
                "-q" | "--quiet" => quiet = true,
                "-h" | "--help" => return Err(String::new()),
                _ => return Err(format!("unknown flag {arg:?}")),
            }
        }
        let default_url = match mode {
            Mode::Broadcast => "ws://127.0.0.1:8080/chat",
            Mode::Ticks => "ws://127.0.0.1:9003/",
            _ => "ws://127.0.0.1:8080/echo",
        };
        let url = match url {
            Some(u) => u,
            None => Url::parse(default_url)?,
        };
        let opts = Opts {
            mode,
            url,
            connections: connections.unwrap_or(match mode {
                Mode::Echo | Mode::Broadcast => 100,
                Mode::Idle | Mode::Ticks => 1000,
                Mode::Handshake => 16,
            }),
            depth: depth.unwrap_or(if mode == Mode::Broadcast { 4 } else { 1 }),
            size: size.unwrap_or(match mode {
                Mode::Broadcast => 100,
                Mode::Idle if deflate => 1024,
                _ => 16,
            }),
            binary: opts_binary,
            payload: payload.unwrap_or(if deflate {
                Payload::Chat
            } else {
                Payload::Ascii
            }),
            deflate,
            messages,
            duration: duration.unwrap_or(Duration::from_secs(if mode == Mode::Idle {
                5
            } else {
                10
            })),
            warmup: warmup.unwrap_or(Duration::from_secs(if mode == Mode::Idle { 1 } else { 2 })),
            server_pid,
            more_pids,
            also,
            tls_ca,
            tls_resume,
            connect_burst: connect_burst.max(1),
            setup_timeout,
            quiet,
        };
        if opts.connections == 0 || opts.depth == 0 {
            return Err("--connections and --depth must be at least 1".into());
        }
        if opts.mode == Mode::Broadcast && (opts.size < 16 || opts.binary) {
            return Err("broadcast sends text messages of at least 16 bytes".into());
        }
        if opts.deflate && !matches!(opts.mode, Mode::Echo | Mode::Idle) {
            return Err("--deflate is for echo and idle".into());
        }
        if opts.messages == 0 {
            return Err("--messages must be at least 1".into());
        }
        if opts.connections >= 1 << 24 {
            return Err("at most 16,777,215 connections".into());
        }
        Ok(opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("ws://127.0.0.1:9001/chat?x=1").unwrap();
        assert_eq!(u.addr.port(), 9001);
        assert_eq!(u.host, "127.0.0.1:9001");
        assert_eq!(u.target, "/chat?x=1");
        assert_eq!(u.with_query("name=s"), "/chat?x=1&name=s");
        let u = Url::parse("ws://127.0.0.1:9001").unwrap();
        assert_eq!(u.target, "/");
        assert_eq!(u.with_query("name=s"), "/?name=s");
        assert!(!u.tls);
        let u = Url::parse("wss://localhost:8443/echo").unwrap();
        assert!(u.tls);
        assert_eq!((u.name.as_str(), u.addr.port()), ("localhost", 8443));
        let u = Url::parse("wss://127.0.0.1/").unwrap();
        assert_eq!((u.name.as_str(), u.addr.port()), ("127.0.0.1", 443));
        assert!(Url::parse("http://x/").is_err());
    }

    #[test]
    fn deflate_flags() {
        let args = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let o = Opts::parse(&args("echo --deflate")).unwrap();
        assert!(o.deflate);
        assert_eq!(o.payload, Payload::Chat);
        let o = Opts::parse(&args("echo --payload chat")).unwrap();
        assert!(!o.deflate);
        assert_eq!(o.payload, Payload::Chat);
        let o = Opts::parse(&args("idle --deflate --payload ascii")).unwrap();
        assert_eq!((o.deflate, o.payload), (true, Payload::Ascii));
        assert_eq!((o.size, o.messages), (1024, 1));
        let o = Opts::parse(&args("idle --deflate --messages 64 -s 2KiB")).unwrap();
        assert_eq!((o.size, o.messages), (2048, 64));
        assert!(Opts::parse(&args("handshake --deflate")).is_err());
        assert!(Opts::parse(&args("echo --payload json")).is_err());
        assert!(Opts::parse(&args("ticks --deflate")).is_err());
        let o = Opts::parse(&args("ticks")).unwrap();
        assert_eq!((o.mode, o.connections), (Mode::Ticks, 1000));
        assert_eq!(o.url.target, "/");
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("16"), Ok(16));
        assert_eq!(parse_secs("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_secs("2"), Ok(Duration::from_secs(2)));
    }
}
