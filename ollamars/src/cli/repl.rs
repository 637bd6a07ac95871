//! The interactive session of `ollamars run` (a `>>> ` prompt on rustyline).

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::{Hint, Hinter};
use rustyline::history::{DefaultHistory, History as _};
use rustyline::{
    Cmd, ConditionalEventHandler, Editor, Event, EventContext, EventHandler, KeyEvent, RepeatCount,
};
use serde_json::Value;

use super::history::HistoryFile;
use super::input::{Command, Input, Set, Step, option_text, parameter_value, set_option};
use super::run::{Outcome, Session, stream_chat, think_value};
use super::timing::summary;
use super::{CliError, show};
use crate::api::{Message, ShowRequest, ThinkValue};
use crate::client::Client;
use crate::create::{CreateMessage, CreateRequest};

const PLACEHOLDER: &str = "Send a message (/? for help)";

/// The grey placeholder shown in an empty prompt; never inserted by the right arrow.
struct Placeholder;

impl Hint for Placeholder {
    fn display(&self) -> &str {
        PLACEHOLDER
    }
    fn completion(&self) -> Option<&str> {
        None
    }
}

/// The line editor's helper: the placeholder and its colour.
struct PromptHelper {
    continuing: bool,
}

impl Hinter for PromptHelper {
    type Hint = Placeholder;
    fn hint(&self, line: &str, _pos: usize, _ctx: &rustyline::Context<'_>) -> Option<Placeholder> {
        (line.is_empty() && !self.continuing).then_some(Placeholder)
    }
}

impl Highlighter for PromptHelper {
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        Cow::Owned(format!("\x1b[38;5;245m{hint}\x1b[0m"))
    }
    fn highlight_char(&self, _line: &str, _pos: usize, _kind: CmdKind) -> bool {
        false
    }
}

impl rustyline::completion::Completer for PromptHelper {
    type Candidate = String;
}
impl rustyline::validate::Validator for PromptHelper {}
impl rustyline::Helper for PromptHelper {}

/// Ctrl-C at the prompt: notes whether the line was empty, then interrupts.
struct CtrlC(Arc<AtomicBool>);

impl ConditionalEventHandler for CtrlC {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, ctx: &EventContext) -> Option<Cmd> {
        self.0.store(ctx.line().is_empty(), Ordering::SeqCst);
        Some(Cmd::Interrupt)
    }
}

fn usage(vision: bool) {
    eprintln!("Available Commands:");
    eprintln!("  /set            Set session variables");
    eprintln!("  /show           Show model information");
    eprintln!("  /load <model>   Load a session or model");
    eprintln!("  /save <model>   Save your current session");
    eprintln!("  /clear          Clear session context");
    eprintln!("  /list           List models");
    eprintln!("  /bye            Exit");
    eprintln!("  /?, /help       Help for a command");
    eprintln!("  /? shortcuts    Help for keyboard shortcuts");
    eprintln!();
    eprintln!("Use \"\"\" to begin a multi-line message.");
    if vision {
        let path = if cfg!(windows) {
            r"\path\to\file"
        } else {
            "/path/to/file"
        };
        eprintln!("Use {path} to include .jpg, .png, or .webp images.");
    }
    eprintln!();
}

fn usage_set() {
    eprintln!("Available Commands:");
    for (cmd, what) in [
        ("/set parameter ...", "Set a parameter"),
        ("/set system <string>", "Set system message"),
        ("/set history", "Enable history"),
        ("/set nohistory", "Disable history"),
        ("/set wordwrap", "Enable wordwrap"),
        ("/set nowordwrap", "Disable wordwrap"),
        ("/set format json", "Enable JSON mode"),
        ("/set noformat", "Disable formatting"),
        ("/set verbose", "Show LLM stats"),
        ("/set quiet", "Disable LLM stats"),
        (
            "/set think [level]",
            "Enable thinking (low, medium, high, max)",
        ),
        ("/set nothink", "Disable thinking"),
    ] {
        eprintln!("  {cmd:<22} {what}");
    }
    eprintln!();
}

