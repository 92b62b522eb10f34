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

use tungstenite::{Bytes, Message};

#[cfg(feature = "deflate")]
#[path = "support/frame.rs"]
mod frame;
#[path = "support/process.rs"]
mod process;
#[path = "support/ws_client.rs"]
mod ws_client;
#[path = "support/wsloop_bin.rs"]
mod wsloop_bin;

use process::run_with_deadline;
use ws_client::{assert_silent, close_code, connect, read, text, Ws, TIMEOUT};
use wsloop_bin::{Wsloop, BIN};

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
    assert!(post.contains("Allow: GET, HEAD\r\n"));
    for path in ["/echo", "/push", "/chat"] {
        let answer = get(server.addr, path);
        assert_eq!(status(&answer), 426, "{path}: {answer}");
        assert!(answer.contains("Upgrade: websocket\r\n"), "{path}");
    }
    // HEAD is answered wherever GET is: the GET's status and headers
    // (Content-Length included), no body.
    for path in ["/", "/nope", "/echo"] {
        let get = get(server.addr, path);
        let head = raw(
            server.addr,
            &format!("HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n"),
        );
        let (get_head, get_body) = get.split_once("\r\n\r\n").unwrap();
        assert!(!get_body.is_empty(), "{path}: the GET has a body");
        assert_eq!(head, format!("{get_head}\r\n\r\n"), "{path}");
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

/// `--threads 2`: two loops on one port; /chat clients on both hear each
/// other (the topic spans the loops), the welcome counts the whole room,
/// and SIGTERM stops both.
#[test]
fn chat_spans_the_loops_of_threads() {
    chat_across_two_loops("kernel");
}

/// The same with one listener handing connections to the loops in turn.
#[test]
fn chat_spans_round_robin_loops() {
    chat_across_two_loops("round-robin");
}

fn chat_across_two_loops(balance: &str) {
    const CLIENTS: usize = 16;
    let mut server = Wsloop::start(&["--threads", "2", "--balance", balance]);
    server.wait_log_count("2 loops", 1);
    let mut clients: Vec<Ws> = (0..CLIENTS)
        .map(|i| server.ws(&format!("/chat?name=c{i}")))
        .collect();
    // Which loop took each: the open lines name ids, #1/... on loop 1.
    server.wait_log_count("/chat opened as", CLIENTS);
    let on_second = server.log_count("/chat opened as #1/");
    if balance == "round-robin" {
        assert_eq!(on_second, CLIENTS / 2, "handed in turn");
    } else {
        assert!(
            on_second > 0 && on_second < CLIENTS,
            "the kernel spread {CLIENTS} connections {on_second} to loop 1"
        );
    }
    // Each joined after the ones before it had their welcome, wherever
    // they landed.
    for (i, ws) in clients.iter_mut().enumerate() {
        let s = if i == 1 { "" } else { "s" };
        assert_eq!(
            text(ws),
            format!("welcome c{i}: {i} other{s} here, your messages go to everyone")
        );
    }
    for (i, ws) in clients.iter_mut().enumerate() {
        ws.send(Message::text(format!("hi from {i}"))).unwrap();
    }
    for ws in &mut clients {
        let mut heard = std::collections::BTreeSet::new();
        while heard.len() < CLIENTS {
            let t = text(ws);
            if let Some((_, said)) = t.split_once(": hi from ") {
                assert!(heard.insert(said.to_owned()), "twice: {t}");
            }
        }
    }
    server.signal("TERM");
    for ws in &mut clients {
        assert_eq!(close_code(ws), 1001);
    }
    let status = server.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(status.success(), "{status:?}");
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
    #[allow(unused_mut)] // extended with the `deflate` feature only
    let mut flags = vec![
        ("--listen", "127.0.0.1:8080"),
        ("--max-clients", "10000"),
        ("--max-message-size", "16MiB"),
        ("--idle-timeout", "60s"),
        ("--allow-origin", "any origin"),
        ("--log-level", "info"),
        ("--push-interval", "2-5"),
    ];
    #[cfg(feature = "deflate")]
    flags.extend([
        ("--no-deflate", "[default: offers are accepted]"),
        ("--deflate-window-bits", "[default: 12]"),
        ("--deflate-client-window-bits", "[default: 12]"),
        ("--deflate-max-memory", "[default: 256MiB]"),
        (
            "--deflate-no-context-takeover",
            "[default: context takeover]",
        ),
        ("--deflate-threshold", "[default: 64]"),
        ("--deflate-level", "[default: 1]"),
    ]);
    // Without the feature there is nothing to set.
    #[cfg(not(feature = "deflate"))]
    assert!(!out.contains("deflate"), "{out}");
    for (flag, default) in flags {
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

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    let probe = TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

/// Starts the binary with exactly `args` (`Wsloop::start` adds a `--listen`
/// of its own) and returns it with its log up to the `listening on ws://`
/// line and the address there. Its stderr is drained to the end in a
/// thread; the process is killed and reaped when the `Reaper` drops.
fn start_as_given(
    args: &[&str],
    env: &[(&str, &str)],
) -> (process::Reaper, Vec<String>, SocketAddr) {
    let mut child = process::Reaper(
        Command::new(BIN)
            .args(args)
            .args(["--log-level", "debug"])
            .env_remove("RUST_LOG")
            .env_remove("WSLOOP_LISTEN")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wsloop"),
    );
    let stderr = child.0.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + TIMEOUT;
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).unwrap_or_else(|_| {
            panic!(
                "no `listening on ws://` line; the log:\n{}",
                lines.join("\n")
            )
        });
        let addr = line
            .split("listening on ws://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(|a| a.parse().expect("the listening address"));
        lines.push(line);
        if let Some(addr) = addr {
            return (child, lines, addr);
        }
    }
}

#[test]
fn listen_resolves_a_host_name_and_says_which_address_it_took() {
    let port = free_port();
    let given = format!("localhost:{port}");
    let (_server, log, addr) = start_as_given(&["--listen", &given], &[]);
    let v4: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // IPv4 first, whatever else `localhost` names on this machine.
    assert_eq!(addr, v4, "{log:#?}");
    assert!(
        log.iter().any(|l| l.contains("INFO")
            && l.contains(&format!("--listen {given} resolved to 127.0.0.1:{port}"))
            && l.ends_with(&format!("; listening on {v4}"))),
        "the chosen address is logged: {log:#?}"
    );
    let mut ws = connect(v4, "/echo", &[]);
    ws.send(Message::text("over localhost")).unwrap();
    assert_eq!(text(&mut ws), "over localhost");

    // The same from WSLOOP_LISTEN.
    let port = free_port();
    let (_server, _, addr) =
        start_as_given(&[], &[("WSLOOP_LISTEN", &format!("localhost:{port}"))]);
    assert_eq!(addr, format!("127.0.0.1:{port}").parse().unwrap());
}

#[test]
fn an_unresolvable_listen_name_is_a_bad_flag() {
    // A name the resolver refuses on its own (an empty label): the test
    // asks no DNS server anything, and fails the same way a name unknown
    // to DNS does.
    let (status, out, err) = run_to_exit(&["--listen", "no-such-host..invalid:8080"]);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.starts_with(
            "error: invalid value 'no-such-host..invalid:8080' for '--listen <ADDR>': \
             cannot resolve \"no-such-host..invalid\""
        ),
        "{err}"
    );
    for (addr, says) in [
        ("localhost", "has no port"),
        ("localhost:http", "not a number from 0 to 65535"),
        ("::1:8080", "an IPv6 address goes in brackets"),
    ] {
        let (status, _, err) = run_to_exit(&["--listen", addr]);
        assert_eq!(status.code(), Some(2), "{addr}: {err}");
        assert!(
            err.starts_with("error:") && err.contains(says),
            "{addr}: {err}"
        );
    }
    // A name that resolves but cannot be listened on: exit 1, as for an
    // address given as an IP.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    // And on ::1 where there is one, in case `localhost` names it too.
    let _taken_v6 = TcpListener::bind(("::1", port));
    let (status, _, err) = run_to_exit(&["--listen", &format!("localhost:{port}")]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("error: cannot listen on localhost:{port}: ")),
        "{err}"
    );
    assert!(err.contains("address already in use"), "{err}");
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

// ---------------------------------------------------------------- compression

/// A raw WebSocket client for the permessage-deflate tests: it sends masked
/// frames with RSV1 set or clear and reads the server's frames as they are,
/// so the tests see what was compressed. Its codec is flate2's raw deflate,
/// not the server's.
#[cfg(feature = "deflate")]
mod raw_ws {
    use super::*;
    use flate2::{Compress, Decompress, FlushCompress, FlushDecompress};

    use crate::frame::Frame;
    pub use crate::frame::{BINARY, CLOSE, CONT as CONTINUATION, TEXT};

    /// The end of a sync flush, left out of every compressed message.
    const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

    /// One message as it came: the opcode and RSV1 of its first frame and
    /// the payloads joined.
    #[derive(Debug)]
    pub struct Received {
        pub opcode: u8,
        pub rsv1: bool,
        pub body: Vec<u8>,
    }

    pub struct RawWs {
        stream: TcpStream,
        buf: Vec<u8>,
        /// The upgrade answer's head.
        pub head: String,
    }

    impl RawWs {
        /// Upgrades to `path`, offering `offer` in `Sec-WebSocket-Extensions`
        /// if given; panics unless the answer is 101.
        pub fn open(addr: SocketAddr, path: &str, offer: Option<&str>) -> RawWs {
            let extra = offer.map_or(String::new(), |o| {
                format!("Sec-WebSocket-Extensions: {o}\r\n")
            });
            let mut stream = raw_upgrade(addr, path, &extra);
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                let n = stream.read(&mut chunk).expect("read the upgrade answer");
                assert!(n > 0, "closed in the handshake: {buf:?}");
                buf.extend_from_slice(&chunk[..n]);
            };
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            assert_eq!(status(&head), 101, "{head}");
            buf.drain(..end);
            RawWs { stream, buf, head }
        }

        /// The answer's `Sec-WebSocket-Extensions` value, if it has one.
        pub fn extensions(&self) -> Option<&str> {
            self.head.lines().find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("sec-websocket-extensions")
                    .then(|| value.trim())
            })
        }

        /// Sends one masked frame.
        pub fn send(&mut self, fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) {
            let frame = Frame::new(opcode, payload)
                .fin(fin)
                .rsv(if rsv1 { 0b100 } else { 0 })
                .encode();
            self.stream.write_all(&frame).expect("send a frame");
        }

        fn fill(&mut self, n: usize) {
            let mut chunk = [0u8; 1 << 16];
            while self.buf.len() < n {
                let got = match self.stream.read(&mut chunk) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    other => other.expect("read a frame"),
                };
                assert!(got > 0, "the server ended the connection");
                self.buf.extend_from_slice(&chunk[..got]);
            }
        }

        /// The next frame: (FIN, RSV1, opcode, payload).
        pub fn frame(&mut self) -> (bool, bool, u8, Vec<u8>) {
            self.fill(2);
            let (b0, b1) = (self.buf[0], self.buf[1]);
            assert_eq!(b1 & 0x80, 0, "a server frame is never masked");
            assert_eq!(b0 & 0x30, 0, "RSV2 and RSV3 stay clear");
            let (len, at) = match b1 & 0x7f {
                126 => {
                    self.fill(4);
                    (
                        usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]])),
                        4,
                    )
                }
                127 => {
                    self.fill(10);
                    let len = u64::from_be_bytes(self.buf[2..10].try_into().unwrap());
                    (usize::try_from(len).unwrap(), 10)
                }
                n => (usize::from(n), 2),
            };
            self.fill(at + len);
            let payload = self.buf[at..at + len].to_vec();
            self.buf.drain(..at + len);
            (b0 & 0x80 != 0, b0 & 0x40 != 0, b0 & 0x0f, payload)
        }

        /// The next data message, its frames joined.
        pub fn message(&mut self) -> Received {
            let (mut fin, rsv1, opcode, mut body) = self.frame();
            assert!(
                matches!(opcode, TEXT | BINARY),
                "expected data, got opcode {opcode}"
            );
            while !fin {
                let (f, r, op, more) = self.frame();
                assert_eq!(op, CONTINUATION, "a continuation frame");
                assert!(!r, "RSV1 is set on a message's first frame only");
                body.extend_from_slice(&more);
                fin = f;
            }
            Received { opcode, rsv1, body }
        }

        /// Closes with 1000 and waits for the server's close frame.
        pub fn close(mut self) {
            self.send(true, false, CLOSE, &1000u16.to_be_bytes());
            let (_, _, opcode, payload) = self.frame();
            assert_eq!(opcode, CLOSE, "the server answers the close");
            assert_eq!(payload.get(..2), Some(&1000u16.to_be_bytes()[..]));
        }
    }

    /// `data` compressed as one permessage-deflate message (RFC 7692
    /// §7.2.1): raw deflate, sync flush, its final `00 00 ff ff` removed.
    pub fn compress(c: &mut Compress, data: &[u8]) -> Vec<u8> {
        if data.is_empty() {
            // §7.2.3.6: an empty stored block, with nothing new for zlib
            // to flush after the last message.
            return vec![0x00];
        }
        let mut out = Vec::with_capacity(data.len() + 64);
        let start = c.total_in();
        loop {
            let used = (c.total_in() - start) as usize;
            c.compress_vec(&data[used..], &mut out, FlushCompress::Sync)
                .expect("compress");
            if (c.total_in() - start) as usize == data.len() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity());
        }
        assert!(
            out.ends_with(&TRAILER),
            "a sync flush ends with 00 00 ff ff"
        );
        out.truncate(out.len() - TRAILER.len());
        out
    }

    /// A compressed message's body inflated (RFC 7692 §7.2.2: the trailer
    /// appended), with the connection's decompressor `d`.
    pub fn inflate(d: &mut Decompress, body: &[u8]) -> Vec<u8> {
        let input = [body, &TRAILER].concat();
        let mut out = Vec::with_capacity(4 * input.len() + 1024);
        let start = d.total_in();
        loop {
            let (used, had) = ((d.total_in() - start) as usize, out.len());
            d.decompress_vec(&input[used..], &mut out, FlushDecompress::Sync)
                .expect("the server's message inflates");
            let done = (d.total_in() - start) as usize == input.len();
            if done && out.len() < out.capacity() {
                return out;
            }
            let progress = (d.total_in() - start) as usize > used || out.len() > had;
            assert!(progress, "inflating stalled");
            out.reserve(out.capacity());
        }
    }
}

