//! `ollamars run MODEL [PROMPT...]`: one prompt (from the arguments and/or piped stdin), an
//! embedding, or the interactive session when both ends are a terminal.

use std::io::{IsTerminal, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};

use super::CliError;
use super::display::{DisplayOptions, Reply};
use super::timing::summary;
use super::wrap::WordWrap;
use crate::api::{
    ChatRequest, EmbedRequest, KeepAlive, Message, Metrics, RunParams, ShowRequest, ShowResponse,
    ThinkLevel, ThinkValue,
};
use crate::client::{Client, ClientError};

/// The flags of `ollamars run` (the doc comments are its `--help`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// The model.
    pub model: String,
    /// The prompt (piped standard input goes before it). Without one, on a terminal, an
    /// interactive session starts.
    pub prompt: Vec<String>,
    /// Duration to keep the model loaded (e.g. 5m, 1h30m; negative means forever).
    #[arg(long)]
    pub keepalive: Option<String>,
    /// Show timings for the response.
    #[arg(long)]
    pub verbose: bool,
    /// Use an insecure registry (plain http) when the model has to be pulled.
    #[arg(long)]
    pub insecure: bool,
    /// Don't wrap words to the next line automatically.
    #[arg(long)]
    pub nowordwrap: bool,
    /// Response format: json, or a JSON schema.
    #[arg(long)]
    pub format: Option<String>,
    /// Thinking: true, false, or a level (low, medium, high, max) for models that think.
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "VALUE"
    )]
    pub think: Option<String>,
    /// Hide the model's thinking (when it thinks).
    #[arg(long)]
    pub hidethinking: bool,
    /// Embedding models: truncate inputs longer than the context (the server's default
    /// is true; --truncate=false makes that an error).
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub truncate: Option<bool>,
    /// Embedding models: cut the vectors to this many dimensions.
    #[arg(long, value_name = "N")]
    pub dimensions: Option<u32>,
}

/// `--think` / `/set think` values: `true`, `false`, or a level.
pub(crate) fn think_value(text: &str) -> Result<ThinkValue, String> {
    let level = |l| Ok(ThinkValue::Level(l));
    match text {
        "" | "true" => Ok(ThinkValue::Bool(true)),
        "false" => Ok(ThinkValue::Bool(false)),
        "low" => level(ThinkLevel::Low),
        "medium" => level(ThinkLevel::Medium),
        "high" => level(ThinkLevel::High),
        "max" => level(ThinkLevel::Max),
        other => Err(format!(
            "invalid value for think: {other:?} (must be true, false, low, medium, high, or max)"
        )),
    }
}

/// `--keepalive`: a Go duration; negative is forever (sent as `-1`), otherwise it is sent as
/// Go's text of the duration.
pub(crate) fn keep_alive_flag(text: &str) -> Result<KeepAlive, crate::duration::DurationError> {
    crate::duration::parse_go(text).map(keep_alive_from_nanos)
}

/// A parsed `--keepalive` (signed nanoseconds, at most Go's range) as the request's value.
fn keep_alive_from_nanos(nanos: i128) -> KeepAlive {
    u64::try_from(nanos).map_or(KeepAlive::Forever, |n| {
        KeepAlive::For(Duration::from_nanos(n))
    })
}

/// `--format`: `json`, or a JSON schema object.
pub(crate) fn format_value(text: &str) -> Result<Option<Value>, String> {
    match text.trim() {
        "" => Ok(None),
        "json" => Ok(Some(Value::from("json"))),
        other => match serde_json::from_str::<Value>(other) {
            Ok(v @ Value::Object(_)) => Ok(Some(v)),
            _ => Err(format!(
                "invalid format {other:?}: use 'json' or a JSON schema object"
            )),
        },
    }
}

/// The prompt: piped input first, then the argument words.
pub(crate) fn join_prompt(stdin: Option<&str>, words: &[String]) -> String {
    let args = words.join(" ");
    match stdin.map(str::trim_end).filter(|s| !s.is_empty()) {
        None => args,
        Some(piped) if args.is_empty() => piped.to_string(),
        Some(piped) => format!("{piped}\n\n{args}"),
    }
}

