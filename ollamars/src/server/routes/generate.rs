//! `POST /api/generate` (spec §1.4).

use crate::api::GenerateRequest;
use crate::server::ServerState;
use crate::server::completion::{Kind, respond, start_generate};
use crate::server::error::{ApiError, parse_body};
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use std::time::Instant;

/// `POST /api/generate`.
pub(in crate::server) async fn generate(
    State(st): State<ServerState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let req = parse_body::<GenerateRequest>(&body)?.validate()?;
    let (stream, model) = (req.run.stream, req.run.model.clone());
    let start = start_generate(&st, req, started).await?;
    respond(start, Kind::Generate, &model, stream).await
}
