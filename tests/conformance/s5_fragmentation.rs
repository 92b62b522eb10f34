//! Section 5, fragmentation: control frames are never fragmented, control
//! frames may come between fragments and are answered at once, a
//! continuation needs a message to continue, and a new data frame may not
//! start inside a fragmented message. Violations fail with 1002.

use crate::client::{fragments, Chop, Frame, BINARY, CONT, TEXT};
use crate::open;

#[test]
fn case_5_1() {
    let mut c = open();
    c.send(
        &[
            Frame::ping(b"fragment1").fin(false),
            Frame::cont(b"fragment2"),
        ],
        Chop::Whole,
    );
    c.expect_failed(&[1002]);
}

#[test]
fn case_5_2() {
    let mut c = open();
    c.send(
        &[
            Frame::pong(b"fragment1").fin(false),
            Frame::cont(b"fragment2"),
        ],
        Chop::Whole,
    );
    c.expect_failed(&[1002]);
}

fn two_fragments(chop: Chop) {
    let mut c = open();
    c.send(
        &[
            Frame::text("fragment1").fin(false),
            Frame::cont("fragment2"),
        ],
        chop,
    );
    c.expect_text("fragment1fragment2");
    c.close_cleanly();
}

#[test]
fn case_5_3() {
    two_fragments(Chop::Whole);
}

#[test]
fn case_5_4() {
    two_fragments(Chop::PerFrame);
}

#[test]
fn case_5_5() {
    two_fragments(Chop::Bytes(1));
}

fn ping_between_fragments(chop: Chop) {
    let mut c = open();
    c.send(
        &[
            Frame::text("fragment1").fin(false),
            Frame::ping("ping payload"),
            Frame::cont("fragment2"),
        ],
        chop,
    );
    c.expect_pong("ping payload");
    c.expect_text("fragment1fragment2");
    c.close_cleanly();
}

#[test]
fn case_5_6() {
    ping_between_fragments(Chop::Whole);
}

#[test]
fn case_5_7() {
    ping_between_fragments(Chop::PerFrame);
}

#[test]
fn case_5_8() {
    ping_between_fragments(Chop::Bytes(1));
}

/// A continuation frame with nothing to continue, then a text message.
fn nothing_to_continue(fin: bool, chop: Chop) {
    let mut c = open();
    c.send(
        &[
            Frame::cont("non-continuation payload").fin(fin),
            Frame::text("Hello, world!"),
        ],
        chop,
    );
    c.expect_failed(&[1002]);
}

#[test]
fn case_5_9() {
    nothing_to_continue(true, Chop::Whole);
}

#[test]
fn case_5_10() {
    nothing_to_continue(true, Chop::PerFrame);
}

#[test]
fn case_5_11() {
    nothing_to_continue(true, Chop::Bytes(1));
}

#[test]
fn case_5_12() {
    nothing_to_continue(false, Chop::Whole);
}

#[test]
fn case_5_13() {
    nothing_to_continue(false, Chop::PerFrame);
}

#[test]
fn case_5_14() {
    nothing_to_continue(false, Chop::Bytes(1));
}

#[test]
fn case_5_15() {
    let mut c = open();
    c.send(
        &[
            Frame::text("fragment1").fin(false),
            Frame::cont("fragment2"),
            Frame::cont("fragment3").fin(false),
            Frame::text("fragment4"),
        ],
        Chop::Whole,
    );
    c.expect_text("fragment1fragment2");
    c.expect_failed(&[1002]);
}

fn repeated_bad_continuation(first_fin: bool) {
    let mut c = open();
    let mut frames = Vec::new();
    for _ in 0..2 {
        frames.push(Frame::cont("fragment1").fin(first_fin));
        frames.push(Frame::text("fragment2").fin(false));
        frames.push(Frame::cont("fragment3"));
    }
    c.send(&frames, Chop::Whole);
    c.expect_failed(&[1002]);
}

#[test]
fn case_5_16() {
    repeated_bad_continuation(false);
}

#[test]
fn case_5_17() {
    repeated_bad_continuation(true);
}

#[test]
fn case_5_18() {
    let mut c = open();
    c.send(
        &[
            Frame::text("fragment1").fin(false),
            Frame::text("fragment2"),
        ],
        Chop::Whole,
    );
    c.expect_failed(&[1002]);
}

