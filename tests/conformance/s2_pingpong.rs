//! Section 2, pings and pongs: every ping is answered by a pong with the
//! same payload, in order; unsolicited pongs get nothing; a ping over 125
//! bytes fails the connection with 1002.
//!
//! Where Autobahn waits a second for a reply that must not come, these
//! cases send a close right behind and check that the close echo is the
//! next frame: the server handles frames in order, so a reply would have
//! come first.

use crate::client::{Chop, Frame};
use crate::open;

fn ping_pong(payload: &[u8], chop: Chop) {
    let mut c = open();
    c.send(&[Frame::ping(payload)], chop);
    c.expect_pong(payload);
    c.close_cleanly();
}

#[test]
fn case_2_1() {
    ping_pong(b"", Chop::Whole);
}

#[test]
fn case_2_2() {
    ping_pong(b"Hello, world!", Chop::Whole);
}

#[test]
fn case_2_3() {
    ping_pong(b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff", Chop::Whole);
}

#[test]
fn case_2_4() {
    ping_pong(&[0xfe; 125], Chop::Whole);
}

#[test]
fn case_2_5() {
    let mut c = open();
    c.send(&[Frame::ping([0xfe; 126])], Chop::Whole);
    c.expect_failed(&[1002]);
}

#[test]
fn case_2_6() {
    ping_pong(&[0xfe; 125], Chop::Bytes(1));
}

#[test]
fn case_2_7() {
    let mut c = open();
    c.send(&[Frame::pong(b""), Frame::close(1000, "")], Chop::Whole);
    c.expect_close_reply(&[1000]);
}

#[test]
fn case_2_8() {
    let mut c = open();
    c.send(
        &[
            Frame::pong(b"unsolicited pong payload"),
            Frame::close(1000, ""),
        ],
        Chop::Whole,
    );
    c.expect_close_reply(&[1000]);
}

#[test]
fn case_2_9() {
    let mut c = open();
    c.send(
        &[
            Frame::pong(b"unsolicited pong payload"),
            Frame::ping(b"ping payload"),
        ],
        Chop::Whole,
    );
    c.expect_pong(b"ping payload");
    c.close_cleanly();
}

fn ten_pings(chop: Chop) {
    let mut c = open();
    let pings: Vec<Frame> = (0..10)
        .map(|i| Frame::ping(format!("payload-{i}")))
        .collect();
    c.send(&pings, chop);
    for i in 0..10 {
        c.expect_pong(format!("payload-{i}"));
    }
    c.close_cleanly();
}

/// Ten pings in one write: ten pongs, in order.
#[test]
fn case_2_10() {
    ten_pings(Chop::Whole);
}

#[test]
fn case_2_11() {
    ten_pings(Chop::Bytes(1));
}

// --- beyond Autobahn ---

/// A ping whose 126-byte length is announced in the 64-bit form is just as
/// much too long.
#[test]
fn extra_2_ping_126_in_64_bit_form_fails_1002() {
    let mut c = open();
    c.send(
        &[Frame::ping([1; 126]).len_form(crate::client::LenForm::Ext64)],
        Chop::Whole,
    );
    c.expect_failed(&[1002]);
}

/// A pong over 125 bytes fails the connection too.
#[test]
fn extra_2_pong_126_fails_1002() {
    let mut c = open();
    c.send(&[Frame::pong([1; 126])], Chop::Whole);
    c.expect_failed(&[1002]);
}

/// Pings between data messages keep their place in the reply order.
#[test]
fn extra_2_pings_interleaved_with_messages_keep_order() {
    let mut c = open();
    let mut frames = Vec::new();
    for i in 0..50 {
        frames.push(Frame::text(format!("message {i}")));
        frames.push(Frame::ping(format!("ping {i}")));
    }
    c.send(&frames, Chop::Bytes(7));
    for i in 0..50 {
        c.expect_text(format!("message {i}"));
        c.expect_pong(format!("ping {i}"));
    }
    c.close_cleanly();
}