#[cfg(feature = "deflate")]
use raw_ws::{compress, inflate, RawWs, BINARY, CONTINUATION, TEXT};

/// What browsers and `websockets` offer.
#[cfg(feature = "deflate")]
const OFFER: &str = "permessage-deflate; client_max_window_bits";

/// `n` pseudo-random bytes: nothing for deflate to find within them.
#[cfg(feature = "deflate")]
fn noise(n: usize, seed: u32) -> Vec<u8> {
    let mut out = vec![0; n];
    fastrand::Rng::with_seed(seed.into()).fill(&mut out);
    out
}

/// `noise` `times` over, then as many zeros: the zeros make the message
/// worth compressing however the noise fares (the server sends a message
/// as it is when deflate does not make it smaller), and the repeats show
/// how far back the server's compressor can see.
#[cfg(feature = "deflate")]
fn noise_then_zeros(noise: &[u8], times: usize) -> Vec<u8> {
    let mut m = noise.repeat(times);
    m.resize(2 * m.len(), 0);
    m
}

#[cfg(feature = "deflate")]
fn raw_deflate() -> flate2::Compress {
    // The window the server asks a browser-like client for (the default
    // `client_max_window_bits=12`).
    flate2::Compress::new_with_window_bits(flate2::Compression::default(), false, 12)
}

