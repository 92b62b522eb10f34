//! Section 7, close handling: the client starts the closing handshake in
//! every case; the server echoes a valid close code (1000 for an empty
//! close is Autobahn's other accepted answer), ignores whatever follows the
//! close, answers an invalid close frame with 1002 (1007 for a reason that
//! is not UTF-8), and closes the TCP connection first.

use crate::client::{repeated, Chop, Frame, CLOSE};
use crate::s6_utf8::groups;
use crate::{open, EchoServer};

/// The close codes a close frame may carry on the wire: RFC 6455 §7.4.1
/// and §7.4.2, plus 1012-1014, which IANA's registry added since (wsloop's
/// `close_code::is_valid`). Written out here independently of the library.
fn rfc_valid(code: u32) -> bool {
    match code {
        0..=999 => false,     // §7.4.2: not used
        1000..=1003 => true,  // normal, going away, protocol error, unsupported data
        1004 => false,        // reserved
        1005 | 1006 => false, // must not be set in a close frame
        1007..=1011 => true,  // invalid payload, policy, too big, extension, internal error
        1012..=1014 => true,  // IANA: service restart, try again later, bad gateway
        1015 => false,        // must not be set in a close frame (TLS)
        1016..=2999 => false, // reserved for this protocol's future revisions
        3000..=4999 => true,  // registered libraries and frameworks, private use
        _ => false,           // outside every range
    }
}

// --- 7.1: basic close behaviour ---

#[test]
fn case_7_1_1() {
    let mut c = open();
    c.send(&[Frame::text("Hello World!")], Chop::Whole);
    c.expect_text("Hello World!");
    c.close_cleanly();
}

/// What follows a close frame is ignored: nothing answers it.
fn close_then(after: Frame) {
    let mut c = open();
    c.send(&[Frame::close(1000, ""), after], Chop::Whole);
    c.expect_close_reply(&[1000]);
}

#[test]
fn case_7_1_2() {
    close_then(Frame::close_empty());
}

#[test]
fn case_7_1_3() {
    close_then(Frame::ping(b""));
}

#[test]
fn case_7_1_4() {
    close_then(Frame::text("Hello World!"));
}

#[test]
fn case_7_1_5() {
    let mut c = open();
    c.send(
        &[
            Frame::text("fragment1").fin(false),
            Frame::close(1000, ""),
            Frame::cont("fragment2"),
        ],
        Chop::Whole,
    );
    c.expect_close_reply(&[1000]);
}

/// Informational in Autobahn: a 256 KiB message, a small one, close, ping,
/// back to back. wsloop handles frames in order, so both messages come
/// back before the close (Autobahn's "OK" outcome).
#[test]
fn case_7_1_6() {
    let big = repeated(b"BAsd7&jh23", 256 << 10);
    let mut c = open();
    c.send(
        &[
            Frame::text(&big),
            Frame::text("Hello World!"),
            Frame::close(1000, ""),
            Frame::ping(b""),
        ],
        Chop::Whole,
    );
    c.expect_text(&big);
    c.expect_text("Hello World!");
    c.expect_close_reply(&[1000]);
}

// --- 7.3: close frame structure, payload length ---

#[test]
fn case_7_3_1() {
    let mut c = open();
    c.send(&[Frame::close_empty()], Chop::Whole);
    // 1005 stands for an empty close frame (Autobahn takes it or 1000).
    c.expect_close_reply(&[1005, 1000]);
}

#[test]
fn case_7_3_2() {
    let mut c = open();
    c.send(&[Frame::new(CLOSE, b"a".to_vec())], Chop::Whole);
    c.expect_close_reply(&[1002]);
}

#[test]
fn case_7_3_3() {
    let mut c = open();
    c.send(&[Frame::close(1000, "")], Chop::Whole);
    c.expect_close_reply(&[1000]);
}

#[test]
fn case_7_3_4() {
    let mut c = open();
    c.send(&[Frame::close(1000, "Hello World!")], Chop::Whole);
    c.expect_close_reply(&[1000]);
}

#[test]
fn case_7_3_5() {
    let mut c = open();
    c.send(&[Frame::close(1000, "*".repeat(123))], Chop::Whole);
    c.expect_close_reply(&[1000]);
}

#[test]
fn case_7_3_6() {
    let mut c = open();
    c.send(&[Frame::close(1000, "*".repeat(124))], Chop::Whole);
    c.expect_close_reply(&[1002]);
}

// --- 7.5: close frame structure, payload value ---

#[test]
fn case_7_5_1() {
    let mut c = open();
    let reason =
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64";
    c.send(&[Frame::close(1000, reason)], Chop::Whole);
    c.expect_close_reply(&[1002, 1007]);
}

// --- 7.7: valid close codes, echoed ---

fn valid_code(code: u16) {
    assert!(rfc_valid(code.into()));
    let mut c = open();
    c.send(&[Frame::close(code, "")], Chop::Whole);
    c.expect_close_reply(&[1000, code]);
}

#[test]
fn case_7_7_1() {
    valid_code(1000);
}

#[test]
fn case_7_7_2() {
    valid_code(1001);
}

#[test]
fn case_7_7_3() {
    valid_code(1002);
}

