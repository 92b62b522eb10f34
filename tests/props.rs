//! Property tests of the sans-I/O layers: message assembly under any
//! fragmentation and chunking, frame header encoding, incremental UTF-8
//! validation, and a server connection fed arbitrary bytes.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};

use wsloop::proto::frame::{decode_header, Decoded, FrameHeader, MAX_HEADER_LEN};
use wsloop::proto::utf8::Utf8Validator;
use wsloop::proto::Role;
use wsloop::proto::{Connection, Event, ProtocolError};
use wsloop::Config;

#[path = "support/frame.rs"]
mod frame;
#[path = "support/sansio.rs"]
mod sansio;

use frame::Frame;
use sansio::{own, Ev};

// ------------------------------------------------------------------ helpers

fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    Frame::new(opcode, payload)
        .fin(fin)
        .mask(Some(mask))
        .encode()
}

/// What a run produced: events, whether each message was borrowed, the
/// error if any, and every byte queued for the peer.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outcome {
    events: Vec<Ev>,
    borrowed: Vec<bool>,
    error: Option<ProtocolError>,
    out: Vec<u8>,
}

/// The largest close frame the connection can queue: 2 + 125 bytes.
const MAX_CLOSE_FRAME: usize = 127;

/// Feeds `wire` cut at `cuts` (sorted positions), each piece read until it
/// is consumed, and checks on every call that the read contract holds and
/// that memory stays bounded.
fn run(conn: &mut Connection, wire: &[u8], cuts: &[usize], max_message: usize) -> Outcome {
    let mut outcome = Outcome::default();
    let mut bounds: Vec<usize> = cuts.to_vec();
    bounds.push(wire.len());
    let mut start = 0;
    for end in bounds {
        let mut piece = wire[start..end].to_vec();
        let total = piece.len();
        let mut pos = 0;
        while pos < total {
            let after_end = conn.close_received() || conn.has_failed();
            match conn.read(&mut piece[pos..]) {
                Ok((used, event)) => {
                    assert!(used <= total - pos, "consumed more than given");
                    assert!(used > 0 || event.is_some(), "no progress");
                    if after_end {
                        assert_eq!((used, event.is_none()), (total - pos, true));
                    }
                    if let Some(e) = &event {
                        if let Event::Message(m) = e {
                            assert!(m.bytes().len() <= max_message, "message over the limit");
                            outcome.borrowed.push(m.is_borrowed());
                        }
                        outcome.events.push(own(e));
                    }
                    pos += used;
                }
                Err(e) => {
                    assert!(outcome.error.is_none(), "second error {e:?}");
                    assert!(!after_end);
                    assert!(conn.has_failed());
                    outcome.error = Some(e);
                    pos = total; // later pieces must then be ignored whole
                }
            }
            // Outgoing bytes never outgrow incoming ones plus one close.
            assert!(
                conn.buffered_amount() <= start + pos + MAX_CLOSE_FRAME,
                "{} queued after {} bytes in",
                conn.buffered_amount(),
                start + pos
            );
        }
        start = end;
    }
    let q = conn.outgoing();
    while !q.is_empty() {
        let front = q.front().to_vec();
        assert!(!front.is_empty());
        outcome.out.extend_from_slice(&front);
        q.consume(front.len());
    }
    outcome
}

/// Sorted cut positions in `0..=len` from random indices.
fn positions(indices: &[Index], len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = indices.iter().map(|i| i.index(len + 1)).collect();
    cuts.sort_unstable();
    cuts
}

fn every_byte(len: usize) -> Vec<usize> {
    (1..len).collect()
}

/// Runs `wire` again on fresh connections with `config`, cut at
/// `chunk_cuts` and, if it is at most `byte_at_a_time_up_to` long, a byte at
/// a time: each run must give exactly `whole`'s events, error and output.
fn check_any_chunking(
    whole: &Outcome,
    wire: &[u8],
    chunk_cuts: &[Index],
    byte_at_a_time_up_to: usize,
    config: &Config,
    max_message: usize,
) -> Result<(), TestCaseError> {
    let mut chunkings = vec![positions(chunk_cuts, wire.len())];
    if wire.len() <= byte_at_a_time_up_to {
        chunkings.push(every_byte(wire.len()));
    }
    for cuts in chunkings {
        let chunked = run(
            &mut Connection::new(Role::Server, config),
            wire,
            &cuts,
            max_message,
        );
        prop_assert_eq!(&chunked.events, &whole.events);
        prop_assert_eq!(&chunked.error, &whole.error);
        prop_assert_eq!(&chunked.out, &whole.out);
    }
    Ok(())
}

