//! Section 9, limits and performance: messages of 64 KiB to 16 MiB in one
//! frame (9.1 text, 9.2 binary), 4 MiB messages in fragments of 64 B to
//! 4 MiB (9.3, 9.4), 1 MiB messages written in chops of 64 B to 2 KiB
//! (9.5, 9.6), and 1000 round trips of 0 B to 4 KiB messages (9.7, 9.8).
//!
//! Like Autobahn, every case reports the time it took (a `METRIC` line);
//! the only bound asserted is Autobahn's own timeout for the case, which
//! proves progress, not speed.

use std::time::{Duration, Instant};

use crate::client::{fragments, repeated, Chop, Frame, BINARY, TEXT};
use crate::{metric, open};

const TEXT_PATTERN: &[u8] = b"BAsd7&jh23";
const BINARY_PATTERN: &[u8] = b"\x00\xfe\x23\xfa\xf0";

fn kind(opcode: u8) -> &'static str {
    if opcode == TEXT {
        "text"
    } else {
        "binary"
    }
}

fn size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

fn check_time(case: &str, elapsed: Duration, limit_secs: u64) {
    assert!(
        elapsed < Duration::from_secs(limit_secs),
        "{case} took {elapsed:?}, over Autobahn's {limit_secs} s"
    );
}

/// Sends `frames` (one message) cut as `chop`, expects the echo, and
/// reports the round trip.
fn round_trip(
    case: &str,
    what: String,
    opcode: u8,
    payload: &[u8],
    frames: &[Frame],
    chop: Chop,
    limit_secs: u64,
) {
    let encoded: Vec<u8> = frames.iter().flat_map(|f| f.encode()).collect();
    let mut c = open();
    let t0 = Instant::now();
    c.send_raw(&encoded, chop);
    c.expect_message(opcode, payload);
    let elapsed = t0.elapsed();
    c.close_cleanly();
    metric(case, &what, elapsed, 2 * payload.len() as u64);
    check_time(case, elapsed, limit_secs);
}

/// 9.1 / 9.2: one message of `len` bytes in one frame.
fn one_frame(case: &str, opcode: u8, len: usize, limit_secs: u64) {
    let pattern = if opcode == TEXT {
        TEXT_PATTERN
    } else {
        BINARY_PATTERN
    };
    let payload = repeated(pattern, len);
    let frame = Frame::new(opcode, payload.clone());
    let what = format!("{} message of {} in 1 frame", kind(opcode), size(len));
    round_trip(
        case,
        what,
        opcode,
        &payload,
        &[frame],
        Chop::Whole,
        limit_secs,
    );
}

/// 9.3 / 9.4: a 4 MiB message in fragments of `frag` bytes.
fn fragmented(case: &str, opcode: u8, frag: usize) {
    let payload = vec![if opcode == TEXT { b'*' } else { 0xfe }; 4 << 20];
    let frames = fragments(opcode, &payload, frag);
    let what = format!(
        "{} message of 4 MiB in {} frames of {}",
        kind(opcode),
        frames.len(),
        size(frag)
    );
    round_trip(case, what, opcode, &payload, &frames, Chop::Whole, 100);
}

/// 9.5 / 9.6: a 1 MiB message in one frame, written in chops of `chop`.
fn chopped(case: &str, opcode: u8, chop: usize) {
    let pattern = if opcode == TEXT {
        TEXT_PATTERN
    } else {
        BINARY_PATTERN
    };
    let payload = repeated(pattern, 1 << 20);
    let frame = Frame::new(opcode, payload.clone());
    let what = format!(
        "{} message of 1 MiB in 1 frame written in chops of {}",
        kind(opcode),
        size(chop)
    );
    round_trip(
        case,
        what,
        opcode,
        &payload,
        &[frame],
        Chop::Bytes(chop),
        1000,
    );
}

/// 9.7 / 9.8: `count` messages of `len` bytes, each sent once the previous
/// one came back.
fn rtt(case: &str, opcode: u8, len: usize, count: usize, limit_secs: u64) {
    let payload = vec![if opcode == TEXT { b'*' } else { 0xfe }; len];
    let frame = Frame::new(opcode, payload.clone()).encode();
    let mut c = open();
    let t0 = Instant::now();
    for _ in 0..count {
        c.send_raw(&frame, Chop::Whole);
        c.expect_message(opcode, &payload);
    }
    let elapsed = t0.elapsed();
    c.close_cleanly();
    let per = elapsed.as_secs_f64() * 1e6 / count as f64;
    metric(
        case,
        &format!(
            "{count} {} messages of {} one after another ({per:.0} µs per round trip)",
            kind(opcode),
            size(len)
        ),
        elapsed,
        2 * (count * len) as u64,
    );
    check_time(case, elapsed, limit_secs);
}

