//! `proto::Session` driven by hand: no socket, no clock, made-up instants.
//! Every deadline (handshake, idle ping then close, close, drain) and the
//! pong-flood guard and the send limit, byte for byte.

use std::io::{self, IoSlice};
use std::time::{Duration, Instant};

use wsloop::proto::session::{Action, Expired, Flow, Session};
use wsloop::proto::{Message, Transmit};
use wsloop::{Config, SendStatus};

const UPGRADE: &[u8] = b"GET /echo HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";
const SECS: fn(u64) -> Duration = Duration::from_secs;

/// A masked client frame (mask 0: the payload goes as is) with `b0` as its
/// first byte; payloads under 126 bytes.
fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut f = vec![b0, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    f.extend_from_slice(payload);
    f
}

/// A server close frame as it goes on the wire.
fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut f = vec![0x88, 2 + reason.len() as u8];
    f.extend_from_slice(&code.to_be_bytes());
    f.extend_from_slice(reason.as_bytes());
    f
}

fn config() -> Config {
    let mut c = Config::default();
    c.handshake_timeout = SECS(10);
    c.idle_timeout = Some(SECS(60));
    c.close_timeout = SECS(5);
    c
}

/// Feeds all of `input`, collecting the actions' kinds (messages as text).
fn feed(s: &mut Session, now: Instant, config: &Config, input: &[u8]) -> Vec<String> {
    let mut input = input.to_vec();
    let mut pos = 0;
    let mut seen = Vec::new();
    while pos < input.len() {
        let (used, action) = s.read(now, config, &mut input[pos..]);
        assert!(used > 0 || action.is_some(), "progress");
        pos += used;
        match action {
            None => {}
            Some(Action::Upgrade(req)) => {
                seen.push(format!("upgrade {}", req.path()));
                s.accept(now, &req, None);
            }
            Some(Action::Http(req)) => {
                seen.push(format!("http {} {}", req.method(), req.path()));
                s.respond(now, &req, None);
            }
            Some(Action::Message(m)) => {
                seen.push(match m.message() {
                    Message::Text(t) => format!("text {t}"),
                    Message::Binary(b) => format!("binary {}", b.len()),
                });
                s.recycle(m);
            }
            Some(Action::Refused(e)) => seen.push(format!("refused {}", e.status())),
            Some(Action::Failed(e)) => seen.push(format!("failed {}", e.close_code())),
            Some(Action::PongFlood) => seen.push("pong flood".into()),
        }
    }
    seen
}

/// Everything `transmit` writes, and its verdict.
fn out(s: &mut Session) -> (Vec<u8>, Flow) {
    let mut bytes = Vec::new();
    let flow = s.transmit(&mut bytes).expect("a Vec takes everything");
    (bytes, flow)
}

