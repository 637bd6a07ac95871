//! Ollama's Go prompt templates (TEMPLATE layers), rendered with the `gotmpl` crate.
//!
//! [`Template::parse`] and [`Template::render`] follow Ollama's `template.Parse` and
//! `template.Execute` (`template/template.go`): the same data (a Go `map[string]any` of `System`,
//! `Messages`, `Tools`, …), the same three execution paths (fill-in-middle, messages, legacy turn
//! by turn with the last turn cut after `.Response`), the same collation of messages, and the same
//! functions (`json`, `currentDate`, `yesterdayDate`, `toTypeScriptType`).
//!
//! gotmpl implements Go's `text/template`; what it lacks is Go's method calls, so a small shim
//! prints Ollama's typed values (tools, tool-call arguments, property types, …) the way their Go
//! `String()` methods and `encoding/json` do. One deliberate difference from Ollama: tool
//! functions and their parameters print as JSON, not as Go struct syntax (the fix proposed for
//! ollama#14601).
//!
//! Differences that remain: a missing field of a message prints `<no value>` where Go fails;
//! `slice` inside a multi-byte character fails where Go cuts bytes; execution errors carry no
//! position; images inside a printed message show as their base64 text; and the legacy last turn
//! may call Ollama's functions (Ollama's copy of the tree loses them and fails).

mod ast;
mod goval;
mod scan;
#[cfg(test)]
mod tests;
mod types;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::NaiveDate;
use gotmpl::parse::{ListNode, Parser, Pos};
use gotmpl::{FuncMap, MissingKey, Value as GValue, ValueFunc};

pub use scan::MAX_NESTING;
pub use types::{
    Message, PropertyType, Tool, ToolCall, ToolCallFunction, ToolFunction, ToolParameters,
    ToolProperties, ToolProperty,
};

use goval::GoTypes;

/// The text of Ollama's default template.
const DEFAULT_TEMPLATE: &str = "{{ .Prompt }}";

/// The name the main template runs under (Ollama's is unnamed too).
const MAIN: &str = "";

/// Range iterations allowed in one execution (bounds hostile loops).
pub const MAX_RANGE_ITERATIONS: u64 = 10_000_000;

/// Rendered output (and any string built by `print`/`printf`) is bounded by this many bytes plus
/// four times the size of the input values.
pub const BASE_OUTPUT_LIMIT: usize = 64 << 20;

/// Why a template could not be parsed or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A syntax error, worded like Go's: `template: :3: unexpected EOF`.
    #[error("template: :{line}: {message}")]
    Parse {
        /// 1-based line of the error.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Rejected by Ollama's own checks after parsing (`undefined template specified`).
    #[error("{0}")]
    Invalid(String),
    /// Blocks nest deeper than [`MAX_NESTING`] levels.
    #[error("template: :{line}: blocks nest deeper than {limit} levels")]
    TooDeep {
        /// Line of the block that went too deep.
        line: usize,
        /// The limit.
        limit: usize,
    },
    /// Execution failed (a function error, a bad field access, a loop budget exhausted…).
    #[error("template: executing: {0}")]
    Exec(String),
    /// The output (or a string being built) grew beyond the limit.
    #[error("template: the rendered prompt exceeds {limit} bytes")]
    OutputTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

/// A parsed TEMPLATE: the original text plus its parse tree.
#[derive(Debug, Clone)]
pub struct Template {
    inner: Arc<Parsed>,
}

/// The parts of a parsed template.
#[derive(Debug)]
struct Parsed {
    text: String,
    /// The main tree (with `{{ .Response }}` appended where Ollama appends it), as parsed.
    main: ListNode,
    /// `{{define}}` / `{{block}}` bodies, rewritten for printing.
    defines: Vec<(String, ListNode)>,
    /// The main tree rewritten for printing.
    exec_main: ListNode,
    vars: BTreeSet<String>,
}

impl PartialEq for Template {
    /// Templates are equal when their texts are.
    fn eq(&self, other: &Template) -> bool {
        self.inner.text == other.inner.text
    }
}

/// What a template is rendered with: Ollama's `template.Values`. Serializable, so that the
/// server can have a runner render it (`runner::proto::PromptSource::Go`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Values {
    /// The conversation. Consecutive messages of one role (other than `tool`) are merged.
    pub messages: Vec<Message>,
    /// Tools offered to the model (`.Tools`).
    pub tools: Vec<Tool>,
    /// Only read in fill-in-middle mode (with `suffix`); otherwise the prompt comes from
    /// `messages` (Ollama's generate handler turns its prompt into a user message).
    pub prompt: String,
    /// The fill-in-middle suffix; with a non-empty `prompt` it selects fill-in-middle mode.
    pub suffix: String,
    /// `.Think`.
    pub think: bool,
    /// `.ThinkLevel` (`low`, `medium`, `high` when given as a string).
    pub think_level: String,
    /// `.IsThinkSet`: whether the request set `think` at all.
    pub is_think_set: bool,
    /// Render turn by turn even if the template uses `.Messages` (Ollama's `forceLegacy`).
    pub force_legacy: bool,
    /// The date `currentDate` prints; `None` means today's local date (not sent to runners).
    #[serde(skip)]
    pub today: Option<NaiveDate>,
}

