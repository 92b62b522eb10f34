//! Where the backplane's Redis is and how to talk to it: [`RedisConfig`],
//! read from a `redis://` URL.

use std::time::Duration;

use percent_encoding::percent_decode_str;

/// The Redis backplane's settings ([`Server::set_redis`](crate::Server::set_redis)).
///
/// ```
/// use wsloop::backplane::RedisConfig;
/// let c = RedisConfig::from_url("redis://app:s%40cret@10.0.0.5:6380")?;
/// assert_eq!((c.host.as_str(), c.port), ("10.0.0.5", 6380));
/// assert_eq!((c.user.as_deref(), c.password.as_deref()), (Some("app"), Some("s@cret")));
/// assert_eq!(c.prefix, "wsloop:"); // topic "chat" is channel "wsloop:chat"
/// assert!(RedisConfig::from_url("http://localhost").is_err());
/// # Ok::<(), wsloop::backplane::UrlError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisConfig {
    /// Redis's host: a name (resolved once, when the server takes the
    /// config), an IPv4 address or an IPv6 address without brackets.
    pub host: String,
    /// Redis's port (6379 unless the URL says otherwise).
    pub port: u16,
    /// The ACL user (`HELLO 3 AUTH user password`); `default` when only a
    /// password is given, as Redis's own `AUTH password` means.
    pub user: Option<String>,
    /// The password, if Redis wants one.
    pub password: Option<String>,
    /// Put before every topic to make its channel: topic `chat` is
    /// published on `wsloop:chat` by default. Processes that should share
    /// topics share the prefix; different applications on one Redis use
    /// different ones.
    pub prefix: String,
    /// Most bytes of commands waiting for Redis to read them (a slow or
    /// stalled Redis, or one still connecting). A publish that would pass
    /// it is dropped, counted and logged: the memory stays bounded.
    /// Subscriptions are never dropped (one per topic at most). Also the
    /// largest reply taken from Redis (plus 64 KiB): a message published
    /// by another program larger than that ends the connection, which is
    /// made again. Keep it above twice the largest message clients may
    /// send (`Config::max_message_size`, 16 MiB by default).
    pub max_pending: usize,
    /// How long a connection may take to be made and answer `HELLO`
    /// before it is given up and tried again.
    pub connect_timeout: std::time::Duration,
    /// How often a link that is up sends `PING`; one not answered by the
    /// next is a dead link (a Redis host gone, a NAT that dropped the
    /// connection), closed and made again.
    pub ping_interval: std::time::Duration,
    /// The first wait before reconnecting after a failure, doubled at each
    /// failure in a row up to [`RedisConfig::max_backoff`].
    pub min_backoff: Duration,
    /// The longest wait between two connection attempts.
    pub max_backoff: Duration,
    /// TLS (`rediss://`, feature `rediss`): how Redis's certificate is
    /// checked, and the client certificate, if any. `None`: plain TCP.
    /// The name checked against the certificate is [`RedisConfig::host`].
    #[cfg(feature = "rediss")]
    pub tls: Option<super::RedisTls>,
}

/// Why a `redis://` URL was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not `redis://` or `rediss://`.
    #[error("unsupported scheme in {0:?}: expected redis://[[user]:password@]host[:port][/db] (or rediss://, over TLS)")]
    Scheme(String),
    /// `rediss://` (Redis over TLS) in a build without the `rediss`
    /// feature.
    #[error("rediss:// (Redis over TLS) needs wsloop built with the `rediss` feature")]
    Tls,
    /// No host.
    #[error("no host in the Redis URL")]
    NoHost,
    /// A port that is not a number from 1 to 65535.
    #[error("bad port {0:?} in the Redis URL")]
    Port(String),
    /// A database that is not a number (pub/sub ignores it anyway).
    #[error("bad database {0:?} in the Redis URL (a number, which pub/sub ignores)")]
    Database(String),
    /// A user or password whose percent-escapes do not decode to UTF-8.
    #[error("the Redis URL's user or password is not valid UTF-8 once percent-decoded")]
    Encoding,
    /// A `rediss://` host that no certificate can name (e.g. a last label
    /// of digits that is not an address).
    #[error("the rediss:// host {0:?} is not a name or address a certificate can be checked for")]
    TlsHost(String),
    /// A query or fragment, which nothing here reads.
    #[error("the Redis URL has a query or fragment ({0:?}), which wsloop does not read")]
    Extra(String),
}

