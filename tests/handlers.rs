//! The example programs of `examples/handlers/` through the real binary,
//! with real clients: Resin's handler, the command demo and the push demo
//! in PHP (Debian's `php-cli`), each per connection and shared, the Python
//! chat room (shared) and the shell counter (per connection).
//!
//! Each demo must answer the same in both modes, and the same as the
//! binary's built-in routes where those define the texts (`server` aside:
//! the PHP programs answer `Resin PHP`). A shared route shows one process
//! serving two clients. Every server is stopped with SIGTERM at the end and
//! its children must be gone.
//!
//! Needs `php` and `python3`. Without one, the tests that need it are
//! skipped loudly, unless `WSLOOP_REQUIRE_PEERS=1` (as in `.ci/run`),
//! where they fail.

#![cfg(target_os = "linux")]

mod support;
#[path = "support/wsloop_bin.rs"]
mod wsloop_bin;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::{binary, close, text, RawClient, CLOSE, TEXT};
use wsloop_bin::Wsloop;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/handlers");

/// Whether `tool` runs. When it does not: a loud notice on stderr, or a
/// failure with `WSLOOP_REQUIRE_PEERS=1`.
fn peer(tool: &str, package: &str) -> bool {
    let runs = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if runs {
        return true;
    }
    if std::env::var("WSLOOP_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
        panic!("handlers test: `{tool}` is missing (WSLOOP_REQUIRE_PEERS=1, so this fails)");
    }
    // Straight to the process's stderr: libtest would capture eprintln!.
    let notice = format!(
        "\n==================================================================\n\
         SKIPPED: a handlers test did not run: `{tool}` is missing.\n\
         Install: apt-get install {package}\n\
         Set WSLOOP_REQUIRE_PEERS=1 to make this a failure.\n\
         ==================================================================\n"
    );
    let _ = std::io::stderr().write_all(notice.as_bytes());
    false
}

/// A `--route` or `--shared-route` value: `/path=INTERPRETER 'DIR/file'`.
fn route(path: &str, interpreter: &str, file: &str) -> String {
    format!("{path}={interpreter} '{DIR}/{file}'")
}

