//! The soak (`examples/soak.rs`) against the real `wsloop` binary, briefly:
//! 200 clients for 20 s on `/echo` and `/chat`, with random sizes up to
//! 1 MiB, random fragmentation, pings, random disconnects and reconnects.
//! It must report that nothing owed to a connected client was lost,
//! duplicated, reordered or corrupted (and exit 0). No timing is asserted:
//! only correctness, so a loaded machine makes it slower, not red. The long
//! run (10 minutes, 2,000 clients) is recorded in RELIABILITY.md.
//!
//! `cargo test` builds the examples before it runs any test, so the soak
//! sits in `target/<profile>/examples/`. Run alone (`cargo test --test
//! soak_smoke`) it may be missing: then the test says so and passes, unless
//! `WSLOOP_REQUIRE_PEERS=1`.

#[path = "support/process.rs"]
mod process;
#[path = "support/wsloop_bin.rs"]
mod wsloop_bin;

use std::process::Command;
use std::time::Duration;

use process::run_with_deadline;
use wsloop_bin::Wsloop;

const CLIENTS: usize = 200;
const SECONDS: u64 = 20;

#[test]
fn soak_200_clients_20_seconds_nothing_lost() {
    let Some(soak) = wsloop_bin::example("soak") else {
        return;
    };
    // Default limits (16 MiB messages and queues, 10,000 clients): the
    // soak checks delivery, not the limits.
    let server = Wsloop::start(&["--idle-timeout", "off"]);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs());
    let done = run_with_deadline(
        Command::new(soak).args([
            "--url",
            &format!("ws://{}", server.addr),
            "--clients",
            &CLIENTS.to_string(),
            "--seconds",
            &SECONDS.to_string(),
            "--server-pid",
            &server.pid().to_string(),
            "--seed",
            &seed.to_string(),
            "--drain-seconds",
            "120",
        ]),
        Duration::from_secs(SECONDS + 300),
    );
    let status = done
        .status
        .unwrap_or_else(|| panic!("the soak did not finish:\n{}\n{}", done.stdout, done.stderr));
    eprintln!("{}", done.stdout);
    assert!(
        status.success(),
        "the soak failed (seed {seed}):\n{}\n{}\nserver log:\n{}",
        done.stdout,
        done.stderr,
        server.logs().join("\n")
    );
    assert!(
        done.stdout.contains("soak: PASS"),
        "{}\n{}",
        done.stdout,
        done.stderr
    );
    // Sanity: the soak did what it says.
    let line = |prefix: &str| -> String {
        done.stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{}", done.stdout))
            .to_owned()
    };
    let first_number = |l: &str, after: &str| -> u64 {
        let rest = l.split(after).nth(1).expect(after);
        rest.trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or_else(|_| panic!("number after {after:?} in {l:?}"))
    };
    let echo = line("soak: /echo:");
    assert!(first_number(&echo, "/echo:") > 0, "{echo}");
    let chat = line("soak: /chat:");
    assert!(first_number(&chat, "/chat:") > 0, "{chat}");
    let sessions = line("soak: sessions");
    assert!(
        first_number(&sessions, "sessions") > CLIENTS as u64,
        "there were reconnects: {sessions}"
    );
    assert_eq!(
        server.log_count("protocol error"),
        0,
        "{:#?}",
        server.logs()
    );
    let rss = line("soak: server RSS:");
    assert!(!rss.contains("n/a, peak n/a"), "{rss}");
}
