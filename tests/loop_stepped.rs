//! The event loop stepped with `poll_once` in the test thread, against raw
//! TCP clients that write exact bytes: partial and pipelined input, large
//! messages, backpressure, resets, half-closes, stale ids, the exactly-once
//! `on_close`, and the HTTP answers of refused handshakes.

#![allow(clippy::field_reassign_with_default)]

mod support;

use std::time::Duration;

use support::*;
use wsloop::clock::ManualClock;
use wsloop::{Config, ConnId, Message, SendStatus, Server};

fn server_with(config: Config) -> (Server<Rec>, std::sync::Arc<std::sync::Mutex<Log>>) {
    let (rec, log) = Rec::new();
    let server = Server::bind(localhost(), config, rec).unwrap();
    (server, log)
}

fn server() -> (Server<Rec>, std::sync::Arc<std::sync::Mutex<Log>>) {
    server_with(Config::default())
}

fn last_open(server: &Server<Rec>) -> ConnId {
    server.handler().log().opens.last().expect("an open").0
}

/// The slab key part of an id (`#key.gen`).
fn key_of(id: ConnId) -> String {
    id.to_string()
        .trim_start_matches('#')
        .split('.')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn request_and_first_frame_split_byte_by_byte() {
    let (mut server, log) = server();
    let mut c = RawClient::connect(server.local_addr());
    let mut bytes = upgrade_request("/split", &[]);
    bytes.extend_from_slice(&text("byte by byte"));
    for b in &bytes {
        c.send(&[*b]);
        step(&mut server, 2);
    }
    c.response(&mut server).assert_upgraded();
    let echo = c.frame(&mut server);
    assert_eq!(echo.text(), "byte by byte");
    assert!(!echo.masked, "server frames are not masked");
    assert!(echo.fin);
    let log = lock(&log);
    assert_eq!(log.opens.len(), 1);
    assert_eq!(log.opens[0].1, "/split");
    assert_eq!(log.messages.len(), 1);
}

#[test]
fn request_and_first_frame_in_one_write() {
    let (mut server, _log) = server();
    let mut c = RawClient::connect(server.local_addr());
    let mut bytes = upgrade_request("/", &[]);
    bytes.extend_from_slice(&text("right behind the request"));
    bytes.extend_from_slice(&binary(&[1, 2, 3]));
    c.send(&bytes);
    c.response(&mut server).assert_upgraded();
    assert_eq!(c.frame(&mut server).text(), "right behind the request");
    let f = c.frame(&mut server);
    assert_eq!((f.opcode, f.payload.as_slice()), (BINARY, &[1u8, 2, 3][..]));
}

#[test]
fn thousand_pipelined_frames_echoed_in_order() {
    let (mut server, log) = server();
    let mut c = RawClient::open(&mut server, "/");
    let mut bytes = Vec::new();
    let mut expected = Vec::new();
    for i in 0..1000u32 {
        if i % 3 == 0 {
            let p = pattern((i as usize * 7) % 300, i);
            bytes.extend_from_slice(&binary(&p));
            expected.push((BINARY, p));
        } else {
            let s = format!("message number {i}");
            bytes.extend_from_slice(&text(&s));
            expected.push((TEXT, s.into_bytes()));
        }
    }
    c.send(&bytes);
    for (i, (op, payload)) in expected.iter().enumerate() {
        let f = c.frame(&mut server);
        assert_eq!(f.opcode, *op, "frame {i}");
        assert_eq!(&f.payload, payload, "frame {i}");
    }
    assert_eq!(lock(&log).messages.len(), 1000);
    c.pump();
    assert!(c.inbuf.is_empty(), "nothing beyond the 1000 echoes");
}

#[test]
fn sixteen_mib_message_echoed_with_default_limits() {
    let (mut server, log) = server();
    let mut c = RawClient::open(&mut server, "/");
    let payload = pattern(16 << 20, 16);
    c.send(&binary(&payload));
    let f = c.frame(&mut server);
    assert_eq!(f.opcode, BINARY, "{}", f.short());
    assert_eq!(f.payload.len(), payload.len());
    assert!(f.payload == payload, "16 MiB echo differs");
    // A fragmented one of the same total size too.
    let half = payload.len() / 2;
    c.send(&encode(
        false,
        0,
        BINARY,
        &payload[..half],
        Some([9, 8, 7, 6]),
    ));
    c.send(&encode(true, 0, CONT, &payload[half..], Some([1, 2, 3, 4])));
    let f = c.frame(&mut server);
    assert_eq!(f.opcode, BINARY, "{}", f.short());
    assert!(f.payload == payload, "fragmented 16 MiB echo differs");
    assert!(lock(&log).closes.is_empty(), "{:?}", lock(&log).closes);
}

#[test]
fn client_that_never_reads_is_closed_with_1008_and_queue_stays_bounded() {
    const LIMIT: usize = 1 << 20;
    const MSG: usize = 64 * 1024;
    let mut config = Config::default();
    config.max_send_queue = LIMIT;
    let (mut server, log) = server_with(config);
    let mut c = RawClient::open(&mut server, "/");
    let id = last_open(&server);

    let mut sent = 0u32;
    let mut saw_queued = false;
    let refused = loop {
        assert!(sent < 100_000, "never refused");
        let payload = pattern(MSG, sent);
        let (_, mut ctx) = server.context();
        let status = ctx.send(id, Message::Binary(&payload));
        let buffered = ctx.buffered_amount(id).unwrap();
        assert!(
            buffered <= LIMIT,
            "buffered {buffered} over the limit after message {sent} ({status:?})"
        );
        match status {
            SendStatus::Sent => {}
            SendStatus::Queued => saw_queued = true,
            SendStatus::Refused => break sent,
        }
        sent += 1;
        step(&mut server, 1);
    };
    assert!(saw_queued, "the queue backed up before it was refused");
    {
        let (_, mut ctx) = server.context();
        assert!(!ctx.is_open(id));
        assert_eq!(ctx.send(id, Message::Text("more")), SendStatus::Refused);
        assert!(ctx.buffered_amount(id).unwrap() <= LIMIT);
    }

    // Now the client reads: every frame it gets is whole and in order, and
    // then comes the close frame with 1008.
    let mut next = 0u32;
    let close_frame = loop {
        let f = c.frame(&mut server);
        if f.opcode == CLOSE {
            break f;
        }
        assert_eq!(f.opcode, BINARY, "frame {next}: {}", f.short());
        assert!(f.payload == pattern(MSG, next), "frame {next} corrupted");
        next += 1;
    };
    assert!(next <= refused, "{next} frames, refused at {refused}");
    assert_eq!(close_frame.close_code(), 1008);
    c.send(&close(1008, ""));
    c.wait_closed(&mut server);
    step_until(&mut server, "on_close", |_| !lock(&log).closes.is_empty());
    step(&mut server, 5);
    assert_eq!(lock(&log).closes_of(id), vec![1008]);
}

#[test]
fn peer_gone_mid_frame_gets_1006_once() {
    let (mut server, log) = server();
    let mut c = RawClient::open(&mut server, "/");
    let id = last_open(&server);
    let frame = binary(&pattern(1000, 1));
    c.send(&frame[..frame.len() / 2]);
    c.flush(&mut server);
    step(&mut server, 3);
    drop(c);
    step_until(&mut server, "on_close", |_| !lock(&log).closes.is_empty());
    step_for(&mut server, Duration::from_millis(20));
    assert_eq!(lock(&log).closes_of(id), vec![1006]);
    assert_eq!(lock(&log).closes.len(), 1);
    assert!(lock(&log).messages.is_empty());
    assert_eq!(server.client_count(), 0);
}

#[test]
fn half_close_after_a_message_still_echoes_then_1006() {
    let (mut server, log) = server();
    let mut c = RawClient::open(&mut server, "/");
    let id = last_open(&server);
    c.send(&text("last words"));
    assert!(!c.sending());
    c.shutdown_write();
    assert_eq!(c.frame(&mut server).text(), "last words");
    c.wait_closed(&mut server);
    assert!(c.eof, "{:?}", c.error);
    assert!(c.take_frame().is_none());
    step_until(&mut server, "on_close", |_| !lock(&log).closes.is_empty());
    step(&mut server, 5);
    assert_eq!(lock(&log).closes_of(id), vec![1006]);
}

#[test]
fn half_close_after_a_large_message_still_gets_the_whole_echo() {
    let (mut server, log) = server();
    let mut c = RawClient::open(&mut server, "/");
    let id = last_open(&server);
    let payload = pattern(8 << 20, 8);
    c.send(&binary(&payload));
    c.flush(&mut server);
    c.shutdown_write();
    // The echo is far larger than the socket buffers: most of it is still
    // queued in the server when it sees the EOF.
    let f = c.frame(&mut server);
    assert_eq!(f.payload.len(), payload.len(), "{}", f.short());
    assert!(f.payload == payload, "echo differs");
    c.wait_closed(&mut server);
    step_until(&mut server, "on_close", |_| !lock(&log).closes.is_empty());
    assert_eq!(lock(&log).closes_of(id), vec![1006]);
}

#[test]
fn half_close_right_after_a_close_frame_still_gets_the_echo() {
    let (mut server, log) = server();
    let mut c = RawClient::open(&mut server, "/");
    let id = last_open(&server);
    c.send(&close(1000, "done"));
    c.shutdown_write();
    let f = c.frame(&mut server);
    assert_eq!(f.close_code(), 1000);
    c.wait_closed(&mut server);
    step_until(&mut server, "on_close", |_| !lock(&log).closes.is_empty());
    assert_eq!(lock(&log).closes_of(id), vec![1000]);
}

#[test]
fn half_close_right_after_a_bad_request_still_gets_the_answer() {
    let (mut server, _log) = server();
    let mut c = RawClient::connect(server.local_addr());
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n");
    c.shutdown_write();
    let r = c.response(&mut server);
    assert_eq!(r.status, 405);
    c.wait_closed(&mut server);
    step_until(&mut server, "the client to be gone", |s| {
        s.client_count() == 0
    });
}

#[test]
fn stale_id_after_slot_reuse_reaches_nobody() {
    let (mut server, log) = server();
    let mut a = RawClient::open(&mut server, "/a");
    let old = last_open(&server);
    a.send(&close(1000, ""));
    assert_eq!(a.frame(&mut server).close_code(), 1000);
    a.wait_closed(&mut server);
    step_until(&mut server, "on_close of a", |_| {
        !lock(&log).closes.is_empty()
    });
    assert_eq!(server.client_count(), 0);

    let mut b = RawClient::open(&mut server, "/b");
    let new = last_open(&server);
    assert_ne!(old, new);
    assert_eq!(key_of(old), key_of(new), "the slot was reused");
    {
        let (_, mut ctx) = server.context();
        assert_eq!(ctx.send(old, Message::Text("ghost")), SendStatus::Refused);
        assert_eq!(ctx.broadcast([old], Message::Text("ghost")), 0);
        assert!(!ctx.close(old, 1000, ""));
        assert!(!ctx.is_open(old));
        assert!(ctx.data(old).is_none());
        assert!(ctx.buffered_amount(old).is_none());
        assert!(ctx.peer_addr(old).is_none());
        assert!(ctx.is_open(new));
    }
    step_for(&mut server, Duration::from_millis(20));
    b.pump();
    assert!(b.inbuf.is_empty(), "the new client got {:?}", b.inbuf);
    {
        let (_, mut ctx) = server.context();
        assert_eq!(ctx.send(new, Message::Text("hello b")), SendStatus::Sent);
    }
    assert_eq!(b.frame(&mut server).text(), "hello b");
    assert_eq!(lock(&log).closes.len(), 1);
}

#[test]
fn on_close_exactly_once_per_accepted_client_on_every_exit_path() {
    let clock = ManualClock::new();
    let mut config = Config::default();
    config.max_message_size = 1024;
    config.idle_timeout = Some(Duration::from_secs(60));
    config.close_timeout = Duration::from_secs(5);
    let (mut server, log) = server_with(config);
    server.set_clock(clock.clone());

    // Client-initiated close handshake: echoed, then the server closes TCP.
    let mut a = RawClient::open(&mut server, "/a");
    let a_id = last_open(&server);
    a.send(&close(4000, "client bye"));
    let f = a.frame(&mut server);
    assert_eq!(f.close_code(), 4000);
    a.wait_closed(&mut server);
    assert!(a.eof);

    // Server-initiated through ctx.close: the client answers.
    let mut b = RawClient::open(&mut server, "/b");
    let b_id = last_open(&server);
    assert!(server.context().1.close(b_id, 4001, "server bye"));
    assert!(
        !server.context().1.close(b_id, 4002, "twice"),
        "already closing"
    );
    let f = b.frame(&mut server);
    assert_eq!(f.close_code(), 4001);
    assert_eq!(&f.payload[2..], b"server bye");
    b.send(&close(4001, ""));
    b.wait_closed(&mut server);

    // Server-initiated by the handler, on a message.
    let mut b2 = RawClient::open(&mut server, "/b2");
    let b2_id = last_open(&server);
    b2.send(&text("!close 4003 handler bye"));
    assert_eq!(b2.frame(&mut server).close_code(), 4003);
    b2.send(&close(4003, ""));
    b2.wait_closed(&mut server);

    // Protocol errors: an unmasked frame, invalid UTF-8, a message too big,
    // a reserved opcode.
    let errors: [(&str, Vec<u8>, u16); 4] = [
        ("/unmasked", encode(true, 0, TEXT, b"hi", None), 1002),
        ("/utf8", masked(TEXT, &[0xff, 0xfe]), 1007),
        ("/big", binary(&[0; 2048]), 1009),
        ("/opcode", masked(0x3, b""), 1002),
    ];
    let mut error_ids = Vec::new();
    for (path, bytes, code) in errors {
        let mut c = RawClient::open(&mut server, path);
        let id = last_open(&server);
        c.send(&bytes);
        let f = c.frame(&mut server);
        assert_eq!(f.close_code(), code, "{path}");
        // The server half-closes after its close frame and waits for ours.
        c.send(&close(code, ""));
        c.wait_closed(&mut server);
        error_ids.push((id, code));
    }

    // The peer just disappears.
    let d = RawClient::open(&mut server, "/drop");
    let d_id = last_open(&server);
    drop(d);
    step_until(&mut server, "on_close of the dropped client", |_| {
        !lock(&log).closes_of(d_id).is_empty()
    });

    // A client that never completes its handshake, and one refused: never
    // accepted, so no on_close.
    let _silent = RawClient::connect(server.local_addr());
    let mut refused = RawClient::connect(server.local_addr());
    refused.send(&upgrade_request("/reject/403", &[]));
    assert_eq!(refused.response(&mut server).status, 403);

    // Timeout: silent past the idle ping, then past the close timeout.
    let mut t = RawClient::open(&mut server, "/timeout");
    let t_id = last_open(&server);
    step_until(&mut server, "only the timeout client open", |s| {
        lock(&log).closes.len() == 8 && s.client_count() <= 3
    });
    for advance in [60, 60, 5] {
        clock.advance(Duration::from_secs(advance) + Duration::from_millis(1));
        step(&mut server, 3);
    }
    t.wait_closed(&mut server);
    let ping = t.take_frame().expect("the idle ping");
    assert_eq!(ping.opcode, PING);
    assert_eq!(t.take_frame().expect("the idle close").close_code(), 1001);
    step_until(&mut server, "everyone gone", |s| s.client_count() == 0);
    step(&mut server, 5);

    let log = lock(&log);
    assert_eq!(log.closes_of(a_id), vec![4000]);
    assert_eq!(log.closes_of(b_id), vec![4001]);
    assert_eq!(log.closes_of(b2_id), vec![4003]);
    for (id, code) in error_ids {
        assert_eq!(log.closes_of(id), vec![code]);
    }
    assert_eq!(log.closes_of(d_id), vec![1006]);
    assert_eq!(log.closes_of(t_id), vec![1001]);
    assert_eq!(log.opens.len(), 9);
    assert_eq!(log.closes.len(), 9, "{:?}", log.closes);
    assert!(log.data_in_close.iter().all(|d| *d), "ctx.data in on_close");
}

fn refused_with(server: &mut Server<Rec>, request: &[u8]) -> HttpResponse {
    let mut c = RawClient::connect(server.local_addr());
    c.send(request);
    let r = c.response(server);
    c.wait_closed(server);
    assert!(c.eof, "{:?}", c.error);
    assert!(c.inbuf.is_empty(), "nothing after the response");
    r
}

#[test]
fn handshake_errors_get_their_status_and_the_connection_closes() {
    let (mut server, log) = server();

    let r = refused_with(&mut server, b"POST / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, HEAD"));

    let r = refused_with(&mut server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 426);
    assert!(r
        .header("Upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket")));
    assert_eq!(r.header("Sec-WebSocket-Version"), Some("13"));

    let bad_key = String::from_utf8(upgrade_request("/", &[]))
        .unwrap()
        .replace(KEY, "dG9vIHNob3J0");
    let r = refused_with(&mut server, bad_key.as_bytes());
    assert_eq!(r.status, 400);
    assert!(!r.body.is_empty(), "a one-line reason");

    let v8 = String::from_utf8(upgrade_request("/", &[]))
        .unwrap()
        .replace("Version: 13", "Version: 8");
    let r = refused_with(&mut server, v8.as_bytes());
    assert_eq!(r.status, 426);
    assert_eq!(r.header("Sec-WebSocket-Version"), Some("13"));

    let huge = "x".repeat(10_000);
    let r = refused_with(&mut server, &upgrade_request("/", &[("X-Big", &huge)]));
    assert_eq!(r.status, 431);

    let r = refused_with(&mut server, b"GET / HTTP/1.0\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 505);

    // A plain GET the handler serves.
    let r = refused_with(&mut server, b"GET /http HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello\n");

    step_until(&mut server, "refused clients gone", |s| {
        s.client_count() == 0
    });
    let log = lock(&log);
    assert!(log.opens.is_empty() && log.closes.is_empty());
}

