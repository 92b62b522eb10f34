//! Section 6, UTF-8 handling: text messages are validated as they arrive,
//! fragmented anywhere (6.1-6.2 valid, 6.3 invalid), failing fast at the
//! first impossible byte even inside one frame (6.4), and the vectors of
//! Markus Kuhn's UTF-8 decoder test (6.5-6.23) sent in one frame: valid
//! ones are echoed, invalid ones fail the connection with 1007.
//!
//! Beyond Autobahn, `extra_6_G_per_byte` sends every vector of group 6.G
//! again in frames of one byte and in one frame written a byte at a time,
//! and checks that an invalid one fails right at its first impossible byte:
//! the bytes after it are never sent.

use crate::client::{fragments, Chop, Frame, TEXT};
use crate::{open, EchoServer};

/// One group of vectors: Autobahn's 6.G, with its title.
pub struct Group {
    pub number: usize,
    pub title: &'static str,
    /// (valid UTF-8?, bytes)
    pub cases: Vec<(bool, Vec<u8>)>,
}

/// κόσμε, the valid multi-byte string the suite cuts everywhere.
pub const KOSME: &[u8] = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";

/// The groups 6.5 to 6.23 in Autobahn's order, case by case.
pub fn groups() -> Vec<Group> {
    fn v(valid: bool, bytes: &[u8]) -> (bool, Vec<u8>) {
        (valid, bytes.to_vec())
    }
    let mut groups = Vec::new();
    let mut add = |title: &'static str, cases: Vec<(bool, Vec<u8>)>| {
        let number = 5 + groups.len();
        groups.push(Group {
            number,
            title,
            cases,
        });
    };
    add(
        "Some valid UTF-8 sequences",
        vec![
            v(true, b"hello\x24world"),
            v(true, b"hello\xc2\xa2world"),
            v(true, b"hello\xe2\x82\xacworld"),
            v(true, b"hello\xf0\xa4\xad\xa2world"),
            v(true, KOSME),
        ],
    );
    add(
        "All prefixes of a valid UTF-8 string that contains multi-byte code points",
        (1..=KOSME.len())
            .map(|n| v(std::str::from_utf8(&KOSME[..n]).is_ok(), &KOSME[..n]))
            .collect(),
    );
    add(
        "First possible sequence of a certain length",
        vec![
            v(true, b"\x00"),
            v(true, b"\xc2\x80"),
            v(true, b"\xe0\xa0\x80"),
            v(true, b"\xf0\x90\x80\x80"),
        ],
    );
    add(
        "First possible sequence length 5/6 (invalid codepoints)",
        vec![
            v(false, b"\xf8\x88\x80\x80\x80"),
            v(false, b"\xfc\x84\x80\x80\x80\x80"),
        ],
    );
    add(
        "Last possible sequence of a certain length",
        vec![
            v(true, b"\x7f"),
            v(true, b"\xdf\xbf"),
            v(true, b"\xef\xbf\xbf"),
            v(true, b"\xf4\x8f\xbf\xbf"),
        ],
    );
    add(
        "Last possible sequence length 4/5/6 (invalid codepoints)",
        vec![
            v(false, b"\xf7\xbf\xbf\xbf"),
            v(false, b"\xfb\xbf\xbf\xbf\xbf"),
            v(false, b"\xfd\xbf\xbf\xbf\xbf\xbf"),
        ],
    );
    add(
        "Other boundary conditions",
        vec![
            v(true, b"\xed\x9f\xbf"),
            v(true, b"\xee\x80\x80"),
            v(true, b"\xef\xbf\xbd"),
            v(true, b"\xf4\x8f\xbf\xbf"),
            v(false, b"\xf4\x90\x80\x80"),
        ],
    );
    add(
        "Unexpected continuation bytes",
        vec![
            v(false, b"\x80"),
            v(false, b"\xbf"),
            v(false, b"\x80\xbf"),
            v(false, b"\x80\xbf\x80"),
            v(false, b"\x80\xbf\x80\xbf"),
            v(false, b"\x80\xbf\x80\xbf\x80"),
            v(false, b"\x80\xbf\x80\xbf\x80\xbf"),
            (false, (0x80..0xbf).collect()),
        ],
    );
    add(
        "Lonely start characters",
        [
            (0xc0, 0xdf),
            (0xe0, 0xef),
            (0xf0, 0xf7),
            (0xf8, 0xfb),
            (0xfc, 0xfd),
        ]
        .into_iter()
        .map(|(from, to): (u8, u8)| (false, (from..to).flat_map(|b| [b, 0x20]).collect()))
        .collect(),
    );
    let missing_last: [&[u8]; 10] = [
        b"\xc0",
        b"\xe0\x80",
        b"\xf0\x80\x80",
        b"\xf8\x80\x80\x80",
        b"\xfc\x80\x80\x80\x80",
        b"\xdf",
        b"\xef\xbf",
        b"\xf7\xbf\xbf",
        b"\xfb\xbf\xbf\xbf",
        b"\xfd\xbf\xbf\xbf\xbf",
    ];
    add(
        "Sequences with last continuation byte missing",
        missing_last.iter().map(|s| v(false, s)).collect(),
    );
    add(
        "Concatenation of incomplete sequences",
        vec![(false, missing_last.concat())],
    );
    add(
        "Impossible bytes",
        vec![
            v(false, b"\xfe"),
            v(false, b"\xff"),
            v(false, b"\xfe\xfe\xff\xff"),
        ],
    );
    add(
        "Examples of an overlong ASCII character",
        vec![
            v(false, b"\xc0\xaf"),
            v(false, b"\xe0\x80\xaf"),
            v(false, b"\xf0\x80\x80\xaf"),
            v(false, b"\xf8\x80\x80\x80\xaf"),
            v(false, b"\xfc\x80\x80\x80\x80\xaf"),
        ],
    );
    add(
        "Maximum overlong sequences",
        vec![
            v(false, b"\xc1\xbf"),
            v(false, b"\xe0\x9f\xbf"),
            v(false, b"\xf0\x8f\xbf\xbf"),
            v(false, b"\xf8\x87\xbf\xbf\xbf"),
            v(false, b"\xfc\x83\xbf\xbf\xbf\xbf"),
        ],
    );
    add(
        "Overlong representation of the NUL character",
        vec![
            v(false, b"\xc0\x80"),
            v(false, b"\xe0\x80\x80"),
            v(false, b"\xf0\x80\x80\x80"),
            v(false, b"\xf8\x80\x80\x80\x80"),
            v(false, b"\xfc\x80\x80\x80\x80\x80"),
        ],
    );
    add(
        "Single UTF-16 surrogates",
        vec![
            v(false, b"\xed\xa0\x80"),
            v(false, b"\xed\xad\xbf"),
            v(false, b"\xed\xae\x80"),
            v(false, b"\xed\xaf\xbf"),
            v(false, b"\xed\xb0\x80"),
            v(false, b"\xed\xbe\x80"),
            v(false, b"\xed\xbf\xbf"),
        ],
    );
    add(
        "Paired UTF-16 surrogates",
        vec![
            v(false, b"\xed\xa0\x80\xed\xb0\x80"),
            v(false, b"\xed\xa0\x80\xed\xbf\xbf"),
            v(false, b"\xed\xad\xbf\xed\xb0\x80"),
            v(false, b"\xed\xad\xbf\xed\xbf\xbf"),
            v(false, b"\xed\xae\x80\xed\xb0\x80"),
            v(false, b"\xed\xae\x80\xed\xbf\xbf"),
            v(false, b"\xed\xaf\xbf\xed\xb0\x80"),
            v(false, b"\xed\xaf\xbf\xed\xbf\xbf"),
        ],
    );
    // Non-characters are valid UTF-8 (RFC 3629): U+FFFE, U+FFFF and
    // U+nFFFE, U+nFFFF of every plane up to 16, without overlong forms.
    let mut nonchars = vec![v(true, b"\xef\xbf\xbe"), v(true, b"\xef\xbf\xbf")];
    for z1 in [0xf0u8, 0xf1, 0xf2, 0xf3, 0xf4] {
        for z2 in [0x8fu8, 0x9f, 0xaf, 0xbf] {
            if z1 == 0xf4 && z2 != 0x8f {
                continue; // above U+10FFFF
            }
            for z3 in [0xbeu8, 0xbf] {
                if z1 == 0xf0 && z2 == 0x8f {
                    continue; // overlong
                }
                nonchars.push(v(true, &[z1, z2, 0xbf, z3]));
            }
        }
    }
    add("Non-character code points (valid UTF-8)", nonchars);
    add(
        "Unicode specials (i.e. replacement char)",
        (0xb9..=0xbfu8).map(|b| v(true, &[0xef, 0xbf, b])).collect(),
    );
    groups
}

