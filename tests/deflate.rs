//! permessage-deflate (RFC 7692) building blocks, no sockets: the
//! negotiation against real upgrade requests, the codec against the RFC's
//! examples, round trips in any cut, context takeover, the decompression
//! bomb and garbage, and (printed) the memory a compressor and decompressor
//! pair holds, measured with a per-thread counting allocator.

#![cfg(feature = "deflate")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use proptest::collection::vec;
use proptest::prelude::*;

use wsloop::proto::deflate::{
    negotiate, Agreed, Context, DeflateConfig, Deflater, InflateError, Inflater, INFLATE_STEP,
    TRAILER,
};
use wsloop::proto::handshake::{parse_request, ExtensionOffer, Parsed, Request};
use wsloop::Config;

use fastrand::Rng;

// ------------------------------------------------------- counting allocator

struct Counting;

thread_local! {
    // Const-initialised, no destructor: usable inside the allocator.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let _ = LIVE.try_with(|l| l.set(l.get() + delta));
    if delta > 0 {
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
    }
}

/// Allocations (and growing reallocations) made by this thread so far.
fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

/// Heap bytes allocated minus freed by this thread so far.
fn live() -> isize {
    LIVE.with(Cell::get)
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// only addition is a thread-local counter update, which neither allocates
// nor touches the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: same contract as the caller's, passed through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: same contract as the caller's, passed through.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        // SAFETY: `ptr` came from `System` with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ------------------------------------------------------------------ helpers

/// Chat-like text: compressible, but not trivially.
fn text(rng: &mut Rng, n: usize) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "hello",
        "world",
        "websocket",
        "message",
        "deflate",
        "the",
        "a",
        "server",
        "client",
        "frame",
        "window",
        "loop",
    ];
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        out.extend_from_slice(rng.choice(WORDS).unwrap().as_bytes());
        out.push(if rng.u8(..8) == 0 { b'\n' } else { b' ' });
    }
    out.truncate(n);
    out
}

/// `n` random bytes: nothing for deflate to find.
fn random_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut out = vec![0; n];
    rng.fill(&mut out);
    out
}

fn compress(deflater: &mut Deflater, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    deflater.compress(payload, &mut body);
    body
}

/// Inflates one message fed in the given piece sizes (cycled), with a limit.
fn inflate_in_pieces(
    inflater: &mut Inflater,
    body: &[u8],
    pieces: &[usize],
    max_out: usize,
) -> Result<Vec<u8>, InflateError> {
    let mut out = Vec::new();
    let mut rest = body;
    let mut sizes = pieces.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap_or(&rest.len())).clamp(1, rest.len());
        inflater.feed(&rest[..n], &mut out, max_out)?;
        assert!(out.len() <= max_out, "output passed the limit");
        rest = &rest[n..];
    }
    inflater.finish(&mut out, max_out)?;
    assert!(out.len() <= max_out, "output passed the limit");
    Ok(out)
}

fn inflate(inflater: &mut Inflater, body: &[u8]) -> Result<Vec<u8>, InflateError> {
    inflate_in_pieces(inflater, body, &[body.len().max(1)], usize::MAX)
}

fn random_pieces(rng: &mut Rng, len: usize) -> Vec<usize> {
    let max = rng.choice([1, 3, 17, 200, 4096, len.max(1)]).unwrap();
    (0..64).map(|_| rng.usize(1..=max)).collect()
}

// -------------------------------------------------------------- negotiation

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// An upgrade request with one `Sec-WebSocket-Extensions` header per value.
fn request(extensions: &[&str]) -> Request {
    let mut raw = format!(
        "GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for value in extensions {
        raw.push_str(&format!("Sec-WebSocket-Extensions: {value}\r\n"));
    }
    raw.push_str("\r\n");
    match parse_request(raw.as_bytes(), &Config::default()) {
        Ok(Parsed::Complete { request, .. }) => request,
        other => panic!("not a complete request: {other:?}"),
    }
}

fn on() -> DeflateConfig {
    with(|_| {})
}

/// An enabled policy with both windows at 15 bits (so that an answer
/// follows from the offer alone; the defaults' own answers are checked in
/// `default_policy_answers`), changed by `f` (the struct is
/// non-exhaustive).
fn with(f: impl FnOnce(&mut DeflateConfig)) -> DeflateConfig {
    let mut policy = DeflateConfig::default();
    policy.enabled = true;
    policy.server_max_window_bits = 15;
    policy.client_max_window_bits = 15;
    f(&mut policy);
    policy
}

fn agree(extensions: &[&str], policy: &DeflateConfig) -> Option<Agreed> {
    let request = request(extensions);
    negotiate(&request.extensions(), policy)
}

