//! The HTTP API (spec §1) on axum: model management, and generation through the scheduler and
//! its runner processes.
//!
//! [`router`] builds the routes; [`serve`] runs them on a listener. Errors become
//! `{"error": "..."}` with Ollama's status codes in one place, [`ApiError`]. Blocking store work
//! (hashing, GGUF validation, quantization) runs on tokio's blocking pool; models run in child
//! processes ([`sched`], [`runner_client`]).

mod generate;
pub mod guard;
pub mod keepalive;
pub mod model;
pub mod openai;
pub mod options;
pub mod prompt;
pub mod runner_client;
pub mod sched;
pub mod thinking;
pub mod tools;
mod transfer;

use crate::config::Config;
use crate::create::{self, CreateError, CreateRequest, Progress};
use crate::models::{self, ShowError};
use crate::name::ModelName;
use crate::store::{BlobWrite, Digest, Store, StoreError};
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, head, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::sync::Arc;

/// The largest JSON request body accepted (blob uploads are streamed and have no limit).
pub const MAX_JSON_BODY: usize = 32 << 20;

/// The version reported by `GET /api/version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Shared state of the HTTP handlers.
#[derive(Debug, Clone)]
pub struct ServerState {
    store: Arc<Store>,
    prune: bool,
    sched: Arc<sched::Scheduler>,
    models: Arc<model::ModelCache>,
    guard: Arc<guard::Guard>,
    /// The registry client for `/api/pull` and `/api/push` (one per server, so concurrent pulls
    /// of a blob share one download), or why it could not be built.
    registry: Result<crate::registry::Registry, Arc<str>>,
}

impl ServerState {
    /// State over `store` configured by `config`: the scheduler's settings, the registry
    /// client's, the CORS origins, and pruning (deleting a model removes its unreferenced
    /// blobs unless `OLLAMA_NOPRUNE`). Runners are started from this executable.
    pub fn new(store: Store, config: &Config) -> ServerState {
        let exe = std::env::current_exe().unwrap_or_else(|_| "ollamars".into());
        ServerState::with_scheduler(store, config, sched::SchedConfig::from_config(config, exe))
    }

    /// As [`new`](Self::new), for the `ollamars` binary itself: llama.cpp work that the server
    /// starts (runners, quantization) runs in child processes of this executable.
    pub fn for_binary(store: Store, config: &Config) -> ServerState {
        if let Ok(exe) = std::env::current_exe() {
            crate::create::quantize_in_child(exe);
        }
        ServerState::new(store, config)
    }

    /// State with explicit scheduler settings (e.g. another runner executable); the rest from
    /// `config` ([`crate::registry::RegistryConfig::from_config`] for the registry client).
    pub fn with_scheduler(store: Store, config: &Config, cfg: sched::SchedConfig) -> ServerState {
        let rc = crate::registry::RegistryConfig::from_config(config);
        let registry = crate::registry::Registry::new(store.clone(), rc).map_err(|e| {
            tracing::warn!("the registry client is unavailable: {e}");
            Arc::<str>::from(format!("the registry client is unavailable: {e}"))
        });
        ServerState {
            store: Arc::new(store),
            prune: !config.noprune,
            sched: sched::Scheduler::new(cfg),
            models: Arc::default(),
            guard: Arc::new(guard::Guard::from_config(config)),
            registry,
        }
    }

    /// Replaces the registry client with one over this state's store and `config` (e.g. smaller
    /// parts or timeouts in tests).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn with_registry_config(
        mut self,
        config: crate::registry::RegistryConfig,
    ) -> Result<ServerState, crate::registry::RegistryError> {
        self.registry = Ok(crate::registry::Registry::new(
            (*self.store).clone(),
            config,
        )?);
        Ok(self)
    }

    /// The registry client.
    ///
    /// # Errors
    /// A 500 when it could not be built at startup.
    pub fn registry(&self) -> Result<&crate::registry::Registry, ApiError> {
        self.registry
            .as_ref()
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
    }

    /// The scheduler.
    pub fn scheduler(&self) -> &Arc<sched::Scheduler> {
        &self.sched
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// An error response: a status and Ollama's `{"error": message}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The `error` text.
    pub message: String,
}

impl ApiError {
    /// An error with a status and text.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// The one place that maps library errors to HTTP statuses.
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
            other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        }
    }
}