#[cfg(feature = "deflate")]
fn raw_inflate() -> flate2::Decompress {
    flate2::Decompress::new(false)
}

/// The echo of `data` (binary) on `ws`, compressed: (body size, inflated
/// with `rx`).
#[cfg(feature = "deflate")]
fn compressed_echo(ws: &mut RawWs, rx: &mut flate2::Decompress, data: &[u8]) -> usize {
    ws.send(true, false, BINARY, data);
    let back = ws.message();
    assert_eq!(
        (back.opcode, back.rsv1),
        (BINARY, true),
        "a compressed echo"
    );
    assert!(
        inflate(rx, &back.body) == data,
        "the echo inflates to the message"
    );
    back.body.len()
}

#[cfg(feature = "deflate")]
#[test]
fn permessage_deflate_is_agreed_and_echoes_compressed() {
    let server = Wsloop::start(&[]);
    server.wait_log(
        &["INFO", "permessage-deflate: accepted (window 12 bits, client window 12 bits, level 1, threshold 64 bytes, context takeover, at most 256 MiB of compression state)"],
        1,
    );
    let mut ws = RawWs::open(server.addr, "/echo", Some(OFFER));
    assert_eq!(
        ws.extensions(),
        Some("permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"),
        "{}",
        ws.head
    );
    // The log names the agreement.
    server.wait_log(
        &["INFO", "/echo opened as #", " with permessage-deflate"],
        1,
    );
    let (mut tx, mut rx) = (raw_deflate(), raw_inflate());

    // 64 KiB of text sent compressed comes back compressed, much smaller,
    // and inflates to what was sent.
    let text = "All work and no play makes Jack a dull boy. ".repeat(1490);
    let text = &text.as_bytes()[..64 << 10];
    ws.send(true, true, TEXT, &compress(&mut tx, text));
    let back = ws.message();
    assert_eq!(
        (back.opcode, back.rsv1),
        (TEXT, true),
        "a compressed text echo"
    );
    assert!(
        back.body.len() < text.len() / 8,
        "{} bytes",
        back.body.len()
    );
    assert_eq!(inflate(&mut rx, &back.body), text);

    // Binary, sent uncompressed: the echo is compressed all the same.
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let size = compressed_echo(&mut ws, &mut rx, &data);
    assert!(size < data.len() / 8, "{size} bytes");

    // A compressed message in three frames (RSV1 on the first only).
    let long = "fragmented and compressed ✓ ".repeat(100);
    let body = compress(&mut tx, long.as_bytes());
    let (a, rest) = body.split_at(body.len() / 3);
    let (b, c) = rest.split_at(rest.len() / 2);
    ws.send(false, true, TEXT, a);
    ws.send(false, false, CONTINUATION, b);
    ws.send(true, false, CONTINUATION, c);
    let back = ws.message();
    assert_eq!((back.opcode, back.rsv1), (TEXT, true));
    assert_eq!(inflate(&mut rx, &back.body), long.as_bytes());

    // Context takeover: the same message a second time refers back to the
    // first, 2 KiB earlier (within the default 4 KiB window); its 1 KiB of
    // noise costs nothing then.
    let message = noise_then_zeros(&noise(1 << 10, 7), 1);
    let first = compressed_echo(&mut ws, &mut rx, &message);
    ws.send(true, true, BINARY, &compress(&mut tx, &message));
    let back = ws.message();
    assert!(back.rsv1 && inflate(&mut rx, &back.body) == message);
    let second = back.body.len();
    assert!(first > 1 << 10, "noise compressed to {first} bytes");
    assert!(
        second * 20 < first,
        "{second} bytes after {first}: the window kept the first"
    );

    // Below the 64-byte threshold: sent as it is, even when it would
    // compress.
    let short = "q".repeat(63);
    ws.send(true, false, TEXT, short.as_bytes());
    let back = ws.message();
    assert_eq!((back.opcode, back.rsv1), (TEXT, false));
    assert_eq!(back.body, short.as_bytes());
    ws.send(true, true, TEXT, &compress(&mut tx, b""));
    let back = ws.message();
    assert_eq!((back.opcode, back.rsv1, back.body.len()), (TEXT, false, 0));
    ws.close();
}

