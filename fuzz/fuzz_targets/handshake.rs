//! The upgrade-request parser on arbitrary bytes.
//!
//! Asserts, under three configurations (default 8 KiB head limit, a 256-byte
//! limit, and 256 bytes with an `Origin` allow-list):
//! - `parse_request` is exactly `parse_head` then `Request::validate`;
//! - a complete head is within the limit, ends where an independent reader
//!   (`common::read_head`, not httparse) says it ends, and has the same
//!   method, target and headers;
//! - every accepted request is RFC 6455 §4.2.1-valid by independent checks
//!   (GET, HTTP/1.1, Host, Upgrade: websocket, Connection: upgrade, version
//!   13, one key that is base64 of 16 bytes, an allowed origin), and
//!   `accept_response` answers it with the right `Sec-WebSocket-Accept`;
//! - conversely, a complete head that passes those checks is accepted;
//! - `head_complete` agrees with an independent scan, with itself when the
//!   bytes arrive in two pieces, and with the parser (no complete head
//!   without a blank line);
//! - errors map to a status and a well-formed response without panicking.
#![no_main]

mod common;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wsloop::proto::handshake::{self, HandshakeError, Parsed};
use wsloop::Config;

const ORIGIN: &str = "https://example.com";

fn configs() -> &'static [Config; 3] {
    static CONFIGS: OnceLock<[Config; 3]> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let mut small = Config::default();
        small.max_header_bytes = 256;
        let mut origins = small.clone();
        origins.allowed_origins = vec![ORIGIN.to_owned()];
        [Config::default(), small, origins]
    })
}

/// Independent: the head ends at LF followed by LF or CR LF.
fn has_blank_line(buf: &[u8]) -> bool {
    (0..buf.len()).any(|i| {
        buf[i] == b'\n' && (buf[i + 1..].starts_with(b"\n") || buf[i + 1..].starts_with(b"\r\n"))
    })
}

fn split_points(data: &[u8]) -> [usize; 3] {
    // FNV-1a: split points that move whenever the input changes.
    let h = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let n = data.len() as u64 + 1;
    [
        (h % n) as usize,
        ((h >> 21) % n) as usize,
        ((h >> 42) % n) as usize,
    ]
}

fn check_head_complete(data: &[u8]) {
    let whole = handshake::head_complete(data, 0);
    assert_eq!(
        whole,
        has_blank_line(data),
        "head_complete vs independent scan"
    );
    for s in split_points(data) {
        // The server's way: the first piece was scanned and had no end,
        // then the rest arrives and is scanned from `s`.
        if handshake::head_complete(&data[..s], 0) {
            assert!(whole, "a prefix has a complete head but the whole has not");
        } else {
            assert_eq!(
                handshake::head_complete(data, s),
                whole,
                "incremental head_complete from {s} disagrees"
            );
        }
    }
}

/// Whether the headers the upgrade checks read are all ASCII.
fn lists_are_ascii(head: &common::Head<'_>) -> bool {
    head.headers.iter().all(|(name, value)| {
        let checked = [
            "host",
            "upgrade",
            "connection",
            "sec-websocket-version",
            "sec-websocket-key",
            "origin",
        ];
        value.is_ascii()
            || !checked
                .iter()
                .any(|c| name.eq_ignore_ascii_case(c.as_bytes()))
    })
}

fn check_error(e: &HandshakeError) {
    let status = e.status();
    assert!((400..600).contains(&status), "error status {status}");
    let response = e.response();
    assert!(response.starts_with(format!("HTTP/1.1 {status} ").as_bytes()));
    let head = common::read_head(&response).expect("error response head");
    let length: usize = head
        .values("content-length")
        .next()
        .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
        .expect("Content-Length");
    assert_eq!(head.len + length, response.len(), "error response length");
}

fn check_config(data: &[u8], config: &Config) {
    let limit = config.max_header_bytes;
    let head = handshake::parse_head(data, config);
    let full = handshake::parse_request(data, config);
    let (request, len) = match head {
        Ok(Parsed::Partial) => {
            assert!(
                matches!(full, Ok(Parsed::Partial)),
                "parse_request vs parse_head"
            );
            assert!(data.len() < limit, "Partial at or past the limit");
            return;
        }
        Err(e) => {
            assert_eq!(full.as_ref().err(), Some(&e), "parse_request vs parse_head");
            if let HandshakeError::HeadersTooLarge(l) = e {
                assert_eq!(l, limit);
                assert!(data.len() >= limit, "431 for a head under the limit");
            }
            check_error(&e);
            return;
        }
        Ok(Parsed::Complete { request, len }) => (request, len),
    };
    assert!(len <= data.len() && len <= limit, "head length {len}");
    assert!(
        handshake::head_complete(&data[..len], 0),
        "complete head without a blank line"
    );
    let mine =
        common::read_head(data).expect("httparse completed a head the simple reader cannot read");
    assert_eq!(mine.len, len, "where the head ends");
    assert_eq!(request.method().as_bytes(), mine.method, "method");
    assert_eq!(request.target().as_bytes(), mine.target, "target");
    let theirs: Vec<(&[u8], &[u8])> = request
        .headers()
        .map(|(n, v)| (n.as_bytes(), v.trim_ascii()))
        .collect();
    assert_eq!(theirs, mine.headers, "headers");
    // Accessors must not panic.
    let _ = (
        request.path(),
        request.query(),
        request.host(),
        request.origin(),
    );
    let _ = (request.protocols().count(), request.extensions());

    let verdict = request.validate(config);
    match (&full, &verdict) {
        (Ok(Parsed::Complete { len: l, .. }), Ok(())) => assert_eq!(*l, len),
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("parse_request {full:?} vs validate {verdict:?}"),
    }
    let independent = common::rfc6455_acceptable(&mine).and_then(|key| {
        if config.allowed_origins.is_empty() {
            return Ok(key);
        }
        let mut origins = mine.values("origin");
        match origins.next() {
            Some(o) if o.eq_ignore_ascii_case(ORIGIN.as_bytes()) => Ok(key),
            _ => Err("origin not allowed"),
        }
    });
    match (&verdict, independent) {
        (Ok(()), Ok(key)) => {
            assert_eq!(request.key().as_bytes(), key, "the key used for the accept");
            let response = handshake::accept_response(&request, None, None);
            common::check_accept_response(&response, key);
            let with = handshake::accept_response(&request, Some("chat"), Some("x"));
            let with = common::read_head(&with).expect("101 head");
            assert_eq!(
                with.values("sec-websocket-protocol").collect::<Vec<_>>(),
                [b"chat"]
            );
        }
        (Ok(()), Err(why)) => panic!("accepted a request that breaks RFC 6455: {why}"),
        // A list with bytes outside ASCII (obs-text) is not a list of
        // tokens; refusing it is fine. Otherwise a valid request is accepted.
        (Err(e), Ok(_)) if !lists_are_ascii(&mine) => check_error(e),
        (Err(e), Ok(_)) => panic!("refused a valid upgrade request with {e:?}"),
        (Err(e), Err(_)) => check_error(e),
    }
}

fuzz_target!(|data: &[u8]| {
    check_head_complete(data);
    for config in configs() {
        check_config(data, config);
    }
});
