//! Timer behaviour of the loop with a `ManualClock`: time is advanced
//! instead of slept, then the server is stepped with zero-timeout polls.

#![allow(clippy::field_reassign_with_default)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::*;
use wsloop::clock::ManualClock;
use wsloop::{Config, ConnId, Server};

const MS: Duration = Duration::from_millis(1);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn manual(config: Config) -> (Server<Rec>, ManualClock, Arc<Mutex<Log>>) {
    let (rec, log) = Rec::new();
    let mut server = Server::bind(localhost(), config, rec).unwrap();
    let clock = ManualClock::new();
    server.set_clock(clock.clone());
    (server, clock, log)
}

/// Advances the clock and lets the server run what came due.
fn advance(server: &mut Server<Rec>, clock: &ManualClock, by: Duration) {
    clock.advance(by);
    step(server, 3);
}

/// Gives the server some real time and asserts the client got nothing and
/// is still connected.
fn assert_quiet(server: &mut Server<Rec>, c: &mut RawClient, when: &str) {
    step_for(server, Duration::from_millis(20));
    c.pump();
    assert!(!c.closed(), "{when}: connection closed");
    assert!(
        c.inbuf.is_empty(),
        "{when}: unexpected bytes {:?}",
        c.take_frame().map(|f| f.short())
    );
}

fn last_open(server: &Server<Rec>) -> ConnId {
    server.handler().log().opens.last().expect("an open").0
}

#[test]
fn handshake_timeout_closes_a_client_that_never_sends_its_request() {
    let mut config = Config::default();
    config.handshake_timeout = secs(10);
    config.idle_timeout = None;
    let (mut server, clock, log) = manual(config);
    let mut silent = RawClient::connect(server.local_addr());
    let mut slow = RawClient::connect(server.local_addr());
    slow.send(b"GET / HTTP/1.1\r\nHost: x\r\n");
    step_until(&mut server, "both accepted", |s| s.client_count() == 2);

    advance(&mut server, &clock, secs(10) - MS);
    assert_quiet(&mut server, &mut silent, "before the handshake timeout");
    assert_quiet(&mut server, &mut slow, "before the handshake timeout");
    // Upgrading in time is enough: the handshake timeout no longer applies.
    let mut ok = RawClient::open(&mut server, "/");

    advance(&mut server, &clock, 2 * MS);
    silent.wait_closed(&mut server);
    slow.wait_closed(&mut server);
    assert!(
        silent.inbuf.is_empty() && slow.inbuf.is_empty(),
        "no response"
    );
    advance(&mut server, &clock, secs(3600));
    assert_quiet(&mut server, &mut ok, "an open client without idle timeout");
    assert_eq!(server.client_count(), 1);
    let log = lock(&log);
    assert_eq!(log.opens.len(), 1);
    assert!(log.closes.is_empty(), "never accepted: no on_close");
}

#[test]
fn idle_client_is_pinged_and_a_pong_keeps_it() {
    let mut config = Config::default();
    config.idle_timeout = Some(secs(30));
    let (mut server, clock, log) = manual(config);
    let mut c = RawClient::open(&mut server, "/");

    advance(&mut server, &clock, secs(30) - MS);
    assert_quiet(&mut server, &mut c, "before idle_timeout");
    advance(&mut server, &clock, 2 * MS);
    let ping = c.frame(&mut server);
    assert_eq!(ping.opcode, PING, "{}", ping.short());

    c.send(&masked(PONG, &ping.payload));
    c.flush(&mut server);
    step(&mut server, 3);
    // The pong was traffic: a whole new idle period starts, with no close.
    advance(&mut server, &clock, secs(30) - MS);
    assert_quiet(&mut server, &mut c, "after the pong");
    advance(&mut server, &clock, 2 * MS);
    assert_eq!(c.frame(&mut server).opcode, PING, "the next idle period");

    // A message counts as traffic as well.
    c.send(&text("still here"));
    assert_eq!(c.frame(&mut server).text(), "still here");
    advance(&mut server, &clock, secs(30) - MS);
    assert_quiet(&mut server, &mut c, "after a message");
    assert!(lock(&log).closes.is_empty());
}

#[test]
fn silent_after_the_ping_gets_1001_then_tcp_close_after_close_timeout() {
    let mut config = Config::default();
    config.idle_timeout = Some(secs(30));
    config.close_timeout = secs(5);
    let (mut server, clock, log) = manual(config);
    let mut c = RawClient::open(&mut server, "/");
    let id = last_open(&server);

    advance(&mut server, &clock, secs(30) + MS);
    assert_eq!(c.frame(&mut server).opcode, PING);
    advance(&mut server, &clock, secs(30) - 2 * MS);
    assert_quiet(&mut server, &mut c, "before the second idle period ends");
    advance(&mut server, &clock, 2 * MS);
    let f = c.frame(&mut server);
    assert_eq!(f.close_code(), 1001);

    advance(&mut server, &clock, secs(5) - MS);
    assert_quiet(&mut server, &mut c, "inside the close timeout");
    assert!(lock(&log).closes.is_empty());
    advance(&mut server, &clock, 2 * MS);
    c.wait_closed(&mut server);
    step_until(&mut server, "on_close", |_| !lock(&log).closes.is_empty());
    assert_eq!(lock(&log).closes_of(id), vec![1001]);
    assert_eq!(server.client_count(), 0);
}

