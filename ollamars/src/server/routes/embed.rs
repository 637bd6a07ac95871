//! `POST /api/embed` and `POST /api/embeddings` (spec §1.8, §1.9), and the embedding step the
//! OpenAI route shares.

use crate::api::{EmbedRequest, EmbedResponse, EmbeddingsRequest, EmbeddingsResponse, KeepAlive};
use crate::runner::proto::{Embed, Embedded};
use crate::server::ServerState;
use crate::server::completion::{model_info, options_for};
use crate::server::error::{ApiError, parse_body};
use crate::server::model::ModelInfo;
use crate::server::options::Options;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn embed_not_found(m: &str) -> String {
    format!("model \"{m}\" not found, try pulling it first")
}

/// The model of an embedding request, with the embed endpoints' 404 text.
pub(in crate::server) async fn model_for_embed(
    st: &ServerState,
    model: &str,
) -> Result<Arc<ModelInfo>, ApiError> {
    model_info(st, model, embed_not_found).await
}

/// Embeds `inputs` on a runner of the model; also returns how long getting the runner took.
async fn run_embed(
    st: &ServerState,
    info: &ModelInfo,
    opts: &Options,
    keep_alive: Option<KeepAlive>,
    job: Embed,
) -> Result<(Embedded, Duration), ApiError> {
    let started = Instant::now();
    let lease = st
        .sched
        .acquire(&info.model, &opts.load, keep_alive)
        .await?;
    let load = started.elapsed();
    if job.inputs.is_empty() {
        return Ok((Embedded::default(), load));
    }
    Ok((lease.proc().call(job).await?, load))
}

/// `dimensions`: each vector cut to its first `d` values and normalised again.
fn cut_dimensions(vectors: &mut [Vec<f32>], d: Option<usize>) {
    let Some(d) = d else {
        return;
    };
    for v in vectors {
        if d < v.len() {
            v.truncate(d);
            *v = llama::normalize_l2(v);
        }
    }
}

/// `POST /api/embed`.
pub(in crate::server) async fn embed(
    State(st): State<ServerState>,
    body: Bytes,
) -> Result<Json<EmbedResponse>, ApiError> {
    let started = Instant::now();
    let req = parse_body::<EmbedRequest>(&body)?.validate()?;
    let info = model_for_embed(&st, &req.model).await?;
    let opts = options_for(&st, &info, req.options.as_ref())?;
    let job = Embed {
        inputs: req.inputs,
        truncate: req.truncate,
        normalize: true,
    };
    let (mut e, load) = run_embed(&st, &info, &opts, req.keep_alive, job).await?;
    cut_dimensions(&mut e.vectors, req.dimensions);
    Ok(Json(EmbedResponse {
        model: req.model,
        embeddings: e.vectors,
        total_duration: started.elapsed().as_nanos() as u64,
        load_duration: load.as_nanos() as u64,
        prompt_eval_count: e.prompt_eval_count,
    }))
}

/// Normalised embeddings of `inputs` (cut to `dimensions`) and the tokens evaluated. `extra`
/// holds Ollama's fields given beside an OpenAI request: options such as `num_ctx`,
/// `keep_alive`, `truncate`.
pub(in crate::server) async fn embed_vectors(
    st: &ServerState,
    info: &ModelInfo,
    extra: &Map<String, Value>,
    inputs: Vec<String>,
    dimensions: Option<usize>,
) -> Result<Embedded, ApiError> {
    let keep_alive = KeepAlive::from_json(extra.get("keep_alive").unwrap_or(&Value::Null))
        .map_err(ApiError::bad)?;
    let options: Map<String, Value> = match extra.get("options") {
        Some(Value::Object(o)) => o.clone(),
        _ => extra.clone(),
    };
    let opts = options_for(st, info, Some(&options))?;
    let truncate = extra
        .get("truncate")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let job = Embed {
        inputs,
        truncate,
        normalize: true,
    };
    let (mut e, _) = run_embed(st, info, &opts, keep_alive, job).await?;
    cut_dimensions(&mut e.vectors, dimensions);
    Ok(e)
}

/// `POST /api/embeddings` (legacy: one prompt, not normalised).
pub(in crate::server) async fn embeddings(
    State(st): State<ServerState>,
    body: Bytes,
) -> Result<Json<EmbeddingsResponse>, ApiError> {
    let req: EmbeddingsRequest = parse_body(&body)?;
    let info = model_for_embed(&st, &req.model).await?;
    let opts = options_for(&st, &info, req.options.as_ref())?;
    let inputs = if req.prompt.is_empty() {
        Vec::new()
    } else {
        vec![req.prompt]
    };
    let job = Embed {
        inputs,
        truncate: true,
        normalize: false,
    };
    let (e, _) = run_embed(&st, &info, &opts, req.keep_alive, job).await?;
    let embedding = e
        .vectors
        .into_iter()
        .next()
        .unwrap_or_default()
        .into_iter()
        .map(f64::from)
        .collect();
    Ok(Json(EmbeddingsResponse { embedding }))
}
