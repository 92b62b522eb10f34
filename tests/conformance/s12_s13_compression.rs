//! Sections 12 and 13, permessage-deflate (RFC 7692).
//!
//! 12.x: compressed echoes of five kinds of data (12.1 JSON text, 12.2 a
//! grey-scale bitmap, 12.3 German prose sent as binary, 12.4 HTML text with
//! non-ASCII characters, 12.5 a PDF-like mix of text and incompressible
//! streams: generated stand-ins for Autobahn's files, which are not in the
//! repository), each with Autobahn's 18 sizes and auto-fragmentations
//! (16 B to 128 KiB in one frame; 8 KiB to 128 KiB in frames of 256 B;
//! 128 KiB in frames of 1 KiB, 4 KiB and 32 KiB), a run of messages on one
//! connection that walks through the data as Autobahn does, with
//! Autobahn's default offer. 13.x: the same sizes with the JSON data and
//! each of Autobahn's seven parameter sets (13.1 the default offer, 13.2
//! `server_no_context_takeover`, 13.3 and 13.4 `server_max_window_bits` 9
//! and 15, 13.5 and 13.6 both, 13.7 three offers of which the first is
//! taken). The exact `Sec-WebSocket-Extensions` answer is checked for each.
//!
//! Autobahn sends 1000 messages per case (up to 128 MiB); here a case sends
//! as many as make about 512 KiB, at least 6 and at most 1000, so the whole
//! of 12 and 13 stays within seconds. Every reply is checked as Autobahn
//! does (same type, same bytes) and, beyond it: RSV1 on exactly the
//! replies of 64 bytes and more (the server's compression threshold), each
//! reply decompressed by a client that honours the agreement: a fresh
//! decompressor per message without server context takeover, and, where
//! the server's window is limited, an independent decoder that fails on
//! any back reference past the agreed window (`puff.rs`). The client
//! compresses at level 6 (zlib's default, as Autobahn's client) with the
//! window and context the answer gives it. Every case ends with
//! Autobahn's clean close: 1000 both ways, the server closes TCP.
//!
//! The `extra_12_*` checks are the rules of the extension on the wire
//! (RSV1 where it may not be, invalid deflate data, a deflate bomb, invalid
//! UTF-8 after inflating, empty and BFINAL messages); the `extra_13_*`
//! checks are the negotiation (more parameter sets than Autobahn's,
//! malformed and unacceptable offers).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use flate2::{Compress, Compression, FlushCompress};

use crate::client::pmd::{Agreement, PmdClient};
use crate::client::{fragments, Chop, Client, Frame, ReceivedMessage, BINARY, TEXT};
use crate::{metric, EchoServer};
use fastrand::Rng;

/// Autobahn's default offer (its `PerMessageDeflateOffer()`): the client
/// accepts `client_no_context_takeover` and `client_max_window_bits`.
const AUTOBAHN_OFFER: &str =
    "permessage-deflate; client_no_context_takeover; client_max_window_bits";
/// wsloop takes the `client_no_context_takeover` hint (§7.1.1.2) and
/// leaves the client's window at 15 bits, which goes unsaid.
const AUTOBAHN_ANSWER: &str = "permessage-deflate; client_no_context_takeover";

/// The server's default compression threshold: shorter replies go out
/// uncompressed (RSV1 clear).
const THRESHOLD: usize = 64;

/// The client's deflate level (zlib's default, as Autobahn's client).
const CLIENT_LEVEL: u32 = 6;

/// Autobahn's (payload length, auto-fragment size; 0: one frame) per case
/// number within a subsection.
const MSG_SIZES: [(usize, usize); 18] = [
    (16, 0),
    (64, 0),
    (256, 0),
    (1024, 0),
    (4096, 0),
    (8192, 0),
    (16384, 0),
    (32768, 0),
    (65536, 0),
    (131072, 0),
    (8192, 256),
    (16384, 256),
    (32768, 256),
    (65536, 256),
    (131072, 256),
    (131072, 1024),
    (131072, 4096),
    (131072, 32768),
];

/// Messages per case: about this many payload bytes...
const CASE_BYTES: usize = 512 * 1024;
/// ...but at least this many messages (context takeover needs a run).
const MIN_MESSAGES: usize = 6;

fn messages_for(len: usize) -> usize {
    (CASE_BYTES / len).clamp(MIN_MESSAGES, 1000)
}

/// Autobahn's 13.x offers (one header line, comma-separated) and the
/// answer each must get.
const PARAMS_13: [(&str, &str); 7] = [
    (AUTOBAHN_OFFER, AUTOBAHN_ANSWER),
    (
        "permessage-deflate; client_no_context_takeover; client_max_window_bits; \
         server_no_context_takeover",
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    ),
    (
        "permessage-deflate; client_no_context_takeover; client_max_window_bits; \
         server_max_window_bits=9",
        "permessage-deflate; client_no_context_takeover; server_max_window_bits=9",
    ),
    (
        "permessage-deflate; client_no_context_takeover; client_max_window_bits; \
         server_max_window_bits=15",
        "permessage-deflate; client_no_context_takeover; server_max_window_bits=15",
    ),
    (
        "permessage-deflate; client_no_context_takeover; client_max_window_bits; \
         server_no_context_takeover; server_max_window_bits=9",
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
         server_max_window_bits=9",
    ),
    (
        "permessage-deflate; client_no_context_takeover; client_max_window_bits; \
         server_no_context_takeover; server_max_window_bits=15",
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
         server_max_window_bits=15",
    ),
    (
        "permessage-deflate; client_no_context_takeover; client_max_window_bits; \
         server_no_context_takeover; server_max_window_bits=9, \
         permessage-deflate; client_no_context_takeover; client_max_window_bits; \
         server_no_context_takeover, \
         permessage-deflate; client_no_context_takeover; client_max_window_bits",
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
         server_max_window_bits=9",
    ),
];

