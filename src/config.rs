//! The one configuration of a wsloop server, with a justified default per
//! field and one validation ([`Config::validate`]).

use std::time::Duration;
use thiserror::Error;

/// Every limit and timeout of the server. Build it from
/// [`Config::default`] and change fields:
///
/// ```
/// let mut config = wsloop::Config::default();
/// config.max_clients = 50_000;
/// config.allowed_origins = vec!["https://example.com".into()];
/// config.validate().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Connections served at once; more get HTTP 503 with `Retry-After`.
    /// Default 10,000: peers that default to 100 surprise users, and an idle
    /// wsloop connection costs a few hundred bytes.
    pub max_clients: usize,
    /// Bytes of request line plus headers; more get HTTP 431. Default 8 KiB,
    /// the common limit of HTTP servers, far above any browser's upgrade.
    pub max_header_bytes: usize,
    /// Time from accept to a complete upgrade request before the TCP
    /// connection is closed. Default 10 s: slow mobile links finish in time,
    /// slowloris clients do not hold slots for long.
    pub handshake_timeout: Duration,
    /// Largest frame payload accepted; more closes with 1009, decided from
    /// the header before any payload is buffered. Default 16 MiB; at most
    /// 4 GiB - 1.
    pub max_frame_size: usize,
    /// Largest message (all fragments) accepted; more closes with 1009.
    /// Default 16 MiB, which covers Autobahn's largest cases; at most
    /// 4 GiB - 1.
    pub max_message_size: usize,
    /// Outgoing bytes queued for one client that it has not read; more closes
    /// it with 1008. Default 16 MiB: one maximal message fits.
    pub max_send_queue: usize,
    /// Silence after which the server pings; after another such period
    /// without any traffic it closes. Default 60 s, below the usual NAT and
    /// proxy idle timeouts. `None` disables it.
    pub idle_timeout: Option<Duration>,
    /// How long to wait for the peer's close frame (and TCP close) after the
    /// server sent its own. Default 5 s.
    pub close_timeout: Duration,
    /// `Origin` values allowed to connect; others get HTTP 403. Empty (the
    /// default) allows any origin, as non-browser clients send none.
    pub allowed_origins: Vec<String>,
    /// permessage-deflate (RFC 7692): whether offers are accepted and with
    /// which parameters. Default: accepted, on the client's terms, with
    /// compressors created only when a message needs one (see
    /// [`DeflateConfig`](DeflateConfig)).
    #[cfg(feature = "deflate")]
    pub deflate: DeflateConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_clients: 10_000,
            max_header_bytes: 8 * 1024,
            handshake_timeout: Duration::from_secs(10),
            max_frame_size: 16 * 1024 * 1024,
            max_message_size: 16 * 1024 * 1024,
            max_send_queue: 16 * 1024 * 1024,
            idle_timeout: Some(Duration::from_secs(60)),
            close_timeout: Duration::from_secs(5),
            allowed_origins: Vec::new(),
            #[cfg(feature = "deflate")]
            deflate: DeflateConfig::default(),
        }
    }
}

/// A [`Config`] field with a value the server cannot work with.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid configuration: {field} {problem}")]
pub struct ConfigError {
    /// The field's name.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl Config {
    /// Checks that every field is usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field, problem| Err(ConfigError { field, problem });
        if self.max_clients == 0 {
            return err("max_clients", "must be at least 1");
        }
        // The request line and the headers a browser sends need room.
        if self.max_header_bytes < 256 {
            return err("max_header_bytes", "must be at least 256");
        }
        if self.max_frame_size == 0 {
            return err("max_frame_size", "must be at least 1");
        }
        if self.max_message_size == 0 {
            return err("max_message_size", "must be at least 1");
        }
        // Connections keep their limits in 32 bits to stay small.
        if self.max_frame_size > u32::MAX as usize {
            return err("max_frame_size", "must be below 4 GiB");
        }
        if self.max_message_size > u32::MAX as usize {
            return err("max_message_size", "must be below 4 GiB");
        }
        if self.max_send_queue == 0 {
            return err("max_send_queue", "must be at least 1");
        }
        if self.handshake_timeout.is_zero() {
            return err("handshake_timeout", "must be longer than zero");
        }
        if self.close_timeout.is_zero() {
            return err("close_timeout", "must be longer than zero");
        }
        if self.idle_timeout.is_some_and(|d| d.is_zero()) {
            return err("idle_timeout", "must be longer than zero (or None)");
        }
        #[cfg(feature = "deflate")]
        self.deflate.validate()?;
        Ok(())
    }
}

/// The smallest window the server compresses with. zlib (and so zlib-rs)
/// cannot produce raw deflate with an 8-bit window: asked for 8 it uses 9,
/// and a peer that announced an 8-bit decompressor could then be sent a
/// distance it cannot resolve.
#[cfg(feature = "deflate")]
pub const MIN_SERVER_WINDOW_BITS: u8 = 9;

