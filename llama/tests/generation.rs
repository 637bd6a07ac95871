//! Generation behaviour on the real models: UTF-8 streaming, stop strings, max tokens, seeds,
//! grammars, KV prefix reuse, multi-sequence batching, cancellation and embeddings.

mod common;

use std::time::{Duration, Instant};

use llama::{
    Batch, Context, ContextParams, DecodeError, FinishReason, GenerateOptions, Grammar, Model,
    Pooling, Sampler, SamplerError, SamplerParams, Token,
};

fn ctx(model: &Model, n_ctx: u32) -> Context {
    Context::new(
        model,
        ContextParams {
            n_ctx,
            n_threads: 2,
            n_threads_batch: 2,
            ..ContextParams::default()
        },
    )
    .unwrap()
}

fn run(
    model: &Model,
    prompt: &str,
    params: &SamplerParams,
    opts: GenerateOptions,
) -> (Vec<String>, Vec<Token>, Option<FinishReason>) {
    let mut c = ctx(model, 2048);
    let mut s = Sampler::new(model, params).unwrap();
    let tokens = model.vocab().tokenize(prompt, true, true).unwrap();
    let mut g = c.generate(&mut s, &tokens, opts).unwrap();
    let pieces: Vec<String> = g.by_ref().map(|p| p.unwrap()).collect();
    (pieces, g.tokens().to_vec(), g.finish_reason())
}

#[test]
fn multibyte_text_streams_without_replacement_characters() {
    let _serial = common::serial();
    let model = common::smollm2();
    // Generated output: a prompt that makes the model continue in CJK and emoji.
    let prompt = "<|im_start|>user\nTranslate to Chinese: I love my cat.<|im_end|>\n<|im_start|>assistant\n我爱我的猫。🐱\n\n<|im_end|>\n<|im_start|>user\nAnd: The weather is nice today.<|im_end|>\n<|im_start|>assistant\n";
    let (pieces, tokens, _) = run(
        model,
        prompt,
        &SamplerParams::greedy(),
        GenerateOptions {
            max_tokens: Some(24),
            ..Default::default()
        },
    );
    let text: String = pieces.concat();
    eprintln!("generated {text:?}");
    assert!(
        !text.is_ascii(),
        "the model produced no multibyte text, so the check is void: {text:?}"
    );
    for p in &pieces {
        assert!(
            !p.contains('\u{FFFD}'),
            "a piece contains U+FFFD: {p:?} (all: {pieces:?})"
        );
    }
    // The streamed pieces are exactly the detokenized output.
    let vocab = model.vocab();
    let generated: Vec<Token> = tokens.into_iter().filter(|t| !vocab.is_eog(*t)).collect();
    assert_eq!(text, vocab.detokenize(&generated, false, false).unwrap());
}

#[test]
fn tokenize_detokenize_round_trips_multilingual_text() {
    let _serial = common::serial();
    let text = "Hello, wörld! Ünïcödé — 日本語のテキスト, 中文文本, 한국어, Ελληνικά, русский, عربي, 🦀🚀👍🏽 e\u{301}";
    for model in [common::smollm2(), common::gemma3()] {
        let vocab = model.vocab();
        let tokens = vocab.tokenize(text, false, false).unwrap();
        assert_eq!(vocab.detokenize(&tokens, false, false).unwrap(), text);
        // Token by token through the streaming decoder: no U+FFFD at any step.
        let mut dec = llama::Utf8Decoder::new();
        let mut out = String::new();
        for t in &tokens {
            let piece = dec.push(&vocab.token_bytes(*t, false).unwrap());
            assert!(!piece.contains('\u{FFFD}'));
            out.push_str(&piece);
        }
        out.push_str(&dec.finish());
        // SentencePiece vocabularies add a leading space marker when detokenizing piece by piece.
        assert_eq!(out.trim_start(), text);
    }
}

#[test]
fn stop_strings_and_max_tokens() {
    let _serial = common::serial();
    let model = common::smollm2();
    let (pieces, _, reason) = run(
        model,
        "The capital of France is",
        &SamplerParams::greedy(),
        GenerateOptions {
            stop: vec!["\n\n".into()],
            ..Default::default()
        },
    );
    assert_eq!(pieces.concat(), " Paris.");
    assert_eq!(reason, Some(FinishReason::Stop));
    let (_, tokens, reason) = run(
        model,
        "The capital of France is",
        &SamplerParams::greedy(),
        GenerateOptions {
            max_tokens: Some(3),
            ..Default::default()
        },
    );
    assert_eq!((tokens.len(), reason), (3, Some(FinishReason::Length)));
}

#[test]
fn seeded_sampling_is_deterministic() {
    let _serial = common::serial();
    let model = common::smollm2();
    let params = SamplerParams::default().temperature(0.9).seed(1234);
    let opts = GenerateOptions {
        max_tokens: Some(24),
        ..Default::default()
    };
    let a = run(model, "Once upon a time", &params, opts.clone()).1;
    let b = run(model, "Once upon a time", &params, opts.clone()).1;
    let c = run(model, "Once upon a time", &params.clone().seed(99), opts).1;
    assert_eq!(a, b);
    assert_ne!(a, c, "a different seed gave the same 24 tokens");
}