pub(crate) fn join_error(e: tokio::task::JoinError) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// Parses a JSON body with Ollama's errors: `missing request body` when empty, else the
/// decoder's message.
pub(crate) fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad("missing request body"));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad(e.to_string()))
}

pub(crate) fn parse_name(s: &str) -> Result<ModelName, ApiError> {
    ModelName::parse(s).map_err(|_| ApiError::bad("invalid model name"))
}

/// The routes: model management (`/`, `/api/version`, `/api/create`, `/api/blobs/{digest}`,
/// `/api/tags`, `/api/show`, `/api/copy`, `/api/delete`, `/api/pull`, `/api/push`), generation
/// (`/api/generate`, `/api/chat`, `/api/embed`, `/api/embeddings`, `/api/ps`) and the OpenAI
/// routes under `/v1`.
pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/api/version", get(version))
        .route("/api/create", post(create_model))
        .route("/api/blobs/{digest}", head(head_blob).post(post_blob))
        .route("/api/tags", get(tags))
        .route("/api/show", post(show))
        .route("/api/copy", post(copy))
        .route("/api/delete", axum::routing::delete(delete))
        .route("/api/pull", post(transfer::pull))
        .route("/api/push", post(transfer::push))
        .route("/api/generate", post(generate::generate))
        .route("/api/chat", post(generate::chat))
        .route("/api/embed", post(generate::embed))
        .route("/api/embeddings", post(generate::embeddings))
        .route("/api/ps", get(generate::ps))
        .route("/v1/models", get(openai::models))
        .route("/v1/models/{*id}", get(openai::model))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/completions", post(openai::completions))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(axum::middleware::from_fn_with_state(
            state.guard.clone(),
            guard::check,
        ))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// Serves [`router`] on `listener` until the process ends or the server fails.
pub async fn serve(listener: tokio::net::TcpListener, state: ServerState) -> std::io::Result<()> {
    state.guard.set_listener(listener.local_addr()?);
    axum::serve(listener, router(state)).await
}

/// Serves [`router`] on `listener` until `shutdown` completes, then finishes the requests in
/// flight (graceful shutdown, e.g. on Ctrl-C).
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    state: ServerState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sched = state.sched.clone();
    let local = listener.local_addr()?;
    state.guard.set_listener(local);
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Stop the runners first: streams in flight end with an error line, so the
            // graceful shutdown does not wait for long generations.
            sched.shutdown().await;
        })
        .await
}

/// One log line per request, like Ollama's: status, time to the response head, method, path.
async fn log_request(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let t0 = std::time::Instant::now();
    let resp = next.run(req).await;
    tracing::info!(
        "| {} | {:>12?} | {} \"{}\"",
        resp.status().as_u16(),
        t0.elapsed(),
        method,
        path
    );
    resp
}

async fn root() -> &'static str {
    "Ollama is running"
}

async fn version() -> Json<Value> {
    Json(json!({ "version": VERSION }))
}

async fn head_blob(
    State(st): State<ServerState>,
    Path(digest): Path<String>,
) -> Result<StatusCode, ApiError> {
    let store = st.store.clone();
    let d = Digest::parse(&digest)?;
    let exists = tokio::task::spawn_blocking(move || store.has_blob(d.as_ref()))
        .await
        .map_err(join_error)??;
    if exists {
        Ok(StatusCode::OK)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("blob \"{digest}\" not found"),
        ))
    }
}

async fn post_blob(
    State(st): State<ServerState>,
    Path(digest): Path<String>,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let d = Digest::parse(&digest)?;
    if st.store.has_blob(d.as_ref())? {
        return Ok(StatusCode::OK);
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
        BlobWrite::Created(_) => StatusCode::CREATED,
        _ => StatusCode::OK,
    })
}

fn aborted() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "create failed: the worker stopped unexpectedly",
    )
}

enum Event {
    Progress(Progress),
    Done(Result<(), CreateError>),
}

pub(crate) fn ndjson_line(v: &impl serde::Serialize) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

