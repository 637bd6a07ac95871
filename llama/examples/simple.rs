//! Simple generation: load a model, complete a prompt greedily.
//!
//! `cargo run -p llama --example simple -- path/to/model.gguf "The capital of France is"`

use llama::{Context, ContextParams, GenerateOptions, Model, ModelParams, Sampler, SamplerParams};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: simple MODEL.gguf [PROMPT]")?;
    let prompt = args
        .next()
        .unwrap_or_else(|| "The capital of France is".into());

    let model = Model::load(&path, ModelParams::default())?;
    let mut ctx = Context::new(
        &model,
        ContextParams {
            n_ctx: 2048,
            ..ContextParams::default()
        },
    )?;
    let mut sampler = Sampler::new(&model, &SamplerParams::greedy())?;
    let tokens = model.vocab().tokenize(&prompt, true, false)?;

    let mut generation = ctx.generate(
        &mut sampler,
        &tokens,
        GenerateOptions {
            max_tokens: Some(64),
            ..Default::default()
        },
    )?;
    print!("{prompt}");
    for piece in generation.by_ref() {
        print!("{}", piece?);
    }
    let t = generation.timings();
    println!(
        "\n\n[{:?}; prompt {} tokens in {:?}, generated {} tokens in {:?}]",
        generation.finish_reason(),
        t.prompt_tokens,
        t.prompt_eval,
        t.generated_tokens,
        t.eval
    );
    Ok(())
}