// ------------------------------------------------------------------ data

/// One of the data sets messages are cut from.
pub struct Corpus {
    pub title: &'static str,
    /// Sent as text (cut on characters) or binary (cut on bytes).
    pub text: bool,
    bytes: Vec<u8>,
    /// Byte offset of every character, for text.
    chars: Vec<usize>,
}

impl Corpus {
    fn new(title: &'static str, text: bool, bytes: Vec<u8>) -> Corpus {
        let chars = if text {
            std::str::from_utf8(&bytes)
                .expect("a text corpus is UTF-8")
                .char_indices()
                .map(|(i, _)| i)
                .collect()
        } else {
            Vec::new()
        };
        Corpus {
            title,
            text,
            bytes,
            chars,
        }
    }

    pub fn opcode(&self) -> u8 {
        if self.text {
            TEXT
        } else {
            BINARY
        }
    }

    /// Characters (text) or bytes (binary).
    fn units(&self) -> usize {
        if self.text {
            self.chars.len()
        } else {
            self.bytes.len()
        }
    }

    fn offset(&self, unit: usize) -> usize {
        if self.text {
            self.chars[unit]
        } else {
            unit
        }
    }

    /// The `len` units from `from` on, wrapping round to the start
    /// (Autobahn's `sendOne`), and where the next message starts.
    pub fn message(&self, from: usize, len: usize) -> (Vec<u8>, usize) {
        let n = self.units();
        assert!(len < n, "a message of {len} units from {n}");
        let to = (from + len) % n;
        let (a, b) = (self.offset(from), self.offset(to));
        let msg = if to > from {
            self.bytes[a..b].to_vec()
        } else {
            [&self.bytes[a..], &self.bytes[..b]].concat()
        };
        (msg, to)
    }
}

/// The five data sets of 12.x (13.x uses the first).
pub fn corpora() -> &'static [Corpus; 5] {
    static CORPORA: OnceLock<[Corpus; 5]> = OnceLock::new();
    CORPORA.get_or_init(|| {
        let seed = Rng::with_seed;
        [
            Corpus::new("JSON records (text)", true, json(&mut seed(1))),
            Corpus::new("grey-scale bitmap (binary)", false, bitmap(&mut seed(2))),
            Corpus::new("German verse (binary)", false, verse(&mut seed(3))),
            Corpus::new("HTML with non-ASCII text (text)", true, html(&mut seed(4))),
            Corpus::new(
                "PDF-like, mostly incompressible (binary)",
                false,
                pdf(&mut seed(5)),
            ),
        ]
    })
}

const SIZE: usize = 224 * 1024;

const WORDS: [&str; 24] = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
    "enim",
    "minim",
    "veniam",
    "quis",
    "nostrud",
];

fn json(rng: &mut Rng) -> Vec<u8> {
    const NAMES: [&str; 10] = [
        "Alice", "Bruno", "Chen", "Dagny", "Emeka", "Farah", "Goran", "Hana", "Ivo", "Jun",
    ];
    const TAGS: [&str; 8] = [
        "alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "zeta",
    ];
    let mut s = String::from("[\n");
    let mut id = 0;
    while s.len() < SIZE {
        let name = rng.choice(NAMES).unwrap();
        let about: Vec<&str> = (0..5 + rng.usize(..20))
            .map(|_| rng.choice(WORDS).unwrap())
            .collect();
        s.push_str(&format!(
            "  {{\"id\": {id}, \"guid\": \"{:016x}\", \"isActive\": {}, \"balance\": \"${}.{:02}\", \
             \"age\": {}, \"name\": \"{name} {}\", \"email\": \"{}@example.com\", \
             \"about\": \"{}\", \"latitude\": {}.{:06}, \"tags\": [\"{}\", \"{}\"], \
             \"friends\": [{{\"id\": {}, \"name\": \"{}\"}}]}},\n",
            rng.u64(..),
            rng.usize(..2) == 0,
            rng.usize(..4000),
            rng.usize(..100),
            18 + rng.usize(..60),
            rng.choice(NAMES).unwrap(),
            name.to_lowercase(),
            about.join(" "),
            rng.usize(..90),
            rng.usize(..1_000_000),
            rng.choice(TAGS).unwrap(),
            rng.choice(TAGS).unwrap(),
            rng.usize(..100),
            rng.choice(NAMES).unwrap(),
        ));
        id += 1;
    }
    s.push_str("  {}\n]\n");
    s.into_bytes()
}

/// A 512x512 8-bit BMP: smooth shading, some texture and noise.
fn bitmap(rng: &mut Rng) -> Vec<u8> {
    let (w, h) = (512usize, 512usize);
    let mut out = Vec::with_capacity(54 + 1024 + w * h);
    out.extend_from_slice(b"BM");
    out.extend_from_slice(&((54 + 1024 + w * h) as u32).to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(54u32 + 1024).to_le_bytes());
    out.extend_from_slice(&40u32.to_le_bytes());
    out.extend_from_slice(&(w as u32).to_le_bytes());
    out.extend_from_slice(&(h as u32).to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&8u16.to_le_bytes());
    out.extend_from_slice(&[0; 24]);
    for g in 0..=255u8 {
        out.extend_from_slice(&[g, g, g, 0]);
    }
    for y in 0..h {
        for x in 0..w {
            let shade = (x * 3 + y * 5) / 8;
            let texture = ((x / 24) ^ (y / 24)) * 5;
            out.push((shade + texture + rng.usize(..12)) as u8);
        }
    }
    out
}

