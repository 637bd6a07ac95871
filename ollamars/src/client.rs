//! An HTTP client for the Ollama API, used by the CLI (which, like Ollama's, talks to a running
//! server and starts nothing by itself). Requests and responses are the typed bodies of
//! [`crate::api`]; the streaming endpoints share one NDJSON reader ([`Client::stream`]).

use futures::StreamExt;
use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::Value;

use crate::api::{
    ChatRequest, ChatResponse, CopyRequest, EmbedRequest, EmbedResponse, ErrorResponse,
    GenerateRequest, GenerateResponse, ListResponse, ModelRequest, Progress, PsResponse,
    ShowRequest, ShowResponse, TransferRequest, VersionResponse,
};
use crate::create::CreateRequest;

/// A client error.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No server answers at the address.
    #[error("could not connect to ollamars server at {0}, run 'ollamars serve' to start it")]
    Connect(String),
    /// The server answered with an error.
    #[error("{message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The server's `error` text.
        message: String,
    },
    /// Another transport or decoding problem.
    #[error("{0}")]
    Other(String),
}

impl ClientError {
    /// The HTTP status, for API errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A client for one server.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:11434`).
    pub fn new(base: impl Into<String>) -> Client {
        Client {
            base: base.into().trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        }
    }

    /// A client for `config`'s `OLLAMA_HOST`.
    pub fn from_config(config: &crate::config::Config) -> Client {
        Client::new(config.host.client_url())
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn transport(&self, e: reqwest::Error) -> ClientError {
        if e.is_connect() {
            ClientError::Connect(self.base.clone())
        } else {
            ClientError::Other(e.to_string())
        }
    }

    async fn check(&self, resp: reqwest::Response) -> Result<reqwest::Response, ClientError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorResponse>(&body)
            .ok()
            .map(|e| e.error)
            .unwrap_or_else(|| {
                if body.trim().is_empty() {
                    status.to_string()
                } else {
                    body.trim().to_string()
                }
            });
        Err(ClientError::Api {
            status: status.as_u16(),
            message,
        })
    }

