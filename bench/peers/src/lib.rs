//! What the peer echo servers share: the listen address from the command
//! line and the line that announces it.
//!
//! Each server takes `--listen ADDR` (or `ADDR` alone; default
//! `127.0.0.1:9001`, port 0 picks a free one) and writes
//! `listening on ws://ADDR` to stderr, the same words as wsloop's log, so
//! `scripts/bench` finds every server's address the same way.

use std::net::SocketAddr;

/// The address from `--listen ADDR`, `--listen=ADDR` or a lone `ADDR`.
/// Exits with code 2 and a usage line on anything else.
pub fn listen_addr(name: &str) -> SocketAddr {
    let mut args = std::env::args().skip(1);
    let mut addr: Option<String> = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => addr = args.next(),
            "-h" | "--help" => {
                println!("usage: {name} [--listen] ADDR   (default 127.0.0.1:9001)");
                std::process::exit(0);
            }
            _ => match arg.strip_prefix("--listen=") {
                Some(v) => addr = Some(v.to_owned()),
                None if !arg.starts_with('-') => addr = Some(arg),
                None => usage(name, &format!("unknown flag {arg}")),
            },
        }
    }
    let addr = addr.unwrap_or_else(|| "127.0.0.1:9001".into());
    addr.parse()
        .unwrap_or_else(|_| usage(name, &format!("{addr:?} is not an IP:PORT address")))
}

fn usage(name: &str, problem: &str) -> ! {
    eprintln!("error: {problem}\nusage: {name} [--listen] ADDR");
    std::process::exit(2)
}

/// Announces the bound address on stderr.
pub fn announce(name: &str, addr: SocketAddr) {
    eprintln!("{name}: listening on ws://{addr}");
}