/// Whether a model only embeds (capabilities has `embedding` and no `completion`).
pub(crate) fn embedding_only(info: &ShowResponse) -> bool {
    let caps = &info.capabilities;
    caps.iter().any(|c| c == "embedding") && !caps.iter().any(|c| c == "completion")
}

/// A Modelfile MESSAGE of a `show` response (`role` and `content`; anything else is left
/// out, and a field that is not a string reads as empty).
fn loaded_message(v: &Value) -> Message {
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    Message::new(field("role"), field("content"))
}

/// What a user sees for a model the server does not have.
pub(crate) fn not_found(model: &str) -> CliError {
    CliError::Message(format!(
        "model '{model}' not found\n\
         Pull it with 'ollamars pull {model}', or create it from a GGUF file with \
         'ollamars create {model} -f Modelfile'"
    ))
}

/// `POST /api/show`, with a 404 worded for the user.
pub(crate) async fn show_model(client: &Client, model: &str) -> Result<ShowResponse, CliError> {
    match client.show(&ShowRequest::new(model)).await {
        Err(e) if e.status() == Some(404) => Err(not_found(model)),
        other => Ok(other?),
    }
}

/// The columns to wrap at: `columns` (`COLUMNS`), else the terminal's width, else 80.
pub(crate) fn terminal_columns(columns: Option<usize>) -> usize {
    columns
        .or_else(|| terminal_size::terminal_size().map(|(w, _)| usize::from(w.0)))
        .unwrap_or(80)
}

/// Everything a conversation with a model carries between requests.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The model.
    pub model: String,
    /// Its capabilities (from `show`).
    pub capabilities: Vec<String>,
    /// Its Modelfile MESSAGEs (the server adds them itself; kept for `/save`).
    pub loaded_messages: Vec<Message>,
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// A system message set in this session.
    pub system: String,
    /// Options set in this session.
    pub options: Map<String, Value>,
    /// `format`.
    pub format: Option<Value>,
    /// `think`.
    pub think: Option<ThinkValue>,
    /// Whether `think` was chosen by the user (else it follows the model's capabilities).
    pub think_explicit: bool,
    /// Hide the model's thinking.
    pub hide_thinking: bool,
    /// `keep_alive`.
    pub keep_alive: Option<KeepAlive>,
    /// Word wrap (on a terminal).
    pub word_wrap: bool,
    /// Timings after each reply.
    pub verbose: bool,
    /// `COLUMNS` ([`crate::config::Config::columns`]): the width to wrap at instead of the
    /// terminal's.
    pub columns: Option<usize>,
}

impl Session {
    /// Takes the model's details from its `show` response: capabilities, MESSAGEs and, unless
    /// the user chose, thinking on for models that think.
    pub(crate) fn adopt(&mut self, model: &str, info: &ShowResponse) {
        self.model = model.to_string();
        self.capabilities = info.capabilities.clone();
        self.loaded_messages = info.messages.iter().map(loaded_message).collect();
        if !self.think_explicit {
            self.think = self
                .capabilities
                .iter()
                .any(|c| c == "thinking")
                .then_some(ThinkValue::Bool(true));
        }
    }

    /// Whether the model takes images (`vision` in its capabilities): then image paths in a
    /// prompt are attached.
    pub(crate) fn vision(&self) -> bool {
        self.capabilities.iter().any(|c| c == "vision")
    }

    /// A streamed `/api/chat` request for `messages`.
    pub(crate) fn chat_request(&self, messages: &[Message]) -> ChatRequest {
        ChatRequest {
            run: RunParams {
                model: self.model.clone(),
                format: self.format.clone().unwrap_or(Value::Null),
                options: (!self.options.is_empty()).then(|| self.options.clone()),
                think: self.think,
                keep_alive: self.keep_alive,
                stream: Some(true),
                ..RunParams::default()
            },
            messages: messages.to_vec(),
            ..ChatRequest::default()
        }
    }

    /// How replies are shown now.
    pub(crate) fn display(&self) -> DisplayOptions {
        let tty = std::io::stdout().is_terminal();
        DisplayOptions {
            wrap: if self.word_wrap && tty {
                WordWrap::for_terminal(terminal_columns(self.columns))
            } else {
                None
            },
            plain: !tty,
            hide_thinking: self.hide_thinking,
        }
    }

