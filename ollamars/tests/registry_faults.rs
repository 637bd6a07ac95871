//! The registry client against a fault-injecting registry on loopback: correct pulls (direct and
//! redirected blobs), recovery from dropped and stalled connections, clear errors for every kind
//! of bad answer with nothing unverified published, bounded bodies, the credential host rule,
//! resumed and shared downloads, and push.

mod registry_support;

use ollamars::progress::Progress;
use ollamars::registry::{
    Credentials, Registry, RegistryConfig, RegistryError, TransferOptions, ensure_key,
};
use ollamars::store::{Digest, Store, StoreError};
use registry_support::{
    Auth, Faults, Listener, ManifestFault, TokenReply, model, recorder, test_config,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

const REPO: &str = "library/tiny:latest";

/// A fresh store and client.
struct Env {
    dir: tempfile::TempDir,
    reg: Registry,
}

impl Env {
    fn new(config: RegistryConfig) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::new(Store::new(dir.path().join("models")), config).unwrap();
        Env { dir, reg }
    }

    fn store(&self) -> Store {
        Store::new(self.dir.path().join("models"))
    }

    fn blobs_dir(&self) -> PathBuf {
        self.dir.path().join("models/blobs")
    }

    /// File names in `blobs/`.
    fn blob_files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.blobs_dir())
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Every file under the temporary directory (to prove nothing escaped the store).
    fn all_files(&self) -> Vec<PathBuf> {
        fn walk(p: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                let path = e.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(self.dir.path(), &mut out);
        out
    }

    async fn pull(&self, l: &Listener) -> (Result<(), RegistryError>, Vec<Progress>) {
        let (p, lines) = recorder();
        let r = self
            .reg
            .pull(&l.name(REPO), &TransferOptions { insecure: true }, p)
            .await;
        let lines = lines.lock().unwrap().clone();
        (r, lines)
    }

    /// Asserts the pull failed and left no blob and no manifest.
    fn assert_nothing_published(&self, l: &Listener) {
        let published: Vec<String> = self
            .blob_files()
            .into_iter()
            .filter(|f| Digest::parse(f).is_ok())
            .collect();
        assert!(published.is_empty(), "published: {published:?}");
        assert!(self.store().read_manifest(&l.name(REPO)).is_err());
    }
}

fn err_text(r: Result<(), RegistryError>) -> String {
    r.expect_err("the pull should fail").to_string()
}

/// Serves the standard test model: a 2 MiB (8 parts) layer, a 700 KiB layer and a config.
async fn serving(f: Faults) -> (Listener, registry_support::Model) {
    let l = Listener::start().await;
    let m = model(&[(2 << 20) + 123, 700 << 10], 1);
    l.serve(REPO, &m);
    l.faults(f);
    (l, m)
}

fn assert_pulled(env: &Env, l: &Listener, m: &registry_support::Model) {
    let s = env.store();
    for (d, bytes) in &m.blobs {
        assert_eq!(&s.read_blob(d).unwrap(), bytes, "blob {d}");
    }
    assert_eq!(s.read_manifest(&l.name(REPO)).unwrap().raw, m.manifest);
    let leftovers: Vec<String> = env
        .blob_files()
        .into_iter()
        .filter(|f| Digest::parse(f).is_err())
        .collect();
    assert!(leftovers.is_empty(), "leftovers: {leftovers:?}");
}