/// The number of bytes after which a validator must have failed: the
/// first prefix that no continuation can make valid (the first impossible
/// byte), or the whole message when only its end is missing. `None` for
/// valid UTF-8.
pub fn fail_point(bytes: &[u8]) -> Option<usize> {
    if std::str::from_utf8(bytes).is_ok() {
        return None;
    }
    Some(
        (1..=bytes.len())
            .find(|&k| std::str::from_utf8(&bytes[..k]).is_err_and(|e| e.error_len().is_some()))
            .unwrap_or(bytes.len()),
    )
}

fn vector(group: usize, case: usize) -> (bool, Vec<u8>) {
    let g = groups().into_iter().nth(group - 5).expect("group");
    assert_eq!(g.number, group);
    g.cases.into_iter().nth(case - 1).expect("case")
}

/// Autobahn 6.G.N: the vector in one frame.
fn vector_case(group: usize, case: usize) {
    let (valid, bytes) = vector(group, case);
    assert_eq!(valid, std::str::from_utf8(&bytes).is_ok(), "table entry");
    let mut c = open();
    c.send(&[Frame::text(&bytes)], Chop::Whole);
    if valid {
        c.expect_text(&bytes);
        c.close_cleanly();
    } else {
        c.expect_failed(&[1007]);
    }
}

