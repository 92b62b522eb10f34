//! Linked loops (`Loops`): two loops stepped by hand exchanging publishes
//! and sends, `SO_REUSEPORT` spreading connections, the client limit over
//! the whole process, and shutdown with handles still alive.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::*;
use wsloop::{
    Balance, Config, ConnId, Ctx, Decision, HandleError, Handler, Loops, Message, Request, Server,
};

/// Every client joins "room"; a text `to ID TEXT` is sent to that id
/// (on whichever loop), anything else is published to the room. Each
/// open is recorded with the loop that took it.
#[derive(Clone)]
struct Room {
    opened: Arc<Mutex<Vec<ConnId>>>,
}

impl Handler for Room {
    type Data = ();

    fn on_open(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, _: &Request) -> Decision {
        ctx.subscribe(id, "room");
        self.opened.lock().unwrap().push(id);
        Decision::accept()
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, ()>, _: ConnId, msg: Message<'_>) {
        if let Message::Text(t) = msg {
            if let Some((to, text)) = t.strip_prefix("to ").and_then(|r| r.split_once(' ')) {
                let to = ConnId::from_u64(to.parse().unwrap());
                ctx.send(to, Message::Text(text));
                return;
            }
        }
        ctx.publish("room", msg);
    }
}

fn room() -> Room {
    Room {
        opened: Arc::new(Mutex::new(Vec::new())),
    }
}

/// Steps both loops until `c` has a frame.
fn frame_from(loops: &mut Loops<Room>, c: &mut RawClient) -> Received {
    let end = Instant::now() + DEADLINE;
    loop {
        for s in loops.servers_mut() {
            s.poll_once(Some(Duration::from_millis(1))).unwrap();
        }
        c.pump();
        if let Some(f) = c.take_frame() {
            return f;
        }
        assert!(Instant::now() < end, "no frame");
    }
}

fn open_on(loops: &mut Loops<Room>, i: usize) -> RawClient {
    let server = &mut loops.servers_mut()[i];
    RawClient::open(server, "/")
}

#[test]
fn two_stepped_loops_exchange_publishes_and_sends() {
    let r = room();
    let servers = (0..2)
        .map(|_| Server::bind(localhost(), Config::default(), r.clone()).unwrap())
        .collect();
    let mut loops = Loops::link(servers).unwrap();
    let mut a = open_on(&mut loops, 0);
    let mut b = open_on(&mut loops, 1);
    let ids = r.opened.lock().unwrap().clone();
    assert_eq!((ids[0].loop_index(), ids[1].loop_index()), (0, 1));
    assert!(ids[1].to_string().starts_with("#1/"), "{}", ids[1]);

    a.send(&text("from loop 0"));
    assert_eq!(frame_from(&mut loops, &mut a).text(), "from loop 0");
    assert_eq!(frame_from(&mut loops, &mut b).text(), "from loop 0");
    b.send(&text("from loop 1"));
    assert_eq!(frame_from(&mut loops, &mut b).text(), "from loop 1");
    assert_eq!(frame_from(&mut loops, &mut a).text(), "from loop 1");

    // A send from loop 0 to a client of loop 1, by its id.
    a.send(&text(&format!("to {} just for b", ids[1].to_u64())));
    assert_eq!(frame_from(&mut loops, &mut b).text(), "just for b");
    // And a handle reaches both: sends by id, publishes everywhere.
    let h = loops.handle();
    h.send(ids[1], Message::Text("handle to b")).unwrap();
    h.publish("room", Message::Text("handle to all")).unwrap();
    assert_eq!(frame_from(&mut loops, &mut b).text(), "handle to b");
    assert_eq!(frame_from(&mut loops, &mut b).text(), "handle to all");
    assert_eq!(frame_from(&mut loops, &mut a).text(), "handle to all");
    // Nothing went twice.
    for _ in 0..20 {
        for s in loops.servers_mut() {
            s.poll_once(Some(Duration::from_millis(1))).unwrap();
        }
    }
    for c in [&mut a, &mut b] {
        c.pump();
        assert!(c.take_frame().is_none(), "a duplicate");
    }
}

#[test]
fn linking_refuses_a_server_that_has_had_clients_or_too_many_loops() {
    let mut used = Server::bind(localhost(), Config::default(), room()).unwrap();
    let _c = RawClient::open(&mut used, "/");
    let fresh = Server::bind(localhost(), Config::default(), room()).unwrap();
    assert!(Loops::link(vec![used, fresh]).is_err());
    assert!(Loops::<Room>::link(Vec::new()).is_err());
}

