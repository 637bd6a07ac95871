//! `POST /api/chat` (spec §1.5).

use crate::api::ChatRequest;
use crate::server::ServerState;
use crate::server::completion::{Kind, respond, start_chat};
use crate::server::error::{ApiError, parse_body};
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use std::time::Instant;

/// `POST /api/chat`.
pub(in crate::server) async fn chat(
    State(st): State<ServerState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let req = parse_body::<ChatRequest>(&body)?.validate()?;
    let (stream, model) = (req.run.stream, req.run.model.clone());
    let start = start_chat(&st, req, started).await?;
    respond(start, Kind::Chat, &model, stream).await
}
