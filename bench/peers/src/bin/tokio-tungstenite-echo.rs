//! An echo server on tokio-tungstenite, after its own autobahn-server
//! example: a current-thread tokio runtime, an accept loop, `accept_async`
//! per connection (a task each), and every text or binary message sent back
//! with `next()` / `send()`. Pings are answered and closes echoed by
//! tungstenite itself. TCP_NODELAY is set on every accepted socket.
//!
//! ```text
//! cargo run --release --bin tokio-tungstenite-echo -- --listen 127.0.0.1:9002
//! ```

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::accept_async;
use tokio_tungstenite::tungstenite::{Error, Result};

async fn handle_connection(stream: TcpStream) -> Result<()> {
    let mut ws = accept_async(stream).await?;
    while let Some(msg) = ws.next().await {
        let msg = msg?;
        if msg.is_text() || msg.is_binary() {
            ws.send(msg).await?;
        }
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let addr = wsloop_bench_peers::listen_addr("tokio-tungstenite-echo");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        wsloop_bench_peers::announce("tokio-tungstenite-echo", listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                match handle_connection(stream).await {
                    Ok(()) | Err(Error::ConnectionClosed | Error::Protocol(_) | Error::Utf8(_)) => {
                    }
                    Err(e) => eprintln!("tokio-tungstenite-echo: connection error: {e}"),
                }
            });
        }
    })
}
