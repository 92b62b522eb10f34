//! The Redis backplane with real components: Debian's `redis-server`
//! started on a free port, two `wsloop --redis` processes with `/chat`
//! clients on each, messages crossing both ways exactly once; Redis killed
//! and restarted in the middle; Redis down at start; `AUTH` right and
//! wrong; bad URLs. Skipped loudly without `redis-server`, a failure under
//! `WSLOOP_REQUIRE_PEERS=1`. Every process is stopped when its test ends.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use tungstenite::Message;
use wsloop::backplane::RedisConfig;
use wsloop::{Config, ConnId, Ctx, Handler, Server};

#[path = "support/pki.rs"]
mod pki;
#[path = "support/process.rs"]
mod process;
#[path = "support/redis.rs"]
mod redis;
#[path = "support/ws_client.rs"]
mod ws_client;
#[path = "support/wsloop_bin.rs"]
mod wsloop_bin;

use redis::Redis;
use ws_client::{assert_silent, connect, text, Ws};
use wsloop_bin::{Wsloop, BIN};

const CHAT: &str = "wsloop:chat";

fn start(url: &str, more: &[&str]) -> Wsloop {
    let mut args = vec!["--redis", url];
    args.extend_from_slice(more);
    Wsloop::start(&args)
}

/// Waits for the process's link to come up `n` times in all.
fn wait_up(server: &Wsloop, n: usize) {
    let got = server.wait_log_count("redis: link up", n);
    assert!(
        got >= n,
        "link up {got} times, not {n}: {:#?}",
        server.logs()
    );
}

fn join(server: &Wsloop, name: &str) -> Ws {
    let mut ws = connect(server.addr, &format!("/chat?name={name}"), &[]);
    assert!(text(&mut ws).starts_with(&format!("welcome {name}:")));
    ws
}

fn say(ws: &mut Ws, what: &str) {
    ws.send(Message::text(what)).unwrap();
}

/// Reads `n` texts from `ws`.
fn texts(ws: &mut Ws, n: usize) -> Vec<String> {
    (0..n).map(|_| text(ws)).collect()
}

/// Nothing more for any of `clients` (no duplicate came late).
fn all_silent(clients: &mut [(&str, &mut Ws)]) {
    for (who, ws) in clients {
        assert_silent(ws, Duration::from_millis(300), who);
    }
}