/// (server_no_context_takeover, client_no_context_takeover,
/// server_max_window_bits, client_max_window_bits)
type Params = (bool, bool, u8, u8);

fn params(a: &Agreed) -> Params {
    (
        a.server_no_context_takeover(),
        a.client_no_context_takeover(),
        a.server_max_window_bits(),
        a.client_max_window_bits(),
    )
}

const PLAIN: Params = (false, false, 15, 15);

#[test]
fn negotiation_table_default_policy() {
    let policy = on();
    #[rustfmt::skip]
    let table: &[(&str, Option<(&str, Params)>)] = &[
        // Each parameter on its own.
        ("permessage-deflate", Some(("permessage-deflate", PLAIN))),
        ("permessage-deflate; client_max_window_bits", Some(("permessage-deflate", PLAIN))),
        ("permessage-deflate; server_no_context_takeover",
            Some(("permessage-deflate; server_no_context_takeover", (true, false, 15, 15)))),
        ("permessage-deflate; client_no_context_takeover",
            Some(("permessage-deflate; client_no_context_takeover", (false, true, 15, 15)))),
        ("permessage-deflate; server_max_window_bits=10",
            Some(("permessage-deflate; server_max_window_bits=10", (false, false, 10, 15)))),
        ("permessage-deflate; server_max_window_bits=15",
            Some(("permessage-deflate; server_max_window_bits=15", PLAIN))),
        ("permessage-deflate; server_max_window_bits=9",
            Some(("permessage-deflate; server_max_window_bits=9", (false, false, 9, 15)))),
        ("permessage-deflate; client_max_window_bits=12",
            Some(("permessage-deflate; client_max_window_bits=12", (false, false, 15, 12)))),
        ("permessage-deflate; client_max_window_bits=8",
            Some(("permessage-deflate; client_max_window_bits=8", (false, false, 15, 8)))),
        // All of them, in any order: the answer has a fixed order.
        ("permessage-deflate; client_max_window_bits=8; server_max_window_bits=9; \
          client_no_context_takeover; server_no_context_takeover",
            Some(("permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                   server_max_window_bits=9; client_max_window_bits=8", (true, true, 9, 8)))),
        // Quoted values (RFC 7692 §7), with a quoted-pair inside.
        ("permessage-deflate; server_max_window_bits=\"10\"",
            Some(("permessage-deflate; server_max_window_bits=10", (false, false, 10, 15)))),
        ("permessage-deflate; client_max_window_bits=\"1\\2\"",
            Some(("permessage-deflate; client_max_window_bits=12", (false, false, 15, 12)))),
        // Spaces around tokens and case of names do not matter.
        ("  permessage-deflate ;  server_max_window_bits = 11 ",
            Some(("permessage-deflate; server_max_window_bits=11", (false, false, 11, 15)))),
        ("PerMessage-Deflate; Server_No_Context_Takeover",
            Some(("permessage-deflate; server_no_context_takeover", (true, false, 15, 15)))),
        // Malformed offers are declined.
        ("permessage-deflate; foo", None),
        ("permessage-deflate; foo=1", None),
        ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
        ("permessage-deflate; client_no_context_takeover; client_no_context_takeover", None),
        ("permessage-deflate; server_max_window_bits=10; server_max_window_bits=10", None),
        ("permessage-deflate; client_max_window_bits; client_max_window_bits=10", None),
        ("permessage-deflate; server_no_context_takeover=1", None),
        ("permessage-deflate; client_no_context_takeover=\"\"", None),
        ("permessage-deflate; server_max_window_bits", None),
        ("permessage-deflate; server_max_window_bits=", None),
        ("permessage-deflate; server_max_window_bits=7", None),
        ("permessage-deflate; server_max_window_bits=16", None),
        ("permessage-deflate; client_max_window_bits=16", None),
        ("permessage-deflate; client_max_window_bits=0", None),
        ("permessage-deflate; client_max_window_bits=08", None),
        ("permessage-deflate; client_max_window_bits=+9", None),
        ("permessage-deflate; client_max_window_bits=0x0f", None),
        ("permessage-deflate; client_max_window_bits=ten", None),
        ("permessage-deflate; client_max_window_bits=\"1 0\"", None),
        ("permessage-deflate; client_max_window_bits=\"\"", None),
        // The 8-bit quirk: the server cannot compress with 8, may not answer 9.
        ("permessage-deflate; server_max_window_bits=8", None),
        ("permessage-deflate; server_max_window_bits=\"8\"; client_max_window_bits", None),
        // Other extensions are not ours.
        ("x-webkit-deflate-frame", None),
        ("permessage-deflate-x", None),
        ("deflate-frame; server_max_window_bits=10", None),
    ];
    for (offer, want) in table {
        let got = agree(&[offer], &policy);
        let got = got.as_ref().map(|a| (a.response(), params(a)));
        assert_eq!(got, *want, "offer {offer:?}");
    }
}

