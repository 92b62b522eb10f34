//! A clock on a topic, fed from another thread: every client subscribes to
//! the topic "ticks" when it opens, and a plain std thread (not a loop)
//! publishes to it through a [`LoopHandle`](wsloop::LoopHandle) every
//! interval. Each tick is a text message `STAMP SEQ`: STAMP is
//! `CLOCK_MONOTONIC` in nanoseconds read just before the publish call, SEQ
//! counts the ticks. `CLOCK_MONOTONIC` is one clock for every process of
//! the machine (an `Instant` is not comparable across processes), so a
//! client on the same machine subtracts the stamp from its own reading:
//! the time from the handle's call to delivery, through the handle's
//! queue, the loop's wake-up, one encoding shared by every subscriber and
//! the kernel. `loadgen ticks` does exactly that (scripts/bench-topics).
//!
//! ```text
//! cargo run --release --example ticker -- --listen 127.0.0.1:9003 --threads 2 --interval 1ms
//! cargo run --release --example loadgen -- ticks --url ws://127.0.0.1:9003/ -c 1000
//! ```
//!
//! Any path upgrades. The process runs until it is killed (SIGTERM,
//! Ctrl-C); the publisher stops at the first `Closed`, and counts the
//! ticks a full queue refused (`HandleError::Full`), which it skips.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use wsloop::{Config, ConnId, Ctx, Decision, HandleError, Handler, Loops, Message, Request};

const TOPIC: &str = "ticks";

const USAGE: &str = "\
usage: ticker [--listen ADDR] [--threads N] [--interval DUR] [--max-clients N]

  --listen ADDR      where to listen [default 127.0.0.1:9003]
  --threads N        loops, each on its own thread (SO_REUSEPORT), linked [default 1]
  --interval DUR     time between ticks: 1ms, 250us, 1s [default 1ms]
  --max-clients N    clients at once, over every loop [default 20000]

Every client is subscribed to \"ticks\"; a thread of its own publishes
`STAMP SEQ` through a LoopHandle every interval (STAMP: CLOCK_MONOTONIC in
nanoseconds at the call).";

struct Ticker;

impl Handler for Ticker {
    type Data = ();

    fn on_open(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, _: &Request) -> Decision {
        ctx.subscribe(id, TOPIC);
        Decision::accept()
    }

    fn on_message(&mut self, _: &mut Ctx<'_, ()>, _: ConnId, _: Message<'_>) {}
}

/// `CLOCK_MONOTONIC` now, in nanoseconds.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC exists
    // on every Linux (and the call cannot fail with a valid pointer).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `1ms`, `250us`, `1s` (humantime's durations, as the binary's flags).
fn parse_interval(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(format!("{s:?}: the interval must be more than zero")),
        Err(e) => Err(format!("{s:?}: {e}")),
    }
}

struct Opts {
    listen: SocketAddr,
    threads: usize,
    interval: Duration,
    max_clients: usize,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        listen: "127.0.0.1:9003".parse().expect("a valid address"),
        threads: 1,
        interval: Duration::from_millis(1),
        max_clients: 20_000,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => o.listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--threads" => {
                o.threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?;
            }
            "--interval" => o.interval = parse_interval(value()?)?,
            "--max-clients" => {
                o.max_clients = value()?
                    .parse()
                    .map_err(|e| format!("--max-clients: {e}"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    if o.threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    Ok(o)
}

fn main() -> std::io::Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let o = match parse(&argv) {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return Ok(());
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let mut config = Config::default();
    config.max_clients = o.max_clients;
    let loops = Loops::bind(o.listen, o.threads, config, |_| Ticker)?;
    let handle = loops.handle();
    eprintln!(
        "ticker: {} loop{} on ws://{}/, a tick to {TOPIC:?} every {:?}",
        o.threads,
        if o.threads == 1 { "" } else { "s" },
        loops.local_addr(),
        o.interval
    );
    let interval = o.interval;
    let feed = std::thread::Builder::new()
        .name("ticker".into())
        .spawn(move || {
            let (mut seq, mut full) = (0u64, 0u64);
            let mut next = Instant::now();
            let mut text = String::with_capacity(48);
            loop {
                next += interval;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else if now - next > interval {
                    next = now; // fell behind (a long sleep): no burst to catch up
                }
                text.clear();
                use std::fmt::Write as _;
                let _ = write!(text, "{} {seq}", monotonic_ns());
                match handle.publish(TOPIC, Message::Text(&text)) {
                    Ok(()) => {}
                    Err(HandleError::Full) => {
                        full += 1;
                        if full.is_power_of_two() {
                            eprintln!(
                                "ticker: {full} ticks refused so far (a loop's queue was full)"
                            );
                        }
                    }
                    Err(_) => return, // the loops are gone
                }
                seq += 1;
            }
        })?;
    let result = loops.run();
    let _ = feed.join();
    result
}