const JSON_GBNF: &str = r#"
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws
object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}" ws
array  ::= "[" ws ( value ("," ws value)* )? "]" ws
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4}) )* "\"" ws
number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9]+)? ws
ws     ::= | " " | "\n" [ \t]{0,20}
"#;

#[test]
fn json_grammar_output_parses() {
    let _serial = common::serial();
    let model = common::smollm2();
    // A bounded schema-like grammar always completes, then only EOS is allowed.
    let person = r#"root ::= "{\"name\": \"" [A-Za-z ]{1,24} "\", \"age\": " [1-9] [0-9]? "}""#;
    let prompt = "<|im_start|>user\nDescribe a person as JSON.<|im_end|>\n<|im_start|>assistant\n";
    let (pieces, _, reason) = run(
        model,
        prompt,
        &SamplerParams::default()
            .seed(7)
            .grammar(Grammar::new(person)),
        GenerateOptions {
            max_tokens: Some(64),
            ..Default::default()
        },
    );
    let text = pieces.concat();
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    assert!(v["name"].is_string() && v["age"].is_u64(), "{v}");
    assert_eq!(reason, Some(FinishReason::Stop));
    // The general JSON grammar: whatever the model writes is JSON once it stops.
    let (pieces, _, reason) = run(
        model,
        prompt,
        &SamplerParams::greedy().grammar(Grammar::new(JSON_GBNF)),
        GenerateOptions {
            max_tokens: Some(400),
            ..Default::default()
        },
    );
    let text = pieces.concat();
    assert_eq!(
        reason,
        Some(FinishReason::Stop),
        "the JSON did not finish in 400 tokens: {text:?}"
    );
    serde_json::from_str::<serde_json::Value>(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
}

#[test]
fn invalid_grammars_are_errors() {
    let _serial = common::serial();
    let model = common::smollm2();
    for bad in [
        "root ::= (",
        "root ::= undefined_rule",
        "not a grammar",
        &format!("root ::= {}\"a\"{}", "(".repeat(300), ")".repeat(300)),
    ] {
        let e =
            Sampler::new(model, &SamplerParams::greedy().grammar(Grammar::new(bad))).unwrap_err();
        assert!(
            matches!(e, SamplerError::InvalidGrammar(_)),
            "{bad:?}: {e:?}"
        );
    }
    assert!(matches!(
        Sampler::new(model, &SamplerParams::default().temperature(f32::NAN)),
        Err(SamplerError::InvalidParam(_))
    ));
    assert!(matches!(
        Sampler::new(model, &SamplerParams::default().top_p(1.5)),
        Err(SamplerError::InvalidParam(_))
    ));
}

#[test]
fn reusing_a_kv_prefix_matches_recomputing() {
    let _serial = common::serial();
    let model = common::smollm2();
    let vocab = model.vocab();
    let prefix = vocab
        .tokenize("The history of the Roman Empire begins with", true, false)
        .unwrap();
    let first = vocab
        .tokenize(" the founding of Rome. Then", false, false)
        .unwrap();
    let second = vocab
        .tokenize(" the Punic Wars, when", false, false)
        .unwrap();
    let opts = GenerateOptions {
        max_tokens: Some(16),
        ..Default::default()
    };

    // Fresh: prefix + second in one go.
    let mut fresh = ctx(model, 1024);
    let mut s = Sampler::new(model, &SamplerParams::greedy()).unwrap();
    let full: Vec<Token> = prefix.iter().chain(&second).copied().collect();
    let want = fresh
        .generate(&mut s, &full, opts.clone())
        .unwrap()
        .collect_text()
        .unwrap();

    // Reuse: prefix + first, generate, then drop everything after the prefix and continue.
    let mut c = ctx(model, 1024);
    let mut s = Sampler::new(model, &SamplerParams::greedy()).unwrap();
    let pf: Vec<Token> = prefix.iter().chain(&first).copied().collect();
    c.generate(&mut s, &pf, opts.clone())
        .unwrap()
        .collect_text()
        .unwrap();
    assert!(c.memory_seq_rm(0, prefix.len() as i32, -1));
    assert_eq!(c.memory_seq_pos_max(0), prefix.len() as i32 - 1);
    let mut s = Sampler::new(model, &SamplerParams::greedy()).unwrap();
    let got = c
        .generate(&mut s, &second, opts)
        .unwrap()
        .collect_text()
        .unwrap();
    assert_eq!(got, want);
}

/// Greedy tokens for `prompts`, all in one context and one batch per step.
fn batched(model: &Model, prompts: &[Vec<Token>], n: usize) -> Vec<Vec<Token>> {
    let mut c = Context::new(
        model,
        ContextParams {
            n_ctx: 512 * prompts.len() as u32,
            n_seq_max: prompts.len() as u32,
            n_threads: 2,
            n_threads_batch: 2,
            ..ContextParams::default()
        },
    )
    .unwrap();
    let mut samplers: Vec<Sampler> = prompts
        .iter()
        .map(|_| Sampler::new(model, &SamplerParams::greedy()).unwrap())
        .collect();
    let mut batch = Batch::new(prompts.iter().map(Vec::len).sum());
    let mut last = vec![0usize; prompts.len()];
    for (s, p) in prompts.iter().enumerate() {
        for (i, &t) in p.iter().enumerate() {
            if i + 1 == p.len() {
                last[s] = batch.len();
            }
            batch
                .add(t, i as i32, &[s as i32], i + 1 == p.len())
                .unwrap();
        }
    }
    c.decode(&batch).unwrap();
    let mut out = vec![Vec::new(); prompts.len()];
    for step in 0..n {
        let mut next = Batch::new(prompts.len());
        for s in 0..prompts.len() {
            let t = samplers[s].sample(&c, last[s] as i32).unwrap();
            out[s].push(t);
            last[s] = next.len();
            next.add(t, (prompts[s].len() + step) as i32, &[s as i32], true)
                .unwrap();
        }
        c.decode(&next).unwrap();
    }
    out
}

#[test]
fn batched_sequences_match_separate_runs() {
    let _serial = common::serial();
    let model = common::smollm2();
    let vocab = model.vocab();
    let prompts: Vec<Vec<Token>> = [
        "The capital of France is",
        "Water boils at",
        "My favourite colour is",
        "In 1492, Columbus",
    ]
    .iter()
    .map(|p| vocab.tokenize(p, true, false).unwrap())
    .collect();
    let together = batched(model, &prompts, 16);
    for (i, p) in prompts.iter().enumerate() {
        let alone = batched(model, std::slice::from_ref(p), 16);
        assert_eq!(
            together[i], alone[0],
            "sequence {i} differs when batched with others"
        );
    }
}

#[test]
fn cancelling_a_long_prefill_returns_within_one_ubatch() {
    let _serial = common::serial();
    let model = common::smollm2();
    let vocab = model.vocab();
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(400);
    let tokens: Vec<Token> = vocab
        .tokenize(&text, true, false)
        .unwrap()
        .into_iter()
        .take(2048)
        .collect();
    assert_eq!(tokens.len(), 2048);
    let params = ContextParams {
        n_ctx: 4096,
        n_batch: 2048,
        n_ubatch: 256,
        n_threads: 2,
        n_threads_batch: 2,
        ..ContextParams::default()
    };

    // One ubatch, timed.
    let mut c = Context::new(model, params.clone()).unwrap();
    let t0 = Instant::now();
    c.decode(&Batch::from_tokens(&tokens[..256], 0, 0).unwrap())
        .unwrap();
    let ubatch = t0.elapsed();

    // The whole prefill, cancelled shortly after it starts.
    let mut c = Context::new(model, params).unwrap();
    let cancel = c.cancel_handle();
    let delay = ubatch * 2;
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(delay);
        cancel.cancel();
        Instant::now()
    });
    let t0 = Instant::now();
    let r = c.decode(&Batch::from_tokens(&tokens, 0, 0).unwrap());
    let returned = Instant::now();
    let cancelled_at = canceller.join().unwrap();
    let latency = returned.saturating_duration_since(cancelled_at);
    eprintln!(
        "one ubatch (256 tokens): {ubatch:?}; full prefill cancelled after {:?}; returned {latency:?} after the cancel",
        cancelled_at - t0
    );
    assert_eq!(r, Err(DecodeError::Aborted));
    assert!(
        latency <= ubatch + Duration::from_millis(50),
        "cancel took {latency:?}, one ubatch takes {ubatch:?}"
    );
    // The memory is as before the call, and the context works again.
    assert_eq!(c.memory_seq_pos_max(0), -1);
    c.decode(&Batch::from_tokens(&tokens[..8], 0, 0).unwrap())
        .unwrap();
}

#[test]
fn embeddings_cosine() {
    let _serial = common::serial();
    let model = common::smollm2();
    let mut c = Context::new(
        model,
        ContextParams {
            n_ctx: 512,
            embeddings: true,
            pooling: Pooling::Mean,
            n_threads: 2,
            n_threads_batch: 2,
            ..ContextParams::default()
        },
    )
    .unwrap();
    let vocab = model.vocab();
    let mut embed = |t: &str| c.embed(&vocab.tokenize(t, true, false).unwrap()).unwrap();
    let a = embed("The cat sat on the mat.");
    let a2 = embed("The cat sat on the mat.");
    let b = embed("Quantum chromodynamics describes the strong force.");
    assert_eq!(a.len(), model.n_embd());
    let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "not L2-normalised: {norm}");
    let same = llama::cosine(&a, &a2);
    let diff = llama::cosine(&a, &b);
    eprintln!("cosine identical {same}, different {diff}");
    assert!((same - 1.0).abs() < 1e-5);
    assert!(diff < 0.99);
}
