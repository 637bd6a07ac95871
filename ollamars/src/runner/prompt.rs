//! Preparing a prompt, once, in the runner (spec §7): render the Go TEMPLATE (messages or
//! legacy mode) or the model's own template, drop the oldest messages until the prompt fits
//! `num_ctx` (system messages kept, §7.6), and tokenize. Counting a candidate's tokens is a
//! local call here, so the history search costs no round trips to the server and takes no
//! slot; the runner answers [`Prepare`] on a thread of its own, beside the decoding.

#[cfg(feature = "mtmd")]
use super::media;
use super::media::MediaPrompt;
use super::proto::{EngineError, Prepare, Prepared, PromptSource};
use crate::template::{Message, Template, Tool, Values};
use llama::Model;
#[cfg(feature = "mtmd")]
use std::sync::Arc;
use std::sync::{Mutex, OnceLock};

/// Prepares prompts for one model.
pub struct Preparer {
    model: Model,
    /// The projector of a vision model.
    #[cfg(feature = "mtmd")]
    media: Option<Arc<media::Media>>,
    /// The model's own chat template, made on first use.
    native: OnceLock<Result<llama::ChatTemplate, String>>,
    /// The last Go template parsed (requests of one model share it).
    go: Mutex<Option<(String, Template)>>,
}

impl Preparer {
    /// A preparer for `model`.
    pub fn new(model: Model) -> Preparer {
        Preparer {
            model,
            #[cfg(feature = "mtmd")]
            media: None,
            native: OnceLock::new(),
            go: Mutex::new(None),
        }
    }

    /// With the projector of a vision model: images are placed in prompts.
    #[cfg(feature = "mtmd")]
    pub fn with_media(mut self, media: Option<Arc<media::Media>>) -> Preparer {
        self.media = media;
        self
    }

    /// Renders, fits and tokenizes `job`'s prompt; with images (and a projector), also splits
    /// it into media chunks.
    ///
    /// # Errors
    /// As [`Preparer::prepare`]; also an image that does not decode.
    pub fn prepare_media(
        &self,
        mut job: Prepare,
    ) -> Result<(Prepared, Option<MediaPrompt>), EngineError> {
        let has_images = !job.images.is_empty()
            || match &job.source {
                PromptSource::Raw { .. } => false,
                PromptSource::Go { values, .. } => {
                    values.messages.iter().any(|m| !m.images.is_empty())
                }
                PromptSource::Native { messages, .. } => {
                    messages.iter().any(|m| !m.images.is_empty())
                }
            };
        if !has_images {
            return self.prepare(job).map(|p| (p, None));
        }
        #[cfg(feature = "mtmd")]
        if let Some(m) = &self.media {
            return self.prepare_with(m, job);
        }
        tracing::warn!("images ignored: this model has no vision projector");
        job.images.clear();
        match &mut job.source {
            PromptSource::Raw { .. } => {}
            PromptSource::Go { values, .. } => {
                values.messages.iter_mut().for_each(|m| m.images.clear())
            }
            PromptSource::Native { messages, .. } => {
                messages.iter_mut().for_each(|m| m.images.clear())
            }
        }
        self.prepare(job).map(|p| (p, None))
    }

