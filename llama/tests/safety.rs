//! Thread-safety guarantees (checked at compile time) and bad input: every case is an `Err`,
//! never a crash.

mod common;

use std::io::Write;

use llama::{
    Batch, BatchFull, Context, ContextError, ContextParams, DecodeError, GenerateError,
    GenerateOptions, LoadError, Model, ModelParams, Sampler, SamplerParams, TokenizeError,
};

const fn assert_send_sync<T: Send + Sync>() {}
const fn assert_send<T: Send>() {}
const _: () = {
    assert_send_sync::<Model>();
    assert_send_sync::<llama::Vocab>();
    assert_send_sync::<llama::LoraAdapter>();
    assert_send_sync::<llama::CancelHandle>();
    assert_send::<Context>();
    assert_send::<Sampler>();
    assert_send::<Batch>();
};

/// `Context` must not be `Sync`: this trait has an impl for every `Sync` type, and a second,
/// ambiguous impl for all types; naming it on a type resolves only if the type is not `Sync`.
trait AmbiguousIfSync<A> {
    fn check() {}
}
impl<T: ?Sized> AmbiguousIfSync<()> for T {}
impl<T: ?Sized + Sync> AmbiguousIfSync<u8> for T {}
#[test]
fn context_is_not_sync() {
    <Context as AmbiguousIfSync<_>>::check();
}

fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("llama-safety-{}-{name}", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
    path
}

