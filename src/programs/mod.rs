//! Any program as a WebSocket endpoint, on the one loop (feature
//! `programs`, Linux): websocketd's model, one process per connection
//! ([`Program::new`]), and Resin's, one long-lived program for every client
//! of a route speaking JSON lines ([`Program::shared`]; the protocol is
//! docs/programs-protocol.md).
//!
//! A program per connection:
//!
//! ```text
//! client ──text──► line + "\n" ──► program's stdin      (paused reading while stdin is full)
//! client ◄──text── one message per line ◄── program's stdout   (stops reading while the client is behind)
//!                  log, line by line, tagged ◄── program's stderr
//! exit ──► remaining output sent, close 1000 (1011 on a non-zero exit)
//! client gone ──► stdin closed ──► SIGTERM after `term_after` ──► SIGKILL after `kill_after`
//! ```
//!
//! Every pipe and a pidfd per child (readable once it exits) are event
//! sources in the server's own `Poll`: no thread per child, and every child
//! is reaped when its pidfd says it exited, whether or not something (a
//! grandchild, say) still holds its stdout.
//!
//! ```no_run
//! use wsloop::programs::{Program, Programs};
//! use wsloop::{Config, Server};
//!
//! let programs = Programs::new(vec![
//!     ("/cat".into(), Program::new(["cat"])),
//!     ("/chat".into(), Program::shared(["python3", "examples/handlers/chat-shared.py"])),
//! ]);
//! Server::bind("127.0.0.1:8080".parse().unwrap(), Config::default(), programs)?.run()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! A shared program's events and commands:
//!
//! ```text
//! stdin  ◄── {"type":"open","id":1,"path":"/chat","query":"","headers":{..},"peer":".."}
//!            {"type":"message","id":1,"text":"hi"}      {"type":"close","id":1,"code":1000,"reason":""}
//! stdout ──► {"type":"send","id":1,"text":"hello"}      {"type":"broadcast","text":"to all"}
//!            {"type":"close","id":1,"code":4000,"reason":"bye"}
//! ```

mod env;
mod process;
mod protocol;
mod shared;

use std::collections::HashMap;
use std::ffi::OsString;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use log::{debug, info, warn};

use crate::proto::frame::close_code;
use crate::{ConnId, Ctx, Decision, Handler, Message, Request, SendStatus, SourceId, TimerId};
use process::Child;
use shared::{Shared, SHARED_TURN};

/// One program, and how it is run for a connection.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Program {
    /// The command and its arguments, run as they are (no shell).
    pub argv: Vec<OsString>,
    /// Raw bytes both ways as binary messages, instead of text lines.
    pub binary: bool,
    /// Variables of the server's own environment passed on to the program
    /// (besides the CGI ones it always gets).
    pub passenv: Vec<String>,
    /// How long a program may run after its client left and its stdin was
    /// closed, before SIGTERM. Default 1 s.
    pub term_after: Duration,
    /// How long after SIGTERM before SIGKILL. Default 1 s.
    pub kill_after: Duration,
    /// The longest line (or, with `binary`, read) sent as one message;
    /// longer closes the client with 1009 and ends the program (a shared
    /// program's longer line is dropped, with a warning). Default 1 MiB.
    pub max_line: usize,
    /// One long-lived program for every client of the route (Resin's
    /// model), speaking JSON lines (docs/programs-protocol.md), instead of
    /// a program per connection. Default false.
    pub shared: bool,
}

impl Program {
    /// `argv` run per connection, text lines both ways, the defaults above.
    pub fn new<I, S>(argv: I) -> Program
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Program {
            argv: argv.into_iter().map(Into::into).collect(),
            binary: false,
            passenv: Vec::new(),
            term_after: Duration::from_secs(1),
            kill_after: Duration::from_secs(1),
            max_line: 1 << 20,
            shared: false,
        }
    }

    /// The command's name, for the log.
    fn name(&self) -> String {
        self.argv
            .first()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// `argv` run once and shared by every client of its route.
    pub fn shared<I, S>(argv: I) -> Program
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Program {
            shared: true,
            ..Program::new(argv)
        }
    }
}