#[test]
fn over_max_clients_gets_503_with_retry_after() {
    let mut config = Config::default();
    config.max_clients = 2;
    let (mut server, log) = server_with(config);
    let mut a = RawClient::open(&mut server, "/a");
    let _b = RawClient::open(&mut server, "/b");
    assert_eq!(server.client_count(), 2);

    let mut c = RawClient::connect(server.local_addr());
    c.send(&upgrade_request("/c", &[]));
    let r = c.response(&mut server);
    assert_eq!(r.status, 503);
    assert!(r.header("Retry-After").is_some(), "{r:?}");
    c.wait_closed(&mut server);
    drop(c);
    assert_eq!(lock(&log).opens.len(), 2);

    // A slot frees up: the next client gets in.
    a.send(&close(1000, ""));
    a.wait_closed(&mut server);
    step_until(&mut server, "a's slot freed", |s| s.client_count() == 1);
    let _d = RawClient::open(&mut server, "/d");
    assert_eq!(lock(&log).opens.len(), 3);
    assert_eq!(server.client_count(), 2);
}

#[test]
fn handler_reject_answers_with_its_status() {
    let (mut server, log) = server();
    for status in [403, 404] {
        let r = refused_with(
            &mut server,
            &upgrade_request(&format!("/reject/{status}"), &[]),
        );
        assert_eq!(r.status, status);
        assert_eq!(r.body, b"rejected by the test\n");
    }
    step_until(&mut server, "refused clients gone", |s| {
        s.client_count() == 0
    });
    assert!(lock(&log).opens.is_empty());
    assert!(lock(&log).closes.is_empty());
}

