//! The page in a real browser: the `wsloop` binary on a free port, driven
//! by headless Chromium (Debian's `chromium`) through playwright-core
//! (`tests/browser/drive.mjs`, pinned by `tests/browser/package-lock.json`).
//!
//! Needs `node`, `/usr/bin/chromium` (or `WSLOOP_CHROMIUM`) and
//! `npm ci` in `tests/browser`. Without them the test is skipped loudly,
//! unless `WSLOOP_REQUIRE_PEERS=1` (as in `.ci/run`), where it fails.
//!
//! Chromium offers permessage-deflate: the test checks that every
//! connection agreed to it (the page's OPEN line and the server's log;
//! none did in a build without the `deflate` feature) and that large
//! compressible messages round-trip. It also checks that each endpoint
//! shows only its own controls (demo commands on /, Quit on /push, the
//! chat name on /chat).
//!
//! Screenshots: `target/browser-screenshot.png` (1280x800) and
//! `target/browser-screenshot-phone.png` (390x844).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

#[path = "support/pki.rs"]
mod pki;
#[path = "support/process.rs"]
mod process;
#[path = "support/wsloop_bin.rs"]
mod wsloop_bin;

use process::run_with_deadline;
use wsloop_bin::Wsloop;

/// Whether the binary accepts permessage-deflate (the `deflate` feature).
const DEFLATE: bool = cfg!(feature = "deflate");

fn missing_peer(what: &str) {
    let required = std::env::var("WSLOOP_REQUIRE_PEERS").is_ok_and(|v| v == "1");
    if required {
        panic!("browser test: {what} (WSLOOP_REQUIRE_PEERS=1, so this fails)");
    }
    // Straight to the process's stderr: libtest would capture eprintln!.
    let notice = format!(
        "\n==================================================================\n\
         SKIPPED: the browser test did not run: {what}.\n\
         Install: apt-get install chromium; (cd tests/browser && npm ci)\n\
         Set WSLOOP_REQUIRE_PEERS=1 to make this a failure.\n\
         ==================================================================\n"
    );
    let _ = std::io::stderr().write_all(notice.as_bytes());
}

fn target_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .to_path_buf()
}

#[test]
fn page_works_in_headless_chromium() {
    scenario(None);
}

/// The same page and scenario over https:// and wss://, with a certificate
/// made for the run that Chromium trusts by its key.
#[test]
#[cfg(feature = "tls")]
fn page_works_in_headless_chromium_over_https() {
    let ca = pki::TestCa::new("browser");
    ca.issue();
    scenario(Some(&ca));
}

fn scenario(tls: Option<&pki::TestCa>) {
    let chromium = std::env::var("WSLOOP_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return missing_peer(&format!("{chromium} is missing"));
    }
    let node_ok = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !node_ok {
        return missing_peer("node is missing");
    }
    let driver_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if !driver_dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return missing_peer("playwright-core is not installed in tests/browser (npm ci)");
    }

    let mut args = vec!["--push-interval".to_owned(), "2-3".to_owned()];
    if let Some(ca) = tls {
        args.push("--tls-cert".into());
        args.push(ca.cert().to_string_lossy().into_owned());
        args.push("--tls-key".into());
        args.push(ca.key().to_string_lossy().into_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Wsloop::start(&args);
    let addr = server.addr;
    let target = target_dir();
    std::fs::create_dir_all(&target).expect("target dir");
    let suffix = if tls.is_some() { "-https" } else { "" };
    let shot = target.join(format!("browser-screenshot{suffix}.png"));
    let phone = target.join(format!("browser-screenshot{suffix}-phone.png"));
    let _ = std::fs::remove_file(&shot);
    let _ = std::fs::remove_file(&phone);

    let mut command = Command::new("node");
    command
        .arg(driver_dir.join("drive.mjs"))
        .arg(match tls {
            Some(_) => format!("https://localhost:{}/", addr.port()),
            None => format!("http://{addr}/"),
        })
        .arg(&shot)
        .arg(&phone)
        .env("WSLOOP_CHROMIUM", &chromium)
        .env("WSLOOP_DEFLATE", if DEFLATE { "1" } else { "0" })
        .stdin(Stdio::null());
    if let Some(ca) = tls {
        command.env("WSLOOP_TLS_CERT", ca.cert());
    }
    let driver = run_with_deadline(&mut command, Duration::from_secs(180));
    let (status, out, err) = (driver.status, driver.stdout, driver.stderr);
    eprintln!("--- drive.mjs stdout ---\n{out}--- drive.mjs stderr ---\n{err}");
    let status = status.expect("the browser scenario took longer than 180 s");
    assert!(status.success(), "the browser scenario failed ({status})");
    assert!(out.contains("browser scenario passed"), "no pass line");
    for png in [&shot, &phone] {
        let bytes = std::fs::read(png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000,
            "{} is not a real screenshot",
            png.display()
        );
    }
    eprintln!("screenshots: {} {}", shot.display(), phone.display());

    // Chromium offered permessage-deflate and the server agreed to it on
    // every connection: each `opened` log line names the agreement. (The
    // page showed it too, and the 64 KiB and 100 KB echoes came back whole.)
    assert!(
        server.wait_log_count("/echo opened as #", 1) >= 1
            && server.wait_log_count(" opened as #", 4) >= 4,
        "no /echo connection, or fewer than 4 connections, in the log:\n{}",
        server.logs().join("\n")
    );
    let opened: Vec<String> = server
        .logs()
        .into_iter()
        .filter(|l| l.contains(" opened as #"))
        .collect();
    let agreed = |l: &String| l.contains(" with permessage-deflate");
    assert!(
        opened.len() >= 4
            && if DEFLATE {
                opened.iter().all(agreed)
            } else {
                !opened.iter().any(agreed)
            },
        "permessage-deflate agreed on every connection (with the `deflate` feature) \
         or on none:\n{}",
        opened.join("\n")
    );
}
