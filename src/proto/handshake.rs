//! The HTTP/1.1 upgrade handshake (RFC 6455 §4.2). No I/O.
//!
//! ```text
//! bytes ──► head_complete? ──no──► keep reading (Partial: not an error)
//!                │ yes
//!                ▼
//!          httparse ──► validate (§4.2.1) ──► Request ──► handler decides
//!                │              │                             │
//!                │              └─► HandshakeError ──► 4xx/5xx response, close
//!                └─ bytes after the blank line: the first frames, handed on
//!                                                             ▼
//!                                           101 + Sec-WebSocket-Accept
//! ```
//!
//! [`parse_request`] is a push parser: it answers [`Parsed::Partial`] until
//! the blank line ends the head, and [`Parsed::Complete`] with the head's
//! length, so bytes a client sends right behind its request are never lost.
//! The parsed [`Request`] keeps one copy of the head and indexes into it.

use std::ops::Range;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha1::{Digest, Sha1};
use thiserror::Error;

use crate::config::Config;

/// The GUID of RFC 6455 §1.3, appended to the key before hashing.
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Optional whitespace around list elements and values: space and tab only
/// (RFC 9110 §5.6.3). `str::trim` would also strip Unicode spaces such as
/// U+00A0 and U+2028, letting `Upgrade\u{2028}` pass as the token `upgrade`.
const OWS: [char; 2] = [' ', '\t'];

fn trim_ows(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// Header lines accepted in one request; more get HTTP 431. Browsers send
/// about 15; this bounds httparse's stack array and the work per request.
pub const MAX_HEADERS: usize = 64;

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2 item 5.4):
/// base64(SHA-1(key + GUID)).
///
/// ```
/// assert_eq!(
///     wsloop::proto::handshake::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
///     "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
/// );
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID.as_bytes());
    BASE64.encode(sha.finalize())
}

/// A request the handshake refused, with the HTTP status it is answered
/// with. Every variant is the client's fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HandshakeError {
    /// The request head could not be parsed as HTTP/1.x.
    #[error("malformed HTTP request: {0}")]
    Malformed(String),
    /// Request line and headers are longer than `max_header_bytes`.
    #[error("request headers exceed {0} bytes")]
    HeadersTooLarge(usize),
    /// More header lines than [`MAX_HEADERS`].
    #[error("more than {MAX_HEADERS} request headers")]
    TooManyHeaders,
    /// §4.2.1 item 1: the method must be GET.
    #[error("method {0} not allowed, use GET")]
    MethodNotAllowed(String),
    /// §4.2.1 item 1: HTTP/1.1 or higher.
    #[error("HTTP/1.1 or later is required")]
    HttpVersion,
    /// §4.2.1 item 2: a `Host` header.
    #[error("missing Host header")]
    MissingHost,
    /// RFC 9112 §3.2: more than one `Host` header.
    #[error("more than one Host header")]
    DuplicateHost,
    /// §4.2.1 item 3: no `Upgrade: websocket`; a plain HTTP request.
    #[error("this resource only speaks WebSocket: send Upgrade: websocket")]
    NotWebSocket,
    /// §4.2.1 item 4: `Connection` must contain the token `upgrade`.
    #[error("Connection header must contain the token upgrade")]
    ConnectionNotUpgrade,
    /// §4.2.1 item 6: only version 13 is spoken (also refuses the obsolete
    /// hixie-75/76 drafts, which send no version).
    #[error("unsupported WebSocket version {0:?}, only 13 is supported")]
    UnsupportedVersion(String),
    /// §4.2.1 item 5: no `Sec-WebSocket-Key`.
    #[error("missing Sec-WebSocket-Key header")]
    MissingKey,
    /// §11.3.1: the key must appear once.
    #[error("Sec-WebSocket-Key header appears more than once")]
    DuplicateKey,
    /// §4.2.1 item 5: the key must base64-decode to exactly 16 bytes.
    #[error("Sec-WebSocket-Key must be base64 of 16 bytes")]
    BadKey,
    /// §4.2.2 item 4 and §10.2: the `Origin` is not on the allow-list.
    #[error("origin not allowed")]
    OriginNotAllowed,
}