/// German verse with umlauts and speakers' names, as UTF-8 bytes.
fn verse(rng: &mut Rng) -> Vec<u8> {
    const SPEAKERS: [&str; 4] = ["FAUST", "MEPHISTOPHELES", "WAGNER", "GRETCHEN"];
    const WORDS: [&str; 32] = [
        "Habe",
        "nun",
        "ach",
        "Philosophie",
        "Juristerei",
        "und",
        "Medizin",
        "leider",
        "auch",
        "Theologie",
        "durchaus",
        "studiert",
        "mit",
        "heißem",
        "Bemühn",
        "da",
        "steh",
        "ich",
        "armer",
        "Tor",
        "bin",
        "so",
        "klug",
        "als",
        "wie",
        "zuvor",
        "Geist",
        "Welt",
        "Nacht",
        "Mädchen",
        "Schöne",
        "Glück",
    ];
    let mut s = String::new();
    while s.len() < SIZE {
        s.push_str(rng.choice(SPEAKERS).unwrap());
        s.push_str(":\n");
        for _ in 0..2 + rng.usize(..6) {
            let line: Vec<&str> = (0..4 + rng.usize(..6))
                .map(|_| rng.choice(WORDS).unwrap())
                .collect();
            s.push_str(&line.join(" "));
            s.push_str([",", ";", "!", "."][rng.usize(..4)]);
            s.push('\n');
        }
        s.push('\n');
    }
    s.into_bytes()
}

fn html(rng: &mut Rng) -> Vec<u8> {
    const NON_ASCII: [&str; 8] = ["café", "naïve", "Zürich", "—", "→", "日本語", "Ωμέγα", "😀"];
    let mut s =
        String::from("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body>\n");
    let mut n = 0;
    while s.len() < SIZE {
        let words: Vec<&str> = (0..6 + rng.usize(..16))
            .map(|_| {
                if rng.usize(..6) == 0 {
                    rng.choice(NON_ASCII).unwrap()
                } else {
                    rng.choice(WORDS).unwrap()
                }
            })
            .collect();
        s.push_str(&format!(
            "<div class=\"row r{}\"><p id=\"p{n}\">{}</p><a href=\"/items/{}\">{}</a></div>\n",
            rng.usize(..8),
            words.join(" "),
            rng.usize(..10_000),
            rng.choice(WORDS).unwrap(),
        ));
        n += 1;
    }
    s.push_str("</body></html>\n");
    s.into_bytes()
}

/// PDF-like: objects whose streams are random bytes (already compressed,
/// so they do not compress again) between short runs of text.
fn pdf(rng: &mut Rng) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut n = 1;
    while out.len() < SIZE {
        let len = 500 + rng.usize(..4000);
        out.extend_from_slice(
            format!("{n} 0 obj\n<< /Length {len} /Filter /FlateDecode >>\nstream\n").as_bytes(),
        );
        out.extend((0..len).map(|_| rng.u8(..)));
        out.extend_from_slice(b"\nendstream\nendobj\n");
        n += 1;
    }
    out
}

// ------------------------------------------------------------ the cases

/// A connection with the agreement `answer` for `offers`, and the client
/// that honours it.
fn connect(server: &EchoServer, offers: &[&str], answer: &str) -> (Client, PmdClient) {
    let c = Client::connect_offering(server.addr, "/echo", offers);
    assert_eq!(
        c.extensions().as_deref(),
        Some(answer),
        "the answer to {offers:?}"
    );
    let pmd = PmdClient::new(Agreement::parse(answer), CLIENT_LEVEL);
    (c, pmd)
}

/// The frames of one compressed message: `body` in frames of `frag` bytes
/// (0: one frame), RSV1 on the first.
fn compressed(opcode: u8, body: &[u8], frag: usize) -> Vec<Frame> {
    let mut frames = if frag == 0 {
        vec![Frame::new(opcode, body)]
    } else {
        fragments(opcode, body, frag)
    };
    frames[0].head.rsv = 0b100;
    frames
}

/// How many bytes a fresh level-1 raw deflate stream (15-bit window, sync
/// flush, trailer removed) makes of `msg`.
fn fresh_deflate_len(msg: &[u8]) -> usize {
    let mut c = Compress::new_with_window_bits(Compression::new(1), false, 15);
    let mut out = Vec::with_capacity(msg.len() + msg.len() / 8 + 64);
    c.compress_vec(msg, &mut out, FlushCompress::Sync)
        .expect("deflate with room");
    out.len().saturating_sub(4)
}

/// Expects the echo of `msg` (sent as `opcode`): the same type and bytes,
/// compressed when it is at least [`THRESHOLD`] bytes long, unless deflate
/// does not shrink it (then the server sends it as is).
fn expect_echo(c: &mut Client, pmd: &mut PmdClient, opcode: u8, msg: &[u8]) -> ReceivedMessage {
    let what = format!("the echo of a {}-byte message", msg.len());
    let reply = c.next_message(&what);
    assert_eq!(reply.opcode, opcode, "{what}: the type");
    if msg.len() < THRESHOLD {
        assert!(
            !reply.rsv1,
            "{what}: RSV1 (compressed) on a reply below {THRESHOLD} bytes"
        );
    } else if !reply.rsv1 {
        // Sent as is: only right for data deflate cannot shrink (a fresh
        // compressor may differ from the server's by its context, hence
        // the margin).
        let fresh = fresh_deflate_len(msg);
        assert!(
            fresh * 100 >= msg.len() * 95,
            "{what}: sent uncompressed, but deflate makes {fresh} bytes of it"
        );
    }
    let data = if reply.rsv1 {
        pmd.decompress(&reply.payload)
    } else {
        reply.payload.clone()
    };
    assert!(
        data == msg,
        "{what}: {} bytes came back, differing from what was sent",
        data.len()
    );
    reply
}

/// Bytes counted over a run of echoes.
#[derive(Default)]
struct Tally {
    messages: usize,
    payload: usize,
    sent: usize,
    received: usize,
}

