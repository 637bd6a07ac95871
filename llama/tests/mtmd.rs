//! The safe multimodal API on the project's generated vision model (a random-weight gemma3
//! text model and its mmproj, `scripts/make-vision-model`): it evaluates images, and bad input
//! is an error, never an abort.

use llama::mtmd::{Bitmap, ChunkKind, MtmdError, Projector, ProjectorParams};
use llama::{Context, ContextParams, Model, ModelParams, Sampler, SamplerParams};

fn rgb(w: u32, h: u32, seed: u32) -> Vec<u8> {
    (0..w * h * 3)
        .map(|i| ((i * (7 + seed) + seed * 31) % 251) as u8)
        .collect()
}

fn load() -> (Model, Projector) {
    let vm = testkit::mtmd::vision_model();
    let model = Model::load(&vm.model, ModelParams::default()).unwrap();
    let p = Projector::load(&model, &vm.mmproj, &ProjectorParams::default()).unwrap();
    (model, p)
}

fn ctx(model: &Model, n_seq: u32) -> Context {
    Context::new(
        model,
        ContextParams {
            n_ctx: 1024 * n_seq,
            n_seq_max: n_seq,
            ..ContextParams::default()
        },
    )
    .unwrap()
}

/// Greedy ids after evaluating `text` with `img` into sequence 0 of a fresh context.
fn greedy(model: &Model, p: &Projector, img: &Bitmap, n: usize) -> Vec<i32> {
    let mut c = ctx(model, 1);
    let text = format!("{}describe", p.marker());
    let chunks = p.tokenize(&text, &[img], true).unwrap();
    let start = p.eval(&mut c, &chunks, 0, 0, true).unwrap();
    let mut s = Sampler::new(model, &SamplerParams::greedy()).unwrap();
    let mut out = Vec::new();
    let mut idx = -1;
    for pos in start..start + n as i32 {
        let t = s.sample(&c, idx).unwrap();
        out.push(t);
        let mut b = llama::Batch::new(1);
        b.add(t, pos, &[0], true).unwrap();
        c.decode(&b).unwrap();
        idx = 0;
    }
    out
}

#[test]
fn projector_types_are_send_and_sync() {
    fn both<T: Send + Sync>() {}
    both::<Projector>();
    both::<Bitmap>();
    both::<llama::mtmd::Chunk>();
    both::<llama::mtmd::Embeddings>();
}

#[test]
fn images_are_tokenized_encoded_and_change_the_answer() {
    let (model, p) = load();
    assert!(p.supports_vision());
    assert!(!p.supports_audio());
    assert_eq!(p.n_embd(), model.n_embd());
    let a = Bitmap::from_rgb(64, 48, &rgb(64, 48, 1))
        .unwrap()
        .with_id("a");
    let b = Bitmap::from_rgb(40, 72, &rgb(40, 72, 2))
        .unwrap()
        .with_id("b");
    let chunks = p
        .tokenize(&format!("look {} here", p.marker()), &[&a], true)
        .unwrap();
    let media: Vec<_> = chunks
        .iter()
        .filter(|c| c.kind() == ChunkKind::Image)
        .collect();
    assert_eq!(media.len(), 1, "{chunks:?}");
    assert_eq!(media[0].id(), Some("a"));
    assert!(media[0].n_tokens() > 0);
    assert!(chunks[0].kind() == ChunkKind::Text && !chunks[0].tokens().is_empty());
    let e = p.encode(media[0]).unwrap();
    assert_eq!(e.n_tokens(), media[0].n_tokens());
    assert_eq!(e.as_slice().len(), e.n_tokens() * e.n_embd());
    assert!(e.as_slice().iter().all(|x| x.is_finite()));
    // Deterministic, and the image matters.
    let ga = greedy(&model, &p, &a, 12);
    assert_eq!(ga, greedy(&model, &p, &a, 12));
    assert_ne!(ga, greedy(&model, &p, &b, 12));
}

