//! Programs as handlers (websocketd's model) through the real binary: one
//! process per connection, lines both ways, the CGI environment, exit
//! codes as close codes, signals after the client leaves, and no zombie.

#![cfg(target_os = "linux")]

mod support;
#[path = "support/wsloop_bin.rs"]
mod wsloop_bin;

use std::time::{Duration, Instant};

use support::{close, text, RawClient};
use wsloop_bin::Wsloop;

fn start(args: &[&str]) -> Wsloop {
    let mut all = vec!["--log-level", "debug"];
    all.extend_from_slice(args);
    Wsloop::start(&all)
}

fn wait_children(server: &Wsloop, what: &str, cond: impl Fn(&[(u32, char)]) -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let now = server.children();
        if cond(&now) {
            return;
        }
        assert!(
            Instant::now() < end,
            "timed out waiting for {what}: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn cat_per_connection_echoes_lines() {
    let server = start(&["--", "cat"]);
    let mut a = RawClient::open_blocking(server.addr, "/anything");
    let mut b = RawClient::open_blocking(server.addr, "/else");
    wait_children(&server, "two cats", |c| c.len() == 2);
    a.write_blocking(&text("hello from a"));
    b.write_blocking(&text("hello from b"));
    assert_eq!(a.frame_blocking().text(), "hello from a");
    assert_eq!(b.frame_blocking().text(), "hello from b");
    // The client leaves: cat's stdin closes, cat exits, and is reaped.
    a.write_blocking(&close(1000, ""));
    assert_eq!(a.frame_blocking().close_code(), 1000);
    wait_children(&server, "one cat", |c| c.len() == 1);
    drop(b);
    wait_children(&server, "no child, no zombie", |c| c.is_empty());
}

#[test]
fn the_program_sees_a_cgi_environment() {
    let server = start(&[
        "--route",
        "/env=sh -c 'env; echo done'",
        "--passenv",
        "WSLOOP_TEST_GIVEN",
    ]);
    let mut c = RawClient::connect(server.addr);
    c.write_blocking(&support::upgrade_request(
        "/env?room=7",
        &[("X-Token", "a\tb")],
    ));
    c.response_blocking().assert_upgraded();
    let mut env = Vec::new();
    loop {
        let f = c.frame_blocking();
        if f.opcode == 0x8 {
            // The program exited 0 after its output: close 1000.
            assert_eq!(f.close_code(), 1000);
            break;
        }
        env.push(f.text().to_owned());
    }
    let has = |line: &str| env.iter().any(|l| l == line);
    assert!(has("REMOTE_ADDR=127.0.0.1"), "{env:?}");
    assert!(has("QUERY_STRING=room=7"), "{env:?}");
    assert!(has("REQUEST_URI=/env?room=7"), "{env:?}");
    assert!(has("GATEWAY_INTERFACE=CGI/1.1"), "{env:?}");
    assert!(has("SERVER_PROTOCOL=HTTP/1.1"), "{env:?}");
    // A control character never reaches the environment raw.
    assert!(has("HTTP_X_TOKEN=a b"), "{env:?}");
    assert!(
        env.iter().any(|l| l.starts_with("PATH=")),
        "PATH by default"
    );
    assert!(
        !env.iter().any(|l| l.starts_with("HOME=")),
        "only what is passed: {env:?}"
    );
    assert_eq!(env.last().map(String::as_str), Some("done"));
    wait_children(&server, "no child", |c| c.is_empty());
}

#[test]
fn exit_codes_become_close_codes_and_missing_programs_are_500() {
    let server = start(&[
        "--route",
        "/ok=sh -c 'echo bye'",
        "--route",
        "/fail=sh -c 'echo oops >&2; exit 3'",
        "--route",
        "/missing=/no/such/program",
    ]);
    let mut ok = RawClient::open_blocking(server.addr, "/ok");
    assert_eq!(ok.frame_blocking().text(), "bye");
    assert_eq!(ok.frame_blocking().close_code(), 1000);
    let mut fail = RawClient::open_blocking(server.addr, "/fail");
    assert_eq!(fail.frame_blocking().close_code(), 1011);
    // Its stderr went to the log, tagged with the connection.
    assert_eq!(server.wait_log_count("sh: oops", 1), 1);

    let mut missing = RawClient::connect(server.addr);
    missing.write_blocking(&support::upgrade_request("/missing", &[]));
    assert_eq!(missing.response_blocking().status, 500);
    assert_eq!(server.wait_log_count("cannot start", 1), 1);
    // No route: 404.
    let mut none = RawClient::connect(server.addr);
    none.write_blocking(&support::upgrade_request("/nowhere", &[]));
    assert_eq!(none.response_blocking().status, 404);
    wait_children(&server, "no child", |c| c.is_empty());
}

#[test]
fn a_program_that_ignores_its_client_leaving_is_terminated_then_killed() {
    // Ignores stdin's end and SIGTERM: only SIGKILL ends it.
    let server = start(&[
        "--route",
        "/stubborn=sh -c 'trap \"\" TERM; while :; do sleep 1; done'",
    ]);
    let c = RawClient::open_blocking(server.addr, "/stubborn");
    wait_children(&server, "the program", |c| c.len() == 1);
    drop(c);
    // 1 s to SIGTERM, 1 s more to SIGKILL; then reaped.
    wait_children(&server, "no child, no zombie", |c| c.is_empty());
    assert_eq!(server.wait_log_count("sh: SIGTERM", 1), 1);
    assert_eq!(server.wait_log_count("sh: SIGKILL", 1), 1);
    assert_eq!(server.wait_log_count("exited: signal: 9", 1), 1);
}

#[test]
fn a_grandchild_holding_stdout_does_not_keep_the_client_open() {
    // The program forks a sleeper that inherits stdout, says hello and
    // exits: its exit is seen (pidfd) although stdout stays open.
    let server = start(&["--route", "/fork=sh -c '(sleep 30 &) ; echo hello; exit 0'"]);
    let mut c = RawClient::open_blocking(server.addr, "/fork");
    assert_eq!(c.frame_blocking().text(), "hello");
    assert_eq!(c.frame_blocking().close_code(), 1000);
    // The sleeper is init's now, not ours: no child, no zombie.
    wait_children(&server, "no child", |c| c.is_empty());
}

#[test]
fn a_line_past_the_limit_closes_1009_and_ends_the_program() {
    // Writes forever without a newline.
    let server = start(&["--route", "/endless=sh -c 'yes x | tr -d \"\\n\"'"]);
    let mut c = RawClient::open_blocking(server.addr, "/endless");
    assert_eq!(c.frame_blocking().close_code(), 1009);
    wait_children(&server, "no child", |c| c.is_empty());
}

#[test]
fn descriptors_and_children_do_not_leak_over_many_connections() {
    let server = start(&["--", "cat"]);
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
            .unwrap()
            .count()
    };
    let before = fds();
    for i in 0..100 {
        let mut c = RawClient::open_blocking(server.addr, "/cat");
        c.write_blocking(&text(&format!("n{i}")));
        assert_eq!(c.frame_blocking().text(), format!("n{i}"));
        if i % 2 == 0 {
            c.write_blocking(&close(1000, ""));
            assert_eq!(c.frame_blocking().close_code(), 1000);
        } // else: dropped without a close
    }
    wait_children(&server, "every cat gone", |c| c.is_empty());
    let end = Instant::now() + Duration::from_secs(5);
    while fds() > before && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(fds(), before, "descriptors back where they were");
}

