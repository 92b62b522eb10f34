//! Interoperability with Python's `websockets` (asyncio client, pinned by
//! `tests/interop/python/requirements.txt`): `tests/interop/python/client.py`
//! against a wsloop server running in this process. The checks and the
//! handler are in `tests/support/interop.rs`.
//!
//! Needs `python3` with `websockets` (`python3 -m pip install -r
//! tests/interop/python/requirements.txt`). Without it the test is skipped
//! loudly, unless `WSLOOP_REQUIRE_PEERS=1` (as in `.ci/run`), where it fails.

mod support;

#[path = "support/interop.rs"]
mod interop;
#[path = "support/pki.rs"]
mod pki;

use std::process::Command;

/// The peer, over ws:// or (`tls`) wss://.
fn peer(tls: bool) -> interop::Peer {
    let missing = if !interop::runs("python3", &["--version"]) {
        Some("python3 is missing".to_string())
    } else if !interop::runs("python3", &["-c", "import websockets.asyncio.client"]) {
        Some("python3 cannot import websockets.asyncio.client (websockets >= 13)".to_string())
    } else {
        None
    };
    let mut command = Command::new("python3");
    command.arg("tests/interop/python/client.py");
    interop::Peer {
        name: "python",
        missing,
        install: "python3 -m pip install -r tests/interop/python/requirements.txt",
        command,
        close: (4001, "bye from python"),
        tls,
    }
}

#[test]
#[cfg_attr(
    not(feature = "deflate"),
    ignore = "the peer's checks expect permessage-deflate (feature `deflate`)"
)]
fn python_websockets_client_interoperates() {
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
fn python_websockets_client_interoperates_over_wss() {
    interop::run(peer(true));
}
