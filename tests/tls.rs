//! wss:// through the real binary: certificates made at test time (rcgen:
//! a CA and leaves it signs), rustls clients that trust only that CA, and
//! what the issue asks of TLS in the loop: echo both ways over TLS 1.3 and
//! 1.2, ALPN, resumption, `close_notify`, the page over https, plain HTTP
//! answered 400, garbage after a ClientHello, stalled handshakes, and
//! certificates reloaded on SIGHUP (a bad pair logged, the old one kept).

#![cfg(target_os = "linux")]

#[path = "support/pki.rs"]
mod pki;
mod support;
#[path = "support/wsloop_bin.rs"]
mod wsloop_bin;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pki::TestCa;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use tungstenite::Message;
use wsloop_bin::Wsloop;

/// The crypto provider of the test clients: the server's.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The test CA, and the server started with its leaf.
struct Pki {
    ca: TestCa,
}

impl Pki {
    fn new(name: &str) -> Pki {
        Pki {
            ca: TestCa::new(name),
        }
    }

    fn issue(&self) -> (CertificateDer<'static>, rcgen::KeyPair) {
        self.ca.issue()
    }

    fn cert(&self) -> PathBuf {
        self.ca.cert()
    }

    fn key(&self) -> PathBuf {
        self.ca.key()
    }

    fn client(&self, versions: &[&'static rustls::SupportedProtocolVersion]) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.ca_der()).unwrap();
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    fn start(&self, extra: &[&str]) -> Wsloop {
        self.start_with(extra, None)
    }

    /// The server with `extra` flags, under `ulimit -n nofile` if given.
    fn start_with(&self, extra: &[&str], nofile: Option<u64>) -> Wsloop {
        let (cert, key) = (self.cert(), self.key());
        let mut args = vec![
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        Wsloop::start_limited(&args, nofile)
    }
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A TLS connection to `addr` as `localhost`, handshake done.
fn connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> Tls {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(Arc::clone(config), name).unwrap();
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .expect("the TLS handshake");
    }
    tls
}

/// The DER of the certificate the server showed.
fn served_cert(tls: &Tls) -> CertificateDer<'static> {
    tls.conn.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

fn websocket(tls: Tls, path: &str) -> tungstenite::WebSocket<Tls> {
    let (ws, response) = tungstenite::client(format!("ws://localhost{path}"), tls).unwrap();
    assert_eq!(response.status(), 101);
    ws
}

fn echo_once(ws: &mut tungstenite::WebSocket<Tls>, text: &str) {
    ws.send(Message::text(text)).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text(text));
}

#[test]
fn wss_echoes_over_tls_13_and_12_with_alpn_and_close_notify() {
    let pki = Pki::new("echo");
    pki.issue();
    let server = pki.start(&[]);
    assert_eq!(server.wait_log_count("listening on wss://", 1), 1);
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let tls = connect(server.addr, &pki.client(versions));
        assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
        assert_eq!(tls.conn.protocol_version(), Some(versions[0].version));
        let mut ws = websocket(tls, "/echo");
        echo_once(&mut ws, "hello over TLS");
        // Larger than a TLS record and rustls's buffer: many records.
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        ws.send(Message::binary(big.clone())).unwrap();
        assert_eq!(ws.read().unwrap(), Message::binary(big));
        ws.close(None).unwrap();
        loop {
            match ws.read() {
                Ok(Message::Close(_)) | Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed) => break,
                Err(e) => panic!("closing: {e}"),
            }
        }
        // The server ended TLS with close_notify: a clean end of stream.
        let tls = ws.get_mut();
        let mut rest = Vec::new();
        assert_eq!(
            tls.read_to_end(&mut rest).unwrap(),
            0,
            "close_notify, then EOF"
        );
    }
}

