//! The permessage-deflate negotiation (RFC 7692 §5, §7.1), server side.

use std::borrow::Cow;
use std::fmt::Write as _;

use super::{DeflateConfig, Deflater, Inflater};
use crate::proto::handshake::ExtensionOffer;

/// The extension's token in `Sec-WebSocket-Extensions`.
pub const EXTENSION_NAME: &str = "permessage-deflate";

pub use crate::config::MIN_SERVER_WINDOW_BITS;

/// What [`negotiate`] agreed: the parameters in force on the connection and
/// the `Sec-WebSocket-Extensions` value that tells the client so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreed {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: u8,
    client_max_window_bits: u8,
    level: u32,
    compress_threshold: usize,
    response: String,
}

impl Agreed {
    /// The server resets its compressor after every message.
    pub fn server_no_context_takeover(&self) -> bool {
        self.server_no_context_takeover
    }

    /// The client resets its compressor after every message, so the server
    /// resets its decompressor too.
    pub fn client_no_context_takeover(&self) -> bool {
        self.client_no_context_takeover
    }

    /// The window the server compresses with (9 to 15).
    pub fn server_max_window_bits(&self) -> u8 {
        self.server_max_window_bits
    }

    /// The largest window the client compresses with (8 to 15; 15 when the
    /// client did not offer `client_max_window_bits`).
    pub fn client_max_window_bits(&self) -> u8 {
        self.client_max_window_bits
    }

    /// The compression level the server's compressor uses.
    pub fn level(&self) -> u32 {
        self.level
    }

    /// Messages shorter than this are sent uncompressed.
    pub fn compress_threshold(&self) -> usize {
        self.compress_threshold
    }

    /// The `Sec-WebSocket-Extensions` response header value, for example
    /// `permessage-deflate; server_no_context_takeover; client_max_window_bits=12`.
    pub fn response(&self) -> &str {
        &self.response
    }

    /// The server's compressor for this connection: the server's window,
    /// reset after each message if `server_no_context_takeover`.
    pub fn deflater(&self) -> Deflater {
        Deflater::new(
            self.server_max_window_bits,
            self.level,
            self.server_no_context_takeover,
        )
    }

    /// The server's decompressor for this connection, reset after each
    /// message if `client_no_context_takeover` (its window is always 15
    /// bits, which reads the client's whatever its size).
    pub fn inflater(&self) -> Inflater {
        Inflater::new(self.client_no_context_takeover)
    }
}

/// Picks the first `permessage-deflate` offer in `offers` (in the client's
/// order, RFC 7692 §5) that the server can honour under `policy`, or `None`
/// when `policy.enabled` is off or no offer qualifies: the connection then
/// goes on without compression.
///
/// An offer is declined, never an error, when it is malformed (RFC 7692
/// §5: "a server MUST decline an extension negotiation offer" it cannot
/// parse): an unknown parameter, a parameter given twice, a value on
/// `server_no_context_takeover` or `client_no_context_takeover`, no value
/// on `server_max_window_bits`, or a window value that is not a decimal
/// 8 to 15 without leading zeros (quoted values, `"10"`, are fine, §7).
///
/// It is also declined when it asks for `server_max_window_bits=8`: the
/// server would have to answer with 8 or less (§7.1.2.1; answering 9 is not
/// allowed), and zlib cannot compress with an 8-bit window (it silently
/// uses 9, which an 8-bit decompressor may not follow). The client can add
/// a fallback offer, as browsers and `websockets` do, which is then taken.
///
/// What the answer holds:
/// - `server_no_context_takeover` when the client asked for it or the
///   policy wants it;
/// - `client_no_context_takeover` when the client hinted it or the policy
///   asks for it;
/// - `server_max_window_bits=N` when the client sent it (N is the smaller
///   of its value and the policy's) or when the policy limits the server
///   below 15;
/// - `client_max_window_bits=N` only when the client offered the parameter
///   (§7.1.2.2): with a value, N is the smaller of it and the policy's;
///   without one, it is the policy's, left out when that is 15.
pub fn negotiate(offers: &[ExtensionOffer<'_>], policy: &DeflateConfig) -> Option<Agreed> {
    if !policy.enabled {
        return None;
    }
    offers
        .iter()
        .filter(|o| o.name.eq_ignore_ascii_case(EXTENSION_NAME))
        .find_map(|o| Offer::parse(o)?.accept(policy))
}

/// One well-formed `permessage-deflate` offer.
#[derive(Debug, Default)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: offered without a value ("I can limit my window").
    client_max_window_bits: Option<Option<u8>>,
}

impl Offer {
    /// The offer's parameters, or `None` if it is malformed.
    fn parse(offer: &ExtensionOffer<'_>) -> Option<Offer> {
        let mut o = Offer::default();
        let mut seen = 0u8;
        for &(name, value) in &offer.params {
            let value = value.map(unescape);
            let value = value.as_deref();
            let bit = if name.eq_ignore_ascii_case("server_no_context_takeover") {
                value.is_none().then_some(())?;
                o.server_no_context_takeover = true;
                1
            } else if name.eq_ignore_ascii_case("client_no_context_takeover") {
                value.is_none().then_some(())?;
                o.client_no_context_takeover = true;
                2
            } else if name.eq_ignore_ascii_case("server_max_window_bits") {
                o.server_max_window_bits = Some(window_bits(value?)?);
                4
            } else if name.eq_ignore_ascii_case("client_max_window_bits") {
                o.client_max_window_bits = Some(match value {
                    Some(v) => Some(window_bits(v)?),
                    None => None,
                });
                8
            } else {
                return None; // unknown parameter
            };
            if seen & bit != 0 {
                return None; // §7: a parameter may appear once
            }
            seen |= bit;
        }
        Some(o)
    }

