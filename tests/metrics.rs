//! `--metrics`: the binary's Prometheus endpoint, scraped over HTTP and
//! parsed with the Prometheus project's own Python parser
//! (tests/metrics/parse.py), against a count of what the test did: clients
//! per route, handshakes accepted and refused by status, messages and
//! bytes both ways, closes by code, a backpressure close, topics, and the
//! Redis link. Skipped loudly without python3's `prometheus_client`, a
//! failure under `WSLOOP_REQUIRE_PEERS=1`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

#[path = "support/process.rs"]
mod process;
#[path = "support/redis.rs"]
mod redis;
#[path = "support/ws_client.rs"]
mod ws_client;
#[path = "support/wsloop_bin.rs"]
mod wsloop_bin;

use ws_client::{close_code, connect, text, Ws};
use wsloop_bin::Wsloop;

const ORIGIN: &str = "http://good.example";

/// Samples by `name labels`, as the parser printed them.
type Samples = BTreeMap<String, f64>;

fn parser_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import prometheus_client.openmetrics.parser"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return true;
    }
    if std::env::var_os("WSLOOP_REQUIRE_PEERS").is_some_and(|v| v == "1") {
        panic!("metrics test: python3 with prometheus_client is missing (WSLOOP_REQUIRE_PEERS=1)");
    }
    let _ = std::io::stderr().write_all(
        b"\n==================================================================\n\
          SKIPPED: the metrics test did not run: python3's prometheus_client is missing.\n\
          Install: pip install -r tests/metrics/requirements.txt (.ci/run does)\n\
          Set WSLOOP_REQUIRE_PEERS=1 to make this a failure.\n\
          ==================================================================\n",
    );
    false
}

/// GET /metrics, checked and parsed by prometheus_client.
fn scrape(addr: SocketAddr) -> Samples {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.contains("application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    let mut parser = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/metrics/parse.py"
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    parser
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = parser.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser refused it: {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').unwrap();
            (key.to_owned(), value.parse().unwrap())
        })
        .collect()
}

