//! Section 1, framing: text (1.1) and binary (1.2) messages of every length
//! form, each echoed and closed cleanly; then checks beyond Autobahn.

use crate::client::{Chop, Frame, LenForm, BINARY, TEXT};
use crate::open;

/// Sends one message in one frame, expects it back and a clean close.
fn echo(opcode: u8, payload: Vec<u8>, chop: Chop) {
    let mut c = open();
    c.send(&[Frame::new(opcode, payload.clone())], chop);
    c.expect_message(opcode, &payload);
    c.close_cleanly();
}

fn text(len: usize, chop: Chop) {
    echo(TEXT, vec![b'*'; len], chop);
}

fn binary(len: usize, chop: Chop) {
    echo(BINARY, vec![0xfe; len], chop);
}

#[test]
fn case_1_1_1() {
    text(0, Chop::Whole);
}

#[test]
fn case_1_1_2() {
    text(125, Chop::Whole);
}

#[test]
fn case_1_1_3() {
    text(126, Chop::Whole);
}

#[test]
fn case_1_1_4() {
    text(127, Chop::Whole);
}

#[test]
fn case_1_1_5() {
    text(128, Chop::Whole);
}

#[test]
fn case_1_1_6() {
    text(65535, Chop::Whole);
}

#[test]
fn case_1_1_7() {
    text(65536, Chop::Whole);
}

#[test]
fn case_1_1_8() {
    text(65536, Chop::Bytes(997));
}

#[test]
fn case_1_2_1() {
    binary(0, Chop::Whole);
}

#[test]
fn case_1_2_2() {
    binary(125, Chop::Whole);
}

#[test]
fn case_1_2_3() {
    binary(126, Chop::Whole);
}

#[test]
fn case_1_2_4() {
    binary(127, Chop::Whole);
}

#[test]
fn case_1_2_5() {
    binary(128, Chop::Whole);
}

#[test]
fn case_1_2_6() {
    binary(65535, Chop::Whole);
}

#[test]
fn case_1_2_7() {
    binary(65536, Chop::Whole);
}

#[test]
fn case_1_2_8() {
    binary(65536, Chop::Bytes(997));
}

// --- beyond Autobahn ---

#[test]
fn extra_1_text_65537() {
    text(65537, Chop::Whole);
}

#[test]
fn extra_1_binary_65537() {
    binary(65537, Chop::Whole);
}

/// The largest message the default configuration takes.
#[test]
fn extra_1_text_16mib() {
    text(16 << 20, Chop::Whole);
}

#[test]
fn extra_1_binary_16mib() {
    binary(16 << 20, Chop::Whole);
}

/// Every length form, written one byte at a time (the large ones in odd
/// chops, so headers and payloads are cut everywhere).
#[test]
fn extra_1_every_length_form_chopped() {
    for len in [0, 1, 125, 126, 127, 128, 300] {
        text(len, Chop::Bytes(1));
        binary(len, Chop::Bytes(1));
    }
    for len in [65535, 65536, 65537] {
        text(len, Chop::Bytes(3));
        binary(len, Chop::Bytes(61));
    }
}

/// §5.2 binds senders to the minimal length form; a receiver reads the
/// longer ones, and the echo comes back in the minimal form (checked by
/// the client's frame reader).
#[test]
fn extra_1_non_minimal_length_forms_are_read() {
    let mut c = open();
    for (len, form) in [
        (0, LenForm::Ext16),
        (5, LenForm::Ext16),
        (125, LenForm::Ext16),
        (0, LenForm::Ext64),
        (5, LenForm::Ext64),
        (126, LenForm::Ext64),
        (65535, LenForm::Ext64),
    ] {
        let payload = vec![0xab; len];
        c.send(&[Frame::binary(&payload).len_form(form)], Chop::Whole);
        c.expect_binary(&payload);
    }
    c.close_cleanly();
}

/// Masking keys are arbitrary, including all zeros and all ones.
#[test]
fn extra_1_any_masking_key() {
    let mut c = open();
    for key in [[0, 0, 0, 0], [0xff; 4], [1, 2, 3, 4], [0x80, 0, 0x7f, 0xff]] {
        let payload: Vec<u8> = (0..=255).collect();
        c.send(&[Frame::binary(&payload).mask(Some(key))], Chop::Whole);
        c.expect_binary(&payload);
    }
    c.close_cleanly();
}

/// §5.1: the server fails the connection on an unmasked client frame.
#[test]
fn extra_1_unmasked_frame_fails_1002() {
    let mut c = open();
    c.send(&[Frame::text("Hello, world!").mask(None)], Chop::Whole);
    c.expect_failed(&[1002]);
}

/// §5.2: the most significant bit of a 64-bit length must be 0.
#[test]
fn extra_1_length_with_top_bit_fails_1002() {
    let mut c = open();
    let mut frame = Frame::binary(b"").announce(1 << 63).header();
    frame.extend_from_slice(b"abcd");
    c.send_raw(&frame, Chop::Whole);
    c.expect_failed(&[1002]);
}
