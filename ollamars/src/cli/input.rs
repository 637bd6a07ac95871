//! The interactive session's input: `"""` multi-line messages, slash commands, and
//! `/set parameter` values typed like Modelfile PARAMETERs.

use serde_json::{Map, Value};

use crate::modelfile::{ParamKind, param_kind};

/// A `/set` command.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Set {
    /// `/set` alone, or `/set system` without text: the help.
    Usage,
    /// `/set parameter` without a name and value: the parameter help.
    ParameterUsage,
    /// `/set parameter NAME VALUE...`.
    Parameter {
        /// The option name.
        name: String,
        /// The values (several only for `stop`).
        values: Vec<String>,
    },
    /// `/set system TEXT` (possibly gathered over several lines).
    System(String),
    /// `/set history` / `/set nohistory`.
    History(bool),
    /// `/set wordwrap` / `/set nowordwrap`.
    WordWrap(bool),
    /// `/set format json`.
    FormatJson,
    /// `/set format` with anything but `json`.
    FormatInvalid,
    /// `/set noformat`.
    NoFormat,
    /// `/set verbose` / `/set quiet`.
    Verbose(bool),
    /// `/set think [LEVEL]`.
    Think(Option<String>),
    /// `/set nothink`.
    NoThink,
    /// Anything else after `/set`.
    Unknown(String),
}

/// A slash command.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    /// `/?` or `/help`, with an optional topic (`set`, `show`, `shortcuts`).
    Help(Option<String>),
    /// `/set ...`.
    Set(Set),
    /// `/show [WHAT]`.
    Show(Option<String>),
    /// `/load MODEL`; `None` when the argument count is wrong.
    Load(Option<String>),
    /// `/save MODEL`; `None` when the argument count is wrong.
    Save(Option<String>),
    /// `/clear`.
    Clear,
    /// `/list [PREFIX]`.
    List(Option<String>),
    /// `/bye` or `/exit`.
    Bye,
    /// An unknown command (its first word).
    Unknown(String),
}

/// What one input line amounts to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// Nothing to do (an empty line).
    Nothing,
    /// A multi-line input continues: read another line (with the continuation prompt).
    More,
    /// Send this message.
    Send(String),
    /// Run this command.
    Command(Command),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Multiline {
    None,
    Message,
    System,
}

/// Assembles input lines into messages and commands.
#[derive(Debug)]
pub(crate) struct Input {
    buf: String,
    mode: Multiline,
    /// Whether the model takes images: then a line starting with an image path (`/tmp/a.png
    /// what is this?`) is a message, not an unknown command.
    pub(crate) images: bool,
}

impl Input {
    /// No input yet.
    pub(crate) fn new() -> Input {
        Input {
            buf: String::new(),
            mode: Multiline::None,
            images: false,
        }
    }

    /// Whether a multi-line input is open (the continuation prompt is due).
    pub(crate) fn continuing(&self) -> bool {
        self.mode != Multiline::None
    }

    /// Drops a half-typed multi-line input (Ctrl-C).
    pub(crate) fn reset(&mut self) {
        self.buf.clear();
        self.mode = Multiline::None;
    }

    /// Takes one line as typed (or pasted: it may hold newlines).
    pub(crate) fn feed(&mut self, line: &str) -> Step {
        if self.mode != Multiline::None {
            let (text, closed) = match line.strip_suffix(r#"""""#) {
                Some(t) => (t, true),
                None => (line, false),
            };
            self.buf.push_str(text);
            if !closed {
                self.buf.push('\n');
                return Step::More;
            }
            let text = std::mem::take(&mut self.buf);
            let mode = std::mem::replace(&mut self.mode, Multiline::None);
            return match mode {
                Multiline::System => Step::Command(Command::Set(Set::System(text))),
                _ if text.trim().is_empty() => Step::Nothing,
                _ => Step::Send(text),
            };
        }
        if let Some(rest) = line.strip_prefix(r#"""""#) {
            return match rest.strip_suffix(r#"""""#) {
                Some(t) if t.trim().is_empty() => Step::Nothing,
                Some(t) => Step::Send(t.to_string()),
                None => {
                    self.buf = format!("{rest}\n");
                    self.mode = Multiline::Message;
                    Step::More
                }
            };
        }
        if line.starts_with('/') {
            return self.command(line);
        }
        if line.trim().is_empty() {
            Step::Nothing
        } else {
            Step::Send(line.to_string())
        }
    }

