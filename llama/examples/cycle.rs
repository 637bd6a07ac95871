//! Load → generate → free, several times: the workload for a leak check.
//!
//! `LD_PRELOAD=/usr/lib/x86_64-linux-gnu/liblsan.so.0 target/debug/examples/cycle MODEL.gguf 3`
//! (LeakSanitizer reports anything still allocated and unreachable at exit.)

use llama::{Context, ContextParams, GenerateOptions, Model, ModelParams, Sampler, SamplerParams};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: cycle MODEL.gguf [ROUNDS]")?;
    let rounds: usize = args.next().map_or(Ok(3), |r| r.parse())?;
    for round in 0..rounds {
        let model = Model::load(&path, ModelParams::default())?;
        let mut ctx = Context::new(
            &model,
            ContextParams {
                n_ctx: 512,
                ..ContextParams::default()
            },
        )?;
        let mut sampler = Sampler::new(&model, &SamplerParams::default().seed(round as u32))?;
        let prompt = model.vocab().tokenize("Once upon a time", true, false)?;
        let text = ctx
            .generate(
                &mut sampler,
                &prompt,
                GenerateOptions {
                    max_tokens: Some(16),
                    ..Default::default()
                },
            )?
            .collect_text()?;
        let template = llama::ChatTemplate::for_model(&model)?;
        let rendered = template.render(&llama::ChatRequest {
            messages: vec![llama::ChatMessage::new("user", "hi")],
            ..Default::default()
        })?;
        println!(
            "round {round}: {} chars generated, {} chars of prompt rendered",
            text.len(),
            rendered.len()
        );
    }
    Ok(())
}
