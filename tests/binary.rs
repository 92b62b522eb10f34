//! The `wsloop` binary, started for real on a free port and spoken to over
//! TCP: routes, demos, push timing, chat broadcast, HTTP answers, flags,
//! exit codes, logs and graceful shutdown on signals.
//!
//! Every process is killed and reaped when its test ends (`Wsloop`'s Drop),
//! and every wait is bounded.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tungstenite::client::ClientRequestBuilder;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Bytes, Message, WebSocket};

#[path = "support/process.rs"]
mod process;
#[path = "support/wsloop_bin.rs"]
mod wsloop_bin;

use process::run_with_deadline;
use wsloop_bin::{Wsloop, BIN};
const TIMEOUT: Duration = Duration::from_secs(10);

type Ws = WebSocket<TcpStream>;

/// What these tests need of a running `wsloop` beyond `wsloop_bin`.
trait WsloopExt {
    fn pid_str(&self) -> String;
    fn signal(&self, name: &str);
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus>;
    fn wait_log(&self, parts: &[&str], count: usize) -> Vec<String>;
    fn ws(&self, path: &str) -> Ws;
}

impl WsloopExt for Wsloop {
    fn pid_str(&self) -> String {
        self.pid().to_string()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid_str()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `count` log lines contain every one of `parts`.
    fn wait_log(&self, parts: &[&str], count: usize) -> Vec<String> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let hits: Vec<String> = self
                .logs()
                .into_iter()
                .filter(|l| parts.iter().all(|p| l.contains(p)))
                .collect();
            if hits.len() >= count {
                return hits;
            }
            if Instant::now() >= deadline {
                panic!(
                    "expected {count} log lines with {parts:?}; the log:\n{}",
                    self.logs().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ws(&self, path: &str) -> Ws {
        connect(self.addr, path, &[])
    }
}

/// Runs the binary to its end with `args`: (status, stdout, stderr).
fn run_to_exit(args: &[&str]) -> (ExitStatus, String, String) {
    let done = run_with_deadline(
        Command::new(BIN)
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("WSLOOP_LISTEN")
            .stdin(Stdio::null()),
        TIMEOUT,
    );
    let status = done
        .status
        .unwrap_or_else(|| panic!("wsloop {args:?} did not exit within 10 s"));
    (status, done.stdout, done.stderr)
}

fn connect(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Ws {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    let mut request = ClientRequestBuilder::new(format!("ws://{addr}{path}").parse().unwrap());
    for (name, value) in headers {
        request = request.with_header(*name, *value);
    }
    let config = WebSocketConfig::default().max_message_size(Some(64 << 20));
    tungstenite::client::client_with_config(request, stream, Some(config))
        .unwrap_or_else(|e| panic!("handshake to {path} failed: {e}"))
        .0
}

/// `ws.read()`, retried when a signal interrupts the read (a stopped and
/// continued test process sees EINTR on sockets with a read timeout).
#[allow(clippy::result_large_err)] // tungstenite's own error type
fn read(ws: &mut Ws) -> tungstenite::Result<Message> {
    loop {
        match ws.read() {
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// The next text message (pings and pongs skipped).
fn text(ws: &mut Ws) -> String {
    loop {
        match read(ws).expect("read a message") {
            Message::Text(t) => return t.as_str().to_owned(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// Reads until the server's close frame (data messages before it are
/// skipped), completes the close handshake, and returns the close code.
fn close_code(ws: &mut Ws) -> u16 {
    let code = loop {
        match read(ws) {
            Ok(Message::Close(frame)) => break frame.map_or(1005, |f| u16::from(f.code)),
            Ok(_) => {}
            Err(e) => panic!("expected a close frame, got {e}"),
        }
    };
    for _ in 0..100 {
        match read(ws) {
            Err(tungstenite::Error::ConnectionClosed) => return code,
            Err(tungstenite::Error::AlreadyClosed) => return code,
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return code
            }
            Ok(_) => {}
            Err(e) => panic!("closing after {code}: {e}"),
        }
    }
    panic!("the connection did not end after close {code}");
}

/// Nothing arrives on `ws` for `quiet`.
fn assert_silent(ws: &mut Ws, quiet: Duration, who: &str) {
    ws.get_ref().set_read_timeout(Some(quiet)).unwrap();
    match read(ws) {
        Err(tungstenite::Error::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("{who} should have received nothing, got {other:?}"),
    }
    ws.get_ref().set_read_timeout(Some(TIMEOUT)).unwrap();
}

/// Sends raw bytes and reads the whole answer until the server closes.
fn raw(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn get(addr: SocketAddr, path: &str) -> String {
    raw(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
    )
}

/// A WebSocket upgrade request for `path`, with `extra` header lines.
fn upgrade_request(addr: SocketAddr, path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

fn upgrade(addr: SocketAddr, path: &str, extra: &str) -> String {
    raw(addr, &upgrade_request(addr, path, extra))
}

/// A raw connection that has sent an upgrade request for `path` (and read
/// nothing yet), with the read timeout set.
fn raw_upgrade(addr: SocketAddr, path: &str, extra: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
        .write_all(upgrade_request(addr, path, extra).as_bytes())
        .unwrap();
    stream
}

fn status(answer: &str) -> u16 {
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
}

/// `date -u +FORMAT`.
fn date_u(format: &str) -> String {
    let out = Command::new("date")
        .args(["-u", &format!("+{format}")])
        .output()
        .expect("run date");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

// ---------------------------------------------------------------- HTTP

#[test]
fn plain_http_gets_the_page_404_405_and_426() {
    let server = Wsloop::start(&[]);
    let page = get(server.addr, "/");
    assert_eq!(status(&page), 200, "{page}");
    assert!(page.contains("Content-Type: text/html; charset=utf-8\r\n"));
    assert!(page.contains("<title>wsloop"), "the page is served");
    for id in [
        "endpoint",
        "connect",
        "disconnect",
        "log",
        "input",
        "send",
        "quit",
        "commands",
    ] {
        assert!(page.contains(&format!("id=\"{id}\"")), "page has #{id}");
    }
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no CDN"
    );

    let missing = get(server.addr, "/nope");
    assert_eq!(status(&missing), 404, "{missing}");
    let post = raw(
        server.addr,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(status(&post), 405, "{post}");
    assert!(post.contains("Allow: GET\r\n"));
    for path in ["/echo", "/push", "/chat"] {
        let answer = get(server.addr, path);
        assert_eq!(status(&answer), 426, "{path}: {answer}");
        assert!(answer.contains("Upgrade: websocket\r\n"), "{path}");
    }
    // A WebSocket upgrade to an unknown path: 404 too.
    let answer = upgrade(server.addr, "/nope", "");
    assert_eq!(status(&answer), 404, "{answer}");
    // A known one switches.
    let answer = raw_upgrade_status(server.addr, "/echo", "");
    assert_eq!(answer, 101);
}

/// The status of an upgrade answer, read as soon as its head is in (a 101
/// keeps the connection open).
fn raw_upgrade_status(addr: SocketAddr, path: &str, extra: &str) -> u16 {
    let mut stream = raw_upgrade(addr, path, extra);
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap()
}

// ---------------------------------------------------------------- routes

#[test]
fn demo_gives_the_canned_replies_and_bye_closes_1000() {
    let server = Wsloop::start(&[]);
    let mut ws = server.ws("/");
    let canned = [
        ("hello", "hello human"),
        ("hi", "zup human"),
        ("name", "my name is Multivac, silly I know"),
        ("age", "I am older than time itself"),
        ("thanks", "you're welcome"),
        ("server", "wsloop (Rust), after Resin PHP"),
        ("  HELLO ", "hello human"),
        ("what is this", "You have entered: what is this"),
        ("héllo ✓", "You have entered: héllo ✓"),
        ("quit", "You have entered: quit"),
    ];
    for (command, reply) in canned {
        ws.send(Message::text(command)).unwrap();
        assert_eq!(text(&mut ws), reply, "reply to {command:?}");
    }

    let before = date_u("%Y.%m.%d");
    ws.send(Message::text("date")).unwrap();
    let date = text(&mut ws);
    let after = date_u("%Y.%m.%d");
    assert!(
        date == format!("today is {before}") || date == format!("today is {after}"),
        "{date:?} (UTC today is {before})"
    );

    ws.send(Message::text("time")).unwrap();
    let time = text(&mut ws);
    let hms = time
        .strip_prefix("server time is ")
        .unwrap_or_else(|| panic!("{time:?}"));
    let parts: Vec<u64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
    assert!(hms.len() == 8 && parts.len() == 3, "{time:?}");
    let server_secs = parts[0] * 3600 + parts[1] * 60 + parts[2];
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 86_400;
    let diff = (now + 86_400 - server_secs) % 86_400;
    assert!(
        diff <= 5 || diff >= 86_395,
        "{time:?} vs UTC {now} s into the day"
    );

    ws.send(Message::Binary(Bytes::from_static(b"\x01\x02\x03")))
        .unwrap();
    assert_eq!(text(&mut ws), "You have entered: 3 bytes of binary data");

    ws.send(Message::text("bye")).unwrap();
    assert_eq!(text(&mut ws), "bye");
    assert_eq!(close_code(&mut ws), 1000);
    // Opened and closed are logged with the peer, the path and the code.
    let opened = server.wait_log(&["INFO", "127.0.0.1:", " / opened as #"], 1);
    let id = opened[0].rsplit(' ').next().unwrap().to_owned();
    server.wait_log(
        &["INFO", "127.0.0.1:", &format!("{id} closed with 1000")],
        1,
    );
}

#[test]
fn echo_returns_every_message_unchanged() {
    let server = Wsloop::start(&[]);
    let mut ws = server.ws("/echo");
    for msg in [
        Message::text("hello"),
        Message::text(""),
        Message::text("ünïcödé ✓ 🦀"),
        Message::Binary(Bytes::from_static(&[0, 1, 2, 255])),
        Message::Binary(Bytes::new()),
        Message::text("x".repeat(1 << 20)),
        Message::Binary(Bytes::from(
            (0..3_000_000u32).map(|i| i as u8).collect::<Vec<u8>>(),
        )),
        Message::text("hello"), // not a demo command here
        Message::text("bye"),
    ] {
        ws.send(msg.clone()).unwrap();
        let back = loop {
            match read(&mut ws).unwrap() {
                Message::Ping(_) | Message::Pong(_) => {}
                m => break m,
            }
        };
        assert!(back == msg, "echo differs for a {} byte message", msg.len());
    }
    ws.close(None).unwrap();
    close_code(&mut ws);
}

/// "I am waiting X seconds" -> X.
fn waited(line: &str) -> Duration {
    let x = line
        .strip_prefix("I am waiting ")
        .and_then(|s| {
            s.strip_suffix(" seconds")
                .or_else(|| s.strip_suffix(" second"))
        })
        .unwrap_or_else(|| panic!("not a push line: {line:?}"));
    Duration::from_secs_f64(x.parse().unwrap_or_else(|_| panic!("{line:?}")))
}

#[test]
fn push_sends_a_line_then_waits_that_long_and_stops_on_quit() {
    let server = Wsloop::start(&["--push-interval", "0.15-0.3"]);
    let mut ws = server.ws("/push");
    let mut wait = waited(&text(&mut ws));
    let first = Instant::now();
    let mut at = first;
    let mut seen = Vec::new();
    for round in 0..6 {
        assert!(
            (Duration::from_millis(150)..=Duration::from_millis(300)).contains(&wait),
            "{wait:?} outside 0.15-0.3 s"
        );
        if round == 2 {
            // Other text does not disturb the pushes.
            ws.send(Message::text("hello?")).unwrap();
        }
        let line = text(&mut ws);
        let gap = at.elapsed();
        at = Instant::now();
        assert!(
            gap <= wait + Duration::from_secs(1),
            "round {round}: the next line took {gap:?} for a {wait:?} wait"
        );
        seen.push(wait);
        // The server waits at least as long as it said each time. (Checked
        // over all rounds: one line read late makes only the next gap short.)
        let waited_in_all: Duration = seen.iter().sum();
        assert!(
            at - first + Duration::from_millis(20) >= waited_in_all,
            "round {round}: {:?} since the first line, but the waits add up to {waited_in_all:?}",
            at - first
        );
        wait = waited(&line);
    }
    seen.sort();
    assert!(seen.first() != seen.last(), "the waits vary: {seen:?}");

    ws.send(Message::text("quit")).unwrap();
    assert_eq!(close_code(&mut ws), 1000);
    server.wait_log(&["closed with 1000"], 1);
}

#[test]
fn push_waits_are_whole_seconds_from_2_to_5_by_default() {
    let server = Wsloop::start(&[]);
    let mut clients: Vec<Ws> = (0..12).map(|_| server.ws("/push")).collect();
    for ws in &mut clients {
        let line = text(ws);
        let n: u64 = line
            .strip_prefix("I am waiting ")
            .and_then(|s| s.strip_suffix(" seconds"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line:?}"));
        assert!((2..=5).contains(&n), "{line:?}");
    }
    // Quit before the first wait is over: no second line, close 1000.
    for ws in &mut clients {
        ws.send(Message::text("quit")).unwrap();
    }
    for ws in &mut clients {
        assert_eq!(close_code(ws), 1000);
    }
}

/// The `Threads:` line of /proc/PID/status.
fn threads(pid: &str) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

#[test]
fn many_pushing_clients_share_one_thread() {
    let server = Wsloop::start(&["--push-interval", "0.05-0.1"]);
    let mut clients: Vec<Ws> = (0..300).map(|_| server.ws("/push")).collect();
    let start = Instant::now();
    for ws in &mut clients {
        for _ in 0..3 {
            waited(&text(ws));
        }
    }
    assert!(start.elapsed() < Duration::from_secs(20));
    if let Some(n) = threads(&server.pid_str()) {
        assert_eq!(n, 1, "every client and timer on one thread");
    }
    for ws in &mut clients {
        ws.send(Message::text("quit")).unwrap();
    }
    for ws in &mut clients {
        assert_eq!(close_code(ws), 1000);
    }
}

#[test]
fn chat_reaches_every_chat_client_and_no_one_else() {
    let server = Wsloop::start(&[]);
    let mut echo = server.ws("/echo");
    let mut demo = server.ws("/");
    let mut pusher = {
        let mut ws = server.ws("/push");
        text(&mut ws); // its first line; the next is seconds away
        ws
    };

    let mut alice = server.ws("/chat?name=alice");
    assert_eq!(
        text(&mut alice),
        "welcome alice: 0 others here, your messages go to everyone"
    );
    let mut bob = server.ws("/chat?name=Bob%20B");
    assert_eq!(text(&mut alice), "Bob B joined");
    assert_eq!(
        text(&mut bob),
        "welcome Bob B: 1 other here, your messages go to everyone"
    );
    let mut guest = server.ws("/chat");
    assert_eq!(text(&mut alice), "guest1 joined");
    assert_eq!(text(&mut bob), "guest1 joined");
    assert!(text(&mut guest).starts_with("welcome guest1: 2 others here"));

    alice.send(Message::text("hi all")).unwrap();
    bob.send(Message::text("hey ✓")).unwrap();
    for ws in [&mut alice, &mut bob, &mut guest] {
        assert_eq!(text(ws), "alice: hi all");
        assert_eq!(text(ws), "Bob B: hey ✓");
    }
    // Binary is not chat.
    guest
        .send(Message::Binary(Bytes::from_static(b"\0")))
        .unwrap();

    guest.close(None).unwrap();
    close_code(&mut guest);
    assert_eq!(text(&mut alice), "guest1 left");
    assert_eq!(text(&mut bob), "guest1 left");

    // Clients on other routes heard none of it.
    assert_silent(&mut echo, Duration::from_millis(300), "/echo");
    assert_silent(&mut demo, Duration::from_millis(10), "/");
    assert_silent(&mut pusher, Duration::from_millis(10), "/push");
    assert_silent(&mut alice, Duration::from_millis(10), "alice");
    // They still work.
    echo.send(Message::text("ping")).unwrap();
    assert_eq!(text(&mut echo), "ping");
    demo.send(Message::text("hi")).unwrap();
    assert_eq!(text(&mut demo), "zup human");
}

#[test]
fn protocol_errors_are_logged_at_warn() {
    let server = Wsloop::start(&[]);
    let mut stream = raw_upgrade(server.addr, "/echo", "");
    // An unmasked client frame (RFC 6455 §5.1): close 1002.
    stream.write_all(b"\x81\x02hi").unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let close = answer
        .windows(4)
        .position(|w| w[0] == 0x88 && w[2..4] == [0x03, 0xea])
        .map(|_| 1002);
    assert_eq!(close, Some(1002), "{:?}", String::from_utf8_lossy(&answer));
    server.wait_log(&["WARN", "protocol error"], 1);
    server.wait_log(&["INFO", "closed with 1002"], 1);
}

// ---------------------------------------------------------------- flags

#[test]
fn help_documents_every_flag_with_its_default() {
    let (status, out, _) = run_to_exit(&["--help"]);
    assert!(status.success());
    for (flag, default) in [
        ("--listen", "127.0.0.1:8080"),
        ("--max-clients", "10000"),
        ("--max-message-size", "16MiB"),
        ("--idle-timeout", "60s"),
        ("--allow-origin", "any origin"),
        ("--log-level", "info"),
        ("--push-interval", "2-5"),
    ] {
        let at = out
            .find(flag)
            .unwrap_or_else(|| panic!("{flag} in --help:\n{out}"));
        let section = &out[at..];
        let end = section[2..]
            .find("\n      --")
            .map_or(section.len(), |e| e + 2);
        assert!(
            section[..end].contains(default),
            "{flag} documents its default {default}:\n{}",
            &section[..end]
        );
    }
    assert!(out.contains("RUST_LOG"));
}

#[test]
fn bad_flags_exit_2_with_a_clear_message() {
    for args in [
        &["--bogus"][..],
        &["--listen", "nonsense"],
        &["--listen", "127.0.0.1"],
        &["--max-clients", "0"],
        &["--max-clients", "many"],
        &["--max-message-size", "0"],
        &["--max-message-size", "12 parsecs"],
        &["--idle-timeout", "-3"],
        &["--max-clients", "-1"],
        &["--max-message-size", "-5"],
        &["--push-interval", "-1-2"],
        &["--idle-timeout", "soon"],
        &["--log-level", "loud"],
        &["--push-interval", "5-2"],
        &["--push-interval", "0"],
        &["--push-interval", "x"],
    ] {
        let (status, _, err) = run_to_exit(args);
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("error:"), "{args:?}: {err}");
        assert!(err.contains(args[0]), "{args:?} names the flag: {err}");
    }
}

#[test]
fn address_in_use_names_the_address_and_exits_1() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (status, _, err) = run_to_exit(&["--listen", &addr]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "error: cannot listen on {addr}: address already in use"
        )),
        "{err}"
    );
}

#[test]
fn max_clients_is_enforced_with_503() {
    let server = Wsloop::start(&["--max-clients", "2"]);
    let _a = server.ws("/echo");
    let _b = server.ws("/echo");
    let answer = upgrade(server.addr, "/echo", "");
    assert_eq!(status(&answer), 503, "{answer}");
    assert!(answer.contains("Retry-After:"));
}

#[test]
fn max_message_size_closes_1009() {
    let server = Wsloop::start(&["--max-message-size", "1KiB"]);
    let mut ws = server.ws("/echo");
    ws.send(Message::text("y".repeat(1024))).unwrap();
    assert_eq!(text(&mut ws).len(), 1024);
    ws.send(Message::text("z".repeat(1025))).unwrap();
    assert_eq!(close_code(&mut ws), 1009);
}

#[test]
fn idle_timeout_pings_silent_clients() {
    let server = Wsloop::start(&["--idle-timeout", "300ms"]);
    let mut ws = server.ws("/echo");
    let start = Instant::now();
    match read(&mut ws).expect("a ping") {
        Message::Ping(_) => {}
        other => panic!("expected a ping, got {other:?}"),
    }
    let after = start.elapsed();
    assert!(
        (Duration::from_millis(250)..Duration::from_secs(3)).contains(&after),
        "{after:?}"
    );
}

#[test]
fn allow_origin_refuses_other_origins_with_403() {
    let server = Wsloop::start(&[
        "--allow-origin",
        "https://good.example",
        "--allow-origin",
        "http://127.0.0.1:8080",
    ]);
    let answer = upgrade(server.addr, "/echo", "Origin: https://evil.example\r\n");
    assert_eq!(status(&answer), 403, "{answer}");
    assert_eq!(status(&upgrade(server.addr, "/echo", "")), 403, "no origin");
    for origin in ["https://good.example", "http://127.0.0.1:8080"] {
        let mut ws = connect(server.addr, "/echo", &[("Origin", origin)]);
        ws.send(Message::text("ok")).unwrap();
        assert_eq!(text(&mut ws), "ok");
    }
}

#[test]
fn log_level_flag_wins_over_rust_log() {
    // RUST_LOG alone is honoured.
    let server = Wsloop::start_env(&[], &[("RUST_LOG", "debug")]);
    get(server.addr, "/");
    server.wait_log(&["DEBUG", "plain HTTP GET /"], 1);
    // The flag wins.
    let server = Wsloop::start_env(&["--log-level", "info"], &[("RUST_LOG", "debug")]);
    get(server.addr, "/");
    let mut ws = server.ws("/echo");
    ws.close(None).unwrap();
    close_code(&mut ws);
    server.wait_log(&["closed with"], 1);
    let logs = server.logs();
    assert!(!logs.iter().any(|l| l.contains("DEBUG")), "{logs:#?}");
}

// ---------------------------------------------------------------- signals

#[test]
fn sigterm_closes_every_client_with_1001_and_exits_0() {
    let mut server = Wsloop::start(&["--push-interval", "0.05-0.1"]);
    let mut clients = vec![
        server.ws("/"),
        server.ws("/echo"),
        server.ws("/push"),
        server.ws("/push"),
        server.ws("/chat?name=a"),
        server.ws("/chat?name=b"),
    ];
    server.wait_log(&["opened as"], clients.len());
    // One still in its handshake, too.
    let mut half = TcpStream::connect(server.addr).unwrap();
    half.write_all(b"GET / HTTP/1.1\r\n").unwrap();

    server.signal("TERM");
    for ws in &mut clients {
        assert_eq!(close_code(ws), 1001);
    }
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("exited within the close timeout");
    assert_eq!(status.code(), Some(0));
    server.wait_log(&["SIGTERM"], 1);
    server.wait_log(&["closed with 1001"], clients.len());
    assert!(
        TcpStream::connect(server.addr).is_err(),
        "no longer listening"
    );
}

#[test]
fn sigint_exits_0_within_the_close_timeout_despite_a_silent_client() {
    let mut server = Wsloop::start(&[]);
    let mut polite = server.ws("/echo");
    // A client that completes the handshake and then never answers.
    let mut silent = raw_upgrade(server.addr, "/push", "");
    server.wait_log(&["/push opened as"], 1);

    let start = Instant::now();
    server.signal("INT");
    assert_eq!(close_code(&mut polite), 1001);
    let status = server
        .wait_exit(Duration::from_secs(9))
        .expect("exited within the 5 s close timeout (and a margin)");
    assert_eq!(status.code(), Some(0));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(4),
        "waited for the silent client: {took:?}"
    );

    // The silent one was sent close 1001 too (after its 101 and push line).
    let mut got = Vec::new();
    let _ = silent.read_to_end(&mut got);
    assert!(
        got.windows(4)
            .any(|w| w[0] == 0x88 && w[2..4] == [0x03, 0xe9]),
        "close 1001 in {:?}",
        String::from_utf8_lossy(&got)
    );
    server.wait_log(&["SIGINT"], 1);
}