/// Every vector of group 6.G in frames of one byte, then in one frame
/// written one byte at a time; invalid ones only up to their fail point.
fn per_byte(group: usize) {
    let g = groups().into_iter().nth(group - 5).expect("group");
    let server = EchoServer::start();
    for (valid, bytes) in &g.cases {
        let frames = fragments(TEXT, bytes, 1);
        // Frames of one byte each, one write per frame.
        let mut c = server.connect();
        match fail_point(bytes) {
            None => {
                c.send(&frames, Chop::PerFrame);
                c.expect_text(bytes);
                c.close_cleanly();
            }
            Some(k) => {
                // A ping right before the bad byte proves the valid prefix
                // was taken; the bad byte's frame must fail it at once.
                c.send(&frames[..k - 1], Chop::PerFrame);
                c.send(&[Frame::ping(b"before")], Chop::Whole);
                c.expect_pong(b"before");
                c.send(&frames[k - 1..k], Chop::Whole);
                c.expect_failed(&[1007]);
            }
        }
        assert_eq!(*valid, fail_point(bytes).is_none());
        // One frame, written a byte at a time.
        let mut c = server.connect();
        let frame = Frame::text(bytes).encode();
        let header = frame.len() - bytes.len();
        match fail_point(bytes) {
            None => {
                c.send_raw(&frame, Chop::Bytes(1));
                c.expect_text(bytes);
                c.close_cleanly();
            }
            Some(k) => {
                c.send_raw(&frame[..header + k], Chop::Bytes(1));
                c.expect_failed(&[1007]);
            }
        }
    }
}

macro_rules! vector_cases {
    ($($name:ident = ($group:literal, $case:literal);)*) => {
        $(
            #[test]
            fn $name() {
                vector_case($group, $case);
            }
        )*
        /// Every (group, case) with a test of its own.
        const DECLARED: &[(usize, usize)] = &[$(($group, $case)),*];
    };
}

macro_rules! per_byte_groups {
    ($($name:ident = $group:literal;)*) => {
        $(
            #[test]
            fn $name() {
                per_byte($group);
            }
        )*
    };
}

