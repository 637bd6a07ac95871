//! The model runner: a child process of the same binary (`ollamars runner MODEL OPTIONS`) that
//! owns one loaded model and serves completions and embeddings to the server. The same
//! subcommand quantizes for `/api/create` (`ollamars runner quantize IN OUT TYPE`), so that
//! llama.cpp never runs inside the server process.
//!
//! The server writes [`proto::ToRunner`] frames to the runner's stdin and reads
//! [`proto::FromRunner`] frames from its stdout; llama.cpp's logs go to stderr. A crash, abort
//! or out-of-memory kill in llama.cpp ends only this process: the server sees its stdout close,
//! fails the requests it had in flight and loads the model again on the next request. When the
//! server goes away (stdin closes) the runner exits.

pub mod engine;
pub mod proto;

use engine::{Engine, Sink};
use proto::{ErrorKind, FromRunner, LoadOptions, ToRunner};
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
    if let [mode, input, output, kind] = args.as_slice()
        && mode == "quantize"
    {
        return match crate::create::quantize_file(input.as_ref(), output.as_ref(), kind) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("Error: {e}");
                ExitCode::from(2)
            }
        };
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
    // stdin is read on its own thread so that new requests and cancels arrive between steps.
    let (tx, rx) = mpsc::channel::<ToRunner>();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        while let Ok(msg) = proto::read_frame::<ToRunner>(&mut stdin) {
            if tx.send(msg).is_err() {
                break;
            }
        }
    });
    match serve(&mut engine, &rx, &mut sink) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
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
        ToRunner::Completion(c) => engine.submit(c),
        ToRunner::Cancel { id } => engine.cancel(id),
        ToRunner::Shutdown => return Ok(false),
        ToRunner::Embed {
            id,
            inputs,
            truncate,
            normalize,
        } => match engine.embed(&inputs, truncate, normalize) {
            Ok((vectors, n)) => sink.send(FromRunner::Embeddings {
                id,
                vectors,
                prompt_eval_count: n,
            })?,
            Err((kind, message)) => sink.send(FromRunner::Error { id, kind, message })?,
        },
        ToRunner::Tokenize { id, texts } => {
            let r: Result<Vec<_>, _> = texts.iter().map(|t| engine.tokenize(t)).collect();
            match r {
                Ok(tokens) => sink.send(FromRunner::Tokens { id, tokens })?,
                Err(message) => sink.send(FromRunner::Error {
                    id,
                    kind: ErrorKind::BadRequest,
                    message,
                })?,
            }
        }
        ToRunner::Render {
            id,
            messages,
            tools,
        } => match engine.render(messages, tools) {
            Ok(text) => sink.send(FromRunner::Text { id, text })?,
            Err(message) => sink.send(FromRunner::Error {
                id,
                kind: ErrorKind::BadRequest,
                message,
            })?,
        },
        ToRunner::Detokenize { id, tokens } => match engine.detokenize(&tokens) {
            Ok(text) => sink.send(FromRunner::Text { id, text })?,
            Err(message) => sink.send(FromRunner::Error {
                id,
                kind: ErrorKind::BadRequest,
                message: format!("invalid context: {message}"),
            })?,
        },
    }
    Ok(true)
}