#[tokio::test]
async fn pull_from_a_registry_that_serves_blobs_directly() {
    let (l, mut m) = serving(Faults::default()).await;
    // Add an empty layer: it needs no request at all.
    m.blobs.push((Digest::of(b"").to_string(), Vec::new()));
    m.manifest = registry_support::manifest_json(&m.blobs);
    l.serve(REPO, &m);
    let env = Env::new(test_config());
    let (r, lines) = env.pull(&l).await;
    r.unwrap();
    assert_pulled(&env, &l, &m);

    let statuses: Vec<&str> = lines.iter().map(|p| p.status.as_str()).collect();
    assert_eq!(statuses.first(), Some(&"pulling manifest"));
    assert_eq!(
        &statuses[statuses.len() - 3..],
        ["verifying sha256 digest", "writing manifest", "success"]
    );
    for (d, b) in &m.blobs {
        let hex12 = &d[7..19];
        let mine: Vec<&Progress> = lines
            .iter()
            .filter(|p| p.digest.as_deref() == Some(d))
            .collect();
        assert!(!mine.is_empty(), "no progress for {d}");
        assert!(
            mine.iter()
                .all(|p| p.status == format!("pulling {hex12}") && p.total == Some(b.len() as u64))
        );
        assert_eq!(mine.last().unwrap().completed, Some(b.len() as u64));
    }
    // size/16 is under the 256 KiB minimum: 2 MiB + 123 bytes is 9 parts, 700 KiB is 3.
    assert_eq!(l.blob_gets(m.digest(1)).len(), 9);
    assert_eq!(l.blob_gets(m.digest(2)).len(), 3);

    // Pulling again: every blob is reported complete once, none is fetched.
    let before = l.log().len();
    let (r, lines) = env.pull(&l).await;
    r.unwrap();
    let blob_requests = l.log()[before..]
        .iter()
        .filter(|s| s.uri.contains("/blobs/"))
        .count();
    assert_eq!(blob_requests, 0);
    for (d, b) in &m.blobs {
        let mine: Vec<&Progress> = lines
            .iter()
            .filter(|p| p.digest.as_deref() == Some(d))
            .collect();
        assert_eq!(mine.len(), 1, "{d}");
        assert_eq!(mine[0].completed, Some(b.len() as u64));
    }
    assert!(!lines.iter().any(|p| p.status == "removing unused layers"));
}

#[tokio::test]
async fn blob_redirect_to_another_host_gets_no_credentials() {
    let cdn = Listener::start().await;
    let (l, m) = serving(Faults {
        redirect_blobs_to: Some(cdn.base()),
        ..Faults::default()
    })
    .await;
    // The CDN holds the bytes; the registry requires a token.
    cdn.serve(REPO, &m);
    l.auth(Auth::Bearer {
        realm: format!("{}/token", l.base()),
        token: "tok-123".into(),
    });
    let env = Env::new(test_config());
    let (r, _) = env.pull(&l).await;
    r.unwrap();
    assert_pulled(&env, &l, &m);
    assert!(l.auths().contains(&"Bearer tok-123".to_string()));
    assert!(
        cdn.auths().is_empty(),
        "the CDN saw credentials: {:?}",
        cdn.auths()
    );
    assert!(!cdn.blob_gets(m.digest(1)).is_empty());
    assert!(l.blob_gets(m.digest(1)).is_empty());
}

#[tokio::test]
async fn blob_redirect_on_the_same_host_is_followed() {
    let (l, m) = serving(Faults {
        redirect_blobs_to: Some(String::new()),
        ..Faults::default()
    })
    .await;
    let env = Env::new(test_config());
    let (r, _) = env.pull(&l).await;
    r.unwrap();
    assert_pulled(&env, &l, &m);
    assert!(
        l.log()
            .iter()
            .any(|s| s.uri.starts_with("/cdn/") && s.range.as_deref() != Some("bytes=0-0"))
    );
}

#[tokio::test]
async fn ollama_signed_token_flow_on_the_registry_host() {
    let (l, m) = serving(Faults::default()).await;
    l.auth(Auth::Bearer {
        realm: format!("{}/token", l.base()),
        token: "tok-123".into(),
    });
    let keys = tempfile::tempdir().unwrap();
    let public = ensure_key(keys.path()).unwrap();
    let env = Env::new(RegistryConfig {
        key_path: Some(keys.path().join("id_ed25519")),
        ..test_config()
    });
    let (r, _) = env.pull(&l).await;
    r.unwrap();
    assert_pulled(&env, &l, &m);

    // The token request is signed: "<pubkey blob>:<sig>" over GET,<full url>,<b64(hex(sha256("")))>.
    let tok = l
        .log()
        .into_iter()
        .find(|s| s.uri.starts_with("/token"))
        .unwrap();
    assert!(
        tok.uri
            .contains("scope=repository%3Alibrary%2Ftiny%3Apull%2Cpush")
    );
    assert!(tok.uri.contains("&ts=") && tok.uri.contains("nonce="));
    let header = tok.auth.unwrap();
    let (blob, sig) = header.split_once(':').unwrap();
    assert_eq!(blob, public.split(' ').nth(1).unwrap());
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let blob = b64.decode(blob).unwrap();
    let pk: [u8; 32] = blob[blob.len() - 32..].try_into().unwrap();
    let sig: [u8; 64] = b64.decode(sig).unwrap().try_into().unwrap();
    let empty = Digest::of(b"").hex().to_string();
    let data = format!("GET,{}{},{}", l.base(), tok.uri, b64.encode(empty));
    ed25519_dalek::VerifyingKey::from_bytes(&pk)
        .unwrap()
        .verify_strict(data.as_bytes(), &ed25519_dalek::Signature::from_bytes(&sig))
        .expect("the signature verifies");
}

