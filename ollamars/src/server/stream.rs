//! Streaming responses: NDJSON lines (Ollama's routes), SSE `data:` lines (OpenAI's), and the
//! progress stream that `/api/create`, `/api/pull` and `/api/push` share.

use super::error::ApiError;
use crate::api::{ErrorResponse, Progress};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::Serialize;
use tokio::sync::mpsc;

/// One NDJSON line.
pub(crate) fn ndjson_line(v: &impl Serialize) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

/// One SSE event: `data: <json>` and a blank line.
pub(crate) fn sse_line(v: &impl Serialize) -> Bytes {
    let mut b = b"data: ".to_vec();
    b.extend_from_slice(&serde_json::to_vec(v).unwrap_or_default());
    b.extend_from_slice(b"\n\n");
    Bytes::from(b)
}

/// The NDJSON line that ends a failed stream: `{"error": "…"}`.
pub(crate) fn error_line(message: impl Into<String>) -> Bytes {
    ndjson_line(&ErrorResponse {
        error: message.into(),
    })
}

fn body_of(
    lines: impl Stream<Item = Bytes> + Send + 'static,
    content_type: &'static str,
) -> Response {
    let body = lines
        .filter(|b| futures::future::ready(!b.is_empty()))
        .map(Ok::<Bytes, std::convert::Infallible>);
    (
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(body),
    )
        .into_response()
}

/// An `application/x-ndjson` response of `lines` (empty ones are skipped).
pub(crate) fn ndjson(lines: impl Stream<Item = Bytes> + Send + 'static) -> Response {
    body_of(lines, "application/x-ndjson")
}

/// A `text/event-stream` response of `events` (empty ones are skipped).
pub(crate) fn sse(events: impl Stream<Item = Bytes> + Send + 'static) -> Response {
    body_of(events, "text/event-stream")
}

/// What a background job (create, pull, push) reports.
pub(crate) enum Event<E> {
    /// A progress line.
    Progress(Progress),
    /// The end.
    Done(Result<(), E>),
}

/// The response of a job reporting on `rx`. Streaming, each [`Progress`] is one NDJSON line,
/// and an error before the first line gets a real status, a later one an `{"error": …}` line;
/// otherwise the answer is the last progress object (or the error). A channel closed without
/// `Done` (the job panicked) is an error saying `stopped`. `keep` lives as long as the
/// response (e.g. a guard that aborts the job when the client goes away).
pub(crate) async fn progress<E>(
    mut rx: mpsc::UnboundedReceiver<Event<E>>,
    stream: bool,
    stopped: &'static str,
    keep: impl Send + 'static,
) -> Result<Response, ApiError>
where
    E: Send + 'static,
    ApiError: From<E>,
{
    let (first, done) = match rx.recv().await {
        Some(Event::Progress(p)) => (p, false),
        Some(Event::Done(Err(e))) => return Err(e.into()),
        Some(Event::Done(Ok(()))) => (Progress::status("success"), true),
        None => return Err(ApiError::internal(stopped)),
    };
    if !stream {
        let mut last = first;
        if !done {
            loop {
                match rx.recv().await {
                    Some(Event::Progress(p)) => last = p,
                    Some(Event::Done(Err(e))) => return Err(e.into()),
                    Some(Event::Done(Ok(()))) => break,
                    None => return Err(ApiError::internal(stopped)),
                }
            }
        }
        drop(keep);
        return Ok(Json(last).into_response());
    }
    let first_line = futures::stream::once(async move { ndjson_line(&first) });
    // The stream ends after `Done`; `keep` travels with it.
    let rest = futures::stream::unfold((!done).then_some((rx, keep)), move |state| async move {
        let (mut rx, keep) = state?;
        match rx.recv().await {
            Some(Event::Progress(p)) => Some((ndjson_line(&p), Some((rx, keep)))),
            Some(Event::Done(Err(e))) => Some((error_line(ApiError::from(e).message), None)),
            Some(Event::Done(Ok(()))) => None,
            None => Some((error_line(stopped), None)),
        }
    });
    Ok(ndjson(first_line.chain(rest)))
}