    fn command(&mut self, line: &str) -> Step {
        let args: Vec<&str> = line.split_whitespace().collect();
        let arg = |i: usize| args.get(i).map(|s| (*s).to_string());
        let cmd = match args[0] {
            "/?" | "/help" => Command::Help(arg(1)),
            "/bye" | "/exit" => Command::Bye,
            "/clear" => Command::Clear,
            "/list" | "/ls" => Command::List(arg(1)),
            "/show" => Command::Show(arg(1)),
            "/load" => Command::Load(if args.len() == 2 { arg(1) } else { None }),
            "/save" => Command::Save(if args.len() == 2 { arg(1) } else { None }),
            "/set" => match args.get(1).copied() {
                None => Command::Set(Set::Usage),
                Some("system") => return self.set_system(&args[2..]),
                Some(sub) => Command::Set(set(sub, &args[2..])),
            },
            other
                if self.images
                    && super::attach::file_names(line)
                        .iter()
                        .any(|f| f.starts_with(other)) =>
            {
                return Step::Send(line.to_string());
            }
            other => Command::Unknown(other.to_string()),
        };
        Step::Command(cmd)
    }

    /// `/set system TEXT`, where TEXT may open a `"""` block.
    fn set_system(&mut self, words: &[&str]) -> Step {
        if words.is_empty() {
            return Step::Command(Command::Set(Set::Usage));
        }
        let text = words.join(" ");
        match text.strip_prefix(r#"""""#) {
            None => Step::Command(Command::Set(Set::System(text))),
            Some(rest) => match rest.strip_suffix(r#"""""#) {
                Some(t) => Step::Command(Command::Set(Set::System(t.to_string()))),
                None => {
                    self.buf = if rest.is_empty() {
                        String::new()
                    } else {
                        format!("{rest}\n")
                    };
                    self.mode = Multiline::System;
                    Step::More
                }
            },
        }
    }
}

fn set(sub: &str, rest: &[&str]) -> Set {
    match sub {
        "parameter" if rest.len() < 2 => Set::ParameterUsage,
        "parameter" => Set::Parameter {
            name: rest[0].to_string(),
            values: rest[1..].iter().map(|s| (*s).to_string()).collect(),
        },
        "history" => Set::History(true),
        "nohistory" => Set::History(false),
        "wordwrap" => Set::WordWrap(true),
        "nowordwrap" => Set::WordWrap(false),
        "format" if rest.first() == Some(&"json") => Set::FormatJson,
        "format" => Set::FormatInvalid,
        "noformat" => Set::NoFormat,
        "verbose" => Set::Verbose(true),
        "quiet" => Set::Verbose(false),
        "think" => Set::Think(rest.first().map(|s| (*s).to_string())),
        "nothink" => Set::NoThink,
        other => Set::Unknown(other.to_string()),
    }
}

/// Go's `strconv.ParseBool` spellings.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// A `/set parameter` value, typed like the Modelfile PARAMETER of that name. The error text
/// is Ollama's (`unknown parameter 'x'`, `invalid int value [abc]`).
pub(crate) fn parameter_value(name: &str, values: &[String]) -> Result<Value, String> {
    let Some(kind) = param_kind(name) else {
        return Err(format!("unknown parameter '{name}'"));
    };
    let first = values.first().map_or("", String::as_str);
    let bad = |kind: &str| format!("invalid {kind} value [{}]", values.join(" "));
    Ok(match kind {
        ParamKind::Int => Value::from(first.parse::<i64>().map_err(|_| bad("int"))?),
        ParamKind::Float => first
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| bad("float"))?,
        ParamKind::Bool => Value::Bool(parse_bool(first).ok_or_else(|| bad("bool"))?),
        ParamKind::StringList => Value::from(values.to_vec()),
    })
}

/// Sets a session option: `stop` adds to the stop strings already set; others replace.
pub(crate) fn set_option(options: &mut Map<String, Value>, name: &str, value: Value) {
    if let (Some(Value::Array(have)), Value::Array(add)) = (options.get_mut(name), &value) {
        for v in add {
            if !have.contains(v) {
                have.push(v.clone());
            }
        }
        return;
    }
    options.insert(name.to_string(), value);
}