#[test]
fn case_9_1_1() {
    one_frame("case_9_1_1", TEXT, 64 << 10, 10);
}

#[test]
fn case_9_1_2() {
    one_frame("case_9_1_2", TEXT, 256 << 10, 10);
}

#[test]
fn case_9_1_3() {
    one_frame("case_9_1_3", TEXT, 1 << 20, 20);
}

#[test]
fn case_9_1_4() {
    one_frame("case_9_1_4", TEXT, 4 << 20, 60);
}

#[test]
fn case_9_1_5() {
    one_frame("case_9_1_5", TEXT, 8 << 20, 80);
}

#[test]
fn case_9_1_6() {
    one_frame("case_9_1_6", TEXT, 16 << 20, 100);
}

#[test]
fn case_9_2_1() {
    one_frame("case_9_2_1", BINARY, 64 << 10, 10);
}

#[test]
fn case_9_2_2() {
    one_frame("case_9_2_2", BINARY, 256 << 10, 10);
}

#[test]
fn case_9_2_3() {
    one_frame("case_9_2_3", BINARY, 1 << 20, 20);
}

#[test]
fn case_9_2_4() {
    one_frame("case_9_2_4", BINARY, 4 << 20, 60);
}

#[test]
fn case_9_2_5() {
    one_frame("case_9_2_5", BINARY, 8 << 20, 80);
}

#[test]
fn case_9_2_6() {
    one_frame("case_9_2_6", BINARY, 16 << 20, 100);
}

#[test]
fn case_9_3_1() {
    fragmented("case_9_3_1", TEXT, 64);
}

#[test]
fn case_9_3_2() {
    fragmented("case_9_3_2", TEXT, 256);
}

#[test]
fn case_9_3_3() {
    fragmented("case_9_3_3", TEXT, 1 << 10);
}

#[test]
fn case_9_3_4() {
    fragmented("case_9_3_4", TEXT, 4 << 10);
}

#[test]
fn case_9_3_5() {
    fragmented("case_9_3_5", TEXT, 16 << 10);
}

#[test]
fn case_9_3_6() {
    fragmented("case_9_3_6", TEXT, 64 << 10);
}

#[test]
fn case_9_3_7() {
    fragmented("case_9_3_7", TEXT, 256 << 10);
}

#[test]
fn case_9_3_8() {
    fragmented("case_9_3_8", TEXT, 1 << 20);
}

#[test]
fn case_9_3_9() {
    fragmented("case_9_3_9", TEXT, 4 << 20);
}

#[test]
fn case_9_4_1() {
    fragmented("case_9_4_1", BINARY, 64);
}

#[test]
fn case_9_4_2() {
    fragmented("case_9_4_2", BINARY, 256);
}

#[test]
fn case_9_4_3() {
    fragmented("case_9_4_3", BINARY, 1 << 10);
}

#[test]
fn case_9_4_4() {
    fragmented("case_9_4_4", BINARY, 4 << 10);
}

#[test]
fn case_9_4_5() {
    fragmented("case_9_4_5", BINARY, 16 << 10);
}

#[test]
fn case_9_4_6() {
    fragmented("case_9_4_6", BINARY, 64 << 10);
}

#[test]
fn case_9_4_7() {
    fragmented("case_9_4_7", BINARY, 256 << 10);
}

#[test]
fn case_9_4_8() {
    fragmented("case_9_4_8", BINARY, 1 << 20);
}

#[test]
fn case_9_4_9() {
    fragmented("case_9_4_9", BINARY, 4 << 20);
}

#[test]
fn case_9_5_1() {
    chopped("case_9_5_1", TEXT, 64);
}

#[test]
fn case_9_5_2() {
    chopped("case_9_5_2", TEXT, 128);
}

#[test]
fn case_9_5_3() {
    chopped("case_9_5_3", TEXT, 256);
}

