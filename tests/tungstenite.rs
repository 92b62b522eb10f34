//! Interoperability with an independent client: `tungstenite` (blocking)
//! against the server running `run()` in its own thread.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use support::*;
use tungstenite::client::ClientRequestBuilder;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::{Bytes, Message, WebSocket};
use wsloop::Config;

type Ws = WebSocket<TcpStream>;

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20))
}

fn connect_with(
    addr: SocketAddr,
    request: ClientRequestBuilder,
) -> (Ws, tungstenite::handshake::client::Response) {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.set_nodelay(true).unwrap();
    tungstenite::client::client_with_config(request, stream, Some(ws_config()))
        .unwrap_or_else(|e| panic!("handshake failed: {e}"))
}

fn connect(addr: SocketAddr, path: &str) -> Ws {
    let uri = format!("ws://{addr}{path}").parse().unwrap();
    connect_with(addr, ClientRequestBuilder::new(uri)).0
}

/// Reads until the connection ends after the close handshake; returns the
/// close frame the client received.
fn read_until_closed(ws: &mut Ws) -> Option<CloseFrame> {
    let mut close = None;
    loop {
        match ws.read() {
            Ok(Message::Close(frame)) => close = frame,
            Ok(other) => panic!("unexpected message while closing: {other:?}"),
            Err(tungstenite::Error::ConnectionClosed) => return close,
            Err(e) => panic!("closing failed: {e}"),
        }
    }
}

#[test]
fn echoes_text_and_binary_of_every_length_form() {
    let (rec, log) = Rec::new();
    let mut server = Running::start(Config::default(), rec);
    let mut ws = connect(server.addr, "/echo");
    for len in [0, 1, 125, 126, 65_535, 65_536, 16 << 20] {
        let data = pattern(len, len as u32);
        ws.send(Message::Binary(Bytes::from(data.clone()))).unwrap();
        match ws.read().unwrap() {
            Message::Binary(b) => assert!(b == data, "binary {len} differs"),
            other => panic!("binary {len}: got {other:?}"),
        }
        let s: String = data.iter().map(|b| char::from(b'a' + b % 26)).collect();
        ws.send(Message::text(s.clone())).unwrap();
        match ws.read().unwrap() {
            Message::Text(t) => assert!(t.as_str() == s, "text {len} differs"),
            other => panic!("text {len}: got {other:?}"),
        }
    }
    // Multi-byte UTF-8 survives.
    ws.send(Message::text("héllo wörld ✓ 🦀")).unwrap();
    assert_eq!(
        ws.read().unwrap(),
        Message::text("héllo wörld ✓ 🦀"),
        "utf-8 text"
    );
    // An empty close is echoed empty; the handler sees 1005 (no status).
    ws.close(None).unwrap();
    assert_eq!(read_until_closed(&mut ws), None);
    wait_log(&log, "on_close", |l| l.closes.len() == 1);
    assert_eq!(lock(&log).closes[0].1, 1005);
    server.stop().unwrap();
}

#[test]
fn ping_from_the_client_gets_a_pong() {
    let (rec, _log) = Rec::new();
    let mut server = Running::start(Config::default(), rec);
    let mut ws = connect(server.addr, "/");
    ws.send(Message::Ping(Bytes::from_static(b"are you there")))
        .unwrap();
    match ws.read().unwrap() {
        Message::Pong(p) => assert_eq!(&p[..], b"are you there"),
        other => panic!("expected a pong, got {other:?}"),
    }
    ws.send(Message::Ping(Bytes::new())).unwrap();
    ws.send(Message::text("after the ping")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::Pong(Bytes::new()));
    assert_eq!(ws.read().unwrap(), Message::text("after the ping"));
    ws.close(None).unwrap();
    read_until_closed(&mut ws);
    server.stop().unwrap();
}

#[test]
fn client_close_code_is_echoed_and_reported() {
    let (rec, log) = Rec::new();
    let mut server = Running::start(Config::default(), rec);
    let mut ws = connect(server.addr, "/");
    ws.close(Some(CloseFrame {
        code: CloseCode::from(4000),
        reason: "client done".into(),
    }))
    .unwrap();
    let echo = read_until_closed(&mut ws).expect("the server's close frame");
    assert_eq!(u16::from(echo.code), 4000);
    wait_log(&log, "on_close", |l| !l.closes.is_empty());
    let log = lock(&log);
    assert_eq!(log.closes.len(), 1);
    assert_eq!(log.closes[0].1, 4000);
    assert_eq!(log.closes[0].2, "client done");
    drop(log);
    server.stop().unwrap();
}

#[test]
fn server_close_code_reaches_the_client() {
    let (rec, log) = Rec::new();
    let mut server = Running::start(Config::default(), rec);
    let mut ws = connect(server.addr, "/");
    ws.send(Message::text("!close 4001 server done")).unwrap();
    let close = read_until_closed(&mut ws).expect("the server's close frame");
    assert_eq!(u16::from(close.code), 4001);
    assert_eq!(close.reason.as_str(), "server done");
    wait_log(&log, "on_close", |l| !l.closes.is_empty());
    assert_eq!(lock(&log).closes[0].1, 4001);
    server.stop().unwrap();
}

#[test]
fn subprotocol_choice_reaches_the_client() {
    let (mut rec, _log) = Rec::new();
    rec.protocol = Some("b".into());
    let mut server = Running::start(Config::default(), rec);
    let uri = format!("ws://{}/", server.addr).parse().unwrap();
    let request = ClientRequestBuilder::new(uri)
        .with_sub_protocol("a")
        .with_sub_protocol("b");
    let (mut ws, response) = connect_with(server.addr, request);
    assert_eq!(
        response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .map(|v| v.to_str().unwrap()),
        Some("b")
    );
    ws.send(Message::text("with b")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("with b"));
    ws.close(None).unwrap();
    read_until_closed(&mut ws);
    server.stop().unwrap();
}

#[test]
fn shutdown_closes_tungstenite_clients_with_1001() {
    let (rec, log) = Rec::new();
    let mut server = Running::start(Config::default(), rec);
    let mut a = connect(server.addr, "/");
    let mut b = connect(server.addr, "/");
    wait_log(&log, "both open", |l| l.opens.len() == 2);
    server.handle.shutdown();
    for ws in [&mut a, &mut b] {
        let close = read_until_closed(ws).expect("a close frame");
        assert_eq!(close.code, CloseCode::Away);
    }
    server.stop().unwrap();
    let log = lock(&log);
    assert_eq!(log.closes.len(), 2);
    assert!(log.closes.iter().all(|c| c.1 == 1001));
}
