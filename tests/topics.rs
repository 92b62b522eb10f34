//! Topics (`Ctx::subscribe` / `unsubscribe` / `publish`) and the
//! `LoopHandle` (commands from other threads), with the loop stepped in the
//! test thread against raw TCP clients.

mod support;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use support::*;
use wsloop::clock::ManualClock;
use wsloop::{
    Config, ConnId, Ctx, Decision, HandleError, Handler, LoopHandle, Message, Request, Server,
};

/// Subscribes each client to the topics in its query (`/?a,b`); a text
/// `pub TOPIC TEXT` publishes, `sub TOPIC` and `unsub TOPIC` change the
/// sender's topics, and every client's id is kept for the test.
#[derive(Default)]
struct Board {
    opened: Vec<ConnId>,
    published: Vec<usize>,
}

impl Handler for Board {
    type Data = ();

    fn on_open(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, req: &Request) -> Decision {
        for topic in req
            .query()
            .unwrap_or("")
            .split(',')
            .filter(|t| !t.is_empty())
        {
            assert!(ctx.subscribe(id, topic));
        }
        self.opened.push(id);
        Decision::accept()
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, msg: Message<'_>) {
        let Message::Text(text) = msg else { return };
        let mut words = text.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("pub"), Some(topic), Some(body)) => {
                let n = ctx.publish(topic, Message::Text(body));
                self.published.push(n);
            }
            (Some("sub"), Some(topic), None) => {
                ctx.subscribe(id, topic);
            }
            (Some("unsub"), Some(topic), None) => {
                ctx.unsubscribe(id, topic);
            }
            // Publishes to two topics, a direct send and a subscription
            // change in one turn: a member of both must see 1 to 6 in
            // order, and the late subscriber only what came after it.
            (Some("mix"), None, None) => {
                ctx.publish("a", Message::Text("1"));
                ctx.send(id, Message::Text("2"));
                ctx.publish("b", Message::Text("3"));
                ctx.publish("a", Message::Text("4"));
                ctx.subscribe(id, "late");
                ctx.publish("a", Message::Text("5"));
                ctx.publish("late", Message::Text("6"));
            }
            _ => {}
        }
    }
}

fn board() -> Server<Board> {
    Server::bind(localhost(), Config::default(), Board::default()).unwrap()
}

fn count(server: &mut Server<Board>, topic: &str) -> usize {
    server.context().1.subscriber_count(topic)
}