/// Sends `count` messages of `len` units cut from `corpus` (from unit
/// `*at` on), compressed and in frames of `frag` bytes, one at a time, and
/// checks each echo.
#[allow(clippy::too_many_arguments)]
fn echo_run(
    c: &mut Client,
    pmd: &mut PmdClient,
    corpus: &Corpus,
    len: usize,
    frag: usize,
    count: usize,
    at: &mut usize,
    tally: &mut Tally,
) {
    for _ in 0..count {
        let (msg, next) = corpus.message(*at, len);
        *at = next;
        let body = pmd.compress(&msg);
        c.send(&compressed(corpus.opcode(), &body, frag), Chop::Whole);
        let reply = expect_echo(c, pmd, corpus.opcode(), &msg);
        tally.messages += 1;
        tally.payload += msg.len();
        tally.sent += body.len();
        tally.received += reply.payload.len();
    }
}

/// Runs Autobahn case `name` (`case_12_2_15` is 12.2.15).
fn run_case(name: &str) {
    let n: Vec<usize> = name["case_".len()..]
        .split('_')
        .map(|p| p.parse().unwrap())
        .collect();
    let (len, frag) = MSG_SIZES[n[2] - 1];
    let (offer, answer, corpus) = match n[0] {
        12 => (AUTOBAHN_OFFER, AUTOBAHN_ANSWER, &corpora()[n[1] - 1]),
        _ => (PARAMS_13[n[1] - 1].0, PARAMS_13[n[1] - 1].1, &corpora()[0]),
    };
    let server = EchoServer::start();
    let (mut c, mut pmd) = connect(&server, &[offer], answer);
    let mut tally = Tally::default();
    let t0 = Instant::now();
    echo_run(
        &mut c,
        &mut pmd,
        corpus,
        len,
        frag,
        messages_for(len),
        &mut 0,
        &mut tally,
    );
    let elapsed = t0.elapsed();
    c.close_cleanly();
    println!(
        "RATIO {name} | {} | {} | {} | {} | {:.1}",
        tally.messages,
        tally.payload,
        tally.sent,
        tally.received,
        elapsed.as_secs_f64() * 1e3
    );
}

macro_rules! cases {
    ($($name:ident)*) => {
        $(
            #[test]
            fn $name() {
                run_case(stringify!($name));
            }
        )*
    };
}

cases! {
    case_12_1_1 case_12_1_2 case_12_1_3 case_12_1_4 case_12_1_5 case_12_1_6 case_12_1_7
    case_12_1_8 case_12_1_9 case_12_1_10 case_12_1_11 case_12_1_12 case_12_1_13 case_12_1_14
    case_12_1_15 case_12_1_16 case_12_1_17 case_12_1_18
    case_12_2_1 case_12_2_2 case_12_2_3 case_12_2_4 case_12_2_5 case_12_2_6 case_12_2_7
    case_12_2_8 case_12_2_9 case_12_2_10 case_12_2_11 case_12_2_12 case_12_2_13 case_12_2_14
    case_12_2_15 case_12_2_16 case_12_2_17 case_12_2_18
    case_12_3_1 case_12_3_2 case_12_3_3 case_12_3_4 case_12_3_5 case_12_3_6 case_12_3_7
    case_12_3_8 case_12_3_9 case_12_3_10 case_12_3_11 case_12_3_12 case_12_3_13 case_12_3_14
    case_12_3_15 case_12_3_16 case_12_3_17 case_12_3_18
    case_12_4_1 case_12_4_2 case_12_4_3 case_12_4_4 case_12_4_5 case_12_4_6 case_12_4_7
    case_12_4_8 case_12_4_9 case_12_4_10 case_12_4_11 case_12_4_12 case_12_4_13 case_12_4_14
    case_12_4_15 case_12_4_16 case_12_4_17 case_12_4_18
    case_12_5_1 case_12_5_2 case_12_5_3 case_12_5_4 case_12_5_5 case_12_5_6 case_12_5_7
    case_12_5_8 case_12_5_9 case_12_5_10 case_12_5_11 case_12_5_12 case_12_5_13 case_12_5_14
    case_12_5_15 case_12_5_16 case_12_5_17 case_12_5_18
    case_13_1_1 case_13_1_2 case_13_1_3 case_13_1_4 case_13_1_5 case_13_1_6 case_13_1_7
    case_13_1_8 case_13_1_9 case_13_1_10 case_13_1_11 case_13_1_12 case_13_1_13 case_13_1_14
    case_13_1_15 case_13_1_16 case_13_1_17 case_13_1_18
    case_13_2_1 case_13_2_2 case_13_2_3 case_13_2_4 case_13_2_5 case_13_2_6 case_13_2_7
    case_13_2_8 case_13_2_9 case_13_2_10 case_13_2_11 case_13_2_12 case_13_2_13 case_13_2_14
    case_13_2_15 case_13_2_16 case_13_2_17 case_13_2_18
    case_13_3_1 case_13_3_2 case_13_3_3 case_13_3_4 case_13_3_5 case_13_3_6 case_13_3_7
    case_13_3_8 case_13_3_9 case_13_3_10 case_13_3_11 case_13_3_12 case_13_3_13 case_13_3_14
    case_13_3_15 case_13_3_16 case_13_3_17 case_13_3_18
    case_13_4_1 case_13_4_2 case_13_4_3 case_13_4_4 case_13_4_5 case_13_4_6 case_13_4_7
    case_13_4_8 case_13_4_9 case_13_4_10 case_13_4_11 case_13_4_12 case_13_4_13 case_13_4_14
    case_13_4_15 case_13_4_16 case_13_4_17 case_13_4_18
    case_13_5_1 case_13_5_2 case_13_5_3 case_13_5_4 case_13_5_5 case_13_5_6 case_13_5_7
    case_13_5_8 case_13_5_9 case_13_5_10 case_13_5_11 case_13_5_12 case_13_5_13 case_13_5_14
    case_13_5_15 case_13_5_16 case_13_5_17 case_13_5_18
    case_13_6_1 case_13_6_2 case_13_6_3 case_13_6_4 case_13_6_5 case_13_6_6 case_13_6_7
    case_13_6_8 case_13_6_9 case_13_6_10 case_13_6_11 case_13_6_12 case_13_6_13 case_13_6_14
    case_13_6_15 case_13_6_16 case_13_6_17 case_13_6_18
    case_13_7_1 case_13_7_2 case_13_7_3 case_13_7_4 case_13_7_5 case_13_7_6 case_13_7_7
    case_13_7_8 case_13_7_9 case_13_7_10 case_13_7_11 case_13_7_12 case_13_7_13 case_13_7_14
    case_13_7_15 case_13_7_16 case_13_7_17 case_13_7_18
}

