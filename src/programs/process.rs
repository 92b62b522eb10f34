//! One running program (for one connection, or shared by a route): the
//! process, its pipes as non-blocking mio sources, and a pidfd that becomes
//! readable when it exits (Linux 5.3+). The one place in `programs` with
//! `unsafe`.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;

use mio::unix::pipe::{Receiver, Sender};
use mio::unix::SourceFd;
use mio::Interest;

use super::{Pipe, Program};
use crate::{ConnId, Ctx, SourceId, TimerId};

/// A running (or exited, not yet forgotten) program.
#[derive(Debug)]
pub(super) struct Child {
    pub(super) program: Arc<Program>,
    /// Who it runs for, in the log: the connection, or `shared /route`.
    pub(super) label: String,
    /// The connection while it is open (per-connection programs only).
    pub(super) client: Option<ConnId>,
    /// The route it serves, for a shared program.
    pub(super) route: Option<usize>,
    process: std::process::Child,
    pidfd: OwnedFd,
    pub(super) stdin: Option<Sender>,
    pub(super) stdin_id: Option<SourceId>,
    pub(super) stdout: Option<Receiver>,
    stdout_id: Option<SourceId>,
    pub(super) stderr: Option<Receiver>,
    stderr_id: Option<SourceId>,
    exit_id: Option<SourceId>,
    /// Client messages not yet taken by the program's stdin.
    pub(super) stdin_buf: Vec<u8>,
    /// Listed to have its stdin written when the turn ends.
    pub(super) stdin_queued: bool,
    /// stdout after the last whole line.
    pub(super) line: Vec<u8>,
    /// A shared program's line passed `max_line`: the rest of it, up to
    /// its newline, is dropped.
    pub(super) skipping: bool,
    /// stderr after the last whole line.
    pub(super) err_line: Vec<u8>,
    /// The client's reading is paused (stdin full).
    pub(super) client_paused: bool,
    /// The client is behind: stdout is not read until it drains.
    pub(super) client_behind: bool,
    pub(super) status: Option<ExitStatus>,
    /// The SIGTERM or SIGKILL timer.
    pub(super) stop_timer: Option<TimerId>,
    /// The wait for an exit after stdout closed.
    pub(super) eof_timer: Option<TimerId>,
}

impl Child {
    /// Starts `program` with exactly `env`, its three pipes non-blocking,
    /// for `client` or (`None`) shared by `route`.
    pub(super) fn spawn(
        program: &Arc<Program>,
        env: Vec<(OsString, OsString)>,
        client: Option<ConnId>,
        route: Option<(usize, &str)>,
    ) -> io::Result<Child> {
        let (name, args) = program
            .argv
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "an empty command"))?;
        let mut process = Command::new(name)
            .args(args)
            .env_clear()
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let pidfd = match pidfd_open(process.id()) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = process.kill();
                let _ = process.wait();
                return Err(e);
            }
        };
        // Invariant: the three were asked for as pipes just above.
        let stdin = Sender::from(process.stdin.take().expect("piped stdin"));
        let stdout = Receiver::from(process.stdout.take().expect("piped stdout"));
        let stderr = Receiver::from(process.stderr.take().expect("piped stderr"));
        for result in [
            stdin.set_nonblocking(true),
            stdout.set_nonblocking(true),
            stderr.set_nonblocking(true),
        ] {
            if let Err(e) = result {
                let _ = process.kill();
                let _ = process.wait();
                return Err(e);
            }
        }
        Ok(Child {
            program: Arc::clone(program),
            label: match (client, route) {
                (Some(conn), _) => conn.to_string(),
                (None, Some((_, path))) => format!("shared {path}"),
                (None, None) => String::new(),
            },
            client,
            route: route.map(|(index, _)| index),
            process,
            pidfd,
            stdin: Some(stdin),
            stdin_id: None,
            stdout: Some(stdout),
            stdout_id: None,
            stderr: Some(stderr),
            stderr_id: None,
            exit_id: None,
            stdin_buf: Vec::new(),
            stdin_queued: false,
            line: Vec::new(),
            skipping: false,
            err_line: Vec::new(),
            client_paused: false,
            client_behind: false,
            status: None,
            stop_timer: None,
            eof_timer: None,
        })
    }

    /// Puts the pipes and the pidfd in the loop's `Poll`.
    pub(super) fn register(&mut self, ctx: &mut Ctx<'_, ()>) -> io::Result<Vec<(SourceId, Pipe)>> {
        let mut ids = Vec::with_capacity(4);
        let result = (|| {
            if let Some(p) = self.stdin.as_mut() {
                let id = ctx.register(p, Interest::WRITABLE)?;
                self.stdin_id = Some(id);
                ids.push((id, Pipe::Stdin));
            }
            if let Some(p) = self.stdout.as_mut() {
                let id = ctx.register(p, Interest::READABLE)?;
                self.stdout_id = Some(id);
                ids.push((id, Pipe::Stdout));
            }
            if let Some(p) = self.stderr.as_mut() {
                let id = ctx.register(p, Interest::READABLE)?;
                self.stderr_id = Some(id);
                ids.push((id, Pipe::Stderr));
            }
            let id = ctx.register(&mut SourceFd(&self.pidfd.as_raw_fd()), Interest::READABLE)?;
            self.exit_id = Some(id);
            ids.push((id, Pipe::Exit));
            Ok(())
        })();
        match result {
            Ok(()) => Ok(ids),
            Err(e) => {
                self.deregister(ctx);
                Err(e)
            }
        }
    }

    /// Takes every remaining source out of the loop (closing nothing yet:
    /// the pipes close when the child is dropped). Returns their ids.
    pub(super) fn deregister(&mut self, ctx: &mut Ctx<'_, ()>) -> Vec<SourceId> {
        let mut gone = Vec::new();
        if let (Some(id), Some(p)) = (self.stdin_id.take(), self.stdin.as_mut()) {
            let _ = ctx.deregister(id, p);
            gone.push(id);
        }
        if let (Some(id), Some(p)) = (self.stdout_id.take(), self.stdout.as_mut()) {
            let _ = ctx.deregister(id, p);
            gone.push(id);
        }
        if let (Some(id), Some(p)) = (self.stderr_id.take(), self.stderr.as_mut()) {
            let _ = ctx.deregister(id, p);
            gone.push(id);
        }
        if let Some(id) = self.exit_id.take() {
            let _ = ctx.deregister(id, &mut SourceFd(&self.pidfd.as_raw_fd()));
            gone.push(id);
        }
        gone
    }

    /// Reaps the process if it exited.
    pub(super) fn reap(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.process.try_wait().ok().flatten();
        }
        self.status
    }

    /// Sends `signal` to the process, if it has not exited.
    pub(super) fn signal(&mut self, signal: libc::c_int) {
        if self.reap().is_some() {
            return;
        }
        // Invariant: a child that has not been reaped keeps its pid, so
        // the signal cannot reach another process.
        let pid = self.process.id() as libc::pid_t;
        // SAFETY: kill(2) takes plain integers and touches no memory.
        unsafe {
            libc::kill(pid, signal);
        }
    }

    /// SIGKILL and wait: for a server going away.
    pub(super) fn kill_now(&mut self) {
        if self.reap().is_none() {
            let _ = self.process.kill();
            self.status = self.process.wait().ok();
        }
    }

    pub(super) fn pid(&self) -> u32 {
        self.process.id()
    }

    pub(super) fn program_name(&self) -> String {
        self.program.name()
    }
}

/// A descriptor that becomes readable when process `pid` exits.
fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new
    // descriptor or -1; it touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us, open, and
    // nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