#[tokio::test]
async fn foreign_realm_docker_token_flow_keeps_credentials_apart() {
    let realm = Listener::start().await;
    *realm.inner.token.lock().unwrap() = TokenReply::AccessToken("tok-123".into());
    let (l, m) = serving(Faults::default()).await;
    l.auth(Auth::Bearer {
        realm: format!("{}/token", realm.base()),
        token: "tok-123".into(),
    });
    let keys = tempfile::tempdir().unwrap();
    ensure_key(keys.path()).unwrap();
    let mut creds = Credentials::new();
    creds.insert(&l.host(), "alice", "s3cret");
    let basic = creds.get(&l.host()).unwrap().header_value();
    let env = Env::new(RegistryConfig {
        key_path: Some(keys.path().join("id_ed25519")),
        credentials: creds,
        ..test_config()
    });
    let (r, _) = env.pull(&l).await;
    r.unwrap();
    assert_pulled(&env, &l, &m);
    // The realm got exactly the registry's Basic credentials, never a token or a signature.
    let realm_auths = realm.auths();
    assert!(!realm_auths.is_empty());
    assert!(realm_auths.iter().all(|a| *a == basic), "{realm_auths:?}");
    assert!(realm.log().iter().all(|s| s.uri.starts_with("/token?")));
    // The registry got the token only.
    assert!(
        l.auths().iter().all(|a| a == "Bearer tok-123"),
        "{:?}",
        l.auths()
    );
}

#[tokio::test]
async fn basic_auth_from_the_credentials_setting() {
    let (l, m) = serving(Faults::default()).await;
    let creds = Credentials::from_env_value(&format!("{}=bob:pw:with:colons", l.host()));
    let want = creds.get(&l.host()).unwrap().header_value();
    l.auth(Auth::Basic(want.clone()));
    let env = Env::new(RegistryConfig {
        credentials: creds,
        ..test_config()
    });
    let (r, _) = env.pull(&l).await;
    r.unwrap();
    assert_pulled(&env, &l, &m);
    assert!(l.auths().iter().all(|a| *a == want));

    // Wrong credentials: the second 401 is Ollama's error; no credentials at all: the same.
    for creds in [
        Credentials::from_env_value(&format!("{}=bob:nope", l.host())),
        Credentials::new(),
    ] {
        let env = Env::new(RegistryConfig {
            credentials: creds,
            ..test_config()
        });
        let (r, _) = env.pull(&l).await;
        assert_eq!(
            err_text(r),
            "pull model manifest: unauthorized: access denied"
        );
    }
}

#[tokio::test]
async fn a_token_the_registry_refuses_is_unauthorized() {
    let (l, _m) = serving(Faults::default()).await;
    *l.inner.token.lock().unwrap() = TokenReply::Token("wrong".into());
    l.auth(Auth::Bearer {
        realm: format!("{}/token", l.base()),
        token: "tok-123".into(),
    });
    let env = Env::new(test_config());
    let (r, _) = env.pull(&l).await;
    assert_eq!(
        err_text(r),
        "pull model manifest: unauthorized: access denied"
    );
    env.assert_nothing_published(&l);
}

#[tokio::test]
async fn dropped_connection_mid_body_recovers() {
    let (l, m) = serving(Faults {
        drop_after: Some(100 << 10),
        drop_times: 3,
        ..Faults::default()
    })
    .await;
    let env = Env::new(test_config());
    let (r, _) = env.pull(&l).await;
    r.unwrap();
    assert_pulled(&env, &l, &m);
    // Three tries were cut and tried again.
    let gets = l.blob_gets(m.digest(1)).len() + l.blob_gets(m.digest(2)).len();
    assert!(gets >= 9 + 3 + 3, "{gets}");
}

