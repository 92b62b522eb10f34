//! A chat room on a topic, over as many loops as asked: every text message
//! is published to the room, encoded once, and reaches the members on every
//! loop.
//!
//! ```text
//! cargo run --release --example chat -- 127.0.0.1:9002       # one loop
//! cargo run --release --example chat -- 127.0.0.1:9002 4     # four, one per thread
//! ```

use wsloop::Request;
use wsloop::{Config, ConnId, Ctx, Decision, Handler, Loops, Message};

const ROOM: &str = "room";

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
            .map_or_else(|| format!("guest{id}"), str::to_owned);
        // Before it subscribes: to the others.
        ctx.publish(ROOM, Message::Text(&format!("{name} joined")));
        ctx.subscribe(id, ROOM);
        if let Some(member) = ctx.data(id) {
            member.name = name;
        }
        Decision::accept()
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Member>, id: ConnId, msg: Message<'_>) {
        if let Message::Text(text) = msg {
            let name = ctx.data(id).map(|m| m.name.clone()).unwrap_or_default();
            ctx.publish(ROOM, Message::Text(&format!("{name}: {text}")));
        }
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_, Member>, id: ConnId, _code: u16, _reason: &str) {
        // It has left the room already: a closing client leaves its topics.
        let name = ctx
            .data(id)
            .map(|m| std::mem::take(&mut m.name))
            .unwrap_or_default();
        ctx.publish(ROOM, Message::Text(&format!("{name} left")));
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9002".into());
    let loops: usize = args.next().map_or(Ok(1), |n| n.parse())?;
    let loops = Loops::bind(addr.parse()?, loops, Config::default(), |_| Chat)?;
    eprintln!("chat server on ws://{}", loops.local_addr());
    loops.run()?;
    Ok(())
}