#[test]
fn several_threads_share_one_model() {
    let _serial = common::serial();
    let model = common::smollm2().clone();
    let vocab = model.vocab();
    let prompt = vocab
        .tokenize("The capital of France is", true, false)
        .unwrap();
    let opts = GenerateOptions {
        max_tokens: Some(8),
        ..Default::default()
    };
    let mut c = Context::new(
        &model,
        ContextParams {
            n_ctx: 256,
            n_threads: 1,
            n_threads_batch: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let mut s = Sampler::new(&model, &SamplerParams::greedy()).unwrap();
    let want = c
        .generate(&mut s, &prompt, opts.clone())
        .unwrap()
        .collect_text()
        .unwrap();
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let (model, prompt, opts) = (model.clone(), prompt.clone(), opts.clone());
            std::thread::spawn(move || {
                let mut c = Context::new(
                    &model,
                    ContextParams {
                        n_ctx: 256,
                        n_threads: 1,
                        n_threads_batch: 1,
                        ..Default::default()
                    },
                )
                .unwrap();
                let mut s = Sampler::new(&model, &SamplerParams::greedy()).unwrap();
                (0..3)
                    .map(|_| {
                        c.memory_clear();
                        c.generate(&mut s, &prompt, opts.clone())
                            .unwrap()
                            .collect_text()
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for h in handles {
        for text in h.join().unwrap() {
            assert_eq!(text, want);
        }
    }
}

#[test]
fn bad_model_files_are_errors() {
    let missing = Model::load("/nonexistent/model.gguf", ModelParams::default()).unwrap_err();
    assert!(matches!(missing, LoadError::Io { .. }), "{missing}");

    let not_gguf = temp_file("text.gguf", b"this is not a model at all");
    assert!(matches!(
        Model::load(&not_gguf, ModelParams::default()),
        Err(LoadError::NotGguf { .. })
    ));
    let empty = temp_file("empty.gguf", b"");
    assert!(matches!(
        Model::load(&empty, ModelParams::default()),
        Err(LoadError::NotGguf { .. })
    ));

    // Real model bytes, cut short at several places (header, metadata, tensor infos, data).
    let real = std::fs::read(common::model_path(common::SMOLLM2)).unwrap();
    for cut in [
        4usize,
        8,
        24,
        100,
        1000,
        5000,
        100_000,
        2_000_000,
        real.len() / 2,
        real.len() - 1,
    ] {
        let path = temp_file(&format!("cut{cut}.gguf"), &real[..cut]);
        let e = Model::load(&path, ModelParams::default()).unwrap_err();
        assert!(matches!(e, LoadError::Rejected { .. }), "cut at {cut}: {e}");
        std::fs::remove_file(path).unwrap();
    }
    for p in [not_gguf, empty] {
        std::fs::remove_file(p).unwrap();
    }

    let cancelled = Model::load(
        common::model_path(common::SMOLLM2),
        ModelParams {
            progress: Some(Box::new(|p| p < 0.1)),
            ..ModelParams::default()
        },
    );
    assert!(matches!(cancelled, Err(LoadError::Cancelled { .. })));
    let bad_override = ModelParams {
        kv_overrides: vec![("k".repeat(200), llama::KvValue::Int(1))],
        ..ModelParams::default()
    };
    assert!(matches!(
        Model::load(common::model_path(common::SMOLLM2), bad_override),
        Err(LoadError::BadOverride(_))
    ));
    // A model is not a LoRA adapter.
    assert!(matches!(
        common::smollm2().load_lora(common::model_path(common::GEMMA3)),
        Err(LoadError::Adapter { .. })
    ));
}

#[test]
fn bad_context_parameters_are_errors() {
    let _serial = common::serial();
    let model = common::smollm2();
    let huge = Context::new(
        model,
        ContextParams {
            n_ctx: i32::MAX as u32,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(huge, ContextError::TooLarge { .. }), "{huge}");
    assert!(matches!(
        Context::new(
            model,
            ContextParams {
                n_ctx: u32::MAX,
                ..Default::default()
            }
        ),
        Err(ContextError::InvalidParam(_))
    ));
    assert!(matches!(
        Context::new(
            model,
            ContextParams {
                n_batch: 0,
                ..Default::default()
            }
        ),
        Err(ContextError::InvalidParam(_))
    ));
    assert!(matches!(
        Context::new(
            model,
            ContextParams {
                n_seq_max: 100_000,
                ..Default::default()
            }
        ),
        Err(ContextError::InvalidParam(_))
    ));
    assert!(matches!(
        Context::new(
            model,
            ContextParams {
                n_threads: 0,
                ..Default::default()
            }
        ),
        Err(ContextError::InvalidParam(_))
    ));
}

#[test]
fn bad_batches_and_tokens_are_errors() {
    let _serial = common::serial();
    let model = common::smollm2();
    let vocab = model.vocab();
    let n_vocab = vocab.n_tokens();
    let mut c = Context::new(
        model,
        ContextParams {
            n_ctx: 256,
            n_batch: 64,
            n_threads: 2,
            n_threads_batch: 2,
            ..Default::default()
        },
    )
    .unwrap();

    let mut b = Batch::new(2);
    b.add(1, 0, &[0], false).unwrap();
    b.add(2, 1, &[0], true).unwrap();
    assert_eq!(b.add(3, 2, &[0], true), Err(BatchFull { capacity: 2 }));

    let bad = |tokens: &[i32], pos: i32, seq: i32| Batch::from_tokens(tokens, pos, seq).unwrap();
    for (batch, what) in [
        (bad(&[n_vocab], 0, 0), "token id == n_vocab"),
        (bad(&[-1], 0, 0), "negative token id"),
        (bad(&[1], -5, 0), "negative position"),
        (bad(&[1], 0, 3), "sequence id >= n_seq_max"),
        (bad(&vec![1; 65], 0, 0), "more than n_batch tokens"),
        (Batch::new(4), "empty batch"),
    ] {
        assert!(
            matches!(c.decode(&batch), Err(DecodeError::InvalidBatch(_))),
            "{what}"
        );
    }
    // Too many tokens for the context: an error, not a crash.
    let prompt = vec![1; 300];
    let mut s = Sampler::new(model, &SamplerParams::greedy()).unwrap();
    assert!(matches!(
        c.generate(&mut s, &prompt, GenerateOptions::default()),
        Err(GenerateError::PromptTooLong { .. })
    ));
    assert!(matches!(
        c.generate(&mut s, &[], GenerateOptions::default()),
        Err(GenerateError::EmptyPrompt)
    ));
    assert!(matches!(
        c.generate(&mut s, &[n_vocab + 5], GenerateOptions::default()),
        Err(GenerateError::Tokenize(TokenizeError::OutOfRange { .. }))
    ));

    assert!(matches!(
        vocab.token_bytes(n_vocab, false),
        Err(TokenizeError::OutOfRange { .. })
    ));
    assert!(matches!(
        vocab.token_bytes(i32::MIN, false),
        Err(TokenizeError::OutOfRange { .. })
    ));
    assert!(matches!(
        vocab.detokenize(&[1, 2, n_vocab * 2], false, false),
        Err(TokenizeError::OutOfRange { .. })
    ));
    assert!(!vocab.is_eog(-3));
    assert!(s.accept(n_vocab).is_err());
    // No logits where none were asked for.
    c.decode(&Batch::from_tokens(&[1, 2, 3], 0, 0).unwrap())
        .unwrap();
    assert!(
        c.logits(0).is_none()
            && c.logits(2).is_some()
            && c.logits(3).is_none()
            && c.logits(-2).is_none()
    );
    assert!(s.sample(&c, 1).is_err());
    // KV operations with bad sequence ids do nothing.
    assert!(
        !c.memory_seq_cp(0, 9, 0, -1) && !c.memory_seq_keep(-1) && c.memory_seq_pos_max(7) == -1
    );
    // A saved state from another model is rejected.
    let mut g = Context::new(
        common::gemma3(),
        ContextParams {
            n_ctx: 256,
            ..Default::default()
        },
    )
    .unwrap();
    let state = g.state_save();
    assert!(c.state_load(&state).is_err());
    assert!(c.state_load(b"garbage").is_err());
}
