//! Debian's `redis-server`, started by a test on a free port of 127.0.0.1
//! (no persistence, its files in a directory of its own) and killed on
//! drop; and a few commands spoken to it in RESP by hand, for what the
//! test checks on Redis's side (`PUBSUB NUMSUB`, a `PUBLISH` of its own).
//! Included with `#[path = "support/redis.rs"] mod redis;`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// Whether `redis-server` is here; when not, says so loudly, and fails
/// under `WSLOOP_REQUIRE_PEERS=1`.
pub fn available(test: &str) -> bool {
    if std::path::Path::new(REDIS_SERVER).exists() {
        return true;
    }
    if std::env::var_os("WSLOOP_REQUIRE_PEERS").is_some_and(|v| v == "1") {
        panic!("{test}: {REDIS_SERVER} is missing (WSLOOP_REQUIRE_PEERS=1, so this fails)");
    }
    let _ = std::io::stderr().write_all(
        format!(
            "\n==================================================================\n\
             SKIPPED: {test} did not run: {REDIS_SERVER} is missing.\n\
             Install: apt-get install redis-server (.ci/run does)\n\
             Set WSLOOP_REQUIRE_PEERS=1 to make this a failure.\n\
             ==================================================================\n"
        )
        .as_bytes(),
    );
    false
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A running `redis-server`, killed and reaped on drop.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
}

impl Redis {
    /// Starts one on `port` with `extra` arguments (`--requirepass`, ...),
    /// and waits until it answers.
    pub fn start_on(port: u16, extra: &[&str]) -> Redis {
        let dir = std::env::temp_dir().join(format!("wsloop-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Redis {
            child: None,
            port,
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        r.restart();
        r
    }

    pub fn start(extra: &[&str]) -> Redis {
        Redis::start_on(free_port(), extra)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it at once (SIGKILL: no goodbye to its clients).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < end,
                "redis-server did not listen within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs one command (as an array of bulk strings, authenticated with
    /// `auth` if given) and returns the reply's lines as Redis wrote them.
    pub fn command(&self, auth: Option<&str>, args: &[&str]) -> Vec<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = Vec::new();
        let mut push = |args: &[&str]| {
            out.extend(format!("*{}\r\n", args.len()).bytes());
            for a in args {
                out.extend(format!("${}\r\n{a}\r\n", a.len()).bytes());
            }
        };
        if let Some(pw) = auth {
            push(&["AUTH", pw]);
        }
        push(args);
        push(&["QUIT"]);
        s.write_all(&out).unwrap();
        let mut reply = String::new();
        BufReader::new(s).read_to_string(&mut reply).unwrap();
        let mut lines: Vec<String> = reply.lines().map(str::to_owned).collect();
        if auth.is_some() {
            lines.remove(0); // +OK of AUTH
        }
        lines.pop(); // +OK of QUIT
        lines
    }

    /// Subscribers of `channel` across every connection, as Redis counts.
    pub fn numsub(&self, auth: Option<&str>, channel: &str) -> usize {
        // *2 $len channel :N
        let lines = self.command(auth, &["PUBSUB", "NUMSUB", channel]);
        lines
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix(':'))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("NUMSUB reply {lines:?}"))
    }

    /// Waits until `channel` has `n` subscribers.
    pub fn wait_numsub(&self, auth: Option<&str>, channel: &str, n: usize) {
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.numsub(auth, channel);
            if got == n {
                return;
            }
            assert!(
                Instant::now() < end,
                "{channel}: {got} subscribers, not {n}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Connected clients named `wsloop` (`CLIENT LIST`).
    pub fn wsloop_clients(&self, auth: Option<&str>) -> usize {
        let lines = self.command(auth, &["CLIENT", "LIST"]);
        lines.iter().filter(|l| l.contains("name=wsloop")).count()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reads one line (for tests that watch a reply stream).
pub fn read_line(r: &mut impl BufRead) -> String {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    line
}