fn usage_show() {
    eprintln!("Available Commands:");
    for (cmd, what) in [
        ("/show info", "Show details for this model"),
        ("/show license", "Show model license"),
        ("/show modelfile", "Show Modelfile for this model"),
        ("/show parameters", "Show parameters for this model"),
        ("/show system", "Show system message"),
        ("/show template", "Show prompt template"),
    ] {
        eprintln!("  {cmd:<18} {what}");
    }
    eprintln!();
}

fn usage_shortcuts() {
    eprintln!("Available keyboard shortcuts:");
    for (key, what) in [
        ("Ctrl + a", "Move to the beginning of the line (Home)"),
        ("Ctrl + e", "Move to the end of the line (End)"),
        ("Alt + b", "Move back (left) one word"),
        ("Alt + f", "Move forward (right) one word"),
        ("Ctrl + k", "Delete the sentence after the cursor"),
        ("Ctrl + u", "Delete the sentence before the cursor"),
        ("Ctrl + w", "Delete the word before the cursor"),
        ("Ctrl + l", "Clear the screen"),
        ("Ctrl + c", "Stop the model from responding"),
        ("Ctrl + d", "Exit ollamars (/bye)"),
    ] {
        eprintln!("  {key:>8}            {what}");
    }
    eprintln!();
}

fn usage_parameters() {
    eprintln!("Available Parameters:");
    for (p, what) in [
        ("seed <int>", "Random number seed"),
        ("num_predict <int>", "Max number of tokens to predict"),
        ("top_k <int>", "Pick from top k num of tokens"),
        ("top_p <float>", "Pick token based on sum of probabilities"),
        (
            "min_p <float>",
            "Pick token based on top token probability * min_p",
        ),
        ("num_ctx <int>", "Set the context size"),
        ("temperature <float>", "Set creativity level"),
        (
            "repeat_penalty <float>",
            "How strongly to penalize repetitions",
        ),
        (
            "repeat_last_n <int>",
            "Set how far back to look for repetitions",
        ),
        ("num_gpu <int>", "The number of layers to send to the GPU"),
        ("stop <string> <string> ...", "Add stop sequences"),
    ] {
        eprintln!("  /set parameter {p:<22} {what}");
    }
    eprintln!();
}

/// Whether the session goes on after a command.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Exit,
}

/// The interactive state around a [`Session`].
struct Repl<'c> {
    client: &'c Client,
    session: Session,
    history_on: bool,
}

/// Runs the interactive session until `/bye` or Ctrl-D.
pub(crate) async fn run(
    client: &Client,
    cfg: &crate::config::Config,
    session: Session,
) -> Result<(), CliError> {
    let config = rustyline::Config::builder()
        .auto_add_history(false)
        .max_history_size(super::history::LIMIT)
        .map_err(|e| CliError::Message(e.to_string()))?
        .build();
    let mut editor: Editor<PromptHelper, DefaultHistory> = Editor::with_config(config)
        .map_err(|e| CliError::Message(format!("cannot start the line editor: {e}")))?;
    editor.set_helper(Some(PromptHelper { continuing: false }));
    let ctrl_c_on_empty = Arc::new(AtomicBool::new(false));
    editor.bind_sequence(
        KeyEvent::ctrl('C'),
        EventHandler::Conditional(Box::new(CtrlC(ctrl_c_on_empty.clone()))),
    );
    let mut file = HistoryFile::open(HistoryFile::default_path(cfg));
    for entry in file.entries() {
        let _ = editor.history_mut().add(entry);
    }
    let mut repl = Repl {
        client,
        session,
        history_on: !cfg.nohistory,
    };
    let mut input = Input::new();
    loop {
        let continuing = input.continuing();
        if let Some(h) = editor.helper_mut() {
            h.continuing = continuing;
        }
        let prompt = if continuing { "... " } else { ">>> " };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(rustyline::error::ReadlineError::Interrupted) => {
                if ctrl_c_on_empty.load(Ordering::SeqCst) && !continuing {
                    println!("\nUse Ctrl + d or /bye to exit.");
                } else {
                    println!();
                }
                input.reset();
                continue;
            }
            Err(rustyline::error::ReadlineError::Eof) => {
                println!();
                return Ok(());
            }
            Err(e) => return Err(CliError::Message(format!("reading input: {e}"))),
        };
        if repl.history_on && !line.trim().is_empty() {
            let _ = editor.add_history_entry(line.as_str());
            if let Err(e) = file.add(&line) {
                eprintln!("Warning: cannot save the history: {e}");
            }
        }
        input.images = repl.session.vision();
        let flow = match input.feed(&line) {
            Step::Nothing | Step::More => Flow::Continue,
            Step::Send(text) => {
                repl.turn(text).await;
                Flow::Continue
            }
            Step::Command(cmd) => repl.command(cmd).await,
        };
        if flow == Flow::Exit {
            return Ok(());
        }
    }
}

