//! Cancellation: stop a long prefill from another thread and see how quickly it returns.
//!
//! `cargo run -p llama --example cancel -- path/to/model.gguf`

use std::time::{Duration, Instant};

use llama::{Batch, Context, ContextParams, DecodeError, Model, ModelParams};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: cancel MODEL.gguf")?;
    let model = Model::load(&path, ModelParams::default())?;
    let mut ctx = Context::new(
        &model,
        ContextParams {
            n_ctx: 4096,
            n_batch: 4096,
            n_ubatch: 512,
            ..ContextParams::default()
        },
    )?;
    let text = "All work and no play makes Jack a dull boy. ".repeat(300);
    let tokens = model.vocab().tokenize(&text, true, false)?;
    let tokens = &tokens[..tokens.len().min(4000)];

    let cancel = ctx.cancel_handle();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        cancel.cancel();
        Instant::now()
    });
    let result = ctx.decode(&Batch::from_tokens(tokens, 0, 0)?);
    let returned = Instant::now();
    let cancelled_at = canceller.join().map_err(|_| "canceller panicked")?;
    match result {
        Err(DecodeError::Aborted) => println!(
            "prefill of {} tokens cancelled; decode returned {:?} after the cancel; KV cache restored (max pos {})",
            tokens.len(),
            returned.saturating_duration_since(cancelled_at),
            ctx.memory_seq_pos_max(0)
        ),
        other => println!("prefill finished before the cancel: {other:?}"),
    }
    Ok(())
}
