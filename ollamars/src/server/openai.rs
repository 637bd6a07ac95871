//! The first OpenAI-compatible endpoints (spec §2.3–2.4): `GET /v1/models`,
//! `GET /v1/models/{id}` (ids may contain `/`) and `POST /v1/embeddings` (float or base64),
//! with OpenAI-shaped errors: `{"error": {"message", "type", "param", "code"}}`.

use super::generate::{embed_vectors, model_info_for_embed};
use super::{ApiError, ServerState, join_error, parse_body};
use crate::name::ModelName;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// An error in OpenAI's shape.
pub struct OpenAiError(ApiError);

impl From<ApiError> for OpenAiError {
    fn from(e: ApiError) -> OpenAiError {
        OpenAiError(e)
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let kind = if self.0.status.is_server_error() {
            "api_error"
        } else {
            "invalid_request_error"
        };
        let code = (self.0.status == StatusCode::NOT_FOUND).then_some("model_not_found");
        let body = json!({"error": {"message": self.0.message, "type": kind, "param": null, "code": code}});
        (self.0.status, Json(body)).into_response()
    }
}

fn model_object(store_entry: &Value) -> Value {
    let id = store_entry["model"].as_str().unwrap_or_default();
    let created = store_entry["modified_at"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or(0, |t| t.timestamp());
    let owner = ModelName::parse(id)
        .map(|n| n.namespace().to_string())
        .unwrap_or_else(|_| "library".into());
    json!({"id": id, "object": "model", "created": created, "owned_by": owner})
}

async fn listing(st: &ServerState) -> Result<Vec<Value>, ApiError> {
    let store = st.store.clone();
    let v = tokio::task::spawn_blocking(move || crate::models::list(&store))
        .await
        .map_err(join_error)??;
    Ok(v["models"].as_array().cloned().unwrap_or_default())
}

/// `GET /v1/models`.
pub(super) async fn models(State(st): State<ServerState>) -> Result<Json<Value>, OpenAiError> {
    let data: Vec<Value> = listing(&st).await?.iter().map(model_object).collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

/// `GET /v1/models/{id}`: `id` as listed (`smol:latest`), or without the tag.
pub(super) async fn model(
    State(st): State<ServerState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, OpenAiError> {
    let want = ModelName::parse(&id).ok();
    listing(&st)
        .await?
        .iter()
        .find(|m| {
            let name = m["model"].as_str().unwrap_or_default();
            name == id
                || want.as_ref().is_some_and(|w| {
                    ModelName::parse(name).is_ok_and(|n| n.display_short() == w.display_short())
                })
        })
        .map(|m| Json(model_object(m)))
        .ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, format!("model \"{id}\" not found")).into()
        })
}

#[derive(Debug, Deserialize)]
struct EmbeddingsRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    input: Value,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<i64>,
    /// Ollama options as extra body fields (beyond Ollama, #5356), e.g. `num_ctx`.
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// `POST /v1/embeddings`.
pub(super) async fn embeddings(
    State(st): State<ServerState>,
    body: Bytes,
) -> Result<Json<Value>, OpenAiError> {
    let req: EmbeddingsRequest = parse_body(&body)?;
    let inputs: Vec<String> = match &req.input {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| ApiError::bad("invalid input type: only strings are supported"))?,
        _ => {
            return Err(
                ApiError::bad("invalid input: a string or a list of strings is required").into(),
            );
        }
    };
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::bad(format!(
                "invalid encoding_format {other:?}: use \"float\" or \"base64\""
            ))
            .into());
        }
    };
    if req.dimensions.is_some_and(|d| d < 1) {
        return Err(ApiError::bad("dimensions must be a positive number").into());
    }
    let info = model_info_for_embed(&st, &req.model).await?;
    let (vectors, count) = embed_vectors(&st, &info, &req.extra, inputs, req.dimensions).await?;
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "embedding": embedding, "index": i})
        })
        .collect();
    Ok(Json(
        json!({"object": "list", "data": data, "model": req.model,
        "usage": {"prompt_tokens": count, "total_tokens": count}}),
    ))
}