#[test]
fn max_forks_answers_503_with_retry_after_past_it() {
    let server = start(&["--max-forks", "1", "--", "cat"]);
    let mut first = RawClient::open_blocking(server.addr, "/a");
    let mut second = RawClient::connect(server.addr);
    second.write_blocking(&support::upgrade_request("/b", &[]));
    let busy = second.response_blocking();
    assert_eq!(busy.status, 503);
    assert_eq!(busy.header("Retry-After"), Some("5"));
    // The first leaves, its cat is reaped: room again.
    first.write_blocking(&close(1000, ""));
    assert_eq!(first.frame_blocking().close_code(), 1000);
    wait_children(&server, "no child", |c| c.is_empty());
    let mut third = RawClient::open_blocking(server.addr, "/c");
    third.write_blocking(&text("again"));
    assert_eq!(third.frame_blocking().text(), "again");
}

// --- Resin's model: one shared program per route, JSON lines ---

/// tests/programs/shared.py: does what each message asks (echo, `all`,
/// `to`, `kick`, `garbage`, `die`, `mute`, `deaf`).
const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/programs/shared.py");

fn shared_route(path: &str) -> String {
    format!("{path}=python3 {SHARED}")
}

/// The open event the program echoes back to a new client: (its id, the
/// whole event as the program received it, the program's pid).
fn opened(c: &mut RawClient) -> (u64, String, u64) {
    let hello = c.frame_blocking().text().to_owned();
    let field = |name: &str| -> u64 {
        let at = hello.find(&format!("\"{name}\": ")).expect(&hello) + name.len() + 4;
        let digits: String = hello[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().expect("a number")
    };
    (field("id"), hello.clone(), field("pid"))
}

fn open_with(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> RawClient {
    let mut c = RawClient::connect(addr);
    c.write_blocking(&support::upgrade_request(path, headers));
    c.response_blocking().assert_upgraded();
    c
}

#[test]
fn one_shared_program_serves_every_client_of_its_route_in_order() {
    let server = start(&["--shared-route", &shared_route("/chat")]);
    let mut a = open_with(server.addr, "/chat/room?name=ann", &[("X-Token", "a\tb")]);
    let (a_id, event, pid) = opened(&mut a);
    // The open event: path, query, lower-case headers (JSON-escaped, so a
    // control character is harmless), the peer.
    assert!(event.contains(r#""path": "/chat/room""#), "{event}");
    assert!(event.contains(r#""query": "name=ann""#), "{event}");
    assert!(event.contains(r#""x-token": "a\tb""#), "{event}");
    assert!(event.contains(r#""peer": "127.0.0.1:"#), "{event}");
    let mut b = RawClient::open_blocking(server.addr, "/chat");
    let (b_id, _, b_pid) = opened(&mut b);
    assert_eq!(pid, b_pid, "one process for both");
    assert!(b_id > a_id);
    wait_children(&server, "one shared program", |c| c.len() == 1);

    // Per client, never reordered: 300 messages back in order.
    for i in 0..300 {
        a.write_blocking(&text(&format!("n{i}")));
    }
    for i in 0..300 {
        assert_eq!(a.frame_blocking().text(), format!("n{i}"));
    }
    // Binary both ways (base64 on the pipe).
    a.write_blocking(&support::binary(&[0, 1, 2, 255]));
    let f = a.frame_blocking();
    assert_eq!(
        (f.opcode, f.payload.as_slice()),
        (0x2, &[0u8, 1, 2, 255][..])
    );

    // Broadcast to the route, and to chosen ids.
    b.write_blocking(&text("all hello everyone"));
    assert_eq!(a.frame_blocking().text(), "hello everyone");
    assert_eq!(b.frame_blocking().text(), "hello everyone");
    a.write_blocking(&text(&format!("to {b_id} just b")));
    assert_eq!(b.frame_blocking().text(), "just b");

    // The program closes a client: its code, then the close event.
    b.write_blocking(&text("kick"));
    let f = b.frame_blocking();
    assert_eq!((f.close_code(), &f.payload[2..]), (4000, &b"kicked"[..]));
    b.write_blocking(&close(4000, ""));
    assert_eq!(a.frame_blocking().text(), format!("left {b_id} 4000 "));
    // a's own close reaches the program too; it stays up for the next.
    a.write_blocking(&close(1000, "bye"));
    assert_eq!(a.frame_blocking().close_code(), 1000);
    // A broadcast reaches every client of the route when it is carried
    // out: c may see a's leaving before the program has read c's open.
    let mut c = RawClient::open_blocking(server.addr, "/chat");
    let mut first = c.frame_blocking();
    if first.text().starts_with("left ") {
        assert_eq!(first.text(), format!("left {a_id} 1000 bye"));
        first = c.frame_blocking();
    }
    assert!(
        first.text().contains(&format!("\"pid\": {pid}")),
        "kept running: {}",
        first.text()
    );
}

#[test]
fn a_shared_program_reaches_only_its_own_routes_clients() {
    let server = start(&[
        "--shared-route",
        &shared_route("/one"),
        "--shared-route",
        &shared_route("/two"),
    ]);
    let mut one = RawClient::open_blocking(server.addr, "/one");
    let (one_id, _, one_pid) = opened(&mut one);
    let mut two = RawClient::open_blocking(server.addr, "/two");
    let (two_id, _, two_pid) = opened(&mut two);
    assert_ne!(one_pid, two_pid, "a program per shared route");
    wait_children(&server, "two shared programs", |c| c.len() == 2);
    // /two's program is asked to send to /one's client: it cannot.
    two.write_blocking(&text(&format!("to {one_id},{two_id} mine only")));
    assert_eq!(two.frame_blocking().text(), "mine only");
    one.write_blocking(&text("ping"));
    assert_eq!(
        one.frame_blocking().text(),
        "ping",
        "nothing from /two came first"
    );
}

#[test]
fn bad_lines_from_a_shared_program_are_logged_and_ignored() {
    let server = start(&["--shared-route", &shared_route("/")]);
    let mut c = RawClient::open_blocking(server.addr, "/");
    opened(&mut c);
    c.write_blocking(&text("garbage"));
    assert_eq!(c.frame_blocking().text(), "still here");
    assert_eq!(server.wait_log_count("line ignored", 5), 5);
    assert_eq!(server.log_count("not json"), 1);
    assert_eq!(server.log_count(r#"unknown "type""#), 1);
    assert_eq!(server.log_count("is not base64"), 1);
    assert_eq!(server.log_count("1005 is not a close code"), 1);
}

#[test]
fn a_dying_shared_program_closes_its_clients_1011_and_is_restarted() {
    let server = start(&["--shared-route", &shared_route("/")]);
    let mut a = RawClient::open_blocking(server.addr, "/");
    let (_, _, first) = opened(&mut a);
    let mut b = RawClient::open_blocking(server.addr, "/");
    opened(&mut b);
    a.write_blocking(&text("die"));
    // What it wrote before dying is delivered, then 1011 for both.
    assert_eq!(a.frame_blocking().text(), "dying");
    assert_eq!(a.frame_blocking().close_code(), 1011);
    assert_eq!(b.frame_blocking().close_code(), 1011);
    assert_eq!(server.wait_log_count("exited (exit status: 3)", 1), 1);
    // Restarted after the backoff: a new process serves.
    server.wait_log_count("started as pid", 2);
    let mut c = RawClient::open_blocking(server.addr, "/");
    let (_, _, second) = opened(&mut c);
    assert_ne!(first, second);
    c.write_blocking(&text("again"));
    assert_eq!(c.frame_blocking().text(), "again");
    wait_children(&server, "one program, the old one reaped", |c| c.len() == 1);
}

#[test]
fn a_shared_program_that_keeps_dying_backs_off_with_503_and_retry_after() {
    let server = start(&["--shared-route", "/=sh -c 'exit 1'"]);
    // The first client starts it; it dies at once: 1011.
    let mut first = RawClient::open_blocking(server.addr, "/");
    assert_eq!(first.frame_blocking().close_code(), 1011);
    // While the restart waits (100 ms, 200 ms, 400 ms...: it dies each
    // time), upgrades get 503 with Retry-After.
    let mut busy = None;
    for _ in 0..20 {
        let mut c = RawClient::connect(server.addr);
        c.write_blocking(&support::upgrade_request("/", &[]));
        let r = c.response_blocking();
        if r.status == 503 {
            busy = Some(r);
            break;
        }
        assert_eq!(r.status, 101, "503 or, between restarts, 101");
    }
    let busy = busy.expect("a 503 while the restart waits");
    assert_eq!(busy.header("Retry-After"), Some("1"));
    assert!(server.wait_log_count("restart in", 3) >= 3);
    assert!(
        server.logs().iter().any(|l| l.contains("restart in 400ms")),
        "the wait doubles: {:?}",
        server.logs()
    );
}

#[test]
fn a_shared_program_that_closes_stdout_is_stopped_and_restarted() {
    let server = start(&[
        "--term-after",
        "100ms",
        "--shared-route",
        &shared_route("/"),
    ]);
    let mut c = RawClient::open_blocking(server.addr, "/");
    let (_, _, first) = opened(&mut c);
    c.write_blocking(&text("mute"));
    // It sleeps with stdout closed: stopped (stdin closed, SIGTERM), its
    // client closed with 1011, a new one started.
    assert_eq!(c.frame_blocking().close_code(), 1011);
    assert_eq!(server.wait_log_count("closed its stdout", 1), 1);
    server.wait_log_count("started as pid", 2);
    let mut d = RawClient::open_blocking(server.addr, "/");
    let (_, _, second) = opened(&mut d);
    assert_ne!(first, second);
    wait_children(&server, "only the new one", |c| c.len() == 1);
}

// --- hostile and faulty programs ---

#[test]
fn programs_that_exit_at_once_or_close_stdout_end_their_client() {
    let server = start(&[
        "--term-after",
        "100ms",
        "--route",
        "/true=true",
        "--route",
        "/false=false",
        "--route",
        "/mute=sh -c 'exec >&-; echo gone >&2; sleep 30'",
    ]);
    let mut ok = RawClient::open_blocking(server.addr, "/true");
    assert_eq!(ok.frame_blocking().close_code(), 1000);
    let mut fail = RawClient::open_blocking(server.addr, "/false");
    assert_eq!(fail.frame_blocking().close_code(), 1011);
    // stdout closed, the program still runs: the client is closed, the
    // program stopped (SIGTERM) and reaped.
    let mut mute = RawClient::open_blocking(server.addr, "/mute");
    assert_eq!(mute.frame_blocking().close_code(), 1000);
    assert_eq!(server.wait_log_count("sh: SIGTERM", 1), 1);
    wait_children(&server, "no child", |c| c.is_empty());
}

/// Writes `frame` again and again without blocking for `for_`, and
/// returns how many bytes the socket took.
fn flood(c: &mut RawClient, frame: &[u8], for_: Duration) -> usize {
    use std::io::Write;
    c.stream.set_nonblocking(true).unwrap();
    let end = Instant::now() + for_;
    let mut sent = 0;
    let mut at = 0;
    while Instant::now() < end {
        match c.stream.write(&frame[at..]) {
            Ok(n) => {
                sent += n;
                at = (at + n) % frame.len();
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    c.stream.set_nonblocking(false).unwrap();
    sent
}

#[test]
fn a_program_that_never_reads_pauses_its_client_with_memory_bounded() {
    let server = start(&["--route", "/deaf=sleep 30", "--route", "/cat=cat"]);
    let mut other = RawClient::open_blocking(server.addr, "/cat");
    let mut c = RawClient::open_blocking(server.addr, "/deaf");
    let before = server.rss_kib();
    // 2 s of 64 KiB messages at a program that reads none of them.
    let sent = flood(
        &mut c,
        &text(&"x".repeat(64 * 1024)),
        Duration::from_secs(2),
    );
    let grown = server.rss_kib().saturating_sub(before);
    // The pipe (64 KiB), 256 KiB held for stdin, and the socket buffers:
    // then TCP stops the client.
    assert!(
        sent < 32 << 20,
        "the client was stopped: {sent} bytes taken"
    );
    assert!(grown < 8 * 1024, "server grew {grown} KiB");
    // The other client is unaffected.
    other.write_blocking(&text("still served"));
    assert_eq!(other.frame_blocking().text(), "still served");
}

#[test]
fn a_slow_client_stops_the_reading_of_its_programs_output() {
    // `yes` writes as fast as it can; its client reads nothing.
    let server = start(&["--route", "/yes=yes", "--route", "/cat=cat"]);
    let mut c = RawClient::open_blocking(server.addr, "/yes");
    let before = server.rss_kib();
    std::thread::sleep(Duration::from_secs(2));
    let grown = server.rss_kib().saturating_sub(before);
    assert!(grown < 8 * 1024, "server grew {grown} KiB");
    // Not closed for its queue (1008): held back, and it reads on.
    for _ in 0..1000 {
        let f = c.frame_blocking();
        assert_eq!((f.opcode, f.text()), (0x1, "y"));
    }
    let mut other = RawClient::open_blocking(server.addr, "/cat");
    other.write_blocking(&text("unaffected"));
    assert_eq!(other.frame_blocking().text(), "unaffected");
    assert_eq!(server.log_count("1008"), 0, "{:?}", server.logs());
}

#[test]
fn a_shared_program_that_stops_reading_pauses_the_senders() {
    let server = start(&["--shared-route", &shared_route("/")]);
    let mut a = RawClient::open_blocking(server.addr, "/");
    opened(&mut a);
    a.write_blocking(&text("deaf 3"));
    assert_eq!(a.frame_blocking().text(), "deaf");
    let before = server.rss_kib();
    let mut b = RawClient::open_blocking(server.addr, "/");
    let sent = flood(
        &mut b,
        &text(&"y".repeat(64 * 1024)),
        Duration::from_millis(1500),
    );
    let grown = server.rss_kib().saturating_sub(before);
    assert!(sent < 32 << 20, "the sender was paused: {sent} bytes taken");
    assert!(grown < 8 * 1024, "server grew {grown} KiB");
    // Once the program reads again, everything arrives, in order.
    let (_, _, _) = opened(&mut b);
    let whole = sent / (64 * 1024 + 8);
    for _ in 0..whole {
        assert_eq!(b.frame_blocking().payload.len(), 64 * 1024);
    }
}

#[test]
fn a_thousand_connections_come_and_go_while_programs_run() {
    let server = start(&["--", "cat"]);
    let mut steady = RawClient::open_blocking(server.addr, "/steady");
    wait_children(&server, "the steady cat", |c| c.len() == 1);
    let fds = server.fd_count();
    let rss = server.rss_kib();
    let mut open: Vec<RawClient> = Vec::new();
    for i in 0..1000 {
        let mut c = RawClient::open_blocking(server.addr, "/churn");
        c.write_blocking(&text(&format!("n{i}")));
        assert_eq!(c.frame_blocking().text(), format!("n{i}"));
        open.push(c);
        // Up to 50 open at once; the oldest leave, half without a close.
        if open.len() == 50 {
            for (j, mut c) in open.drain(..).enumerate() {
                if j % 2 == 0 {
                    c.write_blocking(&close(1000, ""));
                }
            }
        }
    }
    drop(open);
    steady.write_blocking(&text("unaffected"));
    assert_eq!(steady.frame_blocking().text(), "unaffected");
    wait_children(&server, "only the steady cat", |c| c.len() == 1);
    assert_eq!(server.wait_fds(Duration::from_secs(5), |n| n <= fds), fds);
    let grown = server.rss_kib().saturating_sub(rss);
    assert!(grown < 16 * 1024, "server grew {grown} KiB");
}

#[test]
fn the_benchmarks_shared_echo_programs_echo_text_and_binary() {
    let python = format!(
        "python3 {}/examples/handlers/echo-shared.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut programs = vec![python];
    programs.extend(wsloop_bin::example("shared_echo").map(|p| p.to_string_lossy().into_owned()));
    for program in programs {
        let server = start(&["--shared-route", &format!("/={program}")]);
        let mut a = RawClient::open_blocking(server.addr, "/");
        let mut b = RawClient::open_blocking(server.addr, "/");
        // A burst from both, answered in order to each.
        for i in 0..100 {
            a.write_blocking(&text(&format!("a{i} \"quoted\" é")));
            b.write_blocking(&support::binary(&[i as u8, 0, 255]));
        }
        for i in 0..100 {
            assert_eq!(
                a.frame_blocking().text(),
                format!("a{i} \"quoted\" é"),
                "{program}"
            );
            let f = b.frame_blocking();
            assert_eq!(
                (f.opcode, f.payload),
                (0x2, vec![i as u8, 0, 255]),
                "{program}"
            );
        }
        wait_children(&server, "one program", |c| c.len() == 1);
    }
}
