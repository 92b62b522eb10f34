//! Exact-byte tests of `wsloop::proto::handshake` (RFC 6455 §4.2), no sockets.

use wsloop::proto::handshake::{
    accept_key, accept_response, error_response, head_complete, parse_request, ExtensionOffer,
    HandshakeError, Parsed, Request, MAX_HEADERS,
};
use wsloop::Config;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The headers of a valid upgrade request (RFC 6455 §1.3, minus the extras).
const BASE: [(&str, &str); 5] = [
    ("Host", "server.example.com"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", KEY),
    ("Sec-WebSocket-Version", "13"),
];

fn build(request_line: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = format!("{request_line}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

fn base() -> Vec<(&'static str, &'static str)> {
    BASE.to_vec()
}

/// The base headers without `name`.
fn without(name: &str) -> Vec<(&'static str, &'static str)> {
    let v: Vec<_> = base().into_iter().filter(|(n, _)| *n != name).collect();
    assert_eq!(v.len(), BASE.len() - 1, "{name} is a base header");
    v
}

/// The base headers with `name` set to `value`.
fn replacing(name: &str, value: &'static str) -> Vec<(&'static str, &'static str)> {
    let mut v = base();
    let slot = v.iter_mut().find(|(n, _)| *n == name).expect("base header");
    slot.1 = value;
    v
}

fn get(headers: &[(&str, &str)]) -> Vec<u8> {
    build("GET /chat HTTP/1.1", headers)
}

fn parse(bytes: &[u8]) -> Result<Parsed, HandshakeError> {
    parse_request(bytes, &Config::default())
}

fn complete_with(bytes: &[u8], config: &Config) -> (Request, usize) {
    match parse_request(bytes, config) {
        Ok(Parsed::Complete { request, len }) => (request, len),
        Ok(Parsed::Partial) => panic!("partial: {:?}", String::from_utf8_lossy(bytes)),
        Err(e) => panic!("{e:?} for {:?}", String::from_utf8_lossy(bytes)),
    }
}

fn complete(bytes: &[u8]) -> (Request, usize) {
    complete_with(bytes, &Config::default())
}

fn error_with(bytes: &[u8], config: &Config) -> HandshakeError {
    match parse_request(bytes, config) {
        Err(e) => e,
        Ok(p) => panic!("expected an error, got {p:?}"),
    }
}

fn error(bytes: &[u8]) -> HandshakeError {
    error_with(bytes, &Config::default())
}

/// Checks the shape every refusal shares: the status line, `Connection:
/// close`, and a Content-Length that matches a one-line body (the error text).
fn check_response(e: &HandshakeError, status: u16, reason: &str) -> String {
    assert_eq!(e.status(), status, "{e:?}");
    let response = String::from_utf8(e.response()).expect("ASCII response");
    let status_line = format!("HTTP/1.1 {status} {reason}\r\n");
    assert!(
        response.starts_with(&status_line),
        "{response:?} should start with {status_line:?}"
    );
    let (head, body) = response.split_once("\r\n\r\n").expect("blank line");
    let lines: Vec<&str> = head.split("\r\n").collect();
    assert!(lines.contains(&"Connection: close"), "{head:?}");
    assert!(
        lines.contains(&"Content-Type: text/plain; charset=utf-8"),
        "{head:?}"
    );
    let content_length = format!("Content-Length: {}", body.len());
    assert!(lines.contains(&content_length.as_str()), "{head:?}");
    assert_eq!(
        body,
        format!("{}\n", e.to_string().replace(['\r', '\n'], " "))
    );
    assert_eq!(body.matches('\n').count(), 1, "one-line body {body:?}");
    assert!(!body.contains('\r'));
    response
}

fn header_lines(response: &str) -> Vec<&str> {
    response
        .split_once("\r\n\r\n")
        .expect("blank line")
        .0
        .split("\r\n")
        .collect()
}

// ---------------------------------------------------------------- accept key

#[test]
fn accept_key_vectors() {
    assert_eq!(accept_key(KEY.as_bytes()), ACCEPT);
    assert_eq!(
        accept_key(b"x3JJHMbDL1EzLkh9GBhXDw=="),
        "HSmrc0sMlYUkAGmm5OPpG2HaGWk="
    );
}

#[test]
fn accept_response_exact_bytes() {
    let (request, _) = complete(&get(&base()));
    assert_eq!(
        accept_response(&request, None, None),
        b"HTTP/1.1 101 Switching Protocols\r\n\
          Upgrade: websocket\r\n\
          Connection: Upgrade\r\n\
          Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
          \r\n"
    );
    assert_eq!(
        accept_response(&request, Some("chat"), None),
        b"HTTP/1.1 101 Switching Protocols\r\n\
          Upgrade: websocket\r\n\
          Connection: Upgrade\r\n\
          Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
          Sec-WebSocket-Protocol: chat\r\n\
          \r\n"
    );
    assert_eq!(
        accept_response(&request, Some("chat"), Some("permessage-deflate")),
        b"HTTP/1.1 101 Switching Protocols\r\n\
          Upgrade: websocket\r\n\
          Connection: Upgrade\r\n\
          Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
          Sec-WebSocket-Protocol: chat\r\n\
          Sec-WebSocket-Extensions: permessage-deflate\r\n\
          \r\n"
    );
}

#[test]
fn accept_response_uses_the_trimmed_key_of_this_request() {
    let raw = get(&replacing("Sec-WebSocket-Key", "x3JJHMbDL1EzLkh9GBhXDw=="));
    let (request, _) = complete(&raw);
    assert_eq!(request.key(), "x3JJHMbDL1EzLkh9GBhXDw==");
    assert_eq!(
        accept_response(&request, None, None),
        b"HTTP/1.1 101 Switching Protocols\r\n\
          Upgrade: websocket\r\n\
          Connection: Upgrade\r\n\
          Sec-WebSocket-Accept: HSmrc0sMlYUkAGmm5OPpG2HaGWk=\r\n\
          \r\n"
    );
    // Whitespace around the key is not part of it.
    let raw = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                Sec-WebSocket-Key: \t dGhlIHNhbXBsZSBub25jZQ== \t\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let (request, _) = complete(raw);
    assert_eq!(request.key(), KEY);
    let response = String::from_utf8(accept_response(&request, None, None)).unwrap();
    assert!(response.contains("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
}

// ------------------------------------------------------- incremental parsing

#[test]
fn byte_at_a_time_is_partial_until_the_blank_line() {
    let head = get(&base());
    // A masked "Hello" (RFC 6455 §5.7) right behind the request.
    let frame = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let mut all = head.clone();
    all.extend_from_slice(&frame);
    for n in 0..head.len() {
        match parse(&all[..n]) {
            Ok(Parsed::Partial) => {}
            other => panic!("prefix of {n} bytes: {other:?}"),
        }
    }
    for n in head.len()..=all.len() {
        let (request, len) = complete(&all[..n]);
        assert_eq!(len, head.len(), "prefix of {n} bytes");
        assert_eq!(request.path(), "/chat");
    }
    // The bytes after the head are the frame, untouched.
    let (_, len) = complete(&all);
    assert_eq!(&all[len..], &frame);
}

#[test]
fn bare_lf_line_endings_are_accepted() {
    let raw = b"GET /lf HTTP/1.1\nHost: h\nUpgrade: websocket\nConnection: Upgrade\n\
                Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 13\n\nrest";
    let (request, len) = complete(raw);
    assert_eq!(len, raw.len() - 4);
    assert_eq!(request.path(), "/lf");
    assert!(head_complete(&raw[..len], 0));
    assert!(!head_complete(&raw[..len - 1], 0));
}

#[test]
fn head_complete_every_prefix_and_from_offset() {
    let mut all = get(&base());
    let head_len = all.len();
    all.extend_from_slice(b"\x81\x80abcd");
    for n in 0..=all.len() {
        let expected = n >= head_len;
        assert_eq!(head_complete(&all[..n], 0), expected, "prefix {n}, from 0");
        // Scanning incrementally: the previous call searched n - 1 bytes.
        if n > 0 && n <= head_len {
            assert_eq!(
                head_complete(&all[..n], n - 1),
                expected,
                "prefix {n}, from {}",
                n - 1
            );
        }
    }
    // The terminator is found when `from` stops right before its last byte,
    // at any position inside it.
    for from in head_len - 4..head_len {
        assert!(head_complete(&all[..head_len], from), "from {from}");
    }
    // `from` says the first bytes were searched already: a terminator wholly
    // inside them is not looked for again.
    assert!(!head_complete(b"\r\n\r\nabcdef", 8));
    assert!(head_complete(b"\r\n\r\nabcdef", 3));
    // Past the end, empty and short buffers: no panic.
    assert!(!head_complete(b"abc", 100));
    assert!(!head_complete(b"", 0));
    assert!(!head_complete(b"\r\n", 0));
    assert!(!head_complete(b"\r\n\r", 0));
    assert!(head_complete(b"\n\n", 0));
    assert!(head_complete(b"\r\n\r\n", 0));
}

#[test]
fn head_complete_agrees_with_the_parser_on_mixed_line_endings() {
    // RFC 7230 §3.5: a lone LF ends a line, and any CR before it is ignored;
    // so the empty line can be CRLF after LF-terminated lines, and the other
    // way round.
    for raw in [
        &b"GET / HTTP/1.1\nHost: h\n\r\n"[..],
        &b"GET / HTTP/1.1\r\nHost: h\r\n\n"[..],
        &b"GET / HTTP/1.1\r\nHost: h\n\n"[..],
        &b"GET / HTTP/1.1\nHost: h\r\n\r\n"[..],
    ] {
        let mut headers = [httparse::EMPTY_HEADER; 4];
        let status = httparse::Request::new(&mut headers).parse(raw).unwrap();
        assert_eq!(status, httparse::Status::Complete(raw.len()), "{raw:?}");
        assert!(head_complete(raw, 0), "{raw:?}");
        for n in 0..raw.len() {
            assert!(!head_complete(&raw[..n], 0), "{raw:?} prefix {n}");
        }
        for from in 0..raw.len() {
            assert!(head_complete(raw, from), "{raw:?} from {from}");
        }
    }
}

// ---------------------------------------------------------------- validation

#[test]
fn the_base_request_is_valid() {
    let raw = get(&base());
    let (request, len) = complete(&raw);
    assert_eq!(len, raw.len());
    assert_eq!(request.method(), "GET");
    assert_eq!(request.host(), "server.example.com");
    assert_eq!(request.key(), KEY);
}

#[test]
fn head_is_plain_http_even_with_upgrade_headers() {
    // RFC 9110 §9.3.2: HEAD is answered as GET would be, without a body;
    // only a GET upgrades, so a HEAD is plain HTTP.
    let e = error(&build("HEAD /chat HTTP/1.1", &base()));
    assert_eq!(e, HandshakeError::NotWebSocket);
    let response = e.response_for(true);
    let text = std::str::from_utf8(&response).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\n"), "no body: {text}");
    let get = e.response();
    assert_eq!(&get[..response.len()], &response[..], "the GET's head");
}

#[test]
fn non_get_is_405_with_allow() {
    for method in ["POST", "PUT", "OPTIONS", "get"] {
        let e = error(&build(&format!("{method} /chat HTTP/1.1"), &base()));
        assert_eq!(e, HandshakeError::MethodNotAllowed(method.into()));
        let response = check_response(&e, 405, "Method Not Allowed");
        assert!(header_lines(&response).contains(&"Allow: GET, HEAD"));
    }
    // The whole response, byte for byte.
    let e = error(&build("POST /chat HTTP/1.1", &base()));
    assert_eq!(
        e.response(),
        b"HTTP/1.1 405 Method Not Allowed\r\n\
          Allow: GET, HEAD\r\n\
          Content-Type: text/plain; charset=utf-8\r\n\
          Content-Length: 33\r\n\
          Connection: close\r\n\
          \r\n\
          method POST not allowed, use GET\n"
    );
}

#[test]
fn http_1_0_is_505() {
    let e = error(&build("GET /chat HTTP/1.0", &base()));
    assert_eq!(e, HandshakeError::HttpVersion);
    check_response(&e, 505, "HTTP Version Not Supported");
    // A version httparse does not know at all.
    let e = error(&build("GET /chat HTTP/2.0", &base()));
    assert_eq!(e, HandshakeError::HttpVersion);
    check_response(&e, 505, "HTTP Version Not Supported");
}

#[test]
fn missing_host_is_400() {
    let e = error(&get(&without("Host")));
    assert_eq!(e, HandshakeError::MissingHost);
    check_response(&e, 400, "Bad Request");
}

#[test]
fn a_second_host_is_400() {
    let mut headers = base();
    headers.push(("Host", "other.example"));
    let e = error(&get(&headers));
    assert_eq!(e, HandshakeError::DuplicateHost);
    check_response(&e, 400, "Bad Request");
}

/// RFC 9110 §5.6.3: optional whitespace is space and tab only. Found by the
/// `handshake` fuzz target: `str::trim` also stripped U+2028, U+00A0...
#[test]
fn only_space_and_tab_are_trimmed_around_tokens() {
    let e = error(&get(&replacing("Connection", "Upgrade\u{2028}")));
    assert_eq!(e, HandshakeError::ConnectionNotUpgrade);
    let e = error(&get(&replacing("Upgrade", "websocket\u{a0}")));
    assert_eq!(e, HandshakeError::NotWebSocket);
    let (request, _) = complete(&get(&replacing("Upgrade", " \twebsocket\t ")));
    assert_eq!(request.path(), "/chat");
    let mut headers = base();
    headers.push(("Sec-WebSocket-Protocol", "chat\u{a0}, \tsuperchat "));
    let (request, _) = complete(&get(&headers));
    assert_eq!(
        request.protocols().collect::<Vec<_>>(),
        ["chat\u{a0}", "superchat"]
    );
}

#[test]
fn missing_or_wrong_upgrade_is_426_naming_websocket() {
    for headers in [
        without("Upgrade"),
        replacing("Upgrade", "h2c"),
        replacing("Upgrade", "websocket2"),
        replacing("Upgrade", ""),
    ] {
        let e = error(&get(&headers));
        assert_eq!(e, HandshakeError::NotWebSocket, "{headers:?}");
        let response = check_response(&e, 426, "Upgrade Required");
        let lines = header_lines(&response);
        assert!(lines.contains(&"Upgrade: websocket"), "{lines:?}");
        assert!(lines.contains(&"Sec-WebSocket-Version: 13"), "{lines:?}");
    }
}

#[test]
fn upgrade_token_is_case_insensitive_and_may_be_in_a_list() {
    for value in [
        "WebSocket",
        "WEBSOCKET",
        "websocket",
        "foo, websocket",
        " websocket ",
    ] {
        complete(&get(&replacing("Upgrade", value)));
    }
}

#[test]
fn connection_must_contain_the_upgrade_token() {
    for value in ["keep-alive", "close", "upgraded", "Upgrade-Insecure", ""] {
        let e = error(&get(&replacing("Connection", value)));
        assert_eq!(e, HandshakeError::ConnectionNotUpgrade, "{value:?}");
        check_response(&e, 400, "Bad Request");
    }
    let e = error(&get(&without("Connection")));
    assert_eq!(e, HandshakeError::ConnectionNotUpgrade);
    for value in [
        "keep-alive, Upgrade",
        "keep-alive,upgrade",
        "UPGRADE",
        "upgrade",
        "Upgrade , keep-alive",
    ] {
        complete(&get(&replacing("Connection", value)));
    }
    // The token may come in a second Connection header.
    let mut headers = replacing("Connection", "keep-alive");
    headers.push(("Connection", "Upgrade"));
    complete(&get(&headers));
}

#[test]
fn key_must_be_base64_of_16_bytes() {
    for key in [
        "not base64!",
        "dGhlIHNhbXBsZSBub25jZQ",     // padding missing
        "YWFhYWFhYWFhYWFhYWFh",       // 15 bytes
        "YWFhYWFhYWFhYWFhYWFhYWE=",   // 17 bytes
        "dGhlIHNhbXBsZSBub25jZQ==AA", // trailing garbage
        "",
    ] {
        let e = error(&get(&replacing("Sec-WebSocket-Key", key)));
        assert_eq!(e, HandshakeError::BadKey, "{key:?}");
        check_response(&e, 400, "Bad Request");
    }
    // 16 bytes of 'a' is fine.
    let (request, _) = complete(&get(&replacing(
        "Sec-WebSocket-Key",
        "YWFhYWFhYWFhYWFhYWFhYQ==",
    )));
    assert_eq!(request.key(), "YWFhYWFhYWFhYWFhYWFhYQ==");
}

#[test]
fn missing_and_duplicate_keys_are_400() {
    let e = error(&get(&without("Sec-WebSocket-Key")));
    assert_eq!(e, HandshakeError::MissingKey);
    check_response(&e, 400, "Bad Request");
    for second in [KEY, "x3JJHMbDL1EzLkh9GBhXDw=="] {
        let mut headers = base();
        headers.push(("sec-websocket-key", second));
        let e = error(&get(&headers));
        assert_eq!(e, HandshakeError::DuplicateKey);
        check_response(&e, 400, "Bad Request");
    }
}

#[test]
fn unsupported_versions_are_426_naming_13() {
    for (headers, version) in [
        (replacing("Sec-WebSocket-Version", "8"), "8"),
        (replacing("Sec-WebSocket-Version", "12"), "12"),
        (replacing("Sec-WebSocket-Version", "13, 8"), "13, 8"),
        (without("Sec-WebSocket-Version"), ""),
    ] {
        let e = error(&get(&headers));
        assert_eq!(e, HandshakeError::UnsupportedVersion(version.into()));
        let response = check_response(&e, 426, "Upgrade Required");
        let lines = header_lines(&response);
        assert!(lines.contains(&"Sec-WebSocket-Version: 13"), "{lines:?}");
        assert!(lines.contains(&"Upgrade: websocket"), "{lines:?}");
    }
}

#[test]
fn hixie_76_is_426() {
    // draft-hixie-thewebsocketprotocol-76 §1.3, with its 8-byte key3.
    let raw = b"GET /demo HTTP/1.1\r\n\
                Host: example.com\r\n\
                Connection: Upgrade\r\n\
                Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n\
                Sec-WebSocket-Protocol: sample\r\n\
                Upgrade: WebSocket\r\n\
                Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\n\
                Origin: http://example.com\r\n\
                \r\n\
                ^n:ds[4U";
    let e = error(raw);
    assert_eq!(e, HandshakeError::UnsupportedVersion(String::new()));
    let response = check_response(&e, 426, "Upgrade Required");
    assert!(header_lines(&response).contains(&"Sec-WebSocket-Version: 13"));
}

fn small_header_config() -> Config {
    let mut config = Config::default();
    config.max_header_bytes = 256;
    config
}

/// A valid request whose head is exactly `len` bytes, padded with `X-Pad`.
fn request_of_len(len: usize) -> Vec<u8> {
    let short = get(&base());
    let overhead = get(&[BASE.as_slice(), &[("X-Pad", "")]].concat()).len();
    assert!(len > overhead, "{len} too short");
    let pad = "p".repeat(len - overhead);
    let mut headers = base();
    headers.push(("X-Pad", &pad));
    let raw = get(&headers);
    assert_eq!(raw.len(), len);
    assert!(raw.len() > short.len());
    raw
}

#[test]
fn headers_over_the_limit_are_431_partial_or_complete() {
    let config = small_header_config();
    // Exactly at the limit: fine, and every prefix is partial.
    let raw = request_of_len(256);
    let (_, len) = complete_with(&raw, &config);
    assert_eq!(len, 256);
    for n in 0..256 {
        assert!(matches!(
            parse_request(&raw[..n], &config),
            Ok(Parsed::Partial)
        ));
    }
    // One byte over: complete is refused, and so is a prefix that reaches
    // the limit without the blank line.
    let raw = request_of_len(257);
    let e = error_with(&raw, &config);
    assert_eq!(e, HandshakeError::HeadersTooLarge(256));
    check_response(&e, 431, "Request Header Fields Too Large");
    assert!(matches!(
        parse_request(&raw[..255], &config),
        Ok(Parsed::Partial)
    ));
    for n in 256..raw.len() {
        assert_eq!(
            error_with(&raw[..n], &config),
            HandshakeError::HeadersTooLarge(256),
            "prefix {n}"
        );
    }
    // Well over, with a frame behind it.
    let mut raw = request_of_len(1000);
    raw.extend_from_slice(b"\x81\x80abcd");
    assert_eq!(
        error_with(&raw, &config),
        HandshakeError::HeadersTooLarge(256)
    );
}

#[test]
fn a_64_kib_header_line_is_431_without_panic() {
    let mut raw = b"GET /chat HTTP/1.1\r\nHost: h\r\nX-Big: ".to_vec();
    raw.extend_from_slice(&[b'a'; 64 * 1024]);
    // As it arrives, 4 KiB at a time: partial until the 8 KiB limit.
    let limit = Config::default().max_header_bytes;
    for n in (0..=raw.len()).step_by(4096) {
        match parse(&raw[..n]) {
            Ok(Parsed::Partial) if n < limit => {}
            Err(HandshakeError::HeadersTooLarge(l)) if n >= limit => assert_eq!(l, limit),
            other => panic!("prefix {n}: {other:?}"),
        }
    }
    let e = error(&raw);
    assert_eq!(e, HandshakeError::HeadersTooLarge(8192));
    check_response(&e, 431, "Request Header Fields Too Large");
    // And completed with the rest of a valid request.
    raw.extend_from_slice(b"\r\n");
    raw.extend_from_slice(&get(&without("Host"))[b"GET /chat HTTP/1.1\r\n".len()..]);
    assert_eq!(error(&raw), HandshakeError::HeadersTooLarge(8192));
    // A 64 KiB request line too.
    let mut raw = b"GET /".to_vec();
    raw.extend_from_slice(&[b'a'; 64 * 1024]);
    assert_eq!(error(&raw), HandshakeError::HeadersTooLarge(8192));
    raw.extend_from_slice(b" HTTP/1.1\r\n");
    raw.extend_from_slice(&get(&base())[b"GET /chat HTTP/1.1\r\n".len()..]);
    assert_eq!(error(&raw), HandshakeError::HeadersTooLarge(8192));
}

#[test]
fn more_than_max_headers_is_431() {
    let names: Vec<String> = (0..MAX_HEADERS).map(|i| format!("X-H{i}")).collect();
    let extra = |n: usize| -> Vec<(&str, &str)> {
        let mut h = base();
        h.extend(names[..n].iter().map(|n| (n.as_str(), "v")));
        h
    };
    // Exactly MAX_HEADERS lines is fine.
    let (request, _) = complete(&get(&extra(MAX_HEADERS - BASE.len())));
    assert_eq!(request.headers().count(), MAX_HEADERS);
    // One more is not.
    let e = error(&get(&extra(MAX_HEADERS - BASE.len() + 1)));
    assert_eq!(e, HandshakeError::TooManyHeaders);
    check_response(&e, 431, "Request Header Fields Too Large");
}

#[test]
fn malformed_requests_are_400() {
    for raw in [
        &b"GET /chat\r\n\r\n"[..],
        &b"\x00\x01\x02\x03\r\n\r\n"[..],
        &b"GET /chat HTTP/1.1\r\nBad Header\r\n\r\n"[..],
        &b"GET /chat HTTP/1.1\r\nHost : x\r\n\r\n"[..],
    ] {
        let e = error(raw);
        assert!(matches!(e, HandshakeError::Malformed(_)), "{raw:?}: {e:?}");
        check_response(&e, 400, "Bad Request");
    }
}

#[test]
fn origin_allow_list() {
    let mut config = Config::default();
    config.allowed_origins = vec!["https://example.com".into(), "https://b.example".into()];
    // No Origin at all is refused when a list is set.
    let e = error_with(&get(&base()), &config);
    assert_eq!(e, HandshakeError::OriginNotAllowed);
    check_response(&e, 403, "Forbidden");
    for origin in [
        "https://evil.com",
        "http://example.com",
        "https://example.com.evil",
        "null",
    ] {
        let mut headers = base();
        headers.push(("Origin", origin));
        let e = error_with(&get(&headers), &config);
        assert_eq!(e, HandshakeError::OriginNotAllowed, "{origin}");
        check_response(&e, 403, "Forbidden");
    }
    for origin in [
        "https://example.com",
        "https://b.example",
        "HTTPS://Example.COM",
    ] {
        let mut headers = base();
        headers.push(("Origin", origin));
        let (request, _) = complete_with(&get(&headers), &config);
        assert_eq!(request.origin(), Some(origin));
    }
    // Without a list every origin is allowed.
    let mut headers = base();
    headers.push(("Origin", "https://evil.com"));
    complete(&get(&headers));
}

#[test]
fn error_responses_all_share_the_shape() {
    let cases = [
        (HandshakeError::Malformed("x".into()), 400, "Bad Request"),
        (
            HandshakeError::HeadersTooLarge(8192),
            431,
            "Request Header Fields Too Large",
        ),
        (
            HandshakeError::TooManyHeaders,
            431,
            "Request Header Fields Too Large",
        ),
        (
            HandshakeError::MethodNotAllowed("POST".into()),
            405,
            "Method Not Allowed",
        ),
        (
            HandshakeError::HttpVersion,
            505,
            "HTTP Version Not Supported",
        ),
        (HandshakeError::MissingHost, 400, "Bad Request"),
        (HandshakeError::NotWebSocket, 426, "Upgrade Required"),
        (HandshakeError::ConnectionNotUpgrade, 400, "Bad Request"),
        (
            HandshakeError::UnsupportedVersion("8".into()),
            426,
            "Upgrade Required",
        ),
        (HandshakeError::MissingKey, 400, "Bad Request"),
        (HandshakeError::DuplicateKey, 400, "Bad Request"),
        (HandshakeError::BadKey, 400, "Bad Request"),
        (HandshakeError::OriginNotAllowed, 403, "Forbidden"),
    ];
    for (e, status, reason) in cases {
        check_response(&e, status, reason);
    }
    // A line break in the message cannot split the body or inject headers.
    let e = HandshakeError::Malformed("a\r\nX-Injected: 1\nb".into());
    let response = check_response(&e, 400, "Bad Request");
    assert!(response.ends_with("\r\n\r\nmalformed HTTP request: a  X-Injected: 1 b\n"));
    assert_eq!(
        error_response(404, &[], "no such path"),
        b"HTTP/1.1 404 Not Found\r\n\
          Content-Type: text/plain; charset=utf-8\r\n\
          Content-Length: 13\r\n\
          Connection: close\r\n\
          \r\n\
          no such path\n"
    );
    assert_eq!(
        HandshakeError::NotWebSocket.response(),
        b"HTTP/1.1 426 Upgrade Required\r\n\
          Upgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\n\
          Content-Type: text/plain; charset=utf-8\r\n\
          Content-Length: 61\r\n\
          Connection: close\r\n\
          \r\n\
          this resource only speaks WebSocket: send Upgrade: websocket\n"
            .as_slice()
    );
}

// ----------------------------------------------------------------- accessors

#[test]
fn request_accessors() {
    let raw = b"GET /chat/room?x=1&y=%20 HTTP/1.1\r\n\
                Host: server.example.com:8080\r\n\
                Upgrade: websocket\r\n\
                connection: keep-alive, Upgrade\r\n\
                Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                Origin: https://example.com\r\n\
                Sec-WebSocket-Protocol: chat, superchat\r\n\
                Sec-WebSocket-Version: 13\r\n\
                sec-websocket-protocol:  v2.json ,, v1.json  \r\n\
                Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-foo; a=\"1,2;3\"; b = 4 ; c\r\n\
                SEC-WEBSOCKET-EXTENSIONS: x-bar\r\n\
                \r\n";
    let (request, len) = complete(raw);
    assert_eq!(len, raw.len());
    assert_eq!(request.method(), "GET");
    assert_eq!(request.target(), "/chat/room?x=1&y=%20");
    assert_eq!(request.path(), "/chat/room");
    assert_eq!(request.query(), Some("x=1&y=%20"));
    assert_eq!(request.host(), "server.example.com:8080");
    assert_eq!(request.origin(), Some("https://example.com"));
    assert_eq!(request.key(), KEY);
    let headers: Vec<(&str, &[u8])> = request.headers().collect();
    assert_eq!(
        headers,
        [
            ("Host", &b"server.example.com:8080"[..]),
            ("Upgrade", b"websocket"),
            ("connection", b"keep-alive, Upgrade"),
            ("Sec-WebSocket-Key", KEY.as_bytes()),
            ("Origin", b"https://example.com"),
            ("Sec-WebSocket-Protocol", b"chat, superchat"),
            ("Sec-WebSocket-Version", b"13"),
            ("sec-websocket-protocol", b"v2.json ,, v1.json"),
            (
                "Sec-WebSocket-Extensions",
                b"permessage-deflate; client_max_window_bits, x-foo; a=\"1,2;3\"; b = 4 ; c"
            ),
            ("SEC-WEBSOCKET-EXTENSIONS", b"x-bar"),
        ]
    );
    assert_eq!(
        request.header("CONNECTION"),
        Some(&b"keep-alive, Upgrade"[..])
    );
    assert_eq!(
        request.header("connection"),
        Some(&b"keep-alive, Upgrade"[..])
    );
    assert_eq!(
        request.header("sec-websocket-protocol"),
        Some(&b"chat, superchat"[..])
    );
    assert_eq!(request.header("X-Missing"), None);
    assert_eq!(request.header_str("ORIGIN"), Some("https://example.com"));
    let named: Vec<&[u8]> = request.headers_named("Sec-WebSocket-Protocol").collect();
    assert_eq!(named, [&b"chat, superchat"[..], b"v2.json ,, v1.json"]);
    let protocols: Vec<&str> = request.protocols().collect();
    assert_eq!(protocols, ["chat", "superchat", "v2.json", "v1.json"]);
    assert_eq!(
        request.extensions(),
        [
            ExtensionOffer {
                name: "permessage-deflate",
                params: vec![("client_max_window_bits", None)],
            },
            ExtensionOffer {
                name: "x-foo",
                params: vec![("a", Some("1,2;3")), ("b", Some("4")), ("c", None)],
            },
            ExtensionOffer {
                name: "x-bar",
                params: vec![],
            },
        ]
    );
}

#[test]
fn accessors_without_optional_headers() {
    let (request, _) = complete(&get(&base()));
    assert_eq!(request.target(), "/chat");
    assert_eq!(request.path(), "/chat");
    assert_eq!(request.query(), None);
    assert_eq!(request.origin(), None);
    assert_eq!(request.protocols().count(), 0);
    assert_eq!(request.extensions(), []);
    let (request, _) = complete(&build("GET /?q HTTP/1.1", &base()));
    assert_eq!(request.path(), "/");
    assert_eq!(request.query(), Some("q"));
    let (request, _) = complete(&build("GET /a?b?c HTTP/1.1", &base()));
    assert_eq!(request.path(), "/a");
    assert_eq!(request.query(), Some("b?c"));
}

#[test]
fn absolute_form_targets() {
    for (target, path, query) in [
        ("ws://server.example.com/chat?x=1", "/chat", Some("x=1")),
        ("wss://server.example.com:443/a/b", "/a/b", None),
        ("http://server.example.com", "/", None),
        ("https://server.example.com/", "/", None),
        ("http://server.example.com?k=v", "/", Some("k=v")),
    ] {
        let (request, _) = complete(&build(&format!("GET {target} HTTP/1.1"), &base()));
        assert_eq!(request.target(), target);
        assert_eq!(request.path(), path, "{target}");
        assert_eq!(request.query(), query, "{target}");
    }
}

// ------------------------------------------------- parse_head + validate

#[test]
fn parse_head_parses_plain_http_and_validate_refuses_it() {
    use wsloop::proto::handshake::parse_head;
    let config = Config::default();
    // A plain HTTP GET: a complete head, refused as NotWebSocket.
    let raw = b"GET /index.html?x HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\nextra";
    let Ok(Parsed::Complete { request, len }) = parse_head(raw, &config) else {
        panic!("complete head")
    };
    assert_eq!(len, raw.len() - 5);
    assert_eq!(request.path(), "/index.html");
    assert_eq!(request.query(), Some("x"));
    assert_eq!(request.validate(&config), Err(HandshakeError::NotWebSocket));
    // A POST is parsed, then refused with 405.
    let raw = build("POST /chat HTTP/1.1", &base());
    let Ok(Parsed::Complete { request, .. }) = parse_head(&raw, &config) else {
        panic!("complete head")
    };
    assert_eq!(request.method(), "POST");
    assert_eq!(
        request.validate(&config),
        Err(HandshakeError::MethodNotAllowed("POST".into()))
    );
    // A valid upgrade validates; parse_request agrees with parse_head + validate.
    let raw = get(&base());
    let Ok(Parsed::Complete { request, len }) = parse_head(&raw, &config) else {
        panic!("complete head")
    };
    assert_eq!(len, raw.len());
    assert_eq!(request.validate(&config), Ok(()));
    // Partial and the limits are parse_head's.
    assert!(matches!(
        parse_head(&raw[..raw.len() - 1], &config),
        Ok(Parsed::Partial)
    ));
    let config = small_header_config();
    assert_eq!(
        parse_head(&request_of_len(257), &config).unwrap_err(),
        HandshakeError::HeadersTooLarge(256)
    );
    assert_eq!(
        parse_head(&build("GET / HTTP/1.0", &[("Host", "h")]), &config)
            .map(|p| match p {
                Parsed::Complete { request, .. } => request.validate(&config),
                Parsed::Partial => panic!("complete"),
            })
            .unwrap(),
        Err(HandshakeError::HttpVersion)
    );
}