#[test]
fn reuse_port_spreads_connections_over_the_loops_and_publishes_reach_all() {
    let r = room();
    let loops = Loops::bind(localhost(), 2, Config::default(), |_| r.clone()).unwrap();
    let addr = loops.local_addr();
    let handle = loops.handle();
    let t = std::thread::spawn(move || loops.run());
    let mut clients: Vec<RawClient> = (0..32)
        .map(|_| RawClient::open_blocking(addr, "/"))
        .collect();
    let per_loop = |ids: &[ConnId], i| ids.iter().filter(|id| id.loop_index() == i).count();
    let ids = r.opened.lock().unwrap().clone();
    assert_eq!(ids.len(), 32);
    // The kernel hashes each connection's ports: 32 on one loop would be
    // a 1 in 2^31 chance.
    assert!(per_loop(&ids, 0) > 0 && per_loop(&ids, 1) > 0, "{ids:?}");

    clients[0].write_blocking(&text("to everyone"));
    for c in &mut clients {
        assert_eq!(c.frame_blocking().text(), "to everyone");
    }
    handle.shutdown();
    t.join().unwrap().unwrap();
    for c in &mut clients {
        assert_eq!(c.frame_blocking().close_code(), 1001);
    }
    // The handle outlived every loop: an error, no panic.
    assert_eq!(
        handle.publish("room", Message::Text("late")),
        Err(HandleError::Closed)
    );
    assert_eq!(
        handle.send(ids[0], Message::Text("late")),
        Err(HandleError::Closed)
    );
}

/// Upgrades a new client on `loops`, stepping every loop until the `101`.
fn open_stepped(loops: &mut Loops<Room>) -> RawClient {
    let mut c = RawClient::connect(loops.local_addr());
    c.send(&upgrade_request("/", &[]));
    let end = Instant::now() + DEADLINE;
    loop {
        for s in loops.servers_mut() {
            s.poll_once(Some(Duration::from_millis(1))).unwrap();
        }
        c.pump();
        if let Some(r) = c.take_response() {
            r.assert_upgraded();
            return c;
        }
        assert!(Instant::now() < end, "no upgrade");
    }
}

#[test]
fn one_listener_hands_connections_round_robin_to_stepped_loops() {
    let r = room();
    let mut loops = Loops::bind_with(
        localhost(),
        3,
        Balance::RoundRobin,
        Config::default(),
        |_| r.clone(),
    )
    .unwrap();
    // Loops 1 and 2 have no listener of their own; they report loop 0's.
    let addr = loops.local_addr();
    assert!(loops.servers_mut().iter().all(|s| s.local_addr() == addr));
    let mut clients: Vec<RawClient> = (0..6).map(|_| open_stepped(&mut loops)).collect();
    let owners: Vec<usize> = r
        .opened
        .lock()
        .unwrap()
        .iter()
        .map(|id| id.loop_index())
        .collect();
    assert_eq!(owners, [0, 1, 2, 0, 1, 2], "each in turn");
    // A handed connection is served in full by its new loop: publishes
    // cross, and a close is answered there.
    clients[4].send(&text("from loop 1"));
    for c in &mut clients {
        assert_eq!(frame_from(&mut loops, c).text(), "from loop 1");
    }
    clients[5].send(&close(1000, ""));
    assert_eq!(frame_from(&mut loops, &mut clients[5]).close_code(), 1000);
}

#[test]
fn round_robin_loops_on_threads_share_connections_evenly_and_shut_down() {
    let r = room();
    let loops = Loops::bind_with(
        localhost(),
        2,
        Balance::RoundRobin,
        Config::default(),
        |_| r.clone(),
    )
    .unwrap();
    let addr = loops.local_addr();
    let handle = loops.handle();
    let t = std::thread::spawn(move || loops.run());
    let mut clients: Vec<RawClient> = (0..32)
        .map(|_| RawClient::open_blocking(addr, "/"))
        .collect();
    let ids = r.opened.lock().unwrap().clone();
    let on_1 = ids.iter().filter(|id| id.loop_index() == 1).count();
    assert_eq!((ids.len(), on_1), (32, 16), "{ids:?}");
    clients[31].write_blocking(&text("to everyone"));
    for c in &mut clients {
        assert_eq!(c.frame_blocking().text(), "to everyone");
    }
    handle.shutdown();
    t.join().unwrap().unwrap();
    for c in &mut clients {
        assert_eq!(c.frame_blocking().close_code(), 1001);
    }
}