// ------------------------------------------------ beyond Autobahn: section 12

/// Both directions with context takeover (the plain offer browsers make),
/// every data set, small to large messages: the client's compressor keeps
/// its window from message to message, and so does the server's, whose
/// replies must then refer back into earlier messages (checked with the
/// window decoder).
#[test]
fn extra_12_context_takeover_both_ways() {
    let offer = "permessage-deflate; client_max_window_bits";
    for corpus in corpora() {
        for (len, frag) in [(256, 0), (4096, 0), (65536, 0), (131072, 1024)] {
            let server = EchoServer::start();
            let (mut c, pmd) = connect(&server, &[offer], "permessage-deflate");
            let mut pmd = pmd.check_window(true);
            let mut tally = Tally::default();
            echo_run(&mut c, &mut pmd, corpus, len, frag, 8, &mut 0, &mut tally);
            if corpus.text && len <= 4096 {
                assert!(
                    pmd.references_into_history > 0,
                    "{}: {len}-byte replies never refer to earlier ones",
                    corpus.title
                );
            }
            c.close_cleanly();
        }
    }
}

/// The same 2000-byte message three times: with context takeover the
/// server's second and third replies are a fraction of the first; without
/// it (`server_no_context_takeover`) the three replies are the same bytes.
#[test]
fn extra_12_server_context_takeover_shrinks_repeats() {
    let (msg, _) = corpora()[0].message(100, 2000);
    for (offer, takeover) in [
        ("permessage-deflate", true),
        ("permessage-deflate; server_no_context_takeover", false),
    ] {
        let server = EchoServer::start();
        let (mut c, mut pmd) = connect(&server, &[offer], offer);
        let mut bodies = Vec::new();
        for _ in 0..3 {
            let body = pmd.compress(&msg);
            c.send(&compressed(TEXT, &body, 0), Chop::Whole);
            bodies.push(expect_echo(&mut c, &mut pmd, TEXT, &msg).payload);
        }
        if takeover {
            assert!(
                bodies[1].len() * 4 < bodies[0].len() && bodies[2].len() * 4 < bodies[0].len(),
                "repeats take {} and {} bytes after {}",
                bodies[1].len(),
                bodies[2].len(),
                bodies[0].len()
            );
        } else {
            assert!(bodies[0] == bodies[1] && bodies[1] == bodies[2]);
        }
        c.close_cleanly();
    }
}

/// A deflate connection with the plain offer (context takeover both ways).
fn deflate_conn() -> (EchoServer, Client, PmdClient) {
    let server = EchoServer::start();
    let (c, pmd) = connect(&server, &["permessage-deflate"], "permessage-deflate");
    (server, c, pmd)
}

/// RFC 7692 §6.1: RSV1 marks a message's first frame only. On a
/// continuation frame it fails the connection with 1002, whether the
/// message is compressed or not; the message before is echoed.
#[test]
fn extra_12_rsv1_on_a_continuation_frame_is_1002() {
    let (msg, _) = corpora()[0].message(0, 300);
    for first_compressed in [true, false] {
        let (_server, mut c, mut pmd) = deflate_conn();
        let body = pmd.compress(&msg);
        c.send(&compressed(TEXT, &body, 0), Chop::Whole);
        expect_echo(&mut c, &mut pmd, TEXT, &msg);
        let body = pmd.compress(&msg);
        let (a, b) = body.split_at(body.len() / 2);
        let first = if first_compressed {
            Frame::text(a).rsv(0b100)
        } else {
            Frame::text(&msg[..10])
        };
        let second = Frame::cont(if first_compressed { b } else { &msg[10..] }).rsv(0b100);
        c.send(&[first.fin(false), second], Chop::PerFrame);
        c.expect_failed(&[1002]);
    }
}

/// RFC 7692 §6.1: control frames are never compressed; RSV1 on a ping, a
/// pong or a close fails the connection with 1002, alone or between the
/// frames of a compressed message.
#[test]
fn extra_12_rsv1_on_a_control_frame_is_1002() {
    for control in [Frame::ping(b"p"), Frame::pong(b"p"), Frame::close(1000, "")] {
        let (_server, mut c, _) = deflate_conn();
        c.send(&[control.clone().rsv(0b100)], Chop::Whole);
        c.expect_failed(&[1002]);

        let (_server, mut c, mut pmd) = deflate_conn();
        let body = pmd.compress(&[b'x'; 500]);
        let (a, b) = body.split_at(body.len() / 2);
        c.send(
            &[
                Frame::binary(a).rsv(0b100).fin(false),
                control.rsv(0b100),
                Frame::cont(b),
            ],
            Chop::Whole,
        );
        c.expect_failed(&[1002]);
    }
}

