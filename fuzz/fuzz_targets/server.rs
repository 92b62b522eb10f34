//! The whole server loop over a loopback socket: a `wsloop::Server` with its
//! own `Poll` on 127.0.0.1:0 and an echo handler, built once per process
//! and kept across iterations. Each iteration is one client connection.
//!
//! Input layout: byte 0 = how the rest is written (`1 + (b & 15)` chunks,
//! with a server step between chunks); the rest = the client's bytes
//! (request head, then frames). The client then shuts its write side and
//! reads until the server closes.
//!
//! Asserts: no panic; no client left from an earlier iteration (the count
//! stays at 0 between iterations); the server answers with either a `101`
//! for a request that passes the independent RFC 6455 §4.2.1 checks, with
//! the right `Sec-WebSocket-Accept` and then only valid server frames
//! (every close code legal, nothing after the close;
//! `common::check_server_frames`) that are exactly the echoes, pongs and
//! close a lone `Connection` fed the same bytes owes
//! (`common::expected_echo`), or a well-formed HTTP error response;
//! it sends no more than the input plus a constant (plus, with
//! permessage-deflate, the owed echoes); and it
//! closes the connection and forgets the client within a bounded number of
//! steps after the client's FIN.
//!
//! permessage-deflate: a request offering it gets exactly the
//! `Sec-WebSocket-Extensions` answer `negotiate` gives for its offers, and
//! the server's RSV1 frames must inflate (a fresh decompressor per message
//! when the server keeps no context) to the owed echoes. The server is kept
//! across inputs, so connections reuse the codecs earlier ones gave back.
#![no_main]

mod common;

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use wsloop::proto::deflate::{negotiate, Agreed};
use wsloop::proto::handshake::{parse_request, Parsed};
use wsloop::{Config, Server};

/// Server steps allowed while writing and after the FIN before the
/// connection must be gone. A step waits at most 1 ms when idle.
const MAX_STEPS: usize = 2000;
/// Bytes the server may send beyond the client's: the 101 or an error
/// response, a close frame.
const SLACK: usize = 1024;

struct Fixture {
    server: Server<common::Echo>,
    addr: SocketAddr,
}

thread_local! {
    static FIXTURE: RefCell<Option<Fixture>> = const { RefCell::new(None) };
}

fn config() -> Config {
    let mut config = Config::default();
    config.max_frame_size = 64 * 1024;
    config.max_message_size = 64 * 1024;
    config.max_send_queue = 256 * 1024;
    config
}

fn fixture() -> Fixture {
    common::ignore_sigpipe();
    let server =
        Server::bind("127.0.0.1:0".parse().unwrap(), config(), common::Echo).expect("bind");
    let addr = server.local_addr();
    Fixture { server, addr }
}

/// One server step, then everything the client can read. True once the
/// server closed the connection (`reset` says whether it reset it).
fn step(
    server: &mut Server<common::Echo>,
    client: &mut TcpStream,
    received: &mut Vec<u8>,
    reset: &mut bool,
) -> bool {
    server
        .poll_once(Some(Duration::from_millis(1)))
        .expect("poll_once");
    let mut buf = [0u8; 64 * 1024];
    loop {
        match client.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // The server closed with our bytes unread (a refused request
            // with more behind it): the kernel answers with a reset.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                *reset = true;
                return true;
            }
            Err(e) => panic!("client read: {e}"),
        }
    }
}

/// The permessage-deflate agreement the server makes for the request at the
/// start of `stream`, if it makes one.
fn agreement(stream: &[u8]) -> Option<Agreed> {
    match parse_request(stream, &config()) {
        Ok(Parsed::Complete { request, .. }) => negotiate(&request.extensions(), &config().deflate),
        _ => None,
    }
}

/// What the echoes owed to an agreed permessage-deflate client may add to
/// the output beyond the input's bytes (a few input bytes can inflate to a
/// whole message): each echo as is (a compressed one is smaller) and its
/// header.
fn echo_budget(stream: &[u8]) -> usize {
    let Some(agreed) = agreement(stream) else {
        return 0;
    };
    let Some(head) = common::read_head(stream) else {
        return 0;
    };
    common::expected_echo_deflate(&stream[head.len..], &config(), Some(agreed))
        .messages
        .iter()
        .map(|(_, m)| m.len() + 14)
        .sum()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    let chunks = 1 + usize::from(mode & 0x0f);
    let chunk = stream.len().div_ceil(chunks).max(1);
    let limit = stream.len() + SLACK + echo_budget(stream);
    FIXTURE.with(|cell| {
        let mut cell = cell.borrow_mut();
        let Fixture { server, addr } = cell.get_or_insert_with(fixture);
        assert_eq!(
            server.client_count(),
            0,
            "a client left from an earlier input"
        );

        let mut client = TcpStream::connect(*addr).expect("connect");
        client.set_nodelay(true).unwrap();
        client.set_nonblocking(true).unwrap();
        let mut received = Vec::new();
        let mut eof = false;
        let mut reset = false;
        let mut written = 0;
        let mut steps = 0;
        while written < stream.len() && !eof {
            let end = (written + chunk).min(stream.len());
            match client.write(&stream[written..end]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // The server refused and closed while we were writing.
                Err(e)
                    if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) =>
                {
                    reset = true;
                    break;
                }
                Err(e) => panic!("client write: {e}"),
            }
            eof = step(server, &mut client, &mut received, &mut reset);
            steps += 1;
            assert!(steps < MAX_STEPS, "server does not take the input");
        }
        let _ = client.shutdown(Shutdown::Write);
        let mut steps = 0;
        while !(eof && server.client_count() == 0) {
            eof |= step(server, &mut client, &mut received, &mut reset);
            steps += 1;
            assert!(
                steps < MAX_STEPS,
                "connection not closed {MAX_STEPS} steps after the FIN (eof {eof}, clients {})",
                server.client_count()
            );
            assert!(
                received.len() <= limit,
                "server sent {} bytes",
                received.len()
            );
        }
        assert!(
            received.len() <= limit,
            "server sent {} bytes",
            received.len()
        );
        common::check_echo_response(stream, &received, !reset, &config(), agreement(stream));
    });
});
