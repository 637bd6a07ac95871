//! Images in prompts, inside the runner (feature `mtmd`).
//!
//! The server has checked each image's base64 and header; here the bytes are decoded in Rust
//! ([`crate::media::decode`], bounded), handed to llama.cpp's mtmd as RGB pixels with a
//! content hash as id, and the prompt is split into text tokens and media chunks.
//!
//! Placement follows Ollama: every image of the kept messages gets an `[img-N]` tag (N counts
//! across the request) in front of its message's content, or in place of an `[img]`
//! placeholder; after rendering (Go or Jinja template) each tag becomes mtmd's marker and the
//! image goes there. A raw prompt uses its own tags, and untagged images go first.
//!
//! For the engine a [`MediaPrompt`] is a token list in which each media chunk occupies
//! [`Span::len`] entries of one negative sentinel derived from the image hash, so that the
//! prompt cache compares images like tokens: a cached prefix is reused up to the first image
//! that differs, and never into the middle of one.

#![cfg_attr(not(feature = "mtmd"), allow(dead_code, unused_imports))]

use super::proto::EngineError;
use crate::template::Message;
use std::fmt;
use std::sync::Arc;

/// Image tags Ollama puts into message content: `[img-N]`.
pub(crate) fn tag(n: usize) -> String {
    format!("[img-{n}]")
}

/// Gives every image of `msgs` its `[img-N]` tag (numbered from 0 across the messages, in
/// order) and moves the images out: returns them in tag order. Ollama's rule: a tag replaces
/// the next `[img]` placeholder of the content, or goes in front of it.
pub(crate) fn tag_messages(msgs: &mut [Message]) -> Vec<String> {
    let mut images = Vec::new();
    for m in msgs {
        if m.images.is_empty() {
            continue;
        }
        let mut prefix = String::new();
        let mut content = std::mem::take(&mut m.content);
        for img in std::mem::take(&mut m.images) {
            let t = tag(images.len());
            if content.contains("[img]") {
                content = content.replacen("[img]", &t, 1);
            } else {
                prefix.push_str(&t);
            }
            images.push(img);
        }
        m.content = prefix + &content;
    }
    images
}

/// A raw prompt's images: tags already in the text are used; images without one are tagged
/// in front, in order.
pub(crate) fn tag_raw(text: &str, n_images: usize) -> String {
    let mut prefix = String::new();
    for i in 0..n_images {
        let t = tag(i);
        if !text.contains(&t) {
            prefix.push_str(&t);
        }
    }
    prefix + text
}

/// Replaces each `[img-N]` of `text` (N < `n_images`) with `marker`; returns the text and the
/// image index of each marker, in order. Tags for images that do not exist stay text.
pub(crate) fn tags_to_markers(text: &str, n_images: usize, marker: &str) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(text.len());
    let mut order = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("[img-") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 5..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let n = after[..digits].parse::<usize>().ok();
        match n {
            Some(n) if n < n_images && after[digits..].starts_with(']') => {
                out.push_str(marker);
                order.push(n);
                rest = &after[digits + 1..];
            }
            _ => {
                out.push_str("[img-");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    (out, order)
}

/// The sentinel token of a media item in a [`MediaPrompt`]: negative (never a vocabulary id),
/// from the item's content hash.
pub(crate) fn sentinel(id: &str) -> i32 {
    // FNV-1a over the id, folded into 1..=i32::MAX, negated.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    -(((h % (i32::MAX as u64)) as i32) + 1)
}

/// One media chunk of a prompt.
#[derive(Clone)]
pub struct Span {
    /// Index of its first entry in [`MediaPrompt::tokens`].
    pub start: usize,
    /// Entries (positions) it covers.
    pub len: usize,
    /// Tokens it occupies in the KV cache.
    pub n_tokens: usize,
    /// The chunk (encoded by the engine when the prompt reaches it).
    #[cfg(feature = "mtmd")]
    pub chunk: Arc<llama::mtmd::Chunk>,
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Span")
            .field("start", &self.start)
            .field("len", &self.len)
            .field("n_tokens", &self.n_tokens)
            .finish()
    }
}

/// A prompt with media, for the engine of the same process.
#[derive(Debug, Clone, Default)]
pub struct MediaPrompt {
    /// Text tokens, with each media chunk as [`Span::len`] sentinel entries.
    pub tokens: Vec<i32>,
    /// The media chunks, in order.
    pub spans: Vec<Span>,
}

impl MediaPrompt {
    /// The span covering entry `i`, if any.
    pub fn span_at(&self, i: usize) -> Option<&Span> {
        self.spans
            .iter()
            .find(|s| s.start <= i && i < s.start + s.len)
    }

    /// The span starting at entry `i`.
    pub fn span_starting(&self, i: usize) -> Option<&Span> {
        self.spans.iter().find(|s| s.start == i)
    }

    /// KV cells the prompt needs.
    pub fn kv_len(&self) -> usize {
        let media: usize = self.spans.iter().map(|s| s.len).sum();
        let cells: usize = self.spans.iter().map(|s| s.n_tokens).sum();
        self.tokens.len() - media + cells
    }
}

/// The projector of a loaded model.
#[cfg(feature = "mtmd")]
pub struct Media {
    projector: Arc<llama::mtmd::Projector>,
    limits: crate::media::Limits,
}

