//! SIGKILL during create: a child process (this test binary, running the ignored helper test)
//! creates models in a loop and is killed at random points, many times over one store. After
//! every kill each manifest must parse, every blob it names must exist with the right hash, and
//! no half-written model may be listed.

mod common;

use ollamars::create::{CreateRequest, create};
use ollamars::gguf::{GgmlType, GgufWriter, Value};
use ollamars::store::{Digest, Store};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

const STORE_ENV: &str = "OLLAMARS_SIGKILL_STORE";

/// A GGUF of about 1 MiB whose content depends on `seed`, so each one is a new blob.
fn gguf(seed: u64) -> Vec<u8> {
    GgufWriter::new()
        .kv("general.architecture", Value::String("llama".into()))
        .kv("general.file_type", Value::U32(0))
        .kv("llama.context_length", Value::U32(64))
        .kv("seed", Value::U64(seed))
        .tensor_filled("token_embd.weight", &[256, 1024], GgmlType::F32)
        .to_bytes()
}

/// The child: creates models forever (until killed).
#[test]
#[ignore = "helper: run as a child process by sigkill_during_create_leaves_a_consistent_store"]
fn create_loop_child() {
    let root = std::env::var(STORE_ENV).expect("run by sigkill_during_create only");
    let store = Store::new(root);
    let pid = u64::from(std::process::id());
    for i in 0u64.. {
        let (d, _) = store.import_blob(&gguf(pid * 1000 + i)[..]).unwrap();
        let req = CreateRequest {
            model: Some(format!("m{}", i % 4)),
            files: Some(BTreeMap::from([("m.gguf".into(), d.to_string())])),
            system: Some(format!("system {pid} {i}")),
            parameters: Some(
                serde_json::json!({"seed": i, "stop": [format!("s{i}")]})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            ..CreateRequest::default()
        };
        create(&store, &req, &mut |_| {}).unwrap();
        if i % 3 == 2 {
            let n = ollamars::name::ModelName::parse(&format!("m{}", i % 4)).unwrap();
            let _ = store.delete(&n, true);
        }
    }
}

fn pseudo_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Every manifest file parses and all its blobs exist and hash right; returns how many.
fn check_store(root: &Path) -> usize {
    let store = Store::new(root);
    let mut n = 0;
    for p in common::files_under(&root.join("manifests")) {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with(".tmp-") {
            continue;
        }
        let raw = std::fs::read(root.join("manifests").join(&p)).unwrap();
        let m = Store::parse_manifest(&raw)
            .unwrap_or_else(|e| panic!("manifest {} does not parse: {e}", p.display()));
        for d in m.digests() {
            let bytes = store
                .read_blob(d)
                .unwrap_or_else(|e| panic!("{} names missing blob {d}: {e}", p.display()));
            assert_eq!(Digest::of(&bytes).to_string(), d, "blob {d} corrupt");
        }
        n += 1;
    }
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), n, "listed models differ from manifest files");
    for sm in listed {
        assert!(
            ollamars::models::show(&store, &sm.name, false, true).is_ok(),
            "{}",
            sm.name
        );
    }
    n
}

#[test]
fn sigkill_during_create_leaves_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("models");
    let exe = std::env::current_exe().unwrap();
    let mut rng = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let iterations = 40;
    let mut seen_models = 0;
    for it in 0..iterations {
        let mut child = Command::new(&exe)
            .args(["--exact", "create_loop_child", "--ignored", "--nocapture"])
            .env(STORE_ENV, &root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let wait = Duration::from_millis(20 + pseudo_random(&mut rng) % 400);
        let start = Instant::now();
        while start.elapsed() < wait {
            if let Some(st) = child.try_wait().unwrap() {
                panic!("iteration {it}: the child exited by itself: {st}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        seen_models = seen_models.max(check_store(&root));
    }
    assert!(
        seen_models > 0,
        "the child never finished a model; the test proved nothing"
    );
    // Startup pruning removes what the kills left behind and keeps every model intact.
    let store = Store::new(&root);
    store.prune(Duration::ZERO).unwrap();
    let after = check_store(&root);
    for p in common::files_under(&root) {
        assert!(
            !p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".tmp-"),
            "temp file left after prune: {}",
            p.display()
        );
    }
    assert!(after > 0);
}