#[tokio::test]
async fn stall_restarts_the_part_after_the_stall_timeout() {
    let (l, m) = serving(Faults {
        stall_after: Some(64 << 10),
        stall_times: 2,
        ..Faults::default()
    })
    .await;
    let env = Env::new(RegistryConfig {
        stall_timeout: Duration::from_millis(300),
        ..test_config()
    });
    let (r, _) = env.pull(&l).await;
    r.unwrap();
    assert_pulled(&env, &l, &m);
    let gets = l.blob_gets(m.digest(1)).len() + l.blob_gets(m.digest(2)).len();
    assert!(gets >= 9 + 3 + 2, "{gets}");
}

#[tokio::test]
async fn wrong_bytes_fail_the_digest_check_and_publish_nothing() {
    let (l, m) = serving(Faults {
        corrupt: true,
        ..Faults::default()
    })
    .await;
    let env = Env::new(test_config());
    let (r, _) = env.pull(&l).await;
    let e = err_text(r);
    // The first blob fetched is the big layer.
    let want = format!(
        "digest mismatch, file must be downloaded again: want {}, got sha256:",
        m.digest(1)
    );
    assert!(e.starts_with(&want), "{e}");
    env.assert_nothing_published(&l);
    assert!(env.blob_files().is_empty(), "{:?}", env.blob_files());
}

/// Pulls with `faults` and expects an error containing `needle`, with nothing published.
async fn expect_failure(faults: Faults, needle: &str) {
    let (l, _m) = serving(faults).await;
    let env = Env::new(test_config());
    let (r, _) = env.pull(&l).await;
    let e = err_text(r);
    assert!(e.contains(needle), "{e}");
    env.assert_nothing_published(&l);
}

#[tokio::test]
async fn empty_blob_bodies_are_errors() {
    expect_failure(
        Faults {
            empty_body: true,
            ..Faults::default()
        },
        "registry protocol error",
    )
    .await;
}

#[tokio::test]
async fn range_ignored_is_an_error_for_parts() {
    expect_failure(
        Faults {
            ignore_range: true,
            ..Faults::default()
        },
        "ignored the Range header",
    )
    .await;
}

#[tokio::test]
async fn range_ignored_on_a_one_part_blob_is_the_whole_body() {
    let l = Listener::start().await;
    let m = model(&[100 << 10], 2);
    l.serve(REPO, &m);
    l.faults(Faults {
        ignore_range: true,
        ..Faults::default()
    });
    let env = Env::new(test_config());
    let (r, _) = env.pull(&l).await;
    r.unwrap();
    assert_pulled(&env, &l, &m);
}

#[tokio::test]
async fn mismatched_content_range_is_an_error() {
    expect_failure(
        Faults {
            wrong_content_range: true,
            ..Faults::default()
        },
        "Content-Range",
    )
    .await;
}

#[tokio::test]
async fn wrong_content_length_is_an_error() {
    expect_failure(
        Faults {
            wrong_content_length: true,
            ..Faults::default()
        },
        "Content-Length",
    )
    .await;
}

#[tokio::test]
async fn more_bytes_than_requested_is_an_error() {
    expect_failure(
        Faults {
            extra_bytes: true,
            ..Faults::default()
        },
        "more bytes than requested",
    )
    .await;
}

#[tokio::test]
async fn missing_content_length_is_fine_when_the_bytes_are_exact() {
    let (l, m) = serving(Faults {
        no_content_length: true,
        ..Faults::default()
    })
    .await;
    let env = Env::new(test_config());
    let (r, _) = env.pull(&l).await;
    r.unwrap();
    assert_pulled(&env, &l, &m);
}