#[test]
fn first_acceptable_offer_wins() {
    let policy = on();
    let cases: &[(&[&str], Option<&str>)] = &[
        // The usual fallback shape: a demanding offer, then a plain one.
        (
            &["permessage-deflate; server_max_window_bits=8, permessage-deflate"],
            Some("permessage-deflate"),
        ),
        (
            &["permessage-deflate; server_max_window_bits=8, permessage-deflate; server_max_window_bits=9"],
            Some("permessage-deflate; server_max_window_bits=9"),
        ),
        // Acceptable first offer: the later ones are not looked at.
        (
            &["permessage-deflate; client_max_window_bits=10, permessage-deflate"],
            Some("permessage-deflate; client_max_window_bits=10"),
        ),
        // Malformed, then good.
        (
            &["permessage-deflate; bogus, permessage-deflate; server_no_context_takeover"],
            Some("permessage-deflate; server_no_context_takeover"),
        ),
        // Other extensions in between, across several header lines.
        (
            &[
                "x-webkit-deflate-frame",
                "permessage-deflate; server_max_window_bits=7",
                "foo; bar=1, permessage-deflate; client_max_window_bits",
            ],
            Some("permessage-deflate"),
        ),
        // A comma inside a quoted value does not split the offer.
        (
            &["permessage-deflate; foo=\"a,b\", permessage-deflate; server_max_window_bits=12"],
            Some("permessage-deflate; server_max_window_bits=12"),
        ),
        // Nothing acceptable.
        (
            &["permessage-deflate; server_max_window_bits=8, permessage-deflate; x"],
            None,
        ),
        (&[], None),
    ];
    for (headers, want) in cases {
        let got = agree(headers, &policy);
        assert_eq!(
            got.as_ref().map(Agreed::response),
            *want,
            "offers {headers:?}"
        );
    }
}

#[test]
fn default_policy_answers() {
    // The defaults keep 4 KiB each way per client: the server compresses
    // with a 12-bit window (it may say so unasked, RFC 7692 §7.1.2.1) and
    // asks for one of a client that offers `client_max_window_bits` (as
    // browsers do); a client that does not offer it keeps its 32 KiB.
    let policy = DeflateConfig::default();
    let cases = [
        (
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
        ),
        (
            "permessage-deflate",
            "permessage-deflate; server_max_window_bits=12",
        ),
        (
            "permessage-deflate; client_max_window_bits=10",
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=10",
        ),
        (
            "permessage-deflate; server_max_window_bits=10",
            "permessage-deflate; server_max_window_bits=10",
        ),
        (
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=12",
        ),
    ];
    for (offer, answer) in cases {
        let agreed = agree(&[offer], &policy).expect(offer);
        assert_eq!(agreed.response(), answer, "{offer}");
    }
    // What each costs between messages: the windows kept.
    let memory = |offer: &str| Context::new(agree(&[offer], &policy).unwrap()).memory();
    assert_eq!(
        memory("permessage-deflate; client_max_window_bits"),
        8 << 10
    );
    assert_eq!(memory("permessage-deflate"), (4 << 10) + (32 << 10));
    assert_eq!(
        memory("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
        0
    );
}

#[test]
fn browsers_offers_are_accepted() {
    let policy = on();
    // Chromium and Firefox send these.
    let chrome = agree(&["permessage-deflate; client_max_window_bits"], &policy).unwrap();
    assert_eq!(chrome.response(), "permessage-deflate");
    assert_eq!(params(&chrome), PLAIN);
    let firefox = agree(&["permessage-deflate"], &policy).unwrap();
    assert_eq!(firefox.response(), "permessage-deflate");
}

/// (policy, offer, expected answer and parameters)
type PolicyCase = (DeflateConfig, &'static str, Option<(&'static str, Params)>);

