//! What the peer echo servers share: the listen address (and, for the wss
//! ones, the certificate and key) from the command line and the line that
//! announces it.
//!
//! Each server takes `--listen ADDR` (or `ADDR` alone; default
//! `127.0.0.1:9001`, port 0 picks a free one) and writes
//! `listening on ws://ADDR` to stderr, the same words as wsloop's log, so
//! `scripts/bench` finds every server's address the same way. The wss
//! servers also take `--tls-cert FILE --tls-key FILE`, as wsloop does, and
//! write `listening on wss://ADDR`.

use std::net::SocketAddr;
use std::path::PathBuf;

/// The address from `--listen ADDR`, `--listen=ADDR` or a lone `ADDR`.
/// Exits with code 2 and a usage line on anything else.
pub fn listen_addr(name: &str) -> SocketAddr {
    parse(name, false).0
}

/// What a wss server is started with: the address (as [`listen_addr`]), a
/// PEM certificate chain (leaf first) and a PEM private key.
pub struct TlsArgs {
    /// `--listen ADDR`, `--listen=ADDR` or a lone `ADDR`.
    pub listen: SocketAddr,
    /// `--tls-cert FILE` or `--tls-cert=FILE`.
    pub cert: PathBuf,
    /// `--tls-key FILE` or `--tls-key=FILE`.
    pub key: PathBuf,
}

/// The address as [`listen_addr`] takes it, and `--tls-cert FILE` and
/// `--tls-key FILE` (both required). Exits with code 2 and a usage line on
/// anything else.
pub fn tls_args(name: &str) -> TlsArgs {
    let (listen, cert, key) = parse(name, true);
    match (cert, key) {
        (Some(cert), Some(key)) => TlsArgs { listen, cert, key },
        _ => usage(
            name,
            true,
            "--tls-cert FILE and --tls-key FILE are both required",
        ),
    }
}

fn parse(name: &str, tls: bool) -> (SocketAddr, Option<PathBuf>, Option<PathBuf>) {
    let mut args = std::env::args().skip(1);
    let mut addr: Option<String> = None;
    let (mut cert, mut key): (Option<PathBuf>, Option<PathBuf>) = (None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => addr = args.next(),
            "--tls-cert" if tls => cert = args.next().map(PathBuf::from),
            "--tls-key" if tls => key = args.next().map(PathBuf::from),
            "-h" | "--help" => {
                println!(
                    "usage: {}   (default 127.0.0.1:9001)",
                    usage_line(name, tls)
                );
                std::process::exit(0);
            }
            _ => {
                if let Some(v) = arg.strip_prefix("--listen=") {
                    addr = Some(v.to_owned());
                } else if let (true, Some(v)) = (tls, arg.strip_prefix("--tls-cert=")) {
                    cert = Some(v.into());
                } else if let (true, Some(v)) = (tls, arg.strip_prefix("--tls-key=")) {
                    key = Some(v.into());
                } else if !arg.starts_with('-') {
                    addr = Some(arg);
                } else {
                    usage(name, tls, &format!("unknown flag {arg}"));
                }
            }
        }
    }
    let addr = addr.unwrap_or_else(|| "127.0.0.1:9001".into());
    let addr = addr
        .parse()
        .unwrap_or_else(|_| usage(name, tls, &format!("{addr:?} is not an IP:PORT address")));
    (addr, cert, key)
}

fn usage_line(name: &str, tls: bool) -> String {
    if tls {
        format!("{name} --tls-cert FILE --tls-key FILE [--listen] ADDR")
    } else {
        format!("{name} [--listen] ADDR")
    }
}

fn usage(name: &str, tls: bool, problem: &str) -> ! {
    eprintln!("error: {problem}\nusage: {}", usage_line(name, tls));
    std::process::exit(2)
}

/// Announces the bound address on stderr.
pub fn announce(name: &str, addr: SocketAddr) {
    eprintln!("{name}: listening on ws://{addr}");
}

/// Announces the bound address of a wss server on stderr.
pub fn announce_wss(name: &str, addr: SocketAddr) {
    eprintln!("{name}: listening on wss://{addr}");
}