impl Template {
    /// Parses `text` as Ollama's `template.Parse` does: Go's syntax and parse-time checks, and a
    /// `{{ .Response }}` appended when the template mentions neither `.Messages` nor `.Response`.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let scanned = scan::scan(text);
        if let Some(line) = scanned.too_deep {
            return Err(TemplateError::TooDeep {
                line,
                limit: scan::MAX_NESTING,
            });
        }
        let (mut main, define_nodes) = Parser::new(text, "{{", "}}")
            .and_then(|p| p.parse())
            .map_err(parse_error)?;
        if let Some((line, message)) = scanned.structure {
            return Err(TemplateError::Parse { line, message });
        }

        let mut defines: Vec<(String, ListNode)> = Vec::new();
        for define in define_nodes {
            let name = define.name.to_string();
            let empty = define.body.is_empty_tree();
            match defines.iter_mut().find(|(n, _)| *n == name) {
                // Go keeps a non-empty body over an empty redefinition, and refuses two bodies.
                Some(_) if empty => {}
                Some((_, existing)) if existing.is_empty_tree() => *existing = define.body,
                Some(_) => {
                    return Err(TemplateError::Parse {
                        line: define.pos.line,
                        message: format!("template: multiple definition of template {name:?}"),
                    });
                }
                None => defines.push((name, define.body)),
            }
        }

        ast::Checker::check(&main)
            .map_err(|(line, message)| TemplateError::Parse { line, message })?;
        for (_, body) in &defines {
            ast::Checker::check(body)
                .map_err(|(line, message)| TemplateError::Parse { line, message })?;
        }

        let mut names = Vec::new();
        ast::identifiers(&main, &mut names).map_err(|e| TemplateError::Invalid(e.to_string()))?;
        for (_, body) in &defines {
            ast::identifiers(body, &mut names)
                .map_err(|e| TemplateError::Invalid(e.to_string()))?;
        }
        let mut vars: BTreeSet<String> = names.iter().map(|n| n.to_lowercase()).collect();
        if !vars.contains("messages") && !vars.contains("response") {
            let line = 1 + text.matches('\n').count();
            main.nodes
                .push(ast::response_action(Pos::new(text.len(), line)));
            vars.insert("response".to_string());
        }