/// What a pipe or pidfd is, for the child it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pipe {
    Stdin,
    Stdout,
    Stderr,
    Exit,
}

/// A map keyed by numbers the server hands out (connection ids, child
/// keys, source ids, a shared program's client numbers): nobody outside
/// picks them, so a multiply-rotate hash serves instead of SipHash, which
/// stood out in profiles of the shared echo (two lookups per message).
type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

#[derive(Debug, Default, Clone, Copy)]
struct IdHasher(u64);

impl IdHasher {
    fn add(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.add(u64::from(b));
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.add(u64::from(v));
    }
    fn write_u64(&mut self, v: u64) {
        self.add(v);
    }
    fn write_usize(&mut self, v: usize) {
        self.add(v as u64);
    }
}

/// Who serves a client.
#[derive(Debug, Clone, Copy)]
enum Owner {
    /// Its own program (the key of the child).
    Own(u64),
    /// Its route's shared program (the index of the route), which knows
    /// it by a number of its own.
    Shared(usize, u64),
}

/// A path prefix and its program.
#[derive(Debug)]
struct Route {
    prefix: String,
    program: Arc<Program>,
    /// The shared program's state, for a shared route.
    shared: Option<Shared>,
}

/// Bytes held for a program's stdin before the client's reading pauses.
const STDIN_HIGH: usize = 256 * 1024;

/// Bytes queued for a client before its program's stdout is left unread
/// until the client catches up.
const STDOUT_HIGH: usize = 256 * 1024;

/// A [`Handler`] that runs programs: the first route whose path prefix
/// matches the request's path (longest first) picks one; no match is a 404.
#[derive(Debug)]
pub struct Programs {
    routes: Vec<Route>,
    children: IdMap<u64, Child>,
    sources: IdMap<SourceId, (u64, Pipe)>,
    by_conn: IdMap<ConnId, Owner>,
    next: u64,
    /// Children with bytes for stdin added this turn.
    stdin_pending: Vec<u64>,
    /// The last id given to a shared program's client.
    next_client: u64,
    /// Programs running at once at most (`None`: no limit).
    max_forks: Option<usize>,
    /// `children.len()` as of the last turn's end, for other threads.
    running: Arc<AtomicUsize>,
}

impl Programs {
    /// A handler for `routes`: (path, program). A route `/` matches every
    /// path.
    pub fn new(routes: Vec<(String, Program)>) -> Programs {
        let mut routes: Vec<Route> = routes
            .into_iter()
            .map(|(prefix, program)| Route {
                shared: program.shared.then(Shared::default),
                prefix,
                program: Arc::new(program),
            })
            .collect();
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Programs {
            routes,
            children: IdMap::default(),
            sources: IdMap::default(),
            by_conn: IdMap::default(),
            next: 0,
            next_client: 0,
            stdin_pending: Vec::new(),
            max_forks: None,
            running: Arc::default(),
        }
    }

    /// At most `n` programs at once (those still being stopped count, and
    /// a shared program counts once): past it an upgrade gets `503` with
    /// `Retry-After`.
    pub fn with_max_forks(mut self, n: usize) -> Programs {
        self.max_forks = Some(n);
        self
    }

    /// Programs running now.
    pub fn running(&self) -> usize {
        self.children.len()
    }

    /// How many programs run, for another thread (a metrics endpoint):
    /// updated at the end of each of the loop's turns.
    pub fn running_gauge(&self) -> Arc<AtomicUsize> {
        self.running.clone()
    }

    /// The index of the route serving `path`.
    fn route(&self, path: &str) -> Option<usize> {
        self.routes.iter().position(|Route { prefix, .. }| {
            prefix == "/"
                || path == prefix
                || path.starts_with(prefix.as_str())
                    && path.as_bytes().get(prefix.len()) == Some(&b'/')
        })
    }

