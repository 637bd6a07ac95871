//! Vision end to end: `ollamars serve` with the project's tiny random-weight gemma3 vision
//! model (`scripts/make-vision-model`, through `testkit::mtmd::vision_model`), against
//! upstream's own `llama-mtmd-cli` built from the same tree on this machine, and with bad input.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

mod common;

use common::Server;

/// Tests that run models take turns: ggml's threads spin, two models at once on 2 cores slow
/// each other down tenfold.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

const N: usize = 24;

impl Server {
    fn ok(&self, path: &str, body: &Value) -> Value {
        let (status, v) = self.post(path, body);
        assert_eq!(status, 200, "{path}: {v}");
        v
    }

    fn ok_get(&self, path: &str) -> Value {
        common::client()
            .get(format!("{}{path}", self.base()))
            .send()
            .unwrap()
            .json()
            .unwrap()
    }
}

/// A deterministic RGB PNG whose pixels depend on `seed`.
fn png(dir: &Path, name: &str, w: u32, h: u32, seed: u32) -> PathBuf {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let v =
            |k: u32| ((x * (7 + k + seed) + y * (13 + 2 * k) + seed * 31 * (k + 1)) % 256) as u8;
        image::Rgb([v(0), v(1), v(2)])
    });
    let path = dir.join(name);
    img.save(&path).unwrap();
    path
}

fn b64(path: &Path) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).unwrap())
}

/// Server-side options matching the reference run.
fn options() -> Value {
    json!({"temperature": 0, "repeat_penalty": 1, "num_predict": N, "num_ctx": 4096,
           "num_batch": 512, "num_thread": testkit::upstream::threads()})
}

fn vision_server(tag: &str, parallel: &str) -> (Server, testkit::mtmd::VisionModel) {
    let vm = testkit::mtmd::vision_model();
    let s = Server::start(
        tag,
        &[
            ("OLLAMA_NUM_PARALLEL", parallel),
            ("OLLAMA_FLASH_ATTENTION", "1"),
        ],
    );
    s.create(
        "vis",
        &format!(
            "FROM {}\nFROM {}\n",
            vm.model.display(),
            vm.mmproj.display()
        ),
    );
    (s, vm)
}

/// The generated ids of a non-streamed generate answer: the tail of `context`.
fn generated(v: &Value) -> Vec<i32> {
    let ctx: Vec<i32> = serde_json::from_value(v["context"].clone()).expect("context ids");
    let n = v["eval_count"].as_u64().unwrap() as usize;
    let stopped = v["done_reason"] == "stop";
    // A stop on an end-of-generation id: that id is not in the context.
    let _ = stopped;
    ctx[ctx.len() - n.min(ctx.len())..].to_vec()
}