#[cfg(feature = "deflate")]
#[test]
fn no_deflate_agrees_no_extension() {
    let server = Wsloop::start(&["--no-deflate"]);
    server.wait_log(&["INFO", "permessage-deflate: off"], 1);
    let mut ws = RawWs::open(server.addr, "/echo", Some(OFFER));
    assert_eq!(ws.extensions(), None, "{}", ws.head);
    let text = "All work and no play makes Jack a dull boy. ".repeat(100);
    ws.send(true, false, TEXT, text.as_bytes());
    let back = ws.message();
    assert_eq!((back.opcode, back.rsv1), (TEXT, false), "not compressed");
    assert_eq!(back.body, text.as_bytes());
    let opened = server.wait_log(&["INFO", "/echo opened as #"], 1);
    assert!(!opened[0].contains(" with "), "{}", opened[0]);

    // RSV1 without the extension is a protocol error: close 1002.
    ws.send(
        true,
        true,
        TEXT,
        &compress(&mut raw_deflate(), text.as_bytes()),
    );
    let (_, _, opcode, payload) = ws.frame();
    assert_eq!(opcode, raw_ws::CLOSE);
    assert_eq!(payload.get(..2), Some(&1002u16.to_be_bytes()[..]));
    server.wait_log(&["INFO", "closed with 1002"], 1);
}

