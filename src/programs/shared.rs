//! Resin's model: one long-lived program for every client of a route,
//! speaking JSON lines (docs/programs-protocol.md). Events (open, message,
//! close) go to its stdin in the order they happen, so a client's messages
//! are never reordered; its stdout is read as it comes and carried out
//! command by command. A client that reads slowly is bounded by its own
//! send queue (`max_send_queue`, then 1008), never by the others; while the
//! program's stdin is full, the clients that send are paused.
//!
//! ```text
//! client A ─┐                                      ┌─► send / broadcast / close
//! client B ─┼─► {"type":"message","id":..} ─► stdin │
//! client C ─┘                       program ── stdout┘
//! program exits ─► its clients close with 1011 ─► restarted after a backoff
//! ```

use std::time::{Duration, Instant};

use log::{debug, warn};

use super::protocol::{self, Command, Event};
use super::{env, tag, Child, IdMap, Owner, Programs, Route, Timer, STDIN_HIGH};
use crate::proto::frame::close_code;
use crate::{ConnId, Ctx, Decision, Message, Request, TimerId};

/// Bytes of a shared program's output carried out in one turn of the loop
/// before the clients' own events get theirs.
pub(super) const SHARED_TURN: usize = 256 * 1024;

/// The first restart waits this long; each quick death doubles it.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest wait between restarts.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A program that ran this long before dying restarts after `BACKOFF_MIN`.
const STABLE: Duration = Duration::from_secs(10);

/// A shared route's program and clients.
#[derive(Debug, Default)]
pub(super) struct Shared {
    /// The running program (its key among the children).
    child: Option<u64>,
    /// When it was started.
    started: Option<Instant>,
    /// The route's clients by their protocol ids: the only ones its
    /// program may address.
    clients: IdMap<u64, ConnId>,
    /// Clients paused because the program's stdin was full.
    paused: Vec<ConnId>,
    /// Deaths in a row, each within `STABLE` of its start.
    failures: u32,
    /// The pending restart, and when it is due.
    restart: Option<(TimerId, Instant)>,
}

impl Shared {
    /// The wait before the next restart, counting this death.
    fn backoff(&mut self, now: Instant) -> Duration {
        if self
            .started
            .is_some_and(|at| now.duration_since(at) >= STABLE)
        {
            self.failures = 0;
        }
        let wait = BACKOFF_MIN.saturating_mul(1 << self.failures.min(16));
        self.failures = self.failures.saturating_add(1);
        wait.min(BACKOFF_MAX)
    }
}

/// A `503` with `Retry-After` (whole seconds, at least 1).
pub(super) fn busy(wait: Duration, message: &str) -> Decision {
    let mut response = crate::HttpResponse::text(503, message);
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    response
        .headers
        .push(("Retry-After".into(), seconds.max(1).to_string()));
    Decision::Respond(response)
}

impl Programs {
    fn shared_mut(&mut self, route: usize) -> &mut Shared {
        // Invariant: only shared routes' indexes reach this module (the
        // route's `shared` is set from its program once, in `new`).
        self.routes[route].shared.as_mut().expect("a shared route")
    }

    /// A client of a shared route: its `open` event, the program started
    /// first if it is not running.
    pub(super) fn open_shared(
        &mut self,
        ctx: &mut Ctx<'_, ()>,
        route: usize,
        id: ConnId,
        req: &Request,
    ) -> Decision {
        let now = ctx.now();
        let shared = self.shared_mut(route);
        if let Some((_, at)) = shared.restart {
            return busy(
                at.saturating_duration_since(now),
                "the handler program is restarting",
            );
        }
        let key = match shared.child {
            Some(key) => key,
            None => match self.start_shared(ctx, route) {
                Ok(key) => key,
                Err(e) => {
                    warn!(
                        "{id}: cannot start {}: {e}",
                        self.routes[route].program.name()
                    );
                    return Decision::reject(500, "the program could not be started");
                }
            },
        };
        let Some(child) = self.children.get_mut(&key).filter(|c| c.stdin.is_some()) else {
            // Being stopped (it closed a pipe): a new one follows.
            return busy(Duration::from_secs(1), "the handler program is restarting");
        };
        // Ids count from 1 and are never reused; below 2^53, so that
        // JavaScript's numbers (and PHP's, and every JSON parser's) hold
        // them exactly.
        self.next_client += 1;
        let number = self.next_client;
        Event::open(number, req, ctx.peer_addr(id)).write_line(&mut child.stdin_buf);
        self.shared_mut(route).clients.insert(number, id);
        self.by_conn.insert(id, Owner::Shared(route, number));
        self.queue_stdin(ctx, key);
        Decision::accept()
    }

