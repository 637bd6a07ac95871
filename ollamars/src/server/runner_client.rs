//! The server's side of one runner process: spawning it with a load timeout, multiplexing
//! requests over its stdin/stdout, and noticing when it dies.

use crate::runner::proto::{self, ErrorKind, FromRunner, LoadOptions, RunnerInfo, ToRunner};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Ollama's message when a runner dies under a request.
pub const RUNNER_DIED: &str = "model runner has unexpectedly stopped, this may be due to resource limitations or an internal error, check ollama server logs for details";

/// Starting a runner failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SpawnError {
    /// The process could not be started.
    #[error("failed to start the llama runner: {0}")]
    Exec(String),
    /// It reported a load failure (bad model file, out of memory, ...).
    #[error("llama runner failed to load the model: {0}")]
    Load(String),
    /// It exited before reporting.
    #[error("llama runner process has terminated: {0}")]
    Exited(String),
    /// It did not report within the load timeout (`OLLAMA_LOAD_TIMEOUT`).
    #[error("timed out waiting for llama runner to start")]
    Timeout,
}

type Routes = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<FromRunner>>>>;

/// A running runner process.
#[derive(Debug)]
pub struct RunnerProcess {
    tx: mpsc::UnboundedSender<ToRunner>,
    routes: Routes,
    next_id: AtomicU64,
    dead: Arc<AtomicBool>,
    child: Mutex<Option<Child>>,
    pid: Option<u32>,
    info: RunnerInfo,
}

impl RunnerProcess {
    /// Starts `exe runner MODEL OPTIONS` and waits up to `timeout` (`None`: forever) for it to
    /// load.
    ///
    /// # Errors
    /// [`SpawnError`]; the process is killed on every error.
    pub async fn spawn(
        exe: &Path,
        model: &Path,
        opts: &LoadOptions,
        timeout: Option<Duration>,
    ) -> Result<RunnerProcess, SpawnError> {
        let opts_json = serde_json::to_string(opts).unwrap_or_default();
        let mut child = Command::new(exe)
            .arg("runner")
            .arg(model)
            .arg(opts_json)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| SpawnError::Exec(format!("{}: {e}", exe.display())))?;
        let pid = child.id();
        let mut stdin = child.stdin.take().expect("piped");
        let mut stdout = child.stdout.take().expect("piped");
        let first = async { proto::read_frame_async::<FromRunner>(&mut stdout).await };
        let first = match timeout {
            Some(t) => match tokio::time::timeout(t, first).await {
                Ok(r) => r,
                Err(_) => {
                    let _ = child.kill().await;
                    return Err(SpawnError::Timeout);
                }
            },
            None => first.await,
        };
        let info = match first {
            Ok(FromRunner::Ready(info)) => info,
            Ok(FromRunner::LoadFailed { error }) => {
                let _ = child.kill().await;
                return Err(SpawnError::Load(error));
            }
            Ok(other) => {
                let _ = child.kill().await;
                return Err(SpawnError::Exited(format!("unexpected message {other:?}")));
            }
            Err(e) => {
                let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                let why = match status {
                    Ok(Ok(s)) => s.to_string(),
                    _ => {
                        let _ = child.kill().await;
                        e.to_string()
                    }
                };
                return Err(SpawnError::Exited(why));
            }
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<ToRunner>();
        let routes: Routes = Arc::default();
        let dead = Arc::new(AtomicBool::new(false));
        // Writer: frames to stdin. A write error means the runner is gone; the reader notices.
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                let stop = matches!(msg, ToRunner::Shutdown);
                if stdin.write_all(&proto::encode(&msg)).await.is_err()
                    || stdin.flush().await.is_err()
                {
                    break;
                }
                if stop {
                    break;
                }
            }
        });
        // Reader: frames from stdout, routed to their requests.
        {
            let routes = routes.clone();
            let dead = dead.clone();
            tokio::spawn(async move {
                loop {
                    match proto::read_frame_async::<FromRunner>(&mut stdout).await {
                        Ok(msg) => route(&routes, msg),
                        Err(e) => {
                            if !dead.swap(true, Ordering::SeqCst) {
                                tracing::warn!(pid, "runner stopped: {e}");
                            }
                            let all: Vec<_> = routes.lock().expect("routes").drain().collect();
                            for (id, tx) in all {
                                let _ = tx.send(FromRunner::Error {
                                    id,
                                    kind: ErrorKind::Internal,
                                    message: RUNNER_DIED.into(),
                                });
                            }
                            break;
                        }
                    }
                }
            });
        }
        Ok(RunnerProcess {
            tx,
            routes,
            next_id: AtomicU64::new(1),
            dead,
            child: Mutex::new(Some(child)),
            pid,
            info,
        })
    }

    /// What the runner reported at load.
    pub fn info(&self) -> &RunnerInfo {
        &self.info
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Whether the process has stopped answering.
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    /// Sends a request built from a fresh id; replies arrive on the returned channel (ending
    /// with `Done`, `Error`, or one reply for the single-answer requests).
    ///
    /// # Errors
    /// [`RUNNER_DIED`] when the runner is gone.
    pub fn request(
        &self,
        make: impl FnOnce(u64) -> ToRunner,
    ) -> Result<(u64, mpsc::UnboundedReceiver<FromRunner>), String> {
        if self.is_dead() {
            return Err(RUNNER_DIED.into());
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        self.routes.lock().expect("routes").insert(id, tx);
        if self.tx.send(make(id)).is_err() {
            self.routes.lock().expect("routes").remove(&id);
            return Err(RUNNER_DIED.into());
        }
        Ok((id, rx))
    }

    /// Sends a request and waits for its single reply.
    ///
    /// # Errors
    /// `(kind, message)` from the runner, or [`RUNNER_DIED`].
    pub async fn call(
        &self,
        make: impl FnOnce(u64) -> ToRunner,
    ) -> Result<FromRunner, (ErrorKind, String)> {
        let (_, mut rx) = self.request(make).map_err(|m| (ErrorKind::Internal, m))?;
        match rx.recv().await {
            Some(FromRunner::Error { kind, message, .. }) => Err((kind, message)),
            Some(m) => Ok(m),
            None => Err((ErrorKind::Internal, RUNNER_DIED.into())),
        }
    }

    /// Stops a request; its channel closes.
    pub fn cancel(&self, id: u64) {
        if self.routes.lock().expect("routes").remove(&id).is_some() {
            let _ = self.tx.send(ToRunner::Cancel { id });
        }
    }

    /// Asks the runner to exit, then kills it if it has not within two seconds.
    pub async fn shutdown(&self) {
        let _ = self.tx.send(ToRunner::Shutdown);
        let child = self.child.lock().expect("child").take();
        if let Some(mut child) = child
            && tokio::time::timeout(Duration::from_secs(2), child.wait())
                .await
                .is_err()
        {
            let _ = child.kill().await;
        }
        self.dead.store(true, Ordering::SeqCst);
    }
}

fn route(routes: &Routes, msg: FromRunner) {
    let (id, last) = match &msg {
        FromRunner::Piece { id, .. } => (*id, false),
        FromRunner::Done { id, .. }
        | FromRunner::Embeddings { id, .. }
        | FromRunner::Tokens { id, .. }
        | FromRunner::Text { id, .. }
        | FromRunner::Error { id, .. } => (*id, true),
        FromRunner::Ready(_) | FromRunner::LoadFailed { .. } => return,
    };
    let mut r = routes.lock().expect("routes");
    let tx = if last {
        r.remove(&id)
    } else {
        r.get(&id).cloned()
    };
    if let Some(tx) = tx {
        let _ = tx.send(msg);
    }
}
