//! Building the prompt text (spec §7): the Go TEMPLATE in messages or legacy mode, or the
//! model's own template rendered by the runner, with oldest-first history truncation to
//! `num_ctx` that keeps system messages (§7.6).

use super::runner_client::RunnerProcess;
use crate::runner::proto::{ErrorKind, FromRunner, ToRunner};
use crate::template::{Message, Template, Tool, Values};

/// Think settings of a request as templates see them.
#[derive(Debug, Clone, Default)]
pub struct Think {
    /// `.Think`.
    pub on: bool,
    /// `.ThinkLevel`.
    pub level: String,
    /// `.IsThinkSet`.
    pub set: bool,
}

/// How the prompt is rendered.
#[derive(Debug, Clone)]
pub enum Renderer {
    /// A Go template (the model's TEMPLATE or the request's `template`).
    Go(Template),
    /// The model's own template, rendered by its runner.
    Native,
}

/// A failure building the prompt: `(kind, message)`.
pub type PromptError = (ErrorKind, String);

/// Renders `msgs` (plus `tools`) once.
///
/// # Errors
/// Template or runner errors.
pub async fn render(
    r: &Renderer,
    runner: &RunnerProcess,
    msgs: &[Message],
    tools: &[Tool],
    think: &Think,
) -> Result<String, PromptError> {
    match r {
        Renderer::Go(t) => {
            let v = Values {
                messages: msgs.to_vec(),
                tools: tools.to_vec(),
                think: think.on,
                think_level: think.level.clone(),
                is_think_set: think.set,
                ..Values::default()
            };
            t.render(&v)
                .map_err(|e| (ErrorKind::BadRequest, e.to_string()))
        }
        Renderer::Native => {
            let messages = msgs
                .iter()
                .map(|m| match serde_json::to_value(m) {
                    Ok(serde_json::Value::Object(o)) => o,
                    _ => serde_json::Map::new(),
                })
                .collect();
            let tools =
                (!tools.is_empty()).then(|| serde_json::to_value(tools).unwrap_or_default());
            match runner
                .call(|id| ToRunner::Render {
                    id,
                    messages,
                    tools,
                })
                .await?
            {
                FromRunner::Text { text, .. } => Ok(text),
                other => Err((
                    ErrorKind::Internal,
                    format!("unexpected runner reply {other:?}"),
                )),
            }
        }
    }
}

/// Counts the tokens of `text` as the runner will see them.
///
/// # Errors
/// Runner errors.
pub async fn count_tokens(runner: &RunnerProcess, text: &str) -> Result<usize, PromptError> {
    match runner
        .call(|id| ToRunner::Tokenize {
            id,
            texts: vec![text.to_string()],
        })
        .await?
    {
        FromRunner::Tokens { tokens, .. } => Ok(tokens.first().map_or(0, Vec::len)),
        other => Err((
            ErrorKind::Internal,
            format!("unexpected runner reply {other:?}"),
        )),
    }
}

/// The messages kept when starting at `i`: every system message before `i`, then `msgs[i..]`.
fn window(msgs: &[Message], i: usize) -> Vec<Message> {
    msgs[..i]
        .iter()
        .filter(|m| m.role == "system")
        .chain(&msgs[i..])
        .cloned()
        .collect()
}

/// Ollama's chat prompt: the newest messages that fit in `num_ctx` tokens, oldest dropped
/// first, system messages always kept; if even the last message alone does not fit, just it
/// (the runner then truncates or refuses per `truncate`).
///
/// # Errors
/// Template or runner errors.
pub async fn chat_prompt(
    r: &Renderer,
    runner: &RunnerProcess,
    msgs: &[Message],
    tools: &[Tool],
    think: &Think,
    num_ctx: usize,
    truncate: bool,
) -> Result<String, PromptError> {
    let full = render(r, runner, msgs, tools, think).await?;
    if !truncate || msgs.len() <= 1 || count_tokens(runner, &full).await? <= num_ctx {
        return Ok(full);
    }
    // The token count shrinks as older messages are dropped: binary-search the first start
    // index that fits (the last message is always kept).
    let last = msgs.len() - 1;
    let (mut lo, mut hi) = (1, last);
    let mut best: Option<String> = None;
    while lo <= hi {
        let mid = (lo + hi) / 2;
        let text = render(r, runner, &window(msgs, mid), tools, think).await?;
        if count_tokens(runner, &text).await? <= num_ctx {
            best = Some(text);
            if mid == 0 {
                break;
            }
            hi = mid - 1;
        } else {
            lo = mid + 1;
        }
    }
    match best {
        Some(t) => Ok(t),
        None => render(r, runner, &window(msgs, last), tools, think).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(role: &str, content: &str) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
            ..Message::default()
        }
    }

    #[test]
    fn window_keeps_earlier_system_messages() {
        let msgs = vec![
            m("system", "s"),
            m("user", "a"),
            m("assistant", "b"),
            m("user", "c"),
        ];
        let w = window(&msgs, 2);
        let roles: Vec<_> = w.iter().map(|x| x.content.as_str()).collect();
        assert_eq!(roles, ["s", "b", "c"]);
        assert_eq!(window(&msgs, 0).len(), 4);
    }
}