    /// Puts a started child's sources in the loop and keeps it; on failure
    /// it is killed and reaped at once.
    fn adopt(&mut self, ctx: &mut Ctx<'_, ()>, mut child: Child) -> std::io::Result<u64> {
        match child.register(ctx) {
            Ok(ids) => {
                let key = self.next;
                self.next += 1;
                for (source, pipe) in ids {
                    self.sources.insert(source, (key, pipe));
                }
                debug!(
                    "{} {} started as pid {}",
                    child.label,
                    child.program_name(),
                    child.pid()
                );
                self.children.insert(key, child);
                Ok(key)
            }
            Err(e) => {
                child.kill_now();
                Err(e)
            }
        }
    }

    /// Has what was just added to the child's stdin written when the turn
    /// ends, with everything else added in the same turn (one write for
    /// many messages); at once if that is a lot already.
    fn queue_stdin(&mut self, ctx: &mut Ctx<'_, ()>, key: u64) {
        let Some(child) = self.children.get_mut(&key) else {
            return;
        };
        if child.stdin_buf.len() >= STDIN_HIGH {
            return self.flush_stdin(ctx, key);
        }
        if !child.stdin_queued {
            child.stdin_queued = true;
            self.stdin_pending.push(key);
        }
    }

    /// Writes what is held for the child's stdin; pauses or resumes its
    /// client's reading by how much is left.
    fn flush_stdin(&mut self, ctx: &mut Ctx<'_, ()>, key: u64) {
        let Some(child) = self.children.get_mut(&key) else {
            return;
        };
        let Some(stdin) = child.stdin.as_mut() else {
            child.stdin_buf.clear();
            return;
        };
        while !child.stdin_buf.is_empty() {
            match stdin.write(&child.stdin_buf) {
                Ok(n) => {
                    child.stdin_buf.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    // The program closed its stdin (or died): what the
                    // client sends from now on goes nowhere.
                    debug!("{}: program's stdin: {e}", child.label);
                    child.stdin_buf.clear();
                    if child.route.is_some() {
                        // A shared program that cannot hear its clients
                        // any more is stopped, and restarted.
                        warn!("{}: {} closed its stdin", child.label, child.program_name());
                        return self.stop(ctx, key);
                    }
                    self.close_stdin(ctx, key);
                    return;
                }
            }
        }
        let Some(child) = self.children.get_mut(&key) else {
            return;
        };
        let full = child.stdin_buf.len() >= STDIN_HIGH;
        if let Some(conn) = child.client {
            if full != child.client_paused {
                child.client_paused = full;
                if full {
                    ctx.pause_reading(conn);
                } else {
                    ctx.resume_reading(conn);
                }
            }
        } else if let (Some(route), false) = (child.route, full) {
            self.resume_shared(ctx, route);
        }
    }

    fn close_stdin(&mut self, ctx: &mut Ctx<'_, ()>, key: u64) {
        let Some(child) = self.children.get_mut(&key) else {
            return;
        };
        if let (Some(mut stdin), Some(id)) = (child.stdin.take(), child.stdin_id.take()) {
            let _ = ctx.deregister(id, &mut stdin);
            self.sources.remove(&id);
        }
    }

