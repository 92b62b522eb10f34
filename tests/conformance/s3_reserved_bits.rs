//! Section 3, reserved bits: with no extension negotiated, any RSV bit
//! fails the connection with 1002. A valid message before the bad frame is
//! still echoed (Autobahn's strict verdict), and nothing after it is
//! answered: the next frame is the close.

use crate::client::{Chop, Frame};
use crate::open;

fn bad_rsv_alone(frame: Frame) {
    let mut c = open();
    c.send(&[frame], Chop::Whole);
    c.expect_failed(&[1002]);
}

/// A text message, the same with `rsv` set, then a ping: the first is
/// echoed, the second fails the connection, the ping gets no pong.
fn echo_then_bad_rsv(rsv: u8, chop: Chop) {
    let mut c = open();
    c.send(
        &[
            Frame::text("Hello, world!"),
            Frame::text("Hello, world!").rsv(rsv),
            Frame::ping(b""),
        ],
        chop,
    );
    c.expect_text("Hello, world!");
    c.expect_failed(&[1002]);
}

#[test]
fn case_3_1() {
    bad_rsv_alone(Frame::text("Hello, world!").rsv(1));
}

#[test]
fn case_3_2() {
    echo_then_bad_rsv(2, Chop::Whole);
}

#[test]
fn case_3_3() {
    echo_then_bad_rsv(3, Chop::PerFrame);
}

#[test]
fn case_3_4() {
    echo_then_bad_rsv(4, Chop::Bytes(1));
}

#[test]
fn case_3_5() {
    bad_rsv_alone(Frame::binary(b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff").rsv(5));
}

#[test]
fn case_3_6() {
    bad_rsv_alone(Frame::ping(b"Hello, world!").rsv(6));
}

#[test]
fn case_3_7() {
    bad_rsv_alone(Frame::close(1000, "").rsv(7));
}

// --- beyond Autobahn ---

/// Every RSV combination on every kind of frame, including a continuation
/// frame inside a fragmented message.
#[test]
fn extra_3_every_rsv_combination_on_every_opcode() {
    for rsv in 1..8u8 {
        for frame in [
            Frame::text("t"),
            Frame::binary(b"b"),
            Frame::ping(b"p"),
            Frame::pong(b"p"),
            Frame::close(1000, ""),
        ] {
            bad_rsv_alone(frame.rsv(rsv));
        }
        let mut c = open();
        c.send(
            &[
                Frame::text("first").fin(false),
                Frame::cont("second").rsv(rsv),
            ],
            Chop::Whole,
        );
        c.expect_failed(&[1002]);
    }
}