/// The frames a server sends, unmasked: (first byte, payload).
fn server_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        assert!(bytes.len() >= 2);
        assert_eq!(bytes[1] & 0x80, 0, "server frames are not masked");
        let (len, n) = match bytes[1] {
            126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                10,
            ),
            l => (l as usize, 2),
        };
        out.push((bytes[0], bytes[n..n + len].to_vec()));
        bytes = &bytes[n + len..];
    }
    out
}

/// The bytes a server owes for `events` and `error`: a pong per ping, in
/// order, then one close frame (the echo, or the error's) at the very end.
fn expected_output(events: &[Ev], error: Option<&ProtocolError>) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    for e in events {
        match e {
            Ev::Ping(p) => out.push((0x8a, p.clone())),
            Ev::Close(1005, _) => out.push((0x88, vec![])),
            Ev::Close(code, _) => out.push((0x88, code.to_be_bytes().to_vec())),
            _ => {}
        }
    }
    if let Some(e) = error {
        let mut payload = e.close_code().to_be_bytes().to_vec();
        payload.extend_from_slice(e.to_string().as_bytes());
        out.push((0x88, payload));
    }
    out
}

// ------------------------------------------------- (a) message reassembly

#[derive(Debug, Clone)]
struct MessageCase {
    text: bool,
    payload: Vec<u8>,
    /// Fragment boundaries (indices into the payload; duplicates make empty
    /// fragments).
    fragment_cuts: Vec<Index>,
    /// Pings inserted before fragment `index` (or after the last).
    pings: Vec<(Index, Vec<u8>)>,
    mask: [u8; 4],
    chunk_cuts: Vec<Index>,
}

fn payload_strategy() -> impl Strategy<Value = (bool, Vec<u8>)> {
    let size = prop_oneof![4 => 0usize..300, 1 => 0usize..70_000];
    (any::<bool>(), size).prop_flat_map(|(text, size)| {
        if text {
            // Characters of every width; size is a character count, so
            // shrink it to keep bytes below about 70,000.
            vec(any::<char>(), size / 3)
                .prop_map(|cs| (true, cs.into_iter().collect::<String>().into_bytes()))
                .boxed()
        } else {
            vec(any::<u8>(), size).prop_map(|b| (false, b)).boxed()
        }
    })
}

fn message_case() -> impl Strategy<Value = MessageCase> {
    (
        payload_strategy(),
        vec(any::<Index>(), 0..12),
        vec((any::<Index>(), vec(any::<u8>(), 0..=125)), 0..4),
        any::<[u8; 4]>(),
        vec(any::<Index>(), 0..24),
    )
        .prop_map(
            |((text, payload), fragment_cuts, pings, mask, chunk_cuts)| MessageCase {
                text,
                payload,
                fragment_cuts,
                pings,
                mask,
                chunk_cuts,
            },
        )
}