#[test]
fn greedy_matches_mtmd_cli_alone_streamed_and_batched() {
    let _serial = serial();
    let (s, vm) = vision_server("vision-parity", "4");
    let dir = tempfile::tempdir().unwrap();
    let images = [
        png(dir.path(), "a.png", 64, 48, 1),
        png(dir.path(), "b.png", 40, 72, 2),
    ];
    let build = testkit::llama_build!();
    let mut texts = Vec::new();
    for img in &images {
        let reference = testkit::mtmd::mtmd_greedy(
            &build,
            &testkit::mtmd::MtmdRun {
                model: &vm.model,
                mmproj: &vm.mmproj,
                images: &[img.as_path()],
                prompt: "describe",
                n_predict: N,
                n_ctx: 4096,
                n_batch: 512,
                n_ubatch: 512,
                flash_attn: true,
                threads: testkit::upstream::threads(),
                jinja: true,
            },
        );
        let req = json!({"model": "vis", "prompt": "describe", "images": [b64(img)],
                         "stream": false, "options": options()});
        // The same rendered prompt: ollamars' `[img-0]` tag is where mtmd-cli's marker is.
        let mut render = req.clone();
        render["_debug_render_only"] = json!(true);
        let r = s.ok("/api/generate", &render);
        let rendered = r["_debug_info"]["rendered_template"].as_str().unwrap();
        assert_eq!(r["_debug_info"]["image_count"], 1, "{r}");
        assert_eq!(
            rendered.replace("[img-0]", "<__media__>"),
            reference.prompt,
            "rendered prompts differ"
        );
        let v = s.ok("/api/generate", &req);
        let ours = generated(&v);
        assert_eq!(
            ours,
            reference.tokens,
            "greedy ids differ for {}: ollamars {:?} vs mtmd-cli {:?}",
            img.display(),
            v["response"],
            reference.text
        );
        assert_eq!(v["response"].as_str().unwrap(), reference.text);
        assert_eq!(
            v["done_reason"],
            if reference.eog.is_some() {
                "stop"
            } else {
                "length"
            }
        );
        // Every prompt token and image position was evaluated once.
        let media: usize = reference.media_tokens().iter().sum();
        assert!(media > 0, "the reference saw no image chunk");

        // Streamed: the same text.
        let mut sreq = req.clone();
        sreq["stream"] = json!(true);
        let (code, lines) = s.stream("/api/generate", &sreq);
        assert_eq!(code, 200);
        let streamed: String = lines
            .iter()
            .map(|l| l["response"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(streamed, reference.text, "streamed text differs");
        texts.push(reference.text);
    }
    assert_ne!(texts[0], texts[1], "the image does not change the answer");

    // Batched: the image request decodes beside three text streams, same answer.
    let base = s.base();
    let text_streams: Vec<_> = (0..3)
        .map(|i| {
            let base = base.clone();
            std::thread::spawn(move || {
                let r = common::client()
                    .post(format!("{base}/api/chat"))
                    .json(&json!({"model": "vis", "stream": false,
                        "messages": [{"role": "user", "content": format!("tell me a story {i}")}],
                        "options": {"temperature": 0, "num_predict": 64, "num_ctx": 4096,
                                    "num_batch": 512, "num_thread": testkit::upstream::threads()}}))
                    .send()
                    .unwrap();
                assert_eq!(r.status().as_u16(), 200);
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(150));
    let req = json!({"model": "vis", "prompt": "describe", "images": [b64(&images[0])],
                     "stream": false, "options": options()});
    let v = s.ok("/api/generate", &req);
    for t in text_streams {
        t.join().unwrap();
    }
    assert_eq!(
        v["response"].as_str().unwrap(),
        texts[0],
        "batched with text streams, the answer changed"
    );
}

#[test]
fn second_turn_does_not_encode_the_image_again() {
    let _serial = serial();
    let (s, _vm) = vision_server("vision-cache", "1");
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        png(dir.path(), "a.png", 64, 64, 3),
        png(dir.path(), "b.png", 64, 64, 4),
    );
    let turn1 = |img: &Path| {
        json!({"model": "vis", "stream": false, "options": {"temperature": 0, "num_predict": 8},
               "messages": [{"role": "user", "content": "what is this?", "images": [b64(img)]}]})
    };
    let turn2 = |answer: &str| {
        json!({"model": "vis", "stream": false, "options": {"temperature": 0, "num_predict": 8},
               "messages": [
                   {"role": "user", "content": "what is this?", "images": [b64(&a)]},
                   {"role": "assistant", "content": answer},
                   {"role": "user", "content": "and the colours?"}]})
    };
    let first = s.ok("/api/chat", &turn1(&a));
    let answer = first["message"]["content"].as_str().unwrap().to_string();
    let warm = s.ok("/api/chat", &turn2(&answer));
    // Another image in the one slot: the second turn must encode `a` again.
    s.ok("/api/chat", &turn1(&b));
    let cold = s.ok("/api/chat", &turn2(&answer));
    assert_eq!(
        warm["message"], cold["message"],
        "cached and fresh answers differ"
    );
    let (w, c) = (
        warm["prompt_eval_count"].as_u64().unwrap(),
        cold["prompt_eval_count"].as_u64().unwrap(),
    );
    // The image alone is 16 positions of the test model.
    assert!(
        c >= w + 16,
        "the warm second turn evaluated {w} positions, the cold one {c}: the image was not reused"
    );
}

/// A PNG header (signature and IHDR with a correct CRC) claiming `w × h` RGB pixels.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let crc = crc32(&ihdr);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(13u32.to_be_bytes());
    out.extend(&ihdr);
    out.extend(crc.to_be_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn bad_images_get_a_400_and_leave_the_server_and_runner_alive() {
    use base64::Engine as _;
    let enc = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let _serial = serial();
    let (s, _vm) = vision_server("vision-bad", "1");
    let dir = tempfile::tempdir().unwrap();
    let good = png(dir.path(), "good.png", 32, 32, 5);
    let good_bytes = std::fs::read(&good).unwrap();
    // Load the runner first, so that each case below runs against a live one.
    let ok = json!({"model": "vis", "prompt": "hi", "images": [b64(&good)], "stream": false,
                    "options": {"num_predict": 2}});
    s.ok("/api/generate", &ok);
    let tiny = enc(&good_bytes);
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "invalid base64",
            vec!["not base64 at all!".into()],
            "base64",
        ),
        ("zero bytes", vec![String::new()], "empty"),
        (
            "not an image",
            vec![enc(b"hello, this is plain text and no image")],
            "image",
        ),
        (
            "a truncated PNG",
            vec![enc(&good_bytes[..good_bytes.len() / 2])],
            "image 1",
        ),
        (
            "a header claiming 20000x20000",
            vec![enc(&png_header(20000, 20000))],
            "pixels",
        ),
        ("500 images", vec![tiny; 500], "images"),
    ];
    for (what, images, needle) in cases {
        for path in ["/api/generate", "/api/chat"] {
            let body = if path == "/api/chat" {
                json!({"model": "vis", "stream": false,
                       "messages": [{"role": "user", "content": "hi", "images": images}]})
            } else {
                json!({"model": "vis", "prompt": "hi", "images": images, "stream": false})
            };
            let (code, v) = s.post(path, &body);
            assert_eq!(code, 400, "{what} on {path}: {v}");
            let err = v["error"].as_str().unwrap_or_default().to_lowercase();
            assert!(
                err.contains(needle),
                "{what} on {path}: error {err:?} does not mention {needle:?}"
            );
        }
    }
    // 21 MiB of base64 data: over the image limit, refused before it is decoded.
    let over = "A".repeat(28 << 20);
    let (code, v) = s.post(
        "/api/generate",
        &json!({"model": "vis", "prompt": "hi", "images": [over]}),
    );
    assert_eq!(code, 400, "21 MiB image: {v}");
    assert!(v["error"].as_str().unwrap().contains("20 MiB"), "{v}");
    // 50 MiB of data: the body itself is over the server's limit: 413 with a JSON error.
    let big = "A".repeat(50 << 20);
    let (code, v) = s.post(
        "/api/generate",
        &json!({"model": "vis", "prompt": "hi", "images": [big]}),
    );
    assert_eq!(code, 413, "50 MiB image: {v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("too large"),
        "50 MiB image: {v}"
    );
    // OpenAI: an http URL and a wrong media type.
    for (url, needle) in [
        ("https://example.invalid/cat.png", "not currently supported"),
        ("data:image/gif;base64,R0lGOD", "invalid image input"),
    ] {
        let (code, v) = s.post(
            "/v1/chat/completions",
            &json!({"model": "vis", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "hi"},
                {"type": "image_url", "image_url": {"url": url}}]}]}),
        );
        assert_eq!(code, 400, "{url}: {v}");
        let err = v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase();
        assert!(err.contains(needle), "{url}: {err:?}");
    }
    // Still serving images afterwards, on the same runner.
    let v = s.ok("/api/generate", &ok);
    assert_eq!(v["done"], true);
    let ps = s.ok_get("/api/ps");
    assert_eq!(ps["models"].as_array().unwrap().len(), 1, "{ps}");
}