#[tokio::test]
async fn traversal_digests_in_a_manifest_are_rejected() {
    let good = Digest::of(b"x").to_string();
    for bad in [
        "sha256:../../x".to_string(),
        "sha256-../../../tmp/pwn".to_string(),
        good.to_uppercase().replace("SHA256", "sha256"),
        good[..good.len() - 1].to_string(),
        format!("{good}0"),
        good.replace("sha256:", "sha256-"),
        "sha512:00".to_string(),
    ] {
        let l = Listener::start().await;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": good, "size": 1},
            "layers": [{"mediaType": "application/vnd.ollama.image.model", "digest": bad, "size": 1}],
        });
        l.faults(Faults {
            manifest: Some(ManifestFault::Raw(serde_json::to_vec(&manifest).unwrap())),
            ..Faults::default()
        });
        let env = Env::new(test_config());
        let (r, _) = env.pull(&l).await;
        let e = err_text(r);
        assert!(e.starts_with("invalid manifest"), "{bad}: {e}");
        assert!(env.all_files().is_empty(), "{bad}: {:?}", env.all_files());
        assert!(l.log().iter().all(|s| !s.uri.contains("/blobs/")));
    }
}

#[tokio::test]
async fn an_endless_manifest_fails_fast_within_the_cap() {
    let (l, _m) = serving(Faults {
        manifest: Some(ManifestFault::Endless),
        ..Faults::default()
    })
    .await;
    let env = Env::new(test_config());
    let (r, _) = env.pull(&l).await;
    assert_eq!(
        err_text(r),
        "pull model manifest: manifest is larger than 4194304 bytes"
    );
    // The server produced a small part of its 2 GiB before the client hung up.
    let produced = l
        .inner
        .manifest_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(produced < 64 << 20, "{produced}");
    env.assert_nothing_published(&l);
}

#[tokio::test]
async fn a_gzip_bomb_is_never_inflated() {
    let (l, _m) = serving(Faults {
        manifest: Some(ManifestFault::GzipBomb),
        ..Faults::default()
    })
    .await;
    let env = Env::new(test_config());
    let (r, _) = env.pull(&l).await;
    let e = err_text(r);
    assert!(e.contains("unsupported content encoding \"gzip\""), "{e}");
    env.assert_nothing_published(&l);
}

#[tokio::test]
async fn an_endless_token_body_is_cut_at_the_cap() {
    let (l, _m) = serving(Faults::default()).await;
    *l.inner.token.lock().unwrap() = TokenReply::Endless;
    l.auth(Auth::Bearer {
        realm: format!("{}/token", l.base()),
        token: "tok-123".into(),
    });
    let env = Env::new(test_config());
    let (r, _) = env.pull(&l).await;
    assert_eq!(
        err_text(r),
        "pull model manifest: token response is larger than 65536 bytes"
    );
}

#[tokio::test]
async fn ten_thousand_layers_are_refused() {
    let l = Listener::start().await;
    let d = Digest::of(b"x").to_string();
    let layers: Vec<_> = (0..10_000)
        .map(|_| serde_json::json!({"mediaType": "application/vnd.ollama.image.model", "digest": d, "size": 1}))
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": d, "size": 1},
        "layers": layers,
    });
    l.faults(Faults {
        manifest: Some(ManifestFault::Raw(serde_json::to_vec(&manifest).unwrap())),
        ..Faults::default()
    });
    let env = Env::new(test_config());
    let (r, _) = env.pull(&l).await;
    assert_eq!(
        err_text(r),
        "manifest has 10000 layers, more than the limit of 1000"
    );
    assert!(l.log().iter().all(|s| !s.uri.contains("/blobs/")));
}

