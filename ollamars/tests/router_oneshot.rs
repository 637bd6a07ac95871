//! The router without a socket, through tower's `oneshot`: HEAD handling, unknown routes and
//! the NDJSON content type.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use ollamars::config::Config;
use ollamars::server::{ServerState, router};
use ollamars::store::Store;
use tower::ServiceExt;

async fn call(store: &Store, method: Method, uri: &str, body: &str) -> (StatusCode, String) {
    let app = router(ServerState::new(store.clone(), &Config::default()));
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn routes_answer_without_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("models"));
    assert_eq!(
        call(&store, Method::GET, "/", "").await,
        (StatusCode::OK, "Ollama is running".into())
    );
    assert_eq!(call(&store, Method::HEAD, "/", "").await.0, StatusCode::OK);
    assert_eq!(
        call(&store, Method::HEAD, "/api/tags", "").await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&store, Method::GET, "/api/tags", "").await,
        (StatusCode::OK, r#"{"models":[]}"#.into())
    );
    let missing = format!("/api/blobs/sha256:{}", "a".repeat(64));
    let (st, body) = call(&store, Method::HEAD, &missing, "").await;
    assert_eq!((st, body.as_str()), (StatusCode::NOT_FOUND, ""));
    assert_eq!(
        call(&store, Method::GET, "/api/nothing", "").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&store, Method::PUT, "/api/show", "{}").await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    let (st, body) = call(&store, Method::DELETE, "/api/delete", r#"{"model":"x"}"#).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(body, r#"{"error":"model 'x' not found"}"#);
    // Nothing was created by any of it.
    assert!(!dir.path().join("models").exists());
}