    /// Reads what the child wrote to stdout and sends it, line by line (or
    /// as it comes, binary), while the client keeps up (unless `all`: the
    /// child exited, and what it left is finite). On stdout's end, the
    /// conversation ends too.
    fn read_stdout(&mut self, ctx: &mut Ctx<'_, ()>, key: u64, all: bool) {
        let Some(child) = self.children.get_mut(&key) else {
            return;
        };
        let Some(conn) = child.client else {
            return;
        };
        let mut buf = [0u8; 16 * 1024];
        loop {
            if child.client_behind && !all {
                return; // on_drain reads on
            }
            let Some(stdout) = child.stdout.as_mut() else {
                return;
            };
            match stdout.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if child.program.binary {
                        let status = ctx.send(conn, Message::Binary(&buf[..n]));
                        child.client_behind = status == SendStatus::Queued;
                    } else {
                        child.line.extend_from_slice(&buf[..n]);
                        if !send_lines(ctx, conn, child, all) {
                            return self.end(
                                ctx,
                                key,
                                close_code::MESSAGE_TOO_BIG,
                                "line too long",
                            );
                        }
                    }
                    // The socket has not been written yet this iteration:
                    // a fast program would fill the queue up to its limit.
                    // Hold back at a bound and go on once it is written.
                    if !all
                        && !child.client_behind
                        && ctx.buffered_amount(conn).unwrap_or(0) >= STDOUT_HIGH
                    {
                        child.client_behind = true;
                        ctx.notify_drained(conn);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if all {
                        break; // a grandchild may hold stdout open: done anyway
                    }
                    return;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!("{conn}: program's stdout: {e}");
                    break;
                }
            }
        }
        // A last line without its newline is sent as it is.
        if !child.line.is_empty() && !child.program.binary {
            let last = String::from_utf8_lossy(&child.line).into_owned();
            child.line.clear();
            ctx.send(conn, Message::Text(&last));
        }
        if child.reap().is_some() {
            let code = exit_code(child.status);
            return self.end(ctx, key, code, "");
        }
        // stdout closed, the program still runs: give it a moment to exit
        // (its code decides the close code), then end the conversation.
        if child.eof_timer.is_none() {
            child.eof_timer = Some(ctx.set_timer(EXIT_GRACE, tag(key, Timer::Eof)));
        }
    }

    fn read_stderr(&mut self, key: u64) {
        let Some(child) = self.children.get_mut(&key) else {
            return;
        };
        if child.stderr.is_none() {
            return;
        }
        let name = child.program_name();
        let mut buf = [0u8; 4096];
        loop {
            let Some(stderr) = child.stderr.as_mut() else {
                return;
            };
            match stderr.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => child.err_line.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
            // Whole lines, and a line past 4 KiB in pieces of what came.
            loop {
                let end = match child.err_line.iter().position(|&b| b == b'\n') {
                    Some(end) => end + 1,
                    None if child.err_line.len() > 4096 => child.err_line.len(),
                    None => break,
                };
                let line: Vec<u8> = child.err_line.drain(..end).collect();
                let line = line.strip_suffix(b"\n").unwrap_or(&line);
                info!(
                    "{} {name}: {}",
                    child.label,
                    String::from_utf8_lossy(line).escape_debug()
                );
            }
        }
    }

    /// The child exited (its pidfd is readable): reap it, then send what
    /// it left on stdout and close its client.
    fn exited(&mut self, ctx: &mut Ctx<'_, ()>, key: u64) {
        let Some(child) = self.children.get_mut(&key) else {
            return;
        };
        match child.reap() {
            Some(status) => debug!("{} {} exited: {status}", child.label, child.program_name()),
            None => return, // not yet (a spurious wake-up)
        }
        self.read_stderr(key);
        let (client, route) = match self.children.get(&key) {
            Some(c) => (c.client.is_some(), c.route),
            None => return,
        };
        if let Some(route) = route {
            // What it left is carried out, then its clients are closed.
            self.read_shared(ctx, key, usize::MAX);
            self.died(ctx, route, key);
        } else if client {
            // What it left is sent, then its client is closed.
            self.read_stdout(ctx, key, true);
        }
        self.finish_if_done(ctx, key);
    }

    /// Ends the conversation: closes the client (if still there) with
    /// `code` and stops the program (stdin closed now, signals later).
    fn end(&mut self, ctx: &mut Ctx<'_, ()>, key: u64, code: u16, reason: &str) {
        if let Some(conn) = self.children.get_mut(&key).and_then(|c| c.client.take()) {
            ctx.close(conn, code, reason);
            self.by_conn.remove(&conn);
        }
        self.stop(ctx, key);
    }

    /// The client is gone (or ended): stdin closed at once, SIGTERM after
    /// `term_after` if the program still runs, SIGKILL after `kill_after`.
    fn stop(&mut self, ctx: &mut Ctx<'_, ()>, key: u64) {
        self.close_stdin(ctx, key);
        let Some(child) = self.children.get_mut(&key) else {
            return;
        };
        if child.status.is_none() && child.stop_timer.is_none() {
            child.stop_timer = Some(ctx.set_timer(child.program.term_after, tag(key, Timer::Term)));
        }
        self.finish_if_done(ctx, key);
    }

    /// Forgets a child that exited and has no client: its sources out of
    /// the loop, its pipes closed.
    fn finish_if_done(&mut self, ctx: &mut Ctx<'_, ()>, key: u64) {
        let done = self
            .children
            .get(&key)
            .is_some_and(|c| c.status.is_some() && c.client.is_none());
        if !done {
            return;
        }
        self.read_stderr(key); // its last words, if stdout ended first
        let Some(mut child) = self.children.remove(&key) else {
            return;
        };
        for t in [child.stop_timer.take(), child.eof_timer.take()]
            .into_iter()
            .flatten()
        {
            ctx.cancel_timer(t);
        }
        for id in child.deregister(ctx) {
            self.sources.remove(&id);
        }
    }
}

