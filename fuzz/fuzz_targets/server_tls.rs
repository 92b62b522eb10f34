//! The server loop over wss://: the `server` target's fixture (a
//! `wsloop::Server` with its own `Poll` on 127.0.0.1:0 and an echo handler,
//! kept across iterations) with TLS on (`Server::set_tls`, a certificate
//! made once per process), so that the TLS-to-session path, the server's
//! `read_tls`, `transmit` through rustls and `close_notify`, takes the
//! input. Each iteration is one client connection.
//!
//! Input layout: byte 0 = mode. Bit 7 clear: a real TLS client (rustls)
//! completes the handshake, then writes the rest as plaintext in `1 + (b &
//! 15)` chunks with server steps between, then `close_notify` and FIN.
//! Bit 7 set: the rest goes to the socket raw, as if it were ciphertext
//! (garbage, a cut ClientHello, plain HTTP on the TLS port).
//!
//! Asserts: no panic; no client left from an earlier input; the connection
//! closed and forgotten within a bounded number of steps after the FIN;
//! over TLS, everything the server sent decrypts (rustls on the client
//! side reports no error: the server's records are well-formed) and the
//! plaintext is a `101` with the right accept key and then exactly the
//! echoes, pongs and close a lone `Connection` owes (`common`), or a
//! well-formed HTTP error response; raw, a first byte other than a TLS
//! handshake record gets the plain `400` and nothing else.
#![no_main]

mod common;

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use wsloop::{Config, Server};

const MAX_STEPS: usize = 2000;
/// Plaintext the server may send beyond the client's: the 101 or an error
/// response, a close frame.
const SLACK: usize = 1024;

struct Fixture {
    server: Server<common::Echo>,
    addr: SocketAddr,
    client: Arc<ClientConfig>,
}

thread_local! {
    static FIXTURE: RefCell<Option<Fixture>> = const { RefCell::new(None) };
}

fn config() -> Config {
    let mut config = Config::default();
    config.max_frame_size = 64 * 1024;
    config.max_message_size = 64 * 1024;
    config.max_send_queue = 256 * 1024;
    // The TLS path is what is under test; compression has its own targets.
    config.deflate.enabled = false;
    config
}

fn fixture() -> Fixture {
    common::ignore_sigpipe();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let tls = wsloop::tls::config(vec![leaf.der().clone()], key).expect("server config");
    let mut server =
        Server::bind("127.0.0.1:0".parse().unwrap(), config(), common::Echo).expect("bind");
    server.set_tls(tls);
    let addr = server.local_addr();
    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Fixture {
        server,
        addr,
        client: Arc::new(client),
    }
}

/// The client side: a socket, and rustls over it (None: raw bytes).
struct Client {
    tcp: TcpStream,
    tls: Option<ClientConnection>,
    /// What the server sent: plaintext over TLS, raw bytes otherwise.
    received: Vec<u8>,
    /// The server closed (EOF or reset).
    closed: bool,
    reset: bool,
}

