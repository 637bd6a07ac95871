//! `futures::Stream` generation (feature `async`) gives the same text as the iterator, and
//! returns the context for the next turn.

mod common;

use futures::StreamExt;
use llama::{Context, ContextParams, FinishReason, GenerateOptions, Sampler, SamplerParams};

#[test]
fn stream_matches_iterator_and_returns_the_context() {
    let _serial = common::serial();
    let model = common::smollm2();
    let prompt = model
        .vocab()
        .tokenize("The capital of France is", true, false)
        .unwrap();
    let opts = GenerateOptions {
        max_tokens: Some(12),
        ..Default::default()
    };
    let params = ContextParams {
        n_ctx: 512,
        n_threads: 2,
        n_threads_batch: 2,
        ..Default::default()
    };

    let mut ctx = Context::new(model, params.clone()).unwrap();
    let mut s = Sampler::new(model, &SamplerParams::greedy()).unwrap();
    let want = ctx
        .generate(&mut s, &prompt, opts.clone())
        .unwrap()
        .collect_text()
        .unwrap();

    let ctx = Context::new(model, params).unwrap();
    let s = Sampler::new(model, &SamplerParams::greedy()).unwrap();
    let mut stream = ctx.generate_stream(s, prompt.clone(), opts);
    let got = futures::executor::block_on(async {
        let mut text = String::new();
        while let Some(piece) = stream.next().await {
            text.push_str(&piece.unwrap());
        }
        let (ctx, _sampler, reason, timings, tokens) = stream
            .finish()
            .await
            .expect("the generation thread returns");
        assert_eq!(reason, Some(FinishReason::Length));
        assert_eq!((timings.generated_tokens, tokens.len()), (12, 12));
        // The prompt and 11 of the 12 tokens are in the cache (the last one is never decoded).
        assert_eq!(ctx.memory_seq_pos_max(0), (prompt.len() + 11) as i32 - 1);
        text
    });
    assert_eq!(got, want);
}