#[test]
fn chosen_subprotocol_appears_in_the_101() {
    let (mut server, _log) = server();
    server.context().0.protocol = Some("b".into());
    let mut c = RawClient::connect(server.local_addr());
    c.send(&upgrade_request("/", &[("Sec-WebSocket-Protocol", "a, b")]));
    let r = c.response(&mut server);
    r.assert_upgraded();
    assert_eq!(r.header("Sec-WebSocket-Protocol"), Some("b"));

    // Not offered: no subprotocol header.
    let mut c = RawClient::connect(server.local_addr());
    c.send(&upgrade_request("/", &[("Sec-WebSocket-Protocol", "a")]));
    let r = c.response(&mut server);
    r.assert_upgraded();
    assert_eq!(r.header("Sec-WebSocket-Protocol"), None);

    // A handler that picks one the client did not offer (RFC 6455 §4.2.2
    // forbids answering with it): accepted without a subprotocol.
    server.context().0.force_protocol = Some("zzz".into());
    let mut c = RawClient::connect(server.local_addr());
    c.send(&upgrade_request("/", &[("Sec-WebSocket-Protocol", "a")]));
    let r = c.response(&mut server);
    r.assert_upgraded();
    assert_eq!(r.header("Sec-WebSocket-Protocol"), None);
}