/// Runs the binary with `args` (and `env`), which must refuse them at
/// start with exit code 2; returns what it wrote to stderr.
fn refused_at_start(args: &[&str], env: &[(&str, &std::path::Path)]) -> String {
    let mut command = Command::new(BIN);
    command
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("WSLOOP_REDIS")
        .stdin(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let done = process::run_with_deadline(&mut command, Duration::from_secs(10));
    let code = done.status.expect("exits at once").code();
    assert_eq!(code, Some(2), "{args:?}: {}", done.stderr);
    done.stderr
}

#[test]
fn chat_crosses_two_processes_once_each_way() {
    if !redis::available("chat_crosses_two_processes_once_each_way") {
        return;
    }
    let r = Redis::start(&[]);
    let (a, b) = (start(&r.url(), &[]), start(&r.url(), &[]));
    wait_up(&a, 1);
    wait_up(&b, 1);
    assert_eq!(r.wsloop_clients(None), 2, "one connection per process");

    let mut a1 = join(&a, "a1");
    r.wait_numsub(None, CHAT, 1); // a holds the topic now: subscribed
    let mut b1 = join(&b, "b1");
    assert_eq!(text(&mut a1), "b1 joined", "through Redis");
    r.wait_numsub(None, CHAT, 2);
    let mut a2 = join(&a, "a2");
    assert_eq!(text(&mut a1), "a2 joined");
    assert_eq!(text(&mut b1), "a2 joined", "through Redis");

    say(&mut a1, "hello from a");
    say(&mut b1, "hello from b");
    // Each client gets each message once: its own process's publishes
    // come back from Redis and are left out. The order between the two
    // senders is not fixed.
    for (who, ws) in [("a1", &mut a1), ("a2", &mut a2), ("b1", &mut b1)] {
        let mut got = texts(ws, 2);
        got.sort();
        assert_eq!(got, ["a1: hello from a", "b1: hello from b"], "{who}");
    }
    // Another program's PUBLISH on the channel reaches every client.
    let receivers = r.command(None, &["PUBLISH", CHAT, "a notice from elsewhere"]);
    assert_eq!(receivers, [":2"], "both processes subscribed");
    for ws in [&mut a1, &mut a2, &mut b1] {
        assert_eq!(text(ws), "a notice from elsewhere");
    }
    all_silent(&mut [("a1", &mut a1), ("a2", &mut a2), ("b1", &mut b1)]);

    // The last client of b leaves: b unsubscribes, a stays.
    drop(b1);
    assert_eq!(text(&mut a1), "b1 left");
    r.wait_numsub(None, CHAT, 1);
}

#[test]
fn a_redis_restart_mid_run_is_survived() {
    if !redis::available("a_redis_restart_mid_run_is_survived") {
        return;
    }
    let mut r = Redis::start(&[]);
    let (a, b) = (start(&r.url(), &[]), start(&r.url(), &[]));
    wait_up(&a, 1);
    wait_up(&b, 1);
    let mut a1 = join(&a, "a1");
    let mut a2 = join(&a, "a2");
    assert_eq!(text(&mut a1), "a2 joined");
    let mut b1 = join(&b, "b1");
    r.wait_numsub(None, CHAT, 2);
    for ws in [&mut a1, &mut a2] {
        assert_eq!(text(ws), "b1 joined");
    }

    r.kill();
    for s in [&a, &b] {
        // "Redis closed the connection" or "read failed: ... reset".
        let n = s.wait_log_count("serving this process's clients alone", 1);
        assert_eq!(n, 1, "{:#?}", s.logs());
    }
    // Down: a's clients still hear each other; b's hear nothing of it
    // (at most once: nothing is kept for later).
    say(&mut a1, "while redis is down");
    for ws in [&mut a1, &mut a2] {
        assert_eq!(text(ws), "a1: while redis is down");
    }
    assert_silent(&mut b1, Duration::from_millis(300), "b1 during the outage");

    r.restart();
    wait_up(&a, 2);
    wait_up(&b, 2);
    // Both subscribed to the chat again, by themselves.
    r.wait_numsub(None, CHAT, 2);
    say(&mut b1, "after the restart");
    for ws in [&mut a1, &mut a2, &mut b1] {
        assert_eq!(text(ws), "b1: after the restart");
    }
    say(&mut a2, "and back");
    for ws in [&mut a1, &mut a2, &mut b1] {
        assert_eq!(text(ws), "a2: and back");
    }
    all_silent(&mut [("a1", &mut a1), ("a2", &mut a2), ("b1", &mut b1)]);
}

#[test]
fn redis_down_at_start_serves_locally_then_links_up() {
    if !redis::available("redis_down_at_start_serves_locally_then_links_up") {
        return;
    }
    let port = redis::free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let a = start(&url, &[]);
    let warned = a.wait_log_count("serving this process's clients alone", 1);
    assert_eq!(warned, 1, "{:#?}", a.logs());
    let mut a1 = join(&a, "a1");
    let mut a2 = join(&a, "a2");
    assert_eq!(text(&mut a1), "a2 joined");
    say(&mut a2, "no redis yet");
    for ws in [&mut a1, &mut a2] {
        assert_eq!(text(ws), "a2: no redis yet");
    }

    let r = Redis::start_on(port, &[]);
    wait_up(&a, 1); // within the 5 s backoff ceiling
    let after = a
        .logs()
        .into_iter()
        .find(|l| l.contains("redis: link up"))
        .unwrap();
    assert!(after.contains("failed attempts"), "{after}");
    r.wait_numsub(None, CHAT, 1);
    let b = start(&url, &[]);
    wait_up(&b, 1);
    let mut b1 = join(&b, "b1");
    for ws in [&mut a1, &mut a2] {
        assert_eq!(text(ws), "b1 joined");
    }
    say(&mut a1, "linked");
    assert_eq!(text(&mut b1), "a1: linked");
}

#[test]
fn auth_from_the_url_and_a_wrong_password() {
    if !redis::available("auth_from_the_url_and_a_wrong_password") {
        return;
    }
    let r = Redis::start(&[
        "--requirepass",
        "defpass",
        "--user",
        "chat",
        "on",
        ">s3cr%t:x",
        "~*",
        "&wsloop:*",
        "+@all",
    ]);
    let port = r.port;
    // The default user's password (one letter escaped for the test's
    // sake), and an ACL user whose password needs percent-escapes.
    let a = start(&format!("redis://:def%70ass@127.0.0.1:{port}"), &[]);
    let b = start(
        &format!("redis://chat:s3cr%25t%3Ax@127.0.0.1:{port}/0"),
        &[],
    );
    wait_up(&a, 1);
    wait_up(&b, 1);
    let auth = Some("defpass");
    let mut a1 = join(&a, "a1");
    r.wait_numsub(auth, CHAT, 1);
    let mut b1 = join(&b, "b1");
    assert_eq!(text(&mut a1), "b1 joined");
    r.wait_numsub(auth, CHAT, 2);
    say(&mut a1, "authenticated");
    assert_eq!(text(&mut a1), "a1: authenticated");
    assert_eq!(text(&mut b1), "a1: authenticated");

    // A wrong password: refused and retried, the clients served locally.
    let c = start(&format!("redis://:nope@127.0.0.1:{port}"), &[]);
    let refused = c.wait_log_count("HELLO refused", 1);
    assert!(refused >= 1, "{:#?}", c.logs());
    assert!(
        c.logs().iter().any(|l| l.contains("WRONGPASS")),
        "{:#?}",
        c.logs()
    );
    assert_eq!(c.log_count("redis: link up"), 0);
    let mut c1 = join(&c, "c1");
    let mut c2 = join(&c, "c2");
    assert_eq!(text(&mut c1), "c2 joined");
    say(&mut c2, "alone");
    assert_eq!(text(&mut c1), "c2: alone");
    assert_silent(&mut a1, Duration::from_millis(300), "a1: c is not linked");
}

#[test]
fn bad_urls_are_refused_at_start_with_exit_code_2() {
    let cases: BTreeMap<&str, &str> = [
        ("http://localhost", "unsupported scheme"),
        ("rediss://localhost:0", "bad port"),
        ("rediss://redis.123", "not a name or address"),
        ("redis://localhost:0", "bad port"),
        ("redis://", "no host"),
        ("redis://h/x", "bad database"),
    ]
    .into();
    for (url, says) in cases {
        let stderr = refused_at_start(&["--redis", url], &[]);
        assert!(stderr.contains(says), "{url}: {stderr}");
        assert!(stderr.contains("--redis"), "{url}: {stderr}");
    }
    // The prefix alone means nothing.
    refused_at_start(&["--redis-prefix", "x:"], &[]);
}

/// Connections to Redis's TLS port from processes named `wsloop`.
fn wsloop_clients_on(r: &Redis, port: u16) -> usize {
    let lines = r.command(None, &["CLIENT", "LIST"]);
    let laddr = format!("laddr=127.0.0.1:{port} ");
    lines
        .iter()
        .filter(|l| l.contains("name=wsloop") && l.contains(&laddr))
        .count()
}

#[test]
fn rediss_with_a_private_ca_and_client_certificates() {
    if !redis::available("rediss_with_a_private_ca_and_client_certificates") {
        return;
    }
    let ca = pki::TestCa::new("rediss");
    let (server_cert, server_key) = ca.issue_files("redis");
    let (client_cert, client_key) = ca.issue_files("client");
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let (ca_pem, client_cert, client_key) =
        (path(&ca.ca_pem()), path(&client_cert), path(&client_key));
    let tls_port = redis::free_port();
    // Plain on its port for the test's own commands, TLS on `tls_port`
    // asking every client for a certificate (Redis's default).
    let mut r = Redis::start(&[
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &path(&server_cert),
        "--tls-key-file",
        &path(&server_key),
        "--tls-ca-cert-file",
        &ca_pem,
        "--tls-auth-clients",
        "yes",
    ]);
    let files = [
        "--redis-ca",
        &ca_pem,
        "--redis-cert",
        &client_cert,
        "--redis-key",
        &client_key,
    ];
    // By name and by address: each checked against the certificate.
    let a = start(&format!("rediss://localhost:{tls_port}"), &files);
    let b = start(&format!("rediss://127.0.0.1:{tls_port}"), &files);
    wait_up(&a, 1);
    wait_up(&b, 1);
    assert_eq!(wsloop_clients_on(&r, tls_port), 2, "both over TLS");
    let mut a1 = join(&a, "a1");
    r.wait_numsub(None, CHAT, 1);
    let mut b1 = join(&b, "b1");
    assert_eq!(text(&mut a1), "b1 joined", "through Redis over TLS");
    r.wait_numsub(None, CHAT, 2);
    say(&mut a1, "sealed");
    say(&mut b1, "delivered");
    for (who, ws) in [("a1", &mut a1), ("b1", &mut b1)] {
        let mut got = texts(ws, 2);
        got.sort();
        assert_eq!(got, ["a1: sealed", "b1: delivered"], "{who}");
    }
    // Large messages cross too (many TLS records each way).
    let big = "x".repeat(200_000);
    say(&mut b1, &big);
    assert_eq!(text(&mut a1), format!("b1: {big}"));
    assert_eq!(text(&mut b1), format!("b1: {big}"));
    all_silent(&mut [("a1", &mut a1), ("b1", &mut b1)]);

    // Redis restarted: both make a new TLS connection and subscribe again.
    r.restart(); // SIGKILL, then the same arguments
    wait_up(&a, 2);
    wait_up(&b, 2);
    r.wait_numsub(None, CHAT, 2);
    assert_eq!(wsloop_clients_on(&r, tls_port), 2, "both over TLS again");
    say(&mut b1, "after the restart");
    assert_eq!(text(&mut a1), "b1: after the restart");
    assert_eq!(text(&mut b1), "b1: after the restart");

    // No client certificate: Redis refuses the handshake; the system's
    // roots do not know the private CA. Both keep serving their own
    // clients and say why they are not linked.
    // By address: a host whose localhost is ::1 first would log a refused
    // connection before these reasons (Redis listens on 127.0.0.1).
    let no_cert = start(
        &format!("rediss://127.0.0.1:{tls_port}"),
        &["--redis-ca", &ca_pem],
    );
    // The system's roots, here another CA's alone (rustls-native-certs
    // reads SSL_CERT_FILE and SSL_CERT_DIR instead of the system's store
    // when they are set, as OpenSSL does).
    let other = pki::TestCa::new("rediss-other");
    let other_roots = path(&other.ca_pem());
    let other_dir = path(&other.dir.join("no-such-dir"));
    let unknown_ca = Wsloop::start_env(
        &["--redis", &format!("rediss://127.0.0.1:{tls_port}")],
        &[
            ("SSL_CERT_FILE", &other_roots),
            ("SSL_CERT_DIR", &other_dir),
        ],
    );
    for (server, says) in [
        (&no_cert, "CertificateRequired"),
        (&unknown_ca, "invalid peer certificate"),
    ] {
        let failed = server.wait_log_count(says, 1);
        assert!(failed >= 1, "{:#?}", server.logs());
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            server.log_count("redis: link up"),
            0,
            "{:#?}",
            server.logs()
        );
        let mut c1 = join(server, "c1");
        let mut c2 = join(server, "c2");
        assert_eq!(text(&mut c1), "c2 joined");
        say(&mut c2, "alone");
        assert_eq!(text(&mut c1), "c2: alone");
    }
    assert_silent(
        &mut a1,
        Duration::from_millis(300),
        "a1: the others are not linked",
    );
    assert_eq!(wsloop_clients_on(&r, tls_port), 2);

    // TLS flags without rediss://, and files that are not what they
    // should be: a clear error at start, exit code 2.
    let plain = format!("redis://127.0.0.1:{}", r.port);
    let missing = path(&ca.dir.join("missing.pem"));
    let rediss = format!("rediss://localhost:{tls_port}");
    for (url, flags, says) in [
        (&plain, vec!["--redis-ca", &ca_pem], "rediss://"),
        (&rediss, vec!["--redis-ca", &missing], "missing.pem"),
        (&rediss, vec!["--redis-cert", &client_cert], "--redis-key"),
        (
            &rediss,
            vec!["--redis-cert", &client_cert, "--redis-key", &ca_pem],
            "ca.pem",
        ),
    ] {
        let args = [&["--redis", url.as_str()][..], &flags].concat();
        let stderr = refused_at_start(&args, &[]);
        assert!(stderr.contains(says), "{flags:?}: {stderr}");
    }
    // No trusted roots at all (an empty store): said at start, exit 2.
    let empty = ca.dir.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let stderr = refused_at_start(
        &["--redis", &rediss],
        &[
            ("SSL_CERT_FILE", &empty),
            ("SSL_CERT_DIR", &ca.dir.join("no-such-dir")),
        ],
    );
    assert!(stderr.contains("trusted roots"), "{stderr}");
}