#[test]
fn a_text_model_ignores_images_and_a_bad_projector_is_refused_at_create() {
    let _serial = serial();
    let s = Server::start("vision-text", &[]);
    let gguf = testkit::model_path(testkit::SMOLLM2);
    s.create("txt", &format!("FROM {}\n", gguf.display()));
    let dir = tempfile::tempdir().unwrap();
    let img = png(dir.path(), "a.png", 16, 16, 6);
    let v = s.ok(
        "/api/generate",
        &json!({"model": "txt", "prompt": "hi", "images": [b64(&img)], "stream": false,
                "options": {"num_predict": 4}}),
    );
    assert_eq!(v["done"], true, "{v}");
    let show = s.ok("/api/show", &json!({"model": "txt"}));
    assert!(
        !show["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("vision"))
    );

    // A projector whose tensors do not match its metadata: refused at create, nothing stored.
    let vm = testkit::mtmd::vision_model();
    let bad = dir.path().join("bad-mmproj.gguf");
    let mut bytes = std::fs::read(&vm.mmproj).unwrap();
    // Claim one more vision block than the file has tensors for.
    let key = b"clip.vision.block_count";
    let at = bytes
        .windows(key.len())
        .position(|w| w == key)
        .expect("block_count key");
    let value_at = at + key.len() + 4; // the u32 type tag, then the value
    let n = u32::from_le_bytes(bytes[value_at..value_at + 4].try_into().unwrap());
    bytes[value_at..value_at + 4].copy_from_slice(&(n + 1).to_le_bytes());
    std::fs::write(&bad, &bytes).unwrap();
    let file = dir.path().join("Modelfile");
    std::fs::write(
        &file,
        format!("FROM {}\nFROM {}\n", vm.model.display(), bad.display()),
    )
    .unwrap();
    let out = s
        .command(&["create", "badvis", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a mismatching projector was accepted"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("blk") || err.contains("block"), "{err}");
    let (code, _) = s.post("/api/show", &json!({"model": "badvis"}));
    assert_eq!(code, 404);
}

/// The runner processes of `s` whose load options name a projector (`with_projector`) or not.
fn runners(s: &Server, with_projector: bool) -> Vec<i32> {
    s.runners(|cmdline| cmdline.contains("\"projector\"") == with_projector)
}

#[test]
fn a_vision_runner_that_dies_fails_only_its_own_requests() {
    use std::io::{BufRead as _, BufReader};
    let _serial = serial();
    let (s, _vm) = vision_server("vision-crash", "1");
    let gguf = testkit::model_path(testkit::SMOLLM2);
    s.create("txt", &format!("FROM {}\n", gguf.display()));
    let dir = tempfile::tempdir().unwrap();
    let img = png(dir.path(), "a.png", 64, 64, 7);
    let stream = |body: Value| {
        let r = common::client()
            .post(format!("{}/api/generate", s.base()))
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        BufReader::new(r).lines()
    };
    let mut text = stream(
        json!({"model": "txt", "prompt": "Count from one to one thousand.",
                                 "options": {"temperature": 0, "num_predict": 400}}),
    );
    let mut image = stream(
        json!({"model": "vis", "prompt": "describe", "images": [b64(&img)],
                                  "options": {"temperature": 0, "num_predict": 2000}}),
    );
    for lines in [&mut text, &mut image] {
        let l: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        assert_eq!(l["done"], false, "{l}");
    }
    let vis = runners(&s, true);
    assert_eq!(vis.len(), 1, "one vision runner");
    assert_eq!(runners(&s, false).len(), 1, "one text runner");
    std::process::Command::new("kill")
        .args(["-KILL", &vis[0].to_string()])
        .status()
        .unwrap();
    let rest: Vec<Value> = image
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    let last = rest.last().unwrap();
    assert!(
        last["error"]
            .as_str()
            .unwrap_or_default()
            .contains("unexpectedly stopped"),
        "{last}"
    );
    // The text model's stream is untouched.
    let rest: Vec<Value> = text
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    assert_eq!(rest.last().unwrap()["done"], true, "{:?}", rest.last());
    // And the vision model loads again.
    let v = s.ok(
        "/api/generate",
        &json!({"model": "vis", "prompt": "describe", "images": [b64(&img)], "stream": false,
                "options": {"num_predict": 4}}),
    );
    assert_eq!(v["done"], true);
    assert_ne!(runners(&s, true), vis);
}

#[test]
fn history_fitting_counts_the_image_tokens() {
    let _serial = serial();
    let (s, _vm) = vision_server("vision-fit", "1");
    let dir = tempfile::tempdir().unwrap();
    let img = png(dir.path(), "a.png", 64, 64, 8);
    let msgs = json!([
        {"role": "user", "content": "old question", "images": [b64(&img)]},
        {"role": "assistant", "content": "old answer"},
        {"role": "user", "content": "new question"}]);
    let render = |num_ctx: u64| {
        s.ok(
            "/api/chat",
            &json!({"model": "vis", "messages": msgs, "_debug_render_only": true,
                    "options": {"num_ctx": num_ctx}}),
        )["_debug_info"]
            .clone()
    };
    let full = render(4096);
    assert_eq!(full["image_count"], 1, "{full}");
    let text = full["rendered_template"]
        .as_str()
        .unwrap()
        .replace("[img-0]", "");
    // The whole history's text tokens, without the image: a raw generate on a fresh slot
    // evaluates all of them.
    let v = s.ok(
        "/api/generate",
        &json!({"model": "vis", "prompt": text, "raw": true, "stream": false,
                "options": {"num_predict": 1}}),
    );
    let n_text = v["prompt_eval_count"].as_u64().unwrap();
    // Room for the text but not for the text plus the image's 16 positions (and its
    // delimiters): the first turn, with its image, must go.
    let fitted = render(n_text + 8);
    assert_eq!(fitted["image_count"], 0, "{fitted}");
    let t = fitted["rendered_template"].as_str().unwrap();
    assert!(
        t.contains("new question") && !t.contains("old question"),
        "{t}"
    );
}
