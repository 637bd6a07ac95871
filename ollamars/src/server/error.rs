//! The one place where errors become HTTP statuses and bodies: Ollama's `{"error": "…"}`, and
//! OpenAI's `{"error": {"message", "type", "param", "code"}}` for the `/v1` routes. Libraries
//! report typed errors (or kinds); the `From` impls here choose the status. Success statuses
//! other than 200 are chosen here too ([`Done`]), so that `StatusCode` appears nowhere else.

use crate::api::validate::RequestError;
use crate::api::{self, openai};
use crate::create::CreateError;
use crate::models::ShowError;
use crate::name::ModelName;
use crate::registry::RegistryError;
use crate::runner::proto::{EngineError, ErrorKind};
use crate::scheduler::SchedError;
use crate::store::StoreError;
use axum::Json;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

/// An error response: a status and Ollama's `{"error": message}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The `error` text.
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// The request's fault (400).
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// Something is missing (404).
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// The server's fault (500).
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// Refused by the host and origin guard (403).
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    /// Too busy now (503).
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// Whether this is a 404.
    pub fn is_not_found(&self) -> bool {
        self.status == StatusCode::NOT_FOUND
    }

    /// Ollama's 404 names the model as the client wrote it: `model '<name>' not found`.
    pub fn model_not_found_as(self, raw: &str) -> ApiError {
        if self.is_not_found() {
            ApiError::not_found(format!("model '{raw}' not found"))
        } else {
            self
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = api::ErrorResponse {
            error: self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

/// A success without a body other than 200: `201 Created` for a new blob, `204 No Content` for
/// a CORS preflight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// 200.
    Ok,
    /// 201.
    Created,
    /// 204.
    NoContent,
}

impl IntoResponse for Done {
    fn into_response(self) -> Response {
        match self {
            Done::Ok => StatusCode::OK,
            Done::Created => StatusCode::CREATED,
            Done::NoContent => StatusCode::NO_CONTENT,
        }
        .into_response()
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> ApiError {
        ApiError::bad(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let status = match &e {
            StoreError::InvalidDigest
            | StoreError::DigestMismatch { .. }
            | StoreError::Name(_)
            | StoreError::InvalidManifest(_) => StatusCode::BAD_REQUEST,
            StoreError::ModelNotFound(_) | StoreError::BlobNotFound(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<CreateError> for ApiError {
    fn from(e: CreateError) -> ApiError {
        let status = match &e {
            CreateError::ModelNotFound(_) => StatusCode::NOT_FOUND,
            e if e.is_client_error() => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<ShowError> for ApiError {
    fn from(e: ShowError) -> ApiError {
        match e {
            ShowError::Store(s) => s.into(),
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// A non-streaming `/api/pull` or `/api/push` (or an error before the first progress line):
/// 400 for a bad name or an `http` name without `insecure`, 404 when pushing a model that is
/// not in the store, 507 when the disk is full, and Ollama's 500 for everything else
/// (registry errors included, e.g. `pull model manifest: file does not exist`).
impl From<&RegistryError> for ApiError {
    fn from(e: &RegistryError) -> ApiError {
        fn status(e: &RegistryError) -> StatusCode {
            match e {
                RegistryError::InvalidName(_) | RegistryError::InsecureProtocol => {
                    StatusCode::BAD_REQUEST
                }
                RegistryError::LocalManifest(StoreError::ModelNotFound(_)) => StatusCode::NOT_FOUND,
                RegistryError::NoSpace => StatusCode::INSUFFICIENT_STORAGE,
                RegistryError::Shared(e) => status(e),
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            }
        }
        ApiError::new(status(e), e.to_string())
    }
}

impl From<SchedError> for ApiError {
    fn from(e: SchedError) -> ApiError {
        let status = match e {
            SchedError::QueueFull | SchedError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            SchedError::Spawn(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        match e.kind {
            ErrorKind::BadRequest => ApiError::bad(e.message),
            ErrorKind::Internal => ApiError::internal(e.message),
        }
    }
}

/// A blocking task that panicked or was cancelled.
pub(crate) fn join_error(e: tokio::task::JoinError) -> ApiError {
    ApiError::internal(e.to_string())
}

/// Parses a JSON body with Ollama's errors: `missing request body` when empty, else the
/// decoder's message.
pub(crate) fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad("missing request body"));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad(e.to_string()))
}

/// Turns axum's plain-text answer to a body over the limit (`DefaultBodyLimit`) into a JSON
/// error with the same status (413), so that clients always get `{"error": …}`.
pub(crate) async fn json_rejections(res: Response) -> Response {
    let is_json = res
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if res.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        return ApiError::too_large().into_response();
    }
    res
}

impl ApiError {
    /// A request body over [`super::MAX_JSON_BODY`] (413).
    pub(crate) fn too_large() -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body too large: at most {} MiB (images at most {} MiB each)",
                super::MAX_JSON_BODY >> 20,
                crate::media::Limits::DEFAULT_MAX_BYTES >> 20
            ),
        )
    }
}

/// A model name from a request (400 `invalid model name`).
pub(crate) fn parse_name(s: &str) -> Result<ModelName, ApiError> {
    ModelName::parse(s).map_err(|_| ApiError::bad("invalid model name"))
}

/// An error in OpenAI's shape (the `/v1` routes).
#[derive(Debug)]
pub struct OpenAiError(pub ApiError);

impl From<ApiError> for OpenAiError {
    fn from(e: ApiError) -> OpenAiError {
        OpenAiError(e)
    }
}

/// The library errors a `/v1` handler meets convert straight to [`OpenAiError`].
macro_rules! openai_from {
    ($($t:ty),*) => {$(
        impl From<$t> for OpenAiError {
            fn from(e: $t) -> OpenAiError {
                OpenAiError(ApiError::from(e))
            }
        }
    )*};
}
openai_from!(RequestError, StoreError, SchedError, EngineError);

impl OpenAiError {
    /// The body, also sent as an SSE `data:` line when a stream fails.
    pub fn body(
        message: String,
        status_is_server_error: bool,
        not_found: bool,
    ) -> openai::ErrorResponse {
        openai::ErrorResponse {
            error: openai::ErrorBody {
                message,
                kind: if status_is_server_error {
                    "api_error"
                } else {
                    "invalid_request_error"
                }
                .into(),
                param: None,
                code: not_found.then(|| "model_not_found".into()),
            },
        }
    }

    /// The body of an error that ends a stream (always `api_error`).
    pub fn stream_body(message: String) -> openai::ErrorResponse {
        OpenAiError::body(message, true, false)
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let ApiError { status, message } = self.0;
        let body = OpenAiError::body(
            message,
            status.is_server_error(),
            status == StatusCode::NOT_FOUND,
        );
        (status, Json(body)).into_response()
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> ApiError {
        ApiError::from(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statuses of the registry's errors (a non-streaming pull or push): a bad name or
    /// `http` without `insecure` is the client's, a missing local model 404, a full disk 507.
    #[test]
    fn registry_statuses() {
        let status = |e: RegistryError| ApiError::from(e).status;
        assert_eq!(
            status(RegistryError::InsecureProtocol),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(RegistryError::LocalManifest(StoreError::ModelNotFound(
                "m".into()
            ))),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(RegistryError::NoSpace),
            StatusCode::INSUFFICIENT_STORAGE
        );
        assert_eq!(
            status(RegistryError::Shared(std::sync::Arc::new(
                RegistryError::NoSpace
            ))),
            StatusCode::INSUFFICIENT_STORAGE
        );
        assert_eq!(
            status(RegistryError::Stalled),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn bodies_are_ollamas_and_openais() {
        let e = ApiError::not_found("model 'x' not found");
        let r = e.clone().into_response();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let body = OpenAiError::body(e.message, false, true);
        assert_eq!(
            serde_json::to_value(body).unwrap(),
            serde_json::json!({"error": {"message": "model 'x' not found",
                "type": "invalid_request_error", "param": null, "code": "model_not_found"}})
        );
    }
}