// --- 6.1: valid UTF-8 with zero payload fragments ---

#[test]
fn case_6_1_1() {
    let mut c = open();
    c.send(&[Frame::text("")], Chop::Whole);
    c.expect_text("");
    c.close_cleanly();
}

#[test]
fn case_6_1_2() {
    let mut c = open();
    c.send(
        &[
            Frame::text("").fin(false),
            Frame::cont("").fin(false),
            Frame::cont(""),
        ],
        Chop::Whole,
    );
    c.expect_text("");
    c.close_cleanly();
}

#[test]
fn case_6_1_3() {
    let mut c = open();
    c.send(
        &[
            Frame::text("").fin(false),
            Frame::cont("middle frame payload").fin(false),
            Frame::cont(""),
        ],
        Chop::Whole,
    );
    c.expect_text("middle frame payload");
    c.close_cleanly();
}

// --- 6.2: valid UTF-8 unfragmented, fragmented on and within code points ---

const HELLO: &str = "Hello-µ@ßöäüàá-UTF-8!!";

#[test]
fn case_6_2_1() {
    let mut c = open();
    c.send(&[Frame::text(HELLO)], Chop::Whole);
    c.expect_text(HELLO);
    c.close_cleanly();
}

#[test]
fn case_6_2_2() {
    let mut c = open();
    c.send(
        &[
            Frame::text("Hello-µ@ßöä").fin(false),
            Frame::cont("üàá-UTF-8!!"),
        ],
        Chop::Whole,
    );
    c.expect_text(HELLO);
    c.close_cleanly();
}

#[test]
fn case_6_2_3() {
    let mut c = open();
    c.send(&fragments(TEXT, HELLO.as_bytes(), 1), Chop::Whole);
    c.expect_text(HELLO);
    c.close_cleanly();
}

#[test]
fn case_6_2_4() {
    let mut c = open();
    c.send(&fragments(TEXT, KOSME, 1), Chop::Whole);
    c.expect_text(KOSME);
    c.close_cleanly();
}

// --- 6.3: invalid UTF-8, differently fragmented ---

/// κόσμε, a surrogate (invalid exactly at its second byte, the 13th), "edited".
const INVALID: &[u8] = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited";

#[test]
fn case_6_3_1() {
    let mut c = open();
    c.send(&[Frame::text(INVALID)], Chop::Whole);
    c.expect_failed(&[1007]);
}

#[test]
fn case_6_3_2() {
    let mut c = open();
    c.send(&fragments(TEXT, INVALID, 1), Chop::Whole);
    c.expect_failed(&[1007]);
}

// --- 6.4: fail fast on invalid UTF-8 ---
//
// The valid part is sent and the server must stay quiet; then the part
// that makes the message invalid, and the server must fail the connection
// before the rest is sent (Autobahn's strict verdict; failing only once
// everything arrived is NON-STRICT).

/// κόσμε, then U+110000 in the 4-byte scheme (invalid at its 2nd byte), then "edited".
const PART1: &[u8] = KOSME;
const PART2: &[u8] = b"\xf4\x90\x80\x80";
const PART3: &[u8] = b"edited";

fn payload_6_4() -> Vec<u8> {
    [PART1, PART2, PART3].concat()
}

/// Three frames: `a`, wait, `b` must fail it.
fn fail_fast_frames(a: &[u8], b: &[u8]) {
    let mut c = open();
    c.send(&[Frame::text(a).fin(false)], Chop::Whole);
    c.expect_quiet();
    c.send(&[Frame::cont(b).fin(false)], Chop::Whole);
    c.expect_failed(&[1007]);
}

/// One frame for the whole payload, written in chops: `a` (after the
/// header), wait, `b` must fail it.
fn fail_fast_chops(split1: usize, split2: usize) {
    let payload = payload_6_4();
    let frame = Frame::text(&payload).encode();
    let header = frame.len() - payload.len();
    let mut c = open();
    c.send_raw(&frame[..header + split1], Chop::Whole);
    c.expect_quiet();
    c.send_raw(&frame[header + split1..header + split2], Chop::Whole);
    c.expect_failed(&[1007]);
}