#[test]
fn a_prefix_keeps_applications_apart_on_one_redis() {
    if !redis::available("a_prefix_keeps_applications_apart_on_one_redis") {
        return;
    }
    let r = Redis::start(&[]);
    let a = start(&r.url(), &["--redis-prefix", "one:"]);
    let b = start(&r.url(), &["--redis-prefix", "two:"]);
    wait_up(&a, 1);
    wait_up(&b, 1);
    let mut a1 = join(&a, "a1");
    let mut b1 = join(&b, "b1");
    r.wait_numsub(None, "one:chat", 1);
    r.wait_numsub(None, "two:chat", 1);
    say(&mut a1, "for one only");
    assert_eq!(text(&mut a1), "a1: for one only");
    assert_silent(&mut b1, Duration::from_millis(300), "b1 on another prefix");
}

#[test]
fn every_loop_of_a_threaded_process_links_and_nothing_arrives_twice() {
    if !redis::available("every_loop_of_a_threaded_process_links_and_nothing_arrives_twice") {
        return;
    }
    let r = Redis::start(&[]);
    // Two loops, connections handed to each in turn: a1 on loop 0, a2 on 1.
    let a = start(&r.url(), &["--threads", "2", "--balance", "round-robin"]);
    let b = start(&r.url(), &[]);
    wait_up(&a, 2);
    wait_up(&b, 1);
    assert_eq!(r.wsloop_clients(None), 3, "a connection per loop");
    let mut a1 = join(&a, "a1");
    r.wait_numsub(None, CHAT, 1);
    let mut a2 = join(&a, "a2");
    assert_eq!(text(&mut a1), "a2 joined", "through the hub");
    r.wait_numsub(None, CHAT, 2); // each loop subscribes for itself
    assert_eq!(a.log_count("/chat opened as #1/"), 1, "{:#?}", a.logs());
    let mut b1 = join(&b, "b1");
    for ws in [&mut a1, &mut a2] {
        assert_eq!(text(ws), "b1 joined");
    }
    r.wait_numsub(None, CHAT, 3);
    // A publish on loop 1 reaches loop 0 through the hub and b through
    // Redis; loop 0 leaves out the copy that comes back from Redis.
    say(&mut a2, "from loop 1");
    say(&mut b1, "from b");
    for (who, ws) in [("a1", &mut a1), ("a2", &mut a2), ("b1", &mut b1)] {
        let mut got = texts(ws, 2);
        got.sort();
        assert_eq!(got, ["a2: from loop 1", "b1: from b"], "{who}");
    }
    all_silent(&mut [("a1", &mut a1), ("a2", &mut a2), ("b1", &mut b1)]);
}

