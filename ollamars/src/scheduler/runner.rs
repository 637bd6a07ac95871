//! The server's side of one runner process: spawning it with a load timeout, multiplexing
//! requests over its stdin/stdout, and noticing when it dies. [`runner_command`] is the one
//! place that starts child processes (model runners, and the tool runner that quantizes).
//!
//! Concurrency: one writer task owns the child's stdin (requests arrive on an unbounded
//! channel, so senders never wait on the pipe); one reader task owns its stdout and routes each
//! reply by request id through a `Mutex<HashMap>` of per-request channels (held only to insert,
//! look up or remove one entry). When stdout closes, the reader fails every request in the
//! table, so no caller waits forever on a dead runner.

use crate::runner::proto::{
    self, Call, Completion, EngineError, FromRunner, LoadOptions, RunnerInfo, Streamed, ToRunner,
};
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
        let mut child = runner_command(exe)
            .arg(model)
            .arg(opts_json)
            .spawn()
            .map_err(|e| SpawnError::Exec(format!("{}: {e}", exe.display())))?;
        let pid = child.id();
        let (Some(stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill().await;
            return Err(SpawnError::Exec("the runner's pipes are missing".into()));
        };
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
        Ok(RunnerProcess::attach(child, pid, stdin, stdout, info))
    }

    /// Starts `exe runner tool`: a runner without a model, for quantization.
    ///
    /// # Errors
    /// [`SpawnError::Exec`] when it cannot be started.
    pub fn spawn_tool(exe: &Path) -> Result<RunnerProcess, SpawnError> {
        let mut child = runner_command(exe)
            .arg("tool")
            .spawn()
            .map_err(|e| SpawnError::Exec(format!("{}: {e}", exe.display())))?;
        let pid = child.id();
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(SpawnError::Exec("the runner's pipes are missing".into()));
        };
        let info = RunnerInfo {
            num_ctx: 0,
            n_ctx_train: 0,
            parallel: 0,
            model_size: 0,
            total_size: 0,
            vram_size: 0,
            n_embd: 0,
            n_vocab: 0,
            embedding: false,
        };
        Ok(RunnerProcess::attach(child, pid, stdin, stdout, info))
    }

    /// Starts the writer and reader tasks of a started child.
    fn attach(
        child: Child,
        pid: Option<u32>,
        mut stdin: tokio::process::ChildStdin,
        mut stdout: tokio::process::ChildStdout,
        info: RunnerInfo,
    ) -> RunnerProcess {
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
                                    error: EngineError::internal(RUNNER_DIED),
                                });
                            }
                            break;
                        }
                    }
                }
            });
        }
        RunnerProcess {
            tx,
            routes,
            next_id: AtomicU64::new(1),
            dead,
            child: Mutex::new(Some(child)),
            pid,
            info,
        }
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

    /// Sends a request with a fresh id; its replies arrive on the returned channel.
    fn send(
        &self,
        make: impl FnOnce(u64) -> ToRunner,
    ) -> Result<(u64, mpsc::UnboundedReceiver<FromRunner>), EngineError> {
        if self.is_dead() {
            return Err(EngineError::internal(RUNNER_DIED));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        self.routes.lock().expect("routes").insert(id, tx);
        if self.tx.send(make(id)).is_err() {
            self.routes.lock().expect("routes").remove(&id);
            return Err(EngineError::internal(RUNNER_DIED));
        }
        Ok((id, rx))
    }

    /// Sends a request and waits for its one reply.
    ///
    /// # Errors
    /// The runner's [`EngineError`], or [`RUNNER_DIED`] when it is gone.
    pub async fn call<C: Call>(&self, req: C) -> Result<C::Reply, EngineError> {
        let (_, mut rx) = self.send(|id| req.into_message(id))?;
        match rx.recv().await {
            Some(msg) => C::reply(msg),
            None => Err(EngineError::internal(RUNNER_DIED)),
        }
    }

    /// Starts a completion; its [`Streamed`] messages arrive on the returned stream.
    ///
    /// # Errors
    /// [`RUNNER_DIED`] when the runner is gone.
    pub fn complete(&self, job: Completion) -> Result<CompletionStream, EngineError> {
        let (id, rx) = self.send(|id| ToRunner::Completion {
            id,
            job: Box::new(job),
        })?;
        Ok(CompletionStream { id, rx })
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

/// The messages of one running completion.
#[derive(Debug)]
pub struct CompletionStream {
    id: u64,
    rx: mpsc::UnboundedReceiver<FromRunner>,
}

impl CompletionStream {
    /// The request's id (for [`RunnerProcess::cancel`]).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The next message; a runner that died gives [`RUNNER_DIED`].
    pub async fn next(&mut self) -> Streamed {
        match self.rx.recv().await {
            Some(msg) => Streamed::from_message(msg),
            None => Streamed::Error(EngineError::internal(RUNNER_DIED)),
        }
    }
}

/// Quantizes in a tool runner (`exe runner tool`), a process per request, over the runner
/// protocol: an abort inside llama.cpp ends that process and fails the request, not the server.
/// Called from the blocking pool (where `/api/create` runs), inside the server's runtime.
#[derive(Debug, Clone)]
pub struct ToolQuantizer {
    exe: std::path::PathBuf,
}

impl ToolQuantizer {
    /// Tool runners started from `exe` (the runner executable).
    pub fn new(exe: std::path::PathBuf) -> ToolQuantizer {
        ToolQuantizer { exe }
    }
}

impl crate::create::Quantizer for ToolQuantizer {
    fn quantize(&self, input: &Path, output: &Path, kind: &str) -> Result<(), String> {
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|_| "quantization needs the server's runtime".to_string())?;
        let job = proto::Quantize {
            input: input.to_path_buf(),
            output: output.to_path_buf(),
            kind: kind.to_string(),
        };
        rt.block_on(async {
            let tool = RunnerProcess::spawn_tool(&self.exe).map_err(|e| e.to_string())?;
            let r = tool.call(job).await;
            tool.shutdown().await;
            r.map_err(|e| {
                if e.message == RUNNER_DIED {
                    "llama.cpp's quantizer stopped unexpectedly".to_string()
                } else {
                    e.message
                }
            })
        })
    }
}

/// `exe runner …` with piped stdin and stdout (the protocol) and inherited stderr (llama.cpp's
/// logs), killed when dropped: how every child process of the server starts.
pub fn runner_command(exe: &Path) -> Command {
    let mut c = Command::new(exe);
    c.arg("runner")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    c
}

fn route(routes: &Routes, msg: FromRunner) {
    let Some((id, last)) = msg.route() else {
        return;
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