#[test]
fn shutdown_closes_open_clients_with_1001() {
    let (mut server, log) = server();
    let mut a = RawClient::open(&mut server, "/a");
    let id = last_open(&server);
    let _half = RawClient::connect(server.local_addr());
    step(&mut server, 2);
    server.shutdown_handle().shutdown();
    assert_eq!(a.frame(&mut server).close_code(), 1001);
    a.send(&close(1001, ""));
    a.wait_closed(&mut server);
    step_until(&mut server, "shut down", |s| s.is_shut_down());
    assert_eq!(server.client_count(), 0);
    assert_eq!(lock(&log).closes_of(id), vec![1001]);
    // The listener is closed.
    assert!(std::net::TcpStream::connect(server.local_addr()).is_err());
}

#[test]
fn request_head_in_pieces_with_frames_behind_it() {
    let mut bytes = upgrade_request("/pieces", &[]);
    let head_len = bytes.len();
    bytes.extend_from_slice(&text("first"));
    bytes.extend_from_slice(&binary(&pattern(300, 1)));
    bytes.extend_from_slice(&text("third"));
    // Cut inside the head, right at its end, inside the frames.
    for cut in [
        1,
        head_len - 3,
        head_len - 1,
        head_len,
        head_len + 3,
        head_len + 20,
    ] {
        let (mut server, _log) = server();
        let mut c = RawClient::connect(server.local_addr());
        c.send(&bytes[..cut]);
        c.flush(&mut server);
        step(&mut server, 2);
        c.send(&bytes[cut..]);
        c.response(&mut server).assert_upgraded();
        assert_eq!(c.frame(&mut server).text(), "first", "cut at {cut}");
        assert_eq!(
            c.frame(&mut server).payload,
            pattern(300, 1),
            "cut at {cut}"
        );
        assert_eq!(c.frame(&mut server).text(), "third", "cut at {cut}");
    }
}