#[test]
fn idle_timeout_none_never_pings() {
    let mut config = Config::default();
    config.idle_timeout = None;
    let (mut server, clock, _log) = manual(config);
    let mut c = RawClient::open(&mut server, "/");
    advance(&mut server, &clock, secs(86_400));
    assert_quiet(&mut server, &mut c, "a day later");
}

#[test]
fn user_timers_fire_with_their_tag_only_after_their_time() {
    let (mut server, clock, log) = manual(Config::default());
    {
        let (_, mut ctx) = server.context();
        ctx.set_timer(secs(10), 7);
        ctx.set_timer(secs(5), 3);
        ctx.set_timer(secs(5), 4);
    }
    advance(&mut server, &clock, secs(5) - MS);
    assert!(lock(&log).timers.is_empty());
    advance(&mut server, &clock, MS);
    assert_eq!(lock(&log).timers, vec![3, 4]);
    advance(&mut server, &clock, secs(5) - 2 * MS);
    assert_eq!(lock(&log).timers, vec![3, 4]);
    advance(&mut server, &clock, secs(1));
    assert_eq!(lock(&log).timers, vec![3, 4, 7]);
    advance(&mut server, &clock, secs(100));
    assert_eq!(lock(&log).timers, vec![3, 4, 7], "each fires once");
}

#[test]
fn cancelled_timers_never_fire() {
    let (mut server, clock, log) = manual(Config::default());
    let (a, b) = {
        let (_, mut ctx) = server.context();
        (ctx.set_timer(secs(10), 1), ctx.set_timer(secs(10), 2))
    };
    {
        let (_, mut ctx) = server.context();
        assert!(ctx.cancel_timer(a));
        assert!(!ctx.cancel_timer(a), "already cancelled");
    }
    // A new timer reuses the cancelled one's slot; the stale heap entry
    // must neither fire it early nor fire the cancelled one.
    let c = server.context().1.set_timer(secs(20), 3);
    advance(&mut server, &clock, secs(10));
    assert_eq!(lock(&log).timers, vec![2]);
    assert!(!server.context().1.cancel_timer(b), "already fired");
    advance(&mut server, &clock, secs(10) - MS);
    assert_eq!(lock(&log).timers, vec![2]);
    advance(&mut server, &clock, MS);
    assert_eq!(lock(&log).timers, vec![2, 3]);
    assert!(!server.context().1.cancel_timer(c));
}

#[test]
fn server_close_without_answer_drops_tcp_after_close_timeout() {
    let mut config = Config::default();
    config.close_timeout = secs(5);
    let (mut server, clock, log) = manual(config);
    let mut c = RawClient::open(&mut server, "/");
    let id = last_open(&server);
    let mut other = RawClient::open(&mut server, "/other");

    assert!(server.context().1.close(id, 1000, "bye"));
    let f = c.frame(&mut server);
    assert_eq!(f.close_code(), 1000);
    assert_eq!(&f.payload[2..], b"bye");
    // Data the client sends now is discarded, and does not extend the wait.
    advance(&mut server, &clock, secs(3));
    c.send(&text("ignored"));
    c.flush(&mut server);
    advance(&mut server, &clock, secs(2) - MS);
    assert_quiet(&mut server, &mut c, "inside the close timeout");
    assert!(lock(&log).closes.is_empty());
    advance(&mut server, &clock, 2 * MS);
    c.wait_closed(&mut server);
    step_until(&mut server, "on_close", |_| !lock(&log).closes.is_empty());
    assert_eq!(lock(&log).closes_of(id), vec![1000]);
    assert!(
        lock(&log).messages.is_empty(),
        "data after the close is dropped"
    );
    // The other client is untouched.
    other.send(&text("hi"));
    assert_eq!(other.frame(&mut server).text(), "hi");
}

#[test]
fn half_closed_peer_that_stops_reading_is_dropped_after_close_timeout() {
    let mut config = Config::default();
    config.close_timeout = secs(5);
    let (mut server, clock, log) = manual(config);
    let mut c = RawClient::open(&mut server, "/");
    let id = last_open(&server);
    // An echo far larger than the socket buffers, then EOF, and no reading:
    // the server keeps the rest queued for the close timeout only.
    c.reading = false;
    c.send(&binary(&pattern(8 << 20, 3)));
    c.flush(&mut server);
    c.shutdown_write();
    step_for(&mut server, Duration::from_millis(50));
    assert!(lock(&log).closes.is_empty(), "still writing the echo");
    assert_eq!(server.client_count(), 1);
    advance(&mut server, &clock, secs(5) - MS);
    assert!(lock(&log).closes.is_empty());
    advance(&mut server, &clock, 2 * MS);
    step_until(&mut server, "on_close", |_| !lock(&log).closes.is_empty());
    assert_eq!(lock(&log).closes_of(id), vec![1006]);
    assert_eq!(server.client_count(), 0);
}

#[test]
fn a_timer_rearmed_from_on_timer_with_zero_delay_waits_for_the_next_step() {
    // Run in a thread so that a loop that never returns fails the test
    // instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut server, _clock, log) = manual(Config::default());
        server.context().0.rearm = Some(Duration::ZERO);
        server.context().1.set_timer(Duration::ZERO, 0);
        for _ in 0..3 {
            server.poll_once(Some(Duration::ZERO)).unwrap();
        }
        let fired = lock(&log).timers.clone();
        let _ = tx.send(fired);
    });
    let fired = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("poll_once never returned: on_timer re-arming itself starves the loop");
    assert_eq!(fired, vec![0, 1, 2], "one generation per step");
}
