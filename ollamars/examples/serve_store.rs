//! Serves the model-management API over one store, for integration tests and the Python
//! client test: `serve_store <addr> <store root>`. It prints `listening on <addr>` once bound.

use ollamars::config::Config;
use ollamars::server::{ServerState, serve};
use ollamars::store::Store;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".into());
    let root = args
        .next()
        .ok_or_else(|| std::io::Error::other("usage: serve_store <addr> <store root>"))?;
    // The server's variables (OLLAMA_NUM_PARALLEL, ...) apply, as to `ollamars serve`.
    let config = Config::for_server().map_err(std::io::Error::other)?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    serve(listener, ServerState::new(Store::new(root), &config)).await
}
