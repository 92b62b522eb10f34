//! The `wsloop` binary as a child process: started on a free port (under a
//! lowered `ulimit -n` if asked), its log drained in a thread, its memory,
//! CPU time and descriptors read from `/proc`, killed and reaped on drop.
//! Included with `#[path = "support/wsloop_bin.rs"] mod wsloop_bin;` by the
//! tests that need the binary (it needs `CARGO_BIN_EXE_wsloop`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_wsloop");

/// A running `wsloop`, killed and reaped on drop.
pub struct Wsloop {
    pub child: Child,
    pub addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Wsloop {
    /// Starts the binary on a free port with `args` (plus `--log-level
    /// info` unless `args` has a level) and waits for its listening line.
    pub fn start(args: &[&str]) -> Wsloop {
        Self::spawn(args, &[], None)
    }

    /// The same with extra environment variables (a `RUST_LOG` in `env`
    /// also stops the default `--log-level info`).
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Wsloop {
        Self::spawn(args, env, None)
    }

    /// The same under `ulimit -n nofile` (the shell execs the binary, so the
    /// child's pid is the server's).
    pub fn start_limited(args: &[&str], nofile: Option<u64>) -> Wsloop {
        Self::spawn(args, &[], nofile)
    }

    fn spawn(args: &[&str], env: &[(&str, &str)], nofile: Option<u64>) -> Wsloop {
        let mut cmd = match nofile {
            Some(n) => {
                let mut c = Command::new("/bin/sh");
                c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\"")])
                    .arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        cmd.args(["--listen", "127.0.0.1:0"]).args(args);
        if !args.contains(&"--log-level") && env.iter().all(|(k, _)| *k != "RUST_LOG") {
            cmd.args(["--log-level", "info"]);
        }
        cmd.env_remove("RUST_LOG").env_remove("WSLOOP_LISTEN");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wsloop");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            // Drains to the end so the server never blocks on a full pipe.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let listening = line
                    .split("listening on ws://")
                    .nth(1)
                    .or_else(|| line.split("listening on wss://").nth(1));
                if let Some(rest) = listening {
                    let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                    let _ = tx.send(addr);
                }
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let mut server = Wsloop {
            child,
            addr: "127.0.0.1:1".parse().unwrap(),
            logs,
        };
        let addr = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("no `listening on ws://...` line within 10 s");
        server.addr = addr.parse().expect("listening address");
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many log lines contain `part`.
    pub fn log_count(&self, part: &str) -> usize {
        self.logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|l| l.contains(part))
            .count()
    }

    /// Waits up to 10 s until at least `n` log lines contain `part` (the
    /// log arrives through a pipe, a little behind); returns the count.
    pub fn wait_log_count(&self, part: &str, n: usize) -> usize {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let count = self.log_count(part);
            if count >= n || Instant::now() >= end {
                return count;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Resident memory in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid()).expect("VmRSS of the server")
    }

    /// User plus system CPU time in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        cpu_ticks(self.pid()).expect("CPU time of the server")
    }

    /// Open descriptors.
    pub fn fd_count(&self) -> usize {
        self.fds_below(usize::MAX)
    }

    /// Open descriptors numbered below `limit` (a `ulimit -n` caps the
    /// numbers of new descriptors; some inherited ones may be above it).
    pub fn fds_below(&self, limit: usize) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("the server's /proc/PID/fd")
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<usize>().ok())
            .filter(|&fd| fd < limit)
            .count()
    }

    /// Waits up to `within` until `cond` holds on the server's descriptor
    /// count; returns the last count.
    pub fn wait_fds(&self, within: Duration, cond: impl Fn(usize) -> bool) -> usize {
        let end = Instant::now() + within;
        loop {
            let n = self.fd_count();
            if cond(n) || Instant::now() >= end {
                return n;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Wsloop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `VmRSS` of `/proc/PID/status`, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Fields 14 and 15 (`utime`, `stime`) of `/proc/PID/stat`, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

impl Wsloop {
    /// The server's children, as (pid, state) from `/proc`.
    pub fn children(&self) -> Vec<(u32, char)> {
        let me = self.pid();
        let mut out = Vec::new();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return out;
        };
        for entry in dir.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let mut fields = rest.split_whitespace();
            let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
            let ppid: u32 = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            if ppid == me {
                out.push((pid, state));
            }
        }
        out
    }
}

/// `target/<profile>/examples/NAME`, next to this test's `deps/` (plain
/// `cargo test` builds the examples). Missing: skipped with a notice, or a
/// failure under `WSLOOP_REQUIRE_PEERS=1`.
pub fn example(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe
        .parent()?
        .parent()?
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if path.exists() {
        return Some(path);
    }
    let msg = format!(
        "{} is missing: build it with `cargo build --example {name}` (plain `cargo test` does)",
        path.display()
    );
    if std::env::var_os("WSLOOP_REQUIRE_PEERS").is_some_and(|v| v == "1") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}
