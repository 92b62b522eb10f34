//! Embedding: a host mio program owns a UDP socket and the WebSocket server
//! on one `Poll`, and forwards every datagram to every WebSocket client as a
//! text message.
//!
//! ```text
//! cargo run --release --example embed -- 127.0.0.1:9003 127.0.0.1:9004
//! #                                      websocket       udp
//! ```
//!
//! The host reserves tokens 100..20_102 for the server (10,000 clients and
//! as many other sources), forwards the events
//! the server owns, bounds its poll timeout by the server's next deadline,
//! and calls `tick` after every batch. It prints `ready <ws> <udp>` once
//! listening, and stops after the datagram `quit`.

use std::time::Duration;

use mio::net::{TcpListener, UdpSocket};
use mio::{Events, Interest, Poll, Token};
use wsloop::{Config, ConnId, Ctx, Handler, Message, Server};

const UDP: Token = Token(0);
const SERVER_TOKENS: std::ops::Range<usize> = 100..20_102;

/// WebSocket clients only listen; what they send is ignored.
struct Listeners;

impl Handler for Listeners {
    type Data = ();

    fn on_message(&mut self, _ctx: &mut Ctx<'_, ()>, _id: ConnId, _msg: Message<'_>) {}
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let ws_addr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:9003".into())
        .parse()?;
    let udp_addr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:9004".into())
        .parse()?;

    let mut poll = Poll::new()?;
    let mut udp = UdpSocket::bind(udp_addr)?;
    poll.registry()
        .register(&mut udp, UDP, Interest::READABLE)?;
    let listener = TcpListener::bind(ws_addr)?;
    let mut server = Server::embed(
        poll.registry(),
        SERVER_TOKENS,
        listener,
        Config::default(),
        Listeners,
    )?;
    println!("ready {} {}", server.local_addr(), udp.local_addr()?);

    let mut events = Events::with_capacity(256);
    let mut datagram = [0u8; 65_536];
    loop {
        let timeout = server.poll_timeout(Some(Duration::from_secs(1)));
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e.into());
        }
        for event in events.iter() {
            if server.owns(event.token()) {
                server.handle_event(event);
            } else if event.token() == UDP {
                loop {
                    let n = match udp.recv_from(&mut datagram) {
                        Ok((n, _)) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e.into()),
                    };
                    let text = String::from_utf8_lossy(&datagram[..n]);
                    if text == "quit" {
                        return Ok(());
                    }
                    let (_, mut ctx) = server.context();
                    ctx.broadcast_all(Message::Text(&text));
                }
            }
        }
        server.tick();
    }
}