/// RSV1 means nothing unless permessage-deflate was agreed: without an
/// offer, or with a declined one, a compressed frame fails with 1002, as
/// in section 3.
#[test]
fn extra_12_rsv1_without_the_extension_is_1002() {
    // RFC 7692 §7.2.3.1: "Hello", compressed.
    let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    for offers in [
        &[][..],
        &["permessage-deflate; server_max_window_bits=8"][..],
    ] {
        let server = EchoServer::start();
        let mut c = Client::connect_offering(server.addr, "/echo", offers);
        assert_eq!(c.extensions(), None, "offers {offers:?}");
        c.send(&[Frame::text("Hello")], Chop::Whole);
        c.expect_text("Hello");
        c.send(&[Frame::text(hello).rsv(0b100)], Chop::Whole);
        c.expect_failed(&[1002]);
    }
}

/// Payloads that are not deflate data fail the connection with 1007 (the
/// data is inconsistent with the message, RFC 6455 §7.4.1), in one frame or
/// several, text or binary.
#[test]
fn extra_12_invalid_deflate_data_is_1007() {
    let mut rng = Rng::with_seed(9);
    let noise: Vec<u8> = (0..3000).map(|_| rng.u8(..)).collect();
    // A message that refers back into a previous one the server never saw:
    // compressed with context after another message.
    let mut with_context = PmdClient::new(Agreement::parse("permessage-deflate"), 6);
    let (a, _) = corpora()[0].message(0, 3000);
    with_context.compress(&a);
    let dangling = with_context.compress(&a);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("reserved block type", vec![0xff]),
        ("reserved block type after a byte", vec![0x07, 0x00]),
        (
            "stored block with a bad NLEN",
            vec![0x00, 0x05, 0x00, 0x00, 0x00],
        ),
        (
            "dynamic block with impossible code lengths",
            vec![0xfc, 0xff, 0xff, 0xff, 0xff],
        ),
        ("noise", noise),
        ("a reference before the start", dangling),
    ];
    for (what, body) in cases {
        for (opcode, frag) in [(BINARY, 0), (TEXT, 2)] {
            let (_server, mut c, _) = deflate_conn();
            c.send(&compressed(opcode, &body, frag), Chop::Whole);
            let code = c.expect_failed(&[1007]);
            assert_eq!(code, 1007, "{what}");
        }
    }
}

/// With `client_no_context_takeover` agreed the server keeps no window
/// between the client's messages: a message that refers back into the one
/// before (a client breaking its word) is invalid data, 1007.
#[test]
fn extra_12_client_no_context_takeover_is_held_to() {
    let (msg, _) = corpora()[0].message(0, 3000);
    let offer = "permessage-deflate; client_no_context_takeover";
    let server = EchoServer::start();
    let (mut c, mut pmd) = connect(&server, &[offer], offer);
    // The client compresses with context although it said it would not.
    let mut cheat = PmdClient::new(Agreement::parse("permessage-deflate"), 6);
    let first = cheat.compress(&msg);
    c.send(&compressed(TEXT, &first, 0), Chop::Whole);
    expect_echo(&mut c, &mut pmd, TEXT, &msg);
    let second = cheat.compress(&msg);
    assert!(second.len() * 10 < first.len(), "the repeat refers back");
    c.send(&compressed(TEXT, &second, 0), Chop::Whole);
    c.expect_failed(&[1007]);
}

/// A deflate bomb: 17 MiB of zeros in about 17 KiB, over the 16 MiB
/// message limit once inflated. The server stops at the limit and fails
/// the connection with 1009, at once, in one frame or in 1 KiB fragments.
#[test]
fn extra_12_deflate_bomb_is_1009() {
    let zeros = vec![0u8; 17 << 20];
    let mut pmd = PmdClient::new(Agreement::parse("permessage-deflate"), 9);
    let bomb = pmd.compress(&zeros);
    assert!(bomb.len() < 20 * 1024, "the bomb is {} bytes", bomb.len());
    for (what, frag) in [("one frame", 0), ("fragments of 1 KiB", 1024)] {
        let (_server, mut c, _) = deflate_conn();
        let t0 = Instant::now();
        c.send(&compressed(BINARY, &bomb, frag), Chop::Whole);
        c.expect_failed(&[1009]);
        let elapsed = t0.elapsed();
        metric(
            "extra_12_deflate_bomb_is_1009",
            &format!("{} B inflating past 16 MiB in {what}: 1009", bomb.len()),
            elapsed,
            bomb.len() as u64,
        );
        assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    }
}

/// The 16 MiB message limit counts inflated bytes: a compressed message of
/// exactly 16 MiB is echoed (compressed), one byte more is 1009.
#[test]
fn extra_12_message_limit_counts_inflated_bytes() {
    let corpus = &corpora()[0];
    let limit = 16 << 20;
    let mut msg = Vec::with_capacity(limit + 1);
    while msg.len() <= limit {
        msg.extend_from_slice(&corpus.bytes);
    }
    msg.truncate(limit + 1);
    let (_server, mut c, mut pmd) = deflate_conn();
    let body = pmd.compress(&msg[..limit]);
    let t0 = Instant::now();
    c.send(&compressed(TEXT, &body, 1 << 20), Chop::Whole);
    expect_echo(&mut c, &mut pmd, TEXT, &msg[..limit]);
    metric(
        "extra_12_message_limit_counts_inflated_bytes",
        &format!(
            "text message of 16 MiB in {} KiB compressed, echoed",
            body.len() >> 10
        ),
        t0.elapsed(),
        2 * limit as u64,
    );
    let body = pmd.compress(&msg);
    c.send(&compressed(TEXT, &body, 0), Chop::Whole);
    c.expect_failed(&[1009]);
}