async fn create_model(State(st): State<ServerState>, body: Bytes) -> Result<Response, ApiError> {
    let req: CreateRequest = parse_body(&body)?;
    let stream = req.stream.unwrap_or(true);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let store = st.store.clone();
    tokio::task::spawn_blocking(move || {
        let ptx = tx.clone();
        let r = create::create(&store, &req, &mut |p| {
            let _ = ptx.send(Event::Progress(p));
        });
        let _ = tx.send(Event::Done(r.map(|_| ())));
    });
    if !stream {
        let mut last = None;
        loop {
            match rx.recv().await {
                Some(Event::Progress(p)) => last = Some(p),
                Some(Event::Done(Err(e))) => return Err(e.into()),
                Some(Event::Done(Ok(()))) => break,
                None => return Err(aborted()),
            }
        }
        let last = last.unwrap_or_else(|| Progress::status("success"));
        return Ok(Json(last).into_response());
    }
    // Errors before the first progress line get a real status code.
    let first = match rx.recv().await {
        Some(Event::Progress(p)) => p,
        Some(Event::Done(Err(e))) => return Err(e.into()),
        Some(Event::Done(Ok(()))) => Progress::status("success"),
        None => return Err(aborted()),
    };
    let first_line = futures::stream::once(async move { ndjson_line(&first) });
    // The stream ends after `Done`; a channel closed without it (a panic) ends with an error.
    let rest = futures::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        let error_line = |msg: String| ndjson_line(&json!({ "error": msg }));
        match rx.recv().await {
            Some(Event::Progress(p)) => Some((ndjson_line(&p), Some(rx))),
            Some(Event::Done(Err(e))) => Some((error_line(e.to_string()), None)),
            Some(Event::Done(Ok(()))) => None,
            None => Some((error_line(aborted().message), None)),
        }
    });
    let body = Body::from_stream(
        first_line
            .chain(rest)
            .map(Ok::<Bytes, std::convert::Infallible>),
    );
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

#[derive(Deserialize)]
struct ModelRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    verbose: bool,
}

impl ModelRequest {
    /// The name as the client wrote it (`model`, else `name`).
    fn raw_name(&self) -> String {
        self.model
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(self.name.as_deref())
            .unwrap_or_default()
            .to_string()
    }

    fn name(&self) -> Result<ModelName, ApiError> {
        parse_name(&self.raw_name())
    }
}

/// Ollama's 404 names the model as the client wrote it: `model '<name>' not found`.
fn not_found_as_written(raw: &str) -> impl Fn(ApiError) -> ApiError + '_ {
    move |e| {
        if e.status == StatusCode::NOT_FOUND {
            ApiError::new(StatusCode::NOT_FOUND, format!("model '{raw}' not found"))
        } else {
            e
        }
    }
}

async fn tags(State(st): State<ServerState>) -> Result<Json<Value>, ApiError> {
    let store = st.store.clone();
    let v = tokio::task::spawn_blocking(move || models::list(&store))
        .await
        .map_err(join_error)??;
    Ok(Json(v))
}

async fn show(State(st): State<ServerState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let req: ModelRequest = parse_body(&body)?;
    let name = req.name()?;
    let store = st.store.clone();
    let verbose = req.verbose;
    let v = tokio::task::spawn_blocking(move || models::show(&store, &name, verbose))
        .await
        .map_err(join_error)?
        .map_err(ApiError::from)
        .map_err(not_found_as_written(&req.raw_name()))?;
    Ok(Json(v))
}

#[derive(Deserialize)]
struct CopyRequest {
    #[serde(default)]
    source: String,
    #[serde(default)]
    destination: String,
}

async fn copy(State(st): State<ServerState>, body: Bytes) -> Result<StatusCode, ApiError> {
    let req: CopyRequest = parse_body(&body)?;
    let src = parse_name(&req.source)?;
    let dst = parse_name(&req.destination)?;
    let store = st.store.clone();
    tokio::task::spawn_blocking(move || match store.copy(&src, &dst) {
        Err(StoreError::ModelNotFound(_)) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("model \"{}\" not found", req.source),
        )),
        r => r.map_err(ApiError::from),
    })
    .await
    .map_err(join_error)??;
    Ok(StatusCode::OK)
}

async fn delete(State(st): State<ServerState>, body: Bytes) -> Result<StatusCode, ApiError> {
    let req: ModelRequest = parse_body(&body)?;
    let name = req.name()?;
    let store = st.store.clone();
    let prune = st.prune;
    tokio::task::spawn_blocking(move || store.delete(&name, prune))
        .await
        .map_err(join_error)?
        .map_err(ApiError::from)
        .map_err(not_found_as_written(&req.raw_name()))?;
    Ok(StatusCode::OK)
}