    /// The agreement for this offer, or `None` if the server cannot honour it.
    fn accept(&self, policy: &DeflateConfig) -> Option<Agreed> {
        // A policy that skipped validate() is clamped rather than trusted.
        let policy_server = policy
            .server_max_window_bits
            .clamp(MIN_SERVER_WINDOW_BITS, 15);
        let policy_client = policy.client_max_window_bits.clamp(8, 15);

        let server_max_window_bits = match self.server_max_window_bits {
            Some(bits) if bits < MIN_SERVER_WINDOW_BITS => return None,
            Some(bits) => bits.min(policy_server),
            None => policy_server,
        };
        let send_server_bits = self.server_max_window_bits.is_some() || server_max_window_bits < 15;

        let (client_max_window_bits, send_client_bits) = match self.client_max_window_bits {
            // Not offered: the server must not send it; the client uses up to 15.
            None => (15, false),
            Some(None) => (policy_client, policy_client < 15),
            Some(Some(bits)) => (bits.min(policy_client), true),
        };

        let server_no_context_takeover =
            self.server_no_context_takeover || policy.server_no_context_takeover;
        let client_no_context_takeover =
            self.client_no_context_takeover || policy.client_no_context_takeover;

        let mut response = String::with_capacity(120);
        response.push_str(EXTENSION_NAME);
        if server_no_context_takeover {
            response.push_str("; server_no_context_takeover");
        }
        if client_no_context_takeover {
            response.push_str("; client_no_context_takeover");
        }
        // Writing to a String cannot fail.
        if send_server_bits {
            let _ = write!(
                response,
                "; server_max_window_bits={server_max_window_bits}"
            );
        }
        if send_client_bits {
            let _ = write!(
                response,
                "; client_max_window_bits={client_max_window_bits}"
            );
        }
        Some(Agreed {
            server_no_context_takeover,
            client_no_context_takeover,
            server_max_window_bits,
            client_max_window_bits,
            level: policy.level.min(9),
            compress_threshold: policy.compress_threshold,
            response,
        })
    }
}

/// A window size value: a decimal 8 to 15 without leading zeros (RFC 7692
/// §7.1.2.1, §7.1.2.2: `1*DIGIT`, no sign, no spaces).
fn window_bits(value: &str) -> Option<u8> {
    if value.is_empty()
        || !value.bytes().all(|b| b.is_ascii_digit())
        || (value.len() > 1 && value.starts_with('0'))
    {
        return None;
    }
    let bits: u8 = value.parse().ok()?;
    (8..=15).contains(&bits).then_some(bits)
}

/// A parameter value with the quoted-string escapes undone (RFC 7230
/// §3.2.6: `\x` stands for `x`; the handshake already removed the quotes).
fn unescape(value: &str) -> Cow<'_, str> {
    if !value.contains('\\') {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer<'a>(params: &[(&'a str, Option<&'a str>)]) -> ExtensionOffer<'a> {
        ExtensionOffer {
            name: EXTENSION_NAME,
            params: params.to_vec(),
        }
    }

    fn on() -> DeflateConfig {
        DeflateConfig {
            enabled: true,
            ..DeflateConfig::default()
        }
    }

    #[test]
    fn window_bits_values() {
        for (value, bits) in [("8", Some(8)), ("9", Some(9)), ("15", Some(15))] {
            assert_eq!(window_bits(value), bits, "{value}");
        }
        for bad in [
            "", "7", "16", "08", "+9", "-9", " 9", "9 ", "1.5", "x", "255", "256",
        ] {
            assert_eq!(window_bits(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn unescape_quoted_pairs() {
        assert_eq!(unescape("10"), "10");
        assert_eq!(unescape(r"1\0"), "10");
        assert_eq!(unescape(r"\\"), r"\");
        assert_eq!(unescape("1\\"), "1");
    }

    #[test]
    fn disabled_policy_declines_everything() {
        let policy = DeflateConfig {
            enabled: false,
            ..DeflateConfig::default()
        };
        assert_eq!(negotiate(&[offer(&[])], &policy), None);
        assert!(negotiate(&[offer(&[])], &on()).is_some());
    }

    #[test]
    fn agreed_builds_codecs_with_its_windows() {
        let policy = DeflateConfig { level: 6, ..on() };
        let agreed = negotiate(
            &[offer(&[
                ("server_max_window_bits", Some("10")),
                ("client_max_window_bits", Some("8")),
            ])],
            &policy,
        )
        .unwrap();
        assert_eq!(agreed.deflater().window_bits(), 10);
        assert!(!agreed.inflater().no_context_takeover());
        assert_eq!(agreed.level, 6);
    }
}
