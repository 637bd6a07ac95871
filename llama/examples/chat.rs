//! Streaming chat: the model's own chat template, the conversation kept in the KV cache (each
//! turn evaluates only the tokens after the longest prefix already cached), and text printed
//! as it is generated.
//!
//! `cargo run -p llama --example chat -- path/to/model.gguf`, then type; an empty line quits.

use std::io::{BufRead, Write};

use llama::{
    ChatMessage, ChatRequest, ChatTemplate, Context, ContextParams, GenerateOptions, Model,
    ModelParams, Sampler, SamplerParams, Token,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: chat MODEL.gguf")?;
    let model = Model::load(&path, ModelParams::default())?;
    let template = ChatTemplate::for_model(&model)?;
    let mut ctx = Context::new(
        &model,
        ContextParams {
            n_ctx: 4096,
            ..ContextParams::default()
        },
    )?;
    let vocab = model.vocab();

    let mut messages: Vec<ChatMessage> = Vec::new();
    // The tokens whose KV entries are in the cache, in order.
    let mut cached: Vec<Token> = Vec::new();
    let stdin = std::io::stdin();
    loop {
        print!("> ");
        std::io::stdout().flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 || line.trim().is_empty() {
            return Ok(());
        }
        messages.push(ChatMessage::new("user", line.trim()));
        let prompt = template.render(&ChatRequest {
            messages: messages.clone(),
            add_generation_prompt: true,
            ..ChatRequest::default()
        })?;
        let tokens = vocab.tokenize(&prompt, true, true)?;
        // Reuse the longest cached prefix (keep at least one token to evaluate).
        let keep = cached
            .iter()
            .zip(&tokens)
            .take_while(|(a, b)| a == b)
            .count()
            .min(tokens.len() - 1);
        ctx.memory_seq_rm(0, keep as i32, -1);
        cached.truncate(keep);

        let mut sampler = Sampler::new(&model, &SamplerParams::default().temperature(0.7).seed(1))?;
        let mut reply = String::new();
        let mut generation = ctx.generate(
            &mut sampler,
            &tokens[keep..],
            GenerateOptions {
                max_tokens: Some(512),
                ..Default::default()
            },
        )?;
        for piece in generation.by_ref() {
            let piece = piece?;
            print!("{piece}");
            std::io::stdout().flush()?;
            reply.push_str(&piece);
        }
        println!(
            "\n[reused {keep} cached tokens, evaluated {}]",
            tokens.len() - keep
        );
        let in_cache = generation.position() as usize;
        cached.extend_from_slice(&tokens[keep..]);
        cached.extend(generation.tokens().iter().copied());
        cached.truncate(in_cache);
        messages.push(ChatMessage::new("assistant", reply));
    }
}
