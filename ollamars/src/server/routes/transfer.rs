//! `POST /api/pull` and `POST /api/push` (spec §1.15) over [`crate::registry::Registry`].
//!
//! The transfer runs in its own task; its progress lines go through a channel to the response
//! ([`crate::server::stream::progress`]): one NDJSON line per progress, the last `success`; an
//! error before the first line gets a real status (e.g. 400 `insecure protocol http`), a later
//! one an `{"error": …}` line; with `stream:false` the answer is the last progress object or
//! the error.
//!
//! The task is aborted when the response is dropped (the client went away): that drops the
//! pull's future, which detaches it from the shared download; the download itself keeps running
//! while other pulls wait for it, and otherwise stops with its part state saved for a resume.

use crate::api::{Progress, TransferRequest};
use crate::registry::{ProgressFn, Registry, RegistryError, TransferOptions};
use crate::server::ServerState;
use crate::server::error::{ApiError, parse_body, parse_name};
use crate::server::stream::{self, Event};
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Which way a transfer goes.
#[derive(Debug, Clone, Copy)]
enum Direction {
    Pull,
    Push,
}

/// Aborts the transfer task when dropped (with the response or the handler).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `POST /api/pull`.
pub(in crate::server) async fn pull(
    State(st): State<ServerState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    transfer(st, body, Direction::Pull).await
}

/// `POST /api/push`.
pub(in crate::server) async fn push(
    State(st): State<ServerState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    transfer(st, body, Direction::Push).await
}

async fn transfer(st: ServerState, body: Bytes, dir: Direction) -> Result<Response, ApiError> {
    let req: TransferRequest = parse_body(&body)?;
    let name = parse_name(req.raw_name())?;
    let registry: Registry = st.registry()?.clone();
    let stream = req.stream.unwrap_or(true);
    let opts = TransferOptions {
        insecure: req.insecure,
    };
    let (tx, rx) = mpsc::unbounded_channel::<Event<RegistryError>>();
    let ptx = tx.clone();
    let progress: ProgressFn = Arc::new(move |p: Progress| {
        let _ = ptx.send(Event::Progress(p));
    });
    let task = tokio::spawn(async move {
        let r = match dir {
            Direction::Pull => registry.pull(&name, &opts, progress).await,
            Direction::Push => registry.push(&name, &opts, progress).await,
        };
        if let Err(e) = &r {
            tracing::warn!("{dir:?} {name} failed: {e}");
        }
        let _ = tx.send(Event::Done(r));
    });
    let guard = AbortOnDrop(task.abort_handle());
    stream::progress(rx, stream, "the transfer stopped unexpectedly", guard).await
}
