//! A tungstenite client for the tests that run the `wsloop` binary:
//! connect (with extra headers), read past signals, the next text, the
//! close code, silence. Included with
//! `#[path = "support/ws_client.rs"] mod ws_client;`.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use tungstenite::client::ClientRequestBuilder;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

/// How long a read may wait.
pub const TIMEOUT: Duration = Duration::from_secs(10);

pub type Ws = WebSocket<TcpStream>;

pub fn connect(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Ws {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    let mut request = ClientRequestBuilder::new(format!("ws://{addr}{path}").parse().unwrap());
    for (name, value) in headers {
        request = request.with_header(*name, *value);
    }
    let config = WebSocketConfig::default().max_message_size(Some(64 << 20));
    tungstenite::client::client_with_config(request, stream, Some(config))
        .unwrap_or_else(|e| panic!("handshake to {path} failed: {e}"))
        .0
}

/// `ws.read()`, retried when a signal interrupts the read (a stopped and
/// continued test process sees EINTR on sockets with a read timeout).
#[allow(clippy::result_large_err)] // tungstenite's own error type
pub fn read(ws: &mut Ws) -> tungstenite::Result<Message> {
    loop {
        match ws.read() {
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// The next text message (pings and pongs skipped).
pub fn text(ws: &mut Ws) -> String {
    loop {
        match read(ws).expect("read a message") {
            Message::Text(t) => return t.as_str().to_owned(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// Reads until the server's close frame (data messages before it are
/// skipped), completes the close handshake, and returns the close code.
pub fn close_code(ws: &mut Ws) -> u16 {
    let code = loop {
        match read(ws) {
            Ok(Message::Close(frame)) => break frame.map_or(1005, |f| u16::from(f.code)),
            Ok(_) => {}
            Err(e) => panic!("expected a close frame, got {e}"),
        }
    };
    for _ in 0..100 {
        match read(ws) {
            Err(tungstenite::Error::ConnectionClosed) => return code,
            Err(tungstenite::Error::AlreadyClosed) => return code,
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return code
            }
            Ok(_) => {}
            Err(e) => panic!("closing after {code}: {e}"),
        }
    }
    panic!("the connection did not end after close {code}");
}

/// Nothing arrives on `ws` for `quiet`.
pub fn assert_silent(ws: &mut Ws, quiet: Duration, who: &str) {
    ws.get_ref().set_read_timeout(Some(quiet)).unwrap();
    match read(ws) {
        Err(tungstenite::Error::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("{who} should have received nothing, got {other:?}"),
    }
    ws.get_ref().set_read_timeout(Some(TIMEOUT)).unwrap();
}