impl HandshakeError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::HeadersTooLarge(_) | HandshakeError::TooManyHeaders => 431,
            HandshakeError::MethodNotAllowed(_) => 405,
            HandshakeError::HttpVersion => 505,
            HandshakeError::NotWebSocket | HandshakeError::UnsupportedVersion(_) => 426,
            HandshakeError::OriginNotAllowed => 403,
            _ => 400,
        }
    }

    /// The complete HTTP response: status, the headers the status requires
    /// (`Allow`, `Upgrade`, `Sec-WebSocket-Version`), `Connection: close`, and
    /// the error as a one-line body.
    pub fn response(&self) -> Vec<u8> {
        self.response_for(false)
    }

    /// [`HandshakeError::response`], without its body when `head_only` (the
    /// answer to a `HEAD` request: the status and headers a `GET` gets).
    pub fn response_for(&self, head_only: bool) -> Vec<u8> {
        let extra: &[(&str, &str)] = match self {
            HandshakeError::MethodNotAllowed(_) => &[("Allow", "GET, HEAD")],
            // RFC 7231 §6.5.15: a 426 names the protocol to upgrade to;
            // RFC 6455 §4.2.2: and the versions the server speaks.
            HandshakeError::NotWebSocket | HandshakeError::UnsupportedVersion(_) => {
                &[("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")]
            }
            _ => &[],
        };
        let mut body = self.to_string().replace(['\r', '\n'], " ");
        body.push('\n');
        http_answer(self.status(), extra, TEXT_PLAIN, body.as_bytes(), head_only)
    }
}

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// An HTTP response with `Connection: close` and `message` as a one-line
/// plain-text body, for refusals (also 404 and 503 from the server layer).
pub fn error_response(status: u16, extra: &[(&str, &str)], message: &str) -> Vec<u8> {
    let mut body = message.replace(['\r', '\n'], " ");
    body.push('\n');
    http_response(status, extra, TEXT_PLAIN, body.as_bytes())
}

/// A complete HTTP/1.1 response that closes the connection.
pub fn http_response(
    status: u16,
    extra: &[(&str, &str)],
    content_type: &str,
    body: &[u8],
) -> Vec<u8> {
    http_answer(status, extra, content_type, body, false)
}

