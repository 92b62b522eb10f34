//! Exact byte vectors for `wsloop::proto::Connection` (RFC 6455 §5-§8),
//! driven by hand without sockets. Role::Server unless a test says otherwise.

use std::sync::Arc;

use wsloop::proto::frame::{close_code, FrameError};
use wsloop::proto::message::encode_shared;
use wsloop::proto::Role;
use wsloop::proto::{Connection, Event, Message, ProtocolError, SendError};
use wsloop::Config;

#[path = "support/frame.rs"]
mod frame;
#[path = "support/sansio.rs"]
mod sansio;

use frame::{Frame, BINARY, CLOSE, CONT, MASK, PING, PONG, TEXT};
use sansio::{own, Ev};

/// A client frame masked with [`MASK`].
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    Frame::new(opcode, payload).fin(fin).encode()
}

/// An unmasked frame as a server sends it.
fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    Frame::new(opcode, payload).mask(None).encode()
}

/// A header masked with [`MASK`] whose first byte is `b0`, announcing `len`
/// payload bytes.
fn header(b0: u8, len: u64) -> Vec<u8> {
    Frame::from_b0(b0, Vec::new()).announce(len).header()
}

fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

fn server() -> Connection {
    Connection::new(Role::Server, &Config::default())
}

/// What feeding some bytes produced.
#[derive(Debug, Default, PartialEq, Eq)]
struct Fed {
    events: Vec<Ev>,
    /// For each data message: whether it was lent out of the input.
    borrowed: Vec<bool>,
    error: Option<ProtocolError>,
}

/// Feeds `bytes` until all are consumed or an error, checking the `read`
/// contract (progress on every call, never more than was given).
fn feed(conn: &mut Connection, bytes: &[u8]) -> Fed {
    let mut input = bytes.to_vec();
    let mut fed = Fed::default();
    let mut pos = 0;
    let total = input.len();
    while pos < total {
        match conn.read(&mut input[pos..]) {
            Ok((used, event)) => {
                assert!(used <= total - pos);
                assert!(used > 0 || event.is_some(), "no progress");
                if let Some(e) = &event {
                    if let Event::Message(m) = e {
                        fed.borrowed.push(m.is_borrowed());
                    }
                    fed.events.push(own(e));
                }
                pos += used;
            }
            Err(e) => {
                fed.error = Some(e);
                break;
            }
        }
    }
    fed
}

/// Feeds the chunks one after another, as separate reads.
fn feed_chunks(conn: &mut Connection, chunks: &[&[u8]]) -> Fed {
    let mut all = Fed::default();
    for chunk in chunks {
        let fed = feed(conn, chunk);
        all.events.extend(fed.events);
        all.borrowed.extend(fed.borrowed);
        if fed.error.is_some() {
            all.error = fed.error;
            break;
        }
    }
    all
}

fn events(conn: &mut Connection, bytes: &[u8]) -> Vec<Ev> {
    let fed = feed(conn, bytes);
    assert_eq!(fed.error, None, "{fed:?}");
    fed.events
}

fn fails(conn: &mut Connection, bytes: &[u8]) -> ProtocolError {
    let fed = feed(conn, bytes);
    fed.error
        .unwrap_or_else(|| panic!("expected an error, got {fed:?}"))
}

/// Everything queued for the socket, drained.
fn drain(conn: &mut Connection) -> Vec<u8> {
    let q = conn.outgoing();
    let mut out = Vec::new();
    loop {
        let front = q.front().to_vec();
        if front.is_empty() {
            break;
        }
        out.extend_from_slice(&front);
        q.consume(front.len());
    }
    assert!(q.is_empty(), "queue has bytes behind an empty front");
    assert_eq!(conn.buffered_amount(), 0);
    out
}

/// A frame as it appears in the output: first byte and unmasked payload.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Out {
    b0: u8,
    masked: bool,
    payload: Vec<u8>,
}

/// Splits output bytes into frames (an independent decoder).
fn frames(mut bytes: &[u8]) -> Vec<Out> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        assert!(bytes.len() >= 2, "truncated frame {bytes:?}");
        let b0 = bytes[0];
        let masked = bytes[1] & 0x80 != 0;
        let (len, mut n) = match bytes[1] & 0x7f {
            126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                10,
            ),
            l => (l as usize, 2),
        };
        let mask = if masked {
            n += 4;
            Some(&bytes[n - 4..n])
        } else {
            None
        };
        let payload = bytes[n..n + len]
            .iter()
            .enumerate()
            .map(|(i, b)| mask.map_or(*b, |m| b ^ m[i % 4]))
            .collect();
        out.push(Out {
            b0,
            masked,
            payload,
        });
        bytes = &bytes[n + len..];
    }
    out
}

/// Asserts that the output is exactly one close frame with `code` and the
/// error's text as reason, and returns the reason.
fn assert_single_close(out: &[u8], code: u16) -> String {
    let f = frames(out);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].b0, 0x88);
    assert!(!f[0].masked);
    assert_eq!(out[0], 0x88);
    assert_eq!(&out[2..4], &code.to_be_bytes(), "close code");
    assert_eq!(&f[0].payload[..2], &code.to_be_bytes());
    String::from_utf8(f[0].payload[2..].to_vec()).expect("UTF-8 reason")
}

/// Asserts a failed connection: the error, its close code, exactly one close
/// frame queued carrying them, and that later input is ignored.
fn assert_failed(conn: &mut Connection, error: ProtocolError, expected: ProtocolError) {
    assert_eq!(error, expected);
    let code = expected.close_code();
    assert!(conn.has_failed());
    assert!(conn.close_sent());
    assert!(!conn.is_open());
    assert!(!conn.is_finished(), "close frame not written yet");
    let out = drain(conn);
    let reason = assert_single_close(&out, code);
    assert_eq!(reason, expected.to_string());
    assert!(conn.is_finished());
    // Later input, valid or not, is swallowed whole without events or output.
    for later in [
        frame(true, TEXT, b"after"),
        frame(true, PING, b"p"),
        vec![0xff; 20],
    ] {
        let mut input = later.clone();
        let (used, event) = conn.read(&mut input).expect("ignored");
        assert_eq!(used, later.len());
        assert!(event.is_none());
    }
    assert_eq!(conn.buffered_amount(), 0);
    assert_eq!(conn.send(Message::Text("x")), Err(SendError::Closing));
    assert_eq!(conn.ping(b""), Err(SendError::Closing));
    assert_eq!(conn.close(1000, ""), Err(SendError::Closing));
    assert_eq!(conn.buffered_amount(), 0);
}

fn fail_with(bytes: &[u8], expected: ProtocolError) {
    let mut conn = server();
    let e = fails(&mut conn, bytes);
    assert_failed(&mut conn, e, expected);
}

const PROTOCOL: u16 = close_code::PROTOCOL_ERROR;

// ------------------------------------------------------------- data frames

#[test]
fn rfc_hello_is_borrowed_and_echoes_exactly() {
    let mut conn = server();
    // RFC 6455 §5.7: a single-frame masked text message "Hello".
    let mut input = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    assert_eq!(frame(true, TEXT, b"Hello"), input);
    let (used, event) = conn.read(&mut input).unwrap();
    assert_eq!(used, 11);
    let Some(Event::Message(m)) = event else {
        panic!("{event:?}")
    };
    assert!(m.is_borrowed());
    assert!(m.is_text());
    assert_eq!(m.message(), Message::Text("Hello"));
    assert_eq!(m.bytes(), b"Hello");
    assert_eq!(m.into_buffer(), None);
    // Unmasked in place.
    assert_eq!(&input[6..], b"Hello");
    conn.send(Message::Text("Hello")).unwrap();
    assert_eq!(conn.buffered_amount(), 7);
    assert_eq!(drain(&mut conn), b"\x81\x05Hello");
    assert!(!conn.is_finished());
}

#[test]
fn binary_single_frame_is_borrowed() {
    let mut conn = server();
    let mut input = frame(true, BINARY, &[0, 1, 2, 0xff]);
    assert_eq!(input[..2], [0x82, 0x84]);
    let (used, event) = conn.read(&mut input).unwrap();
    assert_eq!(used, 10);
    let Some(Event::Message(m)) = event else {
        panic!("{event:?}")
    };
    assert!(m.is_borrowed());
    assert!(!m.is_text());
    assert_eq!(m.message(), Message::Binary(&[0, 1, 2, 0xff]));
    conn.send(m.message()).unwrap();
    assert_eq!(drain(&mut conn), [0x82, 0x04, 0, 1, 2, 0xff]);
}

#[test]
fn a_frame_ends_the_read_and_the_rest_is_read_next() {
    let mut conn = server();
    let mut input = frame(true, TEXT, b"one");
    input.extend(frame(true, BINARY, b"two"));
    let (used, event) = conn.read(&mut input).unwrap();
    assert_eq!(used, 9);
    assert_eq!(own(&event.unwrap()), Ev::Text("one".into()));
    let (used, event) = conn.read(&mut input[9..]).unwrap();
    assert_eq!(used, 9);
    assert_eq!(own(&event.unwrap()), Ev::Binary(b"two".to_vec()));
    let (used, event) = conn.read(&mut []).unwrap();
    assert_eq!(used, 0);
    assert!(event.is_none());
}

#[test]
fn boundary_lengths_round_trip() {
    for len in [0usize, 1, 125, 126, 127, 65535, 65536, 70000] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
        let input = frame(true, BINARY, &payload);
        // The client header, byte for byte.
        let expected_header: Vec<u8> = match len {
            0..=125 => vec![0x82, 0x80 | len as u8],
            126..=65535 => vec![0x82, 0xfe, (len >> 8) as u8, len as u8],
            _ => {
                let mut h = vec![0x82, 0xff];
                h.extend_from_slice(&(len as u64).to_be_bytes());
                h
            }
        };
        assert_eq!(input[..expected_header.len()], expected_header);
        let mut conn = server();
        let fed = feed(&mut conn, &input);
        assert_eq!(fed.error, None);
        assert_eq!(fed.events, [Ev::Binary(payload.clone())], "len {len}");
        assert_eq!(fed.borrowed, [true]);
        // Echo: the server's frame is the unmasked form with the same length.
        conn.send(Message::Binary(&payload)).unwrap();
        let out = drain(&mut conn);
        let mut expected = expected_header.clone();
        expected[1] &= 0x7f;
        expected.extend_from_slice(&payload);
        assert_eq!(out, expected, "len {len}");
        // Text of the same length.
        let text: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        let fed = feed(&mut conn, &frame(true, TEXT, text.as_bytes()));
        assert_eq!(fed.events, [Ev::Text(text.clone())]);
        conn.send(Message::Text(&text)).unwrap();
        let out = drain(&mut conn);
        assert_eq!(out[0], 0x81);
        assert_eq!(
            out[1..expected_header.len()],
            expected[1..expected_header.len()]
        );
        assert_eq!(&out[expected_header.len()..], text.as_bytes());
    }
}

