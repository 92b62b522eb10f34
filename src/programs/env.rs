//! The environment a program starts with: CGI/1.1's variables as
//! websocketd sets them, the request's headers as `HTTP_*`, and only the
//! variables of the server's own environment that `passenv` names.

use std::ffi::OsString;
use std::net::SocketAddr;

use crate::Request;

/// `SERVER_SOFTWARE`.
const SOFTWARE: &str = concat!("wsloop/", env!("CARGO_PKG_VERSION"));

/// The program's whole environment for `req` from `peer`.
pub(super) fn cgi(
    req: &Request,
    peer: Option<SocketAddr>,
    passenv: &[String],
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| env.push((k.to_owned(), clean(v.as_bytes())));
    let host = req.host();
    let (server_name, server_port) = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(']') || host.starts_with('[') => (name, port),
        _ => (host, "80"),
    };
    set("GATEWAY_INTERFACE", "CGI/1.1");
    set("SERVER_SOFTWARE", SOFTWARE);
    set("SERVER_PROTOCOL", "HTTP/1.1");
    set("SERVER_NAME", server_name);
    set("SERVER_PORT", server_port);
    set("REQUEST_METHOD", req.method());
    set("REQUEST_URI", req.target());
    set("SCRIPT_NAME", req.path());
    set("PATH_INFO", "");
    set("QUERY_STRING", req.query().unwrap_or(""));
    if let Some(peer) = peer {
        set("REMOTE_ADDR", &peer.ip().to_string());
        set("REMOTE_PORT", &peer.port().to_string());
    }
    for (name, value) in req.headers() {
        let key: String = "HTTP_"
            .chars()
            .chain(name.chars().map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            }))
            .collect();
        // A header given twice is joined as HTTP/1.1 allows (RFC 9110 §5.3).
        match env.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => {
                v.push_str(", ");
                v.push_str(&clean(value));
            }
            None => env.push((key, clean(value))),
        }
    }
    env.into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .chain(passed(passenv))
        .collect()
}

/// A shared program's environment: no request of its own (each client's
/// comes in its `open` event), so the server's name, the route and
/// `passenv`.
pub(super) fn shared(route: &str, passenv: &[String]) -> Vec<(OsString, OsString)> {
    [("SERVER_SOFTWARE", SOFTWARE), ("SCRIPT_NAME", route)]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .chain(passed(passenv))
        .collect()
}

/// The variables of the server's own environment that `passenv` names.
fn passed(passenv: &[String]) -> impl Iterator<Item = (OsString, OsString)> + '_ {
    passenv
        .iter()
        .filter_map(|name| Some((name.into(), std::env::var_os(name)?)))
}

/// A header value as it may enter an environment: control characters
/// (CR, LF, NUL, escapes) never reach a program raw; each becomes a space.
fn clean(value: &[u8]) -> String {
    String::from_utf8_lossy(value)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::handshake::{parse_request, Parsed};

    fn request(extra: &str) -> Request {
        let raw = format!(
            "GET /chat/room?name=ann HTTP/1.1\r\nHost: example.com:8080\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n{extra}\r\n"
        );
        match parse_request(raw.as_bytes(), &Default::default()).unwrap() {
            Parsed::Complete { request, .. } => request,
            Parsed::Partial => unreachable!("a whole request"),
        }
    }

    fn get<'a>(env: &'a [(OsString, OsString)], key: &str) -> Option<&'a str> {
        env.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.to_str().unwrap())
    }

    #[test]
    fn cgi_variables_headers_and_passenv_only() {
        std::env::set_var("WSLOOP_TEST_PASSED", "yes");
        std::env::set_var("WSLOOP_TEST_HIDDEN", "no");
        let req = request("X-Custom-Thing: a\tb\r\nAccept: x\r\nAccept: y\r\n");
        let peer = "127.0.0.1:5555".parse().ok();
        let env = cgi(&req, peer, &["WSLOOP_TEST_PASSED".into()]);
        assert_eq!(get(&env, "REMOTE_ADDR"), Some("127.0.0.1"));
        assert_eq!(get(&env, "REMOTE_PORT"), Some("5555"));
        assert_eq!(get(&env, "SERVER_NAME"), Some("example.com"));
        assert_eq!(get(&env, "SERVER_PORT"), Some("8080"));
        assert_eq!(get(&env, "REQUEST_URI"), Some("/chat/room?name=ann"));
        assert_eq!(get(&env, "SCRIPT_NAME"), Some("/chat/room"));
        assert_eq!(get(&env, "QUERY_STRING"), Some("name=ann"));
        assert_eq!(get(&env, "GATEWAY_INTERFACE"), Some("CGI/1.1"));
        assert_eq!(get(&env, "HTTP_HOST"), Some("example.com:8080"));
        // Control characters never reach the program raw.
        assert_eq!(get(&env, "HTTP_X_CUSTOM_THING"), Some("a b"));
        assert_eq!(get(&env, "HTTP_ACCEPT"), Some("x, y"));
        assert_eq!(get(&env, "WSLOOP_TEST_PASSED"), Some("yes"));
        assert_eq!(get(&env, "WSLOOP_TEST_HIDDEN"), None);
        assert_eq!(get(&env, "PATH"), None, "not unless passed");
    }
}