/// Steps until `c` has nothing more to say for a while, and returns what
/// it got.
fn drain(c: &mut RawClient, server: &mut Server<Board>) -> Vec<String> {
    let mut got = Vec::new();
    let mut quiet = 0;
    while quiet < 20 {
        step(server, 1);
        c.pump();
        match c.take_frame() {
            Some(f) => {
                got.push(f.text().to_string());
                quiet = 0;
            }
            None => {
                quiet += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    got
}

#[test]
fn a_publish_reaches_the_subscribers_of_its_topic_and_no_one_else() {
    let mut server = board();
    let mut a = RawClient::open(&mut server, "/?news,sport");
    let mut b = RawClient::open(&mut server, "/?news");
    let mut c = RawClient::open(&mut server, "/?weather");
    assert_eq!(count(&mut server, "news"), 2);

    a.send(&text("pub news hello"));
    assert_eq!(
        a.frame(&mut server).text(),
        "hello",
        "the sender too, if subscribed"
    );
    assert_eq!(b.frame(&mut server).text(), "hello");
    c.send(&text("pub sport goal"));
    assert_eq!(a.frame(&mut server).text(), "goal");
    assert_eq!(drain(&mut b, &mut server), Vec::<String>::new());
    assert_eq!(drain(&mut c, &mut server), Vec::<String>::new());
    assert_eq!(server.handler().published, [2, 1]);

    // Unsubscribed: no more; subscribed later: from then on.
    b.send(&text("unsub news"));
    c.send(&text("sub news"));
    drain(&mut c, &mut server);
    a.send(&text("pub news second"));
    assert_eq!(a.frame(&mut server).text(), "second");
    assert_eq!(c.frame(&mut server).text(), "second");
    assert_eq!(drain(&mut b, &mut server), Vec::<String>::new());

    // Nobody there: taken by no one, and the topic is gone.
    a.send(&text("pub nobody x"));
    drain(&mut a, &mut server);
    assert_eq!(server.handler().published.last(), Some(&0));
}

#[test]
fn publishes_sends_and_subscriptions_in_one_turn_keep_their_order() {
    let mut server = board();
    let mut both = RawClient::open(&mut server, "/?a,b");
    let mut only_a = RawClient::open(&mut server, "/?a");
    both.send(&text("mix"));
    let got: Vec<String> = (0..6)
        .map(|_| both.frame(&mut server).text().to_string())
        .collect();
    assert_eq!(got, ["1", "2", "3", "4", "5", "6"]);
    let got: Vec<String> = (0..2)
        .map(|_| only_a.frame(&mut server).text().to_string())
        .collect();
    assert_eq!(got[..1], ["1"]);
    assert_eq!(got[1], "4");
    assert_eq!(only_a.frame(&mut server).text(), "5");
    assert_eq!(drain(&mut only_a, &mut server), Vec::<String>::new());
}

#[test]
fn a_publish_read_just_before_a_close_frame_still_reaches_the_closer() {
    let mut server = board();
    let mut a = RawClient::open(&mut server, "/?t");
    let mut b = RawClient::open(&mut server, "/?t");
    // Both frames in one write: read in one turn.
    a.send(&[text("pub t last words"), close(1000, "bye")].concat());
    assert_eq!(
        a.frame(&mut server).text(),
        "last words",
        "before the close reply"
    );
    assert_eq!(a.frame(&mut server).close_code(), 1000);
    assert_eq!(b.frame(&mut server).text(), "last words");
}

#[test]
fn a_close_between_fragments_still_comes_after_the_turns_publish() {
    let mut server = board();
    let mut a = RawClient::open(&mut server, "/?t");
    // A publish, then the first fragment of another message, then a close
    // frame (a control frame may come between fragments), in one write.
    a.send(
        &[
            text("pub t published"),
            encode(false, 0, TEXT, b"pub t never fin", Some(MASK)),
            close(1000, "bye"),
        ]
        .concat(),
    );
    assert_eq!(
        a.frame(&mut server).text(),
        "published",
        "before the close reply"
    );
    assert_eq!(a.frame(&mut server).close_code(), 1000);
}

#[test]
fn a_publish_in_the_turn_a_timeout_closes_a_member_still_reaches_it_first() {
    let mut config = Config::default();
    config.idle_timeout = Some(Duration::from_secs(10));
    let mut server = Server::bind(localhost(), config, Board::default()).unwrap();
    let clock = ManualClock::new();
    server.set_clock(clock.clone());
    let mut a = RawClient::open(&mut server, "/?t");
    let mut b = RawClient::open(&mut server, "/");
    clock.advance(Duration::from_secs(10));
    step(&mut server, 3);
    assert_eq!(a.frame(&mut server).opcode, PING);
    assert_eq!(b.frame(&mut server).opcode, PING);
    // A stays silent past its ping: its idle close falls due in the turn
    // that reads b's publish (timers run after the reads).
    clock.advance(Duration::from_secs(10));
    b.send(&text("pub t before the timeout's close"));
    step(&mut server, 1);
    assert_eq!(
        a.frame(&mut server).text(),
        "before the timeout's close",
        "published in the same turn, so ahead of the close"
    );
    assert_eq!(a.frame(&mut server).close_code(), 1001);
}

/// A batch is written through to a member with nothing queued; what its
/// socket does not take is queued, and later batches queue behind it.
#[test]
fn a_member_whose_socket_fills_still_gets_every_publish_whole_and_in_order() {
    // Under the 16 KiB a batched message may have.
    const MESSAGES: usize = 800;
    let body = |i: usize| format!("{i:04}{}", char::from(b'a' + (i % 26) as u8)).repeat(2_000);
    let mut server = board();
    let mut slow = RawClient::open(&mut server, "/?t");
    slow.reading = false;
    let mut fast = RawClient::open(&mut server, "/?t");
    let mut publisher = RawClient::open(&mut server, "/");
    let slow_id = server.handler().opened[0];
    let mut fast_got = Vec::new();
    let mut most_held = 0;
    // 8 publishes of 10 KB per write (a batch per turn), 8 MB in all:
    // more than the slow member's socket buffers take while it does not
    // read.
    for batch in (0..MESSAGES).step_by(8) {
        let mut bytes = Vec::new();
        for i in batch..batch + 8 {
            bytes.extend(text(&format!("pub t {}", body(i))));
        }
        publisher.send(&bytes);
        step_until(&mut server, "the batch at the fast member", |server| {
            publisher.pump();
            fast.pump();
            while let Some(f) = fast.take_frame() {
                fast_got.push(f.text().to_string());
            }
            let held = server.context().1.buffered_amount(slow_id).unwrap();
            most_held = most_held.max(held);
            fast_got.len() == batch + 8
        });
    }
    assert!(
        most_held > 0,
        "the slow member's socket took all 8 MB: the test no longer fills it"
    );
    slow.reading = true;
    let mut slow_got = Vec::new();
    step_until(&mut server, "every publish at the slow member", |_| {
        slow.pump();
        while let Some(f) = slow.take_frame() {
            slow_got.push(f.text().to_string());
        }
        slow_got.len() == MESSAGES || slow.closed()
    });
    let want: Vec<String> = (0..MESSAGES).map(body).collect();
    assert!(fast_got == want, "the fast member's copies differ");
    assert!(slow_got == want, "the slow member's copies differ");
    assert_eq!(server.context().1.buffered_amount(slow_id), Some(0));
}

#[test]
fn a_closing_client_leaves_every_topic_and_its_slot_successor_starts_clean() {
    let mut server = board();
    let mut a = RawClient::open(&mut server, "/?x,y");
    let mut keep = RawClient::open(&mut server, "/?x");
    assert_eq!(count(&mut server, "x"), 2);
    a.send(&close(1000, ""));
    a.wait_closed(&mut server);
    assert_eq!(count(&mut server, "x"), 1);
    assert_eq!(count(&mut server, "y"), 0);

    // The next client takes the freed slot: it is in no topic.
    let mut next = RawClient::open(&mut server, "/");
    keep.send(&text("pub x still here"));
    assert_eq!(keep.frame(&mut server).text(), "still here");
    assert_eq!(drain(&mut next, &mut server), Vec::<String>::new());
    let ids = &server.handler().opened;
    assert_eq!(
        ids[0].to_string().split('.').next(),
        ids[2].to_string().split('.').next()
    );
}

#[test]
fn a_handle_sends_publishes_and_closes_from_another_thread() {
    let mut server = board();
    let mut a = RawClient::open(&mut server, "/?feed");
    let mut b = RawClient::open(&mut server, "/?feed");
    let (ida, idb) = (server.handler().opened[0], server.handler().opened[1]);
    let handle = server.handle();
    let t = std::thread::spawn(move || {
        handle.send(ida, Message::Text("to a alone"))?;
        handle.publish("feed", Message::Binary(b"\x00\x01"))?;
        handle.close(idb, 4000, "bye from a thread")?;
        Ok::<_, HandleError>(())
    });
    t.join().unwrap().unwrap();
    assert_eq!(a.frame(&mut server).text(), "to a alone");
    let bin = a.frame(&mut server);
    assert_eq!(
        (bin.opcode, bin.payload.as_slice()),
        (BINARY, &b"\x00\x01"[..])
    );
    let bin = b.frame(&mut server);
    assert_eq!(
        bin.payload, b"\x00\x01",
        "in the order the thread sent them"
    );
    let closing = b.frame(&mut server);
    assert_eq!(closing.close_code(), 4000);
    assert_eq!(&closing.payload[2..], b"bye from a thread");
}

#[test]
fn a_kept_id_never_reaches_the_client_that_took_its_slot() {
    let mut server = board();
    let mut first = RawClient::open(&mut server, "/");
    let old = server.handler().opened[0];
    first.send(&close(1000, ""));
    first.wait_closed(&mut server);
    let mut next = RawClient::open(&mut server, "/");
    let new = server.handler().opened[1];
    assert_ne!(old, new);
    let handle = server.handle();
    handle
        .send(old, Message::Text("for the one who left"))
        .unwrap();
    handle.send(new, Message::Text("for the new one")).unwrap();
    assert_eq!(next.frame(&mut server).text(), "for the new one");
    assert_eq!(drain(&mut next, &mut server), Vec::<String>::new());
}

#[test]
fn a_full_queue_is_an_error_at_once_and_drains_when_the_loop_runs() {
    let mut server = board();
    let mut a = RawClient::open(&mut server, "/");
    let id = server.handler().opened[0];
    let handle = server.handle();
    let started = Instant::now();
    let mut queued = 0;
    let full = loop {
        match handle.send(id, Message::Text("n")) {
            Ok(()) => queued += 1,
            Err(e) => break e,
        }
        assert!(queued < 1_000_000, "the queue never filled");
    };
    assert_eq!(full, HandleError::Full);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a full queue must not block"
    );
    assert_eq!(queued, 4096, "the documented bound");
    let mut got = 0;
    while got < queued {
        step(&mut server, 1);
        a.pump();
        while a.take_frame().is_some() {
            got += 1;
        }
    }
    assert_eq!(got, queued, "every queued command delivered, none twice");
    handle.send(id, Message::Text("room again")).unwrap();
}

#[test]
fn a_handle_outliving_its_loop_gets_an_error() {
    let mut server = board();
    let handle = server.handle();
    let stop = server.shutdown_handle();
    stop.shutdown();
    server.run().unwrap();
    assert_eq!(
        handle.send(ConnId::from_u64(0), Message::Text("x")),
        Err(HandleError::Closed)
    );
    let other: LoopHandle = {
        let s = board();
        s.handle()
    }; // dropped: the loop is gone
    assert_eq!(
        other.publish("t", Message::Text("x")),
        Err(HandleError::Closed)
    );
    other.shutdown(); // harmless
}

/// Threads send through handles to whoever is open while clients come
/// and go: every open client gets every message sent to it while it was
/// open, in order, and nothing meant for a closed id reaches anyone.
#[test]
fn many_threads_send_while_clients_come_and_go() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 300;
    let mut server = board();
    let mut steady = RawClient::open(&mut server, "/?all");
    let steady_id = server.handler().opened[0];
    // Clients that come and go; their ids are shared with the threads.
    let ids = Arc::new(std::sync::Mutex::new(Vec::<ConnId>::new()));
    let start = Arc::new(Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (handle, ids, start) = (server.handle(), ids.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut sent = 0;
                while sent < PER_THREAD {
                    let msg = format!("{t}:{sent}");
                    match handle.send(steady_id, Message::Text(&msg)) {
                        Ok(()) => sent += 1,
                        Err(HandleError::Full) => std::thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                    let some = ids.lock().unwrap().last().copied();
                    if let Some(id) = some {
                        let _ = handle.send(id, Message::Text(&format!("churn {id}")));
                        let _ = handle.publish("all", Message::Text(&format!("p{t}:{sent}")));
                    }
                }
            })
        })
        .collect();
    start.wait();
    let mut got: Vec<Vec<usize>> = vec![Vec::new(); THREADS];
    let mut churned = 0;
    while got.iter().map(Vec::len).sum::<usize>() < THREADS * PER_THREAD {
        // A client opens, takes a slot, and goes.
        let mut c = RawClient::open(&mut server, "/?all");
        let id = *server.handler().opened.last().unwrap();
        ids.lock().unwrap().push(id);
        step(&mut server, 3);
        // Sends to the ids of earlier clients in this slot must not reach
        // it: every "churn" it gets names it.
        c.pump();
        while let Some(f) = c.take_frame() {
            if let Some(to) = f.text().strip_prefix("churn ") {
                assert_eq!(
                    to,
                    id.to_string(),
                    "a send for an earlier client reached {id}"
                );
            }
        }
        c.send(&close(1000, ""));
        c.wait_closed(&mut server);
        churned += 1;
        steady.pump();
        while let Some(f) = steady.take_frame() {
            let text = f.text();
            if let Some(rest) = text.strip_prefix('p') {
                assert!(rest.contains(':'), "a publish: {text}");
                continue;
            }
            assert!(
                !text.starts_with("churn"),
                "the steady client got a send meant for another: {text}"
            );
            let (t, n) = text.split_once(':').unwrap();
            got[t.parse::<usize>().unwrap()].push(n.parse().unwrap());
        }
        assert!(churned < 100_000, "stuck");
    }
    for t in threads {
        t.join().unwrap();
    }
    for (t, seq) in got.iter().enumerate() {
        assert_eq!(
            *seq,
            (0..PER_THREAD).collect::<Vec<_>>(),
            "thread {t}: lost or reordered"
        );
    }
    assert!(churned > 0);
    // Only the steady client is left in the topic.
    assert_eq!(count(&mut server, "all"), 1);
}