#[test]
fn case_9_5_4() {
    chopped("case_9_5_4", TEXT, 512);
}

#[test]
fn case_9_5_5() {
    chopped("case_9_5_5", TEXT, 1024);
}

#[test]
fn case_9_5_6() {
    chopped("case_9_5_6", TEXT, 2048);
}

#[test]
fn case_9_6_1() {
    chopped("case_9_6_1", BINARY, 64);
}

#[test]
fn case_9_6_2() {
    chopped("case_9_6_2", BINARY, 128);
}

#[test]
fn case_9_6_3() {
    chopped("case_9_6_3", BINARY, 256);
}

#[test]
fn case_9_6_4() {
    chopped("case_9_6_4", BINARY, 512);
}

#[test]
fn case_9_6_5() {
    chopped("case_9_6_5", BINARY, 1024);
}

#[test]
fn case_9_6_6() {
    chopped("case_9_6_6", BINARY, 2048);
}

#[test]
fn case_9_7_1() {
    rtt("case_9_7_1", TEXT, 0, 1000, 60);
}

#[test]
fn case_9_7_2() {
    rtt("case_9_7_2", TEXT, 16, 1000, 60);
}

#[test]
fn case_9_7_3() {
    rtt("case_9_7_3", TEXT, 64, 1000, 60);
}

#[test]
fn case_9_7_4() {
    rtt("case_9_7_4", TEXT, 256, 1000, 120);
}

#[test]
fn case_9_7_5() {
    rtt("case_9_7_5", TEXT, 1024, 1000, 240);
}

#[test]
fn case_9_7_6() {
    rtt("case_9_7_6", TEXT, 4096, 1000, 480);
}

#[test]
fn case_9_8_1() {
    rtt("case_9_8_1", BINARY, 0, 1000, 60);
}

#[test]
fn case_9_8_2() {
    rtt("case_9_8_2", BINARY, 16, 1000, 60);
}

#[test]
fn case_9_8_3() {
    rtt("case_9_8_3", BINARY, 64, 1000, 60);
}

#[test]
fn case_9_8_4() {
    rtt("case_9_8_4", BINARY, 256, 1000, 120);
}

#[test]
fn case_9_8_5() {
    rtt("case_9_8_5", BINARY, 1024, 1000, 240);
}

#[test]
fn case_9_8_6() {
    rtt("case_9_8_6", BINARY, 4096, 1000, 480);
}

// --- beyond Autobahn ---

/// Round trips of 1000 messages from 16 B to 64 KiB (reported only).
#[test]
fn extra_9_round_trips_16b_to_64kib() {
    for len in [16, 1 << 10, 16 << 10, 64 << 10] {
        rtt("extra_9_round_trips_16b_to_64kib", TEXT, len, 1000, 120);
        rtt("extra_9_round_trips_16b_to_64kib", BINARY, len, 1000, 120);
    }
}

/// 16 MiB in frames of 1 MiB and in frames of 64 KiB written in odd chops:
/// the largest message, assembled from many frames.
#[test]
fn extra_9_16mib_fragmented() {
    let payload = vec![b'x'; 16 << 20];
    for (frag, chop) in [(1 << 20, Chop::Whole), (64 << 10, Chop::Bytes(99_999))] {
        let frames = fragments(TEXT, &payload, frag);
        let what = format!(
            "text message of 16 MiB in {} frames of {}",
            frames.len(),
            size(frag)
        );
        round_trip(
            "extra_9_16mib_fragmented",
            what,
            TEXT,
            &payload,
            &frames,
            chop,
            100,
        );
    }
}

/// One byte over the 16 MiB limit, announced in one frame header or
/// reached by fragments: 1009 at once, before the payload is read.
#[test]
fn extra_9_over_the_limit_fails_1009() {
    let limit = 16usize << 20;
    let mut c = open();
    let header = Frame::binary(b"").announce(limit as u64 + 1).header();
    c.send_raw(&header, Chop::Whole);
    c.expect_failed(&[1009]);

    let mut c = open();
    let first = Frame::binary(vec![1; limit]).fin(false);
    c.send(&[first], Chop::Whole);
    c.send(&[Frame::ping(b"still open")], Chop::Whole);
    c.expect_pong(b"still open");
    let over = Frame::cont(b"").announce(1).header();
    c.send_raw(&over, Chop::Whole);
    c.expect_failed(&[1009]);
}
