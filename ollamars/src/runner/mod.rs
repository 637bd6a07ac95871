//! The model runner: a child process of the same binary (`ollamars runner MODEL OPTIONS`) that
//! owns one loaded model and serves completions, prompt preparation and embeddings to the
//! server. `ollamars runner tool` serves llama.cpp work that needs no loaded model
//! (quantization for `/api/create`) over the same protocol, so that llama.cpp never runs inside
//! the server process.
//!
//! The server writes [`proto::ToRunner`] frames to the runner's stdin and reads
//! [`proto::FromRunner`] frames from its stdout; llama.cpp's logs go to stderr. A crash, abort
//! or out-of-memory kill in llama.cpp ends only this process: the server sees its stdout close,
//! fails the requests it had in flight and loads the model again on the next request. When the
//! server goes away (stdin closes) the runner exits.
//!
//! Three threads: stdin is read on its own thread so that new requests and cancels arrive
//! between decode steps; prompts are prepared ([`prompt::Preparer`]) on another, so that
//! rendering and tokenizing a long history never waits behind a decode step (nor a decode step
//! behind it); the main thread runs the engine. Each writes whole frames to stdout under its
//! lock.

pub mod engine;
pub mod media;
pub mod prompt;
pub mod proto;
mod sampling;

use engine::{Engine, Sink};
use proto::{EngineError, FromRunner, LoadOptions, ToRunner};
use std::io::Write;
use std::process::ExitCode;
use std::sync::mpsc;

struct StdoutSink(std::io::Stdout);

impl Sink for StdoutSink {
    fn send(&mut self, msg: FromRunner) -> std::io::Result<()> {
        let mut out = self.0.lock();
        out.write_all(&proto::encode(&msg))?;
        out.flush()
    }
}