impl Client {
    /// Writes what rustls holds; true if the server is gone.
    fn push(&mut self) -> bool {
        let Some(tls) = self.tls.as_mut() else {
            return false;
        };
        while tls.wants_write() {
            match tls.write_tls(&mut self.tcp) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) =>
                {
                    self.reset = true;
                    return true;
                }
                Err(e) => panic!("client write: {e}"),
            }
        }
        false
    }

    /// Reads everything the socket has; over TLS, decrypts it (the
    /// server's records must be well-formed).
    fn pull(&mut self) {
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = match self.tcp.read(&mut buf) {
                Ok(0) => {
                    self.closed = true;
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                    self.closed = true;
                    self.reset = true;
                    return;
                }
                Err(e) => panic!("client read: {e}"),
            };
            let Some(tls) = self.tls.as_mut() else {
                self.received.extend_from_slice(&buf[..n]);
                continue;
            };
            let mut bytes = &buf[..n];
            while !bytes.is_empty() {
                tls.read_tls(&mut bytes).expect("buffering records");
                tls.process_new_packets()
                    .unwrap_or_else(|e| panic!("the server sent bad TLS: {e}"));
                let mut plain = [0u8; 16 * 1024];
                loop {
                    match tls.reader().read(&mut plain) {
                        Ok(0) => break, // close_notify
                        Ok(k) => self.received.extend_from_slice(&plain[..k]),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => panic!("plaintext: {e}"),
                    }
                }
            }
        }
    }

    fn step(&mut self, server: &mut Server<common::Echo>) {
        server
            .poll_once(Some(Duration::from_millis(1)))
            .expect("poll_once");
        if self.push() {
            self.closed = true;
        }
        self.pull();
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    let raw = mode & 0x80 != 0;
    let chunks = 1 + usize::from(mode & 0x0f);
    let chunk = stream.len().div_ceil(chunks).max(1);
    FIXTURE.with(|cell| {
        let mut cell = cell.borrow_mut();
        let Fixture {
            server,
            addr,
            client,
        } = cell.get_or_insert_with(fixture);
        assert_eq!(
            server.client_count(),
            0,
            "a client left from an earlier input"
        );
        let tcp = TcpStream::connect(*addr).expect("connect");
        tcp.set_nodelay(true).unwrap();
        tcp.set_nonblocking(true).unwrap();
        let tls = (!raw).then(|| {
            let name = ServerName::try_from("localhost").unwrap();
            ClientConnection::new(Arc::clone(client), name).unwrap()
        });
        let mut c = Client {
            tcp,
            tls,
            received: Vec::new(),
            closed: false,
            reset: false,
        };
        let mut steps = 0;
        // Over TLS: the handshake first.
        while c.tls.as_ref().is_some_and(|t| t.is_handshaking()) && !c.closed {
            c.step(server);
            steps += 1;
            assert!(steps < MAX_STEPS, "the TLS handshake does not complete");
        }
        let mut written = 0;
        while written < stream.len() && !c.closed {
            let end = (written + chunk).min(stream.len());
            match c.tls.as_mut() {
                Some(tls) => {
                    written += tls.writer().write(&stream[written..end]).unwrap();
                }
                None => match c.tcp.write(&stream[written..end]) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
                        ) =>
                    {
                        c.reset = true;
                        break;
                    }
                    Err(e) => panic!("client write: {e}"),
                },
            }
            c.step(server);
            steps += 1;
            assert!(steps < MAX_STEPS, "server does not take the input");
        }
        if let Some(tls) = c.tls.as_mut() {
            tls.send_close_notify();
        }
        let mut steps = 0;
        while c.tls.as_ref().is_some_and(|t| t.wants_write()) && !c.closed {
            c.step(server);
            steps += 1;
            assert!(steps < MAX_STEPS, "close_notify not taken");
        }
        let _ = c.tcp.shutdown(Shutdown::Write);
        let mut steps = 0;
        while !(c.closed && server.client_count() == 0) {
            c.step(server);
            steps += 1;
            assert!(
                steps < MAX_STEPS,
                "connection not closed {MAX_STEPS} steps after the FIN (closed {}, clients {})",
                c.closed,
                server.client_count()
            );
        }
        if raw {
            if stream.first().is_some_and(|&b| b != 0x16) && !c.received.is_empty() {
                assert!(
                    c.received.starts_with(b"HTTP/1.1 400 Bad Request\r\n"),
                    "not TLS: the plain 400, got {:?}",
                    String::from_utf8_lossy(&c.received[..c.received.len().min(64)])
                );
            }
            return;
        }
        assert!(
            c.received.len() <= written + SLACK,
            "server sent {} bytes of plaintext for {written}",
            c.received.len()
        );
        let complete = !c.reset && written == stream.len();
        common::check_echo_response(&stream[..written], &c.received, complete, &config(), None);
    });
});
