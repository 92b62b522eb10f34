//! One server-role connection's state machine fed arbitrary bytes in chunks,
//! echoing every message like an echo server.
//!
//! Input layout (so that seeds stay readable):
//! - byte 0, flags: bits 0-2 = how many chunk-size bytes follow (0: the
//!   whole stream in one chunk); bit 3 = the server starts the close
//!   (1000) after the first event; bit 4 = do not echo; bit 5 = small
//!   limits (256-byte frames, 1 KiB messages) instead of 64 KiB; bit 6 =
//!   permessage-deflate agreed (RSV1 frames are compressed, echoes of 64
//!   bytes or more go out compressed); bit 7, with bit 6: no context
//!   takeover either way and a 9-bit server window;
//! - the chunk-size bytes, used in turn: `b + 1` bytes, or `(b & 0x7f + 1)
//!   * 64` when the top bit is set;
//! - the rest: the bytes from the client.
//!
//! Asserts: no panic; every `read` consumes a byte or yields an event; every
//! message is within the message limit and text is UTF-8; the bytes the
//! server queues never exceed what it read plus a constant; every error
//! closes with its own, legal, close code; once failed (or once the peer's
//! close arrived) input is swallowed and nothing more is queued; the
//! outgoing bytes are valid server frames (`common::check_server_frames`:
//! legal close codes only, nothing after the close, and wsloop's client role
//! accepts them) carrying exactly the echoes and pongs owed. With
//! permessage-deflate: a compressed message (what it inflates to) is held to
//! the message limit however small its frames; the bytes queued are bounded
//! by the input plus the echoes (a few compressed bytes can inflate to a
//! whole message); an echo goes out compressed (RSV1) only when it is at
//! least the threshold long and comes out smaller, and then inflates (with
//! a fresh decompressor per message without context takeover) to the
//! message.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use wsloop::proto::deflate::{negotiate, DeflateConfig};
use wsloop::proto::handshake::ExtensionOffer;
use wsloop::proto::Role;
use wsloop::proto::{Connection, Event, Message};
use wsloop::{close_code, Config};

/// Bytes the server may send beyond what it read: one close frame with a
/// reason, and headers.
const SLACK: usize = 256;