/// The server's permessage-deflate policy: whether to accept the extension
/// and the parameters it asks for. Build it from [`DeflateConfig::default`]
/// and change fields:
///
/// ```
/// let mut deflate = wsloop::proto::deflate::DeflateConfig::default();
/// deflate.server_no_context_takeover = true; // one compression per broadcast, nothing kept
/// deflate.validate().unwrap();
/// ```
///
/// What a client costs between messages is its context-takeover windows,
/// nothing else: each message borrows the loop's compressor or
/// decompressor and primes it with the window (see
/// [`Context`](crate::proto::deflate::Context)). Measured server memory
/// per browser-like client (1,000 clients, 1 KiB chat messages;
/// BENCHMARKS.md has the runs and the commands):
///
/// | setting | after 1 message | after 64 |
/// | --- | --- | --- |
/// | default (12-bit windows each way, context takeover) | about 3 KiB | about 10 KiB |
/// | `server_`/`client_no_context_takeover` | about 1.2 KiB | under 1 KiB |
/// | 15-bit windows each way, context takeover | about 3 KiB | about 67 KiB |
/// | (before this design: a kept zlib-rs compressor and decompressor) | 330 KiB | 360 KiB |
#[cfg(feature = "deflate")]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// Whether offers are accepted at all. Default `true`: every browser
    /// offers the extension, and the defaults keep what it costs a server
    /// per client to the table above. A connection that does not offer it
    /// pays one pointer.
    pub enabled: bool,
    /// The largest LZ77 window (base-2 logarithm) the server compresses
    /// with, 9 to 15; the answer says so whether or not the client asked
    /// (RFC 7692 §7.1.2.1), and a client's own `server_max_window_bits`
    /// lowers it further. With context takeover the server keeps this much
    /// of what it sent per client, and primes the compressor with it for
    /// each message (a cost that grows with the window). Default 12 (4
    /// KiB): on 1 KiB chat messages it compresses within 5 % of a 32 KiB
    /// window and 4 times cheaper per message. 8 is refused: zlib cannot
    /// compress raw deflate with a 256-byte window.
    pub server_max_window_bits: u8,
    /// The largest window (8 to 15) the server asks the client to compress
    /// with, when the client offers `client_max_window_bits`, as browsers do
    /// (RFC 7692 §7.1.2.2: the server may ask only then; a client that did
    /// not offer it compresses with up to 15 bits and is accepted anyway).
    /// With context takeover the server keeps this much of what each such
    /// client sent. Default 12 (4 KiB).
    pub client_max_window_bits: u8,
    /// Reset the server's compressor after each message, even when the
    /// client did not ask for it (a client's `server_no_context_takeover` is
    /// always honoured). Then no message refers back to an earlier one,
    /// nothing is kept per client, and a broadcast is compressed once for
    /// every such recipient instead of once per recipient. Default `false`:
    /// context takeover compresses a stream of similar messages about a
    /// third smaller.
    pub server_no_context_takeover: bool,
    /// Ask the client to reset its compressor after each message (the
    /// server accepts the client's own `client_no_context_takeover` hint in
    /// any case). Then the server keeps no window of what the client sent.
    /// Default `false`: context takeover compresses a stream of similar
    /// messages much better, and costs the server only the window.
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
    /// The most memory the compression state of all connections together
    /// may hold between messages (their context-takeover windows, see
    /// [`Context::memory`](crate::proto::deflate::Context::memory)). A
    /// connection whose agreement would pass it is answered without the
    /// extension (still accepted, uncompressed), with a warning in the log,
    /// and counted in [`Stats::deflate_declined`](crate::Stats). Default
    /// 256 MiB: 10,000 browsers at the default windows hold at most 80 MiB.
    pub max_memory: usize,
}

#[cfg(feature = "deflate")]
impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            enabled: true,
            server_max_window_bits: 12,
            client_max_window_bits: 12,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            compress_threshold: 64,
            level: 1,
            max_memory: 256 << 20,
        }
    }
}

#[cfg(feature = "deflate")]
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
    fn default_is_valid_and_matches_design() {
        let c = Config::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.max_clients, 10_000);
        assert_eq!(c.max_header_bytes, 8192);
        assert_eq!(c.max_message_size, 16 << 20);
    }

    #[test]
    fn zero_values_are_refused_by_name() {
        let c = Config {
            max_clients: 0,
            ..Config::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "max_clients");
        let c = Config {
            idle_timeout: Some(Duration::ZERO),
            ..Config::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "idle_timeout");
        let c = Config {
            max_header_bytes: 10,
            ..Config::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("max_header_bytes"));
    }
}

#[cfg(all(test, feature = "deflate"))]
mod deflate_tests {
    use super::*;

    #[test]
    fn default_is_valid_and_documented() {
        let c = DeflateConfig::default();
        assert_eq!(c.validate(), Ok(()));
        assert!(c.enabled);
        assert_eq!(
            (c.server_max_window_bits, c.client_max_window_bits),
            (12, 12)
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