#[test]
fn negotiation_under_a_policy() {
    #[rustfmt::skip]
    let table: &[PolicyCase] = &[
        (with(|p| { p.enabled = false; }), "permessage-deflate", None),
        // The server limits its own window: said even if not asked.
        (with(|p| { p.server_max_window_bits = 10; }), "permessage-deflate",
            Some(("permessage-deflate; server_max_window_bits=10", (false, false, 10, 15)))),
        (with(|p| { p.server_max_window_bits = 10; }),
            "permessage-deflate; server_max_window_bits=12",
            Some(("permessage-deflate; server_max_window_bits=10", (false, false, 10, 15)))),
        (with(|p| { p.server_max_window_bits = 10; }),
            "permessage-deflate; server_max_window_bits=9",
            Some(("permessage-deflate; server_max_window_bits=9", (false, false, 9, 15)))),
        (with(|p| { p.server_max_window_bits = 9; }),
            "permessage-deflate; server_max_window_bits=8", None),
        // The client's window can only be limited if it offered the parameter.
        (with(|p| { p.client_max_window_bits = 10; }),
            "permessage-deflate; client_max_window_bits",
            Some(("permessage-deflate; client_max_window_bits=10", (false, false, 15, 10)))),
        (with(|p| { p.client_max_window_bits = 10; }),
            "permessage-deflate; client_max_window_bits=12",
            Some(("permessage-deflate; client_max_window_bits=10", (false, false, 15, 10)))),
        (with(|p| { p.client_max_window_bits = 10; }),
            "permessage-deflate; client_max_window_bits=9",
            Some(("permessage-deflate; client_max_window_bits=9", (false, false, 15, 9)))),
        (with(|p| { p.client_max_window_bits = 10; }), "permessage-deflate",
            Some(("permessage-deflate", PLAIN))),
        (with(|p| { p.client_max_window_bits = 8; }),
            "permessage-deflate; client_max_window_bits",
            Some(("permessage-deflate; client_max_window_bits=8", (false, false, 15, 8)))),
        // No context takeover on the policy's side.
        (with(|p| { p.server_no_context_takeover = true; }), "permessage-deflate",
            Some(("permessage-deflate; server_no_context_takeover", (true, false, 15, 15)))),
        (with(|p| { p.client_no_context_takeover = true; }), "permessage-deflate",
            Some(("permessage-deflate; client_no_context_takeover", (false, true, 15, 15)))),
        (with(|p| { p.server_no_context_takeover = true; p.client_no_context_takeover = true; p.server_max_window_bits = 12; p.client_max_window_bits = 11; }),
            "permessage-deflate; client_max_window_bits",
            Some(("permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                   server_max_window_bits=12; client_max_window_bits=11", (true, true, 12, 11)))),
    ];
    for (policy, offer, want) in table {
        assert_eq!(policy.validate(), Ok(()));
        let got = agree(&[offer], policy);
        let got = got.as_ref().map(|a| (a.response(), params(a)));
        assert_eq!(got, *want, "offer {offer:?} under {policy:?}");
    }
}

#[test]
fn negotiate_takes_hand_built_offers() {
    let offers = [
        ExtensionOffer {
            name: "permessage-deflate",
            params: vec![("server_max_window_bits", Some("8"))],
        },
        ExtensionOffer {
            name: "permessage-deflate",
            params: vec![
                ("server_no_context_takeover", None),
                ("client_max_window_bits", Some("9")),
            ],
        },
    ];
    let agreed = negotiate(&offers, &on()).unwrap();
    assert_eq!(
        agreed.response(),
        "permessage-deflate; server_no_context_takeover; client_max_window_bits=9"
    );
    let deflater = agreed.deflater();
    assert_eq!(
        (deflater.window_bits(), deflater.no_context_takeover()),
        (15, true)
    );
    assert!(!agreed.inflater().no_context_takeover());
    assert_eq!(agreed.client_max_window_bits(), 9);
}

// ------------------------------------------------------ RFC 7692 §7.2.3 bytes

const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

#[test]
fn rfc_7_2_3_1_hello() {
    let mut deflater = Deflater::new(15, 1, false);
    assert_eq!(compress(&mut deflater, b"Hello"), HELLO);
    assert_eq!(
        inflate(&mut Inflater::new(false), &HELLO).unwrap(),
        b"Hello"
    );
    // §7.2.3.1 again, as two fragments: f2 48 cd | c9 c9 07 00.
    let mut inflater = Inflater::new(false);
    assert_eq!(
        inflate_in_pieces(&mut inflater, &HELLO, &[3, 4], 5).unwrap(),
        b"Hello"
    );
}