#[test]
fn sends_from_on_open_follow_the_101() {
    let (mut server, _log) = server();
    server.context().0.greeting = Some("welcome".into());
    let mut c = RawClient::connect(server.local_addr());
    let mut bytes = upgrade_request("/", &[]);
    bytes.extend_from_slice(&text("hi"));
    c.send(&bytes);
    c.response(&mut server).assert_upgraded();
    assert_eq!(c.frame(&mut server).text(), "welcome");
    assert_eq!(c.frame(&mut server).text(), "hi");
}

#[test]
fn ping_inside_a_fragmented_message_is_answered_first() {
    let (mut server, log) = server();
    let mut c = RawClient::open(&mut server, "/");
    let mut bytes = encode(false, 0, TEXT, b"frag", Some([1, 2, 3, 4]));
    bytes.extend_from_slice(&masked(PING, b"p1"));
    bytes.extend_from_slice(&encode(false, 0, CONT, b"men", Some([5, 6, 7, 8])));
    c.send(&bytes);
    let pong = c.frame(&mut server);
    assert_eq!((pong.opcode, pong.payload.as_slice()), (PONG, &b"p1"[..]));
    c.send(&encode(true, 0, CONT, b"ted", Some([9, 9, 9, 9])));
    assert_eq!(c.frame(&mut server).text(), "fragmented");
    assert_eq!(lock(&log).messages.len(), 1);
}