/// A compressed text message whose inflated bytes are not UTF-8 fails with
/// 1007, as an uncompressed one would; one whose characters are cut
/// across compressed fragments anywhere is fine.
#[test]
fn extra_12_invalid_utf8_after_inflating_is_1007() {
    let mut bad = corpora()[3].message(0, 400).0;
    bad.splice(200..200, [0xed, 0xa0, 0x80]); // a UTF-16 surrogate
    for frag in [0, 1, 37] {
        let (_server, mut c, mut pmd) = deflate_conn();
        let body = pmd.compress(&bad);
        c.send(&compressed(TEXT, &body, frag), Chop::Whole);
        c.expect_failed(&[1007]);
    }
    let good = corpora()[3].message(1000, 2000).0;
    assert!(good.len() > 2000, "multi-byte characters in the message");
    for frag in [1, 2, 3, 5, 64] {
        let (_server, mut c, mut pmd) = deflate_conn();
        let body = pmd.compress(&good);
        c.send(&compressed(TEXT, &body, frag), Chop::Whole);
        expect_echo(&mut c, &mut pmd, TEXT, &good);
        c.close_cleanly();
    }
}

/// An empty compressed message has two forms: `00` (an empty stored
/// block's header, RFC 7692 §7.2.3.6) and no payload at all; either, text
/// or binary, in one frame or as an empty first frame and a continuation,
/// is echoed empty (below the threshold: uncompressed). The server's window
/// is unchanged by them: a message that refers back across them decodes.
#[test]
fn extra_12_empty_compressed_messages() {
    let (_server, mut c, mut pmd) = deflate_conn();
    let (msg, _) = corpora()[0].message(0, 1000);
    let body = pmd.compress(&msg);
    c.send(&compressed(TEXT, &body, 0), Chop::Whole);
    expect_echo(&mut c, &mut pmd, TEXT, &msg);
    for opcode in [TEXT, BINARY] {
        for empty in [&[0x00][..], &[][..]] {
            c.send(&[Frame::new(opcode, empty).rsv(0b100)], Chop::Whole);
            expect_echo(&mut c, &mut pmd, opcode, b"");
            c.send(
                &[
                    Frame::new(opcode, &[][..]).rsv(0b100).fin(false),
                    Frame::cont(empty),
                ],
                Chop::Whole,
            );
            expect_echo(&mut c, &mut pmd, opcode, b"");
        }
    }
    // The client's compressor still holds the first message: the repeat
    // is a back reference across the empty messages.
    let again = pmd.compress(&msg);
    assert!(again.len() * 10 < body.len());
    c.send(&compressed(TEXT, &again, 0), Chop::Whole);
    expect_echo(&mut c, &mut pmd, TEXT, &msg);
    c.close_cleanly();
}

/// RFC 7692 §7.2.3.4: a message may end with a final (BFINAL) block, with
/// or without the padding byte after it; the next message starts a new
/// deflate stream.
#[test]
fn extra_12_bfinal_block_messages() {
    let (_server, mut c, mut pmd) = deflate_conn();
    // The RFC's example: "Hello" in a final block, then `00`.
    let hello = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    c.send(&[Frame::text(hello).rsv(0b100)], Chop::Whole);
    expect_echo(&mut c, &mut pmd, TEXT, b"Hello");
    c.send(&[Frame::text(&hello[..7]).rsv(0b100)], Chop::Whole);
    expect_echo(&mut c, &mut pmd, TEXT, b"Hello");
    for (i, frag) in [0, 100, 7].into_iter().enumerate() {
        let (msg, _) = corpora()[2].message(i * 5000, 4000);
        let mut finish = Compress::new(Compression::new(6), false);
        let mut body = Vec::with_capacity(msg.len() + 64);
        finish
            .compress_vec(&msg, &mut body, FlushCompress::Finish)
            .unwrap();
        assert!(finish.total_in() == msg.len() as u64 && body.len() < body.capacity());
        if i == 1 {
            body.push(0x00);
        }
        c.send(&compressed(BINARY, &body, frag), Chop::Whole);
        expect_echo(&mut c, &mut pmd, BINARY, &msg);
    }
    // A message from a fresh compressor after them.
    let mut fresh = PmdClient::new(Agreement::parse("permessage-deflate"), 6);
    let (msg, _) = corpora()[0].message(0, 3000);
    c.send(&compressed(TEXT, &fresh.compress(&msg), 0), Chop::Whole);
    expect_echo(&mut c, &mut pmd, TEXT, &msg);
    c.close_cleanly();
}

/// Control frames between the frames of a compressed message are answered
/// in place; uncompressed messages on a deflate connection are fine and
/// come back compressed when long enough; compressed frames written a byte
/// or seven at a time are read whole.
#[test]
fn extra_12_compressed_fragments_pings_and_chops() {
    let (_server, mut c, mut pmd) = deflate_conn();
    let (msg, _) = corpora()[0].message(0, 5000);
    let body = pmd.compress(&msg);
    let third = body.len() / 3;
    c.send(
        &[
            Frame::text(&body[..third]).rsv(0b100).fin(false),
            Frame::ping(b"one"),
            Frame::cont(&body[third..2 * third]).fin(false),
            Frame::ping(b"two"),
            Frame::cont(&body[2 * third..]),
        ],
        Chop::Bytes(7),
    );
    c.expect_pong(b"one");
    c.expect_pong(b"two");
    expect_echo(&mut c, &mut pmd, TEXT, &msg);
    for len in [10, 63, 64, 300] {
        let (plain, _) = corpora()[0].message(7000, len);
        c.send(&[Frame::text(&plain)], Chop::Whole);
        expect_echo(&mut c, &mut pmd, TEXT, &plain);
    }
    for chop in [Chop::Bytes(1), Chop::Bytes(7)] {
        let (msg, _) = corpora()[1].message(9000, 3000);
        let body = pmd.compress(&msg);
        c.send(&compressed(BINARY, &body, 500), chop);
        expect_echo(&mut c, &mut pmd, BINARY, &msg);
    }
    c.close_cleanly();
}