#[tokio::test]
async fn manifest_errors_have_ollamas_texts() {
    let l = Listener::start().await;
    let env = Env::new(test_config());
    let (r, _) = env.pull(&l).await;
    assert_eq!(err_text(r), "pull model manifest: file does not exist");

    l.faults(Faults {
        manifest: Some(ManifestFault::Status(403, "denied".into())),
        ..Faults::default()
    });
    let (r, _) = env.pull(&l).await;
    assert_eq!(err_text(r), "pull model manifest: 403: denied");

    // Error bodies are cut at 4 KiB.
    l.faults(Faults {
        manifest: Some(ManifestFault::Status(400, "e".repeat(100_000))),
        ..Faults::default()
    });
    let (r, _) = env.pull(&l).await;
    assert_eq!(err_text(r).len(), "pull model manifest: 400: ".len() + 4096);

    let name =
        ollamars::name::ModelName::parse(&format!("http://{}/library/tiny", l.host())).unwrap();
    let (p, _) = recorder();
    let e = env
        .reg
        .pull(&name, &TransferOptions::default(), p)
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "insecure protocol http");
    assert!(
        matches!(cause(&e), RegistryError::InsecureProtocol),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_cancelled_pull_resumes_from_its_part_files() {
    let l = Listener::start().await;
    let m = model(&[2 << 20], 3);
    l.serve(REPO, &m);
    // Every part sends half of its bytes, then nothing.
    l.faults(Faults {
        stall_after: Some(128 << 10),
        stall_times: usize::MAX,
        ..Faults::default()
    });
    let env = Env::new(RegistryConfig {
        stall_timeout: Duration::from_secs(60),
        ..test_config()
    });
    let big = m.digest(1).to_string();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let watched = big.clone();
    let progress: ollamars::registry::ProgressFn = std::sync::Arc::new(move |p: Progress| {
        if p.digest.as_deref() == Some(&watched) {
            let _ = tx.send(p.completed.unwrap_or(0));
        }
    });
    let reg = env.reg.clone();
    let name = l.name(REPO);
    let task = tokio::spawn(async move {
        reg.pull(&name, &TransferOptions { insecure: true }, progress)
            .await
    });
    // Wait until every part has its first half.
    let want = 8 * (128 << 10);
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(done) = rx.recv().await {
            if done >= want {
                break;
            }
        }
    })
    .await
    .expect("the download made progress");
    task.abort();
    let _ = task.await;

    let hex = &big[7..];
    let files = env.blob_files();
    assert!(
        files.contains(&format!("sha256-{hex}-partial")),
        "{files:?}"
    );
    assert!(
        files.contains(&format!("sha256-{hex}-partial-0")),
        "{files:?}"
    );
    assert!(!files.contains(&format!("sha256-{hex}")));

    // The second pull waits for the cancelled download to save its state, then resumes.
    l.faults(Faults::default());
    let served_before = l
        .inner
        .blob_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    let (r, _) = env.pull(&l).await;
    r.unwrap();
    assert_pulled(&env, &l, &m);
    let served = l
        .inner
        .blob_bytes
        .load(std::sync::atomic::Ordering::Relaxed)
        - served_before;
    // Half of the big blob came from the partial file (the config is tiny).
    assert!(served < (1 << 20) + 4096, "re-served {served} bytes");
}

#[tokio::test]
async fn concurrent_pulls_of_one_digest_share_one_download() {
    let l = Listener::start().await;
    let m = model(&[2 << 20], 4);
    l.serve(REPO, &m);
    let big = m.digest(1).to_string();
    let (open, gate) = tokio::sync::watch::channel(false);
    l.faults(Faults {
        gate: Some((big.clone(), gate)),
        ..Faults::default()
    });
    let env = Env::new(test_config());
    // Two pulls through two clones of one client (and two stores would not share, so one).
    let mut tasks = Vec::new();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    for i in 0..2 {
        let reg = env.reg.clone();
        let name = l.name(REPO);
        let tx = seen_tx.clone();
        let watched = big.clone();
        let progress: ollamars::registry::ProgressFn = std::sync::Arc::new(move |p: Progress| {
            if p.digest.as_deref() == Some(&watched) {
                let _ = tx.send(i);
            }
        });
        tasks.push(tokio::spawn(async move {
            reg.pull(&name, &TransferOptions { insecure: true }, progress)
                .await
        }));
    }
    // Both pulls wait on the big blob before any of its bytes flow.
    let mut waiting = [false; 2];
    tokio::time::timeout(Duration::from_secs(20), async {
        while waiting != [true, true] {
            waiting[seen_rx.recv().await.unwrap()] = true;
        }
    })
    .await
    .expect("both pulls reach the blob");
    open.send(true).unwrap();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_pulled(&env, &l, &m);
    assert_eq!(l.blob_gets(&big).len(), 8, "one download of 8 parts");
}