/// Announces every join to the room before the newcomer joins it, with a
/// notice long enough (250 bytes) that a hundred joins in one turn pass
/// the turn's queue budget: the loop flushes in the middle of the turn, and
/// every member still gets every later join, once, in order.
#[derive(Default)]
struct Joins {
    order: Vec<ConnId>,
}

impl Handler for Joins {
    type Data = ();

    fn on_open(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, _: &Request) -> Decision {
        let notice = format!("{:<250}", id.to_u64());
        ctx.publish("room", Message::Text(&notice));
        ctx.subscribe(id, "room");
        self.order.push(id);
        Decision::accept()
    }

    fn on_message(&mut self, _: &mut Ctx<'_, ()>, _: ConnId, _: Message<'_>) {}
}

#[test]
fn joins_announced_past_the_turn_budget_all_arrive_in_order() {
    // Two waves of 100 (under the listener's backlog): the second joins
    // in as few turns as the kernel allows, each join announced to 100 to
    // 200 members (250-byte notices, copied per member: 100 joins of it
    // pass the 2 MiB budget).
    const WAVE: usize = 100;
    const N: usize = 2 * WAVE;
    let mut server = Server::bind(localhost(), Config::default(), Joins::default()).unwrap();
    let mut clients: Vec<RawClient> = Vec::new();
    let end = Instant::now() + DEADLINE * 4;
    for wave in 1..=2 {
        // Every request of the wave is written before the loop runs.
        for _ in 0..WAVE {
            let mut c = RawClient::connect(server.local_addr());
            c.write_blocking(&upgrade_request("/", &[]));
            clients.push(c);
        }
        while server.handler().order.len() < wave * WAVE {
            step(&mut server, 1);
            for c in &mut clients {
                c.pump();
            }
            assert!(Instant::now() < end, "joins stalled");
        }
    }
    let order = server.handler().order.clone();
    let mut got: Vec<Vec<u64>> = vec![Vec::new(); N];
    let mut upgraded = [false; N];
    let expected_total: usize = (0..N).sum();
    while got.iter().map(Vec::len).sum::<usize>() < expected_total {
        step(&mut server, 1);
        for (i, c) in clients.iter_mut().enumerate() {
            c.pump();
            if !upgraded[i] {
                match c.take_response() {
                    Some(r) => {
                        r.assert_upgraded();
                        upgraded[i] = true;
                    }
                    None => continue,
                }
            }
            while let Some(f) = c.take_frame() {
                got[i].push(f.text().trim_end().parse().unwrap());
            }
        }
        assert!(Instant::now() < end, "notices stalled");
    }
    let ids: Vec<u64> = order.iter().map(|id| id.to_u64()).collect();
    for seq in &got {
        // A member hears exactly the joins after its own, in join order.
        let k = N - seq.len();
        assert_eq!(seq[..], ids[k..], "lost, doubled or reordered notices");
    }
}
