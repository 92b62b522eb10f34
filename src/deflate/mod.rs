//! permessage-deflate (RFC 7692): the negotiation and the per-message codec.
//! No I/O.
//!
//! ```text
//! Sec-WebSocket-Extensions offers ──► negotiate(policy) ──► Agreed ──► response header value
//!                                                             │
//!                        ┌────────────────────────────────────┴──────────────┐
//!                        ▼                                                   ▼
//!   outgoing message ─► Deflater ─► RSV1 body          RSV1 frames' payloads ─► Inflater ─► message
//!       deflate, sync flush, strip 00 00 ff ff           feed piece by piece (≤ max_out), finish:
//!       (reset after it: no context takeover)            append 00 00 ff ff (reset: no takeover)
//! ```
//!
//! [`negotiate`] walks the client's offers in order and accepts the first
//! `permessage-deflate` offer the server can honour (RFC 7692 §5, §7.1);
//! malformed offers are declined, never an error. [`Agreed`] holds the
//! parameters, the exact `Sec-WebSocket-Extensions` answer, and builds the
//! server's [`Deflater`] (compresses what the server sends, with the
//! server's window) and [`Inflater`] (decompresses what the client sends,
//! with a 32 KiB window that reads any client's).
//!
//! The Inflater is the untrusted side: it inflates in bounded steps and
//! stops with [`InflateError::TooBig`] (close code 1009) as soon as a
//! message would pass its limit, so a small "deflate bomb" never turns into
//! a large buffer.
//!
//! The backend is flate2 on zlib-rs (pure Rust): the one flate2 backend
//! that takes raw-deflate window sizes (`new_with_window_bits`), which the
//! `*_max_window_bits` parameters need. zlib cannot compress raw deflate
//! with an 8-bit window, so the server never agrees to
//! `server_max_window_bits=8` (see [`negotiate`]).
//!
//! ```
//! use wsloop::deflate::{negotiate, DeflateConfig};
//! use wsloop::handshake::ExtensionOffer;
//!
//! let mut policy = DeflateConfig::default();
//! policy.enabled = true;
//! let offer = ExtensionOffer {
//!     name: "permessage-deflate",
//!     params: vec![("client_max_window_bits", None)],
//! };
//! let agreed = negotiate(&[offer], &policy).expect("accepted");
//! assert_eq!(agreed.response(), "permessage-deflate");
//!
//! let (mut deflater, mut inflater) = (agreed.deflater(), agreed.inflater());
//! let mut body = Vec::new();
//! deflater.compress(b"Hello", &mut body); // the RSV1 frame's payload
//! assert_eq!(body, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]); // RFC 7692 §7.2.3.1
//!
//! let mut message = Vec::new();
//! inflater.feed(&body, &mut message, 1 << 20).unwrap();
//! inflater.finish(&mut message, 1 << 20).unwrap();
//! assert_eq!(message, b"Hello");
//! ```

mod codec;
mod negotiate;
mod session;

pub use codec::{Deflater, InflateError, Inflater, INFLATE_STEP, TRAILER};
pub use negotiate::{negotiate, Agreed, EXTENSION_NAME, MIN_SERVER_WINDOW_BITS};
pub use session::{compress_shared, Session};

use crate::config::ConfigError;

