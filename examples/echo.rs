//! A minimal echo server: every message comes back unchanged.
//!
//! ```text
//! cargo run --release --example echo -- 127.0.0.1:9001
//! cargo run --release --example echo -- 127.0.0.1:9001 --deflate no-context-takeover
//! ```
//!
//! `--deflate` sets the permessage-deflate policy (RFC 7692): `on` (the
//! library's default: offers are accepted on the client's terms, so with
//! context takeover unless the client asks otherwise), `no-context-takeover`
//! (accepted, but neither side keeps context between messages: the server
//! borrows its codecs per message instead of keeping them per connection),
//! or `off`. `--max-clients N` raises the connection limit (default
//! 10,000). `scripts/bench --compression` runs this server.

use wsloop::{Config, ConnId, Ctx, Handler, Message, Server};

struct Echo;

impl Handler for Echo {
    type Data = ();

    fn on_message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, msg: Message<'_>) {
        ctx.send(id, msg);
    }
}

fn main() -> anyhow::Result<()> {
    let mut addr = "127.0.0.1:9001".to_owned();
    let mut config = Config::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--deflate" => match value()?.as_str() {
                "on" => config.deflate.enabled = true,
                "off" => config.deflate.enabled = false,
                "no-context-takeover" => {
                    config.deflate.enabled = true;
                    config.deflate.server_no_context_takeover = true;
                    config.deflate.client_no_context_takeover = true;
                }
                other => {
                    anyhow::bail!("--deflate {other:?}: expected on, off or no-context-takeover")
                }
            },
            "--max-clients" => config.max_clients = value()?.parse()?,
            flag if flag.starts_with('-') => anyhow::bail!("unknown flag {flag:?}"),
            _ => addr = arg,
        }
    }
    config.validate()?;
    let mut server = Server::bind(addr.parse()?, config, Echo)?;
    eprintln!("echo server on ws://{}", server.local_addr());
    server.run()?;
    Ok(())
}