        let mut exec_main = main.clone();
        ast::rewrite_for_printing(&mut exec_main);
        for (_, body) in &mut defines {
            ast::rewrite_for_printing(body);
        }
        Ok(Template {
            inner: Arc::new(Parsed {
                text: text.to_string(),
                main,
                defines,
                exec_main,
                vars,
            }),
        })
    }

    /// Ollama's default template, `{{ .Prompt }}` (plus the appended `{{ .Response }}`).
    pub fn default_template() -> Template {
        Template::parse(DEFAULT_TEMPLATE).expect("the default template parses")
    }

    /// The template's text, as given to [`Template::parse`].
    pub fn text(&self) -> &str {
        &self.inner.text
    }

    /// Ollama's `Vars()`: the field and variable names the template uses, lower-cased (`$`,
    /// `$x`, `messages`, `role`, …), including the appended `response`.
    pub fn vars(&self) -> BTreeSet<String> {
        self.inner.vars.clone()
    }

    /// Whether the template renders from `.Messages` (messages mode).
    pub fn uses_messages(&self) -> bool {
        self.inner.vars.contains("messages")
    }

    /// Whether the template mentions `.Tools` (Ollama's `tools` capability).
    pub fn supports_tools(&self) -> bool {
        self.inner.vars.contains("tools")
    }

    /// Whether the template mentions `.Suffix` (Ollama's `insert` capability).
    pub fn supports_insert(&self) -> bool {
        self.inner.vars.contains("suffix")
    }

    /// The tags around thinking, inferred as Ollama's `thinking.InferTags` does: the text nodes
    /// that open and close the block printing `.Thinking` inside `range .Messages`. `None` unless
    /// both are found.
    pub fn thinking_tags(&self) -> Option<(String, String)> {
        let (open, close) = ast::thinking_tags(&self.inner.main);
        (!open.is_empty() && !close.is_empty()).then_some((open, close))
    }

    /// The text that opens a tool call, found as Ollama's `tools.parseTag` does: the first
    /// non-blank text inside the `if` on `.ToolCalls`, cut before `{` (`<tool_call>`,
    /// `[TOOL_CALLS] [`, or `{` when the calls are bare JSON). `None` when the template has no
    /// `if` on `.ToolCalls`; Ollama then uses `{` (see [`Template::tool_call_tag_or_default`]).
    pub fn tool_call_tag(&self) -> Option<String> {
        ast::tool_call_tag(&self.inner.main)
    }

    /// [`Template::tool_call_tag`], or `{` as Ollama falls back to.
    pub fn tool_call_tag_or_default(&self) -> String {
        self.tool_call_tag().unwrap_or_else(|| "{".to_string())
    }

    /// Renders the prompt as Ollama's `template.Execute` does.
    ///
    /// * **Fill-in-middle** when `prompt` and `suffix` are both set: `Prompt`, `Suffix`,
    ///   `Response` (empty) and the think values.
    /// * **Messages** when the template uses `.Messages` (and `force_legacy` is off): `System`
    ///   (every system message, joined by a blank line), `Messages`, `Tools`, `Response` (empty)
    ///   and the think values.
    /// * **Legacy** otherwise: the template runs once per (system?, user, assistant) turn with
    ///   `System`, `Prompt` and `Response`; the last turn runs a copy cut after `.Response`, so an
    ///   unfinished assistant message is continued.
    pub fn render(&self, values: &Values) -> Result<String, TemplateError> {
        let limit = output_limit(values);
        let mut out = LimitedWriter::new(limit);
        let today = values
            .today
            .unwrap_or_else(|| chrono::Local::now().date_naive());
        let (system, messages) = collate(&values.messages);
        let think = [
            ("Think", GValue::Bool(values.think)),
            ("ThinkLevel", goval::string(&values.think_level)),
            ("IsThinkSet", GValue::Bool(values.is_think_set)),
        ];

        let mut types = GoTypes::default();
        if !values.prompt.is_empty() && !values.suffix.is_empty() {
            let entries = vec![
                ("Prompt", goval::string(&values.prompt)),
                ("Suffix", goval::string(&values.suffix)),
                ("Response", goval::string("")),
            ];
            return self.run_main(entries, &think, types, today, limit, out);
        }

        if !values.force_legacy && self.uses_messages() {
            let messages = types.messages(&messages);
            let tools = types.tools(&values.tools);
            let entries = vec![
                ("System", goval::string(&system)),
                ("Messages", messages),
                ("Tools", tools),
                ("Response", goval::string("")),
            ];
            return self.run_main(entries, &think, types, today, limit, out);
        }

        let turn = |system: &str, prompt: &str, response: &str| {
            let mut entries = vec![
                ("System", goval::string(system)),
                ("Prompt", goval::string(prompt)),
                ("Response", goval::string(response)),
            ];
            entries.extend(think.iter().cloned());
            GoTypes::default().root(entries)
        };
        let full = self.runner(&self.inner.exec_main, GoTypes::default(), today, limit);
        let (mut system, mut prompt, mut response) = (String::new(), String::new(), String::new());
        for m in &messages {
            let flush = match m.role.as_str() {
                "system" => !prompt.is_empty() || !response.is_empty(),
                "user" => !response.is_empty(),
                _ => false,
            };
            if flush {
                full.run(&mut out, &turn(&system, &prompt, &response))?;
                system.clear();
                prompt.clear();
                response.clear();
            }
            match m.role.as_str() {
                "system" => system.clone_from(&m.content),
                "user" => prompt.clone_from(&m.content),
                "assistant" => response.clone_from(&m.content),
                _ => {}
            }
        }
        let mut last = ast::cut_after_response(&self.inner.main);
        ast::rewrite_for_printing(&mut last);
        let cut = self.runner(&last, GoTypes::default(), today, limit);
        cut.run(&mut out, &turn(&system, &prompt, &response))?;
        Ok(out.buf)
    }

    /// Runs the main tree once over `entries` (and the think values) into `out`.
    fn run_main(
        &self,
        mut entries: Vec<(&'static str, GValue)>,
        think: &[(&'static str, GValue)],
        mut types: GoTypes,
        today: NaiveDate,
        limit: usize,
        mut out: LimitedWriter,
    ) -> Result<String, TemplateError> {
        entries.extend(think.iter().cloned());
        let data = types.root(entries);
        self.runner(&self.inner.exec_main, types, today, limit)
            .run(&mut out, &data)?;
        Ok(out.buf)
    }

    /// A gotmpl template running `main` (with the defines) and the functions bound to `types`.
    fn runner(&self, main: &ListNode, types: GoTypes, today: NaiveDate, limit: usize) -> Runner {
        let mut t = gotmpl::Template::new(MAIN)
            .missing_key(MissingKey::ZeroValue)
            .max_range_iters(MAX_RANGE_ITERATIONS)
            .funcs(functions(Arc::new(types), today, limit));
        for (name, body) in &self.inner.defines {
            t = t.add_parse_tree(name, body.clone());
        }
        Runner(t.add_parse_tree(MAIN, main.clone()))
    }
}

/// A gotmpl template ready to execute.
struct Runner(gotmpl::Template);

impl Runner {
    fn run(&self, out: &mut LimitedWriter, data: &GValue) -> Result<(), TemplateError> {
        self.0
            .execute_template_fmt(out, MAIN, data)
            .map_err(|e| match (e, out.exceeded) {
                (_, true) => TemplateError::OutputTooLarge { limit: out.limit },
                (e, false) => TemplateError::Exec(e.to_string()),
            })
    }
}

/// A string that refuses to grow past a limit.
struct LimitedWriter {
    buf: String,
    limit: usize,
    exceeded: bool,
}

impl LimitedWriter {
    fn new(limit: usize) -> Self {
        LimitedWriter {
            buf: String::new(),
            limit,
            exceeded: false,
        }
    }
}

impl std::fmt::Write for LimitedWriter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.buf.len() + s.len() > self.limit {
            self.exceeded = true;
            return Err(std::fmt::Error);
        }
        self.buf.push_str(s);
        Ok(())
    }
}