    #[cfg(feature = "mtmd")]
    fn prepare_with(
        &self,
        m: &media::Media,
        job: Prepare,
    ) -> Result<(Prepared, Option<MediaPrompt>), EngineError> {
        let vocab = self.model.vocab();
        for &t in &job.context {
            vocab
                .check(t)
                .map_err(|e| EngineError::bad(format!("invalid context: {e}")))?;
        }
        // Every image of the request, decoded once; messages get `[img-N]` tags per window.
        let all: Vec<String> = match &job.source {
            PromptSource::Raw { .. } => job.images.clone(),
            PromptSource::Go { values, .. } => values
                .messages
                .iter()
                .flat_map(|x| x.images.clone())
                .collect(),
            PromptSource::Native { messages, .. } => {
                messages.iter().flat_map(|x| x.images.clone()).collect()
            }
        };
        crate::media::check_count(all.len(), &crate::media::Limits::default())
            .map_err(|e| EngineError::bad(e.to_string()))?;
        let bitmaps = m.bitmaps(&all)?;
        // An image's index in `all` (equal data: the same bitmap).
        let index: std::collections::HashMap<&str, usize> = all
            .iter()
            .enumerate()
            .rev()
            .map(|(i, b)| (b.as_str(), i))
            .collect();
        let counts: std::cell::RefCell<Vec<Option<usize>>> = vec![None; bitmaps.len()].into();
        let count = |(text, imgs): &(String, Vec<String>)| -> Result<usize, EngineError> {
            let (plain, order) = media::tags_to_markers(text, imgs.len(), "");
            let mut n = job.context.len() + self.tokenize(&plain, job.context.is_empty())?.len();
            for k in order {
                let i = index[imgs[k].as_str()];
                let known = counts.borrow()[i];
                n += match known {
                    Some(c) => c,
                    None => {
                        let c = m.count(&bitmaps[i])?;
                        counts.borrow_mut()[i] = Some(c);
                        c
                    }
                };
            }
            Ok(n)
        };
        let (text, imgs) = match &job.source {
            PromptSource::Raw { text } => (media::tag_raw(text, all.len()), all.clone()),
            PromptSource::Go { template, values } => {
                let t = self.go_template(template)?;
                let render = |messages: &[Message]| {
                    let mut msgs = messages.to_vec();
                    let imgs = media::tag_messages(&mut msgs);
                    let v = Values {
                        messages: msgs,
                        ..values.clone()
                    };
                    t.render(&v)
                        .map(|s| (s, imgs))
                        .map_err(|e| EngineError::bad(e.to_string()))
                };
                fit(
                    &values.messages,
                    job.window,
                    job.num_ctx as usize,
                    &render,
                    &count,
                )?
            }
            PromptSource::Native { messages, tools } => {
                let render = |msgs: &[Message]| {
                    let mut msgs = msgs.to_vec();
                    let imgs = media::tag_messages(&mut msgs);
                    self.render_native(&msgs, tools).map(|s| (s, imgs))
                };
                fit(messages, job.window, job.num_ctx as usize, &render, &count)?
            }
        };
        let marker = m.projector().marker().to_string();
        let (with_markers, order) = media::tags_to_markers(&text, imgs.len(), &marker);
        let order: Vec<usize> = order.into_iter().map(|k| index[imgs[k].as_str()]).collect();
        let prompt = m.prompt(&job.context, &with_markers, &bitmaps, &order)?;
        let tokens = prompt.tokens.iter().copied().filter(|&t| t >= 0).collect();
        Ok((Prepared { text, tokens }, Some(prompt)))
    }

    /// Renders, fits and tokenizes `job`'s prompt.
    ///
    /// # Errors
    /// A bad request for a template that fails, an out-of-range `context` id or a text the
    /// tokenizer refuses.
    pub fn prepare(&self, job: Prepare) -> Result<Prepared, EngineError> {
        let vocab = self.model.vocab();
        for &t in &job.context {
            vocab
                .check(t)
                .map_err(|e| EngineError::bad(format!("invalid context: {e}")))?;
        }
        // Every candidate the history search counts is tokenized; the last one that fits is
        // kept, so the chosen prompt is not tokenized a second time.
        let fitting: std::cell::RefCell<Option<(String, Vec<i32>)>> = Default::default();
        let count = |text: &String| -> Result<usize, EngineError> {
            let tokens = self.tokenize(text, job.context.is_empty())?;
            let n = job.context.len() + tokens.len();
            if n <= job.num_ctx as usize {
                *fitting.borrow_mut() = Some((text.to_string(), tokens));
            }
            Ok(n)
        };
        let text = match &job.source {
            PromptSource::Raw { text } => text.clone(),
            PromptSource::Go { template, values } => {
                let t = self.go_template(template)?;
                let render = |messages: &[Message]| {
                    let v = Values {
                        messages: messages.to_vec(),
                        ..values.clone()
                    };
                    t.render(&v).map_err(|e| EngineError::bad(e.to_string()))
                };
                fit(
                    &values.messages,
                    job.window,
                    job.num_ctx as usize,
                    &render,
                    &count,
                )?
            }
            PromptSource::Native { messages, tools } => {
                let render = |m: &[Message]| self.render_native(m, tools);
                fit(messages, job.window, job.num_ctx as usize, &render, &count)?
            }
        };
        let text_tokens = match fitting.into_inner() {
            Some((counted, tokens)) if counted == text => tokens,
            _ => self.tokenize(&text, job.context.is_empty())?,
        };
        let mut tokens = job.context;
        tokens.extend(text_tokens);
        Ok(Prepared { text, tokens })
    }