#[test]
fn rfc_7_2_3_2_sharing_the_window() {
    let second = [0xf2, 0x00, 0x11, 0x00, 0x00];
    // The RFC's bytes are zlib's at its default level, 6 (and 2 to 9).
    let mut deflater = Deflater::new(15, 6, false);
    assert_eq!(compress(&mut deflater, b"Hello"), HELLO);
    assert_eq!(compress(&mut deflater, b"Hello"), second);
    let mut inflater = Inflater::new(false);
    assert_eq!(inflate(&mut inflater, &HELLO).unwrap(), b"Hello");
    assert_eq!(inflate(&mut inflater, &second).unwrap(), b"Hello");
    // Level 1 (zlib-rs's quick strategy) codes the back reference
    // differently, as short, and as readable.
    let mut deflater = Deflater::new(15, 1, false);
    assert_eq!(compress(&mut deflater, b"Hello"), HELLO);
    let quick = compress(&mut deflater, b"Hello");
    assert!(quick.len() < HELLO.len(), "{quick:02x?}");
    assert_eq!(inflate(&mut inflater, &HELLO).unwrap(), b"Hello");
    assert_eq!(inflate(&mut inflater, &quick).unwrap(), b"Hello");
    // Without the first message's window the second cannot be read.
    assert_eq!(
        inflate(&mut Inflater::new(false), &second),
        Err(InflateError::Invalid)
    );
    // No context takeover: both messages compress alike.
    let mut deflater = Deflater::new(15, 6, true);
    assert_eq!(compress(&mut deflater, b"Hello"), HELLO);
    assert_eq!(compress(&mut deflater, b"Hello"), HELLO);
}