#[cfg(feature = "deflate")]
#[test]
fn deflate_flags_shape_the_agreement_and_the_messages() {
    let server = Wsloop::start(&[
        "--deflate-no-context-takeover",
        "--deflate-window-bits",
        "10",
        "--deflate-client-window-bits",
        "9",
        "--deflate-threshold",
        "1KiB",
    ]);
    server.wait_log(
        &["INFO", "permessage-deflate: accepted (window 10 bits, client window 9 bits, level 1, threshold 1024 bytes, no context takeover, at most 256 MiB of compression state)"],
        1,
    );
    let mut ws = RawWs::open(server.addr, "/echo", Some(OFFER));
    let agreed = ws.extensions().unwrap_or_else(|| panic!("{}", ws.head));
    for param in [
        "permessage-deflate",
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits=10",
        "client_max_window_bits=9",
    ] {
        assert!(
            agreed.split(';').any(|p| p.trim() == param),
            "{param} in {agreed:?}"
        );
    }
    server.wait_log(&["/echo opened as #", &format!(" with {agreed}")], 1);

    // No context takeover: the same message compresses the same each time,
    // each inflating on its own.
    let message = noise_then_zeros(&noise(4 << 10, 3), 1);
    let mut bodies = Vec::new();
    for _ in 0..2 {
        ws.send(true, false, BINARY, &message);
        let back = ws.message();
        assert!(back.rsv1);
        assert!(inflate(&mut raw_inflate(), &back.body) == message);
        bodies.push(back.body);
    }
    assert_eq!(bodies[0], bodies[1], "no state kept between messages");

    // A 10-bit window (1 KiB) cannot reach back 2 KiB: a 2 KiB block of
    // noise said twice costs twice.
    let twice = noise_then_zeros(&noise(2 << 10, 5), 2);
    let size = compressed_echo(&mut ws, &mut raw_inflate(), &twice);
    assert!(
        size > (4 << 10) * 95 / 100,
        "{size} bytes: a repeat 2 KiB back was used"
    );

    // The threshold: 1023 bytes go as they are, 1024 compressed.
    let text = "z".repeat(1023);
    ws.send(true, false, TEXT, text.as_bytes());
    let back = ws.message();
    assert_eq!((back.rsv1, back.body.len()), (false, 1023));
    let text = "z".repeat(1024);
    ws.send(true, false, TEXT, text.as_bytes());
    let back = ws.message();
    assert!(back.rsv1 && back.body.len() < 64, "{back:?}");
    assert_eq!(inflate(&mut raw_inflate(), &back.body), text.as_bytes());

    // Compressed client messages are read (each from a fresh compressor,
    // as agreed).
    for _ in 0..2 {
        let body = compress(&mut raw_deflate(), &twice);
        ws.send(true, true, BINARY, &body);
        assert!(inflate(&mut raw_inflate(), &ws.message().body) == twice);
    }
    ws.close();

    // The same message with the default 15-bit window: the repeat is found.
    let server = Wsloop::start(&[]);
    let mut ws = RawWs::open(server.addr, "/echo", Some(OFFER));
    let size = compressed_echo(&mut ws, &mut raw_inflate(), &twice);
    assert!(
        size < 3 << 10,
        "{size} bytes: the repeat 2 KiB back was missed"
    );
    ws.close();
}