#[tokio::test]
async fn pull_removes_layers_the_new_manifest_dropped() {
    let l = Listener::start().await;
    let v1 = model(&[10 << 10, 20 << 10], 5);
    l.serve(REPO, &v1);
    let env = Env::new(test_config());
    env.pull(&l).await.0.unwrap();
    // v2 keeps v1's second layer and drops its first.
    let mut blobs = model(&[30 << 10], 6).blobs;
    blobs.push(v1.blobs[2].clone());
    let v2 = registry_support::Model {
        manifest: registry_support::manifest_json(&blobs),
        blobs,
    };
    l.serve(REPO, &v2);
    let (r, lines) = env.pull(&l).await;
    r.unwrap();
    assert!(lines.iter().any(|p| p.status == "removing unused layers"));
    let s = env.store();
    assert!(!s.has_blob(v1.digest(1)).unwrap());
    assert!(!s.has_blob(v1.digest(0)).unwrap());
    assert!(s.has_blob(v1.digest(2)).unwrap());
    assert_pulled(&env, &l, &v2);

    // With pruning off the old layers stay.
    let env = Env::new(RegistryConfig {
        prune: false,
        ..test_config()
    });
    l.serve(REPO, &v1);
    env.pull(&l).await.0.unwrap();
    l.serve(REPO, &v2);
    let (r, lines) = env.pull(&l).await;
    r.unwrap();
    assert!(!lines.iter().any(|p| p.status == "removing unused layers"));
    assert!(env.store().has_blob(v1.digest(1)).unwrap());
}

#[tokio::test]
async fn push_uploads_in_parts_mounts_and_sends_the_manifest_last() {
    let l = Listener::start().await;
    let m = model(&[(1 << 20) + 7, 3000], 7);
    // The registry already has the second layer in another repository: it is mounted.
    let mounted = m.blobs[2].clone();
    l.inner
        .other_repo
        .lock()
        .unwrap()
        .insert(mounted.0.clone(), mounted.1.clone());

    let env = Env::new(test_config());
    let store = env.store();
    for (d, b) in &m.blobs {
        store.write_blob(d, &b[..]).unwrap();
    }
    let mut manifest = Store::parse_manifest(&m.manifest).unwrap();
    manifest.layers[1].from = Some("library/base:latest".into());
    let name = l.name(REPO);
    store.write_manifest(&name, &manifest).unwrap();
    let raw = store.read_manifest(&name).unwrap().raw;

    let (p, lines) = recorder();
    env.reg
        .push(&name, &TransferOptions { insecure: true }, p)
        .await
        .unwrap();
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
    assert!(statuses.contains(&format!("pushing {}", &m.digest(1)[7..19])));

    let log = l.log();
    let seq: Vec<String> = log
        .iter()
        .map(|s| format!("{} {}", s.method, s.uri))
        .collect();
    // The big layer: HEAD 404, POST, 4 PATCHes of 256 KiB + 1 of 7 bytes, PUT ?digest.
    let big = m.digest(1);
    let head = seq
        .iter()
        .position(|s| *s == format!("HEAD /v2/library/tiny/blobs/{big}"))
        .unwrap();
    assert_eq!(seq[head + 1], "POST /v2/library/tiny/blobs/uploads/");
    let patches: Vec<&registry_support::Seen> =
        log.iter().filter(|s| s.method == "PATCH").collect();
    let ranges: Vec<&str> = patches
        .iter()
        .filter_map(|s| s.content_range.as_deref())
        .collect();
    let first = &ranges[..5];
    assert_eq!(
        first,
        [
            "0-262143",
            "262144-524287",
            "524288-786431",
            "786432-1048575",
            "1048576-1048582"
        ]
    );
    assert!(
        patches
            .iter()
            .all(|s| s.content_type.as_deref() == Some("application/octet-stream"))
    );
    assert!(patches[1].uri.contains("?state="), "{}", patches[1].uri);
    let put = log
        .iter()
        .find(|s| s.method == "PUT" && s.uri.starts_with("/upload/0"))
        .unwrap();
    assert!(
        put.uri.contains("?state=1048583&digest=sha256%3A"),
        "{}",
        put.uri
    );
    // The mounted layer: POST with mount and from, no upload.
    let mount = format!(
        "POST /v2/library/tiny/blobs/uploads/?mount={}&from=library/base",
        mounted.0.replace(':', "%3A")
    );
    assert!(
        seq.iter()
            .any(|s| *s == mount.replace("library/base", "library%2Fbase")),
        "{seq:?}"
    );
    // The manifest goes last, byte for byte, with Docker's media type.
    let last = log.last().unwrap();
    assert_eq!(last.method, "PUT");
    assert_eq!(last.uri, "/v2/library/tiny/manifests/latest");
    assert_eq!(
        last.content_type.as_deref(),
        Some("application/vnd.docker.distribution.manifest.v2+json")
    );
    let (pushed, _) = l.inner.manifests.lock().unwrap()[REPO].clone();
    assert_eq!(pushed, raw);
    for (d, b) in &m.blobs {
        assert_eq!(&l.inner.blobs.lock().unwrap()[d], b);
    }

    // Pushing again uploads nothing: every HEAD finds its blob.
    let before = l.log().len();
    let (p, _) = recorder();
    env.reg
        .push(&name, &TransferOptions { insecure: true }, p)
        .await
        .unwrap();
    assert!(
        l.log()[before..]
            .iter()
            .all(|s| s.method == "HEAD" || s.uri.contains("/manifests/"))
    );

    // A model that is not there.
    let (p, lines) = recorder();
    let e = env
        .reg
        .push(
            &l.name("library/absent:latest"),
            &TransferOptions { insecure: true },
            p,
        )
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "couldn't retrieve manifest");
    assert!(
        matches!(
            &e,
            RegistryError::LocalManifest(StoreError::ModelNotFound(_))
        ),
        "{e:?}"
    );
    assert_eq!(
        lines.lock().unwrap().last().unwrap().status,
        "couldn't retrieve manifest"
    );
}