/// [`http_response`], without the body when `head_only` (`Content-Length`
/// still gives the body's length, RFC 9110 §9.3.2).
fn http_answer(
    status: u16,
    extra: &[(&str, &str)],
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + body.len());
    out.extend_from_slice(format!("HTTP/1.1 {} {}\r\n", status, reason_phrase(status)).as_bytes());
    for (name, value) in extra {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

/// A plain HTTP response, for requests that are not WebSocket upgrades
/// (see [`Handler::on_http`](crate::Handler::on_http)). The connection
/// closes after it; a `HEAD` request gets its status and headers only.
///
/// ```
/// use wsloop::{ConnId, Ctx, Handler, HttpResponse, Message, Request};
/// struct Site;
/// impl Handler for Site {
///     type Data = ();
///     fn on_message(&mut self, _: &mut Ctx<'_, ()>, _: ConnId, _: Message<'_>) {}
///     fn on_http(&mut self, req: &Request) -> Option<HttpResponse> {
///         match req.path() {
///             "/" => Some(HttpResponse::new(200, "text/html", "<h1>hi</h1>")),
///             "/health" => Some(HttpResponse::text(200, "ok")),
///             _ => None, // 426 Upgrade Required
///         }
///     }
/// }
/// let page = HttpResponse::text(200, "ok").to_bytes(false);
/// assert!(page.starts_with(b"HTTP/1.1 200 OK\r\n"));
/// assert!(page.ends_with(b"\r\n\r\nok\n"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type` header.
    pub content_type: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response with a body of the given type.
    pub fn new(
        status: u16,
        content_type: impl Into<String>,
        body: impl Into<Vec<u8>>,
    ) -> HttpResponse {
        HttpResponse {
            status,
            content_type: content_type.into(),
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// A one-line plain-text response.
    pub fn text(status: u16, message: &str) -> HttpResponse {
        HttpResponse::new(status, TEXT_PLAIN, format!("{message}\n"))
    }

    /// The response's bytes; without the body when `head_only` (the answer
    /// to a `HEAD` request).
    pub fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let extra: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        http_answer(
            self.status,
            &extra,
            &self.content_type,
            &self.body,
            head_only,
        )
    }
}

/// The reason phrase for the statuses wsloop sends.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// The `101 Switching Protocols` response for `request`, with an optional
/// chosen subprotocol (RFC 6455 §4.2.2 item 5) and extension answer.
///
/// ```
/// use wsloop::proto::handshake::{parse_request, accept_response, Parsed};
/// let raw = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
///             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///             Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";
/// let Parsed::Complete { request, .. } = parse_request(raw, &Default::default()).unwrap() else {
///     panic!("complete request")
/// };
/// let response = accept_response(&request, Some("chat"), None);
/// assert_eq!(
///     std::str::from_utf8(&response).unwrap(),
///     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
///      Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
/// );
/// ```
pub fn accept_response(
    request: &Request,
    protocol: Option<&str>,
    extensions: Option<&str>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept_key(request.key().as_bytes()).as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(p) = protocol {
        out.extend_from_slice(b"Sec-WebSocket-Protocol: ");
        out.extend_from_slice(p.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(e) = extensions {
        out.extend_from_slice(b"Sec-WebSocket-Extensions: ");
        out.extend_from_slice(e.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Whether `buf` holds the blank line that ends a request head. `from` is
/// how much of `buf` was already searched, so that a request arriving a byte
/// at a time is scanned once in total rather than once per byte.
#[doc(hidden)]
pub fn head_complete(buf: &[u8], from: usize) -> bool {
    let start = from.saturating_sub(3);
    let tail = &buf[start.min(buf.len())..];
    // RFC 7230 §3.5 (and httparse): a line ends at LF, a CR before it is
    // ignored, so the head ends at LF, optional CR, LF ("\n\r\n" after a
    // bare-LF line included).
    tail.windows(2)
        .enumerate()
        .any(|(i, w)| w == b"\n\n" || (w == b"\r\n" && i >= 1 && tail[i - 1] == b'\n'))
}

/// Result of [`parse_request`].
#[derive(Debug)]
pub enum Parsed {
    /// A valid upgrade request and the length of its head; bytes after it
    /// belong to the WebSocket connection.
    Complete {
        /// The request.
        request: Request,
        /// Bytes of `buf` the head took.
        len: usize,
    },
    /// More bytes are needed.
    Partial,
}

/// Parses and validates an upgrade request from the start of `buf`
/// (RFC 6455 §4.2.1), within `config.max_header_bytes` and
/// `config.allowed_origins`: [`parse_head`] then [`Request::validate`].
pub fn parse_request(buf: &[u8], config: &Config) -> Result<Parsed, HandshakeError> {
    let parsed = parse_head(buf, config)?;
    if let Parsed::Complete { request, .. } = &parsed {
        request.validate(config)?;
    }
    Ok(parsed)
}

/// Parses an HTTP/1.x request head from the start of `buf` within
/// `config.max_header_bytes`, without the WebSocket checks, so that a plain
/// HTTP request can still be routed (see [`Request::validate`]).
pub fn parse_head(buf: &[u8], config: &Config) -> Result<Parsed, HandshakeError> {
    let limit = config.max_header_bytes;
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= limit => {
            return Err(HandshakeError::HeadersTooLarge(limit))
        }
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooManyHeaders),
        Err(httparse::Error::Version) => return Err(HandshakeError::HttpVersion),
        // A head that is both too long and broken: the size is the clearer answer.
        Err(_) if buf.len() > limit => return Err(HandshakeError::HeadersTooLarge(limit)),
        Err(e) => return Err(HandshakeError::Malformed(e.to_string())),
    };
    if len > limit {
        return Err(HandshakeError::HeadersTooLarge(limit));
    }
    let request = Request::from_parsed(&buf[..len], &req);
    Ok(Parsed::Complete { request, len })
}

/// A parsed upgrade request. It owns one copy of the request head.
///
/// ```
/// use wsloop::proto::handshake::{parse_request, Parsed};
/// let raw = b"GET /chat?room=7 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///     Sec-WebSocket-Protocol: chat, superchat\r\nOrigin: https://example.com\r\n\
///     Sec-WebSocket-Version: 13\r\n\r\n";
/// let Parsed::Complete { request, .. } = parse_request(raw, &Default::default()).unwrap() else {
///     unreachable!("a whole request")
/// };
/// assert_eq!((request.path(), request.query()), ("/chat", Some("room=7")));
/// assert_eq!(request.origin(), Some("https://example.com"));
/// assert_eq!(request.protocols().collect::<Vec<_>>(), ["chat", "superchat"]);
/// assert_eq!(request.header_str("host"), Some("example.com"));
/// ```
#[derive(Debug, Clone)]
pub struct Request {
    raw: Box<[u8]>,
    method: Range<usize>,
    target: Range<usize>,
    version: u8,
    headers: Vec<(Range<usize>, Range<usize>)>,
}

impl Request {
    fn from_parsed(head: &[u8], req: &httparse::Request<'_, '_>) -> Request {
        let base = head.as_ptr() as usize;
        // httparse hands out sub-slices of `head`; keep them as offsets.
        let range = |s: &[u8]| {
            let start = s.as_ptr() as usize - base;
            start..start + s.len()
        };
        let method = req.method.map(|m| range(m.as_bytes())).unwrap_or(0..0);
        let target = req.path.map(|p| range(p.as_bytes())).unwrap_or(0..0);
        let headers = req
            .headers
            .iter()
            .map(|h| (range(h.name.as_bytes()), range(h.value)))
            .collect();
        Request {
            raw: head.into(),
            method,
            target,
            version: req.version.unwrap_or(1),
            headers,
        }
    }

    fn str_at(&self, r: &Range<usize>) -> &str {
        // Method, target and header names passed httparse's token checks,
        // which admit only visible ASCII.
        std::str::from_utf8(&self.raw[r.clone()]).unwrap_or("")
    }

    /// Checks the request against RFC 6455 §4.2.1 and the origin
    /// allow-list; [`HandshakeError::NotWebSocket`] means a plain HTTP
    /// request.
    pub fn validate(&self, config: &Config) -> Result<(), HandshakeError> {
        let method = self.method();
        // HEAD is answered wherever GET is (RFC 9110 §9.3.2), as plain HTTP:
        // only a GET upgrades.
        if method != "GET" && method != "HEAD" {
            return Err(HandshakeError::MethodNotAllowed(method.to_owned()));
        }
        if self.version < 1 {
            return Err(HandshakeError::HttpVersion);
        }
        // RFC 9112 §3.2: no Host, or more than one, is a 400.
        match self.headers_named("host").count() {
            0 => return Err(HandshakeError::MissingHost),
            1 => {}
            _ => return Err(HandshakeError::DuplicateHost),
        }
        if method == "HEAD" || !self.has_token("upgrade", "websocket") {
            return Err(HandshakeError::NotWebSocket);
        }
        if !self.has_token("connection", "upgrade") {
            return Err(HandshakeError::ConnectionNotUpgrade);
        }
        match self.header("sec-websocket-version") {
            Some(v) if trim_ows(v) == b"13" => {}
            Some(v) => {
                return Err(HandshakeError::UnsupportedVersion(
                    String::from_utf8_lossy(trim_ows(v)).into_owned(),
                ))
            }
            None => return Err(HandshakeError::UnsupportedVersion(String::new())),
        }
        let mut keys = self.headers_named("sec-websocket-key");
        let key = keys.next().ok_or(HandshakeError::MissingKey)?;
        if keys.next().is_some() {
            return Err(HandshakeError::DuplicateKey);
        }
        match BASE64.decode(trim_ows(key)) {
            Ok(bytes) if bytes.len() == 16 => {}
            _ => return Err(HandshakeError::BadKey),
        }
        if !config.allowed_origins.is_empty() {
            let allowed = self.origin().is_some_and(|o| {
                config
                    .allowed_origins
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(o))
            });
            if !allowed {
                return Err(HandshakeError::OriginNotAllowed);
            }
        }
        Ok(())
    }

    /// The request method (always `GET` once validated).
    pub fn method(&self) -> &str {
        self.str_at(&self.method)
    }

    /// The request target as sent: path and query.
    pub fn target(&self) -> &str {
        self.str_at(&self.target)
    }

    /// The path, without the query (absolute-form targets are reduced to it).
    pub fn path(&self) -> &str {
        let mut t = self.target();
        for scheme in ["http://", "https://", "ws://", "wss://"] {
            if let Some(rest) = t.strip_prefix(scheme) {
                t = rest.find('/').map_or("/", |i| &rest[i..]);
                break;
            }
        }
        t.split_once('?').map_or(t, |(p, _)| p)
    }

    /// The query string after `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.target().split_once('?').map(|(_, q)| q)
    }

    /// Every header as (name, value), in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers
            .iter()
            .map(|(n, v)| (self.str_at(n), &self.raw[v.clone()]))
    }

    /// Values of every header called `name` (case-insensitive), in order.
    pub fn headers_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s [u8]> + 's {
        self.headers()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The first header called `name`, if its value is UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The `Host` header.
    pub fn host(&self) -> &str {
        self.header_str("host").unwrap_or("")
    }

    /// The `Origin` header, sent by browsers.
    pub fn origin(&self) -> Option<&str> {
        self.header_str("origin")
    }

    /// The `Sec-WebSocket-Key` header, trimmed.
    pub fn key(&self) -> &str {
        self.header_str("sec-websocket-key")
            .map_or("", |k| k.trim_matches(OWS))
    }

    /// Subprotocols offered in every `Sec-WebSocket-Protocol` header, in the
    /// client's order of preference.
    pub fn protocols(&self) -> impl Iterator<Item = &str> {
        self.list("sec-websocket-protocol")
    }

    /// Extensions offered in every `Sec-WebSocket-Extensions` header, in
    /// order (RFC 6455 §9.1), with their parameters.
    pub fn extensions(&self) -> Vec<ExtensionOffer<'_>> {
        self.headers_named("sec-websocket-extensions")
            .filter_map(|v| std::str::from_utf8(v).ok())
            .flat_map(split_outside_quotes(','))
            .filter_map(ExtensionOffer::parse)
            .collect()
    }

    /// Comma-separated elements of every header called `name`, trimmed.
    fn list<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.headers_named(name)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim_matches(OWS))
            .filter(|s| !s.is_empty())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.list(name).any(|t| t.eq_ignore_ascii_case(token))
    }
}