    /// A client's message, as its `message` event.
    pub(super) fn message_shared(
        &mut self,
        ctx: &mut Ctx<'_, ()>,
        route: usize,
        (id, number): (ConnId, u64),
        msg: &Message<'_>,
    ) {
        let Some(key) = self.shared_mut(route).child else {
            return;
        };
        let Some(child) = self.children.get_mut(&key).filter(|c| c.stdin.is_some()) else {
            return;
        };
        Event::message(number, msg).write_line(&mut child.stdin_buf);
        self.queue_stdin(ctx, key);
        let full = self
            .children
            .get(&key)
            .is_some_and(|c| c.stdin_buf.len() >= STDIN_HIGH);
        if full && ctx.pause_reading(id) {
            self.shared_mut(route).paused.push(id);
        }
    }

    /// A client is gone: its `close` event.
    pub(super) fn close_shared(
        &mut self,
        ctx: &mut Ctx<'_, ()>,
        route: usize,
        (id, number): (ConnId, u64),
        code: u16,
        reason: &str,
    ) {
        let shared = self.shared_mut(route);
        shared.clients.remove(&number);
        if !shared.paused.is_empty() {
            shared.paused.retain(|&p| p != id);
        }
        let Some(key) = shared.child else {
            return;
        };
        let Some(child) = self.children.get_mut(&key).filter(|c| c.stdin.is_some()) else {
            return;
        };
        Event::Close {
            id: number,
            code,
            reason,
        }
        .write_line(&mut child.stdin_buf);
        self.queue_stdin(ctx, key);
    }

    /// The program's stdin has room again: its paused clients read on.
    pub(super) fn resume_shared(&mut self, ctx: &mut Ctx<'_, ()>, route: usize) {
        for id in std::mem::take(&mut self.shared_mut(route).paused) {
            ctx.resume_reading(id);
        }
    }

