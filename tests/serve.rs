//! End to end: `ollamars serve` with real runner processes on the real SmolLM2 model, over
//! raw HTTP. Generation, chat, embeddings, options, the scheduler (keep_alive, queue, slots),
//! the prompt cache, and the faults of issue 5: bad input, a runner killed mid-stream, a runner
//! stopped while loading, a client that disconnects during prefill, and 64 concurrent streams.
//!
//! Tests run one at a time (a lock): each starts its own server, and the runners' threads spin.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod common;

use common::{BIN, Server, client};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A server with `smol` (SmolLM2 as it is, no parameters) created.
fn start(env: &[(&str, &str)]) -> Server {
    let s = Server::start("serve", env);
    let gguf = testkit::model_path(testkit::SMOLLM2);
    s.create("smol", &format!("FROM {}\n", gguf.display()));
    s
}

impl Server {
    fn post_raw(&self, path: &str, body: &str) -> (u16, Value) {
        let r = client()
            .post(format!("{}{path}", self.base()))
            .body(body.to_string())
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn get(&self, path: &str) -> Value {
        client()
            .get(format!("{}{path}", self.base()))
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    fn ok(&self, path: &str, body: &Value) -> Value {
        let (status, v) = self.post(path, body);
        assert_eq!(status, 200, "{path} {body}: {v}");
        v
    }

    fn generate(&self, prompt: &str, options: Value) -> Value {
        self.ok(
            "/api/generate",
            &json!({"model": "smol", "prompt": prompt, "stream": false, "options": options}),
        )
    }

    /// The text of a raw, non-streamed generate.
    fn generate_raw(&self, prompt: &str, options: Value) -> String {
        self.ok(
            "/api/generate",
            &json!({"model": "smol", "prompt": prompt, "raw": true, "stream": false, "options": options}),
        )["response"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Pids of this server's runner processes (Linux).
    fn runner_pids(&self) -> Vec<i32> {
        self.runners(|_| true)
    }
}

/// The server's greedy output is upstream llama.cpp's: `simple` built on this machine against
/// the same libraries (`testkit::upstream`) and the runner, with the same parameters (simple's
/// context, pure greedy: no repeat penalty), give identical ids and text on both models. The
/// model's TEMPLATE is `{{ .Prompt }}`, so the prompt is tokenized as simple tokenizes it (BOS
/// added, special tokens parsed) and the response carries `context` (prompt + generated ids).
#[test]
fn greedy_matches_upstream() {
    use testkit::upstream;
    let _serial = serial();
    let s = Server::start("serve", &[("OLLAMA_NUM_PARALLEL", "1")]);
    let gpu =
        llama_sys::build_info::has_backend("vulkan") || llama_sys::build_info::has_backend("cuda");
    let build = testkit::llama_build!();
    const PROMPT: &str = "The capital of France is";
    const N: usize = 32;
    for (model, name) in [
        (testkit::SMOLLM2, "smol-greedy"),
        (testkit::GEMMA3, "gemma-greedy"),
    ] {
        let gguf = testkit::model_path(model);
        s.create(
            name,
            &format!("FROM {}\nTEMPLATE {{{{ .Prompt }}}}\n", gguf.display()),
        );
        let reference = upstream::greedy(
            &build,
            &upstream::Run {
                model: &gguf,
                prompt: PROMPT,
                n_predict: N,
                gpu_layers: if gpu { 99 } else { 0 },
                modules: Vec::new(),
            },
            &[],
        );
        let n_prompt = reference.prompt_tokens.len();
        let v = s.ok(
            "/api/generate",
            &json!({"model": name, "prompt": PROMPT, "stream": false, "options": {
                "temperature": 0, "repeat_penalty": 1, "num_predict": N,
                "num_ctx": upstream::simple_n_ctx(n_prompt, N), "num_batch": n_prompt,
                "num_thread": upstream::threads()}}),
        );
        let context: Vec<i32> = serde_json::from_value(v["context"].clone()).expect("context ids");
        assert!(context.len() >= n_prompt, "context {context:?}");
        let stopped = v["done_reason"] == "stop";
        let ours = upstream::Greedy {
            prompt_tokens: context[..n_prompt].to_vec(),
            tokens: context[n_prompt..].to_vec(),
            eog: reference.eog.filter(|_| stopped),
            text: v["response"].as_str().unwrap().to_string(),
            backends: Vec::new(),
        };
        upstream::assert_same(&format!("ollamars serve, {name}"), &ours, &reference);
        assert_eq!(
            v["done_reason"],
            if reference.eog.is_some() {
                "stop"
            } else {
                "length"
            }
        );
    }
}

fn greedy(n: u32) -> Value {
    json!({"temperature": 0, "num_predict": n})
}

fn text_of(lines: &[Value], chat: bool) -> String {
    lines
        .iter()
        .map(|l| {
            if chat {
                l["message"]["content"].as_str().unwrap_or("").to_string()
            } else {
                l["response"].as_str().unwrap_or("").to_string()
            }
        })
        .collect()
}

#[test]
fn generate_and_chat_streamed_and_not() {
    let _g = serial();
    let s = start(&[]);
    // Streamed generate: chunks, then one final line with the metrics.
    let (status, lines) = s.stream(
        "/api/generate",
        &json!({"model": "smol", "prompt": "Name a colour.", "options": greedy(12)}),
    );
    assert_eq!(status, 200);
    let last = lines.last().unwrap();
    assert_eq!(last["done"], true);
    assert_eq!(last["done_reason"], "length");
    assert_eq!(last["eval_count"], 12);
    assert!(last["prompt_eval_count"].as_u64().unwrap() > 5);
    for k in [
        "total_duration",
        "load_duration",
        "prompt_eval_duration",
        "eval_duration",
    ] {
        assert!(last[k].as_u64().unwrap() > 0, "{k}");
    }
    assert!(last["context"].as_array().unwrap().len() > 12);
    assert!(lines[..lines.len() - 1].iter().all(|l| l["done"] == false));
    let streamed = text_of(&lines, false);
    assert!(!streamed.is_empty());
    // The same request not streamed gives the same text in one object.
    let one = s.generate("Name a colour.", greedy(12));
    assert_eq!(one["response"], streamed.as_str());
    assert_eq!(one["done"], true);
    chrono_like(&one["created_at"]);

    // Chat, streamed and not.
    let msgs = json!([{"role": "user", "content": "Say hello."}]);
    let (status, lines) = s.stream(
        "/api/chat",
        &json!({"model": "smol", "messages": msgs, "options": greedy(10)}),
    );
    assert_eq!(status, 200);
    let last = lines.last().unwrap();
    assert_eq!(last["done"], true);
    assert_eq!(last["message"]["role"], "assistant");
    assert_eq!(last["message"]["content"], "");
    let streamed = text_of(&lines, true);
    let one = s.ok(
        "/api/chat",
        &json!({"model": "smol", "messages": msgs, "stream": false, "options": greedy(10)}),
    );
    assert_eq!(one["message"]["content"], streamed.as_str());
    assert!(one.get("context").is_none());
}

fn chrono_like(v: &Value) {
    let s = v.as_str().unwrap();
    assert!(s.starts_with("20") && s.contains('T'), "{s}");
}

#[test]
fn determinism_num_predict_and_stop() {
    let _g = serial();
    let s = start(&[]);
    let p = "Write a sentence about the sea.";
    let a = s.generate(p, greedy(24));
    let b = s.generate(p, greedy(24));
    assert_eq!(a["response"], b["response"]);
    // Seeded sampling repeats too.
    let sampled = json!({"temperature": 0.9, "seed": 42, "num_predict": 24});
    let c = s.generate(p, sampled.clone());
    let d = s.generate(p, sampled);
    assert_eq!(c["response"], d["response"]);
    // num_predict is honoured.
    let e = s.generate(p, greedy(3));
    assert_eq!(e["eval_count"], 3);
    assert_eq!(e["done_reason"], "length");
    // A stop string taken from the greedy text ends it there (and is not included).
    let full = a["response"].as_str().unwrap();
    let words: Vec<&str> = full.split_whitespace().collect();
    assert!(words.len() > 3, "{full}");
    let stop = words[2];
    let f = s.generate(
        p,
        json!({"temperature": 0, "num_predict": 24, "stop": [stop]}),
    );
    let cut = f["response"].as_str().unwrap();
    assert_eq!(f["done_reason"], "stop");
    assert!(!cut.contains(stop), "{cut:?} contains {stop:?}");
    assert!(full.starts_with(cut), "{full:?} / {cut:?}");
    // Raw mode skips the template: the same text gives another prompt token count.
    let raw = s.ok(
        "/api/generate",
        &json!({"model": "smol", "prompt": p, "raw": true, "stream": false, "options": greedy(4)}),
    );
    assert!(raw.get("context").is_none());
    assert!(raw["prompt_eval_count"].as_u64() < a["prompt_eval_count"].as_u64());
}

#[test]
fn concurrent_greedy_streams_match_each_alone() {
    let _g = serial();
    let s = start(&[("OLLAMA_NUM_PARALLEL", "4")]);
    let prompts = [
        "The capital of France is",
        "List three fruits:",
        "Once upon a time",
        "Water boils at",
    ];
    let alone: Vec<String> = prompts
        .iter()
        .map(|p| {
            s.generate(p, greedy(32))["response"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    // Clear the prompt caches' advantage: different slots will be used.
    let together: Vec<String> = std::thread::scope(|sc| {
        let hs: Vec<_> = prompts
            .iter()
            .map(|p| {
                let s = &s;
                sc.spawn(move || {
                    s.generate(p, greedy(32))["response"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(alone, together);
}

#[test]
fn second_turn_reuses_the_prompt_cache() {
    let _g = serial();
    let s = start(&[]);
    let mut msgs = vec![json!({"role": "user", "content": "Tell me about cats in two sentences."})];
    let first = s.ok(
        "/api/chat",
        &json!({"model": "smol", "messages": msgs, "stream": false, "options": greedy(30)}),
    );
    msgs.push(first["message"].clone());
    msgs.push(json!({"role": "user", "content": "And dogs?"}));
    let second = s.ok(
        "/api/chat",
        &json!({"model": "smol", "messages": msgs, "stream": false, "options": greedy(10)}),
    );
    let n1 = first["prompt_eval_count"].as_u64().unwrap();
    let n2 = second["prompt_eval_count"].as_u64().unwrap();
    // Only the new turn (and the end of the answer the cache had not seen) is evaluated.
    assert!(n2 < 25, "second turn evaluated {n2} tokens (first: {n1})");
    // Same prompt again: everything but the last token comes from the cache.
    let again = s.ok(
        "/api/chat",
        &json!({"model": "smol", "messages": msgs, "stream": false, "options": greedy(10)}),
    );
    assert_eq!(again["prompt_eval_count"], 1);
    assert_eq!(again["message"]["content"], second["message"]["content"]);
}

#[test]
fn keep_alive_load_unload_and_ps() {
    let _g = serial();
    let s = start(&[]);
    assert_eq!(s.get("/api/ps")["models"], json!([]));
    // Empty prompt: load.
    let v = s.ok(
        "/api/generate",
        &json!({"model": "smol", "keep_alive": "1s"}),
    );
    assert_eq!(v["done_reason"], "load");
    let ps = s.get("/api/ps");
    let m = &ps["models"][0];
    assert_eq!(m["name"], "smol:latest");
    assert!(m["size"].as_u64().unwrap() > 50_000_000);
    assert_eq!(m["size_vram"], 0);
    assert_eq!(m["context_length"], 4096);
    chrono_like(&m["expires_at"]);
    // It expires after a second.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(s.get("/api/ps")["models"], json!([]));
    assert!(s.runner_pids().is_empty());
    // Forever, then unload with keep_alive 0.
    s.ok(
        "/api/chat",
        &json!({"model": "smol", "messages": [], "keep_alive": -1}),
    );
    let exp = s.get("/api/ps")["models"][0]["expires_at"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(exp.starts_with("23"), "forever is far away: {exp}");
    let v = s.ok("/api/generate", &json!({"model": "smol", "keep_alive": 0}));
    assert_eq!(v["done_reason"], "unload");
    assert_eq!(s.get("/api/ps")["models"], json!([]));
    // keep_alive 0 on a real request unloads when it ends.
    s.ok(
        "/api/generate",
        &json!({"model": "smol", "prompt": "hi", "keep_alive": 0, "stream": false, "options": greedy(2)}),
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.get("/api/ps")["models"], json!([]));
    // A smaller num_ctx is served by the loaded runner; a larger one reloads.
    s.generate("hi", json!({"num_ctx": 2048, "num_predict": 1}));
    let pid = s.runner_pids();
    s.generate("hi", json!({"num_ctx": 1024, "num_predict": 1}));
    assert_eq!(s.runner_pids(), pid, "smaller num_ctx must not reload");
    assert_eq!(s.get("/api/ps")["models"][0]["context_length"], 2048);
    s.generate("hi", json!({"num_ctx": 3000, "num_predict": 1}));
    assert_ne!(s.runner_pids(), pid, "larger num_ctx reloads");
    assert_eq!(s.get("/api/ps")["models"][0]["context_length"], 3000);
}

#[test]
fn bad_input_gets_clear_errors() {
    let _g = serial();
    let s = start(&[]);
    let err = |v: &Value| v["error"].as_str().unwrap_or_default().to_string();
    // Malformed JSON, empty body, wrong types.
    let (st, v) = s.post_raw("/api/generate", "{\"model\": ");
    assert_eq!(st, 400, "{v}");
    let (st, v) = s.post_raw("/api/chat", "");
    assert_eq!((st, err(&v).as_str()), (400, "missing request body"));
    let (st, v) = s.post(
        "/api/generate",
        &json!({"model": "smol", "prompt": "x", "options": {"temperature": "hot"}}),
    );
    assert_eq!(st, 400, "{v}");
    let (st, _) = s.post("/api/generate", &json!({"model": "smol", "prompt": 5}));
    assert_eq!(st, 400);
    // Nesting beyond serde_json's depth limit, and bodies over 32 MiB, are refused.
    let deep = format!(
        "{{\"model\":\"smol\",\"prompt\":\"x\",\"options\":{{\"stop\":{}{}}}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let (st, v) = s.post_raw("/api/generate", &deep);
    assert_eq!(st, 400, "{v}");
    let huge = format!(
        "{{\"model\":\"smol\",\"prompt\":\"{}\"}}",
        "a".repeat(33 << 20)
    );
    let (st, _) = s.post_raw("/api/generate", &huge);
    assert_eq!(st, 413);
    // Unknown model: Ollama's texts.
    let (st, v) = s.post("/api/generate", &json!({"model": "nope", "prompt": "x"}));
    assert_eq!((st, err(&v).as_str()), (404, "model 'nope' not found"));
    let (st, v) = s.post(
        "/api/chat",
        &json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}),
    );
    assert_eq!((st, err(&v).as_str()), (404, "model 'nope' not found"));
    let (st, v) = s.post("/api/embed", &json!({"model": "nope", "input": "x"}));
    assert_eq!(
        (st, err(&v).as_str()),
        (404, "model \"nope\" not found, try pulling it first")
    );
    let (st, v) = s.post("/api/chat", &json!({"messages": []}));
    assert_eq!((st, err(&v).as_str()), (400, "model is required"));
    // raw with template.
    let (st, v) = s.post(
        "/api/generate",
        &json!({"model": "smol", "prompt": "x", "raw": true, "template": "{{ .Prompt }}"}),
    );
    assert_eq!(st, 400, "{v}");
    // context with out-of-range ids.
    for bad in [
        json!([1, 2, 99999999]),
        json!([-1]),
        json!([1, 3000000000u64]),
    ] {
        let (st, v) = s.post(
            "/api/generate",
            &json!({"model": "smol", "prompt": "x", "context": bad, "stream": false}),
        );
        assert_eq!(st, 400, "{bad}: {v}");
    }
    // A valid context is accepted.
    let first = s.generate("Hello", greedy(3));
    let v = s.ok("/api/generate", &json!({"model": "smol", "prompt": "again", "context": first["context"], "stream": false, "options": greedy(3)}));
    assert_eq!(v["done"], true);
    // Bad think, keep_alive and top_logprobs values.
    let (st, _) = s.post(
        "/api/generate",
        &json!({"model": "smol", "prompt": "x", "think": "loud"}),
    );
    assert_eq!(st, 400);
    let (st, _) = s.post(
        "/api/generate",
        &json!({"model": "smol", "prompt": "x", "think": true}),
    );
    assert_eq!(st, 400, "SmolLM2 cannot think");
    let (st, _) = s.post(
        "/api/generate",
        &json!({"model": "smol", "prompt": "x", "keep_alive": "-1"}),
    );
    assert_eq!(st, 400, "a bare -1 string has no unit");
    let (st, _) = s.post(
        "/api/generate",
        &json!({"model": "smol", "prompt": "x", "top_logprobs": 21}),
    );
    assert_eq!(st, 400);
    // Hostile options are clamped; the runner survives.
    for o in [
        json!({"num_ctx": 0, "num_predict": 2}),
        json!({"num_ctx": 2147483648u64, "num_predict": 2}),
        json!({"num_predict": -7, "num_ctx": 64}),
        json!({"num_batch": -1, "num_thread": -3, "top_k": -1, "top_p": 9, "num_predict": 2}),
    ] {
        let (st, v) = s.post(
            "/api/generate",
            &json!({"model": "smol", "prompt": "Hi", "stream": false, "options": o}),
        );
        assert_eq!(st, 200, "{o}: {v}");
        assert_eq!(v["done"], true);
    }
    // A 10 MB prompt: truncated by default, refused with truncate:false.
    let big = "lorem ipsum dolor sit amet ".repeat(10 * 1024 * 1024 / 27);
    let (st, v) = s.post(
        "/api/generate",
        &json!({"model": "smol", "prompt": big, "stream": false, "truncate": false, "options": {"num_predict": 1}}),
    );
    assert_eq!(st, 400, "{}", err(&v));
    assert!(err(&v).contains("exceeds the context length"), "{v}");
    let (st, v) = s.post(
        "/api/generate",
        &json!({"model": "smol", "prompt": big, "stream": false, "options": {"num_predict": 2}}),
    );
    assert_eq!(st, 200, "{v}");
    assert!(v["prompt_eval_count"].as_u64().unwrap() <= 4096);
    // Still serving.
    assert_eq!(s.generate("Hi", greedy(2))["done"], true);
}

#[cfg(unix)]
#[test]
fn runner_killed_mid_stream_then_recovers() {
    let _g = serial();
    let s = start(&[]);
    let r = client()
        .post(format!("{}/api/generate", s.base()))
        .json(&json!({"model": "smol", "prompt": "Count from one to one thousand.", "options": {"temperature": 0, "num_predict": 2000}}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let mut lines = BufReader::new(r).lines();
    for _ in 0..3 {
        let l: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        assert_eq!(l["done"], false);
    }
    let pids = s.runner_pids();
    assert_eq!(pids.len(), 1);
    Command::new("kill")
        .args(["-KILL", &pids[0].to_string()])
        .status()
        .unwrap();
    let rest: Vec<Value> = lines
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    let last = rest.last().unwrap();
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("unexpectedly stopped"),
        "{last}"
    );
    assert!(rest.iter().all(|l| l["done"] != true));
    // The next request loads a new runner.
    assert_eq!(s.generate("Hi", greedy(2))["done"], true);
    assert_eq!(s.runner_pids().len(), 1);
    assert_ne!(s.runner_pids(), pids);
}

#[cfg(unix)]
#[test]
fn runner_stopped_at_load_times_out_then_recovers() {
    use std::os::unix::fs::PermissionsExt;
    let _g = serial();
    let dir = tempfile_dir("stopwrap");
    let mark = dir.join("stopped-once");
    let wrapper = dir.join("runner-wrapper");
    // The first runner stops itself (SIGSTOP) before loading; later ones run normally.
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ ! -e '{m}' ]; then touch '{m}'; kill -STOP $$; fi\nexec '{BIN}' \"$@\"\n",
            m = mark.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let s = start(&[
        ("OLLAMARS_RUNNER_EXE", wrapper.to_str().unwrap()),
        ("OLLAMA_LOAD_TIMEOUT", "3s"),
    ]);
    let t0 = Instant::now();
    let (st, v) = s.post(
        "/api/generate",
        &json!({"model": "smol", "prompt": "Hi", "stream": false}),
    );
    assert_eq!(st, 500, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("timed out waiting for llama runner"),
        "{v}"
    );
    assert!(t0.elapsed() >= Duration::from_secs(3));
    assert!(mark.exists());
    assert_eq!(s.generate("Hi", greedy(2))["done"], true);
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ollamars-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn disconnect_during_prefill_frees_the_slot() {
    let _g = serial();
    let s = start(&[("OLLAMA_NUM_PARALLEL", "1")]);
    s.generate("warm up", greedy(1));
    // A prompt long enough that its prefill takes many batches.
    let long = "The quick brown fox jumps over the lazy dog. ".repeat(300);
    let full = s.ok(
        "/api/generate",
        &json!({"model": "smol", "prompt": long, "raw": true, "stream": false, "options": {"num_predict": 1, "num_ctx": 4096}}),
    );
    let prefill = Duration::from_nanos(full["prompt_eval_duration"].as_u64().unwrap());
    // Same length, other text (no cache hit); drop the connection 200 ms into the prefill.
    let long2 = "A slow grey cat sleeps under the warm red sun. ".repeat(300);
    let base = s.base();
    let h = std::thread::spawn(move || {
        let _ = reqwest::blocking::Client::builder()
            .timeout(Duration::from_millis(200))
            .build()
            .unwrap()
            .post(format!("{base}/api/generate"))
            .json(&json!({"model": "smol", "prompt": long2, "raw": true, "options": {"num_predict": 1, "num_ctx": 4096}}))
            .send();
    });
    h.join().unwrap();
    let t0 = Instant::now();
    let v = s.generate("Hi", greedy(1));
    let waited = t0.elapsed();
    assert_eq!(v["done"], true);
    assert!(
        waited < prefill / 2,
        "the next request waited {waited:?}; a whole prefill takes {prefill:?}"
    );
}

#[test]
fn queue_limit_with_64_concurrent_streams() {
    let _g = serial();
    let s = start(&[("OLLAMA_NUM_PARALLEL", "4"), ("OLLAMA_MAX_QUEUE", "16")]);
    s.generate("warm up", greedy(1));
    let results: Vec<(u16, Option<Value>, Duration)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..64)
            .map(|i| {
                let s = &s;
                sc.spawn(move || {
                    let t0 = Instant::now();
                    let (st, lines) = s.stream(
                        "/api/generate",
                        &json!({"model": "smol", "prompt": format!("Story number {i}:"), "options": {"temperature": 0, "num_predict": 48}}),
                    );
                    (st, lines.last().cloned(), t0.elapsed())
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok: Vec<_> = results.iter().filter(|r| r.0 == 200).collect();
    let busy: Vec<_> = results.iter().filter(|r| r.0 == 503).collect();
    assert_eq!(
        ok.len() + busy.len(),
        64,
        "{:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert_eq!(ok.len(), 20, "4 running + 16 queued");
    for r in &busy {
        assert_eq!(
            r.1.as_ref().unwrap()["error"],
            "server busy, please try again.  maximum pending requests exceeded"
        );
    }
    for r in &ok {
        let last = r.1.as_ref().unwrap();
        assert_eq!(last["done"], true, "{last}");
        assert_eq!(last["eval_count"], 48);
    }
    // The refusals were immediate: each came back before any admitted stream finished.
    let fastest_ok = ok.iter().map(|r| r.2).min().unwrap();
    let slowest_busy = busy.iter().map(|r| r.2).max().unwrap();
    assert!(
        slowest_busy < fastest_ok,
        "{slowest_busy:?} vs {fastest_ok:?}"
    );
}

#[test]
fn embeddings() {
    let _g = serial();
    let s = start(&[]);
    let v = s.ok(
        "/api/embed",
        &json!({"model": "smol", "input": ["The cat sat.", "A dog ran.", "The cat sat."]}),
    );
    let e = v["embeddings"].as_array().unwrap();
    assert_eq!(e.len(), 3);
    let vec = |i: usize| -> Vec<f64> {
        e[i].as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    for i in 0..3 {
        assert!((norm(&vec(i)) - 1.0).abs() < 1e-3);
        assert_eq!(vec(i).len(), 576);
    }
    assert_eq!(vec(0), vec(2));
    assert_ne!(vec(0), vec(1));
    assert!(v["prompt_eval_count"].as_u64().unwrap() > 6);
    // dimensions: cut, then normalised again.
    let d = s.ok(
        "/api/embed",
        &json!({"model": "smol", "input": "The cat sat.", "dimensions": 8}),
    );
    let d: Vec<f64> = d["embeddings"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(d.len(), 8);
    assert!((norm(&d) - 1.0).abs() < 1e-3);
    // Legacy: one vector, not normalised.
    let l = s.ok(
        "/api/embeddings",
        &json!({"model": "smol", "prompt": "The cat sat."}),
    );
    let l: Vec<f64> = l["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(l.len(), 576);
    assert!((norm(&l) - 1.0).abs() > 1e-2, "legacy embeddings are raw");
    let scaled: Vec<f64> = l.iter().map(|x| x / norm(&l)).collect();
    assert!(scaled.iter().zip(vec(0)).all(|(a, b)| (a - b).abs() < 1e-4));
    // Empty input loads and returns nothing; bad types are 400.
    assert_eq!(
        s.ok("/api/embed", &json!({"model": "smol", "input": []}))["embeddings"],
        json!([])
    );
    let (st, v) = s.post("/api/embed", &json!({"model": "smol", "input": ["ok", 5]}));
    assert_eq!(
        (st, v["error"].as_str().unwrap()),
        (400, "invalid input type")
    );
    let long = "word ".repeat(6000);
    let (st, v) = s.post(
        "/api/embed",
        &json!({"model": "smol", "input": long, "truncate": false}),
    );
    assert_eq!(st, 400, "{v}");
    assert_eq!(
        s.ok("/api/embed", &json!({"model": "smol", "input": long}))["embeddings"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn cors_and_host_guard() {
    let _g = serial();
    let s = start(&[("OLLAMA_ORIGINS", "https://app.example")]);
    let c = client();
    let get = |origin: Option<&str>, host: Option<&str>| {
        let mut r = c.get(format!("{}/api/version", s.base()));
        if let Some(o) = origin {
            r = r.header("Origin", o);
        }
        if let Some(h) = host {
            r = r.header("Host", h);
        }
        r.send().unwrap()
    };
    let r = get(Some("http://localhost:3000"), None);
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    assert_eq!(
        get(Some("https://app.example"), None).status().as_u16(),
        200
    );
    assert_eq!(
        get(Some("https://evil.example"), None).status().as_u16(),
        403
    );
    // DNS rebinding: a foreign Host on a loopback listener.
    assert_eq!(get(None, Some("evil.example:11434")).status().as_u16(), 403);
    assert_eq!(get(None, Some("localhost:11434")).status().as_u16(), 200);
    // Preflight.
    let r = c
        .request(reqwest::Method::OPTIONS, format!("{}/api/chat", s.base()))
        .header("Origin", "http://127.0.0.1:8080")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert!(
        r.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("Authorization")
    );
    // Authorization headers are ignored.
    let r = c
        .get(format!("{}/api/tags", s.base()))
        .header("Authorization", "Bearer whatever")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[test]
fn context_shift_history_truncation_and_shutdown() {
    let _g = serial();
    let mut s = start(&[]);
    // Generation past a 64-token context: shifted by default, stopped with shift:false.
    let opts = json!({"temperature": 0, "num_predict": 150, "num_ctx": 64});
    let shifted = s.ok("/api/generate", &json!({"model": "smol", "prompt": "1, 2, 3, 4, 5, 6, 7, 8,", "raw": true, "stream": false, "options": opts}));
    assert_eq!(shifted["eval_count"], 150, "{shifted}");
    assert_eq!(shifted["done_reason"], "length");
    let stopped = s.ok("/api/generate", &json!({"model": "smol", "prompt": "1, 2, 3, 4, 5, 6, 7, 8,", "raw": true, "stream": false, "shift": false, "options": opts}));
    assert_eq!(stopped["done_reason"], "length");
    let n = stopped["eval_count"].as_u64().unwrap();
    assert!(n < 64, "without shift generation stops at the context: {n}");

    // Chat history beyond num_ctx: the oldest turns go, the system message stays.
    let mut msgs = vec![json!({"role": "system", "content": "SYSTEM-MARKER be brief."})];
    for i in 0..12 {
        msgs.push(json!({"role": "user", "content": format!("Question {i}: tell me something about the number {i} in a long sentence please.")}));
        msgs.push(json!({"role": "assistant", "content": format!("Answer {i}: the number {i} is a fine number with many interesting properties indeed.")}));
    }
    msgs.push(json!({"role": "user", "content": "LAST-QUESTION?"}));
    let v = s.ok("/api/chat", &json!({"model": "smol", "messages": msgs, "stream": false, "_debug_render_only": true, "options": {"num_ctx": 256}}));
    let p = v["_debug_info"]["rendered_template"].as_str().unwrap();
    assert!(p.contains("SYSTEM-MARKER"), "{p}");
    assert!(p.contains("LAST-QUESTION?"), "{p}");
    assert!(!p.contains("Question 0:"), "oldest turn kept: {p}");
    assert!(p.contains("Answer 11:"), "newest turns dropped: {p}");
    let full = s.ok(
        "/api/chat",
        &json!({"model": "smol", "messages": msgs, "stream": false, "_debug_render_only": true}),
    );
    assert!(
        full["_debug_info"]["rendered_template"]
            .as_str()
            .unwrap()
            .contains("Question 0:")
    );

    // SIGTERM: the server exits and takes its runners with it.
    #[cfg(unix)]
    {
        s.ok("/api/generate", &json!({"model": "smol", "keep_alive": -1}));
        let pids = s.runner_pids();
        assert_eq!(pids.len(), 1);
        Command::new("kill")
            .args(["-TERM", &s.child.id().to_string()])
            .status()
            .unwrap();
        let t0 = Instant::now();
        loop {
            if s.child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "serve did not exit on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            !std::path::Path::new(&format!("/proc/{}/stat", pids[0])).exists()
                || std::fs::read_to_string(format!("/proc/{}/stat", pids[0]))
                    .unwrap_or_default()
                    .contains(") Z"),
            "runner {} still running after the server exited",
            pids[0]
        );
    }
}

#[test]
fn max_loaded_models_evicts_the_idle_runner() {
    let _g = serial();
    let s = start(&[("OLLAMA_MAX_LOADED_MODELS", "1")]);
    let gemma = testkit::model_path(testkit::GEMMA3);
    s.create("gemma", &format!("FROM {}\n", gemma.display()));
    s.generate("Hi", greedy(2));
    let names = |s: &Server| -> Vec<String> {
        s.get("/api/ps")["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&s), ["smol:latest"]);
    // gemma-3 has no chat template: the runner renders llama.cpp's built-in gemma template.
    let v = s.ok(
        "/api/chat",
        &json!({"model": "gemma", "messages": [{"role": "user", "content": "Hi"}], "stream": false, "options": greedy(4)}),
    );
    assert_eq!(v["done"], true);
    assert_eq!(names(&s), ["gemma:latest"]);
    assert_eq!(s.runner_pids().len(), 1);
    let r = s.ok(
        "/api/chat",
        &json!({"model": "gemma", "messages": [{"role": "user", "content": "Hi"}], "stream": false, "_debug_render_only": true}),
    );
    let p = r["_debug_info"]["rendered_template"].as_str().unwrap();
    assert!(
        p.contains("<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"),
        "{p:?}"
    );
}

#[test]
fn create_quantizes_in_a_child_process() {
    let _g = serial();
    let s = start(&[]);
    let bytes = ollamars::gguf::testing::tiny_llama(ollamars::gguf::GgmlType::F32, 0, None);
    let digest = format!("sha256:{}", sha256_hex(&bytes));
    let r = client()
        .post(format!("{}/api/blobs/{digest}", s.base()))
        .body(bytes)
        .send()
        .unwrap();
    assert!(r.status().is_success());
    let v = s.ok(
        "/api/create",
        &json!({"model": "tiny-q8", "files": {"m.gguf": digest}, "quantize": "q8_0", "stream": false}),
    );
    assert_eq!(v["status"], "success");
    let show = s.ok("/api/show", &json!({"model": "tiny-q8"}));
    assert_eq!(show["details"]["quantization_level"], "Q8_0");
}

fn sha256_hex(b: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

#[test]
fn go_template_system_and_messages() {
    let _g = serial();
    let s = start(&[]);
    let gguf = testkit::model_path(testkit::SMOLLM2);
    let chatml = "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n";
    s.create(
        "tmpl",
        &format!(
            "FROM {}\nTEMPLATE \"\"\"{chatml}\"\"\"\nSYSTEM Be brief.\nMESSAGE user Hi there\nMESSAGE assistant Hello!\nPARAMETER stop <|im_end|>\n",
            gguf.display()
        ),
    );
    let rendered = |path: &str, body: Value| -> String {
        let v = s.ok(path, &body);
        v["_debug_info"]["rendered_template"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // Chat: SYSTEM first, then the Modelfile MESSAGEs, then the request's.
    let chat = rendered(
        "/api/chat",
        json!({"model": "tmpl", "messages": [{"role": "USER", "content": "What is 2+2?"}], "_debug_render_only": true}),
    );
    assert_eq!(
        chat,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    );
    // A request that starts with a system message replaces the model's (which Ollama puts
    // after the Modelfile MESSAGEs, where the request's messages start).
    let chat = rendered(
        "/api/chat",
        json!({"model": "tmpl", "messages": [{"role": "system", "content": "Other."}, {"role": "user", "content": "Q"}], "_debug_render_only": true}),
    );
    assert!(chat.starts_with("<|im_start|>user\nHi there"), "{chat}");
    assert!(chat.contains("<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>system\nOther.<|im_end|>\n<|im_start|>user\nQ"), "{chat}");
    assert!(!chat.contains("Be brief."));
    // Generate: the same layout; `system` overrides; `template` overrides.
    let g = rendered(
        "/api/generate",
        json!({"model": "tmpl", "prompt": "Q", "system": "Sys.", "_debug_render_only": true}),
    );
    assert_eq!(
        g,
        "<|im_start|>system\nSys.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"
    );
    let g = rendered(
        "/api/generate",
        json!({"model": "tmpl", "prompt": "Q", "template": "[{{ .System }}] {{ .Prompt }} =>", "_debug_render_only": true}),
    );
    // Legacy mode: each (system, user, assistant) turn runs the template, with `.Response`
    // appended; the last turn is cut before it.
    assert_eq!(g, "[Be brief.] Hi there =>Hello![] Q =>");
    // Fill-in-the-middle through a template that uses .Suffix.
    let g = rendered(
        "/api/generate",
        json!({"model": "tmpl", "prompt": "def f(", "suffix": "return x", "template": "<PRE>{{ .Prompt }}<SUF>{{ .Suffix }}<MID>", "_debug_render_only": true}),
    );
    assert_eq!(g, "<PRE>def f(<SUF>return x<MID>");
    let (st, v) = s.post(
        "/api/generate",
        &json!({"model": "tmpl", "prompt": "a", "suffix": "b"}),
    );
    assert_eq!(st, 400, "the model's template has no .Suffix: {v}");
    // A real answer stops at the PARAMETER stop string.
    let v = s.ok(
        "/api/chat",
        &json!({"model": "tmpl", "messages": [{"role": "user", "content": "Say hi."}], "stream": false, "options": greedy(40)}),
    );
    assert!(
        !v["message"]["content"]
            .as_str()
            .unwrap()
            .contains("<|im_end|>")
    );
    // Capabilities reflect the template.
    let show = s.ok("/api/show", &json!({"model": "tmpl"}));
    assert_eq!(show["capabilities"], json!(["completion"]));
}

#[test]
fn thinking_is_split_from_content() {
    let _g = serial();
    let s = start(&[]);
    let gguf = testkit::model_path(testkit::SMOLLM2);
    let tmpl = "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n{{ if $.Think }}<think>{{ end }}";
    s.create(
        "thinker",
        &format!("FROM {}\nTEMPLATE \"\"\"{tmpl}\"\"\"\n", gguf.display()),
    );
    let caps = s.ok("/api/show", &json!({"model": "thinker"}))["capabilities"].clone();
    assert!(
        caps.as_array().unwrap().contains(&json!("thinking")),
        "{caps}"
    );
    let msgs = json!([{"role": "user", "content": "What is 2+2?"}]);
    // think (the default for a thinking model): the prompt ends inside <think>, so what the
    // model writes (it never closes the tag) is thinking, not content.
    let v = s.ok(
        "/api/chat",
        &json!({"model": "thinker", "messages": msgs, "stream": false, "options": greedy(12)}),
    );
    let thinking = v["message"]["thinking"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!thinking.is_empty(), "{v}");
    assert_eq!(v["message"]["content"], "");
    // The thinking text is exactly the model's raw output for that prompt.
    let p = s.ok(
        "/api/chat",
        &json!({"model": "thinker", "messages": msgs, "_debug_render_only": true}),
    )["_debug_info"]["rendered_template"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(p.ends_with("<think>"), "{p}");
    let raw = s.generate_raw(&p, greedy(12));
    assert_eq!(raw.trim_start(), thinking);
    // Streamed: thinking chunks, no content.
    let (_, lines) = s.stream(
        "/api/chat",
        &json!({"model": "thinker", "messages": msgs, "options": greedy(12)}),
    );
    let streamed: String = lines
        .iter()
        .map(|l| l["message"]["thinking"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(streamed, thinking);
    assert!(lines.iter().all(|l| l["message"]["content"] == ""));
    // think:false: no <think> in the prompt, everything is content, nothing leaks as thinking.
    let v = s.ok(
        "/api/chat",
        &json!({"model": "thinker", "messages": msgs, "think": false, "stream": false, "options": greedy(12)}),
    );
    assert!(v["message"].get("thinking").is_none(), "{v}");
    assert!(!v["message"]["content"].as_str().unwrap().is_empty());
    // A model that cannot think refuses think:true but accepts think:false.
    let (st, v) = s.post(
        "/api/chat",
        &json!({"model": "smol", "messages": msgs, "think": true}),
    );
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["error"], "\"smol\" does not support thinking");
}

#[test]
fn format_schema_constrains_the_output() {
    let _g = serial();
    let s = start(&[]);
    let schema = json!({"type": "object", "properties": {
        "city": {"type": "string", "maxLength": 20},
        "sunny": {"type": "boolean"},
        "temp": {"type": "integer"}},
        "required": ["city", "sunny", "temp"]});
    let check = |text: &str| {
        let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
        let o = v.as_object().unwrap();
        assert_eq!(o.len(), 3, "{v}");
        assert!(o["city"].as_str().unwrap().chars().count() <= 20);
        assert!(o["sunny"].is_boolean());
        assert!(o["temp"].is_i64());
    };
    let v = s.ok(
        "/api/chat",
        &json!({"model": "smol", "stream": false, "format": schema, "options": greedy(100),
            "messages": [{"role": "user", "content": "Describe the weather in Paris as JSON."}]}),
    );
    assert_eq!(v["done_reason"], "stop", "{v}");
    check(v["message"]["content"].as_str().unwrap());
    let v = s.ok(
        "/api/generate",
        &json!({"model": "smol", "stream": false, "format": schema, "prompt": "Weather in Rome as JSON:", "options": greedy(100)}),
    );
    check(v["response"].as_str().unwrap());
    // A bad schema is a 400 naming the problem.
    let (st, v) = s.post(
        "/api/generate",
        &json!({"model": "smol", "prompt": "x", "format": {"type": "nope"}}),
    );
    assert_eq!(st, 400);
    assert_eq!(
        v["error"],
        "invalid JSON schema: unsupported type \"nope\" at /"
    );
    let (st, _) = s.post(
        "/api/chat",
        &json!({"model": "smol", "messages": [{"role": "user", "content": "x"}], "format": "yaml"}),
    );
    assert_eq!(st, 400);
}

#[test]
fn openai_models_and_embeddings() {
    let _g = serial();
    let s = start(&[]);
    let gguf = testkit::model_path(testkit::SMOLLM2);
    s.create("me/smol2", &format!("FROM {}\n", gguf.display()));
    let list = s.get("/v1/models");
    assert_eq!(list["object"], "list");
    let mut ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["me/smol2:latest", "smol:latest"]);
    let m = s.get("/v1/models/me/smol2:latest");
    assert_eq!(
        (
            m["id"].as_str(),
            m["object"].as_str(),
            m["owned_by"].as_str()
        ),
        (Some("me/smol2:latest"), Some("model"), Some("me"))
    );
    assert!(m["created"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(s.get("/v1/models/smol")["id"], "smol:latest");
    let r = client()
        .get(format!("{}/v1/models/nope", s.base()))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let e: Value = r.json().unwrap();
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert_eq!(e["error"]["code"], "model_not_found");

    // Embeddings: float, and base64 of the same little-endian f32 values.
    let f = s.ok(
        "/v1/embeddings",
        &json!({"model": "smol", "input": ["The cat sat.", "A dog ran."]}),
    );
    assert_eq!(f["object"], "list");
    assert_eq!(f["data"].as_array().unwrap().len(), 2);
    assert_eq!(f["data"][1]["index"], 1);
    assert!(f["usage"]["prompt_tokens"].as_u64().unwrap() > 4);
    let floats: Vec<f32> = f["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(floats.len(), 576);
    let b = s.ok("/v1/embeddings", &json!({"model": "smol", "input": "The cat sat.", "encoding_format": "base64", "dimensions": 64, "num_ctx": 512}));
    let text = b["data"][0]["embedding"].as_str().unwrap();
    let bytes = decode_base64(text);
    assert_eq!(bytes.len(), 64 * 4);
    let cut: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let norm = cut.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3);
    // Same direction as the first 64 values of the full vector.
    let head_norm = floats[..64].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!(
        cut.iter()
            .zip(&floats[..64])
            .all(|(a, b)| (a - b / head_norm).abs() < 1e-4)
    );
    // Errors in OpenAI's shape.
    let (st, v) = s.post(
        "/v1/embeddings",
        &json!({"model": "smol", "input": "x", "encoding_format": "hex"}),
    );
    assert_eq!(st, 400);
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let (st, v) = s.post("/v1/embeddings", &json!({"model": "nope", "input": "x"}));
    assert_eq!(st, 404);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not found")
    );
}

fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 {c}"),
        }
    };
    let mut out = Vec::new();
    for chunk in s.trim_end_matches('=').as_bytes().chunks(4) {
        let n = chunk.iter().fold(0u32, |acc, &c| (acc << 6) | val(c)) << (6 * (4 - chunk.len()));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
fn openai_chat_completions() {
    let _g = serial();
    let s = start(&[]);
    let msgs = json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Say hello."}]}]);
    // Ollama options as extra fields (beyond Ollama): num_ctx reaches the runner.
    let v = s.ok(
        "/v1/chat/completions",
        &json!({"model": "smol", "messages": msgs, "temperature": 0, "max_tokens": 12, "num_ctx": 1024}),
    );
    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["system_fingerprint"], "fp_ollama");
    let choice = &v["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    let content = choice["message"]["content"].as_str().unwrap().to_string();
    assert!(!content.is_empty());
    assert!(["stop", "length"].contains(&choice["finish_reason"].as_str().unwrap()));
    let u = &v["usage"];
    assert_eq!(
        u["total_tokens"].as_u64().unwrap(),
        u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()
    );
    assert_eq!(s.get("/api/ps")["models"][0]["context_length"], 1024);
    // Streamed: role first, content deltas, the finish chunk, the usage chunk, [DONE].
    let r = client()
        .post(format!("{}/v1/chat/completions", s.base()))
        .json(&json!({"model": "smol", "messages": msgs, "temperature": 0, "max_tokens": 12, "num_ctx": 1024,
            "stream": true, "stream_options": {"include_usage": true}}))
        .send()
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let text = r.text().unwrap();
    let chunks = sse_chunks(&text);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let n = chunks.len();
    assert_eq!(chunks[n - 1]["choices"], json!([]));
    assert!(
        chunks[n - 1]["usage"]["completion_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(chunks[n - 2]["choices"][0]["delta"], json!({}));
    assert!(chunks[n - 2]["choices"][0]["finish_reason"].is_string());
    let streamed: String = chunks[..n - 2]
        .iter()
        .map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(streamed, content);
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk" && c["id"] == chunks[0]["id"])
    );
    // response_format json_schema is enforced.
    let schema =
        json!({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]});
    let v = s.ok(
        "/v1/chat/completions",
        &json!({"model": "smol", "messages": [{"role": "user", "content": "Answer in JSON."}], "temperature": 0,
            "max_tokens": 30, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}),
    );
    let out: Value =
        serde_json::from_str(v["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert!(out["ok"].is_boolean());
    // Bad input, in OpenAI's error shape.
    for (body, want) in [
        (
            json!({"model": "smol", "messages": []}),
            "[] is too short - 'messages'",
        ),
        (
            json!({"model": "smol", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "huge"}),
            "invalid reasoning effort",
        ),
        (
            json!({"model": "smol", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://example.com/a.png"}}]}]}),
            "image URLs are not currently supported",
        ),
        (
            json!({"model": "smol", "messages": [{"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]}),
            "invalid tool call arguments",
        ),
    ] {
        let (st, v) = s.post("/v1/chat/completions", &body);
        assert_eq!(st, 400, "{body}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(want),
            "{v}"
        );
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
    let (st, v) = s.post(
        "/v1/chat/completions",
        &json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}),
    );
    assert_eq!(st, 404, "{v}");
    assert_eq!(v["error"]["code"], "model_not_found");
}

#[test]
fn openai_text_completions() {
    let _g = serial();
    let s = start(&[]);
    // Whole and streamed: the same text.
    let v = s.ok(
        "/v1/completions",
        &json!({"model": "smol", "prompt": "The capital of France is", "temperature": 0, "max_tokens": 8}),
    );
    assert_eq!(v["object"], "text_completion");
    assert!(v["id"].as_str().unwrap().starts_with("cmpl-"));
    let whole = v["choices"][0]["text"].as_str().unwrap().to_string();
    assert!(!whole.is_empty());
    assert_eq!(v["usage"]["completion_tokens"], 8);
    let text = client()
        .post(format!("{}/v1/completions", s.base()))
        .json(&json!({"model": "smol", "prompt": "The capital of France is", "temperature": 0, "max_tokens": 8, "stream": true}))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let chunks = sse_chunks(&text);
    let streamed: String = chunks
        .iter()
        .map(|c| c["choices"][0]["text"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(streamed, whole);
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "length"
    );
    let (st, _) = s.post(
        "/v1/completions",
        &json!({"model": "smol", "prompt": ["a", "b"]}),
    );
    assert_eq!(st, 400);
}

#[test]
fn tool_choice_forces_a_call_and_the_round_trip_completes() {
    let _g = serial();
    let s = start(&[]);
    let gguf = testkit::model_path(testkit::SMOLLM2);
    let tmpl = r#"{{- if .Tools }}<|im_start|>system
Tools: {{ json .Tools }}
Call one as <tool_call>{"name": NAME, "arguments": ARGS}</tool_call><|im_end|>
{{ end }}{{- range .Messages }}<|im_start|>{{ .Role }}
{{ if .ToolCalls }}{{ range .ToolCalls }}<tool_call>{"name": "{{ .Function.Name }}", "arguments": {{ json .Function.Arguments }}}</tool_call>{{ end }}{{ else }}{{ .Content }}{{ end }}<|im_end|>
{{ end }}<|im_start|>assistant
"#;
    s.create(
        "tooly",
        &format!("FROM {}\nTEMPLATE \"\"\"{tmpl}\"\"\"\n", gguf.display()),
    );
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}}, "required": ["city"]}}}]);
    let mut msgs = vec![json!({"role": "user", "content": "What is the weather in Paris?"})];
    let v = s.ok(
        "/api/chat",
        &json!({"model": "tooly", "messages": msgs, "tools": tools, "tool_choice": "required", "stream": false, "options": greedy(60)}),
    );
    let calls = v["message"]["tool_calls"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .clone();
    assert_eq!(calls.len(), 1, "{v}");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert_eq!(calls[0]["function"]["index"], 0);
    assert!(calls[0]["function"]["arguments"]["city"].is_string(), "{v}");
    let id = calls[0]["id"].as_str().unwrap();
    assert!(id.starts_with("call_") && id.len() == 13);
    assert_eq!(v["message"]["content"], "");
    // Streamed, the call arrives whole in one chunk.
    let (_, lines) = s.stream(
        "/api/chat",
        &json!({"model": "tooly", "messages": msgs, "tools": tools, "tool_choice": "required", "options": greedy(60)}),
    );
    let with_calls: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"].get("tool_calls").is_some())
        .collect();
    assert_eq!(with_calls.len(), 1);
    assert_eq!(
        with_calls[0]["message"]["tool_calls"][0]["function"]["arguments"],
        calls[0]["function"]["arguments"]
    );
    // The tool's result goes back, and the final answer streams as text.
    msgs.push(v["message"].clone());
    msgs.push(json!({"role": "tool", "tool_name": "get_weather", "content": "Sunny, 22 degrees."}));
    let (_, lines) = s.stream(
        "/api/chat",
        &json!({"model": "tooly", "messages": msgs, "tools": tools, "options": greedy(20)}),
    );
    assert_eq!(lines.last().unwrap()["done"], true);
    assert!(!text_of(&lines, true).is_empty());
    // OpenAI: a named function; arguments come as a JSON string; finish_reason tool_calls.
    let v = s.ok(
        "/v1/chat/completions",
        &json!({"model": "tooly", "messages": [{"role": "user", "content": "Weather in Rome?"}], "tools": tools,
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}}, "temperature": 0, "max_tokens": 60}),
    );
    let c = &v["choices"][0];
    assert_eq!(c["finish_reason"], "tool_calls", "{v}");
    let args: Value = serde_json::from_str(
        c["message"]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(args["city"].is_string());
    // Unknown names and bad values are 400s; "none" hides the tools.
    let (st, _) = s.post(
        "/api/chat",
        &json!({"model": "tooly", "messages": msgs, "tools": tools, "tool_choice": "nope"}),
    );
    assert_eq!(st, 400);
    let (st, _) = s.post(
        "/api/chat",
        &json!({"model": "tooly", "messages": msgs, "tools": tools, "tool_choice": 5}),
    );
    assert_eq!(st, 400);
    let v = s.ok(
        "/api/chat",
        &json!({"model": "tooly", "messages": [{"role": "user", "content": "Hi"}], "tools": tools, "tool_choice": "none",
            "_debug_render_only": true}),
    );
    assert!(
        !v["_debug_info"]["rendered_template"]
            .as_str()
            .unwrap()
            .contains("Tools:")
    );
}

/// The JSON chunks of an SSE body, which must end with `data: [DONE]`.
fn sse_chunks(text: &str) -> Vec<Value> {
    let frames: Vec<&str> = text
        .split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|f| f.strip_prefix("data: ").unwrap())
        .collect();
    assert_eq!(*frames.last().unwrap(), "[DONE]");
    frames[..frames.len() - 1]
        .iter()
        .map(|f| serde_json::from_str(f).unwrap())
        .collect()
}