#[test]
fn a_handle_publish_from_a_library_server_reaches_another_process() {
    if !redis::available("a_handle_publish_from_a_library_server_reaches_another_process") {
        return;
    }
    let r = Redis::start(&[]);
    let b = start(&r.url(), &[]);
    wait_up(&b, 1);
    let mut b1 = join(&b, "b1");
    r.wait_numsub(None, CHAT, 1);

    // A server of the library's with no client at all, on its own thread:
    // what its handle publishes goes to Redis.
    struct Quiet;
    impl Handler for Quiet {
        type Data = ();
        fn on_message(&mut self, _: &mut Ctx<'_, ()>, _: ConnId, _: wsloop::Message<'_>) {}
    }
    let url = r.url();
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let addr = "127.0.0.1:0".parse().unwrap();
        let mut server = Server::bind(addr, Config::default(), Quiet)?;
        server.set_redis(RedisConfig::from_url(&url).unwrap());
        tx.send(server.handle()).unwrap();
        server.run()
    });
    let handle = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    // Named by its HELLO: the link is up.
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while r.wsloop_clients(None) < 2 {
        assert!(
            std::time::Instant::now() < end,
            "the library server never linked"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    handle
        .publish("chat", wsloop::Message::Text("from a library server"))
        .unwrap();
    assert_eq!(text(&mut b1), "from a library server");
    handle.shutdown();
    thread.join().unwrap().unwrap();
}

#[test]
fn a_stalled_redis_costs_bounded_memory_and_counted_drops() {
    if !redis::available("a_stalled_redis_costs_bounded_memory_and_counted_drops") {
        return;
    }
    const BIG: usize = 512 * 1024;
    const SENT: usize = 96; // 48 MiB: past the 32 MiB of pending commands
    let r = Redis::start(&[]);
    let (a, b) = (start(&r.url(), &[]), start(&r.url(), &[]));
    wait_up(&a, 1);
    wait_up(&b, 1);
    let mut a1 = join(&a, "a1");
    r.wait_numsub(None, CHAT, 1);
    let mut b1 = join(&b, "b1");
    assert_eq!(text(&mut a1), "b1 joined");
    r.wait_numsub(None, CHAT, 2);

    // Redis stops reading (SIGSTOP): a's commands pile up, to a bound.
    let pid = r.pid().to_string();
    let signal = |sig: &str| {
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    };
    signal("-STOP");
    let body = "x".repeat(BIG);
    for i in 0..SENT {
        say(&mut a1, &format!("{i:02}{body}"));
        // a's own client gets each at once: the stall is Redis's alone.
        assert_eq!(text(&mut a1).len(), "a1: ".len() + 2 + BIG);
    }
    let dropped = a.wait_log_count("too many bytes wait for Redis", 1);
    assert!(dropped >= 1, "{:#?}", a.logs());
    // Bounded: a holds less than the 48 MiB it could not send.
    assert!(a.rss_kib() < 44 * 1024, "a's RSS is {} KiB", a.rss_kib());

    signal("-CONT");
    // b gets what was kept, in order, as Redis works through it.
    let mut got = Vec::new();
    b1.get_ref()
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    while let Ok(Message::Text(t)) = ws_client::read(&mut b1) {
        got.push(t[4..6].parse::<usize>().unwrap());
    }
    b1.get_ref()
        .set_read_timeout(Some(ws_client::TIMEOUT))
        .unwrap();
    assert!(
        !got.is_empty() && got.len() < SENT,
        "b got {} of {SENT}",
        got.len()
    );
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order: {got:?}");
    // And the link carries on.
    say(&mut a1, "after the stall");
    assert_eq!(text(&mut a1), "a1: after the stall");
    assert_eq!(text(&mut b1), "a1: after the stall");
}