#[cfg(feature = "mtmd")]
impl Media {
    /// Loads `path` for `model`.
    ///
    /// # Errors
    /// The loader's message when mtmd refuses the file.
    pub fn load(
        model: &llama::Model,
        path: &str,
        threads: u32,
        flash: Option<bool>,
    ) -> Result<Media, String> {
        let mut params = llama::mtmd::ProjectorParams::default();
        if threads > 0 {
            params.n_threads = threads;
        }
        params.flash_attention = match flash {
            None => llama::FlashAttention::Auto,
            Some(true) => llama::FlashAttention::Enabled,
            Some(false) => llama::FlashAttention::Disabled,
        };
        let projector =
            llama::mtmd::Projector::load(model, path, &params).map_err(|e| e.to_string())?;
        Ok(Media {
            projector: Arc::new(projector),
            limits: crate::media::Limits::default(),
        })
    }

    /// The projector.
    pub fn projector(&self) -> &Arc<llama::mtmd::Projector> {
        &self.projector
    }

    /// Decodes each base64 image into a bitmap whose id is its content hash.
    ///
    /// # Errors
    /// A bad request naming the image that does not decode.
    pub fn bitmaps(&self, images: &[String]) -> Result<Vec<llama::mtmd::Bitmap>, EngineError> {
        use sha2::Digest;
        images
            .iter()
            .enumerate()
            .map(|(i, b64)| {
                let bad = |e: &dyn fmt::Display| EngineError::bad(format!("image {}: {e}", i + 1));
                let bytes = crate::media::decode_base64(b64, &self.limits).map_err(|e| bad(&e))?;
                let bmp = crate::media::decode(&bytes, &self.limits).map_err(|e| bad(&e))?;
                let id = format!("{:x}", sha2::Sha256::digest(&bytes));
                llama::mtmd::Bitmap::from_rgb(bmp.width, bmp.height, &bmp.rgb)
                    .map(|b| b.with_id(&id))
                    .map_err(|e| bad(&e))
            })
            .collect()
    }

    /// Tokens one image adds to a prompt (its chunks with the model's delimiters).
    ///
    /// # Errors
    /// When mtmd cannot preprocess it.
    pub fn count(&self, bitmap: &llama::mtmd::Bitmap) -> Result<usize, EngineError> {
        let chunks = self
            .projector
            .tokenize(self.projector.marker(), &[bitmap], false)
            .map_err(|e| EngineError::bad(e.to_string()))?;
        Ok(chunks.iter().map(|c| c.n_tokens()).sum())
    }

    /// Splits `text` (tags already replaced by markers, `order[i]` the bitmap of marker `i`)
    /// into a [`MediaPrompt`] after `context` tokens.
    ///
    /// # Errors
    /// A bad request when mtmd refuses the input.
    pub fn prompt(
        &self,
        context: &[i32],
        text: &str,
        bitmaps: &[llama::mtmd::Bitmap],
        order: &[usize],
    ) -> Result<MediaPrompt, EngineError> {
        let picked: Vec<&llama::mtmd::Bitmap> = order.iter().map(|&i| &bitmaps[i]).collect();
        let chunks = self
            .projector
            .tokenize(text, &picked, context.is_empty())
            .map_err(|e| EngineError::bad(e.to_string()))?;
        let mut p = MediaPrompt {
            tokens: context.to_vec(),
            spans: Vec::new(),
        };
        for c in chunks {
            if c.kind() == llama::mtmd::ChunkKind::Text {
                p.tokens.extend_from_slice(c.tokens());
                continue;
            }
            let len = usize::try_from(c.n_pos()).unwrap_or(0).max(1);
            let s = sentinel(c.id().unwrap_or(""));
            p.spans.push(Span {
                start: p.tokens.len(),
                len,
                n_tokens: c.n_tokens(),
                chunk: Arc::new(c),
            });
            p.tokens.extend(std::iter::repeat_n(s, len));
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_go_in_front_or_replace_placeholders() {
        let mut msgs = vec![
            Message {
                images: vec!["a".into(), "b".into()],
                ..Message::new("user", "look")
            },
            Message::new("assistant", "ok"),
            Message {
                images: vec!["c".into()],
                ..Message::new("user", "and [img] this")
            },
        ];
        let imgs = tag_messages(&mut msgs);
        assert_eq!(imgs, ["a", "b", "c"]);
        assert_eq!(msgs[0].content, "[img-0][img-1]look");
        assert_eq!(msgs[2].content, "and [img-2] this");
        assert!(msgs.iter().all(|m| m.images.is_empty()));
    }

    #[test]
    fn raw_prompts_keep_their_tags() {
        assert_eq!(tag_raw("x [img-1] y", 2), "[img-0]x [img-1] y");
        assert_eq!(tag_raw("plain", 0), "plain");
    }

    #[test]
    fn tags_become_markers_in_order() {
        let (t, order) = tags_to_markers("a[img-1]b[img-0]c[img-7]d[img-x]", 2, "<M>");
        assert_eq!(t, "a<M>b<M>c[img-7]d[img-x]");
        assert_eq!(order, [1, 0]);
    }

    #[test]
    fn sentinels_are_negative_and_differ() {
        let (a, b) = (sentinel("abc"), sentinel("abd"));
        assert!(a < 0 && b < 0);
        assert_ne!(a, b);
        assert_eq!(a, sentinel("abc"));
    }
}
