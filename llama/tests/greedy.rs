//! Greedy output through the safe API is token-identical to upstream llama.cpp for fixed
//! prompts on both real models (reference ids in tests/data/greedy.json, per build flavour).

mod common;

use llama::{Context, ContextParams, FinishReason, GenerateOptions, Model, Sampler, SamplerParams};

fn check(model: &Model, key: &str) {
    let reference = common::reference();
    let m = &reference["models"][key];
    let flavour = common::flavour();
    let expected = &m[&flavour];
    assert!(
        expected["tokens"].is_array(),
        "no upstream token reference for {key} in flavour {flavour}"
    );
    eprintln!("{key}: flavour {flavour}; {}", llama::system_info());

    let prompt_text = m["prompt"].as_str().unwrap();
    let prompt = model.vocab().tokenize(prompt_text, true, false).unwrap();
    let want_prompt: Vec<i32> = serde_json::from_value(m["prompt_tokens"].clone()).unwrap();
    assert_eq!(
        prompt, want_prompt,
        "{key}: tokenization differs from upstream"
    );

    let params = ContextParams {
        n_ctx: 2048,
        n_threads: 2,
        n_threads_batch: 2,
        ..ContextParams::default()
    };
    let mut ctx = Context::new(model, params).unwrap();
    let mut sampler = Sampler::new(model, &SamplerParams::greedy().seed(42)).unwrap();
    let want: Vec<i32> = serde_json::from_value(expected["tokens"].clone()).unwrap();
    let opts = GenerateOptions {
        max_tokens: Some(want.len()),
        ..GenerateOptions::default()
    };
    let mut generation = ctx.generate(&mut sampler, &prompt, opts).unwrap();
    let text = generation.collect_text().unwrap();
    assert_eq!(
        generation.tokens(),
        &want[..],
        "{key}: greedy tokens differ from upstream ({flavour})"
    );
    assert_eq!(text, expected["text"].as_str().unwrap());
    assert_eq!(generation.finish_reason(), Some(FinishReason::Length));
    let t = generation.timings();
    assert_eq!(
        (t.prompt_tokens, t.generated_tokens),
        (prompt.len(), want.len())
    );
}

#[test]
fn smollm2_matches_upstream() {
    let _serial = common::serial();
    check(common::smollm2(), "SmolLM2-135M-Instruct.Q4_1");
}

#[test]
fn gemma3_matches_upstream() {
    let _serial = common::serial();
    check(common::gemma3(), "gemma-3-270m-q4_k_m");
}