/// A 1 MiB tmpfs mounted for one test, unmounted on drop.
struct SmallFs {
    path: PathBuf,
}

impl SmallFs {
    fn mount(path: &Path) -> SmallFs {
        std::fs::create_dir_all(path).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(path)
            .output()
            .expect("mount(8)");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs and needs root (CAP_SYS_ADMIN): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallFs {
            path: path.to_path_buf(),
        }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.path)
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_stops_the_pull_and_frees_the_partial_files() {
    let (l, m) = serving(Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("small");
    let fs = SmallFs::mount(&root);
    let reg = Registry::new(Store::new(&root), test_config()).unwrap();
    let (p, _) = recorder();
    let e = reg
        .pull(&l.name(REPO), &TransferOptions { insecure: true }, p)
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "no space left on device");
    assert!(matches!(cause(&e), RegistryError::NoSpace), "{e:?}");
    let left: Vec<String> = std::fs::read_dir(root.join("blobs"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(Store::new(&root).read_manifest(&l.name(REPO)).is_err());
    drop(fs);

    // The same client pulls fine once there is room (nothing stale in its download table).
    let (p, _) = recorder();
    reg.pull(&l.name(REPO), &TransferOptions { insecure: true }, p)
        .await
        .unwrap();
    let store = Store::new(&root);
    for (d, bytes) in &m.blobs {
        assert_eq!(&store.read_blob(d).unwrap(), bytes);
    }
}

#[tokio::test]
async fn re_pull_over_a_manifest_with_traversal_digests_deletes_nothing_outside() {
    let (l, m) = serving(Faults::default()).await;
    let env = Env::new(test_config());
    let canary = env.dir.path().join("canary");
    std::fs::write(&canary, b"alive").unwrap();
    let name = l.name(REPO);
    let [h, n, md, t] = name.manifest_components();
    let mdir = env
        .dir
        .path()
        .join("models/manifests")
        .join(h)
        .join(n)
        .join(md);
    std::fs::create_dir_all(&mdir).unwrap();
    let evil = serde_json::json!({
        "schemaVersion": 2,
        "config": {"mediaType": "x", "digest": "sha256:../../../canary", "size": 1},
        "layers": [{"mediaType": "x", "digest": "sha256:../../../../canary", "size": 1}],
    });
    std::fs::write(mdir.join(t), serde_json::to_vec(&evil).unwrap()).unwrap();
    let (r, lines) = env.pull(&l).await;
    r.unwrap();
    assert_eq!(std::fs::read(&canary).unwrap(), b"alive");
    assert!(!lines.iter().any(|p| p.status == "removing unused layers"));
    assert_pulled(&env, &l, &m);
}

/// The error itself, or the error of the download it shared with other pulls.
fn cause(e: &RegistryError) -> &RegistryError {
    match e {
        RegistryError::Shared(inner) => cause(inner),
        other => other,
    }
}