fn drain(conn: &mut Connection, out: &mut Vec<u8>) {
    while !conn.outgoing().is_empty() {
        let front = conn.outgoing().front().to_vec();
        assert!(!front.is_empty(), "empty front chunk with bytes queued");
        out.extend_from_slice(&front);
        conn.outgoing().consume(front.len());
    }
    assert_eq!(conn.buffered_amount(), 0);
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let n_sizes = usize::from(flags & 0x07).min(rest.len());
    let (sizes, stream) = rest.split_at(n_sizes);
    let server_closes = flags & 0x08 != 0;
    let echo = flags & 0x10 == 0;
    let mut config = Config::default();
    if flags & 0x20 != 0 {
        config.max_frame_size = 256;
        config.max_message_size = 1024;
    } else {
        config.max_frame_size = 64 * 1024;
        config.max_message_size = 64 * 1024;
    }

    let mut conn = Connection::new(Role::Server, &config);
    let deflate = flags & 0x40 != 0;
    let no_context_takeover = deflate && flags & 0x80 != 0;
    let policy = DeflateConfig::default();
    let threshold = policy.compress_threshold;
    let mut client_deflate = None;
    if deflate {
        let params = if no_context_takeover {
            vec![
                ("server_no_context_takeover", None),
                ("client_no_context_takeover", None),
                ("server_max_window_bits", Some("9")),
            ]
        } else {
            vec![("client_max_window_bits", None)]
        };
        let offer = ExtensionOffer {
            name: "permessage-deflate",
            params,
        };
        let agreed = negotiate(&[offer], &policy).expect("offer accepted");
        assert_eq!(agreed.server_no_context_takeover(), no_context_takeover);
        assert_eq!(agreed.client_no_context_takeover(), no_context_takeover);
        client_deflate = Some(common::ClientDeflate {
            server_no_context_takeover: agreed.server_no_context_takeover(),
            server_max_window_bits: agreed.server_max_window_bits(),
        });
        let response = agreed.response().to_owned();
        assert!(conn.set_deflate(agreed));
        assert_eq!(conn.extensions(), Some(response.as_str()));
    }
    // What the echoes may add to the output beyond the input's bytes: with
    // permessage-deflate a few input bytes can inflate to a whole message.
    let mut echo_budget = 0usize;
    let mut out = Vec::new();
    let mut echoed: Vec<(bool, Vec<u8>)> = Vec::new();
    let mut pongs: Vec<Vec<u8>> = Vec::new();
    let mut events = 0usize;
    let mut failed = false;

    let mut at = 0;
    let mut size_index = 0;
    while at < stream.len() {
        let size = match sizes.get(size_index % sizes.len().max(1)) {
            None => stream.len(),
            Some(&b) if b & 0x80 != 0 => (usize::from(b & 0x7f) + 1) * 64,
            Some(&b) => usize::from(b) + 1,
        };
        size_index += 1;
        let mut chunk = stream[at..(at + size).min(stream.len())].to_vec();
        at += chunk.len();

        let mut pos = 0;
        let mut calls = 0;
        while pos < chunk.len() {
            calls += 1;
            assert!(calls <= chunk.len() + 1, "read loops without progress");
            let done = failed || conn.close_received();
            let close_sent_before = conn.close_sent();
            let queued_before = conn.buffered_amount();
            let left = chunk.len() - pos;
            let result = conn.read(&mut chunk[pos..]);
            if done {
                // Input after a failure or the peer's close is swallowed.
                assert!(
                    matches!(result, Ok((n, None)) if n == left),
                    "input after the end produced {result:?}"
                );
                assert_eq!(conn.buffered_amount(), queued_before);
                pos = chunk.len();
                continue;
            }
            let (used, event) = match result {
                Ok(r) => r,
                Err(e) => {
                    failed = true;
                    assert!(conn.has_failed());
                    let code = e.close_code();
                    assert!(close_code::is_valid(code), "error {e} closes with {code}");
                    if !close_sent_before {
                        assert_eq!(conn.close_code_sent(), Some(code), "close code for {e}");
                    }
                    assert!(conn.close_sent());
                    let _ = e.to_string();
                    pos = chunk.len();
                    continue;
                }
            };
            assert!(used <= left);
            assert!(used > 0 || event.is_some(), "read made no progress");
            pos += used;
            let Some(event) = event else { continue };
            events += 1;
            match event {
                Event::Message(incoming) => {
                    let msg = incoming.message();
                    let bytes = msg.as_bytes();
                    assert!(
                        bytes.len() <= config.max_message_size,
                        "message over the limit"
                    );
                    if let Message::Text(t) = msg {
                        assert!(std::str::from_utf8(t.as_bytes()).is_ok());
                    }
                    if echo && conn.send(msg).is_ok() {
                        echoed.push((incoming.is_text(), bytes.to_vec()));
                        if deflate {
                            // The echo, sent as is at worst, and its header.
                            echo_budget += bytes.len() + 14;
                        }
                    }
                    if let Some(buf) = incoming.into_buffer() {
                        conn.recycle(buf);
                    }
                }
                Event::Ping(payload) => {
                    assert!(payload.as_bytes().len() <= 125);
                    if !close_sent_before {
                        pongs.push(payload.as_bytes().to_vec());
                    }
                }
                Event::Pong(payload) => assert!(payload.as_bytes().len() <= 125),
                Event::Close(frame) => {
                    assert!(conn.close_received());
                    assert!(
                        close_code::is_valid(frame.code) || frame.code == close_code::NO_STATUS
                    );
                    assert!(frame.reason().len() <= 123);
                    assert!(conn.close_sent(), "close not echoed");
                }
            }
            if server_closes && events == 1 && !conn.close_sent() {
                conn.close(close_code::NORMAL, "bye")
                    .expect("close while open");
                assert!(!conn.is_open());
                assert!(conn.send(Message::Text("late")).is_err());
            }
        }
        assert!(
            out.len() + conn.buffered_amount() <= at + SLACK + echo_budget,
            "queued {} bytes for {} read (echo budget {echo_budget})",
            out.len() + conn.buffered_amount(),
            at
        );
        drain(&mut conn, &mut out);
        if conn.close_sent() && (conn.close_received() || conn.has_failed()) {
            assert!(conn.is_finished());
        }
    }

    let seen = common::check_server_frames_deflate(&out, client_deflate);
    assert_eq!(seen.partial_tail, 0, "a frame cut off in the output");
    assert_eq!(seen.messages, echoed, "echoes");
    for ((_, message), wire) in seen.messages.iter().zip(&seen.compressed) {
        let len = message.len();
        // A message goes out compressed only from the threshold on, and
        // only when deflate makes it smaller (else it goes out as is).
        if let Some(n) = wire {
            assert!(deflate && len >= threshold, "{len} bytes sent compressed");
            assert!(*n < len, "{len} bytes compressed to {n}, not smaller");
        }
    }
    assert_eq!(seen.pongs, pongs, "pongs");
    assert_eq!(seen.close, conn.close_code_sent(), "close frame sent");
});
