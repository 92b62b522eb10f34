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
    /// [`DeflateConfig`](crate::deflate::DeflateConfig)).
    #[cfg(feature = "deflate")]
    pub deflate: crate::deflate::DeflateConfig,
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
            deflate: crate::deflate::DeflateConfig::default(),
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
