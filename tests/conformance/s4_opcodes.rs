//! Section 4, opcodes: the reserved non-control (3-7, 4.1) and control
//! (11-15, 4.2) opcodes fail the connection with 1002, also right after a
//! valid message, which is still echoed first.

use crate::client::{Chop, Frame};
use crate::open;

fn reserved_alone(opcode: u8, payload: &[u8]) {
    let mut c = open();
    c.send(&[Frame::new(opcode, payload)], Chop::Whole);
    c.expect_failed(&[1002]);
}

fn reserved_after_message(opcode: u8, payload: &[u8], chop: Chop) {
    let mut c = open();
    c.send(
        &[
            Frame::text("Hello, world!"),
            Frame::new(opcode, payload),
            Frame::ping(b""),
        ],
        chop,
    );
    c.expect_text("Hello, world!");
    c.expect_failed(&[1002]);
}

#[test]
fn case_4_1_1() {
    reserved_alone(3, b"");
}

#[test]
fn case_4_1_2() {
    reserved_alone(4, b"reserved opcode payload");
}

#[test]
fn case_4_1_3() {
    reserved_after_message(5, b"", Chop::Whole);
}

#[test]
fn case_4_1_4() {
    reserved_after_message(6, b"Hello, world!", Chop::Whole);
}

#[test]
fn case_4_1_5() {
    reserved_after_message(7, b"Hello, world!", Chop::Bytes(1));
}

#[test]
fn case_4_2_1() {
    reserved_alone(11, b"");
}

#[test]
fn case_4_2_2() {
    reserved_alone(12, b"reserved opcode payload");
}

#[test]
fn case_4_2_3() {
    reserved_after_message(13, b"", Chop::Whole);
}

#[test]
fn case_4_2_4() {
    reserved_after_message(14, b"Hello, world!", Chop::Whole);
}

#[test]
fn case_4_2_5() {
    reserved_after_message(15, b"Hello, world!", Chop::Bytes(1));
}

// --- beyond Autobahn ---

/// Every reserved opcode, alone and after a valid message, and inside a
/// fragmented message.
#[test]
fn extra_4_every_reserved_opcode_everywhere() {
    for op in (3..=7).chain(11..=15) {
        reserved_alone(op, b"x");
        reserved_after_message(op, b"", Chop::PerFrame);
        let mut c = open();
        c.send(
            &[
                Frame::text("frag").fin(false),
                Frame::new(op, b""),
                Frame::cont("ment"),
            ],
            Chop::Whole,
        );
        c.expect_failed(&[1002]);
    }
}