#[test]
fn rfc_7_2_3_3_uncompressed_block() {
    let stored = [
        0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    let mut inflater = Inflater::new(false);
    assert_eq!(inflate(&mut inflater, &stored).unwrap(), b"Hello");
    assert_eq!(inflate(&mut inflater, &HELLO).unwrap(), b"Hello");
}

#[test]
fn rfc_7_2_3_4_bfinal_block() {
    // A final block, then a 0x00 byte so that the appended trailer parses.
    let bfinal = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    let mut inflater = Inflater::new(false);
    assert_eq!(inflate(&mut inflater, &bfinal).unwrap(), b"Hello");
    // The stream ended; the next message starts a new one.
    assert_eq!(inflate(&mut inflater, &bfinal).unwrap(), b"Hello");
    assert_eq!(inflate(&mut inflater, &HELLO).unwrap(), b"Hello");
    // Also when the final block arrives a byte at a time.
    assert_eq!(
        inflate_in_pieces(&mut inflater, &bfinal, &[1], 5).unwrap(),
        b"Hello"
    );
}

#[test]
fn rfc_7_2_3_5_two_blocks_in_one_message() {
    let two = [
        0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
    ];
    let mut inflater = Inflater::new(false);
    assert_eq!(inflate(&mut inflater, &two).unwrap(), b"Hello");
    // §7.2.3.6: the same split as fragments, an empty one in between.
    let mut out = Vec::new();
    for piece in [&two[..5], &[], &two[5..8], &two[8..]] {
        inflater.feed(piece, &mut out, 5).unwrap();
    }
    inflater.finish(&mut out, 5).unwrap();
    assert_eq!(out, b"Hello");
}

#[test]
fn empty_message() {
    for no_context_takeover in [false, true] {
        let mut deflater = Deflater::new(15, 1, no_context_takeover);
        let mut inflater = Inflater::new(no_context_takeover);
        // Empty messages between others, several in a row: always `00`
        // (§7.2.3.6), where zlib alone would give nothing after a flush.
        for payload in [&b""[..], b"", b"Hello", b"", b"", b"Hello", b""] {
            let body = compress(&mut deflater, payload);
            if payload.is_empty() {
                assert_eq!(body, [0x00]);
            }
            assert_eq!(inflate(&mut inflater, &body).unwrap(), payload);
            // An RSV1 message with no payload at all is taken as empty too,
            // and leaves the stream in step.
            assert_eq!(inflate(&mut inflater, &[]).unwrap(), b"");
        }
    }
}

// --------------------------------------------------------------- round trips

const SIZES: [usize; 6] = [0, 1, 16, 125, 16 * 1024, 128 * 1024];

#[test]
fn round_trips_every_size_window_and_takeover_in_random_pieces() {
    let mut rng = Rng::with_seed(0x9e37_79b9_7f4a_7c15);
    for bits in [15, 12, 9] {
        for no_context_takeover in [false, true] {
            let mut deflater = Deflater::new(bits, 1, no_context_takeover);
            let mut inflater = Inflater::new(no_context_takeover);
            for size in SIZES {
                for compressible in [true, false] {
                    let payload = if compressible {
                        text(&mut rng, size)
                    } else {
                        random_bytes(&mut rng, size)
                    };
                    let body = compress(&mut deflater, &payload);
                    assert!(
                        !body.ends_with(&TRAILER) || body.len() < 4,
                        "trailer stripped"
                    );
                    if compressible && size >= 125 {
                        assert!(body.len() < payload.len(), "text shrinks at {size}");
                    }
                    if !compressible && size > 0 {
                        // Level 1 is zlib-rs's quick strategy: fixed Huffman
                        // codes only, so random bytes grow by about 5.5%
                        // (8.44 bits a byte); levels 2+ fall back to stored
                        // blocks (see every_level_round_trips).
                        assert!(
                            body.len() <= size + size / 16 + 16,
                            "{size} -> {}",
                            body.len()
                        );
                    }
                    let pieces = random_pieces(&mut rng, body.len());
                    let got = inflate_in_pieces(&mut inflater, &body, &pieces, size)
                        .unwrap_or_else(|e| panic!("{bits} bits, size {size}: {e}"));
                    assert!(
                        got == payload,
                        "{bits} bits, {size} bytes, pieces {pieces:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn every_level_round_trips() {
    let mut rng = Rng::with_seed(7);
    let payload = text(&mut rng, 40_000);
    let mut sizes = Vec::new();
    for level in 0..=9 {
        let mut deflater = Deflater::new(15, level, false);
        let mut inflater = Inflater::new(false);
        for _ in 0..2 {
            let body = compress(&mut deflater, &payload);
            assert_eq!(
                inflate(&mut inflater, &body).unwrap(),
                payload,
                "level {level}"
            );
            sizes.push(body.len());
        }
    }
    assert!(sizes[0] >= payload.len(), "level 0 stores");
    assert!(sizes[18] < sizes[2], "level 9 beats level 1");

    // Incompressible data: level 1 grows it by about 5.5%, levels 2 to 9
    // fall back to stored blocks (a few bytes per 16 KiB or so).
    let random = random_bytes(&mut rng, 64 * 1024);
    for level in 0..=9 {
        let body = compress(&mut Deflater::new(15, level, true), &random);
        let bound = if level == 1 {
            random.len() * 106 / 100
        } else {
            random.len() + 64
        };
        assert!(body.len() <= bound, "level {level}: {}", body.len());
        assert!(inflate(&mut Inflater::new(true), &body).unwrap() == random);
    }
}

#[test]
fn context_takeover_shrinks_repeats_and_no_takeover_repeats_exactly() {
    let mut rng = Rng::with_seed(42);
    let payload = text(&mut rng, 2000);
    // (level, how much smaller the repeat must be at least)
    for (level, factor) in [(1, 2), (6, 10)] {
        let mut with = Deflater::new(15, level, false);
        let first = compress(&mut with, &payload);
        let second = compress(&mut with, &payload);
        assert!(
            second.len() * factor < first.len(),
            "level {level}: second {} vs first {}",
            second.len(),
            first.len()
        );
        let mut inflater = Inflater::new(false);
        assert!(inflate(&mut inflater, &first).unwrap() == payload);
        assert!(inflate(&mut inflater, &second).unwrap() == payload);

        let mut without = Deflater::new(15, level, true);
        let a = compress(&mut without, &payload);
        let b = compress(&mut without, &payload);
        assert!(a == b, "reset after each message");
        assert!(a == first, "the first message is the same either way");
        // Each message stands alone: any fresh inflater reads it.
        let mut inflater = Inflater::new(true);
        for body in [&a, &b] {
            assert!(inflate(&mut inflater, body).unwrap() == payload);
        }
        assert!(inflate(&mut Inflater::new(false), &b).unwrap() == payload);
        // A takeover message needs the window the no-takeover inflater dropped.
        let mut reset = Inflater::new(true);
        assert!(inflate(&mut reset, &first).unwrap() == payload);
        assert_eq!(inflate(&mut reset, &second), Err(InflateError::Invalid));
    }
}

#[test]
fn every_window_reads_its_own_data_byte_by_byte() {
    // A 2 KiB block repeated 600 bytes later, so matches reach back up to
    // 2.6 KiB where the window allows. Fed a byte at a time, each call
    // yields a few bytes and back references must come from the inflater's
    // own window, not the caller's output.
    let mut rng = Rng::with_seed(3);
    let block = random_bytes(&mut rng, 2048);
    let payload = [
        block.clone(),
        random_bytes(&mut rng, 600),
        block,
        text(&mut rng, 3000),
    ]
    .concat();
    for bits in 9..=15 {
        for no_context_takeover in [false, true] {
            let mut deflater = Deflater::new(bits, 6, no_context_takeover);
            let mut inflater = Inflater::new(no_context_takeover);
            for _ in 0..3 {
                let body = compress(&mut deflater, &payload);
                let got = inflate_in_pieces(&mut inflater, &body, &[1], payload.len());
                assert!(got.as_ref() == Ok(&payload), "{bits} bits");
            }
        }
    }
    // An 8-bit peer (here zlib's nearest, 9) is read by the 15-bit inflater.
    let body = compress(&mut Deflater::new(8, 6, false), &payload);
    assert!(inflate(&mut Inflater::new(false), &body).unwrap() == payload);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn prop_messages_round_trip_in_any_cut(
        messages in vec(
            prop_oneof![
                vec(any::<u8>(), 0..3000),
                vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b' ')], 0..3000),
            ],
            1..5,
        ),
        cuts in vec(1usize..400, 1..8),
        bits in 9u8..=15,
        no_context_takeover in any::<bool>(),
        level in 0u32..=9,
    ) {
        let mut deflater = Deflater::new(bits, level, no_context_takeover);
        let mut inflater = Inflater::new(no_context_takeover);
        for payload in &messages {
            let body = compress(&mut deflater, payload);
            let got = inflate_in_pieces(&mut inflater, &body, &cuts, payload.len());
            prop_assert_eq!(got.as_ref(), Ok(payload));
            if !payload.is_empty() {
                // One byte less than the message is too big, wherever it is cut.
                let mut fresh = Inflater::new(true);
                let mut refill = Deflater::new(bits, level, true);
                let alone = compress(&mut refill, payload);
                let limit = payload.len() - 1;
                prop_assert_eq!(
                    inflate_in_pieces(&mut fresh, &alone, &cuts, limit),
                    Err(InflateError::TooBig { limit })
                );
            }
        }
    }

    #[test]
    fn prop_garbage_never_panics_or_passes_the_limit(
        garbage in vec(any::<u8>(), 0..2000),
        cuts in vec(1usize..100, 1..4),
        limit in 0usize..5000,
    ) {
        let mut inflater = Inflater::new(false);
        match inflate_in_pieces(&mut inflater, &garbage, &cuts, limit) {
            Ok(out) => prop_assert!(out.len() <= limit),
            Err(InflateError::TooBig { limit: l }) => prop_assert_eq!(l, limit),
            Err(InflateError::Invalid) => {}
        }
        // Whatever happened, the inflater is usable for a good message after it.
        let mut inflater = Inflater::new(true);
        prop_assert_eq!(inflate(&mut inflater, &HELLO), Ok(b"Hello".to_vec()));
    }
}

// ------------------------------------------------------- bombs and garbage

#[test]
fn deflate_bomb_stops_at_the_limit() {
    const MIB: usize = 1 << 20;
    let zeros = vec![0u8; 10 * MIB];
    let body = compress(&mut Deflater::new(15, 9, true), &zeros);
    println!(
        "bomb: 10 MiB of zeros compress to {} bytes at level 9",
        body.len()
    );
    assert!(body.len() < 20 * 1024, "bomb body is {} bytes", body.len());

    // Fed in 1 KiB pieces: the piece that passes 1 MiB fails, the rest is
    // never looked at, and the output never grew past the limit.
    let mut inflater = Inflater::new(false);
    let mut out = Vec::new();
    let mut fed = 0;
    let mut error = None;
    for piece in body.chunks(1024) {
        match inflater.feed(piece, &mut out, MIB) {
            Ok(()) => fed += piece.len(),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
        assert!(out.len() <= MIB);
        assert!(
            out.capacity() <= MIB + INFLATE_STEP,
            "capacity {}",
            out.capacity()
        );
    }
    let error = error.expect("the bomb is refused");
    assert_eq!(error, InflateError::TooBig { limit: MIB });
    assert_eq!(error.close_code(), 1009);
    assert_eq!(out.len(), MIB, "inflated up to the limit, not beyond");
    assert!(out.capacity() <= MIB + INFLATE_STEP);
    assert!(out.iter().all(|&b| b == 0));
    assert!(
        fed < body.len() / 5,
        "stopped after {fed} of {} bytes",
        body.len()
    );

    // All in one piece: the same.
    let mut inflater = Inflater::new(false);
    let mut out = Vec::new();
    assert_eq!(
        inflater.feed(&body, &mut out, MIB),
        Err(InflateError::TooBig { limit: MIB })
    );
    assert_eq!(out.len(), MIB);
    assert!(out.capacity() <= MIB + INFLATE_STEP);

    // Under a limit it fits in, it inflates whole.
    let mut out = Vec::new();
    let mut inflater = Inflater::new(false);
    inflater.feed(&body, &mut out, 10 * MIB).unwrap();
    inflater.finish(&mut out, 10 * MIB).unwrap();
    assert!(out == zeros);
}

#[test]
fn bomb_limit_counts_the_whole_message_not_one_piece() {
    // 100 KiB of zeros in pieces of 10 bytes: no single piece is big, the
    // message is; the limit counts what the message produced so far.
    let zeros = vec![0u8; 100 * 1024];
    let body = compress(&mut Deflater::new(15, 1, false), &zeros);
    let mut inflater = Inflater::new(false);
    assert_eq!(
        inflate_in_pieces(&mut inflater, &body, &[10], 64 * 1024),
        Err(InflateError::TooBig { limit: 64 * 1024 })
    );
    // A later message starts counting from zero again.
    let ok = compress(&mut Deflater::new(15, 1, true), &zeros[..1000]);
    assert_eq!(
        inflate_in_pieces(&mut inflater, &ok, &[10], 1000).unwrap(),
        &zeros[..1000]
    );
}

#[test]
fn garbage_is_invalid() {
    let mut rng = Rng::with_seed(0xdead_beef);
    let cases: Vec<Vec<u8>> = vec![
        vec![0xff],                         // BTYPE 11: reserved
        vec![0x07, 0x00],                   // reserved block type again
        vec![0x00, 0x05, 0x00, 0x00, 0x00], // stored block whose NLEN is not ~LEN
        vec![0xfc, 0xff, 0xff, 0xff, 0xff], // dynamic block with impossible code lengths
        random_bytes(&mut rng, 4096),
    ];
    for garbage in cases {
        let mut inflater = Inflater::new(false);
        let result = inflate(&mut inflater, &garbage);
        assert_eq!(
            result,
            Err(InflateError::Invalid),
            "{:02x?}",
            &garbage[..8.min(garbage.len())]
        );
        assert_eq!(InflateError::Invalid.close_code(), 1007);
        // Reset after the error: the next message is read from scratch.
        assert_eq!(inflate(&mut inflater, &HELLO).unwrap(), b"Hello");
    }
}

// ---------------------------------------------------------------- memory

/// Live heap bytes `f`'s result holds, measured on this thread.
fn held<T>(f: impl FnOnce() -> T) -> (T, isize) {
    let before = live();
    let value = f();
    (value, live() - before)
}

#[test]
fn memory_of_a_compressor_and_decompressor_pair() {
    let mut rng = Rng::with_seed(11);
    let payload = text(&mut rng, 16 * 1024);
    println!("permessage-deflate memory (heap bytes, flate2 on zlib-rs, level 1):");
    println!(
        "| window bits | context takeover | Deflater | Inflater | pair, after a 16 KiB message |"
    );
    println!("| --- | --- | --- | --- | --- |");
    let mut pairs = Vec::new();
    for bits in [15u8, 12, 9] {
        for no_context_takeover in [false, true] {
            let (mut deflater, deflater_bytes) =
                held(|| Deflater::new(bits, 1, no_context_takeover));
            let (mut inflater, inflater_bytes) = held(|| Inflater::new(no_context_takeover));
            // Nothing is allocated lazily: a message leaves the pair as it was.
            let (_, grown) = held(|| {
                let body = compress(&mut deflater, &payload);
                assert!(inflate(&mut inflater, &body).unwrap() == payload);
            });
            assert_eq!(grown, 0, "a message grew the pair");
            let pair = deflater_bytes + inflater_bytes;
            println!(
                "| {bits} | {} | {deflater_bytes} | {inflater_bytes} | {pair} |",
                if no_context_takeover { "no" } else { "yes" },
            );
            let (_, freed) = held(|| drop((deflater, inflater)));
            assert_eq!(freed, -pair, "dropping the pair frees what it held");
            pairs.push(pair);
        }
    }
    // Loose sanity bounds, not the figures themselves.
    assert!(
        pairs[0] > 0 && pairs[0] < 1 << 20,
        "15-bit pair {}",
        pairs[0]
    );
    assert!(pairs[4] < pairs[0], "9 bits < 15 bits");
}

#[test]
fn warm_codecs_allocate_nothing_per_message() {
    // What the zero-allocation echo path (tests/alloc.rs) will need: with
    // the caller's buffers reused, a message costs no allocation, with or
    // without context takeover (a reset keeps the state's memory).
    let mut rng = Rng::with_seed(5);
    let payload = text(&mut rng, 3000);
    for bits in [15u8, 9] {
        for no_context_takeover in [false, true] {
            let mut deflater = Deflater::new(bits, 1, no_context_takeover);
            let mut inflater = Inflater::new(no_context_takeover);
            let mut body = Vec::with_capacity(8 * 1024);
            let mut out = Vec::with_capacity(8 * 1024);
            let mut round = |body: &mut Vec<u8>, out: &mut Vec<u8>| {
                body.clear();
                out.clear();
                deflater.compress(&payload, body);
                inflater.feed(body, out, payload.len()).unwrap();
                inflater.finish(out, payload.len()).unwrap();
                assert!(*out == payload);
            };
            round(&mut body, &mut out);
            let before = allocs();
            for _ in 0..20 {
                round(&mut body, &mut out);
            }
            assert_eq!(
                allocs() - before,
                0,
                "{bits} bits, no context takeover {no_context_takeover}"
            );
        }
    }
}
