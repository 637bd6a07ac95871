//! Push and pull against a real registry (Debian's `docker-registry`, the Docker distribution
//! registry) over loopback: what is pushed comes back byte for byte, and an unknown tag gives
//! Ollama's error.

use ollamars::name::ModelName;
use ollamars::registry::{Registry, RegistryConfig, TransferOptions};
use ollamars::store::{
    CONFIG_MEDIA_TYPE, Digest, Layer, MEDIA_MODEL, MEDIA_TEMPLATE, Manifest, Store,
};
use std::time::Duration;
use testkit::registry::DockerRegistry;

mod registry_support;
use registry_support::recorder;

fn noise(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as u8
        })
        .collect()
}

fn layer(store: &Store, media_type: &str, bytes: &[u8]) -> Layer {
    let d = Digest::of(bytes).to_string();
    store.write_blob(&d, bytes).unwrap();
    Layer {
        media_type: media_type.into(),
        digest: d,
        size: bytes.len() as u64,
        from: None,
        name: None,
    }
}

fn config() -> RegistryConfig {
    RegistryConfig {
        // 1.5 MB in 256 KiB parts: several PATCHes up and several ranges down.
        min_part_size: 256 << 10,
        max_part_size: 256 << 10,
        retry_base: Duration::from_millis(20),
        ..RegistryConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_then_pull_round_trips_through_docker_registry() {
    let registry = tokio::task::spawn_blocking(DockerRegistry::start)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("models"));
    let weights = noise(1_500_000);
    let layers = vec![
        layer(&store, MEDIA_MODEL, &weights),
        layer(&store, MEDIA_TEMPLATE, b"{{ .Prompt }}"),
    ];
    let config_blob =
        br#"{"model_format":"gguf","model_family":"llama","architecture":"amd64","os":"linux"}"#;
    let cfg = layer(&store, CONFIG_MEDIA_TYPE, config_blob);
    let name = ModelName::parse(&format!("{}/library/tiny:latest", registry.host())).unwrap();
    store
        .write_manifest(&name, &Manifest::new(cfg, layers))
        .unwrap();
    let local = store.read_manifest(&name).unwrap();
    let blobs: Vec<(String, Vec<u8>)> = local
        .manifest
        .digests()
        .map(|d| (d.to_string(), store.read_blob(d).unwrap()))
        .collect();

    let reg = Registry::new(store.clone(), config()).unwrap();
    let opts = TransferOptions { insecure: true };
    let (p, lines) = recorder();
    if let Err(e) = reg.push(&name, &opts, p).await {
        panic!("push: {e}\nregistry log:\n{}", registry.log());
    }
    let statuses: Vec<String> = lines
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.status.clone())
        .collect();
    assert_eq!(statuses.first().unwrap(), "retrieving manifest");
    assert_eq!(
        &statuses[statuses.len() - 2..],
        ["pushing manifest", "success"]
    );

    // Delete it locally, blobs included, and pull it back.
    store.delete(&name, true).unwrap();
    for (d, _) in &blobs {
        assert!(!store.has_blob(d).unwrap());
    }
    let (p, lines) = recorder();
    if let Err(e) = reg.pull(&name, &opts, p).await {
        panic!("pull: {e}\nregistry log:\n{}", registry.log());
    }
    let pulled = store.read_manifest(&name).unwrap();
    assert_eq!(pulled.raw, local.raw, "manifest bytes");
    assert_eq!(pulled.digest, local.digest);
    for (d, bytes) in &blobs {
        assert_eq!(&store.read_blob(d).unwrap(), bytes, "blob {d}");
    }
    let last = lines.lock().unwrap().last().unwrap().status.clone();
    assert_eq!(last, "success");

    // A tag the registry does not have.
    let missing = ModelName::parse(&format!("{}/library/tiny:nope", registry.host())).unwrap();
    let (p, _) = recorder();
    let e = reg.pull(&missing, &opts, p).await.unwrap_err();
    assert_eq!(e.to_string(), "pull model manifest: file does not exist");
}
