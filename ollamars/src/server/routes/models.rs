//! Model management (spec §1.10–1.14, §1.16): `/`, `/api/version`, `/api/create`,
//! `/api/blobs/{digest}`, `/api/tags`, `/api/show`, `/api/copy`, `/api/delete`, `/api/ps`.

use crate::api::{
    CopyRequest, ListResponse, ModelRequest, PsModel, PsResponse, ShowResponse, VersionResponse,
};
use crate::create::{self, CreateError, CreateRequest};
use crate::models::{self, rfc3339};
use crate::server::error::{ApiError, Done, join_error, parse_body, parse_name};
use crate::server::stream::{self, Event};
use crate::server::{ServerState, VERSION};
use crate::store::{BlobWrite, Digest, StoreError};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::response::Response;
use futures::StreamExt;
use std::time::{Duration, SystemTime};

/// `GET /`.
pub(in crate::server) async fn root() -> &'static str {
    "Ollama is running"
}

/// `GET /api/version`.
pub(in crate::server) async fn version() -> Json<VersionResponse> {
    Json(VersionResponse {
        version: VERSION.to_string(),
    })
}

/// `HEAD /api/blobs/{digest}`.
pub(in crate::server) async fn head_blob(
    State(st): State<ServerState>,
    Path(digest): Path<String>,
) -> Result<Done, ApiError> {
    let store = st.store.clone();
    let d = Digest::parse(&digest)?;
    let exists = tokio::task::spawn_blocking(move || store.has_blob(d.as_ref()))
        .await
        .map_err(join_error)??;
    if exists {
        Ok(Done::Ok)
    } else {
        Err(ApiError::not_found(format!("blob \"{digest}\" not found")))
    }
}

/// `POST /api/blobs/{digest}`: the body, streamed into the store (201 when new).
pub(in crate::server) async fn post_blob(
    State(st): State<ServerState>,
    Path(digest): Path<String>,
    body: Body,
) -> Result<Done, ApiError> {
    let d = Digest::parse(&digest)?;
    if st.store.has_blob(d.as_ref())? {
        return Ok(Done::Ok);
    }
    let stream = body
        .into_data_stream()
        .map(|r| r.map_err(std::io::Error::other));
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    let store = st.store.clone();
    let written = tokio::task::spawn_blocking(move || store.write_blob(d.as_ref(), reader))
        .await
        .map_err(join_error)??;
    Ok(match written {
        BlobWrite::Created(_) => Done::Created,
        _ => Done::Ok,
    })
}

/// `POST /api/create`: progress lines while the model is made on the blocking pool.
pub(in crate::server) async fn create_model(
    State(st): State<ServerState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: CreateRequest = parse_body(&body)?;
    let stream = req.stream.unwrap_or(true);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Event<CreateError>>();
    let store = st.store.clone();
    let quantizer = st.quantizer();
    tokio::task::spawn_blocking(move || {
        let ptx = tx.clone();
        let r = create::create_with(&store, &req, quantizer.as_ref(), &mut |p| {
            let _ = ptx.send(Event::Progress(p));
        });
        let _ = tx.send(Event::Done(r.map(|_| ())));
    });
    stream::progress(
        rx,
        stream,
        "create failed: the worker stopped unexpectedly",
        (),
    )
    .await
}

/// `GET /api/tags`.
pub(in crate::server) async fn tags(
    State(st): State<ServerState>,
) -> Result<Json<ListResponse>, ApiError> {
    let store = st.store.clone();
    let v = tokio::task::spawn_blocking(move || models::list(&store))
        .await
        .map_err(join_error)??;
    Ok(Json(v))
}

/// `POST /api/show`.
pub(in crate::server) async fn show(
    State(st): State<ServerState>,
    body: Bytes,
) -> Result<Json<ShowResponse>, ApiError> {
    let req: ModelRequest = parse_body(&body)?;
    let name = parse_name(req.raw_name())?;
    let store = st.store.clone();
    let verbose = req.verbose;
    let compat = st.models.compat();
    let v = tokio::task::spawn_blocking(move || models::show(&store, &name, verbose, compat))
        .await
        .map_err(join_error)?
        .map_err(ApiError::from)
        .map_err(|e| e.model_not_found_as(req.raw_name()))?;
    Ok(Json(v))
}

/// `POST /api/copy`.
pub(in crate::server) async fn copy(
    State(st): State<ServerState>,
    body: Bytes,
) -> Result<Done, ApiError> {
    let req: CopyRequest = parse_body(&body)?;
    let src = parse_name(&req.source)?;
    let dst = parse_name(&req.destination)?;
    let store = st.store.clone();
    tokio::task::spawn_blocking(move || match store.copy(&src, &dst) {
        Err(StoreError::ModelNotFound(_)) => Err(ApiError::not_found(format!(
            "model \"{}\" not found",
            req.source
        ))),
        r => r.map_err(ApiError::from),
    })
    .await
    .map_err(join_error)??;
    Ok(Done::Ok)
}

/// `DELETE /api/delete`.
pub(in crate::server) async fn delete(
    State(st): State<ServerState>,
    body: Bytes,
) -> Result<Done, ApiError> {
    let req: ModelRequest = parse_body(&body)?;
    let name = parse_name(req.raw_name())?;
    let store = st.store.clone();
    let prune = st.prune;
    tokio::task::spawn_blocking(move || store.delete(&name, prune))
        .await
        .map_err(join_error)?
        .map_err(ApiError::from)
        .map_err(|e| e.model_not_found_as(req.raw_name()))?;
    Ok(Done::Ok)
}

/// `GET /api/ps`.
pub(in crate::server) async fn ps(State(st): State<ServerState>) -> Json<PsResponse> {
    let models = st
        .sched
        .ps()
        .into_iter()
        .map(|e| {
            // "Forever" is shown as a date far in the future, as Ollama does.
            let expires = e
                .expires_at
                .unwrap_or_else(|| SystemTime::now() + Duration::from_secs(292 * 365 * 86400));
            PsModel {
                name: e.model.display.clone(),
                model: e.model.display,
                size: e.size,
                digest: e.model.digest,
                details: e.model.details,
                expires_at: rfc3339(expires),
                size_vram: e.size_vram,
                context_length: e.context_length,
            }
        })
        .collect();
    Json(PsResponse { models })
}
