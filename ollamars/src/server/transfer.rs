//! `POST /api/pull` and `POST /api/push` (spec §1.15) over [`crate::registry::Registry`].
//!
//! The transfer runs in its own task; its progress lines go through a channel to the response.
//! Streaming (the default), each [`Progress`] is one NDJSON line, the last one `success`; an error
//! before the first line gets a real status (e.g. 400 `insecure protocol http`), a later one an
//! `{"error": …}` line. With `stream:false` the answer is the last progress object, or the error
//! with [`RegistryError::http_status`].
//!
//! The task is aborted when the response is dropped (the client went away): that drops the
//! pull's future, which detaches it from the shared download; the download itself keeps running
//! while other pulls wait for it, and otherwise stops with its part state saved for a resume.

use super::{ApiError, ServerState, ndjson_line, parse_body, parse_name};
use crate::progress::Progress;
use crate::registry::{ProgressFn, Registry, RegistryError, TransferOptions};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::mpsc;

/// The body of `/api/pull` and `/api/push`. `username` and `password` are accepted and ignored,
/// as by Ollama (credentials come from the server's environment, see
/// [`crate::registry::config`]).
#[derive(Deserialize)]
struct TransferRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    stream: Option<bool>,
}

impl TransferRequest {
    /// `model`, else the legacy `name`.
    fn raw_name(&self) -> &str {
        self.model
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(self.name.as_deref())
            .unwrap_or_default()
    }
}

/// Which way a transfer goes.
#[derive(Debug, Clone, Copy)]
enum Direction {
    Pull,
    Push,
}

/// What the transfer task reports.
enum Event {
    Progress(Progress),
    Done(Result<(), RegistryError>),
}

/// Aborts the transfer task when dropped (with the response or the handler).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `POST /api/pull`.
pub(super) async fn pull(State(st): State<ServerState>, body: Bytes) -> Result<Response, ApiError> {
    transfer(st, body, Direction::Pull).await
}

/// `POST /api/push`.
pub(super) async fn push(State(st): State<ServerState>, body: Bytes) -> Result<Response, ApiError> {
    transfer(st, body, Direction::Push).await
}

fn registry_error(e: &RegistryError) -> ApiError {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    ApiError::new(status, e.to_string())
}

fn stopped() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the transfer stopped unexpectedly",
    )
}

async fn transfer(st: ServerState, body: Bytes, dir: Direction) -> Result<Response, ApiError> {
    let req: TransferRequest = parse_body(&body)?;
    let name = parse_name(req.raw_name())?;
    let registry: Registry = st.registry()?.clone();
    let stream = req.stream.unwrap_or(true);
    let opts = TransferOptions {
        insecure: req.insecure,
    };

    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
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

    if !stream {
        let mut last = None;
        loop {
            match rx.recv().await {
                Some(Event::Progress(p)) => last = Some(p),
                Some(Event::Done(Err(e))) => return Err(registry_error(&e)),
                Some(Event::Done(Ok(()))) => break,
                None => return Err(stopped()),
            }
        }
        drop(guard);
        let last = last.unwrap_or_else(|| Progress::status("success"));
        return Ok(Json(last).into_response());
    }

    // Errors before the first line get a real status code.
    let first = match rx.recv().await {
        Some(Event::Progress(p)) => p,
        Some(Event::Done(Err(e))) => return Err(registry_error(&e)),
        Some(Event::Done(Ok(()))) => Progress::status("success"),
        None => return Err(stopped()),
    };
    let first_line = futures::stream::once(async move { ndjson_line(&first) });
    // The guard travels with the stream: dropping the body (a disconnect) aborts the task.
    let rest = futures::stream::unfold(Some((rx, guard)), |state| async move {
        let (mut rx, guard) = state?;
        let error_line = |msg: String| ndjson_line(&json!({ "error": msg }));
        match rx.recv().await {
            Some(Event::Progress(p)) => Some((ndjson_line(&p), Some((rx, guard)))),
            Some(Event::Done(Err(e))) => Some((error_line(e.to_string()), None)),
            Some(Event::Done(Ok(()))) => None,
            None => Some((error_line(stopped().message), None)),
        }
    });
    let body = Body::from_stream(
        first_line
            .chain(rest)
            .map(Ok::<Bytes, std::convert::Infallible>),
    );
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}
