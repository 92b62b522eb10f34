//! wss:// (feature `tls`): a rustls [`ServerConfig`] for
//! [`Server::set_tls`](crate::Server::set_tls), built from PEM files the way
//! the binary's `--tls-cert` / `--tls-key` do, or brought by the user (with
//! a certificate resolver of their own, say).
//!
//! ```no_run
//! use wsloop::{Config, Server};
//! # struct Echo;
//! # impl wsloop::Handler for Echo {
//! #     type Data = ();
//! #     fn on_message(&mut self, ctx: &mut wsloop::Ctx<'_, ()>, id: wsloop::ConnId, m: wsloop::Message<'_>) { ctx.send(id, m); }
//! # }
//! let tls = wsloop::tls::from_pem_files("cert.pem", "key.pem")?;
//! let mut server = Server::bind("127.0.0.1:8443".parse()?, Config::default(), Echo)?;
//! server.set_tls(tls);
//! server.run()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What [`from_pem_files`] sets up: rustls's `aws-lc-rs` provider (with
//! its post-quantum hybrid key exchange, X25519MLKEM768, first), TLS 1.3
//! and 1.2, ALPN `http/1.1`, session resumption by stateless tickets (TLS 1.3
//! and 1.2) and by a 256-entry session cache. Reloading is calling it again
//! and handing the result to `set_tls`: new connections get the new
//! certificate, open ones carry on.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
pub use rustls::ServerConfig;

/// Why a certificate and key could not become a [`ServerConfig`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate file could not be read or holds no PEM certificate.
    #[error("certificate {path}: {why}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// The key file could not be read or holds no PEM private key (PKCS#8,
    /// PKCS#1 or SEC1).
    #[error("private key {path}: {why}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// rustls refused the pair: a key it cannot use, or one that does not
    /// match the certificate.
    #[error("certificate and key: {0}")]
    Rustls(#[from] rustls::Error),
    /// No trusted root certificate (a CA file that holds none rustls takes,
    /// or a system store that could not be read).
    #[error("trusted roots: {0}")]
    Roots(String),
}

/// A server configuration from a PEM certificate chain (leaf first) and a
/// PEM private key (PKCS#8, PKCS#1 or SEC1), with the settings above.
pub fn from_pem_files(
    cert: impl AsRef<Path>,
    key: impl AsRef<Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = load_chain(cert.as_ref())?;
    let key_der = load_key(key.as_ref())?;
    config(chain, key_der)
}

/// The PEM certificates in `path` (at least one).
pub(crate) fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Certificate {
            path: path.to_owned(),
            why: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Certificate {
            path: path.to_owned(),
            why: "no certificate in it".into(),
        });
    }
    Ok(chain)
}

/// The PEM private key in `path` (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Key {
        path: path.to_owned(),
        why: e.to_string(),
    })
}

/// A server configuration from a DER certificate chain and key, with the
/// settings above.
pub fn config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    // Checks that the key matches the leaf certificate (rustls's
    // CertifiedKey::keys_match).
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
    Ok(Arc::new(config))
}