/// The output limit for `values`: [`BASE_OUTPUT_LIMIT`] plus four times their size.
fn output_limit(values: &Values) -> usize {
    let messages: usize = values
        .messages
        .iter()
        .map(|m| {
            m.content.len()
                + m.thinking.len()
                + m.tool_calls
                    .iter()
                    .map(|c| serde_json::to_string(&c.function.arguments).map_or(0, |s| s.len()))
                    .sum::<usize>()
        })
        .sum();
    let tools = serde_json::to_string(&values.tools).map_or(0, |s| s.len());
    let size = messages + tools + values.prompt.len() + values.suffix.len();
    BASE_OUTPUT_LIMIT.saturating_add(size.saturating_mul(4))
}

/// Ollama's `collate`: all system messages joined by a blank line, and the messages with each run
/// of one role (other than `tool`) merged into its first message, contents joined by a blank line.
fn collate(messages: &[Message]) -> (String, Vec<Message>) {
    let mut system: Vec<&str> = Vec::new();
    let mut collated: Vec<Message> = Vec::new();
    for m in messages {
        if m.role == "system" {
            system.push(&m.content);
        }
        match collated.last_mut() {
            Some(last) if last.role == m.role && m.role != "tool" => {
                last.content.push_str("\n\n");
                last.content.push_str(&m.content);
            }
            _ => collated.push(m.clone()),
        }
    }
    (system.join("\n\n"), collated)
}