#[test]
fn case_6_4_1() {
    fail_fast_frames(PART1, PART2);
}

#[test]
fn case_6_4_2() {
    let payload = payload_6_4();
    fail_fast_frames(&payload[..12], &payload[12..13]);
}

#[test]
fn case_6_4_3() {
    fail_fast_chops(PART1.len(), PART1.len() + PART2.len());
}

#[test]
fn case_6_4_4() {
    fail_fast_chops(12, 13);
}

// --- 6.5 to 6.23: the decoder test vectors, one case each ---

vector_cases! {
    case_6_5_1 = (5, 1);
    case_6_5_2 = (5, 2);
    case_6_5_3 = (5, 3);
    case_6_5_4 = (5, 4);
    case_6_5_5 = (5, 5);
    case_6_6_1 = (6, 1);
    case_6_6_2 = (6, 2);
    case_6_6_3 = (6, 3);
    case_6_6_4 = (6, 4);
    case_6_6_5 = (6, 5);
    case_6_6_6 = (6, 6);
    case_6_6_7 = (6, 7);
    case_6_6_8 = (6, 8);
    case_6_6_9 = (6, 9);
    case_6_6_10 = (6, 10);
    case_6_6_11 = (6, 11);
    case_6_7_1 = (7, 1);
    case_6_7_2 = (7, 2);
    case_6_7_3 = (7, 3);
    case_6_7_4 = (7, 4);
    case_6_8_1 = (8, 1);
    case_6_8_2 = (8, 2);
    case_6_9_1 = (9, 1);
    case_6_9_2 = (9, 2);
    case_6_9_3 = (9, 3);
    case_6_9_4 = (9, 4);
    case_6_10_1 = (10, 1);
    case_6_10_2 = (10, 2);
    case_6_10_3 = (10, 3);
    case_6_11_1 = (11, 1);
    case_6_11_2 = (11, 2);
    case_6_11_3 = (11, 3);
    case_6_11_4 = (11, 4);
    case_6_11_5 = (11, 5);
    case_6_12_1 = (12, 1);
    case_6_12_2 = (12, 2);
    case_6_12_3 = (12, 3);
    case_6_12_4 = (12, 4);
    case_6_12_5 = (12, 5);
    case_6_12_6 = (12, 6);
    case_6_12_7 = (12, 7);
    case_6_12_8 = (12, 8);
    case_6_13_1 = (13, 1);
    case_6_13_2 = (13, 2);
    case_6_13_3 = (13, 3);
    case_6_13_4 = (13, 4);
    case_6_13_5 = (13, 5);
    case_6_14_1 = (14, 1);
    case_6_14_2 = (14, 2);
    case_6_14_3 = (14, 3);
    case_6_14_4 = (14, 4);
    case_6_14_5 = (14, 5);
    case_6_14_6 = (14, 6);
    case_6_14_7 = (14, 7);
    case_6_14_8 = (14, 8);
    case_6_14_9 = (14, 9);
    case_6_14_10 = (14, 10);
    case_6_15_1 = (15, 1);
    case_6_16_1 = (16, 1);
    case_6_16_2 = (16, 2);
    case_6_16_3 = (16, 3);
    case_6_17_1 = (17, 1);
    case_6_17_2 = (17, 2);
    case_6_17_3 = (17, 3);
    case_6_17_4 = (17, 4);
    case_6_17_5 = (17, 5);
    case_6_18_1 = (18, 1);
    case_6_18_2 = (18, 2);
    case_6_18_3 = (18, 3);
    case_6_18_4 = (18, 4);
    case_6_18_5 = (18, 5);
    case_6_19_1 = (19, 1);
    case_6_19_2 = (19, 2);
    case_6_19_3 = (19, 3);
    case_6_19_4 = (19, 4);
    case_6_19_5 = (19, 5);
    case_6_20_1 = (20, 1);
    case_6_20_2 = (20, 2);
    case_6_20_3 = (20, 3);
    case_6_20_4 = (20, 4);
    case_6_20_5 = (20, 5);
    case_6_20_6 = (20, 6);
    case_6_20_7 = (20, 7);
    case_6_21_1 = (21, 1);
    case_6_21_2 = (21, 2);
    case_6_21_3 = (21, 3);
    case_6_21_4 = (21, 4);
    case_6_21_5 = (21, 5);
    case_6_21_6 = (21, 6);
    case_6_21_7 = (21, 7);
    case_6_21_8 = (21, 8);
    case_6_22_1 = (22, 1);
    case_6_22_2 = (22, 2);
    case_6_22_3 = (22, 3);
    case_6_22_4 = (22, 4);
    case_6_22_5 = (22, 5);
    case_6_22_6 = (22, 6);
    case_6_22_7 = (22, 7);
    case_6_22_8 = (22, 8);
    case_6_22_9 = (22, 9);
    case_6_22_10 = (22, 10);
    case_6_22_11 = (22, 11);
    case_6_22_12 = (22, 12);
    case_6_22_13 = (22, 13);
    case_6_22_14 = (22, 14);
    case_6_22_15 = (22, 15);
    case_6_22_16 = (22, 16);
    case_6_22_17 = (22, 17);
    case_6_22_18 = (22, 18);
    case_6_22_19 = (22, 19);
    case_6_22_20 = (22, 20);
    case_6_22_21 = (22, 21);
    case_6_22_22 = (22, 22);
    case_6_22_23 = (22, 23);
    case_6_22_24 = (22, 24);
    case_6_22_25 = (22, 25);
    case_6_22_26 = (22, 26);
    case_6_22_27 = (22, 27);
    case_6_22_28 = (22, 28);
    case_6_22_29 = (22, 29);
    case_6_22_30 = (22, 30);
    case_6_22_31 = (22, 31);
    case_6_22_32 = (22, 32);
    case_6_22_33 = (22, 33);
    case_6_22_34 = (22, 34);
    case_6_23_1 = (23, 1);
    case_6_23_2 = (23, 2);
    case_6_23_3 = (23, 3);
    case_6_23_4 = (23, 4);
    case_6_23_5 = (23, 5);
    case_6_23_6 = (23, 6);
    case_6_23_7 = (23, 7);
}