#[test]
fn bad_input_is_an_error_not_an_abort() {
    let (model, p) = load();
    let img = Bitmap::from_rgb(8, 8, &rgb(8, 8, 3)).unwrap();
    // Bitmaps.
    assert!(matches!(
        Bitmap::from_rgb(8, 8, &[0; 10]),
        Err(MtmdError::Bitmap(_))
    ));
    assert!(matches!(
        Bitmap::from_rgb(0, 8, &[]),
        Err(MtmdError::Bitmap(_))
    ));
    assert!(Bitmap::from_audio(&[]).is_err());
    assert!(Bitmap::from_audio(&[f32::NAN]).is_err());
    // Markers and media disagree.
    assert!(matches!(
        p.tokenize("no marker", &[&img], true),
        Err(MtmdError::MarkerCount {
            markers: 0,
            media: 1
        })
    ));
    let two = format!("{m}{m}", m = p.marker());
    assert!(matches!(
        p.tokenize(&two, &[&img], true),
        Err(MtmdError::MarkerCount {
            markers: 2,
            media: 1
        })
    ));
    assert!(matches!(p.tokenize("a\0b", &[], true), Err(MtmdError::Nul)));
    // Audio on a vision-only projector.
    let clip = Bitmap::from_audio(&[0.0; 1600]).unwrap();
    assert!(matches!(
        p.tokenize(p.marker(), &[&clip], true),
        Err(MtmdError::Unsupported("audio"))
    ));
    // Chunks and embeddings used where they do not fit.
    let chunks = p
        .tokenize(&format!("x{}y", p.marker()), &[&img], true)
        .unwrap();
    let text = chunks.iter().find(|c| c.kind() == ChunkKind::Text).unwrap();
    let image = chunks
        .iter()
        .find(|c| c.kind() == ChunkKind::Image)
        .unwrap();
    assert!(matches!(p.encode(text), Err(MtmdError::Misuse(_))));
    let embd = p.encode(image).unwrap();
    let mut c = ctx(&model, 1);
    assert!(matches!(
        p.decode(&mut c, text, &embd, 0, 0),
        Err(MtmdError::Misuse(_))
    ));
    assert!(matches!(
        p.decode(&mut c, image, &embd, 0, 7),
        Err(MtmdError::Misuse(_))
    ));
    let other = Bitmap::from_rgb(16, 16, &rgb(16, 16, 9))
        .unwrap()
        .with_id("other");
    let other_chunks = p.tokenize(p.marker(), &[&other], true).unwrap();
    let other_image = other_chunks
        .iter()
        .find(|c| c.kind() == ChunkKind::Image)
        .unwrap();
    let _ = other_image;
    // A context of another model.
    let smol = Model::load(
        testkit::model_path(testkit::SMOLLM2),
        ModelParams::default(),
    )
    .unwrap();
    let mut c2 = ctx(&smol, 1);
    assert!(matches!(
        p.decode(&mut c2, image, &embd, 0, 0),
        Err(MtmdError::Misuse(_))
    ));
    // The right way still works afterwards.
    assert!(p.decode(&mut c, image, &embd, 0, 0).unwrap() > 0);
}

#[test]
fn a_wrong_projector_file_is_a_load_error() {
    let vm = testkit::mtmd::vision_model();
    let model = Model::load(&vm.model, ModelParams::default()).unwrap();
    let params = ProjectorParams::default();
    assert!(matches!(
        Projector::load(&model, "/nonexistent/mmproj.gguf", &params),
        Err(MtmdError::Load { .. })
    ));
    // A text model is no projector.
    assert!(matches!(
        Projector::load(&model, testkit::model_path(testkit::SMOLLM2), &params),
        Err(MtmdError::Load { .. })
    ));
    // The right projector for another text model (embedding widths differ).
    let smol = Model::load(
        testkit::model_path(testkit::SMOLLM2),
        ModelParams::default(),
    )
    .unwrap();
    assert!(matches!(
        Projector::load(&smol, &vm.mmproj, &params),
        Err(MtmdError::Load { .. })
    ));
}