    /// Reads the program's output and carries out its commands, up to
    /// `budget` bytes this turn (the rest in a later one). At the end of
    /// its stdout the program is stopped: it can no longer answer.
    pub(super) fn read_shared(&mut self, ctx: &mut Ctx<'_, ()>, key: u64, budget: usize) {
        let Some(route) = self.children.get(&key).and_then(|c| c.route) else {
            return;
        };
        // A pipe's whole capacity (64 KiB on Linux) in one read.
        let mut buf = [0u8; 64 * 1024];
        let mut taken = 0;
        loop {
            if taken >= budget {
                ctx.set_timer(Duration::ZERO, tag(key, Timer::More));
                return;
            }
            let Some(child) = self.children.get_mut(&key) else {
                return;
            };
            let Some(stdout) = child.stdout.as_mut() else {
                return;
            };
            match std::io::Read::read(stdout, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    taken += n;
                    child.line.extend_from_slice(&buf[..n]);
                    let shared = self.routes[route].shared.as_ref();
                    // Invariant: a child with a route is that shared
                    // route's program.
                    let clients = &shared.expect("a shared route").clients;
                    carry_out(ctx, child, clients);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!("{}: stdout: {e}", child.label);
                    break;
                }
            }
        }
        let Some(child) = self.children.get_mut(&key) else {
            return;
        };
        if child.reap().is_none() && child.stop_timer.is_none() {
            warn!(
                "{}: {} closed its stdout: stopped, to be restarted",
                child.label,
                child.program_name()
            );
            self.stop(ctx, key);
        }
    }

    /// The program exited (its output is carried out): its clients close
    /// with 1011, and a restart is due after the backoff.
    pub(super) fn died(&mut self, ctx: &mut Ctx<'_, ()>, route: usize, key: u64) {
        let status = self.children.get(&key).and_then(|c| c.status);
        let now = ctx.now();
        let name = self.routes[route].program.name();
        let prefix = self.routes[route].prefix.clone();
        let shared = self.shared_mut(route);
        if shared.child != Some(key) {
            return;
        }
        shared.child = None;
        shared.paused.clear();
        let clients: Vec<ConnId> = shared.clients.drain().map(|(_, id)| id).collect();
        let wait = shared.backoff(now);
        for &id in &clients {
            self.by_conn.remove(&id);
            ctx.close(id, close_code::INTERNAL_ERROR, "the handler program exited");
        }
        let status = status.map_or_else(|| "ended".to_owned(), |s| s.to_string());
        warn!(
            "shared {prefix}: {name} exited ({status}); {} clients closed with 1011; restart in {wait:?}",
            clients.len()
        );
        let timer = ctx.set_timer(wait, tag(route as u64, Timer::Restart));
        self.shared_mut(route).restart = Some((timer, now + wait));
    }

    /// The backoff is over: start the route's program again (or wait
    /// longer if it cannot start).
    pub(super) fn restart(&mut self, ctx: &mut Ctx<'_, ()>, route: usize) {
        let Some(shared) = self.routes.get_mut(route).and_then(|r| r.shared.as_mut()) else {
            return;
        };
        shared.restart = None;
        if shared.child.is_some() {
            return;
        }
        if let Err(e) = self.start_shared(ctx, route) {
            let now = ctx.now();
            let shared = self.shared_mut(route);
            let wait = shared.backoff(now);
            warn!(
                "shared {}: cannot start {}: {e}; next try in {wait:?}",
                self.routes[route].prefix,
                self.routes[route].program.name()
            );
            let timer = ctx.set_timer(wait, tag(route as u64, Timer::Restart));
            self.shared_mut(route).restart = Some((timer, now + wait));
        }
    }

    fn start_shared(&mut self, ctx: &mut Ctx<'_, ()>, route: usize) -> std::io::Result<u64> {
        let Route {
            prefix, program, ..
        } = &self.routes[route];
        let env = env::shared(prefix, &program.passenv);
        let child = Child::spawn(program, env, None, Some((route, prefix)))?;
        let key = self.adopt(ctx, child)?;
        let now = ctx.now();
        let shared = self.shared_mut(route);
        shared.child = Some(key);
        shared.started = Some(now);
        Ok(key)
    }
}

/// Carries out every whole line of `child.line` that the route's clients
/// can take; a line past `max_line` is dropped (and said in the log).
fn carry_out(ctx: &mut Ctx<'_, ()>, child: &mut Child, clients: &IdMap<u64, ConnId>) {
    let max = child.program.max_line;
    let mut start = 0;
    while let Some(end) = child.line[start..].iter().position(|&b| b == b'\n') {
        let line = &child.line[start..start + end];
        start += end + 1;
        if std::mem::take(&mut child.skipping) {
            continue; // the end of a line already dropped
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if line.len() > max {
            warn!(
                "{}: a line of {} bytes dropped (longer than {max})",
                child.label,
                line.len()
            );
            continue;
        }
        match protocol::parse(line) {
            Ok(command) => act(ctx, command, clients),
            Err(e) => warn!(
                "{}: line ignored: {e}: {}",
                child.label,
                String::from_utf8_lossy(&line[..line.len().min(200)]).escape_debug()
            ),
        }
    }
    child.line.drain(..start);
    if child.line.len() > max {
        warn!("{}: a line longer than {max} bytes dropped", child.label);
        child.line.clear();
        child.skipping = true;
    }
}

/// One command, for the route's clients only (an id that is not one of
/// them, or is gone, is passed over).
fn act(ctx: &mut Ctx<'_, ()>, command: Command<'_>, clients: &IdMap<u64, ConnId>) {
    match command {
        Command::Send { id, payload } => {
            if let Some(&id) = clients.get(&id) {
                ctx.send(id, payload.message());
            }
        }
        Command::Broadcast { ids: None, payload } => {
            ctx.broadcast(clients.values().copied(), payload.message());
        }
        Command::Broadcast {
            ids: Some(ids),
            payload,
        } => {
            let ids = ids.iter().filter_map(|id| clients.get(id).copied());
            ctx.broadcast(ids, payload.message());
        }
        Command::Close { id, code, reason } => {
            if let Some(&id) = clients.get(&id) {
                ctx.close(id, code, &reason);
            }
        }
    }
}