/// The first ping is answered before the message is complete: the client
/// waits for its pong before it sends the rest (Autobahn waits 1 s and
/// checks the order of what arrived).
fn pings_answered_mid_message(chop: Chop) {
    let mut c = open();
    c.send(
        &[
            Frame::text("fragment1").fin(false),
            Frame::cont("fragment2").fin(false),
            Frame::ping("pongme 1!"),
        ],
        chop,
    );
    c.expect_pong("pongme 1!");
    c.expect_quiet();
    c.send(
        &[
            Frame::cont("fragment3").fin(false),
            Frame::cont("fragment4").fin(false),
            Frame::ping("pongme 2!"),
            Frame::cont("fragment5"),
        ],
        chop,
    );
    c.expect_pong("pongme 2!");
    c.expect_text("fragment1fragment2fragment3fragment4fragment5");
    c.close_cleanly();
}

#[test]
fn case_5_19() {
    pings_answered_mid_message(Chop::Whole);
}

#[test]
fn case_5_20() {
    pings_answered_mid_message(Chop::PerFrame);
}

// --- beyond Autobahn ---

/// Sends `payload` as exactly `count` fragments of near-equal size.
fn fragmented_echo(opcode: u8, payload: &[u8], count: usize, chop: Chop) {
    let len = payload.len();
    let frames: Vec<Frame> = (0..count)
        .map(|i| {
            let piece = &payload[i * len / count..(i + 1) * len / count];
            Frame::new(if i == 0 { opcode } else { CONT }, piece).fin(i + 1 == count)
        })
        .collect();
    let mut c = open();
    c.send(&frames, chop);
    c.expect_message(opcode, payload);
    c.close_cleanly();
}

#[test]
fn extra_5_text_and_binary_in_1_2_and_1000_fragments() {
    let text: Vec<u8> = "fragmented µ@ßöäüàá €𝄞 text ".repeat(100).into_bytes();
    let binary: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    for count in [1, 2, 1000] {
        fragmented_echo(TEXT, &text, count, Chop::Whole);
        fragmented_echo(BINARY, &binary, count, Chop::Whole);
        fragmented_echo(TEXT, &text, count, Chop::PerFrame);
        fragmented_echo(BINARY, &binary, count, Chop::Bytes(5));
    }
}

/// Empty fragments anywhere, binary too.
#[test]
fn extra_5_empty_fragments() {
    let mut c = open();
    c.send(
        &[
            Frame::binary(b"").fin(false),
            Frame::cont(b"").fin(false),
            Frame::cont(b"ab").fin(false),
            Frame::cont(b""),
        ],
        Chop::Whole,
    );
    c.expect_binary(b"ab");
    c.close_cleanly();
}

/// A ping and an unsolicited pong between each of 1000 fragments.
#[test]
fn extra_5_control_frames_between_1000_fragments() {
    let mut c = open();
    let payload: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut frames = Vec::new();
    for (i, f) in fragments(TEXT, &payload, 1).into_iter().enumerate() {
        frames.push(f);
        if i < 999 {
            frames.push(Frame::ping(format!("{i}")));
            frames.push(Frame::pong(b"unsolicited"));
        }
    }
    c.send(&frames, Chop::Whole);
    for i in 0..999 {
        c.expect_pong(format!("{i}"));
    }
    c.expect_text(&payload);
    c.close_cleanly();
}

/// A binary frame inside a fragmented text message, and the reverse.
#[test]
fn extra_5_data_frame_inside_fragmented_message() {
    for (first, second) in [(TEXT, BINARY), (BINARY, TEXT), (BINARY, BINARY)] {
        let mut c = open();
        c.send(
            &[
                Frame::new(first, b"one".to_vec()).fin(false),
                Frame::new(second, b"two".to_vec()),
            ],
            Chop::Whole,
        );
        c.expect_failed(&[1002]);
    }
}

/// Messages fragmented back to back: the assembly restarts cleanly.
#[test]
fn extra_5_consecutive_fragmented_messages() {
    let mut c = open();
    let mut frames = Vec::new();
    for i in 0..20 {
        let payload = format!("message number {i} in pieces");
        frames.extend(fragments(
            if i % 2 == 0 { TEXT } else { BINARY },
            payload.as_bytes(),
            4,
        ));
    }
    c.send(&frames, Chop::Bytes(3));
    for i in 0..20 {
        let payload = format!("message number {i} in pieces");
        c.expect_message(if i % 2 == 0 { TEXT } else { BINARY }, payload.as_bytes());
    }
    c.close_cleanly();
}