#[cfg(feature = "deflate")]
#[test]
fn deflate_level_and_a_zero_threshold_take_effect() {
    // 64 KiB of letters: deflate at level 9 codes them in fewer bits
    // (dynamic Huffman codes); level 1 does much worse.
    let letters: Vec<u8> = noise(64 << 10, 11).iter().map(|b| b'a' + b % 26).collect();
    let mut sizes = Vec::new();
    for level in ["1", "9"] {
        let server = Wsloop::start(&["--deflate-level", level]);
        server.wait_log(&[&format!("level {level},")], 1);
        let mut ws = RawWs::open(server.addr, "/echo", Some(OFFER));
        ws.send(true, false, TEXT, &letters);
        let back = ws.message();
        let size = if back.rsv1 {
            inflate(&mut raw_inflate(), &back.body).len()
        } else {
            back.body.len()
        };
        assert_eq!(size, letters.len());
        sizes.push(back.body.len());
        ws.close();
    }
    assert!(
        sizes[1] < letters.len() * 3 / 4 && sizes[1] * 6 / 5 < sizes[0],
        "level 1: {} bytes, level 9: {} bytes",
        sizes[0],
        sizes[1]
    );

    // Threshold 0: a short message that compresses goes compressed.
    let server = Wsloop::start(&["--deflate-threshold", "0"]);
    let mut ws = RawWs::open(server.addr, "/echo", Some(OFFER));
    let short = "q".repeat(20);
    ws.send(true, false, TEXT, short.as_bytes());
    let back = ws.message();
    assert!(back.rsv1 && back.body.len() < 20, "{back:?}");
    assert_eq!(inflate(&mut raw_inflate(), &back.body), short.as_bytes());
    ws.close();
}