/// The wire bytes of a case and the events and output they must produce.
fn build_message_case(case: &MessageCase) -> (Vec<u8>, Vec<Ev>, usize) {
    let cuts = positions(&case.fragment_cuts, case.payload.len());
    let mut fragments = Vec::new();
    let mut start = 0;
    for &c in &cuts {
        fragments.push(&case.payload[start..c]);
        start = c;
    }
    fragments.push(&case.payload[start..]);
    let n = fragments.len();
    let mut pings: Vec<(usize, &Vec<u8>)> = case
        .pings
        .iter()
        .map(|(i, p)| (i.index(n + 1), p))
        .collect();
    pings.sort_by_key(|(i, _)| *i);
    let mut wire = Vec::new();
    let mut events = Vec::new();
    let message = if case.text {
        Ev::Text(String::from_utf8(case.payload.clone()).unwrap())
    } else {
        Ev::Binary(case.payload.clone())
    };
    let mut mask = case.mask;
    let mut next_mask = || {
        mask = u32::from_le_bytes(mask)
            .wrapping_mul(0x9e37_79b9)
            .wrapping_add(1)
            .to_le_bytes();
        mask
    };
    let mut p = pings.iter().peekable();
    for (k, fragment) in fragments.iter().enumerate() {
        while let Some((_, payload)) = p.next_if(|(i, _)| *i == k) {
            wire.extend(client_frame(true, 0x9, payload, next_mask()));
            events.push(Ev::Ping(payload.to_vec()));
        }
        let op = match (k, case.text) {
            (0, true) => 0x1,
            (0, false) => 0x2,
            _ => 0x0,
        };
        wire.extend(client_frame(k == n - 1, op, fragment, next_mask()));
    }
    events.push(message);
    for (_, payload) in p {
        wire.extend(client_frame(true, 0x9, payload, next_mask()));
        events.push(Ev::Ping(payload.to_vec()));
    }
    (wire, events, n)
}

fn check_message_case(case: &MessageCase) -> Result<(), TestCaseError> {
    let (wire, events, fragments) = build_message_case(case);
    let max = Config::default().max_message_size;
    let expected_out = expected_output(&events, None);
    let whole = run(
        &mut Connection::new(Role::Server, &Config::default()),
        &wire,
        &[],
        max,
    );
    prop_assert_eq!(&whole.error, &None);
    prop_assert_eq!(&whole.events, &events);
    prop_assert_eq!(server_frames(&whole.out), expected_out);
    // Fed whole, a message is lent out exactly when it is one frame.
    prop_assert_eq!(&whole.borrowed, &vec![fragments == 1]);
    check_any_chunking(
        &whole,
        &wire,
        &case.chunk_cuts,
        2048,
        &Config::default(),
        max,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (a) Any message, fragmented any way with pings between fragments and
    /// fed in any chunking, gives the same events and pongs as fed whole.
    #[test]
    fn messages_survive_any_fragmentation_and_chunking(case in message_case()) {
        check_message_case(&case)?;
    }
}

// -------------------------------------------------- (b) frame header codec

fn length_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..126,
        126u64..=65535,
        65536u64..(1 << 63),
        select(vec![
            0u64,
            125,
            126,
            127,
            65535,
            65536,
            (1 << 32) - 1,
            1 << 32,
            (1 << 63) - 1
        ]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// (b) decode(encode(h)) == h, in the minimal length form, and every
    /// proper prefix is Partial.
    #[test]
    fn header_encode_decode_is_identity(
        fin in any::<bool>(),
        rsv in 0u8..8,
        opcode in 0u8..16,
        mask in proptest::option::of(any::<[u8; 4]>()),
        len in length_strategy(),
        trailing in vec(any::<u8>(), 0..8),
    ) {
        let h = FrameHeader { fin, rsv, opcode, mask, len };
        let mut buf = [0u8; MAX_HEADER_LEN];
        let n = h.encode(&mut buf);
        let ext = match len { 0..=125 => 0, 126..=65535 => 2, _ => 8 };
        prop_assert_eq!(n, 2 + ext + if mask.is_some() { 4 } else { 0 });
        prop_assert_eq!(buf[0], (u8::from(fin) << 7) | (rsv << 4) | opcode);
        prop_assert_eq!(buf[1] & 0x80 != 0, mask.is_some());
        prop_assert_eq!(decode_header(&buf[..n]), Ok(Decoded::Complete(h, n)));
        let mut longer = buf[..n].to_vec();
        longer.extend_from_slice(&trailing);
        prop_assert_eq!(decode_header(&longer), Ok(Decoded::Complete(h, n)));
        for cut in 0..n {
            prop_assert_eq!(decode_header(&buf[..cut]), Ok(Decoded::Partial));
        }
    }
}

// ------------------------------------------------- (c) UTF-8 validation

/// Bytes that are often nearly UTF-8: whole characters, lone bytes, and
/// characters cut short, in any order.
fn nearly_utf8() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        3 => any::<char>().prop_map(|c| c.to_string().into_bytes()),
        1 => any::<u8>().prop_map(|b| vec![b]),
        1 => (any::<char>(), any::<Index>()).prop_map(|(c, i)| {
            let b = c.to_string().into_bytes();
            let keep = i.index(b.len());
            b[..keep].to_vec()
        }),
        1 => select(vec![
            vec![0xed, 0xa0, 0x80],
            vec![0xf4, 0x90, 0x80, 0x80],
            vec![0xc0, 0xaf],
            vec![0xe0, 0x80, 0xaf],
            vec![0xf8, 0x88, 0x80, 0x80, 0x80],
            vec![0xef, 0xbf, 0xbf],
        ]),
    ];
    prop_oneof![
        vec(piece, 0..40).prop_map(|ps| ps.concat()),
        vec(any::<u8>(), 0..64),
    ]
}

