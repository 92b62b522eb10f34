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

/// The server's children, as (pid, state) from `/proc`.
fn children(server: &Wsloop) -> Vec<(u32, char)> {
    let me = server.pid();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid: u32 = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == me {
            out.push((pid, state));
        }
    }
    out
}

fn wait_children(server: &Wsloop, what: &str, cond: impl Fn(&[(u32, char)]) -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let now = children(server);
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
