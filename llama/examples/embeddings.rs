//! Embeddings: embed sentences and compare them by cosine similarity.
//!
//! `cargo run -p llama --example embeddings -- path/to/model.gguf "first text" "second text" ...`

use llama::{Context, ContextParams, Model, ModelParams, Pooling};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: embeddings MODEL.gguf TEXT...")?;
    let texts: Vec<String> = args.collect();
    let model = Model::load(&path, ModelParams::default())?;
    let mut ctx = Context::new(
        &model,
        ContextParams {
            n_ctx: 2048,
            embeddings: true,
            pooling: Pooling::Mean,
            ..ContextParams::default()
        },
    )?;
    let vocab = model.vocab();
    let vectors: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| {
            ctx.embed(&vocab.tokenize(t, true, false)?)
                .map_err(Into::into)
        })
        .collect::<Result<_, Box<dyn std::error::Error>>>()?;
    for (i, a) in texts.iter().enumerate() {
        for (j, b) in texts.iter().enumerate().skip(i + 1) {
            println!(
                "{:.4}  {a:?} ~ {b:?}",
                llama::cosine(&vectors[i], &vectors[j])
            );
        }
    }
    Ok(())
}
