//! The HTTP API (spec §1) on axum: model management, and generation through the
//! [`crate::scheduler`] and its runner processes.
//!
//! [`router`] builds the routes (handlers in `routes/`, one file per group); [`serve`] runs
//! them on a listener. Generation requests share one pipeline (`completion.rs`); errors become
//! statuses and `{"error": …}` bodies in one place (`error.rs`); streaming bodies are built in
//! `stream.rs`. Blocking store work (hashing, GGUF validation, quantization) runs on tokio's
//! blocking pool; models run in child processes.

mod completion;
pub mod error;
pub mod guard;
pub mod model;
pub mod options;
mod routes;
mod stream;
pub mod thinking;
pub mod tools;

pub use error::{ApiError, OpenAiError};

use crate::config::Config;
use crate::scheduler::{self as sched, Scheduler};
use crate::store::Store;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::Response;
use axum::routing::{get, head, post};
use routes::{chat, embed, generate, models, openai, transfer};
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
    sched: Arc<Scheduler>,
    models: Arc<model::ModelCache>,
    guard: Arc<guard::Guard>,
    /// The registry client for `/api/pull` and `/api/push` (one per server, so concurrent pulls
    /// of a blob share one download), or why it could not be built.
    registry: Result<crate::registry::Registry, Arc<str>>,
    /// Where `/api/create` quantizes: in this process, or in a tool runner.
    quantizer: Arc<dyn crate::create::Quantizer>,
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
    /// starts (runners, and quantization in a tool runner) runs in child processes of the
    /// runner executable.
    pub fn for_binary(store: Store, config: &Config) -> ServerState {
        let mut st = ServerState::new(store, config);
        st.quantizer = Arc::new(sched::ToolQuantizer::new(
            st.sched.config().runner_exe.clone(),
        ));
        st
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
            models: Arc::new(model::ModelCache::new(config.compat)),
            guard: Arc::new(guard::Guard::from_config(config)),
            registry,
            quantizer: Arc::new(crate::create::InProcess),
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
            .map_err(|e| ApiError::internal(e.to_string()))
    }

    /// The scheduler.
    pub fn scheduler(&self) -> &Arc<Scheduler> {
        &self.sched
    }

    /// Where `/api/create` quantizes.
    pub fn quantizer(&self) -> Arc<dyn crate::create::Quantizer> {
        self.quantizer.clone()
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// The routes: model management (`/`, `/api/version`, `/api/create`, `/api/blobs/{digest}`,
/// `/api/tags`, `/api/show`, `/api/copy`, `/api/delete`, `/api/pull`, `/api/push`), generation
/// (`/api/generate`, `/api/chat`, `/api/embed`, `/api/embeddings`, `/api/ps`) and the OpenAI
/// routes under `/v1`.
pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/", get(models::root))
        .route("/api/version", get(models::version))
        .route("/api/create", post(models::create_model))
        .route(
            "/api/blobs/{digest}",
            head(models::head_blob).post(models::post_blob),
        )
        .route("/api/tags", get(models::tags))
        .route("/api/show", post(models::show))
        .route("/api/copy", post(models::copy))
        .route("/api/delete", axum::routing::delete(models::delete))
        .route("/api/pull", post(transfer::pull))
        .route("/api/push", post(transfer::push))
        .route("/api/generate", post(generate::generate))
        .route("/api/chat", post(chat::chat))
        .route("/api/embed", post(embed::embed))
        .route("/api/embeddings", post(embed::embeddings))
        .route("/api/ps", get(models::ps))
        .route("/v1/models", get(openai::models))
        .route("/v1/models/{*id}", get(openai::model))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/completions", post(openai::completions))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(axum::middleware::map_response(error::json_rejections))
        .layer(axum::middleware::from_fn(refuse_oversized))
        .layer(axum::middleware::from_fn_with_state(
            state.guard.clone(),
            guard::check,
        ))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// A JSON body that says it is over [`MAX_JSON_BODY`] is refused (413) before any handler, but
/// read to its end first (up to [`DRAIN_MAX`], then dropped as it arrives): answering while the
/// client still sends makes the kernel reset the connection, and the client sees a broken pipe
/// instead of the error. Blob uploads stream and are exempt.
async fn refuse_oversized(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use axum::response::IntoResponse as _;
    use futures::StreamExt as _;
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let over = declared.is_some_and(|n| n > MAX_JSON_BODY as u64);
    if !over || req.uri().path().starts_with("/api/blobs/") {
        return next.run(req).await;
    }
    if declared.is_some_and(|n| n <= DRAIN_MAX) {
        let mut body = req.into_body().into_data_stream();
        while let Some(Ok(_)) = body.next().await {}
    }
    ApiError::too_large().into_response()
}

/// The most of an oversized body [`refuse_oversized`] reads before answering.
const DRAIN_MAX: u64 = 256 << 20;

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
