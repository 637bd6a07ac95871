//! Describe an image: load a text model and its projector (mmproj), decode an image file in
//! Rust, evaluate the prompt with the image in it, and complete it greedily.
//!
//! `cargo run -p llama --features mtmd --example vision -- MODEL.gguf MMPROJ.gguf IMAGE.png ["Describe this image."]`
//!
//! The image is decoded by the `image` crate (PNG, JPEG, WebP, GIF): mtmd is only given RGB
//! pixels. The prompt is the model's own chat template with mtmd's marker where the image goes.

use llama::mtmd::{Bitmap, Projector, ProjectorParams};
use llama::{
    ChatMessage, ChatRequest, ChatTemplate, Context, ContextParams, Model, ModelParams, Sampler,
    SamplerParams, Utf8Decoder,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: vision MODEL.gguf MMPROJ.gguf IMAGE [PROMPT]";
    let model_path = args.next().ok_or(usage)?;
    let mmproj_path = args.next().ok_or(usage)?;
    let image_path = args.next().ok_or(usage)?;
    let prompt = args.next().unwrap_or_else(|| "Describe this image.".into());

    let model = Model::load(&model_path, ModelParams::default())?;
    let projector = Projector::load(&model, &mmproj_path, &ProjectorParams::default())?;
    if !projector.supports_vision() {
        return Err(format!("{mmproj_path} has no image encoder").into());
    }
    let mut ctx = Context::new(
        &model,
        ContextParams {
            n_ctx: 4096,
            ..ContextParams::default()
        },
    )?;

    // Decode the image in Rust and hand mtmd the pixels.
    let rgb = image::open(&image_path)?.to_rgb8();
    let bitmap = Bitmap::from_rgb(rgb.width(), rgb.height(), rgb.as_raw())?.with_id(&image_path);

    // The model's chat template, with the marker in the user message.
    let template = ChatTemplate::for_model(&model)?;
    let mut message = serde_json::Map::new();
    message.insert("role".into(), "user".into());
    message.insert(
        "content".into(),
        format!("{}{prompt}", projector.marker()).into(),
    );
    let text = template.render(&ChatRequest {
        messages: vec![ChatMessage(message)],
        add_generation_prompt: true,
        ..ChatRequest::default()
    })?;

    let chunks = projector.tokenize(&text, &[&bitmap], true)?;
    let n_tokens: usize = chunks.iter().map(|c| c.n_tokens()).sum();
    eprintln!("{} chunks, {n_tokens} tokens", chunks.len());
    let n_prompt = projector.eval(&mut ctx, &chunks, 0, 0, true)?;

    let mut sampler = Sampler::new(&model, &SamplerParams::greedy())?;
    let mut decoder = Utf8Decoder::new();
    let vocab = model.vocab();
    let mut last = -1;
    for n_past in n_prompt..n_prompt + 128 {
        let token = sampler.sample(&ctx, last)?;
        if vocab.is_eog(token) {
            break;
        }
        print!("{}", decoder.push(&vocab.token_bytes(token, false)?));
        let mut batch = llama::Batch::new(1);
        batch.add(token, n_past, &[0], true)?;
        ctx.decode(&batch)?;
        last = 0;
    }
    println!("{}", decoder.finish());
    Ok(())
}