// --- beyond Autobahn ---

/// The table has Autobahn's 132 vectors in its groups, each with its case.
#[test]
fn extra_6_vector_table_matches_autobahn() {
    let sizes: Vec<usize> = groups().iter().map(|g| g.cases.len()).collect();
    assert_eq!(
        sizes,
        [5, 11, 4, 2, 4, 3, 5, 8, 5, 10, 1, 3, 5, 5, 5, 7, 8, 34, 7]
    );
    let all: Vec<(usize, usize)> = groups()
        .iter()
        .flat_map(|g| (1..=g.cases.len()).map(move |n| (g.number, n)))
        .collect();
    assert_eq!(DECLARED, all.as_slice());
    for g in groups() {
        println!(
            "GROUP 6.{} | {} | {} vectors",
            g.number,
            g.title,
            g.cases.len()
        );
        for (valid, bytes) in &g.cases {
            assert_eq!(
                *valid,
                std::str::from_utf8(bytes).is_ok(),
                "6.{} {bytes:02x?}",
                g.number
            );
        }
    }
}

per_byte_groups! {
    extra_6_5_per_byte = 5;
    extra_6_6_per_byte = 6;
    extra_6_7_per_byte = 7;
    extra_6_8_per_byte = 8;
    extra_6_9_per_byte = 9;
    extra_6_10_per_byte = 10;
    extra_6_11_per_byte = 11;
    extra_6_12_per_byte = 12;
    extra_6_13_per_byte = 13;
    extra_6_14_per_byte = 14;
    extra_6_15_per_byte = 15;
    extra_6_16_per_byte = 16;
    extra_6_17_per_byte = 17;
    extra_6_18_per_byte = 18;
    extra_6_19_per_byte = 19;
    extra_6_20_per_byte = 20;
    extra_6_21_per_byte = 21;
    extra_6_22_per_byte = 22;
    extra_6_23_per_byte = 23;
}
