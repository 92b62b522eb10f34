//! 1000 concurrent clients, each sending 100 numbered messages to an echo
//! server running `run()` in its own thread: every reply arrives, in order
//! and intact.

mod support;

use std::time::{Duration, Instant};

use support::*;
use wsloop::Config;

const CLIENTS: usize = 1000;
const MESSAGES: usize = 100;

fn message(client: usize, i: usize) -> String {
    format!(
        "client {client} message {i} {}",
        "x".repeat((client + i) % 40)
    )
}

/// Client and server sides of every connection live in this process.
const FDS_NEEDED: u64 = 2 * CLIENTS as u64 + 256;

#[test]
fn thousand_clients_hundred_messages_each_all_echoed_in_order() {
    // Under a descriptor limit too low for both ends of 1000 connections,
    // run again in a child with the limit raised (up to the hard limit).
    if let Some((soft, hard)) = fd_limits() {
        if soft < FDS_NEEDED && !in_child() {
            assert!(hard >= FDS_NEEDED, "ulimit -Hn {hard}: need {FDS_NEEDED}");
            return run_in_child(
                "thousand_clients_hundred_messages_each_all_echoed_in_order",
                FDS_NEEDED,
                Duration::from_secs(90),
            );
        }
    }
    let started = Instant::now();
    let (mut rec, log) = Rec::new();
    rec.record = false;
    let mut server = Running::start(Config::default(), rec);

    let mut clients: Vec<RawClient> = (0..CLIENTS)
        .map(|_| RawClient::open_blocking(server.addr, "/echo"))
        .collect();
    wait_log(&log, "every client open", |l| l.opens.len() == CLIENTS);

    // Every client's 100 frames in one write; replies wait in the sockets.
    for (c, client) in clients.iter_mut().enumerate() {
        let mut bytes = Vec::new();
        for i in 0..MESSAGES {
            bytes.extend_from_slice(&text(&message(c, i)));
        }
        client.write_blocking(&bytes);
    }
    for (c, client) in clients.iter_mut().enumerate() {
        for i in 0..MESSAGES {
            let f = client.frame_blocking();
            assert_eq!(f.opcode, TEXT, "client {c} reply {i}");
            assert!(f.fin && !f.masked);
            assert_eq!(f.text(), message(c, i), "client {c} reply {i}");
        }
    }
    assert_eq!(lock(&log).message_count, CLIENTS * MESSAGES);

    // Everyone leaves with a close handshake.
    for client in &mut clients {
        client.write_blocking(&close(1000, ""));
    }
    for (c, client) in clients.iter_mut().enumerate() {
        let f = client.frame_blocking();
        assert_eq!(f.close_code(), 1000, "client {c}");
        client.wait_closed_blocking();
        assert!(client.inbuf.is_empty());
    }
    wait_log(&log, "every on_close", |l| l.closes.len() == CLIENTS);
    assert!(lock(&log).closes.iter().all(|c| c.1 == 1000));
    server.stop().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}