/// Feeds `bytes` cut at `cuts`; returns the range of the chunk whose feed
/// failed, or whether `finish` accepted the whole.
fn validate(bytes: &[u8], cuts: &[usize]) -> Result<bool, (usize, usize)> {
    let mut v = Utf8Validator::new();
    let mut start = 0;
    for end in cuts.iter().copied().chain([bytes.len()]) {
        if v.feed(&bytes[start..end]).is_err() {
            return Err((start, end));
        }
        start = end;
    }
    Ok(v.finish().is_ok())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// (c) The incremental validator agrees with std on any bytes in any
    /// chunking, and fails fast: in the chunk that holds the byte where
    /// std's error becomes certain, never earlier, never later.
    #[test]
    fn utf8_validator_agrees_with_std(bytes in nearly_utf8(), cuts in vec(any::<Index>(), 0..8)) {
        let cuts = positions(&cuts, bytes.len());
        let result = validate(&bytes, &cuts);
        match std::str::from_utf8(&bytes) {
            Ok(_) => prop_assert_eq!(result, Ok(true)),
            Err(e) => match e.error_len() {
                // Cut short at the end: only `finish` can tell.
                None => prop_assert_eq!(result, Ok(false)),
                Some(l) => {
                    let Err((start, end)) = result else {
                        return Err(TestCaseError::fail(format!("accepted {bytes:x?}")));
                    };
                    let at = e.valid_up_to();
                    prop_assert!(end > at, "failed at {start}..{end}, before byte {at}");
                    prop_assert!(start <= at + l, "failed late at {start}..{end}, error at {at}+{l}");
                }
            },
        }
    }

    /// (c) Valid text in any chunking: every feed succeeds, and between
    /// feeds a sequence is pending exactly when the cut is inside a character.
    #[test]
    fn utf8_validator_accepts_valid_text_cut_anywhere(
        s in any::<String>(),
        cuts in vec(any::<Index>(), 0..10),
    ) {
        let cuts = positions(&cuts, s.len());
        let mut v = Utf8Validator::new();
        let mut start = 0;
        for end in cuts.iter().copied().chain([s.len()]) {
            prop_assert!(v.feed(&s.as_bytes()[start..end]).is_ok());
            prop_assert_eq!(v.is_incomplete(), !s.is_char_boundary(end));
            start = end;
        }
        prop_assert!(v.finish().is_ok());
    }
}

// ------------------------------------------ (d) arbitrary input, bounded

const SMALL_FRAME: usize = 2048;
const SMALL_MESSAGE: usize = 4096;

fn small_config() -> Config {
    let mut config = Config::default();
    config.max_frame_size = SMALL_FRAME;
    config.max_message_size = SMALL_MESSAGE;
    config
}

fn close_code() -> impl Strategy<Value = u16> {
    prop_oneof![
        3 => select(vec![1000u16, 1001, 1002, 1003, 1007, 1011, 3000, 4999]),
        1 => any::<u16>(),
    ]
}

/// A frame that is often valid and often subtly not: any first byte, mask
/// usually set, payloads that are text, close payloads or noise, and now
/// and then a length that does not match the payload.
#[derive(Debug, Clone)]
struct FrameSpec {
    b0: u8,
    mask: Option<[u8; 4]>,
    payload: Vec<u8>,
    announce: Option<u64>,
}

