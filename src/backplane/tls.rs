//! `rediss://` (feature `rediss`): how the backplane's connection verifies
//! Redis, and who it says it is.
//!
//! ```no_run
//! use wsloop::backplane::{RedisConfig, RedisTls};
//! // A managed Redis with a certificate from a public CA: the system's roots.
//! let c = RedisConfig::from_url("rediss://:secret@redis.example.com:6380")?;
//! assert!(c.tls.is_some());
//! // A Redis of one's own: its CA, and a client certificate when it asks
//! // for one (`tls-auth-clients yes`, Redis's default).
//! let mut c = RedisConfig::from_url("rediss://10.0.0.5:6379")?;
//! c.tls = Some(RedisTls::from_pem_files(
//!     Some("ca.pem".as_ref()),
//!     Some(("client.pem".as_ref(), "client.key".as_ref())),
//! )?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::path::Path;
use std::sync::Arc;

pub use rustls::ClientConfig;
use rustls::RootCertStore;

use crate::tls::{load_chain, load_key, TlsError};

/// The TLS side of a `rediss://` connection: a rustls [`ClientConfig`]
/// (aws-lc-rs, TLS 1.3 and 1.2), or the system's trusted roots, loaded when
/// a server takes the config.
#[derive(Clone)]
pub struct RedisTls(Trust);

#[derive(Clone)]
enum Trust {
    System,
    Config(Arc<ClientConfig>),
}

impl RedisTls {
    /// Redis's certificate checked against the system's trusted roots
    /// (read by `rustls-native-certs`: on Linux, OpenSSL's store, e.g.
    /// `/etc/ssl/certs`), without a client certificate. What a `rediss://`
    /// URL gets. The roots are read by [`RedisTls::client_config`], which a
    /// server calls when it takes the config; call it first to see an
    /// empty or unreadable store as an error at start.
    pub fn system_roots() -> RedisTls {
        RedisTls(Trust::System)
    }

    /// Redis's certificate checked against the CA certificates in the PEM
    /// file `ca` (a private CA) or, without one, the system's roots; and
    /// `client`, a PEM certificate chain (leaf first) and its key, shown to
    /// a Redis that asks for one (`tls-auth-clients yes`).
    pub fn from_pem_files(
        ca: Option<&Path>,
        client: Option<(&Path, &Path)>,
    ) -> Result<RedisTls, TlsError> {
        // The client's files first: an error names the file at fault.
        let client = match client {
            Some((cert, key)) => Some((load_chain(cert)?, load_key(key)?)),
            None => None,
        };
        let roots = match ca {
            Some(path) => {
                let mut roots = RootCertStore::empty();
                let (added, _ignored) = roots.add_parsable_certificates(load_chain(path)?);
                if added == 0 {
                    return Err(TlsError::Certificate {
                        path: path.to_owned(),
                        why: "no CA certificate rustls can use in it".into(),
                    });
                }
                roots
            }
            None => system_roots()?,
        };
        let builder = builder()?.with_root_certificates(roots);
        let config = match client {
            Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
            None => builder.with_no_client_auth(),
        };
        Ok(RedisTls(Trust::Config(Arc::new(config))))
    }

    /// A rustls client configuration of one's own (its roots, its client
    /// certificate, its resolver).
    pub fn from_config(config: Arc<ClientConfig>) -> RedisTls {
        RedisTls(Trust::Config(config))
    }

    /// The rustls configuration: the one given, or one over the system's
    /// roots read now.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        match &self.0 {
            Trust::Config(c) => Ok(c.clone()),
            Trust::System => Ok(Arc::new(
                builder()?
                    .with_root_certificates(system_roots()?)
                    .with_no_client_auth(),
            )),
        }
    }
}

fn builder() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?)
}

fn system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let why = match found.errors.first() {
            Some(e) => format!("none in the system's store ({e})"),
            None => "none in the system's store".to_owned(),
        };
        return Err(TlsError::Roots(why));
    }
    Ok(roots)
}

impl fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Trust::System => "RedisTls(system roots)",
            Trust::Config(_) => "RedisTls(client config)",
        })
    }
}

impl PartialEq for RedisTls {
    /// The system's roots, or the very same configuration.
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Trust::System, Trust::System) => true,
            (Trust::Config(a), Trust::Config(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for RedisTls {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_that_are_not_what_they_should_be_are_named_in_the_error() {
        let dir = std::env::temp_dir().join(format!("wsloop-redis-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let missing = dir.join("missing.pem");
        let err = RedisTls::from_pem_files(Some(&empty), None).unwrap_err();
        assert!(err.to_string().contains("empty.pem"), "{err}");
        let err = RedisTls::from_pem_files(Some(&missing), None).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