#[test]
fn linking_refuses_loops_of_which_none_listens() {
    let servers = (0..2)
        .map(|_| Server::without_listener(Config::default(), room()).unwrap())
        .collect();
    assert!(Loops::link(servers).is_err());
}

#[test]
fn max_clients_counts_every_loop() {
    let mut config = Config::default();
    config.max_clients = 4;
    let r = room();
    let loops = Loops::bind(localhost(), 2, config, |_| r.clone()).unwrap();
    let addr = loops.local_addr();
    let handle = loops.handle();
    let t = std::thread::spawn(move || loops.run());
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..8 {
        let mut c = RawClient::connect(addr);
        c.write_blocking(&upgrade_request("/", &[]));
        let response = c.response_blocking();
        match response.status {
            101 => open.push(c),
            503 => refused += 1,
            other => panic!("status {other}"),
        }
        // The loops' counts are exchanged once per turn: let them turn.
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!((open.len(), refused), (4, 4));
    handle.shutdown();
    t.join().unwrap().unwrap();
}

/// Threads send through a handle to a steady client on each loop while
/// clients come and go on both: each steady client gets every message of
/// every thread, in each thread's order, and a send to a closed id never
/// reaches the client that took its slot (on either loop).
#[test]
fn many_threads_send_across_loops_while_clients_come_and_go() {
    const THREADS: usize = 3;
    const PER_THREAD: usize = 200;
    let r = room();
    let loops = Loops::bind(localhost(), 2, Config::default(), |_| r.clone()).unwrap();
    let addr = loops.local_addr();
    let handle = loops.handle();
    let server = std::thread::spawn(move || loops.run());
    // One steady client on each loop (the kernel picks: open until both
    // have one; the others are closed again).
    let mut steady: Vec<Option<(ConnId, RawClient)>> = vec![None, None];
    let mut tries = 0;
    while steady.iter().any(Option::is_none) {
        let c = RawClient::open_blocking(addr, "/");
        let id = *r.opened.lock().unwrap().last().unwrap();
        if steady[id.loop_index()].is_none() {
            steady[id.loop_index()] = Some((id, c));
        }
        tries += 1;
        assert!(tries < 200, "SO_REUSEPORT never picked the other loop");
    }
    let steady_ids: Vec<ConnId> = steady.iter().map(|s| s.as_ref().unwrap().0).collect();
    let churn_ids = Arc::new(Mutex::new(Vec::<ConnId>::new()));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (handle, ids, churn) = (handle.clone(), steady_ids.clone(), churn_ids.clone());
            std::thread::spawn(move || {
                for n in 0..PER_THREAD {
                    for &id in &ids {
                        loop {
                            match handle.send(id, Message::Text(&format!("{t}:{n}"))) {
                                Ok(()) => break,
                                Err(HandleError::Full) => std::thread::yield_now(),
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                    let last = churn.lock().unwrap().last().copied();
                    if let Some(id) = last {
                        let _ = handle.send(id, Message::Text(&format!("churn {id}")));
                    }
                }
            })
        })
        .collect();
    // Clients come and go meanwhile; each checks that every "churn" it
    // gets names it.
    for _ in 0..40 {
        let mut c = RawClient::open_blocking(addr, "/");
        let id = *r.opened.lock().unwrap().last().unwrap();
        churn_ids.lock().unwrap().push(id);
        c.write_blocking(&close(1000, ""));
        loop {
            let f = c.frame_blocking();
            if f.opcode == CLOSE {
                break;
            }
            if let Some(to) = f.text().strip_prefix("churn ") {
                assert_eq!(
                    to,
                    id.to_string(),
                    "a send for an earlier client reached {id}"
                );
            }
        }
    }
    for t in threads {
        t.join().unwrap();
    }
    for (id, c) in steady.iter_mut().map(|s| s.as_mut().unwrap()) {
        let mut next = [0usize; THREADS];
        while next.iter().sum::<usize>() < THREADS * PER_THREAD {
            let f = c.frame_blocking();
            let text = f.text();
            if text.starts_with("churn") {
                panic!("{id} got a send meant for another: {text}");
            }
            let (t, n) = text.split_once(':').unwrap();
            let (t, n): (usize, usize) = (t.parse().unwrap(), n.parse().unwrap());
            assert_eq!(n, next[t], "{id}: thread {t}'s messages lost or reordered");
            next[t] += 1;
        }
    }
    handle.shutdown();
    server.join().unwrap().unwrap();
}