/// An option value as `/show parameters` lists it (Go's `%v`: lists as `[a b]`).
pub(crate) fn option_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(option_text).collect::<Vec<_>>().join(" ")
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cmd(line: &str) -> Command {
        match Input::new().feed(line) {
            Step::Command(c) => c,
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    #[test]
    fn plain_lines_are_messages() {
        let mut i = Input::new();
        assert_eq!(i.feed("hello there"), Step::Send("hello there".into()));
        assert_eq!(i.feed(""), Step::Nothing);
        assert_eq!(i.feed("   "), Step::Nothing);
        assert!(!i.continuing());
    }

    #[test]
    fn a_line_starting_with_an_image_path_is_a_message_for_vision_models() {
        let line = "/tmp/my cat.png what is this?";
        let mut i = Input::new();
        assert_eq!(
            i.feed(line),
            Step::Command(Command::Unknown("/tmp/my".into()))
        );
        i.images = true;
        assert_eq!(i.feed(line), Step::Send(line.into()));
        assert_eq!(i.feed("/tmp/a.png"), Step::Send("/tmp/a.png".into()));
        // Commands stay commands, and other words unknown.
        assert_eq!(i.feed("/bye"), Step::Command(Command::Bye));
        assert_eq!(
            i.feed("/nope a.txt"),
            Step::Command(Command::Unknown("/nope".into()))
        );
        // As in Ollama, a candidate may span spaces, so this one reads as a path.
        assert_eq!(i.feed("/nope ./a.png"), Step::Send("/nope ./a.png".into()));
    }

    #[test]
    fn triple_quotes_gather_lines() {
        let mut i = Input::new();
        assert_eq!(i.feed(r#""""first line"#), Step::More);
        assert!(i.continuing());
        assert_eq!(i.feed("second line"), Step::More);
        assert_eq!(
            i.feed(r#"third""""#),
            Step::Send("first line\nsecond line\nthird".into())
        );
        assert!(!i.continuing());
        // Commands are text inside a block.
        assert_eq!(i.feed(r#"""""#), Step::More);
        assert_eq!(i.feed("/bye"), Step::More);
        assert_eq!(i.feed(r#"""""#), Step::Send("\n/bye\n".into()));
        // One line, opened and closed.
        assert_eq!(i.feed(r#""""hi""""#), Step::Send("hi".into()));
        assert_eq!(i.feed(&"\"".repeat(6)), Step::Nothing);
    }

    #[test]
    fn reset_drops_an_open_block() {
        let mut i = Input::new();
        assert_eq!(i.feed(r#""""abc"#), Step::More);
        i.reset();
        assert!(!i.continuing());
        assert_eq!(i.feed("x"), Step::Send("x".into()));
    }

    #[test]
    fn commands() {
        assert_eq!(cmd("/bye"), Command::Bye);
        assert_eq!(cmd("/exit"), Command::Bye);
        assert_eq!(cmd("/?"), Command::Help(None));
        assert_eq!(cmd("/help set"), Command::Help(Some("set".into())));
        assert_eq!(cmd("/? shortcuts"), Command::Help(Some("shortcuts".into())));
        assert_eq!(cmd("/clear"), Command::Clear);
        assert_eq!(cmd("/list"), Command::List(None));
        assert_eq!(cmd("/list sm"), Command::List(Some("sm".into())));
        assert_eq!(cmd("/show"), Command::Show(None));
        assert_eq!(
            cmd("/show parameters"),
            Command::Show(Some("parameters".into()))
        );
        assert_eq!(cmd("/load other"), Command::Load(Some("other".into())));
        assert_eq!(cmd("/load"), Command::Load(None));
        assert_eq!(cmd("/load a b"), Command::Load(None));
        assert_eq!(cmd("/save mine"), Command::Save(Some("mine".into())));
        assert_eq!(cmd("/byebye"), Command::Unknown("/byebye".into()));
        assert_eq!(cmd("/nope x"), Command::Unknown("/nope".into()));
    }

    #[test]
    fn set_commands() {
        let set = |l: &str| match cmd(l) {
            Command::Set(s) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(set("/set"), Set::Usage);
        assert_eq!(set("/set parameter"), Set::ParameterUsage);
        assert_eq!(set("/set parameter num_predict"), Set::ParameterUsage);
        assert_eq!(
            set("/set parameter stop <a> <b>"),
            Set::Parameter {
                name: "stop".into(),
                values: vec!["<a>".into(), "<b>".into()]
            }
        );
        assert_eq!(set("/set history"), Set::History(true));
        assert_eq!(set("/set nohistory"), Set::History(false));
        assert_eq!(set("/set wordwrap"), Set::WordWrap(true));
        assert_eq!(set("/set nowordwrap"), Set::WordWrap(false));
        assert_eq!(set("/set format json"), Set::FormatJson);
        assert_eq!(set("/set format xml"), Set::FormatInvalid);
        assert_eq!(set("/set format"), Set::FormatInvalid);
        assert_eq!(set("/set noformat"), Set::NoFormat);
        assert_eq!(set("/set verbose"), Set::Verbose(true));
        assert_eq!(set("/set quiet"), Set::Verbose(false));
        assert_eq!(set("/set think"), Set::Think(None));
        assert_eq!(set("/set think high"), Set::Think(Some("high".into())));
        assert_eq!(set("/set nothink"), Set::NoThink);
        assert_eq!(set("/set colour"), Set::Unknown("colour".into()));
        assert_eq!(set("/set system"), Set::Usage);
        assert_eq!(
            set("/set system You are   a pirate."),
            Set::System("You are a pirate.".into())
        );
        assert_eq!(
            set(r#"/set system """Be brief.""""#),
            Set::System("Be brief.".into())
        );
    }

    #[test]
    fn multi_line_system() {
        let mut i = Input::new();
        assert_eq!(i.feed(r#"/set system """You are"#), Step::More);
        assert_eq!(i.feed("a pirate."), Step::More);
        assert_eq!(
            i.feed(r#"Arr""""#),
            Step::Command(Command::Set(Set::System("You are\na pirate.\nArr".into())))
        );
        assert_eq!(i.feed(r#"/set system """"#), Step::More);
        assert_eq!(
            i.feed(r#"Be kind.""""#),
            Step::Command(Command::Set(Set::System("Be kind.".into())))
        );
    }

    #[test]
    fn parameter_types() {
        let v = |n: &str, vals: &[&str]| {
            parameter_value(n, &vals.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(v("num_predict", &["5"]), Ok(json!(5)));
        assert_eq!(v("seed", &["-1"]), Ok(json!(-1)));
        assert_eq!(v("temperature", &["0"]), Ok(json!(0.0)));
        assert_eq!(v("top_p", &["0.9"]), Ok(json!(0.9)));
        assert_eq!(v("use_mmap", &["false"]), Ok(json!(false)));
        assert_eq!(
            v("stop", &["<|im_end|>", "###"]),
            Ok(json!(["<|im_end|>", "###"]))
        );
        assert_eq!(
            v("num_predict", &["five"]),
            Err("invalid int value [five]".into())
        );
        assert_eq!(
            v("num_ctx", &["2.5"]),
            Err("invalid int value [2.5]".into())
        );
        assert_eq!(
            v("temperature", &["hot"]),
            Err("invalid float value [hot]".into())
        );
        assert_eq!(
            v("temperature", &["NaN"]),
            Err("invalid float value [NaN]".into())
        );
        assert_eq!(
            v("use_mmap", &["yes"]),
            Err("invalid bool value [yes]".into())
        );
        assert_eq!(v("tfs_z", &["1"]), Err("unknown parameter 'tfs_z'".into()));
        assert_eq!(
            v("Temperature", &["1"]),
            Err("unknown parameter 'Temperature'".into())
        );
    }

    #[test]
    fn stop_accumulates_others_replace() {
        let mut o = Map::new();
        set_option(&mut o, "stop", json!(["a"]));
        set_option(&mut o, "stop", json!(["b", "a"]));
        set_option(&mut o, "temperature", json!(0.5));
        set_option(&mut o, "temperature", json!(0.0));
        assert_eq!(
            Value::Object(o.clone()),
            json!({"stop": ["a", "b"], "temperature": 0.0})
        );
        assert_eq!(option_text(&o["stop"]), "[a b]");
        assert_eq!(option_text(&json!(5)), "5");
        assert_eq!(option_text(&json!(0.7)), "0.7");
    }
}