impl Repl<'_> {
    /// One exchange: the message, the streamed reply, and both kept in the conversation.
    async fn turn(&mut self, text: String) {
        let s = &mut self.session;
        s.messages
            .push(super::attach::user_message(&text, s.vision()));
        let req = s.chat_request(&s.messages);
        match stream_chat(self.client, &req, s.display(), true).await {
            Ok(Outcome::Done(reply, last)) => {
                s.messages.push(reply.message());
                println!("\n");
                if s.verbose {
                    eprint!("{}", summary(&last));
                }
            }
            Ok(Outcome::Cancelled(reply)) => {
                // What was said so far stays in the conversation.
                if !reply.content.is_empty() {
                    s.messages.push(reply.message());
                }
                println!("\n");
            }
            Err(e) => {
                // The message got no reply: leave it out, so it can be sent again.
                s.messages.pop();
                eprintln!("Error: {e}");
            }
        }
    }

    async fn command(&mut self, cmd: Command) -> Flow {
        match cmd {
            Command::Bye => return Flow::Exit,
            Command::Help(topic) => match topic.as_deref() {
                Some("set" | "/set") => usage_set(),
                Some("show" | "/show") => usage_show(),
                Some("shortcut" | "shortcuts") => usage_shortcuts(),
                _ => usage(self.session.vision()),
            },
            Command::Clear => {
                let s = &mut self.session;
                s.messages.clear();
                if !s.system.is_empty() {
                    s.messages.push(Message::new("system", s.system.clone()));
                }
                println!("Cleared session context");
            }
            Command::List(prefix) => {
                if let Err(e) = super::list(self.client, prefix.as_deref()).await {
                    eprintln!("Error: {e}");
                }
            }
            Command::Show(what) => self.show(what.as_deref()).await,
            Command::Load(None) => println!("Usage:\n  /load <modelname>"),
            Command::Load(Some(model)) => self.load(&model).await,
            Command::Save(None) => println!("Usage:\n  /save <modelname>"),
            Command::Save(Some(model)) => self.save(&model).await,
            Command::Set(set) => self.set(set).await,
            Command::Unknown(word) => println!("Unknown command '{word}'. Type /? for help"),
        }
        Flow::Continue
    }

    async fn set(&mut self, set: Set) {
        let s = &mut self.session;
        match set {
            Set::Usage => usage_set(),
            Set::ParameterUsage => usage_parameters(),
            Set::Parameter { name, values } => match parameter_value(&name, &values) {
                Ok(v) => {
                    set_option(&mut s.options, &name, v);
                    println!("Set parameter '{name}' to '{}'", values.join(", "));
                }
                Err(e) => println!("Couldn't set parameter: {e:?}"),
            },
            Set::System(text) => {
                s.system = text.clone();
                let msg = Message::new("system", text);
                match s.messages.last_mut() {
                    Some(last) if last.role == "system" => *last = msg,
                    _ => s.messages.push(msg),
                }
                println!("Set system message.");
            }
            Set::History(on) => {
                self.history_on = on;
                println!("Set '{}' mode.", if on { "history" } else { "nohistory" });
            }
            Set::WordWrap(on) => {
                s.word_wrap = on;
                println!("Set '{}' mode.", if on { "wordwrap" } else { "nowordwrap" });
            }
            Set::FormatJson => {
                s.format = Some(Value::from("json"));
                println!("Set format to 'json' mode.");
            }
            Set::FormatInvalid => {
                println!("Invalid or missing format. For 'json' mode use '/set format json'");
            }
            Set::NoFormat => {
                s.format = None;
                println!("Disabled format.");
            }
            Set::Verbose(on) => {
                s.verbose = on;
                println!("Set '{}' mode.", if on { "verbose" } else { "quiet" });
            }
            Set::Think(level) => match think_value(level.as_deref().unwrap_or("")) {
                Ok(v) => {
                    s.think = Some(v);
                    s.think_explicit = true;
                    self.warn_no_thinking();
                    match level {
                        Some(l) => println!("Set 'think' mode to '{l}'."),
                        None => println!("Set 'think' mode."),
                    }
                }
                Err(e) => println!("{e}"),
            },
            Set::NoThink => {
                s.think = Some(ThinkValue::Bool(false));
                s.think_explicit = true;
                self.warn_no_thinking();
                println!("Set 'nothink' mode.");
            }
            Set::Unknown(sub) => println!("Unknown command '/set {sub}'. Type /? for help"),
        }
    }

    fn warn_no_thinking(&self) {
        let s = &self.session;
        if !s.capabilities.iter().any(|c| c == "thinking") {
            eprintln!(
                "warning: model {:?} does not support thinking output",
                s.model
            );
        }
    }

    async fn show(&mut self, what: Option<&str>) {
        let Some(what) = what else {
            usage_show();
            return;
        };
        let s = &self.session;
        let req = ShowRequest {
            system: (!s.system.is_empty()).then(|| s.system.clone()),
            options: (!s.options.is_empty()).then(|| s.options.clone()),
            ..ShowRequest::new(s.model.clone())
        };
        let info = match self.client.show(&req).await {
            Ok(i) => i,
            Err(e) => {
                eprintln!("Error: couldn't get model: {e}");
                return;
            }
        };
        match what {
            "info" => print!("{}", show::overview(&info, false)),
            "license" => match &info.license {
                l if l.is_empty() => println!("No license was specified for this model."),
                l => println!("{l}"),
            },
            "modelfile" => println!("{}", info.modelfile),
            "parameters" => {
                println!("Model defined parameters:");
                let params = &info.parameters;
                if params.trim().is_empty() {
                    println!("  No additional parameters were specified for this model.");
                } else {
                    for l in params.lines() {
                        println!("  {l}");
                    }
                }
                println!();
                if !s.options.is_empty() {
                    println!("User defined parameters:");
                    for (k, v) in &s.options {
                        println!("  {k:<30} {}", option_text(v));
                    }
                    println!();
                }
            }
            "system" => {
                if !s.system.is_empty() {
                    println!("{}\n", s.system);
                } else if !info.system.is_empty() {
                    println!("{}\n", info.system);
                } else {
                    println!("No system message was specified for this model.");
                }
            }
            "template" => match &info.template {
                t if t.is_empty() => println!("No prompt template was specified for this model."),
                t => println!("{t}"),
            },
            other => println!("Unknown command '/show {other}'. Type /? for help"),
        }
    }

    async fn load(&mut self, model: &str) {
        println!("Loading model '{model}'");
        let info = match self.client.show(&ShowRequest::new(model)).await {
            Ok(i) => i,
            Err(e) if e.status() == Some(404) => {
                println!("Couldn't find model '{model}'");
                return;
            }
            Err(e) => {
                eprintln!("Error: {e}");
                return;
            }
        };
        let mut next = self.session.clone();
        next.adopt(model, &info);
        next.messages.clear();
        if let Err(e) = next.load(self.client).await {
            eprintln!("Error: {e}");
            return;
        }
        self.session = next;
    }

    async fn save(&mut self, name: &str) {
        let s = &self.session;
        let messages: Vec<CreateMessage> = s
            .loaded_messages
            .iter()
            .chain(&s.messages)
            .map(|m| CreateMessage {
                role: m.role.clone(),
                content: m.content.clone(),
            })
            .collect();
        let req = CreateRequest {
            model: Some(name.to_string()),
            from: Some(s.model.clone()),
            system: (!s.system.is_empty()).then(|| s.system.clone()),
            parameters: (!s.options.is_empty()).then(|| s.options.clone()),
            messages: (!messages.is_empty()).then_some(messages),
            ..CreateRequest::default()
        };
        match self.client.create(&req, |_| {}).await {
            Ok(()) => println!("Created new model '{name}'"),
            Err(e) if e.to_string().contains("invalid model name") => {
                println!("error: The model name '{name}' is invalid");
            }
            Err(e) => eprintln!("Error: {e}"),
        }
    }
}