fn frame_spec() -> impl Strategy<Value = FrameSpec> {
    let fin_op =
        |ops: Vec<u8>| (any::<bool>(), select(ops)).prop_map(|(fin, op)| (u8::from(fin) << 7) | op);
    let b0 = prop_oneof![
        10 => fin_op(vec![1, 2]),
        8 => fin_op(vec![0]),
        4 => select(vec![0x89u8, 0x8a]),
        1 => select(vec![0x88u8]),
        1 => fin_op(vec![8, 9, 10]),
        1 => any::<u8>(),
    ];
    let payload = prop_oneof![
        3 => vec(any::<u8>(), 0..130),
        6 => ".{0,40}".prop_map(String::into_bytes),
        1 => (close_code(), ".{0,20}").prop_map(|(c, r)| {
            let mut p = c.to_be_bytes().to_vec();
            p.extend_from_slice(r.as_bytes());
            p
        }),
        1 => vec(any::<u8>(), 0..3000),
    ];
    let announce = prop_oneof![
        60 => Just(None),
        1 => (0u64..6000).prop_map(Some),
        1 => any::<u64>().prop_map(Some),
    ];
    let mask = prop_oneof![99 => any::<[u8; 4]>().prop_map(Some), 1 => Just(None)];
    (b0, mask, payload, announce).prop_map(|(b0, mask, payload, announce)| FrameSpec {
        b0,
        mask,
        payload,
        announce,
    })
}

/// A well-formed message (text or binary, maybe over the limits), cut into
/// up to 4 fragments; its frames.
fn message_frames() -> impl Strategy<Value = Vec<FrameSpec>> {
    let payload = prop_oneof![
        4 => ".{0,60}".prop_map(|s| (true, s.into_bytes())),
        4 => vec(any::<u8>(), 0..300).prop_map(|b| (false, b)),
        1 => vec(any::<u8>(), 0..5000).prop_map(|b| (false, b)),
        1 => vec(any::<char>(), 0..1500).prop_map(|c| (true, c.into_iter().collect::<String>().into_bytes())),
    ];
    (payload, vec(any::<Index>(), 0..4), any::<[u8; 4]>()).prop_map(
        |((text, payload), cuts, mask)| {
            let cuts = positions(&cuts, payload.len());
            let mut frames = Vec::new();
            let mut start = 0;
            for end in cuts.into_iter().chain([payload.len()]) {
                let first = frames.is_empty();
                let op = match (first, text) {
                    (true, true) => 1,
                    (true, false) => 2,
                    _ => 0,
                };
                frames.push(FrameSpec {
                    b0: op,
                    mask: Some(mask),
                    payload: payload[start..end].to_vec(),
                    announce: None,
                });
                start = end;
            }
            if let Some(last) = frames.last_mut() {
                last.b0 |= 0x80;
            }
            frames
        },
    )
}

/// Whole messages, pings and pongs, closes, and now and then a frame that
/// may be anything; so that streams get deep before something goes wrong.
fn stream() -> impl Strategy<Value = Vec<FrameSpec>> {
    let control = (
        select(vec![0x89u8, 0x8a]),
        vec(any::<u8>(), 0..=125),
        any::<[u8; 4]>(),
    )
        .prop_map(|(b0, payload, mask)| FrameSpec {
            b0,
            mask: Some(mask),
            payload,
            announce: None,
        });
    let unit = prop_oneof![
        8 => message_frames(),
        3 => control.prop_map(|c| vec![c]),
        1 => (close_code(), ".{0,30}", any::<[u8; 4]>()).prop_map(|(code, reason, mask)| {
            let mut payload = code.to_be_bytes().to_vec();
            payload.extend_from_slice(reason.as_bytes());
            payload.truncate(125);
            vec![FrameSpec { b0: 0x88, mask: Some(mask), payload, announce: None }]
        }),
        1 => frame_spec().prop_map(|f| vec![f]),
    ];
    vec(unit, 0..10).prop_map(|units| units.concat())
}