#[test]
fn case_7_7_4() {
    valid_code(1003);
}

#[test]
fn case_7_7_5() {
    valid_code(1007);
}

#[test]
fn case_7_7_6() {
    valid_code(1008);
}

#[test]
fn case_7_7_7() {
    valid_code(1009);
}

#[test]
fn case_7_7_8() {
    valid_code(1010);
}

#[test]
fn case_7_7_9() {
    valid_code(1011);
}

#[test]
fn case_7_7_10() {
    valid_code(3000);
}

#[test]
fn case_7_7_11() {
    valid_code(3999);
}

#[test]
fn case_7_7_12() {
    valid_code(4000);
}

#[test]
fn case_7_7_13() {
    valid_code(4999);
}

// --- 7.9: invalid close codes, answered with 1002 ---

fn invalid_code(code: u16) {
    assert!(!rfc_valid(code.into()));
    let mut c = open();
    c.send(&[Frame::close(code, "")], Chop::Whole);
    c.expect_close_reply(&[1002]);
}

#[test]
fn case_7_9_1() {
    invalid_code(0);
}

#[test]
fn case_7_9_2() {
    invalid_code(999);
}

#[test]
fn case_7_9_3() {
    invalid_code(1004);
}

#[test]
fn case_7_9_4() {
    invalid_code(1005);
}

#[test]
fn case_7_9_5() {
    invalid_code(1006);
}

#[test]
fn case_7_9_6() {
    invalid_code(1016);
}

#[test]
fn case_7_9_7() {
    invalid_code(1100);
}

#[test]
fn case_7_9_8() {
    invalid_code(2000);
}

#[test]
fn case_7_9_9() {
    invalid_code(2999);
}

// --- 7.13: codes outside every range (informational in Autobahn) ---

#[test]
fn case_7_13_1() {
    invalid_code(5000);
}

#[test]
fn case_7_13_2() {
    invalid_code(65535);
}

// --- beyond Autobahn ---

/// Every code in `range` on one server: valid ones are echoed as they are,
/// invalid ones answered with 1002; the server closes TCP every time.
fn sweep(range: std::ops::RangeInclusive<u32>) {
    let server = EchoServer::start();
    let (mut echoed, mut refused) = (0, 0);
    for code in range.clone() {
        let mut c = server.connect();
        c.send(&[Frame::close(code as u16, "sweep")], Chop::Whole);
        if rfc_valid(code) {
            c.expect_close_reply(&[code as u16]);
            echoed += 1;
        } else {
            c.expect_close_reply(&[1002]);
            refused += 1;
        }
    }
    println!(
        "SWEEP close codes {}..={}: {} codes, {echoed} echoed, {refused} refused with 1002",
        range.start(),
        range.end(),
        range.end() - range.start() + 1
    );
}

#[test]
fn extra_7_close_codes_0_to_999() {
    sweep(0..=999);
}

#[test]
fn extra_7_close_codes_1000_to_1999() {
    sweep(1000..=1999);
}

#[test]
fn extra_7_close_codes_2000_to_2999() {
    sweep(2000..=2999);
}

#[test]
fn extra_7_close_codes_3000_to_3999() {
    sweep(3000..=3999);
}

#[test]
fn extra_7_close_codes_4000_to_5000() {
    sweep(4000..=5000);
}

/// A reason of 123 bytes of multi-byte UTF-8 (the longest that fits).
#[test]
fn extra_7_longest_multibyte_reason() {
    let reason = "€".repeat(41);
    assert_eq!(reason.len(), 123);
    let mut c = open();
    c.send(&[Frame::close(1000, &reason)], Chop::Whole);
    c.expect_close_reply(&[1000]);
}

/// Every UTF-8 vector of section 6 as a close reason: valid ones are
/// echoed, invalid ones answered with 1007.
#[test]
fn extra_7_close_reasons_from_utf8_vectors() {
    let server = EchoServer::start();
    for g in groups() {
        for (valid, bytes) in g.cases {
            let mut c = server.connect();
            c.send(&[Frame::close(1000, &bytes)], Chop::Whole);
            c.expect_close_reply(if valid { &[1000] } else { &[1007] });
        }
    }
}

/// A close written one byte at a time, and a close inside a fragmented
/// message with a ping before it.
#[test]
fn extra_7_close_chopped_and_mid_message() {
    let mut c = open();
    c.send(&[Frame::close(4321, "bye")], Chop::Bytes(1));
    c.expect_close_reply(&[4321]);
    let mut c = open();
    c.send(
        &[
            Frame::binary(b"part").fin(false),
            Frame::ping(b"p"),
            Frame::close(1001, "going"),
        ],
        Chop::PerFrame,
    );
    c.expect_pong(b"p");
    c.expect_close_reply(&[1001]);
}

/// A close frame announced longer than 125 bytes fails like any control
/// frame; so does a fragmented one.
#[test]
fn extra_7_malformed_close_frames() {
    let mut c = open();
    c.send(&[Frame::close(1000, "x").fin(false)], Chop::Whole);
    c.expect_close_reply(&[1002]);
    let mut c = open();
    c.send(&[Frame::new(CLOSE, vec![0x03; 126])], Chop::Whole);
    c.expect_close_reply(&[1002]);
}
