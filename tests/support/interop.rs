//! The server side of the interoperability tests with real clients
//! (`interop_python.rs`, `interop_node.rs`), included by each with
//! `#[path = "support/interop.rs"] mod interop;` next to `mod support;`.
//!
//! A wsloop server runs `run()` in a thread with [`Peer`]'s handler while the
//! peer's script (`tests/interop/<peer>/client.*`) makes every check against
//! it and prints `ok <name>` or `FAIL <name>: why` for each; the test then
//! asserts the script's verdict and what the handler saw.
//!
//! The server has the default [`Config`], so it accepts permessage-deflate
//! (RFC 7692) and compresses the messages of 64 bytes and more that deflate
//! makes smaller. The scripts check the agreement (the peer's default offer,
//! both `no_context_takeover` parameters, 10-bit windows, and no offer at
//! all) and which echoes came compressed; the handler records the agreement
//! each connection was accepted with (`Ctx::extensions`).

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use wsloop::proto::handshake::Request;
use wsloop::{Config, ConnId, Ctx, Decision, Handler, Message};

use crate::support::process::run_with_deadline;
use crate::support::Running;

/// The checks every peer script makes, by the names it prints.
pub const CHECKS: &[&str] = &[
    "subprotocol-chosen",
    "deflate-agreed",
    "echo-text-0B",
    "echo-binary-0B",
    "echo-text-1KiB",
    "echo-binary-1KiB",
    "echo-text-1MiB",
    "echo-binary-1MiB",
    "echo-text-16MiB",
    "echo-binary-16MiB",
    "fragmented-text",
    "fragmented-binary",
    "fragmented-text-64KiB",
    "fragmented-binary-64KiB",
    "context-takeover",
    "ping-pong",
    "client-close",
    "subprotocol-single",
    "subprotocol-none",
    "server-close",
    "no-context-takeover-agreed",
    "no-context-takeover-echo",
    "no-context-takeover-fragmented-text-64KiB",
    "no-context-takeover-fragmented-binary-64KiB",
    "window-bits-agreed",
    "window-bits-echo",
    "uncompressed-agreed-none",
    "uncompressed-echo",
];

/// The `Sec-WebSocket-Extensions` answers the server gives the scripts'
/// offers: the peer's default (a browser-like offer: the default 12-bit
/// windows), both `no_context_takeover` parameters, both windows at 10 bits.
pub const DEFLATE: &str =
    "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12";
pub const DEFLATE_NO_CONTEXT_TAKEOVER: &str = "permessage-deflate; server_no_context_takeover; \
     client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12";
pub const DEFLATE_WINDOW_BITS_10: &str =
    "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10";

/// How long a whole peer script may run.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(180);

/// The subprotocol the handler prefers when a client offers it.
pub const PREFERRED: &str = "chat.v2";

/// A message as the handler saw it: its kind, its length, and its bytes
/// when short (the 16 MiB echoes are only counted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub path: String,
    pub text: bool,
    pub len: usize,
    pub bytes: Option<Vec<u8>>,
}

/// An accepted client as the handler saw it in `on_open`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    pub path: String,
    /// Subprotocols offered, in order.
    pub offered: Vec<String>,
    /// The subprotocol chosen.
    pub chosen: Option<String>,
    /// The extensions agreed (`Ctx::extensions`).
    pub extensions: Option<String>,
}

/// What the handler saw.
#[derive(Debug, Default)]
pub struct Observed {
    /// Accepted clients, in order.
    pub opens: Vec<Open>,
    /// Every data message, in order.
    pub messages: Vec<Seen>,
    /// `on_close` calls: path, code, reason.
    pub closes: Vec<(String, u16, String)>,
}

/// Per-connection data: the request path, to tell the peer's connections
/// apart.
#[derive(Debug, Default)]
pub struct Conn {
    path: String,
}

/// The handler: echoes every message; the text command
/// `close-me <code> <reason>` makes the server close with that code and
/// reason instead; picks [`PREFERRED`] among the subprotocols offered, else
/// the first one; records everything in [`Observed`].
pub struct Interop {
    pub seen: Arc<Mutex<Observed>>,
}

pub fn observed(seen: &Arc<Mutex<Observed>>) -> MutexGuard<'_, Observed> {
    seen.lock().unwrap_or_else(|e| e.into_inner())
}

impl Handler for Interop {
    type Data = Conn;