/// An open session at `t0`, its 101 already transmitted.
fn open(t0: Instant, config: &Config) -> Session {
    let mut s = Session::new(t0);
    assert_eq!(feed(&mut s, t0, config, UPGRADE), ["upgrade /echo"]);
    let (bytes, flow) = out(&mut s);
    assert!(bytes.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
    assert_eq!(flow, Flow::Idle);
    s
}

#[test]
fn handshake_timeout_counts_from_accept_and_ignores_trickled_bytes() {
    let (t0, config) = (Instant::now(), config());
    let mut s = Session::new(t0);
    assert_eq!(s.poll_timeout(&config), Some(t0 + SECS(10)));
    // Half a request at 9 s does not restart the wait (slowloris).
    assert!(feed(&mut s, t0 + SECS(9), &config, &UPGRADE[..20]).is_empty());
    assert_eq!(s.poll_timeout(&config), Some(t0 + SECS(10)));
    // Early: nothing happens.
    let early = t0 + SECS(10) - Duration::from_nanos(1);
    assert_eq!(s.handle_timeout(early, &config), None);
    assert!(!s.is_done());
    assert_eq!(
        s.handle_timeout(t0 + SECS(10), &config),
        Some(Expired::Handshake)
    );
    assert!(s.is_done() && !s.is_accepted());
    assert_eq!(s.poll_timeout(&config), None);
    // Nothing is owed: the socket just closes.
    assert_eq!(out(&mut s).0, b"");
}

#[test]
fn idle_client_is_pinged_then_closed_with_1001_then_dropped() {
    let (t0, config) = (Instant::now(), config());
    let mut s = open(t0, &config);
    assert_eq!(s.poll_timeout(&config), Some(t0 + SECS(60)));

    // Traffic at 30 s: the idle wait starts again.
    let t1 = t0 + SECS(30);
    assert_eq!(feed(&mut s, t1, &config, &masked(0x81, b"hi")), ["text hi"]);
    assert_eq!(s.poll_timeout(&config), Some(t1 + SECS(60)));
    assert_eq!(s.handle_timeout(t0 + SECS(60), &config), None);

    // Silent for 60 s: an empty ping.
    let t2 = t1 + SECS(60);
    assert_eq!(s.handle_timeout(t2, &config), Some(Expired::Ping));
    assert_eq!(out(&mut s), (b"\x89\x00".to_vec(), Flow::Idle));
    assert_eq!(s.poll_timeout(&config), Some(t2 + SECS(60)));

    // Silent for another 60 s: close 1001, then the close timeout.
    let t3 = t2 + SECS(60);
    assert_eq!(s.handle_timeout(t3, &config), Some(Expired::Idle));
    assert_eq!(out(&mut s), (close_frame(1001, "idle timeout"), Flow::Idle));
    assert!(!s.is_open());
    assert_eq!(s.poll_timeout(&config), Some(t3 + SECS(5)));
    // Data arriving while closing neither restarts the close wait nor is
    // delivered (§5.5.1).
    assert!(feed(&mut s, t3 + SECS(1), &config, &masked(0x81, b"late")).is_empty());
    assert_eq!(s.poll_timeout(&config), Some(t3 + SECS(5)));
    assert_eq!(
        s.handle_timeout(t3 + SECS(5), &config),
        Some(Expired::Close)
    );
    assert!(s.is_done() && s.is_accepted());
    assert_eq!(s.close_status(), (1001, ""));
}

#[test]
fn a_pong_after_the_ping_keeps_the_client() {
    let (t0, config) = (Instant::now(), config());
    let mut s = open(t0, &config);
    let t1 = t0 + SECS(60);
    assert_eq!(s.handle_timeout(t1, &config), Some(Expired::Ping));
    out(&mut s);
    // The pong at 70 s restarts the idle wait: the next step is a ping again.
    let t2 = t0 + SECS(70);
    assert!(feed(&mut s, t2, &config, &masked(0x8a, b"")).is_empty());
    assert_eq!(s.poll_timeout(&config), Some(t2 + SECS(60)));
    assert_eq!(
        s.handle_timeout(t2 + SECS(60), &config),
        Some(Expired::Ping)
    );
    assert!(s.is_open());
}

#[test]
fn no_idle_timeout_means_no_deadline_once_open() {
    let t0 = Instant::now();
    let mut config = config();
    config.idle_timeout = None;
    let mut s = open(t0, &config);
    assert_eq!(s.poll_timeout(&config), None);
    assert_eq!(s.handle_timeout(t0 + SECS(1_000_000), &config), None);
    assert!(s.is_open());
}

#[test]
fn close_handshake_completes_or_times_out() {
    let (t0, config) = (Instant::now(), config());

    // The peer answers: the server closes TCP first (§7.1.1).
    let mut s = open(t0, &config);
    let t1 = t0 + SECS(1);
    assert!(s.close(t1, 4000, "bye"));
    assert!(!s.close(t1, 4001, "twice"), "already closing");
    assert_eq!(out(&mut s), (close_frame(4000, "bye"), Flow::Idle));
    assert_eq!(s.poll_timeout(&config), Some(t1 + SECS(5)));
    assert!(feed(&mut s, t1 + SECS(1), &config, &masked(0x88, b"\x0f\xa0ok")).is_empty());
    assert!(s.wants_transmit(), "the socket is to be closed");
    assert_eq!(out(&mut s), (Vec::new(), Flow::Close));
    assert!(s.is_done());
    assert_eq!(s.close_status(), (4000, "ok"));

    // The peer never answers: dropped at the close timeout.
    let mut s = open(t0, &config);
    assert!(s.close(t1, 1000, ""));
    out(&mut s);
    assert_eq!(s.handle_timeout(t1 + SECS(4), &config), None);
    assert_eq!(
        s.handle_timeout(t1 + SECS(5), &config),
        Some(Expired::Close)
    );
    assert!(s.is_done());
    assert_eq!(s.close_status(), (1000, ""));

    // The peer closes first: echoed, and the close timeout starts.
    let mut s = open(t0, &config);
    assert!(feed(&mut s, t1, &config, &masked(0x88, b"\x03\xe8")).is_empty());
    assert_eq!(s.poll_timeout(&config), Some(t1 + SECS(5)));
    assert_eq!(out(&mut s), (close_frame(1000, ""), Flow::Close));
    assert!(s.is_done());
}

#[test]
fn a_protocol_error_closes_and_shuts_the_write_side() {
    let (t0, config) = (Instant::now(), config());
    let mut s = open(t0, &config);
    // An unmasked frame from a client: 1002 (§5.1).
    assert_eq!(feed(&mut s, t0, &config, b"\x81\x02hi"), ["failed 1002"]);
    let (bytes, flow) = out(&mut s);
    assert_eq!(bytes[0], 0x88, "a close frame");
    assert_eq!(bytes[2..4], 1002u16.to_be_bytes());
    assert_eq!(
        flow,
        Flow::ShutWrite,
        "half-close, drain until the peer closes"
    );
    assert_eq!(s.poll_timeout(&config), Some(t0 + SECS(5)));
}

#[test]
fn pong_flood_guard_closes_a_pinger_that_does_not_read() {
    let t0 = Instant::now();
    let mut config = config();
    config.max_send_queue = 100;
    let mut s = open(t0, &config);
    let ping = masked(0x89, &[b'p'; 20]);
    // Each ping queues a 22-byte pong; nothing is transmitted. The fifth
    // pong takes the queue to 110 bytes, past the limit: close 1008 (at
    // 4 s), and later pings are ignored.
    let mut seen = Vec::new();
    for i in 0..8 {
        seen.extend(feed(&mut s, t0 + SECS(i), &config, &ping));
    }
    assert_eq!(seen, ["pong flood"]);
    assert_eq!(s.poll_timeout(&config), Some(t0 + SECS(4) + SECS(5)));
    let mut expected = Vec::new();
    for _ in 0..5 {
        expected.extend_from_slice(&[0x8a, 20]);
        expected.extend_from_slice(&[b'p'; 20]);
    }
    expected.extend(close_frame(1008, "send queue limit exceeded"));
    assert_eq!(out(&mut s).0, expected);
    assert!(!s.is_open());
}

/// A socket that takes at most `room` bytes, then would block.
struct Slow {
    room: usize,
    got: Vec<u8>,
}

impl Transmit for Slow {
    fn transmit(&mut self, bufs: &[IoSlice<'_>], _last: bool) -> io::Result<usize> {
        if self.room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut n = 0;
        for b in bufs {
            let take = b.len().min(self.room - n);
            self.got.extend_from_slice(&b[..take]);
            n += take;
        }
        self.room -= n;
        Ok(n)
    }
}

#[test]
fn send_limit_and_backpressure() {
    let t0 = Instant::now();
    let mut config = config();
    config.max_send_queue = 1000;
    let mut s = open(t0, &config);
    let mut sock = Slow {
        room: 100,
        got: Vec::new(),
    };
    let msg = [7u8; 400];
    assert_eq!(
        s.send(t0, &config, Message::Binary(&msg), &mut sock),
        SendStatus::Sent
    );
    assert_eq!(s.transmit(&mut sock).unwrap(), Flow::Blocked);
    assert_eq!(sock.got.len(), 100);
    assert_eq!(s.buffered_amount(), Some(304));
    // Behind a blocked socket: queued.
    assert_eq!(
        s.send(t0, &config, Message::Binary(&msg), &mut sock),
        SendStatus::Queued
    );
    // 708 queued + 404 would pass 1000: refused, and the client closed.
    assert_eq!(
        s.send(t0, &config, Message::Binary(&msg), &mut sock),
        SendStatus::Refused
    );
    assert!(!s.is_open());
    assert_eq!(s.poll_timeout(&config), Some(t0 + SECS(5)));
    sock.room = usize::MAX;
    assert_eq!(s.transmit(&mut sock).unwrap(), Flow::Idle);
    // Two whole frames, then the close: nothing cut, nothing lost.
    let mut frame = vec![0x82, 126, 0x01, 0x90];
    frame.extend_from_slice(&msg);
    let mut expected = [frame.clone(), frame].concat();
    expected.extend(close_frame(1008, "send queue limit exceeded"));
    assert_eq!(sock.got, expected);
}

#[test]
fn large_sends_are_written_through_without_queueing() {
    let (t0, config) = (Instant::now(), config());
    let mut s = open(t0, &config);
    let msg = vec![1u8; 20_000];
    let mut sock = Vec::new();
    assert_eq!(
        s.send(t0, &config, Message::Binary(&msg), &mut sock),
        SendStatus::Sent
    );
    assert_eq!(
        s.buffered_amount(),
        Some(0),
        "nothing copied into the queue"
    );
    assert_eq!(&sock[..4], &[0x82, 126, 0x4e, 0x20]);
    assert_eq!(sock.len(), 4 + 20_000);
}

#[test]
fn a_half_closed_peer_gets_its_reply_within_the_close_timeout() {
    let (t0, config) = (Instant::now(), config());

    // What is owed (a pong) is written, then the session is done.
    let mut s = open(t0, &config);
    assert!(feed(&mut s, t0, &config, &masked(0x89, b"")).is_empty());
    s.read_eof(t0);
    assert!(!s.is_done() && !s.wants_input());
    assert_eq!(s.poll_timeout(&config), Some(t0 + SECS(5)));
    assert_eq!(out(&mut s), (b"\x8a\x00".to_vec(), Flow::Close));
    assert!(s.is_done());

    // It never reads: dropped at the close timeout.
    let mut s = open(t0, &config);
    assert!(feed(&mut s, t0, &config, &masked(0x89, b"")).is_empty());
    s.read_eof(t0);
    assert_eq!(
        s.handle_timeout(t0 + SECS(5), &config),
        Some(Expired::Drain)
    );
    assert!(s.is_done());
    assert_eq!(s.close_status(), (1006, ""));

    // Nothing owed: done at once.
    let mut s = open(t0, &config);
    s.read_eof(t0);
    assert!(s.is_done());
}

#[test]
fn http_answers_and_refusals() {
    let (t0, config) = (Instant::now(), config());

    // HEAD: the GET's head, no body, then half-close.
    let mut s = Session::new(t0);
    let seen = feed(&mut s, t0, &config, b"HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(seen, ["http HEAD /x"]);
    assert!(s.is_answering());
    let (bytes, flow) = out(&mut s);
    let text = String::from_utf8(bytes).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\n"), "no body: {text}");
    assert_eq!(flow, Flow::ShutWrite);
    assert_eq!(s.poll_timeout(&config), Some(t0 + SECS(5)));
    assert_eq!(
        s.handle_timeout(t0 + SECS(5), &config),
        Some(Expired::Close)
    );

    // A bad version: 426 with the version the server speaks.
    let mut s = Session::new(t0);
    let bad = String::from_utf8(UPGRADE.to_vec())
        .unwrap()
        .replace("Version: 13", "Version: 8");
    assert_eq!(feed(&mut s, t0, &config, bad.as_bytes()), ["refused 426"]);
    let text = String::from_utf8(out(&mut s).0).unwrap();
    assert!(text.contains("Sec-WebSocket-Version: 13\r\n"), "{text}");

    // Over the header limit, a byte at a time: 431.
    let mut s = Session::new(t0);
    let mut seen = Vec::new();
    for _ in 0..config.max_header_bytes {
        seen.extend(feed(&mut s, t0, &config, b"a"));
    }
    assert_eq!(seen, ["refused 431"]);

    // The application refuses: its status, and what it sent is dropped.
    let mut s = Session::new(t0);
    let mut input = UPGRADE.to_vec();
    let (_, action) = s.read(t0, &config, &mut input);
    assert!(matches!(action, Some(Action::Upgrade(_))));
    s.send(t0, &config, Message::Text("dropped"), &mut io::sink());
    s.reject(t0, 403, "not you");
    let text = String::from_utf8(out(&mut s).0).unwrap();
    assert!(text.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nnot you\n"), "{text}");
    assert!(!s.is_accepted());

    // Busy: 503 with Retry-After.
    let mut s = Session::refuse_busy(t0);
    let text = String::from_utf8(out(&mut s).0).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{text}"
    );
    assert!(text.contains("Retry-After: 5\r\n"));
}

#[test]
fn frames_behind_the_request_in_one_read_are_not_lost() {
    let (t0, config) = (Instant::now(), config());
    let mut s = Session::new(t0);
    let mut input = UPGRADE.to_vec();
    input.extend(masked(0x81, b"one"));
    input.extend(masked(0x82, b"two"));
    assert_eq!(
        feed(&mut s, t0, &config, &input),
        ["upgrade /echo", "text one", "binary 3"]
    );
    // And when the request itself arrives in pieces.
    let mut s = Session::new(t0);
    let (a, b) = input.split_at(UPGRADE.len() - 5);
    assert!(feed(&mut s, t0, &config, a).is_empty());
    assert_eq!(
        feed(&mut s, t0, &config, b),
        ["upgrade /echo", "text one", "binary 3"]
    );
}