#[cfg(feature = "deflate")]
#[test]
fn bad_deflate_flags_exit_2_with_a_clear_message() {
    for (args, says) in [
        (&["--deflate-window-bits", "8"][..], "8 is not in 9..=15"),
        (&["--deflate-window-bits", "16"], "16 is not in 9..=15"),
        (&["--deflate-window-bits", "-1"], "invalid value"),
        (&["--deflate-window-bits", "big"], "invalid value"),
        (&["--deflate-level", "10"], "10 is not in 0..=9"),
        (&["--deflate-level", "-1"], "invalid value"),
        (&["--deflate-level", "fast"], "invalid value"),
        (&["--deflate-threshold", "-5"], "is not a size"),
        (&["--deflate-threshold", "lots"], "is not a size"),
        (&["--deflate-threshold", "99999999999GiB"], "too large"),
        (&["--deflate-no-context-takeover=yes"], "unexpected value"),
        (
            &["--no-deflate", "--deflate-level", "5"],
            "cannot be used with",
        ),
    ] {
        let (status, _, err) = run_to_exit(args);
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("error:"), "{args:?}: {err}");
        let flag = args.iter().rfind(|a| a.starts_with("--")).unwrap();
        let flag = flag.split('=').next().unwrap();
        assert!(err.contains(flag), "{args:?} names {flag}: {err}");
        assert!(err.contains(says), "{args:?} says {says:?}: {err}");
    }
}

#[cfg(feature = "deflate")]
#[test]
fn deflate_max_memory_serves_clients_past_it_uncompressed() {
    // 12 KiB: one browser-like client's two 4 KiB windows fit, a second's
    // would not.
    let server = Wsloop::start(&["--deflate-max-memory", "12KiB"]);
    let first = RawWs::open(server.addr, "/echo", Some(OFFER));
    assert!(first.extensions().is_some(), "{}", first.head);
    let mut second = RawWs::open(server.addr, "/echo", Some(OFFER));
    assert_eq!(second.extensions(), None, "{}", second.head);
    server.wait_log(
        &[
            "WARN",
            "permessage-deflate declined",
            "ceiling of 12288 bytes (8192 held, 8192 asked)",
        ],
        1,
    );
    // Still served: an uncompressed echo.
    second.send(true, false, TEXT, b"served anyway");
    let back = second.message();
    assert_eq!((back.rsv1, &back.body[..]), (false, &b"served anyway"[..]));
    // The first one leaves; its share comes back for the next client.
    drop(first);
    server.wait_log(&["closed with 1006"], 1);
    let third = RawWs::open(server.addr, "/echo", Some(OFFER));
    assert!(third.extensions().is_some(), "{}", third.head);
}