    fn on_open(&mut self, ctx: &mut Ctx<'_, Conn>, id: ConnId, req: &Request) -> Decision {
        let offered: Vec<String> = req.protocols().map(str::to_string).collect();
        let chosen = offered
            .iter()
            .find(|p| *p == PREFERRED)
            .or(offered.first())
            .cloned();
        if let Some(conn) = ctx.data(id) {
            conn.path = req.path().to_string();
        }
        let extensions = ctx.extensions(id).map(str::to_string);
        observed(&self.seen).opens.push(Open {
            path: req.path().to_string(),
            offered,
            chosen: chosen.clone(),
            extensions,
        });
        Decision::Accept { protocol: chosen }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Conn>, id: ConnId, msg: Message<'_>) {
        let path = ctx.data(id).map(|c| c.path.clone()).unwrap_or_default();
        if let Message::Text(text) = msg {
            if let Some(args) = text.strip_prefix("close-me ") {
                let (code, reason) = args.split_once(' ').unwrap_or((args, ""));
                let code = code.parse().expect("close-me <code> <reason>");
                assert!(ctx.close(id, code, reason), "close-me {code} refused");
                return;
            }
        }
        let bytes = msg.as_bytes();
        observed(&self.seen).messages.push(Seen {
            path,
            text: matches!(msg, Message::Text(_)),
            len: bytes.len(),
            bytes: (bytes.len() <= 4096).then(|| bytes.to_vec()),
        });
        ctx.send(id, msg);
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_, Conn>, id: ConnId, code: u16, reason: &str) {
        let path = ctx.data(id).map(|c| c.path.clone()).unwrap_or_default();
        observed(&self.seen)
            .closes
            .push((path, code, reason.to_string()));
    }
}

