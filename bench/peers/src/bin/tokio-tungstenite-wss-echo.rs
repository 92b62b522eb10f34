//! tokio-tungstenite-echo over TLS: the same current-thread tokio runtime,
//! accept loop, task per connection and echo (every text or binary message
//! sent back with `next()` / `send()`; pings answered and closes echoed by
//! tungstenite itself), with tokio-rustls's `TlsAcceptor` between the socket
//! and `accept_async`. TCP_NODELAY is set on every accepted socket.
//!
//! The TLS settings are wsloop's (`wsloop::tls::config` in src/tls.rs), with
//! the same rustls version: the aws-lc-rs provider (X25519MLKEM768 first),
//! TLS 1.3 and 1.2, ALPN `http/1.1`, stateless session tickets (rustls's
//! aws-lc-rs `Ticketer`) and rustls's default 256-entry session cache. The
//! certificate chain (leaf first) and the private key (PKCS#8, PKCS#1 or
//! SEC1) are PEM files, read as wsloop reads them. A connection ends, as on
//! wsloop, with `close_notify` after the close handshake.
//!
//! ```text
//! cargo run --release --bin tokio-tungstenite-wss-echo -- \
//!     --tls-cert cert.pem --tls-key key.pem --listen 127.0.0.1:9443
//! ```

use std::path::Path;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::accept_async;
use tokio_tungstenite::tungstenite::{Error, Result};

const NAME: &str = "tokio-tungstenite-wss-echo";

/// wsloop's `tls::from_pem_files`: the chain and key from PEM files, then
/// [`config`].
fn from_pem_files(cert: &Path, key: &Path) -> std::result::Result<Arc<ServerConfig>, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| format!("certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "certificate {}: no certificate in it",
            cert.display()
        ));
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("private key {}: {e}", key.display()))?;
    config(chain, key_der).map_err(|e| format!("certificate and key: {e}"))
}

/// wsloop's `tls::config`, setting for setting.
fn config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> std::result::Result<Arc<ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
    Ok(Arc::new(config))
}

async fn handle_connection(acceptor: TlsAcceptor, stream: TcpStream) -> Result<()> {
    let tls = acceptor.accept(stream).await?;
    let mut ws = accept_async(tls).await?;
    while let Some(msg) = ws.next().await {
        let msg = msg?;
        if msg.is_text() || msg.is_binary() {
            ws.send(msg).await?;
        }
    }
    // The close handshake is done: close_notify, then the socket closes.
    let _ = ws.get_mut().shutdown().await;
    Ok(())
}

fn main() -> std::io::Result<()> {
    let args = wsloop_bench_peers::tls_args(NAME);
    let tls = from_pem_files(&args.cert, &args.key).unwrap_or_else(|e| {
        eprintln!("{NAME}: {e}");
        std::process::exit(1)
    });
    let acceptor = TlsAcceptor::from(tls);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(args.listen).await?;
        wsloop_bench_peers::announce_wss(NAME, listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                match handle_connection(acceptor, stream).await {
                    Ok(()) | Err(Error::ConnectionClosed | Error::Protocol(_) | Error::Utf8(_)) => {
                    }
                    Err(e) => eprintln!("{NAME}: connection error: {e}"),
                }
            });
        }
    })
}