/// The server's permessage-deflate policy: whether to accept the extension
/// and the parameters it asks for. Build it from [`DeflateConfig::default`]
/// and change fields:
///
/// ```
/// let mut deflate = wsloop::deflate::DeflateConfig::default();
/// deflate.enabled = true;
/// deflate.server_no_context_takeover = true; // no compressor state kept between messages
/// deflate.validate().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// Whether offers are accepted at all. Default `true`: every browser
    /// offers the extension, and it costs nothing until a message is
    /// compressed. Then a connection with context takeover keeps its own
    /// compressor and decompressor from its first compressed message on:
    /// about 330 KiB of server memory per client at 15 bits with zlib-rs
    /// (measured, BENCHMARKS.md); without context takeover
    /// (`server_no_context_takeover`, `client_no_context_takeover`) a codec
    /// is borrowed from a few per-thread spares for one message, and a
    /// client costs about 1.3 KiB. A connection that does not offer the
    /// extension pays one pointer.
    pub enabled: bool,
    /// The largest LZ77 window (base-2 logarithm) the server compresses
    /// with, 9 to 15. Default 15 (32 KiB, the best ratio). A client's
    /// `server_max_window_bits` lowers it further. 8 is refused: zlib
    /// cannot compress raw deflate with a 256-byte window.
    pub server_max_window_bits: u8,
    /// The largest window (8 to 15) the server asks the client to compress
    /// with, when the client offers `client_max_window_bits` (RFC 7692
    /// §7.1.2.2: the server may only ask if the client offered it; a client
    /// that did not offer it compresses with up to 15 bits and is accepted
    /// anyway). It saves the client memory, not the server: the server's
    /// decompressor always has a 32 KiB window (see [`Inflater::new`]).
    /// Default 15.
    pub client_max_window_bits: u8,
    /// Reset the server's compressor after each message, even when the
    /// client did not ask for it (a client's `server_no_context_takeover` is
    /// always honoured). Then no message refers back to an earlier one.
    /// Default `false`: context takeover compresses a stream of similar
    /// messages much better.
    pub server_no_context_takeover: bool,
    /// Ask the client to reset its compressor after each message (the
    /// server accepts the client's own `client_no_context_takeover` hint in
    /// any case). Then the server's decompressor keeps no window between
    /// messages. Default `false`: context takeover compresses a stream of
    /// similar messages much better.
    pub client_no_context_takeover: bool,
    /// Messages shorter than this many bytes are sent uncompressed (RSV1
    /// clear): deflate cannot win much on them and costs a call. Default 64.
    pub compress_threshold: usize,
    /// The deflate compression level, 1 (fastest) to 9 (smallest); 0
    /// only stores, which never makes a message smaller, so nothing is sent
    /// compressed (compressed messages from the client are still read).
    /// Default 1, zlib-rs's quick strategy: on chat-sized messages (200 B
    /// to 2 KiB of text) it compresses several times faster than level 2
    /// (which builds Huffman tables per message), at a ratio of about 0.30
    /// against 0.20. It uses fixed Huffman codes only, so incompressible
    /// data would grow by a few percent; such a message is sent as is
    /// instead (any level: a message deflate does not shrink goes out
    /// uncompressed).
    pub level: u32,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            enabled: true,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            compress_threshold: 64,
            level: 1,
        }
    }
}

impl DeflateConfig {
    /// Checks that every field is usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field, problem| Err(ConfigError { field, problem });
        if !(MIN_SERVER_WINDOW_BITS..=15).contains(&self.server_max_window_bits) {
            return err("deflate.server_max_window_bits", "must be 9 to 15");
        }
        if !(8..=15).contains(&self.client_max_window_bits) {
            return err("deflate.client_max_window_bits", "must be 8 to 15");
        }
        if self.level > 9 {
            return err("deflate.level", "must be 0 to 9");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_documented() {
        let c = DeflateConfig::default();
        assert_eq!(c.validate(), Ok(()));
        assert!(c.enabled);
        assert_eq!(
            (c.server_max_window_bits, c.client_max_window_bits),
            (15, 15)
        );
        assert!(!c.server_no_context_takeover && !c.client_no_context_takeover);
        assert_eq!((c.compress_threshold, c.level), (64, 1));
    }

    #[test]
    fn validate_names_the_field() {
        let field = |c: DeflateConfig| c.validate().unwrap_err().field;
        let base = DeflateConfig::default();
        for bits in [0, 8, 16] {
            let c = DeflateConfig {
                server_max_window_bits: bits,
                ..base.clone()
            };
            assert_eq!(field(c), "deflate.server_max_window_bits");
        }
        for bits in [7, 16] {
            let c = DeflateConfig {
                client_max_window_bits: bits,
                ..base.clone()
            };
            assert_eq!(field(c), "deflate.client_max_window_bits");
        }
        let c = DeflateConfig {
            client_max_window_bits: 8,
            server_max_window_bits: 9,
            level: 9,
            ..base.clone()
        };
        assert_eq!(c.validate(), Ok(()));
        let c = DeflateConfig { level: 10, ..base };
        assert_eq!(field(c), "deflate.level");
    }
}