#[test]
fn broadcast_reaches_readers_and_closes_only_the_slow_client() {
    const LIMIT: usize = 1 << 20;
    const MSG: usize = 64 * 1024;
    let mut config = Config::default();
    config.max_send_queue = LIMIT;
    let (mut server, log) = server_with(config);
    let mut readers = [
        RawClient::open(&mut server, "/r1"),
        RawClient::open(&mut server, "/r2"),
    ];
    let mut slow = RawClient::open(&mut server, "/slow");
    let slow_id = last_open(&server);
    slow.reading = false;

    let mut sent = 0u32;
    let mut got = [0u32; 2];
    loop {
        assert!(sent < 10_000, "the slow client was never closed");
        let payload = pattern(MSG, sent);
        let (_, mut ctx) = server.context();
        let took = ctx.broadcast_all(Message::Binary(&payload));
        sent += 1;
        if took == 2 {
            assert!(!ctx.is_open(slow_id));
            break;
        }
        assert_eq!(took, 3);
        step(&mut server, 1);
        for (r, n) in readers.iter_mut().zip(&mut got) {
            r.pump();
            while let Some(f) = r.take_frame() {
                assert!(f.payload == pattern(MSG, *n), "reader frame {n} differs");
                *n += 1;
            }
        }
    }
    for (r, n) in readers.iter_mut().zip(&mut got) {
        while *n < sent {
            let f = r.frame(&mut server);
            assert!(f.payload == pattern(MSG, *n), "reader frame {n} differs");
            *n += 1;
        }
    }
    slow.reading = true;
    let mut n = 0;
    let close_frame = loop {
        let f = slow.frame(&mut server);
        if f.opcode == CLOSE {
            break f;
        }
        assert!(f.payload == pattern(MSG, n), "slow frame {n} differs");
        n += 1;
    };
    assert_eq!(close_frame.close_code(), 1008);
    assert!(n < sent);
    drop(slow);
    step_until(&mut server, "on_close of the slow client", |_| {
        !lock(&log).closes.is_empty()
    });
    assert_eq!(lock(&log).closes_of(slow_id), vec![1008]);
    assert_eq!(lock(&log).closes.len(), 1);
}