#[test]
fn non_minimal_length_forms_are_accepted() {
    // 5 bytes announced in the 16-bit and in the 64-bit form.
    let masked: Vec<u8> = b"Hello"
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ MASK[i % 4])
        .collect();
    for prefix in [
        vec![0x81, 0xfe, 0x00, 0x05],
        vec![0x81, 0xff, 0, 0, 0, 0, 0, 0, 0, 0x05],
    ] {
        let mut input = prefix.clone();
        input.extend_from_slice(&MASK);
        input.extend_from_slice(&masked);
        let mut conn = server();
        assert_eq!(events(&mut conn, &input), [Ev::Text("Hello".into())]);
    }
}

/// The frame cut at every position: the same event. It is lent out of the
/// second read when the cut falls inside the header (the payload arrives
/// whole), and assembled (owned) when the cut falls inside the payload.
#[test]
fn split_at_every_position() {
    let texts = [
        "Hello".to_string(),
        "κόσμε 𝄞 €".repeat(20), // 126-form header, multi-byte cuts
    ];
    for text in &texts {
        let input = frame(true, TEXT, text.as_bytes());
        let header_len = input.len() - text.len();
        for cut in 0..=input.len() {
            let mut conn = server();
            let fed = feed_chunks(&mut conn, &[&input[..cut], &input[cut..]]);
            assert_eq!(fed.error, None, "cut {cut}");
            assert_eq!(fed.events, [Ev::Text(text.clone())], "cut {cut}");
            let borrowed = cut < header_len || cut == input.len();
            assert_eq!(fed.borrowed, [borrowed], "cut {cut} of {}", input.len());
        }
    }
    // Binary with a 64-bit length, at a few cuts.
    let payload: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
    let input = frame(true, BINARY, &payload);
    for cut in [0, 1, 2, 9, 13, 14, 15, 1000, 65535 + 14, input.len()] {
        let mut conn = server();
        let fed = feed_chunks(&mut conn, &[&input[..cut], &input[cut..]]);
        assert_eq!(fed.events, [Ev::Binary(payload.clone())], "cut {cut}");
        assert_eq!(fed.borrowed, [cut < 14 || cut == input.len()], "cut {cut}");
    }
}

#[test]
fn byte_at_a_time() {
    let text = "ab€𝄞c";
    let input = frame(true, TEXT, text.as_bytes());
    let mut conn = server();
    let chunks: Vec<&[u8]> = input.chunks(1).collect();
    let fed = feed_chunks(&mut conn, &chunks);
    assert_eq!(fed.events, [Ev::Text(text.into())]);
    assert_eq!(fed.borrowed, [false]);
    // Every read but the last consumed its byte without an event.
    let mut conn = server();
    for (i, byte) in input.iter().enumerate() {
        let mut one = [*byte];
        let (used, event) = conn.read(&mut one).unwrap();
        assert_eq!(used, 1);
        assert_eq!(event.is_some(), i == input.len() - 1, "byte {i}");
    }
}

/// A message cut into `n` fragments of (nearly) equal size.
fn fragmented(opcode: u8, payload: &[u8], n: usize) -> Vec<u8> {
    let size = payload.len().div_ceil(n).max(1);
    let mut chunks: Vec<&[u8]> = payload.chunks(size).collect();
    chunks.resize(n, &[]);
    let mut out = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        let op = if i == 0 { opcode } else { CONT };
        out.extend(frame(i == n - 1, op, c));
    }
    out
}

#[test]
fn fragmented_messages_of_1_2_and_1000_fragments() {
    // Multi-byte characters, so most fragment edges cut a character.
    let text = "aé€𝄞".repeat(300);
    let binary: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    for n in [1, 2, 3, 1000] {
        let mut conn = server();
        let input = fragmented(TEXT, text.as_bytes(), n);
        let fed = feed(&mut conn, &input);
        assert_eq!(fed.error, None, "{n} fragments");
        assert_eq!(fed.events, [Ev::Text(text.clone())], "{n} fragments");
        assert_eq!(fed.borrowed, [n == 1]);
        let input = fragmented(BINARY, &binary, n);
        let fed = feed(&mut conn, &input);
        assert_eq!(fed.events, [Ev::Binary(binary.clone())], "{n} fragments");
        assert_eq!(fed.borrowed, [n == 1]);
        assert_eq!(conn.buffered_amount(), 0);
    }
}

#[test]
fn empty_fragments() {
    let mut conn = server();
    let mut input = frame(false, TEXT, b"");
    input.extend(frame(false, CONT, b""));
    input.extend(frame(false, CONT, b"ab"));
    input.extend(frame(true, CONT, b""));
    input.extend(frame(false, BINARY, b""));
    input.extend(frame(true, CONT, b""));
    assert_eq!(
        events(&mut conn, &input),
        [Ev::Text("ab".into()), Ev::Binary(vec![])]
    );
}

#[test]
fn assembled_buffers_are_owned_and_can_be_recycled() {
    let mut conn = server();
    let mut input = frame(false, BINARY, b"abc");
    input.extend(frame(true, CONT, b"def"));
    let (first, rest) = input.split_at_mut(9);
    let (used, event) = conn.read(first).unwrap();
    assert_eq!((used, event.is_none()), (9, true));
    let (used, event) = conn.read(rest).unwrap();
    assert_eq!(used, 9);
    let Some(Event::Message(m)) = event else {
        panic!()
    };
    assert!(!m.is_borrowed());
    let buf = m.into_buffer().expect("owned");
    assert_eq!(buf, b"abcdef");
    conn.recycle(buf);
    let mut input = frame(false, TEXT, b"x");
    input.extend(frame(true, CONT, b"y"));
    assert_eq!(events(&mut conn, &input), [Ev::Text("xy".into())]);
}

// ----------------------------------------------------------- control frames

#[test]
fn ping_between_fragments_is_answered_in_place() {
    let mut conn = server();
    let mut input = frame(false, TEXT, b"Hel");
    input.extend(frame(true, PING, b"p1"));
    input.extend(frame(false, CONT, b"l"));
    input.extend(frame(true, PONG, b"q"));
    input.extend(frame(true, CONT, b"o"));
    assert_eq!(
        events(&mut conn, &input),
        [
            Ev::Ping(b"p1".to_vec()),
            Ev::Pong(b"q".to_vec()),
            Ev::Text("Hello".into())
        ]
    );
    assert_eq!(drain(&mut conn), [0x8a, 0x02, b'p', b'1']);
}

