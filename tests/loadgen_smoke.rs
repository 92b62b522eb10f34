//! The load generator (`examples/loadgen`) against the real `wsloop`
//! binary, every mode for a second or so at small scale: it must exit 0
//! with no errors and report work done. A smoke test of the benchmark
//! tooling, never a timed assertion (the figures are not checked).
//!
//! `cargo test` builds the examples before it runs any test, so the
//! load generator sits in `target/<profile>/examples/`. Run alone
//! (`cargo test --test loadgen_smoke`) it may be missing: then the test says
//! so and passes, unless `WSLOOP_REQUIRE_PEERS=1`.

use std::process::Command;
use std::time::Duration;

#[path = "support/pki.rs"]
mod pki;
#[path = "support/process.rs"]
mod process;
#[path = "support/wsloop_bin.rs"]
mod wsloop_bin;

// The load generator's own modules, compiled here too so that their unit
// tests (histogram buckets, flag parsing, /proc readers, base64) run under
// `cargo test`; the example itself is built without its tests.
#[allow(dead_code)]
#[path = "../examples/loadgen/args.rs"]
mod args;
#[allow(dead_code)]
#[path = "../examples/loadgen/hist.rs"]
mod hist;
#[allow(dead_code)]
#[path = "../examples/loadgen/net.rs"]
mod net;
#[allow(dead_code)]
#[path = "../examples/loadgen/procfs.rs"]
mod procfs;

use process::run_with_deadline;
use wsloop_bin::Wsloop;

/// Runs the load generator against a fresh server; returns its JSON line.
fn run(mode: &str, path: &str, args: &[&str]) -> Option<String> {
    run_over(None, mode, path, args)
}

/// `run`, over wss:// when a test CA is given (the server gets its leaf).
fn run_over(tls: Option<&pki::TestCa>, mode: &str, path: &str, args: &[&str]) -> Option<String> {
    let loadgen = wsloop_bin::example("loadgen")?;
    let mut flags = vec!["--max-clients".to_owned(), "2000".to_owned()];
    if let Some(ca) = tls {
        ca.issue();
        for (flag, file) in [("--tls-cert", ca.cert()), ("--tls-key", ca.key())] {
            flags.push(flag.to_owned());
            flags.push(file.to_string_lossy().into_owned());
        }
    }
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Wsloop::start(&flags);
    let addr = server.addr;
    let pid = server.pid().to_string();
    let url = match tls {
        Some(_) => format!("wss://localhost:{}{path}", addr.port()),
        None => format!("ws://{addr}{path}"),
    };
    let mut cmd = Command::new(loadgen);
    cmd.args([mode, "--url", &url, "--server-pid", &pid, "-q"])
        .args(args);
    if let Some(ca) = tls {
        cmd.arg("--tls-ca").arg(ca.ca_pem());
    }
    let done = run_with_deadline(&mut cmd, Duration::from_secs(60));
    let status = done.status.expect("loadgen finished within 60 s");
    assert!(
        status.success(),
        "loadgen {mode} exited with {status}\nstdout:\n{}\nstderr:\n{}",
        done.stdout,
        done.stderr
    );
    let json = done
        .stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line in:\n{}", done.stdout))
        .to_owned();
    assert!(json.contains("\"errors\":0,"), "{json}");
    assert!(json.contains("\"server_cpu_s\":"), "{json}");
    assert!(!json.contains("\"server_cpu_s\":null"), "{json}");
    drop(server);
    Some(json)
}

/// The count field of the JSON line.
fn count(json: &str) -> u64 {
    let rest = json.split("\"count\":").nth(1).expect("count field");
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().expect("count is a number")
}