    /// Loads the model (chat with no messages) so the first reply does not wait for it.
    pub(crate) async fn load(&self, client: &Client) -> Result<(), ClientError> {
        let spinner = Spinner::start(std::io::stderr().is_terminal());
        let req = ChatRequest {
            run: RunParams {
                model: self.model.clone(),
                // A model that cannot think fails here, before the first prompt.
                think: self.think,
                keep_alive: self.keep_alive,
                ..RunParams::default()
            },
            ..ChatRequest::default()
        };
        let r = client.chat(&req, |_| {}).await;
        spinner.stop();
        r
    }
}

/// How a streamed reply ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The server finished it, with the final chunk's metrics.
    Done(Reply, Metrics),
    /// The user pressed Ctrl-C (the request was dropped, which stops the generation).
    Cancelled(Reply),
}

/// A spinner on stderr while waiting for the first output.
pub(crate) struct Spinner {
    active: Arc<Mutex<bool>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Spinner {
    /// Starts spinning after a moment, if `enabled`.
    pub(crate) fn start(enabled: bool) -> Spinner {
        let active = Arc::new(Mutex::new(enabled));
        let task = enabled.then(|| {
            let active = active.clone();
            tokio::spawn(async move {
                const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
                for frame in FRAMES.iter().cycle() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let Ok(on) = active.lock() else { break };
                    if !*on {
                        break;
                    }
                    let mut err = std::io::stderr().lock();
                    let _ = write!(err, "\r{frame} ");
                    let _ = err.flush();
                }
            })
        });
        Spinner { active, task }
    }