/// How long a program that closed its stdout may take to exit before its
/// client is closed anyway (its exit code picks the close code).
const EXIT_GRACE: Duration = Duration::from_millis(200);

/// What a handler timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// SIGTERM a child (tagged with its key).
    Term = 0,
    /// SIGKILL a child.
    Kill = 1,
    /// A per-connection child closed stdout a while ago.
    Eof = 2,
    /// A shared child has more output than one turn reads.
    More = 3,
    /// Restart a route's shared program (tagged with the route's index).
    Restart = 4,
}

fn tag(key: u64, timer: Timer) -> u64 {
    (key << 3) | timer as u64
}

/// 1000 for a clean exit (or none yet), 1011 for a failure.
fn exit_code(status: Option<std::process::ExitStatus>) -> u16 {
    match status {
        Some(s) if !s.success() => close_code::INTERNAL_ERROR,
        _ => close_code::NORMAL,
    }
}

/// Sends every whole line in `child.line` as a text message (stopping when
/// the client falls behind, unless `all`); false if a line passed
/// `max_line`.
fn send_lines(ctx: &mut Ctx<'_, ()>, conn: ConnId, child: &mut Child, all: bool) -> bool {
    let mut start = 0;
    while let Some(end) = child.line[start..].iter().position(|&b| b == b'\n') {
        let line = &child.line[start..start + end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > child.program.max_line {
            return false;
        }
        let text = String::from_utf8_lossy(line);
        let status = ctx.send(conn, Message::Text(&text));
        start += end + 1;
        if status == SendStatus::Queued {
            child.client_behind = true;
            if !all {
                break;
            }
        }
    }
    child.line.drain(..start);
    child.line.len() <= child.program.max_line
}

impl Handler for Programs {
    type Data = ();

    fn on_open(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, req: &Request) -> Decision {
        let Some(route) = self.route(req.path()) else {
            return Decision::reject(404, format!("no program at {}", req.path()));
        };
        if self.routes[route].shared.is_some() {
            return self.open_shared(ctx, route, id, req);
        }
        let program = Arc::clone(&self.routes[route].program);
        if self.max_forks.is_some_and(|max| self.children.len() >= max) {
            warn!(
                "{id}: {} programs running, at --max-forks: 503",
                self.children.len()
            );
            return shared::busy(Duration::from_secs(5), "too many programs running");
        }
        let env = env::cgi(req, ctx.peer_addr(id), &program.passenv);
        let started =
            Child::spawn(&program, env, Some(id), None).and_then(|child| self.adopt(ctx, child));
        match started {
            Ok(key) => {
                self.by_conn.insert(id, Owner::Own(key));
                Decision::accept()
            }
            Err(e) => {
                warn!("{id}: cannot start {}: {e}", program.name());
                Decision::reject(500, "the program could not be started")
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, msg: Message<'_>) {
        let key = match self.by_conn.get(&id) {
            Some(&Owner::Own(key)) => key,
            Some(&Owner::Shared(route, n)) => {
                return self.message_shared(ctx, route, (id, n), &msg)
            }
            None => return,
        };
        let Some(child) = self.children.get_mut(&key) else {
            return;
        };
        if child.stdin.is_none() {
            return; // the program closed its stdin
        }
        match msg {
            Message::Text(t) if !child.program.binary => {
                child.stdin_buf.extend_from_slice(t.as_bytes());
                child.stdin_buf.push(b'\n');
            }
            other => child.stdin_buf.extend_from_slice(other.as_bytes()),
        }
        self.queue_stdin(ctx, key);
    }

    fn on_source(&mut self, ctx: &mut Ctx<'_, ()>, source: SourceId, event: &mio::event::Event) {
        let Some(&(key, pipe)) = self.sources.get(&source) else {
            return;
        };
        let shared = self.children.get(&key).is_some_and(|c| c.route.is_some());
        match pipe {
            Pipe::Stdin if event.is_writable() || event.is_error() => self.flush_stdin(ctx, key),
            Pipe::Stdout if shared => self.read_shared(ctx, key, SHARED_TURN),
            Pipe::Stdout => self.read_stdout(ctx, key, false),
            Pipe::Stderr => self.read_stderr(key),
            Pipe::Exit => self.exited(ctx, key),
            Pipe::Stdin => {}
        }
    }

    fn on_turn_end(&mut self, ctx: &mut Ctx<'_, ()>) {
        for key in std::mem::take(&mut self.stdin_pending) {
            if let Some(child) = self.children.get_mut(&key) {
                child.stdin_queued = false;
                self.flush_stdin(ctx, key);
            }
        }
        self.running.store(self.children.len(), Ordering::Relaxed);
    }

    fn on_drain(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId) {
        let Some(&Owner::Own(key)) = self.by_conn.get(&id) else {
            return;
        };
        if let Some(child) = self.children.get_mut(&key) {
            child.client_behind = false;
            if !child.program.binary && !send_lines(ctx, id, child, false) {
                return self.end(ctx, key, close_code::MESSAGE_TOO_BIG, "line too long");
            }
        }
        self.read_stdout(ctx, key, false);
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, code: u16, reason: &str) {
        let key = match self.by_conn.remove(&id) {
            Some(Owner::Own(key)) => key,
            Some(Owner::Shared(route, n)) => {
                return self.close_shared(ctx, route, (id, n), code, reason)
            }
            None => return,
        };
        if let Some(child) = self.children.get_mut(&key) {
            child.client = None;
        }
        self.stop(ctx, key);
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, ()>, _timer: TimerId, tag: u64) {
        let key = tag >> 3;
        match tag & 7 {
            t if t == Timer::Restart as u64 => return self.restart(ctx, key as usize),
            t if t == Timer::More as u64 => return self.read_shared(ctx, key, SHARED_TURN),
            _ => {}
        }
        let Some(child) = self.children.get_mut(&key) else {
            return;
        };
        if tag & 7 == Timer::Eof as u64 {
            // stdout closed a while ago: end, with the exit code if any.
            child.eof_timer = None;
            let code = exit_code(child.reap());
            return self.end(ctx, key, code, "");
        }
        child.stop_timer = None;
        if child.reap().is_some() {
            return self.finish_if_done(ctx, key);
        }
        if tag & 7 == Timer::Kill as u64 {
            debug!("{} {}: SIGKILL", child.label, child.program_name());
            child.signal(libc::SIGKILL);
        } else {
            debug!("{} {}: SIGTERM", child.label, child.program_name());
            child.signal(libc::SIGTERM);
            let after = child.program.kill_after;
            child.stop_timer = Some(ctx.set_timer(after, self::tag(key, Timer::Kill)));
        }
    }
}

impl Drop for Programs {
    /// The server is gone: no child outlives it, and none is left a zombie.
    fn drop(&mut self) {
        for (_, mut child) in self.children.drain() {
            child.kill_now();
        }
    }
}