/// Waits up to 5 s until the server has exactly `n` children.
fn wait_children(server: &Wsloop, n: usize, what: &str) {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let now = server.children();
        if now.len() == n {
            return;
        }
        assert!(
            Instant::now() < end,
            "{what}: want {n} children, have {now:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops the server with SIGTERM (clients should be gone): it must exit
/// cleanly within 5 s, and every child it had must be gone with it.
fn stop(mut server: Wsloop) {
    let kids = server.children();
    let pid = server.pid().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
    let end = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(Instant::now() < end, "the server did not stop within 5 s");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "the server exited with {status}");
    for (kid, _) in kids {
        while std::path::Path::new(&format!("/proc/{kid}")).exists() {
            assert!(Instant::now() < end, "child {kid} outlived the server");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The next `n` messages, all text.
fn texts(c: &mut RawClient, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let f = c.frame_blocking();
            assert_eq!(f.opcode, TEXT, "want a text message, got {}", f.short());
            f.text().to_owned()
        })
        .collect()
}

/// Reads until the server's close frame: the texts before it and its code.
/// Answers it and waits for the connection's end.
fn until_closed(c: &mut RawClient) -> (Vec<String>, u16) {
    let mut before = Vec::new();
    loop {
        let f = c.frame_blocking();
        if f.opcode == CLOSE {
            let code = f.close_code();
            let _ = c.stream.write_all(&close(code, ""));
            c.wait_closed_blocking();
            return (before, code);
        }
        before.push(f.text().to_owned());
    }
}

/// Sends each message of `script` and reads one reply to each (the last
/// message of a script ends with a close): the replies and the close code.
fn run_script(c: &mut RawClient, script: &[&str]) -> (Vec<String>, u16) {
    let mut replies = Vec::new();
    for msg in script {
        c.write_blocking(&text(msg));
        replies.extend(texts(c, 1));
    }
    let (extra, code) = until_closed(c);
    assert!(extra.is_empty(), "nothing after the last reply: {extra:?}");
    (replies, code)
}

/// The UTC date (`YYYY.MM.DD`) and time of day in seconds of `t`.
fn utc(t: SystemTime) -> (String, u64) {
    let secs = t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs();
    // Howard Hinnant's days-to-civil, for days since 1970-01-01.
    let z = (secs / 86_400) as i64 + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (format!("{year:04}.{month:02}.{day:02}"), secs % 86_400)
}

/// Checks the `date` and `time` replies against the clock (UTC, within
/// 5 s) and puts placeholders in their place, so that transcripts taken a
/// moment apart compare equal.
fn settle_clock(replies: &mut [String]) {
    let now = SystemTime::now();
    let dates = [utc(now).0, utc(now - Duration::from_secs(5)).0];
    let (_, now_s) = utc(now);
    for r in replies.iter_mut() {
        if let Some(date) = r.strip_prefix("today is ") {
            assert!(dates.iter().any(|d| d == date), "{r:?}: today is {dates:?}");
            *r = "today is <date>".into();
        } else if let Some(time) = r.strip_prefix("server time is ") {
            let parts: Vec<u64> = time.split(':').map(|p| p.parse().unwrap()).collect();
            assert!(parts.len() == 3 && time.len() == 8, "{r:?}");
            let at = parts[0] * 3600 + parts[1] * 60 + parts[2];
            let behind = (now_s + 86_400 - at) % 86_400;
            assert!(
                behind <= 5,
                "{r:?} is not the UTC time ({now_s} s into the day)"
            );
            *r = "server time is <time>".into();
        }
    }
}

#[test]
fn resin_handler_answers_the_same_per_connection_and_shared() {
    if !peer("php", "php-cli") {
        return;
    }
    let server = Wsloop::start(&[
        "--route",
        &route("/resin", "php", "resin.php"),
        "--shared-route",
        &route("/resin-shared", "php", "resin-shared.php"),
    ]);
    // Resin's answers: `hello` and `server`; anything else gets none (so
    // the reply after "what" is the one to "server").
    let script = ["hello", "what", "server", "hello"];
    let want = ["world", "Resin PHP", "world"];
    let talk = |c: &mut RawClient| {
        for msg in script {
            c.write_blocking(&text(msg));
        }
        texts(c, want.len())
    };

    // Shared: two clients, one process.
    let mut a = RawClient::open_blocking(server.addr, "/resin-shared");
    let mut b = RawClient::open_blocking(server.addr, "/resin-shared");
    b.write_blocking(&text("server"));
    assert_eq!(talk(&mut a), want);
    assert_eq!(texts(&mut b, 1), ["Resin PHP"]);
    assert_eq!(talk(&mut b), want);
    wait_children(&server, 1, "one shared program for two clients");

    // Per connection: a process each (besides the shared one, which stays).
    let mut c = RawClient::open_blocking(server.addr, "/resin");
    let mut d = RawClient::open_blocking(server.addr, "/resin");
    assert_eq!(talk(&mut c), want);
    assert_eq!(talk(&mut d), want);
    wait_children(&server, 3, "a program per connection and the shared one");

    drop((a, b, c, d));
    // The per-connection programs end with their clients; the shared one
    // is kept running when the last client leaves.
    wait_children(&server, 1, "the shared program alone");
    stop(server);
}

#[test]
fn command_demo_answers_as_the_built_in_one_in_both_modes() {
    if !peer("php", "php-cli") {
        return;
    }
    let builtin = Wsloop::start(&[]);
    let server = Wsloop::start(&[
        "--route",
        &route("/cmd", "php", "commands.php"),
        "--shared-route",
        &route("/cmd-shared", "php", "commands-shared.php"),
    ]);
    let script = [
        "hello",
        "hi",
        "name",
        "age",
        "date",
        "time",
        "thanks",
        "  HeLLo  ",
        "what is this?",
        "server",
        "bye",
    ];
    let run = |c: &mut RawClient| {
        let (mut replies, code) = run_script(c, &script);
        settle_clock(&mut replies);
        assert_eq!(code, 1000, "bye closes with 1000");
        replies
    };

    let mut reference = run(&mut RawClient::open_blocking(builtin.addr, "/"));
    assert_eq!(reference[9], "wsloop (Rust), after Resin PHP");
    reference[9] = "Resin PHP".into(); // the one reply that names the server
    assert_eq!(
        reference,
        [
            "hello human",
            "zup human",
            "my name is Multivac, silly I know",
            "I am older than time itself",
            "today is <date>",
            "server time is <time>",
            "you're welcome",
            "hello human",
            "You have entered: what is this?",
            "Resin PHP",
            "bye",
        ]
    );

    // Shared: two clients open at once, one process, the same replies.
    let mut s1 = RawClient::open_blocking(server.addr, "/cmd-shared");
    let mut s2 = RawClient::open_blocking(server.addr, "/cmd-shared");
    wait_children(&server, 1, "one shared program for two clients");
    s2.write_blocking(&binary(&[0, 1, 2, 3]));
    assert_eq!(run(&mut s1), reference);
    // Its answer to a binary message is the built-in one.
    let mut b = RawClient::open_blocking(builtin.addr, "/");
    b.write_blocking(&binary(&[0, 1, 2, 3]));
    let sized = ["You have entered: 4 bytes of binary data"];
    assert_eq!(texts(&mut b, 1), sized);
    assert_eq!(texts(&mut s2, 1), sized);
    assert_eq!(run(&mut s2), reference);
    wait_children(&server, 1, "the shared program, kept");

    // Per connection: a process each; `bye` ends it.
    let mut p1 = RawClient::open_blocking(server.addr, "/cmd");
    let mut p2 = RawClient::open_blocking(server.addr, "/cmd");
    wait_children(&server, 3, "a program per connection and the shared one");
    assert_eq!(run(&mut p1), reference);
    assert_eq!(run(&mut p2), reference);
    wait_children(&server, 1, "the per-connection programs exited after bye");

    drop(b);
    stop(builtin);
    stop(server);
}

/// Reads `n` pushes, checking their text and that they come `wait` apart
/// (give or take: half of it at least, 2 s more at most).
fn pushes(c: &mut RawClient, n: usize, line: &str, wait: Duration) {
    let mut last: Option<Instant> = None;
    for _ in 0..n {
        assert_eq!(texts(c, 1), [line]);
        let now = Instant::now();
        if let Some(before) = last {
            let gap = now - before;
            assert!(
                gap >= wait / 2 && gap <= wait + Duration::from_secs(2),
                "{gap:?} between pushes, {wait:?} asked"
            );
        }
        last = Some(now);
    }
}

/// `I am waiting N seconds` with N from 2 to 5: the default waits.
fn default_push(line: &str) -> bool {
    (2..=5).any(|n| line == format!("I am waiting {n} seconds"))
}

#[test]
fn push_demo_pushes_on_a_timer_per_client_until_quit() {
    if !peer("php", "php-cli") {
        return;
    }
    let builtin = Wsloop::start(&["--push-interval", "0.2"]);
    let server = Wsloop::start(&[
        "--route",
        &route("/push", "php", "push.php"),
        "--shared-route",
        &route("/push-shared", "php", "push-shared.php"),
    ]);
    let wait = Duration::from_millis(200);
    let line = "I am waiting 0.2 seconds";

    // The built-in /push says the same line for the same wait.
    let mut reference = RawClient::open_blocking(builtin.addr, "/push");
    pushes(&mut reference, 2, line, wait);

    for path in ["/push", "/push-shared"] {
        // At least two pushes, the wait apart; other text is ignored;
        // `quit` ends them with a close 1000.
        let mut c = RawClient::open_blocking(server.addr, &format!("{path}?wait=0.2"));
        pushes(&mut c, 2, line, wait);
        c.write_blocking(&text("hello"));
        pushes(&mut c, 1, line, wait);
        c.write_blocking(&text(" Quit "));
        let (late, code) = until_closed(&mut c);
        assert_eq!(code, 1000, "{path}: quit closes with 1000");
        assert!(late.len() <= 1, "{path}: pushes after quit: {late:?}");
        // Without ?wait=: the demo's 2 to 5 seconds (the first push at once).
        let mut d = RawClient::open_blocking(server.addr, path);
        let first = texts(&mut d, 1).remove(0);
        assert!(default_push(&first), "{path}: {first:?}");
        d.write_blocking(&text("quit"));
        assert_eq!(until_closed(&mut d), (vec![], 1000), "{path}");
    }

    // Shared: one process keeps a timer per client. `a` pushes every
    // 0.1 s, `b` every 0.3 s; `a` quits and `b` goes on.
    let mut a = RawClient::open_blocking(server.addr, "/push-shared?wait=0.1");
    let mut b = RawClient::open_blocking(server.addr, "/push-shared?wait=0.3");
    let b_line = "I am waiting 0.3 seconds";
    assert_eq!(texts(&mut b, 1), [b_line]);
    // (Read after b's: a's may have queued up, so their gaps tell nothing.)
    assert_eq!(texts(&mut a, 4), ["I am waiting 0.1 seconds"; 4]);
    wait_children(&server, 1, "one shared program for two pushing clients");
    a.write_blocking(&text("quit"));
    let (late, code) = until_closed(&mut a);
    assert_eq!(code, 1000);
    assert!(late.len() <= 1, "pushes after quit: {late:?}");
    // `b` had one or two pushes while `a` ran; three more means it went
    // on after `a` quit.
    assert_eq!(texts(&mut b, 3), [b_line; 3]);
    b.write_blocking(&text("quit"));
    assert_eq!(until_closed(&mut b).1, 1000);
    wait_children(&server, 1, "the shared program, kept");

    drop(reference);
    stop(builtin);
    stop(server);
}

/// The chat scenario: ann joins, Bob B joins, both talk, Bob B leaves, a
/// guest joins. What ann, Bob B and the guest received.
/// `programs`: the server's children while ann and Bob B are both in.
fn chat_transcripts(server: &Wsloop, path: &str, programs: usize) -> [Vec<String>; 3] {
    let mut a = RawClient::open_blocking(server.addr, &format!("{path}?name=ann"));
    let mut ann = texts(&mut a, 1);
    let mut b = RawClient::open_blocking(server.addr, &format!("{path}?name=Bob+B"));
    ann.extend(texts(&mut a, 1));
    let mut bob = texts(&mut b, 1);
    wait_children(server, programs, "the chat's programs with two clients in");
    a.write_blocking(&text("hi all"));
    ann.extend(texts(&mut a, 1));
    bob.extend(texts(&mut b, 1));
    b.write_blocking(&text("yo"));
    ann.extend(texts(&mut a, 1));
    bob.extend(texts(&mut b, 1));
    b.write_blocking(&close(1000, ""));
    let (after, code) = until_closed(&mut b);
    assert_eq!((after.len(), code), (0, 1000));
    // The close event reaches the program as it happens (no timer wakes
    // the loop for it): the notice comes at once, as the built-in one.
    let left = Instant::now();
    ann.extend(texts(&mut a, 1));
    assert!(
        left.elapsed() < Duration::from_secs(2),
        "{path}: `Bob B left` came {:?} after Bob B's close",
        left.elapsed()
    );
    let mut g = RawClient::open_blocking(server.addr, path);
    let guest = texts(&mut g, 1);
    ann.extend(texts(&mut a, 1));
    [ann, bob, guest]
}

#[test]
fn python_chat_room_broadcasts_as_the_built_in_one() {
    if !peer("python3", "python3") {
        return;
    }
    let builtin = Wsloop::start(&[]);
    let server = Wsloop::start(&[
        "--shared-route",
        &route("/chat", "python3", "chat-shared.py"),
    ]);
    let want = [
        vec![
            "welcome ann: 0 others here, your messages go to everyone",
            "Bob B joined",
            "ann: hi all",
            "Bob B: yo",
            "Bob B left",
            "guest1 joined",
        ],
        vec![
            "welcome Bob B: 1 other here, your messages go to everyone",
            "ann: hi all",
            "Bob B: yo",
        ],
        vec!["welcome guest1: 1 other here, your messages go to everyone"],
    ];
    assert_eq!(chat_transcripts(&builtin, "/chat", 0), want);
    // One process serves every client of the room.
    assert_eq!(chat_transcripts(&server, "/chat", 1), want);
    wait_children(&server, 1, "the shared chat program, kept");
    stop(builtin);
    stop(server);
}

#[test]
fn shell_counter_greets_by_address_and_numbers_lines() {
    let server = Wsloop::start(&["--route", &route("/count", "sh", "count.sh")]);
    let mut a = RawClient::open_blocking(server.addr, "/count");
    let mut b = RawClient::open_blocking(server.addr, "/count");
    let hello = "hello 127.0.0.1, I count your messages";
    assert_eq!(texts(&mut a, 1), [hello]);
    assert_eq!(texts(&mut b, 1), [hello]);
    wait_children(&server, 2, "a shell per connection");
    let (replies, code) = run_script(&mut a, &["one", "two words", "bye"]);
    assert_eq!(replies, ["1: one", "2: two words", "bye after 2 messages"]);
    assert_eq!(code, 1000, "the shell exited 0");
    // Each connection counts on its own.
    b.write_blocking(&text("first"));
    assert_eq!(texts(&mut b, 1), ["1: first"]);
    wait_children(&server, 1, "the finished shell reaped");
    drop(b);
    wait_children(&server, 0, "no shell left");
    stop(server);
}

/// The code blocks of `lang` in `doc` (a Markdown file of the repository),
/// in order.
fn code_blocks(doc: &str, lang: &str) -> Vec<String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/").to_owned() + doc)
        .expect("the document");
    let fence = format!("```{lang}\n");
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find(&fence) {
        let body = &rest[at + fence.len()..];
        let end = body.find("\n```").expect("a closed block");
        out.push(body[..end + 1].to_owned());
        rest = &body[end..];
    }
    out
}

/// Writes `code` to a file of its own for this test run.
fn script_file(name: &str, code: &str) -> String {
    let dir = std::env::temp_dir().join(format!("wsloop-handlers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, code).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn the_readme_php_example_runs_as_written() {
    if !peer("php", "php-cli") {
        return;
    }
    let blocks = code_blocks("README.md", "php");
    assert_eq!(blocks.len(), 1, "README.md has one PHP example");
    let file = script_file("hello.php", &blocks[0]);
    let server = Wsloop::start(&["--route", &format!("/hello=php '{file}'")]);
    let mut c = RawClient::open_blocking(server.addr, "/hello");
    assert_eq!(texts(&mut c, 1), ["hello from 127.0.0.1"]);
    c.write_blocking(&text("hi there"));
    assert_eq!(texts(&mut c, 1), ["you said: hi there"]);
    drop(c);
    wait_children(&server, 0, "php gone with its client");
    stop(server);
}

#[test]
fn the_protocol_pages_programs_run_as_written() {
    // docs/programs-protocol.md ends with one whole program per language.
    let doc = "docs/programs-protocol.md";
    let mut programs = Vec::new();
    if peer("php", "php-cli") {
        let code = code_blocks(doc, "php").pop().expect("a PHP program");
        programs.push(("php", script_file("echo.php", &code)));
    }
    if peer("python3", "python3") {
        let code = code_blocks(doc, "python").pop().expect("a Python program");
        programs.push(("python3", script_file("echo.py", &code)));
    }
    if peer("node", "nodejs") {
        let code = code_blocks(doc, "js").pop().expect("a Node program");
        programs.push(("node", script_file("echo.js", &code)));
    }
    for (interpreter, file) in programs {
        let server = Wsloop::start(&[
            "--shared-route",
            &format!("/=/usr/bin/env {interpreter} '{file}'"),
        ]);
        let mut a = RawClient::open_blocking(server.addr, "/");
        let mut b = RawClient::open_blocking(server.addr, "/");
        assert_eq!(texts(&mut a, 1), ["hello"], "{interpreter}");
        assert_eq!(texts(&mut b, 1), ["hello"], "{interpreter}");
        a.write_blocking(&text("from a"));
        b.write_blocking(&text("from b"));
        assert_eq!(texts(&mut a, 1), ["from a"], "{interpreter}");
        assert_eq!(texts(&mut b, 1), ["from b"], "{interpreter}");
        wait_children(&server, 1, "one program for both");
        drop((a, b));
        stop(server);
    }
}