#[test]
fn echo_text_and_binary() {
    let args = ["-c", "8", "-d", "4", "-s", "1KiB", "-t", "1", "-w", "0.3"];
    if let Some(json) = run("echo", "/echo", &args) {
        assert!(count(&json) > 0, "{json}");
        assert!(json.contains("\"latency_us\":{\"p50\":"), "{json}");
    }
    let args = [
        "-c", "2", "-s", "70000", "--binary", "-t", "0.5", "-w", "0.2",
    ];
    if let Some(json) = run("echo", "/echo", &args) {
        assert!(count(&json) > 0, "{json}");
    }
}

#[test]
fn compressed_echo() {
    // permessage-deflate: compressed frames out, every echo inflated and
    // checked (the binary agrees to the extension by default).
    let args = [
        "-c",
        "4",
        "-d",
        "2",
        "-s",
        "1KiB",
        "--deflate",
        "-t",
        "1",
        "-w",
        "0.3",
    ];
    if let Some(json) = run("echo", "/echo", &args) {
        assert!(count(&json) > 0, "{json}");
        assert!(json.contains("\"deflate\":true"), "{json}");
        // 1 KiB of chat text goes out compressed, and comes back so.
        assert!(number(&json, "frame_bytes") < 700.0, "{json}");
        assert!(number(&json, "rx_bytes_per_echo") < 900.0, "{json}");
    }
}

#[test]
fn idle_after_compressed_echoes() {
    let args = [
        "-c",
        "20",
        "--deflate",
        "--messages",
        "3",
        "-t",
        "0.5",
        "-w",
        "0.2",
    ];
    if let Some(json) = run("idle", "/echo", &args) {
        assert!(json.contains("\"messages\":3"), "{json}");
        assert!(!json.contains("\"rss_per_conn_bytes\":null"), "{json}");
    }
}

/// A numeric field of the JSON line.
fn number(json: &str, field: &str) -> f64 {
    let rest = json
        .split(&format!("\"{field}\":"))
        .nth(1)
        .unwrap_or_else(|| panic!("no {field} in {json}"));
    let digits: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    digits.parse().expect("a number")
}

#[test]
fn handshakes() {
    let args = ["-c", "4", "-t", "1", "-w", "0.2"];
    if let Some(json) = run("handshake", "/echo", &args) {
        assert!(count(&json) > 0, "{json}");
    }
}

#[test]
fn idle_connections_and_memory() {
    let args = ["-c", "200", "-t", "0.5", "-w", "0.2"];
    if let Some(json) = run("idle", "/echo", &args) {
        assert!(json.contains("\"rss_per_conn_bytes\":"), "{json}");
        assert!(!json.contains("\"rss_per_conn_bytes\":null"), "{json}");
    }
}

#[test]
fn broadcast_to_chat() {
    let args = ["-c", "20", "-t", "1", "-w", "0.2"];
    if let Some(json) = run("broadcast", "/chat", &args) {
        assert!(count(&json) > 0, "{json}");
    }
}

/// Every mode the TLS benchmark uses, over wss:// (a CA made for the run).
#[test]
#[cfg(feature = "tls")]
fn over_wss() {
    let ca = pki::TestCa::new("loadgen");
    let echo = ["-c", "8", "-d", "4", "-s", "1KiB", "-t", "1", "-w", "0.3"];
    if let Some(json) = run_over(Some(&ca), "echo", "/echo", &echo) {
        assert!(count(&json) > 0, "{json}");
    }
    let big = [
        "-c", "2", "-s", "70000", "--binary", "-t", "0.5", "-w", "0.2",
    ];
    if let Some(json) = run_over(Some(&ca), "echo", "/echo", &big) {
        assert!(count(&json) > 0, "{json}");
    }
    let handshakes = ["-c", "4", "-t", "1", "-w", "0.2"];
    if let Some(json) = run_over(Some(&ca), "handshake", "/echo", &handshakes) {
        assert!(count(&json) > 0, "{json}");
    }
    let idle = ["-c", "100", "-t", "0.5", "-w", "0.2"];
    if let Some(json) = run_over(Some(&ca), "idle", "/echo", &idle) {
        assert!(!json.contains("\"rss_per_conn_bytes\":null"), "{json}");
    }
}
