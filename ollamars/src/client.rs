//! An HTTP client for the Ollama API, used by the CLI (which, like Ollama's, talks to a running
//! server and starts nothing by itself).

use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

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
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
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
    pub async fn version(&self) -> Result<String, ClientError> {
        let v: Value = self
            .send_json(self.http.get(self.url("/api/version")))
            .await?;
        Ok(v["version"].as_str().unwrap_or("").to_string())
    }

    /// `GET /api/tags`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn list(&self) -> Result<Value, ClientError> {
        self.send_json(self.http.get(self.url("/api/tags"))).await
    }

    /// `POST /api/show`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn show(&self, model: &str, verbose: bool) -> Result<Value, ClientError> {
        self.send_json(
            self.http
                .post(self.url("/api/show"))
                .json(&json!({"model": model, "verbose": verbose})),
        )
        .await
    }

    /// `POST /api/show` with a full request body (`model`, and optionally `system` and
    /// `options` to see the model as a session has changed it).
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn show_request(&self, body: &Value) -> Result<Value, ClientError> {
        self.send_json(self.http.post(self.url("/api/show")).json(body))
            .await
    }

    /// `GET /api/ps`: the loaded models.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn ps(&self) -> Result<Value, ClientError> {
        self.send_json(self.http.get(self.url("/api/ps"))).await
    }

    /// `POST /api/embed`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn embed(&self, body: &Value) -> Result<Value, ClientError> {
        self.send_json(self.http.post(self.url("/api/embed")).json(body))
            .await
    }

    /// `POST /api/copy`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn copy(&self, source: &str, destination: &str) -> Result<(), ClientError> {
        let _: Value = self
            .send_json(
                self.http
                    .post(self.url("/api/copy"))
                    .json(&json!({"source": source, "destination": destination})),
            )
            .await?;
        Ok(())
    }

    /// `DELETE /api/delete`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn delete(&self, model: &str) -> Result<(), ClientError> {
        let _: Value = self
            .send_json(
                self.http
                    .delete(self.url("/api/delete"))
                    .json(&json!({"model": model})),
            )
            .await?;
        Ok(())
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

    /// A streaming NDJSON request: calls `on_line` for each object; an `error` line ends it
    /// with an error.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn stream<B: serde::Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
        mut on_line: impl FnMut(&Value),
    ) -> Result<(), ClientError> {
        let resp = self
            .http
            .post(self.url(path))
            .json(body)
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
            let v: Value = serde_json::from_slice(line)
                .map_err(|e| ClientError::Other(format!("bad stream line: {e}")))?;
            if let Some(err) = v.get("error").and_then(Value::as_str) {
                return Err(ClientError::Api {
                    status: 500,
                    message: err.to_string(),
                });
            }
            on_line(&v);
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
