//! An echo server on fastwebsockets, after its own `echo_server` example:
//! hyper 1 serves the HTTP/1.1 upgrade, each connection is a task on a
//! current-thread tokio runtime, `FragmentCollector` hands over whole
//! messages (auto-pong and auto-close are on by default) and each one is
//! written back as it came. TCP_NODELAY is set on every accepted socket.
//!
//! ```text
//! cargo run --release --bin fastwebsockets-echo -- --listen 127.0.0.1:9001
//! ```

use fastwebsockets::{upgrade, FragmentCollector, OpCode, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

async fn handle_client(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(fut.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
    Ok(())
}

async fn server_upgrade(
    mut req: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = upgrade::upgrade(&mut req)?;
    tokio::task::spawn(async move {
        if let Err(e) = tokio::task::unconstrained(handle_client(fut)).await {
            eprintln!("fastwebsockets-echo: connection error: {e}");
        }
    });
    Ok(response)
}

fn main() -> std::io::Result<()> {
    let addr = wsloop_bench_peers::listen_addr("fastwebsockets-echo");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        wsloop_bench_peers::announce("fastwebsockets-echo", listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let conn = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(server_upgrade))
                    .with_upgrades();
                if let Err(e) = conn.await {
                    eprintln!("fastwebsockets-echo: HTTP error: {e:?}");
                }
            });
        }
    })
}