/// One extension offer: a name and its parameters (RFC 6455 §9.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionOffer<'a> {
    /// The extension's token, e.g. `permessage-deflate`.
    pub name: &'a str,
    /// Parameters as (name, value); a quoted value is given without quotes.
    pub params: Vec<(&'a str, Option<&'a str>)>,
}

impl<'a> ExtensionOffer<'a> {
    fn parse(offer: &'a str) -> Option<Self> {
        let mut parts = split_outside_quotes(';')(offer).map(|p| p.trim_matches(OWS));
        let name = parts.next().filter(|n| !n.is_empty())?;
        let params = parts
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => {
                    let v = v.trim_matches(OWS);
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(v);
                    (k.trim_matches(OWS), Some(v))
                }
                None => (p, None),
            })
            .collect();
        Some(ExtensionOffer { name, params })
    }
}

/// Splits on `sep` where it is not inside a quoted string.
fn split_outside_quotes(sep: char) -> impl Fn(&str) -> std::vec::IntoIter<&str> {
    move |s: &str| {
        let mut parts = Vec::new();
        let (mut start, mut quoted, mut escaped) = (0, false, false);
        for (i, c) in s.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                c if c == sep && !quoted => {
                    parts.push(&s[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&s[start..]);
        parts.into_iter()
    }
}
