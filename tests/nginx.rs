//! Debian's nginx in front of two `wsloop --redis` processes, with
//! `deploy/nginx.conf` itself (its ports rewritten to free ones): clients
//! connect through nginx, land on both backends, and chat across them;
//! the page comes through too. Skipped loudly without nginx or
//! `redis-server`, a failure under `WSLOOP_REQUIRE_PEERS=1`. nginx runs in
//! the foreground as one process, killed when the test ends.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tungstenite::Message;

#[path = "support/process.rs"]
mod process;
#[path = "support/redis.rs"]
mod redis;
#[path = "support/ws_client.rs"]
mod ws_client;
#[path = "support/wsloop_bin.rs"]
mod wsloop_bin;

use redis::Redis;
use ws_client::{assert_silent, close_code, connect, text};
use wsloop_bin::Wsloop;

const NGINX: &str = "/usr/sbin/nginx";

/// nginx on `port` with deploy/nginx.conf pointing at `backends`.
struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    fn start(port: u16, backends: [u16; 2]) -> Nginx {
        let dir = std::env::temp_dir().join(format!("wsloop-nginx-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let site = std::fs::read_to_string(root.join("deploy/nginx.conf")).unwrap();
        // The file's example ports, replaced: it is otherwise used as is.
        for needle in ["listen 8080;", "127.0.0.1:8081;", "127.0.0.1:8082;"] {
            assert!(site.contains(needle), "deploy/nginx.conf lost {needle:?}");
        }
        let site = site
            .replace("listen 8080;", &format!("listen 127.0.0.1:{port};"))
            .replace("127.0.0.1:8081;", &format!("127.0.0.1:{};", backends[0]))
            .replace("127.0.0.1:8082;", &format!("127.0.0.1:{};", backends[1]));
        std::fs::write(dir.join("wsloop.conf"), site).unwrap();
        let d = dir.display();
        // What Debian's /etc/nginx/nginx.conf would give, in the test's
        // own directory and in the foreground.
        let main = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             \x20 fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             \x20 include {d}/wsloop.conf;\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), main).unwrap();
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .args(["-e", "stderr"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nginx");
        let end = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < end, "nginx did not listen within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx { child, dir }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn nginx_available() -> bool {
    if Path::new(NGINX).exists() {
        return true;
    }
    if std::env::var_os("WSLOOP_REQUIRE_PEERS").is_some_and(|v| v == "1") {
        panic!("nginx test: {NGINX} is missing (WSLOOP_REQUIRE_PEERS=1, so this fails)");
    }
    let _ = std::io::stderr().write_all(
        b"\n==================================================================\n\
          SKIPPED: the nginx test did not run: /usr/sbin/nginx is missing.\n\
          Install: apt-get install nginx (.ci/run does)\n\
          Set WSLOOP_REQUIRE_PEERS=1 to make this a failure.\n\
          ==================================================================\n",
    );
    false
}

#[test]
fn clients_through_nginx_chat_across_both_backends() {
    if !nginx_available() || !redis::available("the nginx test") {
        return;
    }
    const CLIENTS: usize = 8;
    let r = Redis::start(&[]);
    let backends = [
        Wsloop::start(&["--redis", &r.url()]),
        Wsloop::start(&["--redis", &r.url()]),
    ];
    for b in &backends {
        assert_eq!(b.wait_log_count("redis: link up", 1), 1, "{:#?}", b.logs());
    }
    let port = redis::free_port();
    let _nginx = Nginx::start(port, [backends[0].addr.port(), backends[1].addr.port()]);
    let front = format!("127.0.0.1:{port}").parse().unwrap();

    // The page, proxied.
    let mut page = TcpStream::connect(front).unwrap();
    page.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    page.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("WebSocket"), "the demo page");

    // Clients one after the other: each waits for its welcome, then for
    // its own subscription to reach Redis, so that no join notice is
    // published before every process listens.
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let mut ws = connect(front, &format!("/chat?name=c{i}"), &[]);
        assert!(text(&mut ws).starts_with(&format!("welcome c{i}:")));
        let on = |b: &Wsloop| b.log_count("/chat opened as");
        let end = Instant::now() + Duration::from_secs(10);
        while backends.iter().map(on).sum::<usize>() < i + 1 {
            assert!(Instant::now() < end, "no open line for c{i}");
            std::thread::sleep(Duration::from_millis(10));
        }
        let held = backends.iter().filter(|b| on(b) > 0).count();
        r.wait_numsub(None, "wsloop:chat", held);
        clients.push(ws);
    }
    // least_conn spread them: both backends hold some.
    for b in &backends {
        let n = b.log_count("/chat opened as");
        assert!(n > 0 && n < CLIENTS, "a backend holds {n} of {CLIENTS}");
    }
    // Join notices: client i heard of every later one.
    for (i, ws) in clients.iter_mut().enumerate() {
        for j in i + 1..CLIENTS {
            assert_eq!(text(ws), format!("c{j} joined"), "c{i}");
        }
    }
    for (i, ws) in clients.iter_mut().enumerate() {
        ws.send(Message::text(format!("hi from {i}"))).unwrap();
    }
    for (i, ws) in clients.iter_mut().enumerate() {
        let mut heard: Vec<String> = (0..CLIENTS).map(|_| text(ws)).collect();
        heard.sort();
        let mut want: Vec<String> = (0..CLIENTS).map(|j| format!("c{j}: hi from {j}")).collect();
        want.sort();
        assert_eq!(heard, want, "c{i} heard each once, from both backends");
    }
    for (i, ws) in clients.iter_mut().enumerate() {
        assert_silent(ws, Duration::from_millis(200), &format!("c{i}"));
    }
    // A close goes through nginx both ways.
    let mut last = clients.pop().unwrap();
    last.close(None).unwrap();
    assert_eq!(close_code(&mut last), 1005);
}