/// A gotmpl execution error.
fn exec_error(message: String) -> gotmpl::TemplateError {
    gotmpl::TemplateError::Exec(message)
}

/// The functions of one render: Ollama's four, plus the printing shims.
fn functions(types: Arc<GoTypes>, today: NaiveDate, limit: usize) -> FuncMap {
    let mut funcs: BTreeMap<String, ValueFunc> = BTreeMap::new();

    let t = Arc::clone(&types);
    funcs.insert(
        "json".to_string(),
        Arc::new(move |args: &[GValue]| match args {
            [v] => Ok(goval::string(&t.json(v).unwrap_or_default())),
            _ => Err(exec_error(format!(
                "wrong number of args for json: want 1 got {}",
                args.len()
            ))),
        }),
    );

    for (name, date) in [
        ("currentDate", Some(today)),
        ("yesterdayDate", today.pred_opt()),
    ] {
        let text = date.map_or_else(String::new, |d| d.format("%Y-%m-%d").to_string());
        funcs.insert(
            name.to_string(),
            Arc::new(move |args: &[GValue]| {
                // Go's `args ...string` accepts any number of strings, ignored.
                match args.iter().find(|a| !matches!(a, GValue::String(_))) {
                    Some(bad) => Err(exec_error(format!(
                        "wrong type for value; expected string; got {}",
                        bad.type_name()
                    ))),
                    None => Ok(goval::string(&text)),
                }
            }),
        );
    }

    let t = Arc::clone(&types);
    funcs.insert(
        "toTypeScriptType".to_string(),
        Arc::new(move |args: &[GValue]| match args {
            [v] => Ok(goval::string(&t.typescript_type(v))),
            _ => Err(exec_error(format!(
                "wrong number of args for toTypeScriptType: want 1 got {}",
                args.len()
            ))),
        }),
    );

    let t = Arc::clone(&types);
    funcs.insert(
        ast::PRINT_FN.to_string(),
        Arc::new(move |args: &[GValue]| Ok(args.last().map_or(GValue::Nil, |v| t.printable(v)))),
    );

    let t = types;
    funcs.insert(
        ast::ARG_FN.to_string(),
        Arc::new(move |args: &[GValue]| {
            let v = args.last().map_or(GValue::Nil, |v| t.stringer_arg(v));
            match &v {
                GValue::String(s) if s.len() > limit => Err(exec_error(format!(
                    "a string of {} bytes exceeds the limit of {limit}",
                    s.len()
                ))),
                _ => Ok(v),
            }
        }),
    );
    funcs
}

/// A gotmpl parse or lex error, worded like Go's.
fn parse_error(e: gotmpl::TemplateError) -> TemplateError {
    match e {
        gotmpl::TemplateError::Parse { line, message, .. }
        | gotmpl::TemplateError::Lex { line, message, .. } => {
            TemplateError::Parse { line, message }
        }
        other => TemplateError::Parse {
            line: 0,
            message: other.to_string(),
        },
    }
}