impl RedisConfig {
    /// Reads `redis://[[user]:password@]host[:port][/db]`: user and password
    /// percent-decoded, an IPv6 host in brackets, port 6379 by default. The
    /// database number is accepted and ignored (pub/sub channels are not
    /// in any database). `rediss://` is the same over TLS (feature
    /// `rediss`), Redis's certificate checked against the system's roots
    /// for the host (`RedisTls::system_roots`), which must then be a name
    /// or an address a certificate can be for.
    /// Everything else has its default.
    pub fn from_url(url: &str) -> Result<RedisConfig, UrlError> {
        let (tls, rest) = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("redis") => (false, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("rediss") => (true, rest),
            _ => return Err(UrlError::Scheme(url.to_owned())),
        };
        #[cfg(not(feature = "rediss"))]
        if tls {
            return Err(UrlError::Tls);
        }
        if let Some(at) = rest.find(['?', '#']) {
            return Err(UrlError::Extra(rest[at..].to_owned()));
        }
        let (authority, db) = rest.split_once('/').unwrap_or((rest, ""));
        if !db.is_empty() && db.parse::<u32>().is_err() {
            return Err(UrlError::Database(db.to_owned()));
        }
        // The password may hold an unescaped '@': the last one ends it.
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let decode = |s: &str| -> Result<String, UrlError> {
            percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| UrlError::Encoding)
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => {
                    let user = (!user.is_empty()).then(|| decode(user)).transpose()?;
                    (user, Some(decode(pass)?))
                }
                // `redis://secret@host`: a lone word is the password, as
                // redis-cli and most clients read it.
                None => (None, Some(decode(u)?)),
            },
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or(UrlError::NoHost)?;
            match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if after.is_empty() => (host, None),
                None => return Err(UrlError::Port(after.to_owned())),
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(UrlError::NoHost);
        }
        let port = match port {
            None => 6379,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(UrlError::Port(p.to_owned())),
            },
        };
        #[cfg(feature = "rediss")]
        if tls && rustls::pki_types::ServerName::try_from(host).is_err() {
            return Err(UrlError::TlsHost(host.to_owned()));
        }
        Ok(RedisConfig {
            host: host.to_owned(),
            port,
            user,
            password,
            #[cfg(feature = "rediss")]
            tls: tls.then(super::RedisTls::system_roots),
            ..RedisConfig::default()
        })
    }
}

impl Default for RedisConfig {
    /// Redis on `127.0.0.1:6379` without a password, prefix `wsloop:`,
    /// 32 MiB of pending commands, reconnecting after 100 ms doubling to
    /// 5 s, 5 s to connect, a `PING` every 15 s.
    fn default() -> Self {
        RedisConfig {
            host: "127.0.0.1".into(),
            port: 6379,
            user: None,
            password: None,
            prefix: "wsloop:".into(),
            max_pending: 32 << 20,
            connect_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(15),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            #[cfg(feature = "rediss")]
            tls: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> RedisConfig {
        RedisConfig::from_url(url).unwrap()
    }

    #[test]
    fn urls_redis_clients_accept() {
        let c = parse("redis://localhost");
        assert_eq!(
            (c.host.as_str(), c.port, c.user, c.password),
            ("localhost", 6379, None, None)
        );
        let c = parse("redis://:pw@127.0.0.1:7000/3");
        assert_eq!(
            (c.port, c.user, c.password.as_deref()),
            (7000, None, Some("pw"))
        );
        let c = parse("REDIS://alice:p%3Aw%2F@[::1]:6380/");
        assert_eq!(c.host, "::1");
        assert_eq!(
            (c.user.as_deref(), c.password.as_deref()),
            (Some("alice"), Some("p:w/"))
        );
        let c = parse("redis://secret@h");
        assert_eq!((c.user, c.password.as_deref()), (None, Some("secret")));
        let c = parse("redis://u:p@ss@h:1");
        assert_eq!(
            (c.password.as_deref(), c.host.as_str(), c.port),
            (Some("p@ss"), "h", 1)
        );
        assert_eq!(parse("redis://[::1]").port, 6379);
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        let err = |u: &str| RedisConfig::from_url(u).unwrap_err();
        assert!(matches!(err("localhost:6379"), UrlError::Scheme(_)));
        assert!(matches!(err("http://localhost"), UrlError::Scheme(_)));
        #[cfg(not(feature = "rediss"))]
        assert_eq!(err("rediss://h"), UrlError::Tls);
        assert_eq!(err("redis://"), UrlError::NoHost);
        assert_eq!(err("redis://:pw@:1"), UrlError::NoHost);
        assert_eq!(err("redis://h:0"), UrlError::Port("0".into()));
        assert_eq!(err("redis://h:99999"), UrlError::Port("99999".into()));
        assert_eq!(err("redis://h:x"), UrlError::Port("x".into()));
        assert_eq!(err("redis://[::1]x"), UrlError::Port("x".into()));
        assert_eq!(err("redis://h/db"), UrlError::Database("db".into()));
        assert_eq!(
            err("redis://h?protocol=3"),
            UrlError::Extra("?protocol=3".into())
        );
        assert_eq!(err("redis://%ff:x@h"), UrlError::Encoding);
        // Every message names the problem.
        #[cfg(not(feature = "rediss"))]
        assert!(err("rediss://h").to_string().contains("rediss"));
    }

    #[cfg(feature = "rediss")]
    #[test]
    fn rediss_is_redis_over_tls_checked_against_the_systems_roots() {
        let c = parse("rediss://u:p@cache.example.com:6380/0");
        assert_eq!(c.tls, Some(crate::backplane::RedisTls::system_roots()));
        assert_eq!(
            (
                c.host.as_str(),
                c.port,
                c.user.as_deref(),
                c.password.as_deref()
            ),
            ("cache.example.com", 6380, Some("u"), Some("p"))
        );
        assert_eq!(parse("REDISS://h").tls, parse("rediss://h").tls);
        assert_eq!(parse("redis://h").tls, None);
        assert_eq!(parse("rediss://[::1]:6380").host, "::1");
        assert_eq!(
            RedisConfig::from_url("rediss://redis.123").unwrap_err(),
            UrlError::TlsHost("redis.123".into())
        );
    }
}