#[test]
fn pong_echoes_the_ping_payload_exactly() {
    let mut conn = server();
    let mut input = frame(true, PING, b"Hello");
    let (used, event) = conn.read(&mut input).unwrap();
    assert_eq!(used, 11);
    let Some(Event::Ping(p)) = event else {
        panic!("{event:?}")
    };
    assert_eq!(p.as_bytes(), b"Hello");
    // RFC 6455 §5.7: an unmasked pong "Hello".
    assert_eq!(drain(&mut conn), [0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    // An empty ping.
    assert_eq!(
        events(&mut conn, &frame(true, PING, b"")),
        [Ev::Ping(vec![])]
    );
    assert_eq!(drain(&mut conn), [0x8a, 0x00]);
}

#[test]
fn unsolicited_pong_is_an_event_and_owes_nothing() {
    let mut conn = server();
    assert_eq!(
        events(&mut conn, &frame(true, PONG, b"beat")),
        [Ev::Pong(b"beat".to_vec())]
    );
    assert_eq!(conn.buffered_amount(), 0);
    assert!(conn.is_open());
}

#[test]
fn ten_pings_in_one_input_get_ten_pongs_in_order() {
    let mut conn = server();
    let mut input = Vec::new();
    let mut expected_out = Vec::new();
    let mut expected_events = Vec::new();
    for i in 0..10u8 {
        let payload = vec![i; i as usize * 3];
        input.extend(frame(true, PING, &payload));
        expected_out.push(0x8a);
        expected_out.push(payload.len() as u8);
        expected_out.extend_from_slice(&payload);
        expected_events.push(Ev::Ping(payload));
    }
    assert_eq!(events(&mut conn, &input), expected_events);
    assert_eq!(drain(&mut conn), expected_out);
}

#[test]
fn ping_payload_limit_is_125() {
    let payload = [0x5a; 125];
    let mut conn = server();
    assert_eq!(
        events(&mut conn, &frame(true, PING, &payload)),
        [Ev::Ping(payload.to_vec())]
    );
    let out = drain(&mut conn);
    assert_eq!(out[..2], [0x8a, 0x7d]);
    assert_eq!(out[2..], payload);
    // 126 bytes: refused from the header alone, before any payload.
    let mut conn = server();
    let input = frame(true, PING, &[0x5a; 126]);
    assert_eq!(input[..4], [0x89, 0xfe, 0x00, 0x7e]);
    let e = fails(&mut conn, &input[..8]);
    assert_failed(
        &mut conn,
        e,
        ProtocolError::Frame(FrameError::ControlTooLong(126)),
    );
    // Pong and close alike.
    fail_with(
        &frame(true, PONG, &[0; 200]),
        ProtocolError::Frame(FrameError::ControlTooLong(200)),
    );
    fail_with(
        &frame(true, CLOSE, &[0x03; 126]),
        ProtocolError::Frame(FrameError::ControlTooLong(126)),
    );
}

#[test]
fn fragmented_control_frames_are_1002() {
    for op in [PING, PONG, CLOSE] {
        fail_with(
            &frame(false, op, b"x"),
            ProtocolError::Frame(FrameError::FragmentedControl),
        );
    }
    // Also inside a fragmented message.
    let mut input = frame(false, TEXT, b"a");
    input.extend(frame(false, PING, b""));
    fail_with(&input, ProtocolError::Frame(FrameError::FragmentedControl));
}

// ------------------------------------------------------------ frame errors

#[test]
fn unmasked_client_frame_is_1002_with_exact_close_bytes() {
    let mut conn = server();
    let e = fails(&mut conn, &server_frame(TEXT, b"Hello"));
    assert_eq!(e, ProtocolError::Frame(FrameError::Unmasked));
    let mut expected = vec![0x88, 28, 0x03, 0xea];
    expected.extend_from_slice(b"client frame is not masked");
    assert_eq!(drain(&mut conn), expected);
    for op in [BINARY, PING, CLOSE, CONT] {
        fail_with(
            &server_frame(op, b""),
            ProtocolError::Frame(FrameError::Unmasked),
        );
    }
}

#[test]
fn every_rsv_combination_is_1002() {
    for rsv in 1..8u8 {
        for op in [TEXT, BINARY, PING, CLOSE] {
            let input = Frame::from_b0(0x80 | (rsv << 4) | op, b"x\x03\xe8").encode();
            fail_with(&input, ProtocolError::Frame(FrameError::ReservedBits(rsv)));
        }
        // On a continuation inside a message too.
        let mut input = frame(false, TEXT, b"a");
        input.extend(Frame::from_b0(0x80 | (rsv << 4), b"b").encode());
        fail_with(&input, ProtocolError::Frame(FrameError::ReservedBits(rsv)));
    }
}

#[test]
fn every_reserved_opcode_is_1002_even_after_a_valid_message() {
    for op in (3..=7).chain(11..=15) {
        fail_with(
            &frame(true, op, b""),
            ProtocolError::Frame(FrameError::ReservedOpcode(op)),
        );
        fail_with(
            &frame(false, op, b"abc"),
            ProtocolError::Frame(FrameError::ReservedOpcode(op)),
        );
        let mut conn = server();
        let mut input = frame(true, TEXT, b"ok");
        input.extend(frame(true, op, b"abc"));
        let fed = feed(&mut conn, &input);
        assert_eq!(fed.events, [Ev::Text("ok".into())]);
        assert_failed(
            &mut conn,
            fed.error.unwrap(),
            ProtocolError::Frame(FrameError::ReservedOpcode(op)),
        );
    }
}

#[test]
fn continuation_without_a_message_is_1002() {
    fail_with(
        &frame(true, CONT, b"x"),
        ProtocolError::UnexpectedContinuation,
    );
    fail_with(
        &frame(false, CONT, b"x"),
        ProtocolError::UnexpectedContinuation,
    );
    // After a complete fragmented message.
    let mut input = frame(false, TEXT, b"a");
    input.extend(frame(true, CONT, b"b"));
    input.extend(frame(true, CONT, b"c"));
    let mut conn = server();
    let fed = feed(&mut conn, &input);
    assert_eq!(fed.events, [Ev::Text("ab".into())]);
    assert_failed(
        &mut conn,
        fed.error.unwrap(),
        ProtocolError::UnexpectedContinuation,
    );
}

#[test]
fn new_data_frame_inside_a_fragmented_message_is_1002() {
    for (first, second) in [
        (TEXT, TEXT),
        (TEXT, BINARY),
        (BINARY, TEXT),
        (BINARY, BINARY),
    ] {
        for fin in [false, true] {
            let mut input = frame(false, first, b"a");
            input.extend(frame(fin, second, b"b"));
            fail_with(&input, ProtocolError::ExpectedContinuation);
        }
    }
}

#[test]
fn top_bit_of_64_bit_length_is_1002() {
    let mut input = vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0];
    input.extend_from_slice(&MASK);
    fail_with(&input, ProtocolError::Frame(FrameError::LengthTopBit));
    // Decided from the 10 bytes of header, without the mask.
    fail_with(&input[..10], ProtocolError::Frame(FrameError::LengthTopBit));
}

// ------------------------------------------------------------------- UTF-8

#[test]
fn invalid_utf8_is_1007() {
    for bad in [
        &b"\xff"[..],
        b"\xc0\xaf",
        b"ab\xed\xa0\x80cd",
        b"\xf4\x90\x80\x80",
        b"\xe2\x82",
        b"abc\xf0\x9f\x98",
    ] {
        // Whole frame (the borrowed path) and split (the assembled path).
        let input = frame(true, TEXT, bad);
        fail_with(&input, ProtocolError::InvalidUtf8);
        let mut conn = server();
        let fed = feed_chunks(&mut conn, &[&input[..7], &input[7..]]);
        assert_failed(&mut conn, fed.error.unwrap(), ProtocolError::InvalidUtf8);
        // Fragmented.
        fail_with(
            &fragmented(TEXT, bad, bad.len()),
            ProtocolError::InvalidUtf8,
        );
    }
    // Binary messages carry any bytes.
    let mut conn = server();
    assert_eq!(
        events(&mut conn, &frame(true, BINARY, b"\xff\xc0")),
        [Ev::Binary(b"\xff\xc0".to_vec())]
    );
}

#[test]
fn exact_close_bytes_for_invalid_utf8() {
    let mut conn = server();
    assert_eq!(
        fails(&mut conn, &frame(true, TEXT, b"\xff")),
        ProtocolError::InvalidUtf8
    );
    let mut expected = vec![0x88, 2 + 22, 0x03, 0xef];
    expected.extend_from_slice(b"text is not valid UTF-8");
    expected[1] = expected.len() as u8 - 2;
    assert_eq!(drain(&mut conn), expected);
}

#[test]
fn invalid_utf8_fails_fast() {
    // The first fragment alone: the bad byte is reported before the message
    // (or even the frame) is complete.
    let mut conn = server();
    let e = fails(&mut conn, &frame(false, TEXT, b"hello \xc0 world"));
    assert_failed(&mut conn, e, ProtocolError::InvalidUtf8);
    // Only part of the first frame's payload: "\xed\xa0" is a surrogate.
    let input = frame(false, TEXT, b"ok \xed\xa0\x80 and much more to come");
    let mut conn = server();
    let e = fails(&mut conn, &input[..6 + 5]);
    assert_failed(&mut conn, e, ProtocolError::InvalidUtf8);
    // In a later fragment, with the final one still to come.
    let mut input = frame(false, TEXT, b"fine");
    input.extend(frame(false, CONT, b"\xf8"));
    let mut conn = server();
    let e = fails(&mut conn, &input);
    assert_failed(&mut conn, e, ProtocolError::InvalidUtf8);
    // A sequence cut short is not an error until the message ends.
    let mut conn = server();
    let fed = feed(&mut conn, &frame(false, TEXT, b"\xf0\x9f"));
    assert_eq!(fed, Fed::default());
    let e = fails(&mut conn, &frame(true, CONT, b""));
    assert_failed(&mut conn, e, ProtocolError::InvalidUtf8);
}

#[test]
fn sequences_cut_across_fragments_are_fine() {
    let text = "€𝄞é";
    let bytes = text.as_bytes();
    for a in 0..=bytes.len() {
        for b in a..=bytes.len() {
            let mut input = frame(false, TEXT, &bytes[..a]);
            input.extend(frame(false, CONT, &bytes[a..b]));
            input.extend(frame(true, CONT, &bytes[b..]));
            let mut conn = server();
            assert_eq!(
                events(&mut conn, &input),
                [Ev::Text(text.into())],
                "{a} {b}"
            );
        }
    }
    // With a ping between the halves of a character.
    let mut input = frame(false, TEXT, &bytes[..1]);
    input.extend(frame(true, PING, b"\xff"));
    input.extend(frame(true, CONT, &bytes[1..]));
    let mut conn = server();
    assert_eq!(
        events(&mut conn, &input),
        [Ev::Ping(vec![0xff]), Ev::Text(text.into())]
    );
}

// ------------------------------------------------------------------- close

#[test]
fn close_without_payload_is_echoed_empty() {
    let mut conn = server();
    let mut input = frame(true, CLOSE, b"");
    assert_eq!(input, [0x88, 0x80, 0x37, 0xfa, 0x21, 0x3d]);
    let (used, event) = conn.read(&mut input).unwrap();
    assert_eq!(used, 6);
    let Some(Event::Close(c)) = event else {
        panic!("{event:?}")
    };
    assert_eq!(c.code, close_code::NO_STATUS);
    assert_eq!(c.reason(), "");
    assert!(conn.close_received());
    assert!(conn.close_sent());
    assert!(!conn.has_failed());
    assert_eq!(drain(&mut conn), [0x88, 0x00]);
    assert!(conn.is_finished());
}

#[test]
fn close_code_only_is_echoed() {
    let mut conn = server();
    assert_eq!(
        events(&mut conn, &frame(true, CLOSE, &[0x03, 0xe8])),
        [Ev::Close(1000, String::new())]
    );
    assert_eq!(drain(&mut conn), [0x88, 0x02, 0x03, 0xe8]);
}

#[test]
fn close_with_reason_echoes_the_code() {
    let mut conn = server();
    assert_eq!(
        events(
            &mut conn,
            &frame(true, CLOSE, &close_payload(1001, "bye ✓".as_bytes()))
        ),
        [Ev::Close(1001, "bye ✓".into())]
    );
    assert_eq!(drain(&mut conn), [0x88, 0x02, 0x03, 0xe9]);
}

#[test]
fn close_payload_of_125_bytes() {
    let reason = "r".repeat(123);
    let mut conn = server();
    let input = frame(true, CLOSE, &close_payload(4000, reason.as_bytes()));
    assert_eq!(input[1], 0x80 | 125);
    assert_eq!(events(&mut conn, &input), [Ev::Close(4000, reason)]);
    assert_eq!(drain(&mut conn), [0x88, 0x02, 0x0f, 0xa0]);
}

#[test]
fn close_with_one_byte_is_1002() {
    fail_with(&frame(true, CLOSE, &[0x03]), ProtocolError::CloseOneByte);
}

#[test]
fn every_close_code() {
    for code in (0..=5000u16).chain([5001, 9999, 65535]) {
        let mut conn = server();
        let fed = feed(&mut conn, &frame(true, CLOSE, &close_payload(code, b"why")));
        if close_code::is_valid(code) {
            assert_eq!(fed.error, None, "{code}");
            assert_eq!(fed.events, [Ev::Close(code, "why".into())]);
            let mut echo = vec![0x88, 0x02];
            echo.extend_from_slice(&code.to_be_bytes());
            assert_eq!(drain(&mut conn), echo, "{code}");
            assert!(conn.is_finished());
        } else {
            assert_eq!(fed.events, []);
            let e = fed.error.expect("invalid code");
            assert_eq!(e, ProtocolError::InvalidCloseCode(code));
            assert_eq!(e.close_code(), PROTOCOL);
            let out = drain(&mut conn);
            assert_eq!(out[..4], [0x88, out.len() as u8 - 2, 0x03, 0xea], "{code}");
            assert_single_close(&out, PROTOCOL);
            assert!(!conn.close_received());
            assert!(conn.is_finished());
        }
    }
}

#[test]
fn invalid_close_reason_is_1007() {
    let mut conn = server();
    let e = fails(
        &mut conn,
        &frame(true, CLOSE, &close_payload(1000, b"ok\xff")),
    );
    assert_eq!(e.close_code(), close_code::INVALID_PAYLOAD);
    let mut expected = vec![0x88, 0, 0x03, 0xef];
    expected.extend_from_slice(b"close reason is not valid UTF-8");
    expected[1] = expected.len() as u8 - 2;
    assert_eq!(drain(&mut conn), expected);
    fail_with(
        &frame(true, CLOSE, &close_payload(1000, b"\xe2\x82")),
        ProtocolError::InvalidCloseReason,
    );
}

#[test]
fn data_after_the_peers_close_is_ignored() {
    let mut conn = server();
    let mut input = frame(true, CLOSE, &[0x03, 0xe8]);
    let close_len = input.len();
    input.extend(frame(true, TEXT, b"late"));
    input.extend(frame(true, PING, b"late"));
    input.extend([0xff; 10]); // garbage too
    let (used, event) = conn.read(&mut input).unwrap();
    assert_eq!(used, close_len);
    assert_eq!(own(&event.unwrap()), Ev::Close(1000, String::new()));
    let rest_len = input.len() - close_len;
    let (used, event) = conn.read(&mut input[close_len..]).unwrap();
    assert_eq!(used, rest_len);
    assert!(event.is_none());
    assert!(!conn.has_failed());
    assert_eq!(drain(&mut conn), [0x88, 0x02, 0x03, 0xe8]);
    assert_eq!(conn.send(Message::Text("x")), Err(SendError::Closing));
    assert!(conn.is_finished());
}

#[test]
fn close_while_a_fragmented_message_is_open() {
    let mut conn = server();
    let mut input = frame(false, TEXT, b"never");
    input.extend(frame(true, CLOSE, &close_payload(1000, b"")));
    input.extend(frame(true, CONT, b" finished"));
    assert_eq!(events(&mut conn, &input), [Ev::Close(1000, String::new())]);
    assert_eq!(drain(&mut conn), [0x88, 0x02, 0x03, 0xe8]);
    assert!(conn.is_finished());
}

// ------------------------------------------------------- server-side close

#[test]
fn server_never_sends_after_its_close() {
    let mut conn = server();
    conn.close(1000, "bye").unwrap();
    assert!(!conn.is_open());
    assert!(conn.close_sent());
    assert_eq!(conn.send(Message::Text("x")), Err(SendError::Closing));
    assert_eq!(conn.send(Message::Binary(b"x")), Err(SendError::Closing));
    assert_eq!(conn.ping(b"x"), Err(SendError::Closing));
    assert_eq!(conn.close(1000, ""), Err(SendError::Closing));
    let shared = encode_shared(Message::Text("all"));
    assert_eq!(conn.send_shared(&shared), Err(SendError::Closing));
    assert_eq!(drain(&mut conn), [0x88, 0x05, 0x03, 0xe8, b'b', b'y', b'e']);
    assert!(!conn.is_finished(), "waiting for the peer's close");
    // The peer keeps talking: data is discarded (even invalid text and
    // continuations of nothing), pings are reported but not answered.
    let mut input = frame(true, TEXT, b"late");
    input.extend(frame(true, TEXT, b"\xff"));
    input.extend(frame(true, CONT, b"x"));
    input.extend(frame(false, BINARY, b"x"));
    input.extend(frame(true, PING, b"p"));
    input.extend(frame(true, PONG, b"q"));
    assert_eq!(
        events(&mut conn, &input),
        [Ev::Ping(b"p".to_vec()), Ev::Pong(b"q".to_vec())]
    );
    assert_eq!(conn.buffered_amount(), 0);
    assert!(!conn.is_finished());
    // Its close completes the handshake; nothing is echoed.
    assert_eq!(
        events(&mut conn, &frame(true, CLOSE, &[0x03, 0xe8])),
        [Ev::Close(1000, String::new())]
    );
    assert_eq!(conn.buffered_amount(), 0);
    assert!(conn.close_received());
    assert!(conn.is_finished());
    assert!(!conn.has_failed());
}

#[test]
fn server_close_arguments_are_checked() {
    let mut conn = server();
    for code in [0, 999, 1004, 1005, 1006, 1015, 2000, 5000, 65535] {
        assert_eq!(conn.close(code, ""), Err(SendError::InvalidCloseCode(code)));
    }
    assert_eq!(
        conn.close(1000, &"x".repeat(124)),
        Err(SendError::ControlTooLong)
    );
    assert_eq!(conn.ping(&[0; 126]), Err(SendError::ControlTooLong));
    assert_eq!(conn.buffered_amount(), 0);
    assert!(conn.is_open());
    conn.ping(&[7; 125]).unwrap();
    conn.close(4999, &"x".repeat(123)).unwrap();
    let out = drain(&mut conn);
    let f = frames(&out);
    assert_eq!(f.len(), 2);
    assert_eq!((f[0].b0, f[0].payload.clone()), (0x89, vec![7; 125]));
    assert_eq!(f[1].b0, 0x88);
    assert_eq!(f[1].payload.len(), 125);
    assert_eq!(f[1].payload[..2], [0x13, 0x87]);
}

#[test]
fn a_peer_error_after_the_servers_close_queues_nothing_more() {
    let mut conn = server();
    conn.close(1001, "").unwrap();
    drain(&mut conn);
    let e = fails(&mut conn, &frame(true, 0x3, b""));
    assert_eq!(e, ProtocolError::Frame(FrameError::ReservedOpcode(3)));
    assert!(conn.has_failed());
    assert_eq!(conn.buffered_amount(), 0);
    assert!(conn.is_finished());
}

// ---------------------------------------------------------------- finished

#[test]
fn is_finished_waits_for_the_last_byte() {
    let mut conn = server();
    assert!(!conn.is_finished());
    conn.send(Message::Text("hi")).unwrap();
    events(&mut conn, &frame(true, CLOSE, &[0x03, 0xe8]));
    assert_eq!(conn.buffered_amount(), 4 + 4);
    // Written in part: not yet.
    conn.outgoing().consume(7);
    assert_eq!(conn.buffered_amount(), 1);
    assert!(!conn.is_finished());
    assert_eq!(conn.outgoing().front(), [0xe8]);
    conn.outgoing().consume(1);
    assert!(conn.is_finished());
    // After a protocol error likewise.
    let mut conn = server();
    fails(&mut conn, &frame(true, CONT, b""));
    assert!(!conn.is_finished());
    let n = conn.buffered_amount();
    conn.outgoing().consume(n - 1);
    assert!(!conn.is_finished());
    conn.outgoing().consume(1);
    assert!(conn.is_finished());
    // A close the server started is not finished without the peer's.
    let mut conn = server();
    conn.close(1000, "").unwrap();
    drain(&mut conn);
    assert!(!conn.is_finished());
}

// ------------------------------------------------------------------ limits

fn limited(max_frame: usize, max_message: usize) -> Connection {
    let mut config = Config::default();
    config.max_frame_size = max_frame;
    config.max_message_size = max_message;
    Connection::new(Role::Server, &config)
}

#[test]
fn frame_over_max_frame_size_is_1009_from_the_header() {
    let mut conn = limited(1000, 1 << 20);
    let ok = frame(true, BINARY, &[1; 1000]);
    assert_eq!(events(&mut conn, &ok), [Ev::Binary(vec![1; 1000])]);
    // Only the 8-byte header of a 1001-byte frame.
    let header = header(0x82, 1001);
    assert_eq!(header, [0x82, 0xfe, 0x03, 0xe9, 0x37, 0xfa, 0x21, 0x3d]);
    let e = fails(&mut conn, &header);
    assert_eq!(
        e,
        ProtocolError::FrameTooBig {
            size: 1001,
            limit: 1000
        }
    );
    let out = drain(&mut conn);
    assert_eq!(out[..4], [0x88, out.len() as u8 - 2, 0x03, 0xf1]);
    assert_eq!(
        assert_single_close(&out, close_code::MESSAGE_TOO_BIG),
        "frame payload of 1001 bytes exceeds the limit of 1000"
    );
    assert!(conn.is_finished());
    // A non-first fragment too, and a huge 64-bit announcement with the
    // default limits.
    let mut input = frame(false, TEXT, b"a");
    input.extend(self::header(0x80, 1001));
    let mut conn = limited(1000, 1 << 20);
    let e = fails(&mut conn, &input);
    assert_failed(
        &mut conn,
        e,
        ProtocolError::FrameTooBig {
            size: 1001,
            limit: 1000,
        },
    );
    let mut conn = server();
    let e = fails(&mut conn, &self::header(0x82, 1 << 62));
    assert_failed(
        &mut conn,
        e,
        ProtocolError::FrameTooBig {
            size: 1 << 62,
            limit: 16 << 20,
        },
    );
}

#[test]
fn fragments_past_max_message_size_are_1009() {
    let mut conn = limited(1 << 20, 1000);
    // Up to the limit exactly: fine.
    let mut input = frame(false, BINARY, &[1; 600]);
    input.extend(frame(true, CONT, &[2; 400]));
    let mut expected = vec![1; 600];
    expected.extend([2; 400]);
    assert_eq!(events(&mut conn, &input), [Ev::Binary(expected)]);
    // One byte over, refused at the second fragment's header.
    let mut input = frame(false, TEXT, &[b'a'; 600]);
    input.extend(header(0x80, 401));
    let e = fails(&mut conn, &input);
    assert_failed(
        &mut conn,
        e,
        ProtocolError::MessageTooBig {
            size: 1001,
            limit: 1000,
        },
    );
    // A single frame over the message limit but under the frame limit.
    let mut conn = limited(1 << 20, 1000);
    let e = fails(&mut conn, &header(0x82, 1001));
    assert_failed(
        &mut conn,
        e,
        ProtocolError::MessageTooBig {
            size: 1001,
            limit: 1000,
        },
    );
    // Control frames between fragments do not count.
    let mut conn = limited(1 << 20, 10);
    let mut input = frame(false, TEXT, b"01234");
    input.extend(frame(true, PING, &[0; 100]));
    input.extend(frame(true, CONT, b"56789"));
    assert_eq!(
        events(&mut conn, &input),
        [Ev::Ping(vec![0; 100]), Ev::Text("0123456789".into())]
    );
}

// ------------------------------------------------------------- client role

#[test]
fn client_frames_are_masked_and_round_trip_through_a_server() {
    let mut client = Connection::new(Role::Client, &Config::default());
    let mut server = server();
    let big: Vec<u8> = (0..70000u32).map(|i| (i % 253) as u8).collect();
    let messages: [(Message<'_>, Ev); 4] = [
        (Message::Text("hello"), Ev::Text("hello".into())),
        (Message::Text(""), Ev::Text(String::new())),
        (
            Message::Binary(&big[..200]),
            Ev::Binary(big[..200].to_vec()),
        ),
        (Message::Binary(&big), Ev::Binary(big.clone())),
    ];
    for (msg, ev) in &messages {
        client.send(*msg).unwrap();
        let wire = drain(&mut client);
        let f = frames(&wire);
        assert_eq!(f.len(), 1);
        assert!(f[0].masked, "client frames are masked");
        assert_eq!(
            f[0].b0,
            if matches!(msg, Message::Text(_)) {
                0x81
            } else {
                0x82
            }
        );
        assert_eq!(f[0].payload, msg.as_bytes());
        // The server decodes it and echoes it.
        assert_eq!(events(&mut server, &wire), std::slice::from_ref(ev));
        server.send(*msg).unwrap();
        let echo = drain(&mut server);
        assert!(!frames(&echo)[0].masked);
        assert_eq!(events(&mut client, &echo), std::slice::from_ref(ev));
    }
    // Ping from the client: masked; the server's pong comes back to it.
    client.ping(b"are you there").unwrap();
    let wire = drain(&mut client);
    assert_eq!(wire[..2], [0x89, 0x80 | 13]);
    assert_eq!(
        events(&mut server, &wire),
        [Ev::Ping(b"are you there".to_vec())]
    );
    let pong = drain(&mut server);
    assert_eq!(pong[..2], [0x8a, 13]);
    assert_eq!(
        events(&mut client, &pong),
        [Ev::Pong(b"are you there".to_vec())]
    );
    // The client's server-initiated ping is answered with a masked pong.
    server.ping(b"srv").unwrap();
    let wire = drain(&mut server);
    assert_eq!(events(&mut client, &wire), [Ev::Ping(b"srv".to_vec())]);
    let pong = drain(&mut client);
    assert!(frames(&pong)[0].masked);
    assert_eq!(events(&mut server, &pong), [Ev::Pong(b"srv".to_vec())]);
    // Close from the client, echoed by the server, received by the client.
    client.close(1000, "done").unwrap();
    let wire = drain(&mut client);
    assert_eq!(wire[..2], [0x88, 0x80 | 6]);
    assert_eq!(events(&mut server, &wire), [Ev::Close(1000, "done".into())]);
    let echo = drain(&mut server);
    assert_eq!(echo, [0x88, 0x02, 0x03, 0xe8]);
    assert!(server.is_finished());
    assert_eq!(events(&mut client, &echo), [Ev::Close(1000, String::new())]);
    assert!(client.close_received());
    assert_eq!(client.buffered_amount(), 0);
}

#[test]
fn client_rejects_masked_frames_and_cannot_send_shared() {
    let mut client = Connection::new(Role::Client, &Config::default());
    let shared = encode_shared(Message::Text("x"));
    assert_eq!(
        client.send_shared(&shared),
        Err(SendError::SharedNeedsServer)
    );
    let e = fails(&mut client, &frame(true, TEXT, b"masked"));
    assert_eq!(e, ProtocolError::Frame(FrameError::Masked));
    let out = drain(&mut client);
    let f = frames(&out);
    assert_eq!(f.len(), 1);
    assert!(f[0].masked);
    assert_eq!(f[0].b0, 0x88);
    assert_eq!(f[0].payload[..2], [0x03, 0xea]);
    assert_eq!(&f[0].payload[2..], b"server frame is masked");
}

#[test]
fn shared_frames_are_queued_in_order() {
    let shared: Arc<[u8]> = encode_shared(Message::Text("Hello"));
    assert_eq!(&shared[..], b"\x81\x05Hello");
    let big = encode_shared(Message::Binary(&[9; 300]));
    assert_eq!(big[..4], [0x82, 126, 0x01, 0x2c]);
    let mut conn = server();
    conn.send(Message::Text("a")).unwrap();
    conn.send_shared(&shared).unwrap();
    conn.send_shared(&big).unwrap();
    conn.send(Message::Binary(b"b")).unwrap();
    // A small frame is copied (COPY_SHARED_UP_TO), a large one shared.
    assert_eq!(Arc::strong_count(&shared), 1);
    assert_eq!(Arc::strong_count(&big), 2);
    assert_eq!(conn.buffered_amount(), 3 + 7 + 304 + 3);
    let mut expected = b"\x81\x01a\x81\x05Hello".to_vec();
    expected.extend_from_slice(&big);
    expected.extend_from_slice(b"\x82\x01b");
    assert_eq!(drain(&mut conn), expected);
    assert_eq!(Arc::strong_count(&big), 1);
}

// ------------------------------------------------------- outgoing queue

/// `front` is what a writer hands to the socket: it is never empty while
/// bytes are queued, whatever was pushed before them.
#[test]
fn outgoing_front_is_never_empty_while_bytes_are_queued() {
    // Large enough to be queued shared, as a chunk of its own.
    let text = "EF".repeat(200);
    let shared = encode_shared(Message::Text(&text));
    let mut conn = server();
    conn.outgoing().push(b"");
    assert!(conn.outgoing().is_empty());
    conn.send_shared(&shared).unwrap();
    conn.outgoing().push(b"");
    conn.send(Message::Binary(b"g")).unwrap();
    assert_eq!(conn.buffered_amount(), shared.len() + 3);
    assert_eq!(conn.outgoing().front(), &shared[..]);
    assert_eq!(drain(&mut conn), [&shared[..], b"\x82\x01g"].concat());
    // Written a byte at a time, across chunk edges.
    conn.send(Message::Text("ab")).unwrap();
    conn.send_shared(&shared).unwrap();
    conn.outgoing().push(b"xyz");
    let mut written = Vec::new();
    while !conn.outgoing().is_empty() {
        let q = conn.outgoing();
        let front = q.front();
        assert!(!front.is_empty());
        written.push(front[0]);
        q.consume(1);
    }
    assert_eq!(written, [&b"\x81\x02ab"[..], &shared, b"xyz"].concat());
}

#[test]
fn push_front_puts_a_response_before_queued_frames() {
    let mut conn = server();
    conn.send(Message::Text("first")).unwrap();
    conn.outgoing().push_front(Vec::new());
    conn.outgoing()
        .push_front(b"HTTP/1.1 101 ...\r\n\r\n".to_vec());
    assert_eq!(conn.buffered_amount(), 20 + 7);
    assert_eq!(drain(&mut conn), b"HTTP/1.1 101 ...\r\n\r\n\x81\x05first");
}

#[test]
fn close_code_sent_reports_what_went_out() {
    let mut conn = server();
    assert_eq!(conn.close_code_sent(), None);
    conn.close(4001, "x").unwrap();
    assert_eq!(conn.close_code_sent(), Some(4001));
    // An echo of an empty close counts as 1005; of a coded one, that code.
    let mut conn = server();
    events(&mut conn, &frame(true, CLOSE, b""));
    assert_eq!(conn.close_code_sent(), Some(close_code::NO_STATUS));
    let mut conn = server();
    events(&mut conn, &frame(true, CLOSE, &[0x0b, 0xb8]));
    assert_eq!(conn.close_code_sent(), Some(3000));
    // A failure: the error's code.
    let mut conn = server();
    fails(&mut conn, &frame(true, TEXT, b"\xff"));
    assert_eq!(conn.close_code_sent(), Some(close_code::INVALID_PAYLOAD));
    // A peer close after ours does not change it.
    let mut conn = server();
    conn.close(1001, "").unwrap();
    events(&mut conn, &frame(true, CLOSE, &[0x03, 0xe8]));
    assert_eq!(conn.close_code_sent(), Some(1001));
}

// ------------------------------------------------- permessage-deflate (RFC 7692)

/// The conformance suite's independent deflate decoder, which checks the
/// window a compressor kept to.
#[cfg(feature = "deflate")]
#[path = "conformance/puff.rs"]
mod puff;

/// `Connection` with `set_deflate`: the rules of RFC 7692 §6 and §7.2 byte
/// for byte, against a client compressor and decompressor of flate2's own
/// (raw deflate, independent of wsloop's codec).
#[cfg(feature = "deflate")]
mod deflate {
    use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
    use wsloop::proto::deflate::{negotiate, Agreed, DeflateConfig};
    use wsloop::proto::frame::{close_code, FrameError};
    use wsloop::proto::handshake::ExtensionOffer;
    use wsloop::proto::Role;
    use wsloop::proto::{Broadcast, Connection, Message, ProtocolError};
    use wsloop::Config;

    use super::frame::Frame;
    use super::sansio::Ev;
    use super::{
        assert_failed, drain, events, fails, feed, feed_chunks, frame, frames, limited, puff,
        server, BINARY, CLOSE, CONT, PING, PONG, TEXT,
    };

    const RSV1: u8 = 0x40;
    const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

    /// The agreement for one offer with these parameters, under `policy`.
    fn agree_with(
        policy: &DeflateConfig,
        params: &[(&'static str, Option<&'static str>)],
    ) -> Agreed {
        let offer = ExtensionOffer {
            name: "permessage-deflate",
            params: params.to_vec(),
        };
        negotiate(&[offer], policy).expect("offer accepted")
    }

    fn agree(params: &[(&'static str, Option<&'static str>)]) -> Agreed {
        // Full windows: the answers follow from the offers alone.
        let mut policy = DeflateConfig::default();
        policy.server_max_window_bits = 15;
        policy.client_max_window_bits = 15;
        agree_with(&policy, params)
    }

    fn with_deflate(mut conn: Connection, agreed: Agreed) -> Connection {
        assert!(conn.set_deflate(agreed));
        conn
    }

    /// A server connection with permessage-deflate for `params`.
    fn deflate_server(params: &[(&'static str, Option<&'static str>)]) -> Connection {
        with_deflate(server(), agree(params))
    }

    /// A masked client frame with RSV1 (the first frame of a compressed message).
    fn cframe(fin: bool, opcode: u8, body: &[u8]) -> Vec<u8> {
        Frame::from_b0((u8::from(fin) << 7) | RSV1 | opcode, body).encode()
    }

    /// The client's compressor: raw deflate with a sync flush, the trailer
    /// removed (§7.2.1); kept between messages unless `reset`.
    struct Client {
        compress: Compress,
        reset: bool,
    }

    impl Client {
        fn new(level: u32, reset: bool) -> Client {
            Client {
                compress: Compress::new(Compression::new(level), false),
                reset,
            }
        }

        fn compress(&mut self, data: &[u8]) -> Vec<u8> {
            let mut out = Vec::with_capacity(data.len() + 64);
            let base = self.compress.total_in();
            loop {
                let used = (self.compress.total_in() - base) as usize;
                out.reserve(data.len() - used + 64);
                self.compress
                    .compress_vec(&data[used..], &mut out, FlushCompress::Sync)
                    .unwrap();
                if self.compress.total_in() - base == data.len() as u64
                    && out.len() < out.capacity()
                {
                    break;
                }
            }
            assert!(out.ends_with(&TRAILER));
            out.truncate(out.len() - 4);
            if self.reset {
                self.compress.reset();
            }
            out
        }
    }

    /// Inflates a message body the server sent (trailer appended) with `d`.
    fn inflate(d: &mut Decompress, body: &[u8]) -> Result<Vec<u8>, String> {
        let input = [body, &TRAILER[..]].concat();
        let mut out = Vec::with_capacity(body.len() * 8 + 64);
        let base = d.total_in();
        loop {
            let used = (d.total_in() - base) as usize;
            out.reserve(4096);
            let status = d
                .decompress_vec(&input[used..], &mut out, FlushDecompress::None)
                .map_err(|e| e.to_string())?;
            let used = (d.total_in() - base) as usize;
            if status == Status::StreamEnd || (used == input.len() && out.len() < out.capacity()) {
                return Ok(out);
            }
        }
    }

    fn fresh_inflate(body: &[u8]) -> Result<Vec<u8>, String> {
        inflate(&mut Decompress::new(false), body)
    }

    /// Compressible text of `n` bytes.
    fn text(n: usize, seed: u64) -> String {
        const WORDS: [&str; 10] = [
            "socket", "frame", "window", "deflate", "loop", "message", "the", "a", "server",
            "client",
        ];
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut s = String::with_capacity(n + 16);
        while s.len() < n {
            s.push_str(rng.choice(WORDS).unwrap());
            s.push(if rng.u8(..7) == 0 { '\n' } else { ' ' });
        }
        s.truncate(n);
        s
    }

    // RFC 7692 §7.2.3: the examples, masked as a client sends them.

    #[test]
    fn deflate_rfc_7692_examples() {
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        let said = |s: &str| vec![Ev::Text(s.into())];
        // §7.2.3.1: one frame, and the same in two fragments.
        let mut conn = deflate_server(&[]);
        assert_eq!(
            events(&mut conn, &cframe(true, TEXT, &hello)),
            said("Hello")
        );
        let two = [
            cframe(false, TEXT, &hello[..3]),
            frame(true, CONT, &hello[3..]),
        ]
        .concat();
        assert_eq!(events(&mut conn, &two), said("Hello"));
        // §7.2.3.2: the second "Hello" refers back into the first.
        let mut conn = deflate_server(&[]);
        assert_eq!(
            events(&mut conn, &cframe(true, TEXT, &hello)),
            said("Hello")
        );
        let again = [0xf2, 0x00, 0x11, 0x00, 0x00];
        assert_eq!(
            events(&mut conn, &cframe(true, TEXT, &again)),
            said("Hello")
        );
        // ...which without context takeover has nothing to refer to: 1007.
        let mut conn = deflate_server(&[("client_no_context_takeover", None)]);
        assert_eq!(
            events(&mut conn, &cframe(true, TEXT, &hello)),
            said("Hello")
        );
        let e = fails(&mut conn, &cframe(true, TEXT, &again));
        assert_failed(&mut conn, e, ProtocolError::InvalidCompressedData);
        // §7.2.3.3: a stored block; §7.2.3.4: a final block and a padding
        // byte; §7.2.3.5: two blocks.
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        let bfinal = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        let blocks = [
            0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
        ];
        let mut conn = deflate_server(&[]);
        for body in [&stored[..], &bfinal, &bfinal[..7], &blocks, &hello] {
            assert_eq!(
                events(&mut conn, &cframe(true, TEXT, body)),
                said("Hello"),
                "{body:02x?}"
            );
        }
        assert_eq!(drain(&mut conn), b"");
    }

    // §6.1: where RSV1 may be.

    #[test]
    fn deflate_rsv1_on_a_continuation_is_1002() {
        let body = Client::new(6, false).compress(text(300, 1).as_bytes());
        for first in [
            cframe(false, TEXT, &body[..10]),
            frame(false, TEXT, b"plain"),
        ] {
            let mut conn = deflate_server(&[]);
            let cont = Frame::from_b0(0x80 | RSV1 | CONT, &body[10..]).encode();
            let e = fails(&mut conn, &[first, cont].concat());
            assert_failed(&mut conn, e, ProtocolError::CompressedContinuation);
            assert_eq!(e.close_code(), close_code::PROTOCOL_ERROR);
        }
        // The close frame, byte for byte.
        let mut conn = deflate_server(&[]);
        fails(&mut conn, &Frame::from_b0(0x80 | RSV1 | CONT, b"").encode());
        let reason = b"continuation frame with RSV1 set";
        let mut close = vec![0x88, 2 + reason.len() as u8, 0x03, 0xea];
        close.extend_from_slice(reason);
        assert_eq!(drain(&mut conn), close);
    }

    #[test]
    fn deflate_rsv1_on_a_control_frame_is_1002() {
        for op in [PING, PONG, CLOSE] {
            let payload: &[u8] = if op == CLOSE { &[0x03, 0xe8] } else { b"x" };
            let control = Frame::from_b0(0x80 | RSV1 | op, payload).encode();
            let mut conn = deflate_server(&[]);
            let e = fails(&mut conn, &control);
            assert_failed(&mut conn, e, ProtocolError::CompressedControl);
            // Between the frames of a compressed message too.
            let mut conn = deflate_server(&[]);
            let first = cframe(false, BINARY, &[0xf2, 0x48]);
            let e = fails(&mut conn, &[first, control].concat());
            assert_failed(&mut conn, e, ProtocolError::CompressedControl);
        }
    }

    #[test]
    fn deflate_rsv1_without_the_extension_and_rsv2_rsv3_with_it_are_1002() {
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        let mut conn = server();
        assert_eq!(conn.extensions(), None);
        let e = fails(&mut conn, &cframe(true, TEXT, &hello));
        assert_failed(
            &mut conn,
            e,
            ProtocolError::Frame(FrameError::ReservedBits(0b100)),
        );
        for (bits, rsv) in [(0x20, 0b010), (0x10, 0b001), (0x60, 0b110), (0x70, 0b111)] {
            let mut conn = deflate_server(&[]);
            let e = fails(&mut conn, &Frame::from_b0(0x81 | bits, hello).encode());
            assert_failed(
                &mut conn,
                e,
                ProtocolError::Frame(FrameError::ReservedBits(rsv)),
            );
        }
    }

    #[test]
    fn deflate_invalid_data_is_1007() {
        let garbage: [&[u8]; 5] = [
            &[0xff],
            &[0x07, 0x00],
            &[0x00, 0x05, 0x00, 0x00, 0x00],
            &[0xfc, 0xff, 0xff, 0xff, 0xff],
            // A fixed block whose first code is a back reference.
            &[0x03, 0x02],
        ];
        for body in garbage {
            for op in [TEXT, BINARY] {
                let mut conn = deflate_server(&[]);
                let e = fails(&mut conn, &cframe(true, op, body));
                assert_failed(&mut conn, e, ProtocolError::InvalidCompressedData);
                assert_eq!(e.close_code(), close_code::INVALID_PAYLOAD);
            }
        }
    }

    #[test]
    fn deflate_invalid_utf8_after_inflating_is_1007_and_fails_fast() {
        let mut conn = deflate_server(&[]);
        let body = Client::new(6, false).compress(b"abc\xff");
        let e = fails(&mut conn, &cframe(true, TEXT, &body));
        assert_failed(&mut conn, e, ProtocolError::InvalidUtf8);
        // An invalid byte early in a long text: the message is refused
        // before the rest of it arrives.
        let mut msg = b"\xc3\x28".to_vec();
        msg.extend_from_slice(text(200_000, 2).as_bytes());
        let body = Client::new(1, false).compress(&msg);
        let input = cframe(true, TEXT, &body);
        let mut conn = deflate_server(&[]);
        let fed = feed_chunks(&mut conn, &input.chunks(256).collect::<Vec<_>>()[..2]);
        assert_eq!(fed.error, Some(ProtocolError::InvalidUtf8));
        // Valid binary with the same bytes is fine.
        let mut conn = deflate_server(&[]);
        let fed = feed(&mut conn, &cframe(true, BINARY, &body));
        assert_eq!(fed.events, [Ev::Binary(msg)]);
    }

    /// A deflate bomb: 16 MiB of zeros in about 16 KiB, against a 1 MiB
    /// message limit. The read that passes the limit fails with 1009 long
    /// before the end of the data; in fragments the same.
    #[test]
    fn deflate_bomb_is_1009_without_inflating_it_all() {
        let zeros = vec![0u8; 16 << 20];
        let bomb = Client::new(9, false).compress(&zeros);
        assert!(bomb.len() < 20 * 1024, "{}", bomb.len());
        let limit = 1 << 20;
        let too_big = ProtocolError::MessageTooBig {
            size: limit as u64 + 1,
            limit,
        };
        for input in [
            cframe(true, BINARY, &bomb),
            [
                cframe(false, BINARY, &bomb[..100]),
                frame(false, CONT, &bomb[100..5000]),
                frame(true, CONT, &bomb[5000..]),
            ]
            .concat(),
        ] {
            let mut conn = with_deflate(limited(1 << 20, limit), agree(&[]));
            let mut fed_bytes = 0;
            let mut error = None;
            'feed: for chunk in input.chunks(512) {
                let mut buf = chunk.to_vec();
                let mut pos = 0;
                // A call returns at a fragment's end: the rest is fed again.
                while pos < buf.len() {
                    match conn.read(&mut buf[pos..]) {
                        Ok((used, event)) => {
                            assert!(used > 0 && event.is_none());
                            pos += used;
                            fed_bytes += used;
                        }
                        Err(e) => {
                            error = Some(e);
                            break 'feed;
                        }
                    }
                }
            }
            let e = error.expect("the bomb is refused");
            assert!(
                fed_bytes < input.len() / 8,
                "{fed_bytes} of {} bytes",
                input.len()
            );
            assert_failed(&mut conn, e, too_big);
            assert_eq!(e.close_code(), close_code::MESSAGE_TOO_BIG);
        }
    }

    /// The message limit counts inflated bytes; the compressed frame on the
    /// wire gets a little slack (stored blocks grow data) and no more.
    #[test]
    fn deflate_limits() {
        let limit = 1000;
        for (len, ok) in [(1000, true), (1001, false)] {
            let body = Client::new(6, false).compress(&vec![b'a'; len]);
            let mut conn = with_deflate(limited(limit, limit), agree(&[]));
            let fed = feed(&mut conn, &cframe(true, BINARY, &body));
            if ok {
                assert_eq!(fed.events, [Ev::Binary(vec![b'a'; len])]);
            } else {
                let e = fed.error.expect("too big");
                assert_failed(
                    &mut conn,
                    e,
                    ProtocolError::MessageTooBig { size: 1001, limit },
                );
            }
        }
        // Level 0 (stored blocks): a little longer than the data, still fine.
        let data = text(1000, 3);
        let stored = Client::new(0, false).compress(data.as_bytes());
        assert!(stored.len() > 1000);
        let mut conn = with_deflate(limited(limit, limit), agree(&[]));
        assert_eq!(
            events(&mut conn, &cframe(true, TEXT, &stored)),
            [Ev::Text(data)]
        );
        // A header announcing more than limit + limit/8 + 1024 is refused at once.
        let slack = limit + limit / 8 + 1024;
        let mut conn = with_deflate(limited(limit, limit), agree(&[]));
        let head = super::header(0x80 | RSV1 | BINARY, slack as u64 + 1);
        let e = fails(&mut conn, &head);
        assert_failed(
            &mut conn,
            e,
            ProtocolError::FrameTooBig {
                size: slack as u64 + 1,
                limit: slack,
            },
        );
    }

    /// Empty messages: `00`, and no payload at all, in one frame or two;
    /// the window is untouched by them (the RFC's second "Hello" still
    /// refers back into the first).
    #[test]
    fn deflate_empty_messages() {
        let mut conn = deflate_server(&[]);
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(
            events(&mut conn, &cframe(true, TEXT, &hello)),
            [Ev::Text("Hello".into())]
        );
        for op in [TEXT, BINARY] {
            let empty = if op == TEXT {
                Ev::Text(String::new())
            } else {
                Ev::Binary(vec![])
            };
            for body in [&[0x00][..], &[]] {
                let one = cframe(true, op, body);
                let two = [cframe(false, op, &[]), frame(true, CONT, body)].concat();
                for input in [one, two] {
                    assert_eq!(events(&mut conn, &input), std::slice::from_ref(&empty));
                }
            }
        }
        let again = [0xf2, 0x00, 0x11, 0x00, 0x00];
        assert_eq!(
            events(&mut conn, &cframe(true, TEXT, &again)),
            [Ev::Text("Hello".into())]
        );
        assert_eq!(drain(&mut conn), b"");
    }

    /// Compressed messages in fragments, with pings between, under context
    /// takeover both ways, cut into two reads at every byte: the same
    /// events every time. And a byte at a time.
    #[test]
    fn deflate_split_at_every_byte() {
        let mut client = Client::new(6, false);
        let a = text(400, 4);
        let b: Vec<u8> = (0..300u32).map(|i| (i * 7 % 256) as u8).collect();
        let body_a = client.compress(a.as_bytes());
        let body_b = client.compress(&b);
        let body_a2 = client.compress(a.as_bytes()); // refers back
        assert!(body_a2.len() * 4 < body_a.len());
        let input = [
            cframe(false, TEXT, &body_a[..50]),
            frame(true, PING, b"p"),
            frame(false, CONT, &body_a[50..51]),
            frame(true, CONT, &body_a[51..]),
            cframe(true, BINARY, &body_b),
            cframe(false, TEXT, &[]),
            frame(true, CONT, &body_a2),
        ]
        .concat();
        let want = [
            Ev::Ping(b"p".to_vec()),
            Ev::Text(a.clone()),
            Ev::Binary(b.clone()),
            Ev::Text(a.clone()),
        ];
        for cut in 0..=input.len() {
            let mut conn = deflate_server(&[]);
            let fed = feed_chunks(&mut conn, &[&input[..cut], &input[cut..]]);
            assert_eq!(fed.error, None, "cut {cut}");
            assert_eq!(fed.events, want, "cut {cut}");
            assert_eq!(fed.borrowed, [false; 3], "inflated messages are owned");
        }
        let mut conn = deflate_server(&[]);
        let fed = feed_chunks(&mut conn, &input.chunks(1).collect::<Vec<_>>());
        assert_eq!(fed.events, want);
        // The pong, and nothing else, went out.
        assert_eq!(drain(&mut conn), b"\x8a\x01p");
    }

    // Sending.

    /// Messages of at least the threshold (64 bytes by default) go out
    /// compressed with RSV1; shorter ones as they are. `header_for` gives
    /// the header of the uncompressed frame `send` writes, and `None` for
    /// one that goes out compressed.
    #[test]
    fn deflate_send_threshold_and_header_for() {
        let mut conn = deflate_server(&[]);
        // Context takeover: one decompressor reads them all, in order.
        let mut d = Decompress::new(false);
        for (len, compressed) in [
            (0, false),
            (1, false),
            (63, false),
            (64, true),
            (5000, true),
        ] {
            let data = text(len, 5);
            for msg in [Message::Text(&data), Message::Binary(data.as_bytes())] {
                let op = if matches!(msg, Message::Text(_)) {
                    TEXT
                } else {
                    BINARY
                };
                let header = conn.header_for(&msg);
                conn.send(msg).unwrap();
                let out = drain(&mut conn);
                let f = frames(&out);
                assert_eq!(f.len(), 1);
                assert!(!f[0].masked);
                if compressed {
                    assert_eq!(header, None, "{len} bytes");
                    assert_eq!(f[0].b0, 0x80 | RSV1 | op, "{len} bytes");
                    assert!(!f[0].payload.ends_with(&TRAILER));
                    assert_eq!(inflate(&mut d, &f[0].payload).unwrap(), data.as_bytes());
                } else {
                    assert_eq!(f[0].b0, 0x80 | op, "{len} bytes");
                    assert_eq!(f[0].payload, data.as_bytes());
                    let (head, n) = header.expect("a plain frame's header");
                    assert_eq!(&head[..n], &out[..out.len() - len]);
                }
            }
        }
        // A plain connection never compresses.
        let mut conn = server();
        let data = text(5000, 5);
        assert!(conn.header_for(&Message::Text(&data)).is_some());
        conn.send(Message::Text(&data)).unwrap();
        assert_eq!(frames(&drain(&mut conn))[0].b0, 0x81);
        // Threshold 0: every message is tried, and what deflate does not
        // shrink goes out as is: the empty message (`00`, one byte) and
        // "Hello" (7 bytes, RFC 7692 §7.2.3.1); a repetitive one shrinks.
        let mut policy = DeflateConfig::default();
        policy.compress_threshold = 0;
        let mut conn = with_deflate(server(), agree_with(&policy, &[]));
        assert_eq!(conn.header_for(&Message::Text("")), None);
        conn.send(Message::Text("")).unwrap();
        assert_eq!(drain(&mut conn), [0x81, 0x00]);
        conn.send(Message::Text("Hello")).unwrap();
        assert_eq!(drain(&mut conn), b"\x81\x05Hello");
        conn.send(Message::Text("HelloHelloHello")).unwrap();
        let out = drain(&mut conn);
        assert_eq!(out[0], 0xc1);
        assert!(out.len() < 2 + 15, "{out:?}");
        // The compressor was reset after the messages it did not shrink,
        // so a fresh decompressor reads this one.
        let mut d = Decompress::new(false);
        assert_eq!(inflate(&mut d, &out[2..]).unwrap(), b"HelloHelloHello");
    }

    /// Random bytes do not shrink: above the threshold they still go out
    /// uncompressed (RSV1 clear), on a connection and in a broadcast, and
    /// the compressible message after them is compressed again.
    #[test]
    fn deflate_incompressible_messages_go_out_as_is() {
        let mut noise = vec![0u8; 4096];
        fastrand::Rng::with_seed(0x9e37_79b9_7f4a_7c15).fill(&mut noise);
        let mut conn = deflate_server(&[]);
        conn.send(Message::Binary(&noise)).unwrap();
        let f = frames(&drain(&mut conn));
        assert_eq!(f[0].b0, 0x82);
        assert_eq!(f[0].payload, noise);
        let data = text(2000, 7);
        conn.send(Message::Text(&data)).unwrap();
        let f = frames(&drain(&mut conn));
        assert_eq!(f[0].b0, 0x80 | RSV1 | TEXT);
        let mut d = Decompress::new(false);
        assert_eq!(inflate(&mut d, &f[0].payload).unwrap(), data.as_bytes());

        let mut shared = deflate_server(&[("server_no_context_takeover", None)]);
        let mut b = Broadcast::new(Message::Binary(&noise));
        shared.send_broadcast(&mut b).unwrap();
        let f = frames(&drain(&mut shared));
        assert_eq!(f[0].b0, 0x82);
        assert_eq!(f[0].payload, noise);
    }

    /// With context takeover a repeated message compresses to a fraction
    /// of the first, and only a decompressor that kept the window reads it;
    /// without (`server_no_context_takeover`) every copy is the same bytes
    /// and each decompresses alone.
    #[test]
    fn deflate_context_takeover_on_send() {
        let data = text(2000, 6);
        let mut conn = deflate_server(&[]);
        let mut bodies = Vec::new();
        for _ in 0..3 {
            conn.send(Message::Text(&data)).unwrap();
            bodies.push(frames(&drain(&mut conn)).remove(0).payload);
        }
        // (Level 1, the default, finds about a third of the repeat.)
        assert!(
            bodies[1].len() * 2 < bodies[0].len(),
            "{} vs {}",
            bodies[1].len(),
            bodies[0].len()
        );
        let mut d = Decompress::new(false);
        for body in &bodies {
            assert_eq!(inflate(&mut d, body).unwrap(), data.as_bytes());
        }
        assert!(
            fresh_inflate(&bodies[1]).is_err(),
            "the repeat needs the window"
        );

        let mut conn = deflate_server(&[("server_no_context_takeover", None)]);
        let mut bodies = Vec::new();
        for _ in 0..3 {
            conn.send(Message::Text(&data)).unwrap();
            bodies.push(frames(&drain(&mut conn)).remove(0).payload);
        }
        assert!(bodies[0] == bodies[1] && bodies[1] == bodies[2]);
        assert_eq!(fresh_inflate(&bodies[2]).unwrap(), data.as_bytes());
    }

    /// The server compresses within its agreed window: with
    /// `server_max_window_bits=9` no back reference reaches past 512 bytes
    /// (checked by the conformance suite's independent decoder), while with
    /// 15 bits the same messages do.
    #[test]
    fn deflate_server_window_is_kept() {
        // 700 bytes, 300 others, the 700 again: 1000 bytes back.
        let block = text(700, 7);
        let data = format!("{block}{}{block}", text(300, 8));
        for (bits, params) in [
            (9u8, &[("server_max_window_bits", Some("9"))][..]),
            (10, &[("server_max_window_bits", Some("10"))][..]),
            (15, &[][..]),
        ] {
            let mut conn = deflate_server(params);
            let mut history = Vec::new();
            let mut longest = 0;
            for _ in 0..3 {
                conn.send(Message::Text(&data)).unwrap();
                let body = frames(&drain(&mut conn)).remove(0).payload;
                let input = [&body[..], &TRAILER].concat();
                let got = puff::inflate(&history, bits, &input)
                    .unwrap_or_else(|e| panic!("{bits} bits: {e}"));
                assert_eq!(got.data, data.as_bytes());
                longest = longest.max(got.max_distance);
                history.extend_from_slice(&got.data);
            }
            assert!(longest <= 1 << bits, "{bits} bits: {longest}");
            if bits == 15 {
                assert!(longest >= 1000, "15 bits reach back {longest}");
            }
        }
    }

    /// Broadcast: connections whose server keeps no context share one
    /// compressed frame per (window, level), byte for byte and in memory;
    /// connections with context takeover get a frame of their own (the
    /// first like the shared one, later ones shorter); plain connections
    /// and short messages share the plain frame.
    #[test]
    fn deflate_broadcast_shares_frames_without_context_takeover() {
        let nct = || deflate_server(&[("server_no_context_takeover", None)]);
        let nct9 = || {
            deflate_server(&[
                ("server_no_context_takeover", None),
                ("server_max_window_bits", Some("9")),
            ])
        };
        let mut conns = [
            nct(),
            nct(),
            nct9(),
            nct9(),
            deflate_server(&[]),
            deflate_server(&[]),
            server(),
        ];
        let data = text(3000, 9);
        let mut firsts: Vec<Vec<u8>> = Vec::new();
        let mut decoders: Vec<Decompress> =
            (0..conns.len()).map(|_| Decompress::new(false)).collect();
        for round in 0..2 {
            let mut b = Broadcast::new(Message::Text(&data));
            let mut fronts = Vec::new();
            for c in conns.iter_mut() {
                c.send_broadcast(&mut b).unwrap();
                let front = c.outgoing().front();
                fronts.push((front.as_ptr(), front.len(), front.to_vec()));
            }
            let shared =
                |i: usize, j: usize| fronts[i].0 == fronts[j].0 && fronts[i].1 == fronts[j].1;
            assert!(shared(0, 1) && shared(2, 3), "round {round}");
            assert!(!shared(0, 2) && !shared(4, 5) && !shared(0, 4) && !shared(0, 6));
            assert_ne!(
                fronts[0].2, fronts[2].2,
                "9 and 15 bits give different frames"
            );
            for (i, c) in conns.iter_mut().enumerate() {
                let out = drain(c);
                let f = frames(&out).remove(0);
                if i == 6 {
                    assert_eq!(out, super::server_frame(TEXT, data.as_bytes()));
                    continue;
                }
                assert_eq!(f.b0, 0x80 | RSV1 | TEXT);
                assert_eq!(
                    inflate(&mut decoders[i], &f.payload).unwrap(),
                    data.as_bytes(),
                    "conn {i}"
                );
                if round == 0 {
                    firsts.push(out);
                } else if i < 4 {
                    assert_eq!(out, firsts[i], "conn {i}: the same frame again");
                } else {
                    assert!(
                        out.len() * 2 < firsts[i].len(),
                        "conn {i}: the repeat refers back"
                    );
                }
            }
            if round == 0 {
                assert_eq!(
                    firsts[4], firsts[0],
                    "the first takeover frame is the shared one's bytes"
                );
            }
        }
        // A short message: everyone gets the one plain frame (copied: it
        // is under COPY_SHARED_UP_TO).
        let mut b = Broadcast::new(Message::Binary(b"short"));
        for c in conns.iter_mut() {
            c.send_broadcast(&mut b).unwrap();
            assert_eq!(c.outgoing().front(), b"\x82\x05short");
        }
        // Each connection's own sends after the broadcast still decode.
        for (i, c) in conns.iter_mut().enumerate().take(6) {
            drain(c);
            c.send(Message::Text(&data)).unwrap();
            let f = frames(&drain(c)).remove(0);
            assert_eq!(
                inflate(&mut decoders[i], &f.payload).unwrap(),
                data.as_bytes()
            );
        }
    }

    /// `client_no_context_takeover`: the server's decompressor starts
    /// afresh with each message, so a client that kept its window anyway
    /// sends data that refers to nothing: 1007. Without it, fine.
    #[test]
    fn deflate_client_no_context_takeover_resets_the_server() {
        let data = text(2000, 10);
        let mut client = Client::new(6, false);
        let first = client.compress(data.as_bytes());
        let second = client.compress(data.as_bytes());
        let mut conn = deflate_server(&[]);
        assert_eq!(
            events(&mut conn, &cframe(true, TEXT, &first)),
            [Ev::Text(data.clone())]
        );
        assert_eq!(
            events(&mut conn, &cframe(true, TEXT, &second)),
            [Ev::Text(data.clone())]
        );
        let mut conn = deflate_server(&[("client_no_context_takeover", None)]);
        assert_eq!(
            events(&mut conn, &cframe(true, TEXT, &first)),
            [Ev::Text(data.clone())]
        );
        let e = fails(&mut conn, &cframe(true, TEXT, &second));
        assert_failed(&mut conn, e, ProtocolError::InvalidCompressedData);
        // A client that resets as agreed is read message after message.
        let mut client = Client::new(6, true);
        let mut conn = deflate_server(&[("client_no_context_takeover", None)]);
        for _ in 0..3 {
            let body = client.compress(data.as_bytes());
            assert_eq!(
                events(&mut conn, &cframe(true, TEXT, &body)),
                [Ev::Text(data.clone())]
            );
        }
    }

    /// The agreement is the server's side only: a client-role connection
    /// refuses it; a server connection reports it and its answer.
    #[test]
    fn deflate_set_deflate_and_extensions() {
        let agreed = agree(&[
            ("server_no_context_takeover", None),
            ("client_max_window_bits", Some("10")),
        ]);
        let answer = "permessage-deflate; server_no_context_takeover; client_max_window_bits=10";
        assert_eq!(agreed.response(), answer);
        let mut client = Connection::new(Role::Client, &Config::default());
        assert!(!client.set_deflate(agreed.clone()));
        assert_eq!(client.extensions(), None);
        assert_eq!(client.deflate(), None);
        let conn = with_deflate(server(), agreed.clone());
        assert_eq!(conn.extensions(), Some(answer));
        assert_eq!(conn.deflate(), Some(&agreed));
    }
}

#[test]
fn may_read_close_sees_a_close_begun_in_an_earlier_read() {
    let mut conn = server();
    let close = Frame::close(1000, "bye").encode();
    let msg = Frame::text("hi").encode();
    assert!(conn.may_read_close(&close));
    assert!(!conn.may_read_close(&msg));
    assert!(!conn.may_read_close(&[]));
    // One byte of the header held: the next input is the header's rest.
    feed(&mut conn, &close[..1]);
    assert!(conn.may_read_close(&close[1..]));
    // The header whole, the payload partly read: a close in progress.
    let mut conn = server();
    feed(&mut conn, &close[..close.len() - 2]);
    assert!(conn.may_read_close(&close[close.len() - 2..]));
    // A text frame in progress whose next byte only looks like a close.
    let mut conn = server();
    feed(&mut conn, &msg[..msg.len() - 1]);
    assert!(!conn.may_read_close(&[0x88]));
    feed(&mut conn, &msg[msg.len() - 1..]);
    assert!(conn.may_read_close(&[0x88]));
}
