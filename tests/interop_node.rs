//! Interoperability with Node's `ws` client (pinned by
//! `tests/interop/node/package-lock.json`): `tests/interop/node/client.mjs`
//! against a wsloop server running in this process. The checks and the
//! handler are in `tests/support/interop.rs`.
//!
//! Needs `node` and `npm ci` in `tests/interop/node`. Without them the test
//! is skipped loudly, unless `WSLOOP_REQUIRE_PEERS=1` (as in `.ci/run`),
//! where it fails.

mod support;

#[path = "support/interop.rs"]
mod interop;
#[path = "support/pki.rs"]
mod pki;

use std::process::Command;

/// The peer, over ws:// or (`tls`) wss://.
fn peer(tls: bool) -> interop::Peer {
    let missing = if !interop::runs("node", &["--version"]) {
        Some("node is missing".to_string())
    } else if !interop::root()
        .join("tests/interop/node/node_modules/ws/package.json")
        .exists()
    {
        Some("ws is not installed in tests/interop/node (npm ci)".to_string())
    } else {
        None
    };
    let mut command = Command::new("node");
    command.arg("tests/interop/node/client.mjs");
    interop::Peer {
        name: "node",
        missing,
        install: "(cd tests/interop/node && npm ci)",
        command,
        close: (4002, "bye from node"),
        tls,
    }
}

#[test]
#[cfg_attr(
    not(feature = "deflate"),
    ignore = "the peer's checks expect permessage-deflate (feature `deflate`)"
)]
fn node_ws_client_interoperates() {
    interop::run(peer(false));
}

/// Every check again over wss://, the server's certificate signed by a CA
/// made for the run.
#[test]
#[cfg(feature = "tls")]
#[cfg_attr(
    not(feature = "deflate"),
    ignore = "the peer's checks expect permessage-deflate (feature `deflate`)"
)]
fn node_ws_client_interoperates_over_wss() {
    interop::run(peer(true));
}
