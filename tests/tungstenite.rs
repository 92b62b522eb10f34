//! Interoperability with an independent client: `tungstenite` (blocking)
//! against the server running `run()` in its own thread. The Rust peer of
//! the interoperability checks (see also `interop_python.rs` and
//! `interop_node.rs`): echoes at every length form (0 B, 1 KiB, 1 MiB and
//! 16 MiB among them), a client-fragmented message, ping/pong, the client's
//! close code and reason seen by the handler, the server's close seen by
//! the client, subprotocol negotiation.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use support::*;
use tungstenite::client::ClientRequestBuilder;
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::Frame;
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
    for len in [0, 1, 125, 126, 1 << 10, 65_535, 65_536, 1 << 20, 16 << 20] {
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

/// A data frame as tungstenite sends it (masked by the client).
fn fragment(data: &[u8], kind: Data, fin: bool) -> Message {
    Message::Frame(Frame::message(
        Bytes::copy_from_slice(data),
        OpCode::Data(kind),
        fin,
    ))
}

#[test]
fn client_fragmented_messages_arrive_whole() {
    let (rec, log) = Rec::new();
    let mut server = Running::start(Config::default(), rec);
    let mut ws = connect(server.addr, "/echo");
    // Text in three frames, split inside the two-byte 'é' and the
    // four-byte crab, with a ping between the fragments (RFC 6455 §5.4).
    let text = "fragmented héllo from tungstenite 🦀!";
    let bytes = text.as_bytes();
    let e = text.find('é').unwrap() + 1;
    let crab = text.find('🦀').unwrap() + 2;
    ws.send(fragment(&bytes[..e], Data::Text, false)).unwrap();
    ws.send(Message::Ping(Bytes::from_static(b"between fragments")))
        .unwrap();
    ws.send(fragment(&bytes[e..crab], Data::Continue, false))
        .unwrap();
    ws.send(fragment(&bytes[crab..], Data::Continue, true))
        .unwrap();
    // The pong comes first: the message is not complete before the last
    // fragment.
    assert_eq!(
        ws.read().unwrap(),
        Message::Pong(Bytes::from_static(b"between fragments"))
    );
    assert_eq!(ws.read().unwrap(), Message::text(text));
    // Binary: 1 MiB in four frames, the last one empty.
    let data = pattern(1 << 20, 7);
    ws.send(fragment(&data[..1000], Data::Binary, false))
        .unwrap();
    ws.send(fragment(&data[1000..600_000], Data::Continue, false))
        .unwrap();
    ws.send(fragment(&data[600_000..], Data::Continue, false))
        .unwrap();
    ws.send(fragment(&[], Data::Continue, true)).unwrap();
    match ws.read().unwrap() {
        Message::Binary(b) => assert!(b == data, "fragmented binary differs"),
        other => panic!("expected the binary message, got {other:?}"),
    }
    ws.close(None).unwrap();
    read_until_closed(&mut ws);
    wait_log(&log, "on_close", |l| l.closes.len() == 1);
    // The handler got each as one message.
    let log = lock(&log);
    assert_eq!(log.messages.len(), 2);
    assert_eq!(log.messages[0].1, Msg::Text(text.into()));
    assert!(log.messages[1].1 == Msg::Binary(data), "binary differs");
    drop(log);
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
    // None offered: none chosen, and no header. (Offering only "a" is not
    // checked here: tungstenite fails a handshake whose response picks
    // none of the offered subprotocols, which RFC 6455 §4.2.2 allows.)
    let uri = format!("ws://{}/", server.addr).parse().unwrap();
    let (mut ws, response) = connect_with(server.addr, ClientRequestBuilder::new(uri));
    assert_eq!(response.headers().get("Sec-WebSocket-Protocol"), None);
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
