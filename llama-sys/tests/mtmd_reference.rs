//! The multimodal reference itself, before anything of ours is compared with it: the generated
//! vision model is byte-deterministic, upstream's `llama-mtmd-cli` (built with the options of
//! this very llama-sys build, `testkit::mtmd`) runs on it, gives the same ids for the same image
//! every time and different ids for different images. A reference that could not tell two
//! images apart would prove nothing about an image path.

use std::path::Path;

use testkit::mtmd::{self, Chunk, MtmdGreedy, MtmdRun};
use testkit::upstream::LlamaBuild;

fn build() -> LlamaBuild {
    testkit::llama_build!()
}

fn run_on(model: &mtmd::VisionModel, image: &Path) -> MtmdGreedy {
    mtmd::mtmd_greedy(
        &build(),
        &MtmdRun {
            model: &model.model,
            mmproj: &model.mmproj,
            images: &[image],
            prompt: "describe",
            n_predict: 24,
            n_ctx: 512,
            n_batch: 512,
            n_ubatch: 512,
            flash_attn: false,
            threads: testkit::upstream::threads(),
            jinja: false,
        },
    )
}

#[test]
fn the_vision_model_generator_is_byte_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let a = mtmd::generate_vision_model(&dir.path().join("a"), 7);
    let b = mtmd::generate_vision_model(&dir.path().join("b"), 7);
    let c = mtmd::generate_vision_model(&dir.path().join("c"), 8);
    for k in ["model_sha256", "mmproj_sha256"] {
        assert!(a[k].as_str().is_some_and(|s| s.len() == 64), "{k}: {a}");
        assert_eq!(a[k], b[k], "same seed, different {k}");
        assert_ne!(a[k], c[k], "another seed, same {k}");
    }
    let bytes = |v: &serde_json::Value, k: &str| std::fs::read(v[k].as_str().unwrap()).unwrap();
    for k in ["model", "mmproj"] {
        assert!(
            bytes(&a, k) == bytes(&b, k),
            "same seed, different {k} bytes"
        );
    }
    let cached = mtmd::vision_model();
    assert!(cached.model.is_file() && cached.mmproj.is_file());
    assert_eq!(
        mtmd::vision_model(),
        cached,
        "the cached model is found again"
    );
}

#[test]
fn upstream_mtmd_cli_is_deterministic_and_sees_the_image() {
    let model = mtmd::vision_model();
    let dir = tempfile::tempdir().unwrap();
    let (img1, img2) = (dir.path().join("one.png"), dir.path().join("two.png"));
    mtmd::write_test_png(&img1, 64, 48, 1);
    mtmd::write_test_png(&img2, 64, 48, 2);

    let first = run_on(&model, &img1);
    let again = run_on(&model, &img1);
    let other = run_on(&model, &img2);
    eprintln!(
        "on {}:\n  prompt {:?}\n  chunks {:?}\n  image 1 {:?} {:?}\n  image 2 {:?} {:?}",
        testkit::upstream::cpu_summary(),
        first.prompt,
        first.prompt_chunks,
        first.tokens,
        first.text,
        other.tokens,
        other.text
    );

    assert_eq!(first, again, "the same image twice gave different runs");
    assert_ne!(
        first.tokens, other.tokens,
        "two different images gave the same greedy ids: the model does not see the image"
    );
    assert!(
        !first.tokens.is_empty() && first.tokens.len() <= 24,
        "{first:?}"
    );

    // The prompt: gemma turns around the media marker, one image chunk of the documented size
    // between text chunks.
    assert_eq!(
        first.prompt,
        "<start_of_turn>user\n<__media__>describe<end_of_turn>\n<start_of_turn>model\n"
    );
    assert!(first.add_special, "the first message adds BOS");
    assert_eq!(first.media_tokens(), vec![mtmd::TOKENS_PER_IMAGE]);
    assert!(
        matches!(&first.prompt_chunks[..], [Chunk::Text(a), Chunk::Media { .. }, Chunk::Text(b)] if !a.is_empty() && !b.is_empty()),
        "{:?}",
        first.prompt_chunks
    );
    assert_eq!(
        first.prompt_chunks, other.prompt_chunks,
        "the same prompt around both images"
    );

    // The Jinja engine renders the model's template to the same text.
    let jinja = mtmd::mtmd_greedy(
        &build(),
        &MtmdRun {
            model: &model.model,
            mmproj: &model.mmproj,
            images: &[&img1],
            prompt: "describe",
            n_predict: 4,
            n_ctx: 512,
            n_batch: 512,
            n_ubatch: 512,
            flash_attn: true,
            threads: testkit::upstream::threads(),
            jinja: true,
        },
    );
    assert_eq!(
        jinja.prompt, first.prompt,
        "jinja and built-in template differ"
    );
    assert_eq!(jinja.prompt_chunks, first.prompt_chunks);
}