#[test]
fn ctx_close_refuses_unsendable_codes_and_cuts_long_reasons() {
    let (mut server, log) = server();
    let mut c = RawClient::open(&mut server, "/");
    let id = last_open(&server);
    {
        let (_, mut ctx) = server.context();
        assert_eq!(ctx.peer_addr(id), Some(c.stream.local_addr().unwrap()));
        for code in [0, 999, 1004, 1005, 1006, 1015, 2999, 5000] {
            assert!(!ctx.close(id, code, ""), "code {code} may not be sent");
        }
        assert!(ctx.is_open(id));
        // 100 three-byte characters: 300 bytes, cut to at most 123.
        assert!(ctx.close(id, 4100, &"€".repeat(100)));
    }
    let f = c.frame(&mut server);
    assert_eq!(f.close_code(), 4100);
    let reason = std::str::from_utf8(&f.payload[2..]).expect("cut at a char boundary");
    assert_eq!(reason, "€".repeat(41));
    c.send(&close(4100, ""));
    c.wait_closed(&mut server);
    step_until(&mut server, "on_close", |_| !lock(&log).closes.is_empty());
    assert_eq!(lock(&log).closes_of(id), vec![4100]);
}

#[test]
fn invalid_config_is_refused_at_bind() {
    let (rec, _log) = Rec::new();
    let mut config = Config::default();
    config.max_clients = 0;
    let err = Server::bind(localhost(), config, rec)
        .err()
        .expect("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("max_clients"), "{err}");
}

/// Accept errors such as `EMFILE` neither stop nor spin the loop: accepting
/// pauses and resumes once descriptors are free. The descriptors are used up
/// in a child process (this test binary, re-run for this one test under a
/// low `ulimit -n`), so no other test is affected.
#[cfg(target_os = "linux")]
#[test]
fn accept_pauses_while_out_of_fds_and_resumes() {
    if in_child() {
        return accept_pauses_while_out_of_fds();
    }
    run_in_child(
        "accept_pauses_while_out_of_fds_and_resumes",
        256,
        Duration::from_secs(20),
    );
}

#[cfg(target_os = "linux")]
fn accept_pauses_while_out_of_fds() {
    let (mut server, log) = server();
    let mut c = RawClient::connect(server.local_addr());
    c.send(&upgrade_request("/late", &[]));
    // Use up every descriptor: the server cannot accept `c`.
    let mut hog = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        hog.push(f);
    }
    assert!(!hog.is_empty());
    let start = std::time::Instant::now();
    let mut polls = 0;
    while start.elapsed() < Duration::from_millis(500) {
        server.poll_once(Some(Duration::from_millis(50))).unwrap();
        polls += 1;
    }
    assert!(
        polls < 100,
        "{polls} polls in 500 ms: the loop spins on EMFILE"
    );
    assert_eq!(server.client_count(), 0);
    c.pump();
    assert!(c.inbuf.is_empty() && !c.closed());
    drop(hog);
    // Accepting resumes by itself, without a new connection to wake it.
    c.response(&mut server).assert_upgraded();
    assert_eq!(lock(&log).opens.len(), 1);
    c.send(&text("made it"));
    assert_eq!(c.frame(&mut server).text(), "made it");
}