/// Entry point of `ollamars runner MODEL_PATH LOAD_OPTIONS_JSON` (hidden; started by the
/// server's scheduler, not by hand).
pub fn main() -> ExitCode {
    // The server's configuration: it has checked the same environment already.
    let config = crate::config::Config::for_server();
    crate::config::init_logging(
        config
            .as_ref()
            .map_or(tracing::Level::INFO, |c| c.log_level),
    );
    // The same backend modules (and OLLAMARS_CPU_VARIANT) as the server that started us.
    let backends = config
        .map_err(|e| e.to_string())
        .and_then(|c| crate::backends::init(c.cpu_variant.as_deref()));
    if let Ok(b) = &backends
        && let Some(r) = b.report
    {
        for m in &r.modules {
            tracing::debug!("backend module {m}");
        }
    }
    let args: Vec<String> = std::env::args().skip(2).collect();
    if let Err(e) = &backends {
        eprintln!("Error: {e}");
        if args.len() == 2 {
            let _ = StdoutSink(std::io::stdout()).send(FromRunner::LoadFailed { error: e.clone() });
        }
        return ExitCode::FAILURE;
    }
    if args.len() == 1 && args[0] == "tool" {
        return serve_tools();
    }
    let (path, opts) = match args.as_slice() {
        [path, opts] => match serde_json::from_str::<LoadOptions>(opts) {
            Ok(o) => (path.clone(), o),
            Err(e) => {
                eprintln!("Error: bad runner options: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ => {
            eprintln!("Error: the runner is started by `ollamars serve`, not by hand");
            return ExitCode::FAILURE;
        }
    };
    let mut sink = StdoutSink(std::io::stdout());
    let mut engine = match Engine::load(&path, opts) {
        Ok(e) => e,
        Err(e) => {
            let _ = sink.send(FromRunner::LoadFailed {
                error: e.to_string(),
            });
            return ExitCode::FAILURE;
        }
    };
    if sink.send(FromRunner::Ready(engine.info().clone())).is_err() {
        return ExitCode::FAILURE;
    }
    // stdin is read on its own thread so that new requests and cancels arrive between steps;
    // prompts are prepared on another.
    let (tx, rx) = mpsc::channel::<ToRunner>();
    let (prep_tx, prep_rx) = mpsc::channel::<ToRunner>();
    let engine_tx = tx.clone();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        while let Ok(msg) = proto::read_frame::<ToRunner>(&mut stdin) {
            let to_prepare = match &msg {
                ToRunner::Prepare { .. } => true,
                ToRunner::Completion { job, .. } => {
                    matches!(job.prompt, proto::PromptInput::Prepare(_))
                }
                _ => false,
            };
            let sent = if to_prepare {
                prep_tx.send(msg).is_ok()
            } else {
                tx.send(msg).is_ok()
            };
            if !sent {
                break;
            }
        }
    });
    let preparer = prompt::Preparer::new(engine.model().clone());
    #[cfg(feature = "mtmd")]
    let preparer = preparer.with_media(engine.media().cloned());
    std::thread::spawn(move || {
        let mut sink = StdoutSink(std::io::stdout());
        for msg in prep_rx {
            let (replies, forward) = prepare(&preparer, msg);
            for r in replies {
                if sink.send(r).is_err() {
                    return;
                }
            }
            if let Some(m) = forward
                && engine_tx.send(m).is_err()
            {
                return;
            }
        }
    });
    match serve(&mut engine, &rx, &mut sink) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// The prompt thread's work on one message: a [`proto::Prepare`] call is answered; a completion
/// whose prompt is to be prepared gets it prepared, a `Started` message on its stream, and is
/// passed on to the engine with its tokens (and its deferred grammar settled).
fn prepare(preparer: &prompt::Preparer, msg: ToRunner) -> (Vec<FromRunner>, Option<ToRunner>) {
    match msg {
        ToRunner::Prepare { id, job } => {
            let reply = match preparer.prepare_media(job) {
                Ok((prepared, _)) => FromRunner::Prepared { id, prepared },
                Err(error) => FromRunner::Error { id, error },
            };
            (vec![reply], None)
        }
        ToRunner::Completion { id, mut job } => {
            job.received = Some(std::time::Instant::now());
            let proto::PromptInput::Prepare(p) = job.prompt else {
                return (Vec::new(), Some(ToRunner::Completion { id, job }));
            };
            match preparer.prepare_media(p) {
                Ok((prepared, media)) => {
                    if let Some((open, close)) = job.grammar_after_thinking.take()
                        && job.sampling.grammar.is_some()
                        && prepared.text.trim_end().ends_with(open.as_str())
                    {
                        job.sampling.grammar_after = Some(close);
                    }
                    job.prompt = match media {
                        Some(m) => proto::PromptInput::Media(m),
                        None => proto::PromptInput::Tokens {
                            tokens: prepared.tokens,
                        },
                    };
                    let started = FromRunner::Started {
                        id,
                        text: prepared.text,
                    };
                    (vec![started], Some(ToRunner::Completion { id, job }))
                }
                Err(error) => (vec![FromRunner::Error { id, error }], None),
            }
        }
        other => (Vec::new(), Some(other)),
    }
}

/// `ollamars runner tool`: quantization requests, one at a time, until stdin closes.
fn serve_tools() -> ExitCode {
    let mut sink = StdoutSink(std::io::stdout());
    let mut stdin = std::io::stdin().lock();
    while let Ok(msg) = proto::read_frame::<ToRunner>(&mut stdin) {
        let reply = match msg {
            ToRunner::Quantize { id, job } => {
                match crate::create::quantize_file(&job.input, &job.output, &job.kind) {
                    Ok(()) => FromRunner::Quantized { id },
                    Err(e) => FromRunner::Error {
                        id,
                        error: EngineError::internal(e),
                    },
                }
            }
            ToRunner::Shutdown => break,
            ToRunner::Cancel { .. } => continue,
            ToRunner::Completion { id, .. }
            | ToRunner::Prepare { id, .. }
            | ToRunner::Embed { id, .. } => FromRunner::Error {
                id,
                error: EngineError::internal("this runner has no model loaded"),
            },
        };
        if sink.send(reply).is_err() {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// The runner's loop: handle what arrived, then run one step while there is work.
fn serve(
    engine: &mut Engine,
    rx: &mpsc::Receiver<ToRunner>,
    sink: &mut dyn Sink,
) -> std::io::Result<()> {
    loop {
        loop {
            let msg = if engine.busy() {
                match rx.try_recv() {
                    Ok(m) => m,
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => return Ok(()),
                }
            } else {
                match rx.recv() {
                    Ok(m) => m,
                    Err(_) => return Ok(()),
                }
            };
            if !handle(engine, msg, sink)? {
                return Ok(());
            }
        }
        engine.step(sink)?;
    }
}

/// Handles one message; false means shut down.
fn handle(engine: &mut Engine, msg: ToRunner, sink: &mut dyn Sink) -> std::io::Result<bool> {
    match msg {
        ToRunner::Completion { id, job } => engine.submit(id, *job),
        ToRunner::Cancel { id } => engine.cancel(id),
        ToRunner::Shutdown => return Ok(false),
        ToRunner::Embed { id, job } => {
            let reply = match engine.embed(&job.inputs, job.truncate, job.normalize) {
                Ok(embedded) => FromRunner::Embeddings { id, embedded },
                Err(error) => FromRunner::Error { id, error },
            };
            sink.send(reply)?;
        }
        // The stdin thread sends these to the preparer; a runner without one refuses them.
        ToRunner::Prepare { id, .. } | ToRunner::Quantize { id, .. } => {
            sink.send(FromRunner::Error {
                id,
                error: EngineError::internal("not served by the engine"),
            })?
        }
    }
    Ok(true)
}
