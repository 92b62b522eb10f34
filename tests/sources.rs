//! Other event sources in the loop's `Poll` (a pipe here, a child
//! process's stdout later), backpressure both ways (pausing a client's
//! reads, being told when it drained), all stepped on one thread.

#![cfg(unix)]

mod support;

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::time::Duration;

use mio::unix::pipe::{self, Receiver, Sender};
use mio::Interest;
use support::*;
use wsloop::{Config, ConnId, Ctx, Handler, Message, SendStatus, Server, SourceId};

/// Each client gets a pipe: lines written to its sending end go to the
/// client as text messages. `!pause` / `!resume` from a client pause and
/// resume reading it; `!flood N` sends N 64 KiB messages at once.
#[derive(Default)]
struct Piped {
    pipes: HashMap<SourceId, (ConnId, Receiver, Vec<u8>)>,
    senders: HashMap<ConnId, Sender>,
    received: Vec<String>,
    drained: Vec<ConnId>,
    statuses: Vec<SendStatus>,
}

impl Handler for Piped {
    type Data = Option<SourceId>;

    fn on_open(
        &mut self,
        ctx: &mut Ctx<'_, Self::Data>,
        id: ConnId,
        _: &wsloop::Request,
    ) -> wsloop::Decision {
        let (sender, mut receiver) = pipe::new().expect("a pipe");
        let source = ctx
            .register(&mut receiver, Interest::READABLE)
            .expect("registered");
        *ctx.data(id).expect("data") = Some(source);
        self.pipes.insert(source, (id, receiver, Vec::new()));
        self.senders.insert(id, sender);
        wsloop::Decision::accept()
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Self::Data>, id: ConnId, msg: Message<'_>) {
        let Message::Text(text) = msg else { return };
        self.received.push(text.to_owned());
        match text.split_once(' ').unwrap_or((text, "")) {
            ("!pause", _) => assert!(ctx.pause_reading(id)),
            ("!flood", n) => {
                let big = "x".repeat(64 << 10);
                for _ in 0..n.parse::<usize>().expect("a count") {
                    self.statuses.push(ctx.send(id, Message::Text(&big)));
                }
            }
            _ => {}
        }
    }

    fn on_source(
        &mut self,
        ctx: &mut Ctx<'_, Self::Data>,
        source: SourceId,
        event: &mio::event::Event,
    ) {
        let Some((id, receiver, line)) = self.pipes.get_mut(&source) else {
            return;
        };
        assert!(event.is_readable() || event.is_read_closed());
        let mut buf = [0u8; 256];
        loop {
            match receiver.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => line.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("pipe read: {e}"),
            }
        }
        while let Some(end) = line.iter().position(|&b| b == b'\n') {
            let text: Vec<u8> = line.drain(..=end).collect();
            let text = std::str::from_utf8(&text[..end]).expect("UTF-8");
            if text == "resume" {
                assert!(ctx.resume_reading(*id));
            } else {
                ctx.send(*id, Message::Text(text));
            }
        }
    }

    fn on_drain(&mut self, _: &mut Ctx<'_, Self::Data>, id: ConnId) {
        self.drained.push(id);
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_, Self::Data>, id: ConnId, _: u16, _: &str) {
        if let Some(Some(source)) = ctx.data(id).copied() {
            let (_, mut receiver, _) = self.pipes.remove(&source).expect("its pipe");
            ctx.deregister(source, &mut receiver).expect("deregistered");
            assert!(ctx.deregister(source, &mut receiver).is_err(), "only once");
        }
        self.senders.remove(&id);
    }
}

fn server() -> Server<Piped> {
    Server::bind(localhost(), Config::default(), Piped::default()).unwrap()
}

fn last_id(server: &Server<Piped>) -> ConnId {
    *server.handler().senders.keys().max().expect("a client")
}

fn write_pipe(server: &mut Server<Piped>, id: ConnId, bytes: &[u8]) {
    let (handler, _) = server.context();
    let sender = handler.senders.get_mut(&id).expect("its pipe");
    sender.write_all(bytes).expect("pipe write");
}

#[test]
fn a_pipe_in_the_same_poll_feeds_a_client() {
    let mut server = server();
    let mut a = RawClient::open(&mut server, "/a");
    let a_id = last_id(&server);
    let mut b = RawClient::open(&mut server, "/b");
    let b_id = last_id(&server);
    assert_ne!(a_id, b_id);

    write_pipe(&mut server, a_id, b"one\ntwo\nthr");
    assert_eq!(a.frame(&mut server).text(), "one");
    assert_eq!(a.frame(&mut server).text(), "two");
    write_pipe(&mut server, b_id, b"for b\n");
    assert_eq!(b.frame(&mut server).text(), "for b");
    // The partial line waits for its end.
    write_pipe(&mut server, a_id, b"ee\n");
    assert_eq!(a.frame(&mut server).text(), "three");

    // Closing deregisters the pipe (on_close asserts it goes once).
    a.send(&close(1000, ""));
    a.wait_closed(&mut server);
    step_until(&mut server, "a's pipe gone", |s| {
        s.handler().pipes.len() == 1
    });
}

#[test]
fn pausing_a_client_holds_its_messages_until_resumed() {
    let mut server = server();
    let mut c = RawClient::open(&mut server, "/p");
    let id = last_id(&server);
    c.send(&text("!pause"));
    step_until(&mut server, "the pause", |s| {
        s.handler().received.len() == 1
    });
    c.send(&text("held 1"));
    c.send(&text("held 2"));
    step_for(&mut server, Duration::from_millis(200));
    assert_eq!(
        server.handler().received,
        ["!pause"],
        "nothing read while paused"
    );

    // Resumed from another source: what arrived meanwhile is read, in order.
    write_pipe(&mut server, id, b"resume\n");
    step_until(&mut server, "the held messages", |s| {
        s.handler().received.len() == 3
    });
    assert_eq!(server.handler().received, ["!pause", "held 1", "held 2"]);
}

#[test]
fn a_client_that_falls_behind_and_catches_up_is_reported_drained() {
    let mut server = server();
    let mut c = RawClient::open(&mut server, "/d");
    let id = last_id(&server);
    // 64 x 64 KiB to a client that stopped reading: more than the socket
    // buffers take, so once flushed the client is behind, and the next
    // message is queued behind the rest.
    c.reading = false;
    c.send(&text("!flood 64"));
    step_until(&mut server, "the flood", |s| {
        s.handler().statuses.len() == 64
    });
    step(&mut server, 3);
    c.send(&text("!flood 1"));
    step_until(&mut server, "one more", |s| {
        s.handler().statuses.len() == 65
    });
    assert_eq!(server.handler().statuses[64], SendStatus::Queued);
    step(&mut server, 5);
    assert!(server.handler().drained.is_empty(), "not caught up yet");
    // The client reads it all: the queue drains, once.
    c.reading = true;
    for _ in 0..65 {
        assert_eq!(c.frame(&mut server).payload.len(), 64 << 10);
    }
    step_until(&mut server, "on_drain", |s| !s.handler().drained.is_empty());
    step(&mut server, 5);
    assert_eq!(server.handler().drained, [id]);
}