    /// Tokenizes with special tokens parsed; BOS as the model wants at the start of a prompt.
    fn tokenize(&self, text: &str, at_start: bool) -> Result<Vec<i32>, EngineError> {
        self.model
            .vocab()
            .tokenize(text, at_start, true)
            .map_err(|e| EngineError::bad(e.to_string()))
    }

    fn go_template(&self, text: &str) -> Result<Template, EngineError> {
        let mut cached = self.go.lock().expect("template cache");
        if let Some((src, t)) = cached.as_ref()
            && src == text
        {
            return Ok(t.clone());
        }
        let t =
            Template::parse(text).map_err(|e| EngineError::bad(format!("template error: {e}")))?;
        *cached = Some((text.to_string(), t.clone()));
        Ok(t)
    }

    /// Renders `msgs` (and `tools`) with the model's own chat template, ending with the
    /// assistant prompt.
    fn render_native(&self, msgs: &[Message], tools: &[Tool]) -> Result<String, EngineError> {
        let chat = self
            .native
            .get_or_init(|| llama::ChatTemplate::for_model(&self.model).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| EngineError::bad(e.clone()))?;
        let messages = msgs
            .iter()
            .map(|m| match serde_json::to_value(m) {
                Ok(serde_json::Value::Object(o)) => llama::ChatMessage(o),
                _ => llama::ChatMessage(serde_json::Map::new()),
            })
            .collect();
        let req = llama::ChatRequest {
            messages,
            tools: (!tools.is_empty()).then(|| serde_json::to_value(tools).unwrap_or_default()),
            add_generation_prompt: true,
            ..llama::ChatRequest::default()
        };
        let text = chat
            .render(&req)
            .map_err(|e| EngineError::bad(e.to_string()))?;
        // As llama.cpp's chat code: a template that writes the BOS text itself would give two
        // BOS tokens, since the tokenizer adds one for a model that wants it.
        let vocab = self.model.vocab();
        if vocab.adds_bos()
            && let Some(bos) = vocab.bos()
            && let Ok(piece) = vocab.token_bytes(bos, true)
            && !piece.is_empty()
            && text.as_bytes().starts_with(&piece)
        {
            return Ok(text[piece.len()..].to_string());
        }
        Ok(text)
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
/// (the completion then truncates or refuses per `truncate`). Without `shrink`, all of them.
/// `R` is what a window renders to (the text; with images also their list), `count` its tokens.
fn fit<R>(
    msgs: &[Message],
    shrink: bool,
    num_ctx: usize,
    render: &dyn Fn(&[Message]) -> Result<R, EngineError>,
    count: &dyn Fn(&R) -> Result<usize, EngineError>,
) -> Result<R, EngineError> {
    let full = render(msgs)?;
    if !shrink || msgs.len() <= 1 || count(&full)? <= num_ctx {
        return Ok(full);
    }
    // The token count shrinks as older messages are dropped: binary-search the first start
    // index that fits (the last message is always kept).
    let last = msgs.len() - 1;
    let (mut lo, mut hi) = (1, last);
    let mut best: Option<R> = None;
    while lo <= hi {
        let mid = (lo + hi) / 2;
        let r = render(&window(msgs, mid))?;
        if count(&r)? <= num_ctx {
            best = Some(r);
            hi = mid - 1;
        } else {
            lo = mid + 1;
        }
    }
    match best {
        Some(r) => Ok(r),
        None => render(&window(msgs, last)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(role: &str, content: &str) -> Message {
        Message::new(role, content)
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

    #[test]
    fn fit_drops_the_oldest_turns_first() {
        let msgs: Vec<Message> = std::iter::once(m("system", "S"))
            .chain((0..10).map(|i| m("user", &format!("m{i}"))))
            .collect();
        let render = |ms: &[Message]| -> Result<String, EngineError> {
            Ok(ms
                .iter()
                .map(|x| x.content.as_str())
                .collect::<Vec<_>>()
                .join(" "))
        };
        // One "token" per word.
        let count = |t: &String| -> Result<usize, EngineError> { Ok(t.split(' ').count()) };
        assert_eq!(fit(&msgs, true, 4, &render, &count).unwrap(), "S m7 m8 m9");
        assert_eq!(
            fit(&msgs, true, 100, &render, &count)
                .unwrap()
                .split(' ')
                .count(),
            11
        );
        assert_eq!(
            fit(&msgs, false, 4, &render, &count)
                .unwrap()
                .split(' ')
                .count(),
            11
        );
        // Not even the last message fits: it alone.
        assert_eq!(fit(&msgs, true, 1, &render, &count).unwrap(), "S m9");
    }
}
