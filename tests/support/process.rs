//! Running a child process to its end under a deadline. Part of `support`,
//! and included on its own (`#[path = "support/process.rs"] mod process;`)
//! by the tests that need only this.

#![allow(dead_code)]

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Kills and reaps the child when dropped, however the test ends.
pub struct Reaper(pub Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How a child run by [`run_with_deadline`] ended, and all it wrote.
pub struct Finished {
    /// `None` when it was still running at the deadline (it was killed).
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

/// Starts `cmd` with its stdout and stderr piped (drained in threads, so a
/// chatty child cannot block on them), waits up to `within` for it to exit,
/// kills and reaps it if it has not, and returns what it said.
pub fn run_with_deadline(cmd: &mut Command, within: Duration) -> Finished {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {:?}: {e}", cmd.get_program()));
    let mut child = Reaper(child);
    let stdout = drain(child.0.stdout.take().expect("stdout"));
    let stderr = drain(child.0.stderr.take().expect("stderr"));
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait for the child") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    drop(child); // kills it if it is still running, so the pipes close
    Finished {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Reads `pipe` to its end in a thread.
fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    })
}