#[test]
fn the_page_is_served_over_https_and_sessions_resume() {
    let pki = Pki::new("page");
    pki.issue();
    let server = pki.start(&[]);
    let config = pki.client(&[&rustls::version::TLS13]);
    let mut tls = connect(server.addr, &config);
    assert_eq!(tls.conn.handshake_kind(), Some(rustls::HandshakeKind::Full));
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut page = Vec::new();
    let _ = tls.read_to_end(&mut page);
    let page = String::from_utf8_lossy(&page);
    assert!(page.starts_with("HTTP/1.1 200"), "{page:.200}");
    assert!(page.contains("<!doctype html>"));
    // The ticket it got resumes the next session (no certificate sent).
    let tls = connect(server.addr, &config);
    assert_eq!(
        tls.conn.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    echo_once(&mut websocket(tls, "/echo"), "resumed");
}

#[test]
fn plain_http_on_the_tls_port_gets_a_plain_400_that_says_so() {
    let pki = Pki::new("plain");
    pki.issue();
    let server = pki.start(&[]);
    let mut c = TcpStream::connect(server.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    c.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(
        answer.ends_with("\r\n\r\nThis port speaks TLS: use https:// or wss://\n"),
        "{answer}"
    );
}

/// A ClientHello's first record, cut short: a handshake that stalls.
fn partial_client_hello() -> Vec<u8> {
    vec![
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ]
}

#[test]
fn garbage_after_a_client_hello_closes_with_a_log_line() {
    let pki = Pki::new("garbage");
    pki.issue();
    let mut server = pki.start(&["--log-level", "debug"]);
    // A real ClientHello (from rustls), then bytes that are no record.
    let config = pki.client(&[&rustls::version::TLS13]);
    let mut conn =
        ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    let mut c = TcpStream::connect(server.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(&hello).unwrap();
    c.write_all(&[0xff; 64]).unwrap();
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest); // the server's hello and an alert, then the end
    assert!(
        server.wait_log_count(": TLS: ", 1) >= 1,
        "{:?}",
        server.logs()
    );
    assert!(server.alive(), "the server carries on");
}

#[test]
fn stalled_handshakes_time_out_and_do_not_slow_a_healthy_client() {
    let pki = Pki::new("stalled");
    pki.issue();
    let server = pki.start_with(
        &["--handshake-timeout", "2s", "--max-clients", "5000"],
        Some(6000),
    );
    raise_nofile(6000);
    // 2,000 connections whose ClientHello never completes.
    let mut stalled = Vec::new();
    for _ in 0..2000 {
        let mut c = TcpStream::connect(server.addr).unwrap();
        c.write_all(&partial_client_hello()).unwrap();
        stalled.push(c);
    }
    // A healthy client meanwhile: 200 echoes.
    let config = pki.client(&[&rustls::version::TLS13]);
    let mut ws = websocket(connect(server.addr, &config), "/echo");
    for i in 0..200 {
        echo_once(&mut ws, &format!("healthy {i}"));
    }
    // The handshake timeout ends every stalled one (the server closes).
    let end = Instant::now() + Duration::from_secs(20);
    for c in &mut stalled {
        c.set_read_timeout(Some(
            end.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(10)),
        ))
        .unwrap();
        let mut buf = [0u8; 64];
        loop {
            match c.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("a stalled handshake was not closed: {e}"),
            }
        }
    }
    echo_once(&mut ws, "still healthy");
}

#[test]
fn sighup_reloads_the_certificate_and_keeps_the_old_one_on_a_bad_pair() {
    let pki = Pki::new("reload");
    let (first, first_key) = pki.issue();
    let server = pki.start(&[]);
    let config = pki.client(&[&rustls::version::TLS13]);
    let old = connect(server.addr, &config);
    assert_eq!(served_cert(&old), first);
    let mut old = websocket(old, "/echo");

    let (second, _) = pki.issue();
    hup(&server);
    assert_eq!(
        server.wait_log_count("SIGHUP: certificate and key reloaded", 1),
        1
    );
    let fresh = connect(server.addr, &config);
    assert_eq!(
        served_cert(&fresh),
        second,
        "new connections get the new pair"
    );
    echo_once(&mut old, "the open one carries on");

    // A key that does not match the certificate: logged, old pair kept.
    std::fs::write(pki.key(), first_key.serialize_pem()).unwrap();
    hup(&server);
    assert_eq!(
        server.wait_log_count("keeping the certificate in use", 1),
        1
    );
    let after = connect(server.addr, &config);
    assert_eq!(served_cert(&after), second);
    // An unreadable one too.
    std::fs::remove_file(pki.cert()).unwrap();
    hup(&server);
    assert_eq!(
        server.wait_log_count("keeping the certificate in use", 2),
        2
    );
    let after = connect(server.addr, &config);
    assert_eq!(served_cert(&after), second);
    echo_once(&mut websocket(after, "/echo"), "served with the kept pair");
}

#[test]
fn a_bad_pair_at_start_is_an_error_exit() {
    let pki = Pki::new("bad");
    pki.issue();
    let out = Command::new(wsloop_bin::BIN)
        .args(["--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(pki.cert())
        .arg("--tls-key")
        .arg(Path::new("/nonexistent/key.pem"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("private key /nonexistent/key.pem"), "{err}");
}

fn hup(server: &Wsloop) {
    let sent = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// This test process's descriptor limit, raised to `n` (or its hard limit).
fn raise_nofile(n: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit write and read the one struct given.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = n.min(lim.rlim_max);
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}
