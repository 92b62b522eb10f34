//! A minimal echo server: every message comes back unchanged.
//!
//! ```text
//! cargo run --release --example echo -- 127.0.0.1:9001
//! ```

use wsloop::{Config, ConnId, Ctx, Handler, Message, Server};

struct Echo;

impl Handler for Echo {
    type Data = ();

    fn on_message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, msg: Message<'_>) {
        ctx.send(id, msg);
    }
}

fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let mut server = Server::bind(addr.parse()?, Config::default(), Echo)?;
    eprintln!("echo server on ws://{}", server.local_addr());
    server.run()?;
    Ok(())
}
