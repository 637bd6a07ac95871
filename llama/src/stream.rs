//! `futures::Stream` over generation (feature `async`): the generation runs on its own thread
//! and sends pieces through a channel, so an async caller never blocks its executor.

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use futures::channel::{mpsc, oneshot};
use futures::{Stream, StreamExt};

use crate::context::{CancelHandle, Context};
use crate::error::GenerateError;
use crate::generate::{FinishReason, GenerateOptions, Timings};
use crate::model::Token;
use crate::sampler::Sampler;

/// What a finished [`GenerationStream`] gives back: the context and sampler (to continue the
/// conversation), the finish reason, the timings and the generated tokens.
pub type StreamOutcome = (Context, Sampler, Option<FinishReason>, Timings, Vec<Token>);

/// A generation as a `Stream` of text pieces. Dropping it cancels the generation.
pub struct GenerationStream {
    rx: mpsc::UnboundedReceiver<Result<String, GenerateError>>,
    done: Option<oneshot::Receiver<StreamOutcome>>,
    cancel: CancelHandle,
}

impl std::fmt::Debug for GenerationStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenerationStream").finish_non_exhaustive()
    }
}

impl Context {
    /// Like [`Context::generate`], but runs on a new thread and returns a `Stream`.
    pub fn generate_stream(
        self,
        sampler: Sampler,
        prompt: Vec<Token>,
        opts: GenerateOptions,
    ) -> GenerationStream {
        let (tx, rx) = mpsc::unbounded();
        let (done_tx, done_rx) = oneshot::channel();
        let cancel = self.cancel_handle();
        std::thread::spawn(move || {
            let (mut ctx, mut sampler) = (self, sampler);
            let (reason, timings, tokens) = match ctx.generate(&mut sampler, &prompt, opts) {
                Ok(mut generation) => {
                    let cancel = generation.cancel_handle();
                    for piece in generation.by_ref() {
                        if tx.unbounded_send(piece).is_err() {
                            cancel.cancel();
                        }
                    }
                    (
                        generation.finish_reason(),
                        generation.timings(),
                        generation.tokens().to_vec(),
                    )
                }
                Err(e) => {
                    let _ = tx.unbounded_send(Err(e));
                    (None, Timings::default(), Vec::new())
                }
            };
            drop(tx);
            let _ = done_tx.send((ctx, sampler, reason, timings, tokens));
        });
        GenerationStream {
            rx,
            done: Some(done_rx),
            cancel,
        }
    }
}

impl GenerationStream {
    /// Cancels the generation; the stream then ends.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Waits for the end and returns the context, sampler, finish reason, timings and tokens.
    /// `None` if the generation thread panicked.
    pub async fn finish(mut self) -> Option<StreamOutcome> {
        while self.rx.next().await.is_some() {}
        self.done.take()?.await.ok()
    }
}

impl Stream for GenerationStream {
    type Item = Result<String, GenerateError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.rx).poll_next(cx)
    }
}

impl Drop for GenerationStream {
    fn drop(&mut self) {
        if self.done.is_some() {
            self.cancel.cancel();
        }
    }
}