/// One real client: how to tell whether it is installed and how to run its
/// script.
pub struct Peer {
    /// "python", "node": names the peer in messages.
    pub name: &'static str,
    /// What is missing, if anything (then the test is skipped or fails).
    pub missing: Option<String>,
    /// How to install it, for the skip notice.
    pub install: &'static str,
    /// The script's command without the server URL.
    pub command: Command,
    /// The code and reason of the peer's own close (the `client-close` check).
    pub close: (u16, &'static str),
    /// Over wss:// (a test CA in `WSLOOP_TEST_CA`) instead of ws://.
    pub tls: bool,
}

/// Whether `program args..` runs and exits 0 (quietly).
pub fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Skips loudly, or fails under `WSLOOP_REQUIRE_PEERS=1`.
fn missing_peer(peer: &Peer, what: &str) {
    let required = std::env::var("WSLOOP_REQUIRE_PEERS").is_ok_and(|v| v == "1");
    if required {
        panic!(
            "{} interop test: {what} (WSLOOP_REQUIRE_PEERS=1, so this fails)",
            peer.name
        );
    }
    // Straight to the process's stderr: libtest would capture eprintln!.
    let notice = format!(
        "\n==================================================================\n\
         SKIPPED: the {} interop test did not run: {what}.\n\
         Install: {}\n\
         Set WSLOOP_REQUIRE_PEERS=1 to make this a failure.\n\
         ==================================================================\n",
        peer.name, peer.install
    );
    let _ = std::io::stderr().write_all(notice.as_bytes());
}

/// Runs `peer`'s script against a fresh server and asserts every check and
/// what the handler saw.
pub fn run(mut peer: Peer) {
    if let Some(what) = peer.missing.take() {
        return missing_peer(&peer, &what);
    }
    let seen = Arc::new(Mutex::new(Observed::default()));
    let handler = Interop {
        seen: Arc::clone(&seen),
    };
    let ca = peer.tls.then(|| crate::pki::TestCa::new(peer.name));
    let mut server = match &ca {
        #[cfg(feature = "tls")]
        Some(ca) => Running::start_tls(Config::default(), handler, ca.server_config()),
        _ => Running::start(Config::default(), handler),
    };
    let url = match &ca {
        Some(ca) => {
            peer.command.env("WSLOOP_TEST_CA", ca.ca_pem());
            format!("wss://localhost:{}", server.addr.port())
        }
        None => format!("ws://{}", server.addr),
    };
    let done = run_with_deadline(
        peer.command
            .arg(&url)
            .current_dir(root())
            .stdin(Stdio::null()),
        SCRIPT_DEADLINE,
    );
    let (out, err) = (done.stdout, done.stderr);
    let name = peer.name;
    eprintln!("--- {name} peer stdout ---\n{out}--- {name} peer stderr ---\n{err}");
    let status = done
        .status
        .unwrap_or_else(|| panic!("the {name} peer took longer than {SCRIPT_DEADLINE:?}"));
    let failed: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL ")).collect();
    assert!(
        failed.is_empty(),
        "{name} peer checks failed:\n{}",
        failed.join("\n")
    );
    let missing: Vec<&&str> = CHECKS
        .iter()
        .filter(|c| !out.lines().any(|l| l == format!("ok {c}")))
        .collect();
    assert!(missing.is_empty(), "{name} peer: no `ok` for {missing:?}");
    assert!(status.success(), "the {name} peer failed ({status})");

    // The handler's side. on_close runs after the TCP connection ended,
    // possibly just after the script saw its end.
    let closes = CONNECTIONS;
    wait_for(&seen, "every on_close", |o| o.closes.len() >= closes);
    server.stop().expect("server run() returned an error");
    let o = observed(&seen);
    assert_eq!(o.closes.len(), closes, "on_close calls: {:?}", o.closes);
    assert_eq!(o.opens.len(), closes, "opens: {:?}", o.opens);

    // Subprotocols: offered in order, chosen as the script saw; the
    // extension agreed as the script asked.
    let open =
        |path: &str, offered: &[&str], chosen: Option<&str>, extensions: Option<&str>| Open {
            path: path.to_string(),
            offered: offered.iter().map(|p| p.to_string()).collect(),
            chosen: chosen.map(str::to_string),
            extensions: extensions.map(str::to_string),
        };
    let deflate = Some(DEFLATE);
    assert_eq!(
        o.opens,
        [
            open("/echo", &["chat.v1", "chat.v2"], Some("chat.v2"), deflate),
            open("/subprotocol", &["chat.v1"], Some("chat.v1"), deflate),
            open("/subprotocol", &[], None, deflate),
            open("/server-close", &[], None, deflate),
            open(
                "/no-context-takeover",
                &[],
                None,
                Some(DEFLATE_NO_CONTEXT_TAKEOVER)
            ),
            open("/window-bits", &[], None, Some(DEFLATE_WINDOW_BITS_10)),
            open("/uncompressed", &[], None, None),
        ]
    );

    // The client's close, code and reason, reached the handler; the
    // server's close came back with its code.
    let close_of = |path: &str| -> Vec<(u16, &str)> {
        o.closes
            .iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, code, reason)| (*code, reason.as_str()))
            .collect()
    };
    assert_eq!(close_of("/echo"), [peer.close], "{name}'s own close");
    assert_eq!(close_of("/server-close"), [(4100, "bye from wsloop")]);

    // Every echo arrived as one message of the right kind and length, in
    // the order sent; each fragmented message arrived whole, as one.
    let kinds = |path: &str| -> Vec<(bool, usize)> {
        o.messages
            .iter()
            .filter(|m| m.path == path)
            .map(|m| (m.text, m.len))
            .collect()
    };
    let mut expected = Vec::new();
    for len in [0, 1 << 10, 1 << 20, 16 << 20] {
        expected.push((true, len));
        expected.push((false, len));
    }
    let text = format!("fragmented text from {name}: ✓🦀");
    let binary = [
        b"fragmented \x00\x01\x02binary from ".as_slice(),
        name.as_bytes(),
    ]
    .concat();
    expected.push((true, text.len()));
    expected.push((false, binary.len()));
    expected.extend([(true, 64 << 10), (false, 64 << 10)]); // fragmented 64 KiB
    expected.extend([(false, 2 << 10), (false, 2 << 10)]); // context takeover
    expected.push((true, "after the ping".len()));
    assert_eq!(
        kinds("/echo"),
        expected,
        "messages on /echo (text?, length)"
    );
    let echo: Vec<&Seen> = o.messages.iter().filter(|m| m.path == "/echo").collect();
    assert_eq!(echo[8].bytes.as_deref(), Some(text.as_bytes()));
    assert_eq!(echo[9].bytes.as_deref(), Some(binary.as_slice()));

    assert_eq!(
        kinds("/no-context-takeover"),
        [
            (true, 1 << 20),
            (false, 1 << 20),
            (false, 16 << 10),
            (false, 16 << 10),
            (true, 64 << 10),
            (false, 64 << 10),
        ],
        "messages on /no-context-takeover"
    );
    assert_eq!(
        kinds("/window-bits"),
        [(true, 1 << 20), (false, 1 << 20), (false, 8 << 10)],
        "messages on /window-bits"
    );
    assert_eq!(
        kinds("/uncompressed"),
        [(true, 1 << 10), (false, 1 << 10)],
        "messages on /uncompressed"
    );
}

/// The connections each script opens: `/echo`, two on `/subprotocol`,
/// `/server-close`, `/no-context-takeover`, `/window-bits`, `/uncompressed`.
const CONNECTIONS: usize = 7;

fn wait_for(seen: &Arc<Mutex<Observed>>, what: &str, mut cond: impl FnMut(&Observed) -> bool) {
    let end = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if cond(&observed(seen)) {
            return;
        }
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}: {:?}",
            observed(seen).closes
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