// ------------------------------------------------ beyond Autobahn: section 13

/// Runs echoes of several sizes, fragmented and not, text and binary, over
/// a connection offered `offers`, which must be answered `answer`; the
/// client decodes every reply with the window check.
fn parameter_set(offers: &[&str], answer: &str) {
    let server = EchoServer::start();
    let (mut c, pmd) = connect(&server, offers, answer);
    let mut pmd = pmd.check_window(true);
    let mut tally = Tally::default();
    let (mut at_text, mut at_binary) = (0, 0);
    for (len, frag) in [
        (16, 0),
        (64, 0),
        (1000, 0),
        (4096, 256),
        (65536, 0),
        (131072, 4096),
    ] {
        let n = if len > 60000 { 2 } else { 4 };
        let text = &corpora()[0];
        echo_run(
            &mut c,
            &mut pmd,
            text,
            len,
            frag,
            n,
            &mut at_text,
            &mut tally,
        );
        let binary = &corpora()[2];
        echo_run(
            &mut c,
            &mut pmd,
            binary,
            len,
            frag,
            n,
            &mut at_binary,
            &mut tally,
        );
    }
    c.close_cleanly();
}

#[test]
fn extra_13_offer_plain() {
    parameter_set(&["permessage-deflate"], "permessage-deflate");
}

#[test]
fn extra_13_offer_client_no_context_takeover() {
    let o = "permessage-deflate; client_no_context_takeover";
    parameter_set(&[o], o);
}

#[test]
fn extra_13_offer_server_no_context_takeover() {
    let o = "permessage-deflate; server_no_context_takeover";
    parameter_set(&[o], o);
}

#[test]
fn extra_13_offer_both_no_context_takeover() {
    parameter_set(
        &["permessage-deflate; client_no_context_takeover; server_no_context_takeover"],
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    );
}

#[test]
fn extra_13_offer_client_max_window_bits() {
    // A value-less client_max_window_bits: the server may limit the
    // client's window and does not (15 goes unsaid).
    parameter_set(
        &["permessage-deflate; client_max_window_bits"],
        "permessage-deflate",
    );
    for bits in [9, 15] {
        let o = format!("permessage-deflate; client_max_window_bits={bits}");
        parameter_set(&[&o], &o);
    }
}

#[test]
fn extra_13_offer_server_max_window_bits() {
    for bits in [9, 12, 15] {
        let o = format!("permessage-deflate; server_max_window_bits={bits}");
        parameter_set(&[&o], &o);
    }
}

#[test]
fn extra_13_offer_combinations() {
    parameter_set(
        &["permessage-deflate; client_max_window_bits=9; client_no_context_takeover"],
        "permessage-deflate; client_no_context_takeover; client_max_window_bits=9",
    );
    parameter_set(
        &["permessage-deflate; server_max_window_bits=10; client_max_window_bits=12"],
        "permessage-deflate; server_max_window_bits=10; client_max_window_bits=12",
    );
    parameter_set(
        &[
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9; \
           server_no_context_takeover; client_no_context_takeover",
        ],
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
         server_max_window_bits=9; client_max_window_bits=9",
    );
    // Quoted values and any case (RFC 7692 §7; RFC 7230 §3.2.6).
    parameter_set(
        &["PerMessage-Deflate; Server_Max_Window_Bits=\"11\"; client_max_window_bits"],
        "permessage-deflate; server_max_window_bits=11",
    );
}

/// The first offer the server can take wins (RFC 7692 §5): after an
/// unacceptable one (`server_max_window_bits=8`, which zlib cannot honour),
/// a malformed one or another extension, in one header line or several.
#[test]
fn extra_13_first_acceptable_offer_is_taken() {
    parameter_set(
        &["permessage-deflate; server_max_window_bits=8, permessage-deflate; server_no_context_takeover"],
        "permessage-deflate; server_no_context_takeover",
    );
    parameter_set(
        &[
            "permessage-deflate; server_max_window_bits=8",
            "permessage-deflate; server_max_window_bits=10",
        ],
        "permessage-deflate; server_max_window_bits=10",
    );
    parameter_set(
        &[
            "permessage-deflate; server_max_window_bits=16, x-webkit-deflate-frame, \
           permessage-deflate; client_no_context_takeover",
        ],
        "permessage-deflate; client_no_context_takeover",
    );
}

/// Malformed offers are declined (RFC 7692 §5), never refused: the
/// connection opens without the extension (no `Sec-WebSocket-Extensions`
/// in the 101), long replies come back uncompressed, and RSV1 is a 1002.
#[test]
fn extra_13_malformed_offers_are_declined() {
    let offers = [
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits=10; client_max_window_bits=10",
        "permessage-deflate; server_max_window_bits=9; server_max_window_bits=10",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=08",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; client_max_window_bits=0",
        "permessage-deflate; client_max_window_bits=ten",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; mystery_parameter",
        "permessage-deflate; server_max_window_bits=8",
        "x-webkit-deflate-frame",
    ];
    let (plain, _) = corpora()[0].message(0, 500);
    for offer in offers {
        let server = EchoServer::start();
        let mut c = Client::connect_offering(server.addr, "/echo", &[offer]);
        assert_eq!(c.extensions(), None, "offer {offer:?}");
        c.send(&[Frame::text(&plain)], Chop::Whole);
        c.expect_text(&plain);
        let mut pmd = PmdClient::new(Agreement::parse("permessage-deflate"), 6);
        c.send(&compressed(TEXT, &pmd.compress(&plain), 0), Chop::Whole);
        c.expect_failed(&[1002]);
    }
}