/// Scrapes until every `(sample, value)` of `want` holds (the loops copy
/// their counters every 100 ms), or fails with the last scrape.
fn wait_for(addr: SocketAddr, want: &[(&str, f64)]) -> Samples {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let got = scrape(addr);
        let missing: Vec<_> = want
            .iter()
            .filter(|(k, v)| got.get(*k) != Some(v))
            .map(|(k, v)| format!("{k} = {v} (got {:?})", got.get(*k)))
            .collect();
        if missing.is_empty() {
            return got;
        }
        assert!(Instant::now() < end, "{missing:#?}\n{got:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An upgrade request sent by hand; returns the status.
fn upgrade_status(addr: SocketAddr, path: &str, extra: &str) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap()
}

/// What clients received, counted as the server counts what it sent.
#[derive(Default)]
struct Tally {
    messages: u64,
    bytes: u64,
}

impl Tally {
    fn text(&mut self, ws: &mut Ws) -> String {
        let t = text(ws);
        self.messages += 1;
        self.bytes += t.len() as u64;
        t
    }
}

fn ws(front: SocketAddr, path: &str) -> Ws {
    connect(front, path, &[("Origin", ORIGIN)])
}

#[test]
fn the_endpoint_counts_what_clients_did_across_two_loops() {
    if !parser_available() {
        return;
    }
    let mport = redis::free_port();
    let maddr: SocketAddr = format!("127.0.0.1:{mport}").parse().unwrap();
    let server = Wsloop::start(&[
        "--threads",
        "2",
        // Each connection to the next loop: which loop holds what is known.
        "--balance",
        "round-robin",
        "--metrics",
        &maddr.to_string(),
        "--allow-origin",
        ORIGIN,
        "--no-deflate",
    ]);
    assert_eq!(server.wait_log_count("metrics on http://", 1), 1);
    let front = server.addr;
    let mut sent = Tally::default();

    // Echo: 3 clients, 5 messages of 10 bytes each.
    let mut echoes: Vec<Ws> = (0..3).map(|_| ws(front, "/echo")).collect();
    for e in &mut echoes {
        for i in 0..5 {
            e.send(Message::text(format!("message {i:02}"))).unwrap();
        }
        for i in 0..5 {
            assert_eq!(sent.text(e), format!("message {i:02}"));
        }
    }
    // Chat: a welcome each, one join notice, and a message to both.
    let mut c1 = ws(front, "/chat?name=c1");
    sent.text(&mut c1);
    let mut c2 = ws(front, "/chat?name=c2");
    sent.text(&mut c2);
    assert_eq!(sent.text(&mut c1), "c2 joined");
    c1.send(Message::text("hey")).unwrap();
    assert_eq!(sent.text(&mut c1), "c1: hey");
    assert_eq!(sent.text(&mut c2), "c1: hey");
    // Refused: a path (404), an origin (403), a version (426).
    assert_eq!(
        upgrade_status(
            front,
            "/nope",
            &format!("Origin: {ORIGIN}\r\nSec-WebSocket-Version: 13\r\n")
        ),
        404
    );
    assert_eq!(
        upgrade_status(
            front,
            "/echo",
            "Origin: http://evil.example\r\nSec-WebSocket-Version: 13\r\n"
        ),
        403
    );
    assert_eq!(
        upgrade_status(
            front,
            "/echo",
            &format!("Origin: {ORIGIN}\r\nSec-WebSocket-Version: 8\r\n")
        ),
        426
    );

    let received = 15 + 1;
    let got = wait_for(
        maddr,
        &[
            ("wsloop_loops -", 2.0),
            ("wsloop_clients -", 5.0),
            ("wsloop_open_connections path=/echo", 3.0),
            ("wsloop_open_connections path=/chat", 2.0),
            ("wsloop_handshakes_accepted_total -", 5.0),
            ("wsloop_handshakes_refused_total status=404", 1.0),
            ("wsloop_handshakes_refused_total status=403", 1.0),
            ("wsloop_handshakes_refused_total status=426", 1.0),
            ("wsloop_messages_received_total -", received as f64),
            ("wsloop_message_bytes_received_total -", (150 + 3) as f64),
            ("wsloop_messages_sent_total -", sent.messages as f64),
            ("wsloop_message_bytes_sent_total -", sent.bytes as f64),
            // The echo clients on loops 0, 1, 0; c1 on 1, c2 on 0.
            ("wsloop_topics loop=0", 1.0),
            ("wsloop_topics loop=1", 1.0),
            ("wsloop_subscriptions -", 2.0),
            ("wsloop_backpressure_closes_total -", 0.0),
        ],
    );
    assert!(
        !got.keys().any(|k| k.starts_with("wsloop_closes_total")),
        "none yet"
    );
    assert!(
        !got.keys().any(|k| k.starts_with("wsloop_redis")),
        "no --redis"
    );

    // Closes: 1000 and 4001 by the clients, 1006 by a vanished one.
    let mut a = echoes.pop().unwrap();
    a.close(None).unwrap();
    close_code(&mut a);
    let mut b = echoes.pop().unwrap();
    b.close(Some(CloseFrame {
        code: CloseCode::from(4001),
        reason: "bye".into(),
    }))
    .unwrap();
    assert_eq!(close_code(&mut b), 4001);
    drop(echoes); // the last echo client: TCP closed, no close frame

    // A reader that stops: 24 MiB published to it pass its 16 MiB queue
    // (the others read all of it).
    let mut slow = ws(front, "/chat?name=slow");
    text(&mut slow);
    for c in [&mut c1, &mut c2] {
        assert_eq!(text(c), "slow joined");
    }
    let big = "x".repeat(1 << 20);
    for _ in 0..24 {
        c2.send(Message::text(big.as_str())).unwrap();
        for c in [&mut c1, &mut c2] {
            // "slow left" may come between.
            while text(c).len() < big.len() {}
        }
    }
    let got = wait_for(
        maddr,
        &[
            ("wsloop_closes_total code=1005", 1.0),
            ("wsloop_closes_total code=4xxx", 1.0),
            ("wsloop_closes_total code=1006", 1.0),
            ("wsloop_closes_total code=1008", 1.0),
            ("wsloop_backpressure_closes_total -", 1.0),
            ("wsloop_open_connections path=/echo", 0.0),
        ],
    );
    // The slow reader went, the others stay.
    assert_eq!(got["wsloop_open_connections path=/chat"], 2.0, "{got:#?}");
    assert_eq!(got["wsloop_handshakes_accepted_total -"], 6.0);
}

#[test]
fn the_redis_link_shows_up_and_down() {
    if !parser_available() || !redis::available("the metrics test's Redis part") {
        return;
    }
    let mut r = redis::Redis::start(&[]);
    let mport = redis::free_port();
    let maddr: SocketAddr = format!("127.0.0.1:{mport}").parse().unwrap();
    let server = Wsloop::start(&["--redis", &r.url(), "--metrics", &maddr.to_string()]);
    assert_eq!(server.wait_log_count("redis: link up", 1), 1);
    let mut c1 = connect(server.addr, "/chat?name=c1", &[]);
    text(&mut c1);
    c1.send(Message::text("to redis")).unwrap();
    assert_eq!(text(&mut c1), "c1: to redis");
    wait_for(
        maddr,
        &[
            ("wsloop_redis_links_up -", 1.0),
            // Its join notice, and its message.
            ("wsloop_redis_published_total -", 2.0),
            ("wsloop_redis_reconnects_total -", 0.0),
        ],
    );
    r.kill();
    wait_for(maddr, &[("wsloop_redis_links_up -", 0.0)]);
    c1.send(Message::text("nowhere")).unwrap();
    assert_eq!(text(&mut c1), "c1: nowhere");
    wait_for(maddr, &[("wsloop_redis_dropped_total -", 1.0)]);
    r.restart();
    wait_for(
        maddr,
        &[
            ("wsloop_redis_links_up -", 1.0),
            ("wsloop_redis_reconnects_total -", 1.0),
        ],
    );
}

#[test]
fn programs_running_are_counted() {
    if !parser_available() {
        return;
    }
    let mport = redis::free_port();
    let maddr: SocketAddr = format!("127.0.0.1:{mport}").parse().unwrap();
    let server = Wsloop::start(&["--route", "/cat=cat", "--metrics", &maddr.to_string()]);
    let mut a = connect(server.addr, "/cat", &[]);
    let mut b = connect(server.addr, "/cat", &[]);
    for ws in [&mut a, &mut b] {
        ws.send(Message::text("ping")).unwrap();
        assert_eq!(text(ws), "ping");
    }
    // A path with a quote and a backslash (the route takes /cat/...): the
    // label is escaped, so the scrape still parses, and reads back as sent.
    let mut odd = TcpStream::connect(server.addr).unwrap();
    odd.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    odd.write_all(
        b"GET /cat/a\"b\\c HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut head = [0u8; 12];
    odd.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    wait_for(
        maddr,
        &[
            ("wsloop_programs_running -", 3.0),
            ("wsloop_open_connections path=/cat", 2.0),
            ("wsloop_open_connections path=/cat/a\"b\\c", 1.0),
        ],
    );
    drop(odd);
    a.close(None).unwrap();
    close_code(&mut a);
    wait_for(
        maddr,
        &[
            ("wsloop_programs_running -", 1.0),
            ("wsloop_open_connections path=/cat", 1.0),
            ("wsloop_open_connections path=/cat/a\"b\\c", 0.0),
        ],
    );
}

#[test]
fn what_compression_saved_is_counted() {
    if !parser_available() {
        return;
    }
    let Some(loadgen) = wsloop_bin::example("loadgen") else {
        return;
    };
    let mport = redis::free_port();
    let maddr: SocketAddr = format!("127.0.0.1:{mport}").parse().unwrap();
    let server = Wsloop::start(&["--metrics", &maddr.to_string()]);
    // Compressible chat-like messages of 1 KiB, compressed both ways.
    let done = process::run_with_deadline(
        Command::new(loadgen).args([
            "echo",
            "--url",
            &format!("ws://{}/echo", server.addr),
            "--deflate",
            "-c",
            "2",
            "-s",
            "1KiB",
            "-t",
            "1",
            "-w",
            "0",
            "-q",
        ]),
        Duration::from_secs(60),
    );
    assert_eq!(
        done.status.and_then(|s| s.code()),
        Some(0),
        "{}",
        done.stderr
    );
    std::thread::sleep(Duration::from_millis(300));
    let got = scrape(maddr);
    let sent = got["wsloop_message_bytes_sent_total -"];
    let saved = got["wsloop_deflate_bytes_saved_total -"];
    assert!(sent > 0.0, "{got:#?}");
    // Words compress well: more than a third off, never more than all.
    assert!(
        saved > sent / 3.0 && saved < sent,
        "saved {saved} of {sent}"
    );
}
