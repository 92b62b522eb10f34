//! The embedding example (`examples/embed.rs`) as a process: a host mio
//! loop with a UDP socket and the WebSocket server on one `Poll`. Every
//! datagram reaches every WebSocket client as a text message, in order, and
//! the datagram `quit` stops the process.

mod support;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::*;
use wsloop::{Config, Message, Server};

/// `target/<profile>`, from this test binary's `target/<profile>/deps/…`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// The example's binary. `cargo test` builds examples, but
/// `cargo test --test embed` does not: then (or when it is older than this
/// test) build it with the same cargo and profile.
fn example_binary() -> PathBuf {
    let dir = profile_dir();
    let bin = dir
        .join("examples")
        .join(format!("embed{}", std::env::consts::EXE_SUFFIX));
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--quiet", "--example", "embed"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if dir.file_name().is_some_and(|p| p == "release") {
        cmd.arg("--release");
    }
    if let Some(target) = dir.parent() {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    let status = cmd.status().expect("run cargo build --example embed");
    assert!(status.success(), "cargo build --example embed failed");
    assert!(bin.exists(), "{} missing", bin.display());
    bin
}

/// Kills the process if the test fails before it exits by itself.
struct Guard(Option<Child>);

impl Guard {
    /// Waits (bounded) for the process to exit on its own.
    fn wait(&mut self, within: Duration) -> std::process::ExitStatus {
        let child = self.0.as_mut().unwrap();
        let end = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.0 = None;
                return status;
            }
            assert!(Instant::now() < end, "the example did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn datagrams_reach_every_websocket_client_and_quit_stops_it() {
    let mut child = Command::new(example_binary())
        .args(["127.0.0.1:0", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the embed example");
    let stdout = child.stdout.take().unwrap();
    let mut guard = Guard(Some(child));

    // `ready <ws> <udp>`, read in a thread so the wait is bounded.
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the example printed nothing");
    reader.join().unwrap();
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(parts.len(), 3, "{line:?}");
    assert_eq!(parts[0], "ready", "{line:?}");
    let ws_addr: SocketAddr = parts[1].parse().unwrap();
    let udp_addr: SocketAddr = parts[2].parse().unwrap();

    let mut clients = [
        RawClient::open_blocking(ws_addr, "/"),
        RawClient::open_blocking(ws_addr, "/"),
    ];
    // The host broadcasts to open clients; wait until both count as open
    // by sending probes until each client got one.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let end = Instant::now() + DEADLINE;
    'probe: loop {
        udp.send_to(b"probe", udp_addr).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        for c in &mut clients {
            c.pump();
            if c.take_frame().is_none() {
                assert!(Instant::now() < end, "probes never arrived");
                continue 'probe;
            }
        }
        break;
    }
    // Drop any further probes already under way.
    std::thread::sleep(Duration::from_millis(50));
    for c in &mut clients {
        c.pump();
        while let Some(f) = c.take_frame() {
            assert_eq!(f.text(), "probe");
        }
    }

    // What a client sends is ignored by the example's handler.
    clients[0].write_blocking(&text("ignored"));

    let datagrams: Vec<String> = (0..50).map(|i| format!("datagram {i} ✓")).collect();
    for d in &datagrams {
        udp.send_to(d.as_bytes(), udp_addr).unwrap();
        // Loopback UDP drops nothing at this pace, but keep it gentle.
        std::thread::sleep(Duration::from_millis(1));
    }
    for (n, c) in clients.iter_mut().enumerate() {
        for d in &datagrams {
            let f = c.frame_blocking();
            assert_eq!(f.text(), d, "client {n}");
        }
    }

    udp.send_to(b"quit", udp_addr).unwrap();
    let status = guard.wait(Duration::from_secs(10));
    assert!(status.success(), "{status}");
    for c in &mut clients {
        c.wait_closed_blocking();
    }
}

/// A host loop in the test: its own UDP socket and the server on one
/// `Poll`, the server in a token range with room for two clients.
struct Host {
    poll: mio::Poll,
    events: mio::Events,
    udp: mio::net::UdpSocket,
    server: Server<Rec>,
    datagrams: usize,
}

const HOST_UDP: mio::Token = mio::Token(0);

impl Host {
    fn new() -> (Host, std::sync::Arc<std::sync::Mutex<Log>>) {
        let poll = mio::Poll::new().unwrap();
        let mut udp = mio::net::UdpSocket::bind(localhost()).unwrap();
        poll.registry()
            .register(&mut udp, HOST_UDP, mio::Interest::READABLE)
            .unwrap();
        let listener = mio::net::TcpListener::bind(localhost()).unwrap();
        let (rec, log) = Rec::new();
        // Listener, waker, and two client slots.
        let server =
            Server::embed(poll.registry(), 10..16, listener, Config::default(), rec).unwrap();
        let host = Host {
            poll,
            events: mio::Events::with_capacity(64),
            udp,
            server,
            datagrams: 0,
        };
        (host, log)
    }

    /// One iteration of the host's loop.
    fn step(&mut self) {
        let timeout = self.server.poll_timeout(Some(Duration::from_millis(1)));
        self.poll.poll(&mut self.events, timeout).unwrap();
        for event in self.events.iter() {
            if self.server.owns(event.token()) {
                self.server.handle_event(event);
            } else {
                assert_eq!(event.token(), HOST_UDP, "a token nobody owns");
                let mut buf = [0u8; 1500];
                while let Ok((n, _)) = self.udp.recv_from(&mut buf) {
                    self.datagrams += 1;
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let (_, mut ctx) = self.server.context();
                    ctx.broadcast_all(Message::Text(&text));
                }
            }
        }
        self.server.tick();
    }

    fn until(&mut self, what: &str, mut cond: impl FnMut(&mut Host) -> bool) {
        let end = Instant::now() + DEADLINE;
        loop {
            self.step();
            if cond(self) {
                return;
            }
            assert!(Instant::now() < end, "timed out waiting for: {what}");
        }
    }

    fn open(&mut self) -> RawClient {
        let mut c = RawClient::connect(self.server.local_addr());
        c.send(&upgrade_request("/", &[]));
        let mut response = None;
        self.until("a 101", |_| {
            c.pump();
            response = c.take_response();
            response.is_some() || c.closed()
        });
        response.expect("a response").assert_upgraded();
        c
    }
}

#[test]
fn embedded_in_a_host_poll_with_a_small_token_range() {
    let (mut host, log) = Host::new();
    // 10 and 11: listener and waker; 12 and 14 clients, 13 and 15 sources.
    assert!(host.server.owns(mio::Token(10)) && host.server.owns(mio::Token(15)));
    assert!(!host.server.owns(HOST_UDP) && !host.server.owns(mio::Token(16)));
    assert_eq!(
        host.server
            .poll_once(Some(Duration::ZERO))
            .unwrap_err()
            .kind(),
        std::io::ErrorKind::Unsupported,
        "an embedded server is polled by its host"
    );

    let mut a = host.open();
    let mut b = host.open();
    // No token left for a third client: it is dropped, not left hanging.
    let mut c = RawClient::connect(host.server.local_addr());
    c.send(&upgrade_request("/", &[]));
    host.until("the third client dropped", |_| {
        c.pump();
        c.closed()
    });
    assert_eq!(host.server.client_count(), 2);

    // The host's own socket on the same Poll, forwarding to the clients.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = host.udp.local_addr().unwrap();
    for i in 0..5 {
        udp.send_to(format!("d{i}").as_bytes(), to).unwrap();
    }
    host.until("five datagrams", |h| h.datagrams == 5);
    for client in [&mut a, &mut b] {
        for i in 0..5 {
            let mut got = None;
            host.until("a broadcast frame", |_| {
                client.pump();
                got = client.take_frame();
                got.is_some()
            });
            assert_eq!(got.unwrap().text(), format!("d{i}"));
        }
    }

    // Echo works through handle_event/tick too, and a freed slot is reused.
    a.send(&text("echo"));
    let mut got = None;
    host.until("the echo", |_| {
        a.pump();
        got = a.take_frame();
        got.is_some()
    });
    assert_eq!(got.unwrap().text(), "echo");
    a.send(&close(1000, ""));
    host.until("a gone", |h| {
        a.pump();
        a.closed() && h.server.client_count() == 1
    });
    let mut d = host.open();
    assert_eq!(lock(&log).opens.len(), 3);

    // Shutdown through the handle wakes the host's poll.
    host.server.shutdown_handle().shutdown();
    host.until("shut down", |h| {
        for client in [&mut b, &mut d] {
            client.pump();
            if let Some(f) = client.take_frame() {
                assert_eq!(f.close_code(), 1001);
                client.send(&close(1001, ""));
            }
        }
        h.server.is_shut_down()
    });
    assert_eq!(host.server.client_count(), 0);
    let log = lock(&log);
    assert_eq!(log.closes.len(), 3);
    assert_eq!(log.closes.iter().filter(|c| c.1 == 1001).count(), 2);
}