    async fn send_json<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let resp = req.send().await.map_err(|e| self.transport(e))?;
        let resp = self.check(resp).await?;
        let text = resp.text().await.map_err(|e| self.transport(e))?;
        let text = if text.trim().is_empty() {
            "null"
        } else {
            &text
        };
        serde_json::from_str(text)
            .map_err(|e| ClientError::Other(format!("unexpected response: {e}")))
    }

    /// `GET /api/version`: the server's version.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn version(&self) -> Result<VersionResponse, ClientError> {
        self.send_json(self.http.get(self.url("/api/version")))
            .await
    }

    /// `GET /api/tags`: the models, newest first.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn list(&self) -> Result<ListResponse, ClientError> {
        self.send_json(self.http.get(self.url("/api/tags"))).await
    }

    /// `POST /api/show` (with `system` and `options` set, the model as a session has changed
    /// it).
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn show(&self, req: &ShowRequest) -> Result<ShowResponse, ClientError> {
        self.send_json(self.http.post(self.url("/api/show")).json(req))
            .await
    }

    /// `GET /api/ps`: the loaded models.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn ps(&self) -> Result<PsResponse, ClientError> {
        self.send_json(self.http.get(self.url("/api/ps"))).await
    }

    /// `POST /api/embed`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn embed(&self, req: &EmbedRequest) -> Result<EmbedResponse, ClientError> {
        self.send_json(self.http.post(self.url("/api/embed")).json(req))
            .await
    }

    /// `POST /api/copy`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn copy(&self, req: &CopyRequest) -> Result<(), ClientError> {
        let _: IgnoredAny = self
            .send_json(self.http.post(self.url("/api/copy")).json(req))
            .await?;
        Ok(())
    }

    /// `DELETE /api/delete`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn delete(&self, req: &ModelRequest) -> Result<(), ClientError> {
        let _: IgnoredAny = self
            .send_json(self.http.delete(self.url("/api/delete")).json(req))
            .await?;
        Ok(())
    }

    /// `POST /api/chat`, streamed: `on_chunk` sees each line.
    ///
    /// # Errors
    /// [`ClientError`]; an `error` line ends the stream with [`ClientError::Api`].
    pub async fn chat(
        &self,
        req: &ChatRequest,
        on_chunk: impl FnMut(&ChatResponse),
    ) -> Result<(), ClientError> {
        self.stream("/api/chat", req, on_chunk).await
    }

    /// `POST /api/generate`, streamed: `on_chunk` sees each line.
    ///
    /// # Errors
    /// [`ClientError`]; an `error` line ends the stream with [`ClientError::Api`].
    pub async fn generate(
        &self,
        req: &GenerateRequest,
        on_chunk: impl FnMut(&GenerateResponse),
    ) -> Result<(), ClientError> {
        self.stream("/api/generate", req, on_chunk).await
    }

    /// `POST /api/pull`, streamed: `on_progress` sees each progress line.
    ///
    /// # Errors
    /// [`ClientError`]; an `error` line ends the stream with [`ClientError::Api`].
    pub async fn pull(
        &self,
        req: &TransferRequest,
        on_progress: impl FnMut(&Progress),
    ) -> Result<(), ClientError> {
        self.stream("/api/pull", req, on_progress).await
    }

    /// `POST /api/push`, streamed: `on_progress` sees each progress line.
    ///
    /// # Errors
    /// [`ClientError`]; an `error` line ends the stream with [`ClientError::Api`].
    pub async fn push(
        &self,
        req: &TransferRequest,
        on_progress: impl FnMut(&Progress),
    ) -> Result<(), ClientError> {
        self.stream("/api/push", req, on_progress).await
    }

    /// `POST /api/create`, streamed: `on_progress` sees each progress line.
    ///
    /// # Errors
    /// [`ClientError`]; an `error` line ends the stream with [`ClientError::Api`].
    pub async fn create(
        &self,
        req: &CreateRequest,
        on_progress: impl FnMut(&Progress),
    ) -> Result<(), ClientError> {
        self.stream("/api/create", req, on_progress).await
    }

    /// `HEAD /api/blobs/:digest`: whether the server has the blob.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn has_blob(&self, digest: &str) -> Result<bool, ClientError> {
        let resp = self
            .http
            .head(self.url(&format!("/api/blobs/{digest}")))
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => self.check(resp).await.map(|_| false),
        }
    }

    /// `POST /api/blobs/:digest` with a file's content, streamed.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn upload_blob(
        &self,
        digest: &str,
        file: tokio::fs::File,
    ) -> Result<(), ClientError> {
        let len = file
            .metadata()
            .await
            .map_err(|e| ClientError::Other(e.to_string()))?
            .len();
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
        let resp = self
            .http
            .post(self.url(&format!("/api/blobs/{digest}")))
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        self.check(resp).await.map(|_| ())
    }

    /// A streaming NDJSON request: posts `req` to `path` and calls `on_line` with each line
    /// read as a `Line`. A line with an `error` string ends the stream with
    /// [`ClientError::Api`] (status 500: the HTTP status was already sent); blank lines are
    /// skipped.
    ///
    /// # Errors
    /// [`ClientError`]: the connection, an error status, an `error` line, or a line that is
    /// not a `Line`.
    pub async fn stream<Req: Serialize + ?Sized, Line: DeserializeOwned>(
        &self,
        path: &str,
        req: &Req,
        mut on_line: impl FnMut(&Line),
    ) -> Result<(), ClientError> {
        let resp = self
            .http
            .post(self.url(path))
            .json(req)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let resp = self.check(resp).await?;
        let mut bytes = resp.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        let mut handle = |line: &[u8]| -> Result<(), ClientError> {
            if line.iter().all(u8::is_ascii_whitespace) {
                return Ok(());
            }
            let bad = |e: serde_json::Error| ClientError::Other(format!("bad stream line: {e}"));
            // Read as JSON first: an error line is not a `Line`.
            let v: Value = serde_json::from_slice(line).map_err(bad)?;
            if let Some(err) = v.get("error").and_then(Value::as_str) {
                return Err(ClientError::Api {
                    status: 500,
                    message: err.to_string(),
                });
            }
            on_line(&Line::deserialize(v).map_err(bad)?);
            Ok(())
        };
        while let Some(chunk) = bytes.next().await {
            buf.extend_from_slice(&chunk.map_err(|e| self.transport(e))?);
            while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                handle(&line)?;
            }
        }
        handle(&buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers one request with `status` and `body` (sent in `pieces`, to split
    /// lines across reads), then closes; it returns the request it got.
    async fn serve_once(
        status: &'static str,
        pieces: Vec<&'static str>,
    ) -> (Client, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            // Headers, then the body by its Content-Length.
            loop {
                let n = sock.read(&mut buf).await.unwrap();
                req.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&req).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if req.len() >= end + 4 + len || n == 0 {
                        break;
                    }
                }
            }
            let head = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/x-ndjson\r\nconnection: close\r\n\r\n"
            );
            sock.write_all(head.as_bytes()).await.unwrap();
            for p in pieces {
                sock.write_all(p.as_bytes()).await.unwrap();
                sock.flush().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            let _ = sock.shutdown().await;
            String::from_utf8_lossy(&req).to_string()
        });
        (Client::new(format!("http://{addr}/")), task)
    }

    #[tokio::test]
    async fn streams_typed_lines_split_anywhere() {
        let (client, server) = serve_once(
            "200 OK",
            vec![
                "{\"status\":\"pulling manifest\"}\n\n{\"status\":\"pull",
                "ing abc\",\"digest\":\"sha256:abc\",\"total\":10,\"completed\":4}\n",
                "{\"status\":\"success\"}",
            ],
        )
        .await;
        let mut seen = Vec::new();
        client
            .pull(&TransferRequest::new("m", false), |p| seen.push(p.clone()))
            .await
            .unwrap();
        assert_eq!(
            seen.iter().map(|p| p.status.as_str()).collect::<Vec<_>>(),
            ["pulling manifest", "pulling abc", "success"]
        );
        assert_eq!(seen[1].completed, Some(4));
        let req = server.await.unwrap();
        assert!(req.starts_with("POST /api/pull "), "{req}");
        assert!(req.ends_with(r#"{"model":"m"}"#), "{req}");
    }

    #[tokio::test]
    async fn an_error_line_ends_the_stream() {
        let (client, _server) = serve_once(
            "200 OK",
            vec![
                "{\"model\":\"m\",\"created_at\":\"t\",\"response\":\"a\",\"done\":false}\n",
                "{\"error\":\"the runner died\"}\n",
                "{\"model\":\"m\",\"created_at\":\"t\",\"response\":\"b\",\"done\":true}\n",
            ],
        )
        .await;
        let mut text = String::new();
        let e = client
            .generate(&GenerateRequest::default(), |c| text.push_str(&c.response))
            .await
            .unwrap_err();
        assert_eq!(text, "a");
        assert!(
            matches!(&e, ClientError::Api { status: 500, message } if message == "the runner died"),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn a_line_of_another_shape_is_an_error() {
        let (client, _server) = serve_once("200 OK", vec!["{\"status\":\"ok\"}\nnot json\n"]).await;
        let e = client
            .create(&CreateRequest::default(), |_| {})
            .await
            .unwrap_err();
        assert!(e.to_string().starts_with("bad stream line: "), "{e}");
        let (client, _server) = serve_once("200 OK", vec!["{\"status\": 5}\n"]).await;
        let e = client
            .create(&CreateRequest::default(), |_| {})
            .await
            .unwrap_err();
        assert!(e.to_string().starts_with("bad stream line: "), "{e}");
    }

    #[tokio::test]
    async fn error_statuses_carry_the_servers_text() {
        let (client, _server) =
            serve_once("404 Not Found", vec![r#"{"error":"model 'x' not found"}"#]).await;
        let e = client.show(&ShowRequest::new("x")).await.unwrap_err();
        assert_eq!(e.status(), Some(404));
        assert_eq!(e.to_string(), "model 'x' not found");
        let (client, _server) = serve_once("500 Internal Server Error", vec![]).await;
        let e = client.list().await.unwrap_err();
        assert_eq!(e.status(), Some(500));
        assert_eq!(e.to_string(), "500 Internal Server Error");
        let (client, _server) = serve_once("400 Bad Request", vec!["plain words\n"]).await;
        let e = client
            .chat(&ChatRequest::default(), |_| {})
            .await
            .unwrap_err();
        assert_eq!(
            (e.status(), e.to_string()),
            (Some(400), "plain words".into())
        );
    }

    #[tokio::test]
    async fn empty_answers_are_fine_where_nothing_is_read() {
        let (client, server) = serve_once("200 OK", vec![]).await;
        client
            .copy(&CopyRequest {
                source: "a".into(),
                destination: "b".into(),
            })
            .await
            .unwrap();
        let req = server.await.unwrap();
        assert!(
            req.ends_with(r#"{"source":"a","destination":"b"}"#),
            "{req}"
        );
        let (client, _server) = serve_once("200 OK", vec!["{}"]).await;
        client.delete(&ModelRequest::new("a")).await.unwrap();
    }

    #[tokio::test]
    async fn no_server_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let client = Client::new(format!("http://{addr}"));
        let e = client.version().await.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "could not connect to ollamars server at http://{addr}, run 'ollamars serve' to start it"
            )
        );
    }
}
