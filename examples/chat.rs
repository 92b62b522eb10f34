//! A chat room: every text message is broadcast to everyone, encoded once.
//!
//! ```text
//! cargo run --release --example chat -- 127.0.0.1:9002
//! ```

use wsloop::Request;
use wsloop::{Config, ConnId, Ctx, Decision, Handler, Message, Server};

/// Each client's name, kept as per-connection data.
#[derive(Default)]
struct Member {
    name: String,
}

struct Chat;

impl Handler for Chat {
    type Data = Member;

    fn on_open(&mut self, ctx: &mut Ctx<'_, Member>, id: ConnId, req: &Request) -> Decision {
        let name = req
            .query()
            .and_then(|q| q.strip_prefix("name="))
            .map_or_else(|| format!("guest{}", id.to_u64() & 0xffff), str::to_owned);
        ctx.broadcast_all(Message::Text(&format!("{name} joined")));
        if let Some(member) = ctx.data(id) {
            member.name = name;
        }
        Decision::accept()
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Member>, id: ConnId, msg: Message<'_>) {
        if let Message::Text(text) = msg {
            let name = ctx.data(id).map(|m| m.name.clone()).unwrap_or_default();
            ctx.broadcast_all(Message::Text(&format!("{name}: {text}")));
        }
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_, Member>, id: ConnId, _code: u16, _reason: &str) {
        let name = ctx
            .data(id)
            .map(|m| std::mem::take(&mut m.name))
            .unwrap_or_default();
        ctx.broadcast_all(Message::Text(&format!("{name} left")));
    }
}

fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".into());
    let mut server = Server::bind(addr.parse()?, Config::default(), Chat)?;
    eprintln!("chat server on ws://{}", server.local_addr());
    server.run()?;
    Ok(())
}
