//! The `wsloop` binary: an echo server on 127.0.0.1:8080 until the demo
//! routes, CLI and page arrive (issue 4).

use wsloop::{Config, ConnId, Ctx, Handler, Message, Server};

struct Echo;

impl Handler for Echo {
    type Data = ();

    fn on_message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, msg: Message<'_>) {
        ctx.send(id, msg);
    }
}

fn main() -> anyhow::Result<()> {
    let addr = std::env::var("WSLOOP_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let mut server = Server::bind(addr.parse()?, Config::default(), Echo)?;
    eprintln!("wsloop listening on ws://{}", server.local_addr());
    server.run()?;
    Ok(())
}