    /// Stops and erases it (idempotent).
    pub(crate) fn stop(&self) {
        if let Ok(mut on) = self.active.lock()
            && *on
        {
            *on = false;
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop();
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

fn write_out(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Streams a `/api/chat` reply to stdout. With `cancellable`, Ctrl-C ends it early.
pub(crate) async fn stream_chat(
    client: &Client,
    req: &ChatRequest,
    display: DisplayOptions,
    cancellable: bool,
) -> Result<Outcome, ClientError> {
    let mut reply = Reply::new(display);
    let mut last = Metrics::default();
    let spinner = Spinner::start(std::io::stderr().is_terminal());
    let finished = {
        let request = client.chat(req, |chunk| {
            let msg = &chunk.message;
            let out = reply.chunk(&msg.thinking, &msg.content, &msg.tool_calls);
            if !out.is_empty() {
                spinner.stop();
                write_out(&out);
            }
            if chunk.done {
                last = chunk.metrics;
            }
        });
        let interrupt = async {
            if cancellable {
                let _ = tokio::signal::ctrl_c().await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            r = request => Some(r),
            () = interrupt => None,
        }
    };
    spinner.stop();
    write_out(&reply.finish());
    match finished {
        None => Ok(Outcome::Cancelled(reply)),
        Some(Ok(())) => Ok(Outcome::Done(reply, last)),
        Some(Err(e)) => {
            // The error goes to stderr on a line of its own.
            if reply.wrote {
                write_out("\n");
            }
            Err(e)
        }
    }
}

/// `ollamars run`.
pub(crate) async fn run(
    client: &Client,
    config: &crate::config::Config,
    args: RunArgs,
) -> Result<(), CliError> {
    let think = args
        .think
        .as_deref()
        .map(think_value)
        .transpose()
        .map_err(CliError::Message)?;
    let keep_alive = args
        .keepalive
        .as_deref()
        .map(keep_alive_flag)
        .transpose()
        .map_err(|e| CliError::Message(e.to_string()))?;
    let format = format_value(args.format.as_deref().unwrap_or("")).map_err(CliError::Message)?;

    let stdin_tty = std::io::stdin().is_terminal();
    let stdout_tty = std::io::stdout().is_terminal();
    let piped = if stdin_tty {
        None
    } else {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::Message(format!("cannot read standard input: {e}")))?;
        Some(text)
    };
    let prompt = join_prompt(piped.as_deref(), &args.prompt);
    let interactive = stdin_tty && stdout_tty && args.prompt.is_empty();

    // Like Ollama, a model the server does not have is pulled first.
    let info = match client.show(&ShowRequest::new(&args.model)).await {
        Err(e) if e.status() == Some(404) => {
            super::pull::transfer(
                client,
                super::pull::Direction::Pull,
                &args.model,
                args.insecure,
            )
            .await?;
            show_model(client, &args.model).await?
        }
        other => other?,
    };
    let mut session = Session {
        model: args.model.clone(),
        capabilities: Vec::new(),
        loaded_messages: Vec::new(),
        messages: Vec::new(),
        system: String::new(),
        options: Map::new(),
        format,
        think_explicit: think.is_some(),
        think,
        hide_thinking: args.hidethinking,
        keep_alive,
        word_wrap: !args.nowordwrap,
        verbose: args.verbose,
        columns: config.columns,
    };
    session.adopt(&args.model, &info);

    if embedding_only(&info) {
        if prompt.is_empty() {
            return Err(CliError::Message(format!(
                "embedding models need input text: ollamars run {} \"your text here\"",
                args.model
            )));
        }
        return embed(client, &session, &prompt, &args).await;
    }

    if interactive {
        session.load(client).await?;
        for m in &session.loaded_messages {
            match m.role.as_str() {
                "user" => println!(">>> {}", m.content),
                "assistant" => {
                    let mut r = Reply::new(session.display());
                    write_out(&r.chunk("", &m.content, &[]));
                    write_out("\n\n");
                }
                _ => {}
            }
        }
        return super::repl::run(client, config, session).await;
    }

    let messages: Vec<Message> = if prompt.is_empty() {
        Vec::new()
    } else {
        vec![super::attach::user_message(&prompt, session.vision())]
    };
    let req = session.chat_request(&messages);
    match stream_chat(client, &req, session.display(), false).await? {
        Outcome::Done(_, last) => {
            if !prompt.is_empty() {
                write_out("\n\n");
            }
            if session.verbose {
                eprint!("{}", summary(&last));
            }
        }
        Outcome::Cancelled(_) => {}
    }
    Ok(())
}

/// Embeds `input` and prints the vector as a JSON array.
async fn embed(
    client: &Client,
    session: &Session,
    input: &str,
    args: &RunArgs,
) -> Result<(), CliError> {
    let req = EmbedRequest {
        model: session.model.clone(),
        input: Value::from(input),
        truncate: args.truncate,
        dimensions: args.dimensions.filter(|d| *d > 0).map(i64::from),
        keep_alive: session.keep_alive,
        ..EmbedRequest::default()
    };
    let resp = client.embed(&req).await?;
    let first = resp
        .embeddings
        .first()
        .ok_or_else(|| CliError::Message("no embeddings returned".into()))?;
    let text = serde_json::to_string(first).map_err(|e| CliError::Message(e.to_string()))?;
    println!("{text}");
    if session.verbose {
        eprint!(
            "{}",
            summary(&Metrics {
                total_duration: resp.total_duration,
                load_duration: resp.load_duration,
                prompt_eval_count: resp.prompt_eval_count,
                ..Metrics::default()
            })
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A value as it goes on the wire.
    fn wire<T: serde::Serialize>(r: Result<T, String>) -> Result<Value, String> {
        r.map(|v| json!(v))
    }

    #[test]
    fn think_values() {
        assert_eq!(wire(think_value("true")), Ok(json!(true)));
        assert_eq!(wire(think_value("")), Ok(json!(true)));
        assert_eq!(wire(think_value("false")), Ok(json!(false)));
        assert_eq!(wire(think_value("high")), Ok(json!("high")));
        assert_eq!(wire(think_value("max")), Ok(json!("max")));
        assert_eq!(wire(think_value("low")), Ok(json!("low")));
        assert_eq!(wire(think_value("medium")), Ok(json!("medium")));
        assert!(think_value("extreme").is_err());
        assert!(think_value("TRUE").is_err());
    }

    #[test]
    fn format_values() {
        assert_eq!(format_value(""), Ok(None));
        assert_eq!(format_value("json"), Ok(Some(json!("json"))));
        assert_eq!(
            format_value(r#"{"type":"object"}"#),
            Ok(Some(json!({"type": "object"})))
        );
        assert!(format_value("xml").is_err());
        assert!(format_value("[1]").is_err());
    }

    #[test]
    fn prompt_joining() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(join_prompt(None, &words(&["why", "is", "it"])), "why is it");
        assert_eq!(
            join_prompt(Some("file text\n"), &words(&["summarize"])),
            "file text\n\nsummarize"
        );
        assert_eq!(join_prompt(Some("only piped\n"), &[]), "only piped");
        assert_eq!(join_prompt(Some("\n"), &words(&["x"])), "x");
        assert_eq!(join_prompt(None, &[]), "");
    }

    #[test]
    fn keep_alive_as_sent() {
        assert_eq!(json!(keep_alive_from_nanos(-1)), json!(-1));
        assert_eq!(json!(keep_alive_from_nanos(0)), json!("0s"));
        assert_eq!(
            json!(keep_alive_from_nanos(10 * 60 * 1_000_000_000)),
            json!("10m0s")
        );
        // The flag's text, through Go's parser.
        assert_eq!(json!(keep_alive_flag("-1m").unwrap()), json!(-1));
        assert_eq!(json!(keep_alive_flag("1h30m").unwrap()), json!("1h30m0s"));
        assert_eq!(json!(keep_alive_flag("0").unwrap()), json!("0s"));
        assert_eq!(
            json!(keep_alive_flag("1h0m0.000000001s").unwrap()),
            json!("1h0m0.000000001s")
        );
        assert_eq!(
            keep_alive_flag("5").unwrap_err().to_string(),
            "time: missing unit in duration \"5\""
        );
        assert!(keep_alive_flag(" 5m").is_err());
    }

    /// A `show` response as the server sends it.
    fn info(v: Value) -> ShowResponse {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn embedding_detection() {
        assert!(embedding_only(&info(
            json!({"capabilities": ["embedding"]})
        )));
        assert!(!embedding_only(&info(
            json!({"capabilities": ["embedding", "completion"]})
        )));
        assert!(!embedding_only(&info(
            json!({"capabilities": ["completion"]})
        )));
        assert!(!embedding_only(&info(json!({}))));
    }

    #[test]
    fn loaded_messages_keep_role_and_content() {
        let mut s = session();
        s.adopt(
            "m",
            &info(json!({"messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello", "extra": 1},
                {"role": "User", "content": 5}
            ]})),
        );
        assert_eq!(
            s.loaded_messages,
            [
                Message::new("user", "hi"),
                Message::new("assistant", "hello"),
                Message::new("User", "")
            ]
        );
    }

    fn session() -> Session {
        Session {
            model: "m".into(),
            capabilities: vec![],
            loaded_messages: vec![],
            messages: vec![],
            system: String::new(),
            options: Map::new(),
            format: None,
            think: None,
            think_explicit: false,
            hide_thinking: false,
            keep_alive: None,
            word_wrap: true,
            verbose: false,
            columns: None,
        }
    }

    #[test]
    fn thinking_follows_capabilities_unless_chosen() {
        let mut s = session();
        s.adopt(
            "a",
            &info(json!({"capabilities": ["completion", "thinking"]})),
        );
        assert_eq!(s.think, Some(ThinkValue::Bool(true)));
        s.adopt("b", &info(json!({"capabilities": ["completion"]})));
        assert_eq!(s.think, None);
        s.think = Some(ThinkValue::Bool(false));
        s.think_explicit = true;
        s.adopt("c", &info(json!({"capabilities": ["thinking"]})));
        assert_eq!(s.think, Some(ThinkValue::Bool(false)));
    }

    #[test]
    fn chat_bodies() {
        let mut s = session();
        let msgs = [Message::new("user", "hi")];
        assert_eq!(
            json!(s.chat_request(&msgs)),
            json!({"model": "m", "messages": msgs, "stream": true})
        );
        s.format = Some(json!("json"));
        s.options.insert("num_predict".into(), json!(5));
        s.think = Some(ThinkValue::Level(ThinkLevel::Low));
        s.keep_alive = keep_alive_flag("10m").ok();
        let b = json!(s.chat_request(&msgs));
        assert_eq!(b["format"], "json");
        assert_eq!(b["options"], json!({"num_predict": 5}));
        assert_eq!(b["think"], "low");
        assert_eq!(b["keep_alive"], "10m0s");
    }

    #[test]
    fn not_found_names_the_model_and_the_way_out() {
        let text = not_found("nope").to_string();
        assert!(text.starts_with("model 'nope' not found\n"), "{text}");
        assert!(text.contains("ollamars create nope"), "{text}");
        assert!(text.contains("ollamars pull nope"), "{text}");
    }
}