#[test]
fn half_close_behind_more_than_one_turn_of_input_is_seen() {
    let (mut server, log) = server();
    let mut c = RawClient::open(&mut server, "/");
    let id = last_open(&server);
    // Warm up: the kernel grows both sides' socket buffers.
    let warm = pattern(16 << 20, 5);
    c.send(&binary(&warm));
    assert!(c.frame(&mut server).payload == warm);
    // More input than one turn reads (16 reads of 64 KiB), and the FIN
    // right behind it, all in the server's socket before it looks: the one
    // event that reports the FIN is handled while input is still unread, so
    // the later turns must read on to the EOF.
    let payload = pattern((1 << 20) + 100_000, 6);
    c.send(&binary(&payload));
    for _ in 0..200 {
        if !c.sending() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
        c.pump();
    }
    // (Should the socket buffers be too small for that, the test still
    // checks the half-close, just not that case.)
    if c.sending() {
        c.flush(&mut server);
    }
    c.shutdown_write();
    std::thread::sleep(Duration::from_millis(20));
    let f = c.frame(&mut server);
    assert!(f.payload == payload, "echo differs");
    c.wait_closed(&mut server);
    step_until(&mut server, "on_close", |_| !lock(&log).closes.is_empty());
    assert_eq!(lock(&log).closes_of(id), vec![1006]);
}

#[test]
fn poll_once_without_timeout_flushes_sends_made_through_context() {
    // In a thread, so that a poll that waits forever fails the test.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut config = Config::default();
        config.idle_timeout = None;
        let (mut server, _log) = server_with(config);
        let mut c = RawClient::open(&mut server, "/");
        let id = last_open(&server);
        step_for(&mut server, Duration::from_millis(20));
        assert_eq!(
            server.context().1.send(id, Message::Text("from outside")),
            SendStatus::Sent
        );
        // Nothing is due but the flush: the poll must not block.
        server.poll_once(None).unwrap();
        c.pump();
        let _ = tx.send(c.take_frame());
    });
    let frame = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("poll_once(None) blocked with a send pending");
    assert_eq!(frame.expect("the frame").text(), "from outside");
}

/// Upgrades against `server` offering permessage-deflate as a browser
/// does, returning the client and the extension answered (if any).
#[cfg(feature = "deflate")]
fn open_compressing(server: &mut Server<Rec>, offer: &str) -> (RawClient, Option<String>) {
    let mut c = RawClient::connect(server.local_addr());
    c.send(&upgrade_request(
        "/z",
        &[("Sec-WebSocket-Extensions", offer)],
    ));
    let r = c.response(server);
    r.assert_upgraded();
    let ext = r.header("Sec-WebSocket-Extensions").map(str::to_owned);
    (c, ext)
}

#[cfg(feature = "deflate")]
#[test]
fn compression_memory_ceiling_declines_the_extension_not_the_client() {
    // A client that does not offer client_max_window_bits compresses with
    // a 32 KiB window; with context takeover the server keeps that window,
    // plus its own 4 KiB one (12 bits): 36 KiB per connection.
    let mut config = Config::default();
    config.deflate.server_max_window_bits = 12;
    config.deflate.server_no_context_takeover = false;
    config.deflate.max_memory = 80 * 1024;
    let (mut server, log) = server_with(config);
    let offer = "permessage-deflate";
    let per_client = (1 << 15) + (1 << 12);

    let (mut a, ext_a) = open_compressing(&mut server, offer);
    let (_b, ext_b) = open_compressing(&mut server, offer);
    assert!(ext_a.is_some() && ext_b.is_some(), "{ext_a:?} {ext_b:?}");
    assert_eq!(server.stats().deflate_memory, 2 * per_client);

    // The third would pass 80 KiB: accepted, without the extension.
    let (mut c, ext_c) = open_compressing(&mut server, offer);
    assert_eq!(ext_c, None);
    let stats = server.stats();
    assert_eq!(
        (stats.deflate_memory, stats.deflate_declined),
        (2 * per_client, 1)
    );
    // It is served, uncompressed; an RSV1 frame from it is a protocol error.
    c.send(&text("plain"));
    let f = c.frame(&mut server);
    assert_eq!((f.text(), f.rsv), ("plain", 0));
    assert!(lock(&log).opens.len() == 3, "all three opened");

    // A client without context takeover costs nothing: always accepted.
    let (_d, ext_d) = open_compressing(
        &mut server,
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    );
    assert!(ext_d.is_some_and(|e| e.contains("server_no_context_takeover")));
    assert_eq!(server.stats().deflate_memory, 2 * per_client);

    // One leaves: its charge is given back, and a newcomer gets compression.
    a.send(&close(1000, ""));
    a.wait_closed(&mut server);
    step_until(&mut server, "the charge given back", |s| {
        s.stats().deflate_memory == per_client
    });
    let (_e, ext_e) = open_compressing(&mut server, offer);
    assert!(ext_e.is_some());
    assert_eq!(server.stats().deflate_memory, 2 * per_client);
}