/// The frames of `specs` on the wire, then `noise`.
fn spec_bytes_then(specs: &[FrameSpec], noise: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    for s in specs {
        let len = s.announce.unwrap_or(s.payload.len() as u64);
        wire.extend(
            Frame::from_b0(s.b0, s.payload.as_slice())
                .mask(s.mask)
                .announce(len)
                .encode(),
        );
    }
    wire.extend_from_slice(noise);
    wire
}

/// Runs `wire` whole, in random chunks, and (if short) a byte at a time:
/// the outcomes must be identical, bounded, and the output exactly the
/// pongs, echo and error close the events call for.
fn check_arbitrary(wire: &[u8], chunk_cuts: &[Index]) -> Result<(), TestCaseError> {
    let config = small_config();
    let whole = run(
        &mut Connection::new(Role::Server, &config),
        wire,
        &[],
        SMALL_MESSAGE,
    );
    // Nothing after a close or an error; a close event excludes an error.
    let close_at = whole.events.iter().position(|e| matches!(e, Ev::Close(..)));
    if let Some(i) = close_at {
        prop_assert_eq!(i, whole.events.len() - 1);
        prop_assert!(whole.error.is_none());
    }
    prop_assert_eq!(
        server_frames(&whole.out),
        expected_output(&whole.events, whole.error.as_ref())
    );
    check_any_chunking(&whole, wire, chunk_cuts, 600, &config, SMALL_MESSAGE)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// (d) Pure noise never panics and stays bounded.
    #[test]
    fn arbitrary_bytes_are_handled(
        wire in vec(any::<u8>(), 0..600),
        cuts in vec(any::<Index>(), 0..12),
    ) {
        check_arbitrary(&wire, &cuts)?;
    }

    /// (d) A stream of mostly valid frames with the odd broken one, then
    /// optional noise: same outcome in any chunking, bounded.
    #[test]
    fn streams_then_noise_are_handled(
        specs in stream(),
        noise in vec(any::<u8>(), 0..32),
        cuts in vec(any::<Index>(), 0..12),
    ) {
        check_arbitrary(&spec_bytes_then(&specs, &noise), &cuts)?;
    }

    /// (d) Plausible frames (valid, subtly invalid, over the limits), then
    /// optional noise: same outcome in any chunking, bounded.
    #[test]
    fn plausible_frames_then_noise_are_handled(
        specs in vec(frame_spec(), 0..16),
        noise in vec(any::<u8>(), 0..32),
        cuts in vec(any::<Index>(), 0..12),
    ) {
        check_arbitrary(&spec_bytes_then(&specs, &noise), &cuts)?;
    }

    /// (d) Noise after a valid prefix that left a fragmented message open.
    #[test]
    fn noise_inside_an_open_message_is_handled(
        text in any::<bool>(),
        first in vec(any::<u8>(), 0..200),
        noise in vec(any::<u8>(), 0..400),
        cuts in vec(any::<Index>(), 0..12),
    ) {
        let mut first = first;
        if text {
            first = String::from_utf8_lossy(&first).into_owned().into_bytes();
        }
        let mut wire = client_frame(false, if text { 1 } else { 2 }, &first, [1, 2, 3, 4]);
        wire.extend(client_frame(true, 0x9, b"ping", [5, 6, 7, 8]));
        wire.extend_from_slice(&noise);
        check_arbitrary(&wire, &cuts)?;
    }
}

/// (d) A stream of fragments that never ends the message: the connection
/// refuses it with 1009 once it passes the limit, having buffered no more.
#[test]
fn an_endless_message_is_cut_off_at_the_limit() {
    let mut conn = Connection::new(Role::Server, &small_config());
    let mut wire = client_frame(false, 2, &[0; 1000], [1, 2, 3, 4]);
    for _ in 0..100 {
        wire.extend(client_frame(false, 0, &[0; 1000], [1, 2, 3, 4]));
    }
    let outcome = run(&mut conn, &wire, &every_byte(wire.len()), SMALL_MESSAGE);
    assert_eq!(outcome.events, []);
    assert_eq!(
        outcome.error,
        Some(ProtocolError::MessageTooBig {
            size: 5000,
            limit: SMALL_MESSAGE
        })
    );
    assert_eq!(server_frames(&outcome.out).len(), 1);
}
