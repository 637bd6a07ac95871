//! Chat templates: the Jinja conformance set (../shared/conformance/jinja: expected outputs of
//! Python Jinja2 set up as Hugging Face transformers sets it up) must match byte for byte, and
//! the two real models get the right template.

mod common;

use std::path::PathBuf;

use llama::{ChatMessage, ChatRequest, ChatTemplate};
use serde_json::Value;

fn conformance_dir() -> Option<PathBuf> {
    let dir = common::workspace().join("../shared/conformance/jinja");
    dir.is_dir().then_some(dir)
}

fn request(ctx: &Value) -> ChatRequest {
    let messages = ctx["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| ChatMessage(m.as_object().unwrap().clone()))
        .collect();
    let mut extra = ctx.as_object().unwrap().clone();
    for k in [
        "messages",
        "tools",
        "add_generation_prompt",
        "bos_token",
        "eos_token",
    ] {
        extra.remove(k);
    }
    ChatRequest {
        messages,
        tools: ctx.get("tools").cloned(),
        add_generation_prompt: ctx["add_generation_prompt"].as_bool().unwrap_or(false),
        extra,
        now: Some(
            chrono::NaiveDate::from_ymd_opt(2026, 1, 2)
                .unwrap()
                .and_hms_opt(12, 0, 0)
                .unwrap(),
        ),
    }
}

#[test]
fn jinja_conformance_set_matches_byte_for_byte() {
    let Some(dir) = conformance_dir() else {
        eprintln!(
            "SKIPPED: ../shared/conformance/jinja is absent (it ships beside the repository, not in it)"
        );
        return;
    };
    let mut templates: Vec<_> = std::fs::read_dir(dir.join("templates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    templates.sort();
    let mut checked = 0;
    let mut failures = Vec::new();
    for t in &templates {
        let name = t.file_stem().unwrap().to_string_lossy().into_owned();
        let src = std::fs::read_to_string(t).unwrap();
        for ctx_name in ["chat", "nosys", "tools"] {
            let ctx: Value = serde_json::from_str(
                &std::fs::read_to_string(dir.join(format!("contexts/{ctx_name}.json"))).unwrap(),
            )
            .unwrap();
            let expected = dir.join(format!("expected/{name}.{ctx_name}.txt"));
            let raises = dir
                .join(format!("expected/{name}.{ctx_name}.err"))
                .is_file();
            let result = ChatTemplate::jinja(
                &src,
                ctx["bos_token"].as_str().unwrap_or(""),
                ctx["eos_token"].as_str().unwrap_or(""),
            )
            .and_then(|tmpl| tmpl.render(&request(&ctx)));
            checked += 1;
            match (result, raises) {
                (Err(_), true) => {}
                (Ok(out), true) => failures.push(format!(
                    "{name}.{ctx_name}: rendered {} bytes, Jinja2 raised",
                    out.len()
                )),
                (Err(e), false) => failures.push(format!("{name}.{ctx_name}: {e}")),
                (Ok(out), false) => {
                    let mut want = std::fs::read_to_string(&expected).unwrap();
                    // The reference's strftime_now stub returns "02 Jan 2026" whatever the format;
                    // ours honours the format, so a template asking for %Y-%m-%d gets that.
                    if src.contains("strftime_now('%Y-%m-%d')") {
                        want = want.replace("02 Jan 2026", "2026-01-02");
                    }
                    if out != want {
                        let at = out
                            .bytes()
                            .zip(want.bytes())
                            .position(|(a, b)| a != b)
                            .unwrap_or(out.len().min(want.len()));
                        failures.push(format!(
                            "{name}.{ctx_name}: differs at byte {at}: got {:?}, want {:?}",
                            &out[at.saturating_sub(20).min(out.len())..(at + 40).min(out.len())],
                            &want[at.saturating_sub(20).min(want.len())..(at + 40).min(want.len())]
                        ));
                    }
                }
            }
        }
    }
    eprintln!(
        "{} of {checked} template renders match Jinja2",
        checked - failures.len()
    );
    assert!(checked >= 30, "only {checked} cases found");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn smollm2_uses_its_gguf_template() {
    let _serial = common::serial();
    let model = common::smollm2();
    let t = ChatTemplate::for_model(model).unwrap();
    assert!(t.is_jinja());
    assert_eq!(t.source(), model.chat_template(None).unwrap());
    let req = ChatRequest {
        messages: vec![
            ChatMessage::new("system", "Be brief."),
            ChatMessage::new("user", "Hi!"),
        ],
        add_generation_prompt: true,
        ..ChatRequest::default()
    };
    let out = t.render(&req).unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n"
    );
    // Without a system message the template adds its own default one.
    let out = t
        .render(&ChatRequest {
            messages: vec![ChatMessage::new("user", "Hi!")],
            add_generation_prompt: true,
            ..ChatRequest::default()
        })
        .unwrap();
    assert!(
        out.starts_with("<|im_start|>system\n")
            && out.ends_with("<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n"),
        "{out:?}"
    );
    if let Some(dir) = conformance_dir() {
        let ctx: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("contexts/nosys.json")).unwrap(),
        )
        .unwrap();
        let want =
            std::fs::read_to_string(dir.join("expected/gguf-SmolLM2-135M-Instruct.nosys.txt"))
                .unwrap();
        let t = ChatTemplate::jinja(
            model.chat_template(None).unwrap(),
            ctx["bos_token"].as_str().unwrap(),
            ctx["eos_token"].as_str().unwrap(),
        )
        .unwrap();
        assert_eq!(t.render(&request(&ctx)).unwrap(), want);
    }
}

#[test]
fn gemma3_without_a_template_falls_back_to_gemma_not_chatml() {
    let _serial = common::serial();
    let model = common::gemma3();
    assert!(
        model.chat_template(None).is_none(),
        "this gemma-3 GGUF has no chat template"
    );
    let t = ChatTemplate::for_model(model).unwrap();
    assert!(!t.is_jinja());
    assert_eq!(t.source(), "gemma");
    let out = t
        .render(&ChatRequest {
            messages: vec![ChatMessage::new("user", "Hi!")],
            add_generation_prompt: true,
            ..ChatRequest::default()
        })
        .unwrap();
    assert_eq!(
        out,
        "<start_of_turn>user\nHi!<end_of_turn>\n<start_of_turn>model\n"
    );
    assert!(ChatTemplate::builtin("no-such-template").is_err());
}
