//! Parallel sequences: several prompts decoded together, one batch per step, in one context.
//! This is the basis of continuous batching.
//!
//! `cargo run -p llama --example parallel -- path/to/model.gguf`

use llama::{
    Batch, Context, ContextParams, Model, ModelParams, Sampler, SamplerParams, Utf8Decoder,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: parallel MODEL.gguf")?;
    let prompts = [
        "The capital of France is",
        "Water boils at",
        "The largest planet is",
        "Rust is a language that",
    ];
    let model = Model::load(&path, ModelParams::default())?;
    let n = prompts.len();
    let mut ctx = Context::new(
        &model,
        ContextParams {
            n_ctx: 1024 * n as u32,
            n_seq_max: n as u32,
            ..ContextParams::default()
        },
    )?;
    let vocab = model.vocab();
    let mut samplers = (0..n)
        .map(|_| Sampler::new(&model, &SamplerParams::greedy()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut decoders = vec![Utf8Decoder::new(); n];
    let mut texts = vec![String::new(); n];

    // All prompts in one batch; logits only for each prompt's last token.
    let tokens: Vec<Vec<i32>> = prompts
        .iter()
        .map(|p| vocab.tokenize(p, true, false))
        .collect::<Result<_, _>>()?;
    let mut batch = Batch::new(tokens.iter().map(Vec::len).sum::<usize>().max(n));
    let mut last = vec![0usize; n];
    for (s, t) in tokens.iter().enumerate() {
        for (i, &tok) in t.iter().enumerate() {
            if i + 1 == t.len() {
                last[s] = batch.len();
            }
            batch.add(tok, i as i32, &[s as i32], i + 1 == t.len())?;
        }
    }
    ctx.decode(&batch)?;
    let mut pos: Vec<i32> = tokens.iter().map(|t| t.len() as i32).collect();
    let mut active: Vec<bool> = vec![true; n];
    for _ in 0..32 {
        let mut next = Batch::new(n);
        for s in 0..n {
            if !active[s] {
                continue;
            }
            let tok = samplers[s].sample(&ctx, last[s] as i32)?;
            if vocab.is_eog(tok) {
                active[s] = false;
                continue;
            }
            texts[s].push_str(&decoders[s].push(&vocab.token_bytes(tok, false)?));
            last[s] = next.len();
            next.add(tok, pos[s], &[s as i32], true)?;
            pos[s] += 1;
        }
        if next.is_empty() {
            break;
        }
        ctx.decode(&next)?;
    }
    for (p, t) in prompts.iter().zip(&texts) {
        println!("{p}{t}\n---");
    }
    Ok(())
}
