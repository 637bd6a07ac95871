//! Greedy output through the safe API is identical to upstream llama.cpp's own `simple` program
//! on both real models: ids and text, no tolerance. The reference is built on this machine at
//! test time against the very libraries `llama-sys` built and run with the same parameters
//! (`testkit::upstream`), so the check holds on any CPU and backend.

mod common;

use llama::{Context, ContextParams, FinishReason, GenerateOptions, Model, Sampler, SamplerParams};
use testkit::upstream::{self, Greedy};

const N_PREDICT: usize = 32;
const PROMPT: &str = "The capital of France is";

fn check(model: &Model, test_model: testkit::TestModel, key: &str) {
    let gpu_layers = if common::gpu_build() { 99 } else { 0 };
    if let Some(why) = llama::missing_gpu() {
        panic!(
            "{why}: the parity check would run on the CPU; run it on a machine with such a device"
        );
    }
    eprintln!("{key}: {}", llama::system_info());

    // simple tokenizes with add_special and parse_special.
    let prompt = model.vocab().tokenize(PROMPT, true, true).unwrap();
    // simple's context: n_ctx = n_prompt + n_predict - 1, n_batch = n_prompt, and llama.cpp's
    // defaults otherwise (swa_full included).
    let params = ContextParams {
        n_ctx: upstream::simple_n_ctx(prompt.len(), N_PREDICT),
        n_batch: prompt.len() as u32,
        swa_full: true,
        n_threads: upstream::threads(),
        n_threads_batch: upstream::threads(),
        ..ContextParams::default()
    };
    let mut ctx = Context::new(model, params).unwrap();
    let mut sampler = Sampler::new(model, &SamplerParams::greedy().seed(42)).unwrap();
    let opts = GenerateOptions {
        max_tokens: Some(N_PREDICT),
        ..GenerateOptions::default()
    };
    let mut generation = ctx.generate(&mut sampler, &prompt, opts).unwrap();
    let text = generation.collect_text().unwrap();
    let finish = generation.finish_reason();
    let tokens = generation.tokens().to_vec();
    let t = generation.timings();
    assert_eq!(
        (t.prompt_tokens, t.generated_tokens),
        (prompt.len(), tokens.len())
    );

    let reference = upstream::greedy(
        &common::llama_build(),
        &upstream::Run {
            model: &testkit::model_path(test_model),
            prompt: PROMPT,
            n_predict: N_PREDICT,
            gpu_layers,
            modules: Vec::new(),
        },
        &[],
    );
    let ours = Greedy {
        prompt_tokens: prompt,
        tokens,
        // The safe API does not return the end-of-generation id; a stop is its finish reason.
        eog: reference.eog.filter(|_| finish == Some(FinishReason::Stop)),
        text,
        backends: Vec::new(),
    };
    upstream::assert_same(key, &ours, &reference);
    let want_finish = if reference.eog.is_some() {
        FinishReason::Stop
    } else {
        FinishReason::Length
    };
    assert_eq!(finish, Some(want_finish), "{key}: finish reason");
}

#[test]
fn smollm2_matches_upstream() {
    let _serial = common::serial();
    check(
        common::smollm2(),
        testkit::SMOLLM2,
        "SmolLM2-135M-Instruct.Q4_1",
    );
}

#[test]
fn gemma3_matches_upstream() {
    let _serial = common::serial();
    check(common::gemma3(), testkit::GEMMA3, "gemma-3-270m-q4_k_m");
}
