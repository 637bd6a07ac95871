//! End to end: `ollamars push`, `pull` and `run` (which pulls a missing model) through Debian's
//! real `docker-registry` (`testkit::registry`; `.ci/run` installs it), with the real SmolLM2
//! model, over `ollamars serve` (`/api/pull`, `/api/push`).
//!
//! Pulls that must be counted or interrupted go through [`Proxy`], a small reverse proxy in front
//! of the registry that counts the GETs of one blob and the bytes it serves, and can slow that
//! blob down so that a pull is reliably still running when the test acts on it (never as an
//! assertion: the tests wait for states, such as a part file's saved progress).

use serde_json::{Value, json};
use sha2::Digest as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testkit::registry::DockerRegistry;

mod common;

use common::{Server, client};

/// How long any single wait in these tests may take before it fails.
const TIMEOUT: Duration = Duration::from_secs(120);

/// The rate at which a throttled blob is served (bytes per second): the 98 MB model takes ~4 s.
const THROTTLE_RATE: u64 = 25_000_000;

fn sha256_file(path: &Path) -> String {
    let mut f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl Server {
    fn models(&self) -> PathBuf {
        self.dir.join("models")
    }

    /// Runs `ollamars ARGS` with an empty stdin; returns (success, stdout, stderr).
    fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = self
            .command(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The path of a blob in this server's store.
    fn blob(&self, digest: &str) -> PathBuf {
        self.models()
            .join("blobs")
            .join(digest.replace("sha256:", "sha256-"))
    }

    /// The manifest of `name` (`host/namespace/model:tag`) as stored.
    fn manifest_bytes(&self, name: &str) -> Option<Vec<u8>> {
        let (path, tag) = name.rsplit_once(':').unwrap();
        std::fs::read(self.models().join("manifests").join(path).join(tag)).ok()
    }
}

/// The layers of a manifest, in pull order (layers, then config): (digest, size).
fn layers(manifest: &[u8]) -> Vec<(String, u64)> {
    let m: Value = serde_json::from_slice(manifest).unwrap();
    let mut all: Vec<&Value> = m["layers"].as_array().unwrap().iter().collect();
    all.push(&m["config"]);
    all.iter()
        .map(|l| {
            (
                l["digest"].as_str().unwrap().to_string(),
                l["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The model weights layer of a manifest: (digest, size).
fn model_layer(manifest: &[u8]) -> (String, u64) {
    let m: Value = serde_json::from_slice(manifest).unwrap();
    let l = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["mediaType"] == "application/vnd.ollama.image.model")
        .expect("a model layer");
    (
        l["digest"].as_str().unwrap().to_string(),
        l["size"].as_u64().unwrap(),
    )
}

/// Checks a streamed pull against spec §1.15 exactly: `pulling manifest`; for each layer and
/// then the config, in manifest order, `pulling <12 hex>` lines with the digest, the right total
/// and a non-decreasing `completed` that ends at the total; `verifying sha256 digest`,
/// `writing manifest`, `success` (status only).
fn check_pull_sequence(lines: &[Value], want: &[(String, u64)]) {
    let text = || {
        lines
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        lines.first(),
        Some(&json!({"status": "pulling manifest"})),
        "{}",
        text()
    );
    let mut i = 1;
    for (digest, size) in want {
        let status = format!("pulling {}", &digest[7..19]);
        let start = i;
        let mut last = 0;
        while i < lines.len() && lines[i]["digest"] == json!(digest) {
            let l = &lines[i];
            assert_eq!(l["status"], json!(status), "{}", text());
            assert_eq!(l["total"], json!(size), "{}", text());
            let done = l["completed"].as_u64().unwrap_or(0);
            assert!(
                done >= last && done <= *size,
                "completed went {last} -> {done}"
            );
            last = done;
            i += 1;
        }
        assert!(i > start, "no progress for {digest}:\n{}", text());
        assert_eq!(last, *size, "{digest} did not end complete:\n{}", text());
    }
    let rest: Vec<&Value> = lines[i..].iter().collect();
    assert_eq!(
        rest,
        [
            &json!({"status": "verifying sha256 digest"}),
            &json!({"status": "writing manifest"}),
            &json!({"status": "success"}),
        ],
        "{}",
        text()
    );
}

/// What [`Proxy`] counts for its watched blob.
#[derive(Debug, Default)]
struct Stats {
    /// The path suffix watched: `/blobs/sha256:<hex>`.
    watched: Mutex<String>,
    /// GETs of the watched blob (the locating `bytes=0-0` GET and every part GET).
    gets: AtomicUsize,
    /// Response bytes (head and body) served for those GETs.
    bytes: AtomicU64,
    /// Serve the watched blob at [`THROTTLE_RATE`].
    throttle: AtomicBool,
    /// Watched GETs being served right now.
    active: AtomicUsize,
    /// Bumped by each reset: a request counts only toward the generation it started in (a
    /// connection of a killed server may still be draining).
    generation: AtomicU64,
}

impl Stats {
    fn reset(&self) {
        let _guard = self.watched.lock().unwrap();
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.gets.store(0, Ordering::SeqCst);
        self.bytes.store(0, Ordering::SeqCst);
    }
}

/// A reverse proxy on 127.0.0.1 in front of the registry. Every request is forwarded on a fresh
/// connection with `Connection: close`, and the answer is copied back until the registry closes.
struct Proxy {
    addr: SocketAddr,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (stats.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || {
                    let _ = forward(conn, upstream, &st);
                });
            }
        });
        Proxy { addr, stats, stop }
    }

    /// `127.0.0.1:<port>`, the host part of model names pulled through the proxy.
    fn host(&self) -> String {
        self.addr.to_string()
    }

    fn watch(&self, digest: &str) {
        *self.stats.watched.lock().unwrap() = format!("/blobs/{digest}");
        self.stats.reset();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// Forwards one request (see [`Proxy`]).
fn forward(mut conn: TcpStream, upstream: SocketAddr, stats: &Stats) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut head = request_line.clone();
    let mut body_len = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("connection:") || lower.starts_with("keep-alive:") {
            continue;
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            body_len = v.trim().parse().unwrap_or(0);
        }
        head.push_str(&line);
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut body = vec![0u8; body_len];
    reader.read_exact(&mut body)?;

    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (watched, generation) = {
        let w = stats.watched.lock().unwrap();
        let watched = method == "GET" && !w.is_empty() && path.ends_with(w.as_str());
        if watched {
            stats.gets.fetch_add(1, Ordering::SeqCst);
        }
        (watched, stats.generation.load(Ordering::SeqCst))
    };

    if watched {
        stats.active.fetch_add(1, Ordering::SeqCst);
    }
    let r = relay(
        &mut conn, upstream, &head, &body, stats, watched, generation,
    );
    if watched {
        stats.active.fetch_sub(1, Ordering::SeqCst);
    }
    r
}

/// Sends the request upstream and copies the answer back (see [`Proxy`]).
fn relay(
    conn: &mut TcpStream,
    upstream: SocketAddr,
    head: &str,
    body: &[u8],
    stats: &Stats,
    watched: bool,
    generation: u64,
) -> std::io::Result<()> {
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(head.as_bytes())?;
    up.write_all(body)?;
    let mut buf = vec![0u8; 64 << 10];
    let (t0, mut sent) = (Instant::now(), 0u64);
    loop {
        let n = up.read(&mut buf)?;
        if n == 0 {
            break;
        }
        conn.write_all(&buf[..n])?;
        if watched {
            {
                let _guard = stats.watched.lock().unwrap();
                if stats.generation.load(Ordering::SeqCst) == generation {
                    stats.bytes.fetch_add(n as u64, Ordering::SeqCst);
                }
            }
            sent += n as u64;
            if stats.throttle.load(Ordering::SeqCst) {
                let due = Duration::from_secs_f64(sent as f64 / THROTTLE_RATE as f64);
                if let Some(wait) = due.checked_sub(t0.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        }
    }
    conn.shutdown(std::net::Shutdown::Both)
}

/// A registry holding `library/smol:latest`, pushed with `ollamars push --insecure` from a
/// server that created it from SmolLM2 (greedy, short replies).
struct Fixture {
    registry: DockerRegistry,
    /// The server the model was created on and pushed from.
    seed: Server,
    /// The pushed manifest, byte for byte.
    manifest: Vec<u8>,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        let registry = DockerRegistry::start();
        let seed = Server::start(tag, &[]);
        let gguf = testkit::model_path(testkit::SMOLLM2);
        let name = format!("{}/library/smol:latest", registry.host());
        seed.create(
            &name,
            &format!(
                "FROM {}\nPARAMETER temperature 0\nPARAMETER num_predict 8\n",
                gguf.display()
            ),
        );
        let manifest = seed.manifest_bytes(&name).expect("the created manifest");
        let (ok, _, err) = seed.cli(&["push", &name, "--insecure"]);
        assert!(ok, "push failed: {err}\nregistry log:\n{}", registry.log());
        Fixture {
            registry,
            seed,
            manifest,
        }
    }

    /// `<registry>/library/smol:latest`.
    fn name(&self) -> String {
        format!("{}/library/smol:latest", self.registry.host())
    }
}

#[test]
fn push_rm_pull_round_trip() {
    let t0 = Instant::now();
    let fx = Fixture::new("reg-rt");
    let s = &fx.seed;
    let name = fx.name();
    let want = layers(&fx.manifest);
    assert_eq!(want.len(), 3, "model, params, config");

    // `serve` created Ollama's key under HOME.
    let key = s.dir.join("home/.ollama");
    assert!(key.join("id_ed25519").is_file());
    let public = std::fs::read_to_string(key.join("id_ed25519.pub")).unwrap();
    assert!(public.starts_with("ssh-ed25519 AAAA"), "{public}");

    // The registry holds the manifest byte for byte.
    let url = format!(
        "http://{}/v2/library/smol/manifests/latest",
        fx.registry.host()
    );
    let remote = client()
        .get(&url)
        .header(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert_eq!(&remote[..], &fx.manifest[..]);

    // A second push through the API: every blob is already there.
    let (code, lines) = s.stream("/api/push", &json!({"model": name, "insecure": true}));
    assert_eq!(code, 200);
    let statuses: Vec<&str> = lines.iter().filter_map(|l| l["status"].as_str()).collect();
    assert_eq!(statuses.first(), Some(&"retrieving manifest"));
    assert_eq!(
        &statuses[statuses.len() - 2..],
        ["pushing manifest", "success"]
    );
    for (digest, size) in &want {
        let status = format!("pushing {}", &digest[7..19]);
        assert!(
            lines
                .iter()
                .any(|l| l["status"] == json!(status) && l["completed"] == json!(size)),
            "{lines:?}"
        );
    }

    // rm, then pull back through the API: the exact progress sequence, identical bytes.
    let (ok, _, err) = s.cli(&["rm", &name]);
    assert!(ok, "{err}");
    for (digest, _) in &want {
        assert!(!s.blob(digest).exists(), "rm pruned {digest}");
    }
    let (code, lines) = s.stream("/api/pull", &json!({"model": name, "insecure": true}));
    assert_eq!(code, 200);
    check_pull_sequence(&lines, &want);
    assert_eq!(s.manifest_bytes(&name).unwrap(), fx.manifest);
    for (digest, size) in &want {
        let path = s.blob(digest);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), *size);
        assert_eq!(format!("sha256:{}", sha256_file(&path)), *digest);
    }
    let (code, info) = s.post("/api/show", &json!({"model": name}));
    assert_eq!(code, 200, "{info}");
    assert_eq!(info["details"]["family"], "llama");

    // Pulling what is there: each blob reported complete once, no download.
    let (code, lines) = s.stream("/api/pull", &json!({"model": name, "insecure": true}));
    assert_eq!(code, 200);
    assert_eq!(lines.len(), 1 + want.len() + 3, "{lines:?}");
    check_pull_sequence(&lines, &want);

    // stream:false answers the last status.
    let (code, v) = s.post(
        "/api/pull",
        &json!({"name": name, "insecure": true, "stream": false, "username": "u", "password": "p"}),
    );
    assert_eq!((code, v), (200, json!({"status": "success"})));

    // The CLI, after another rm: each status once on a non-terminal stderr.
    let (ok, _, err) = s.cli(&["rm", &name]);
    assert!(ok, "{err}");
    let (ok, out, err) = s.cli(&["pull", &name, "--insecure"]);
    assert!(ok, "{err}");
    assert_eq!(out, "");
    let mut expect = vec!["pulling manifest".to_string()];
    expect.extend(want.iter().map(|(d, _)| format!("pulling {}", &d[7..19])));
    expect.extend(["verifying sha256 digest", "writing manifest", "success"].map(String::from));
    assert_eq!(err.lines().collect::<Vec<_>>(), expect);
    assert_eq!(s.manifest_bytes(&name).unwrap(), fx.manifest);
    let (ok, out, _) = s.cli(&["list"]);
    assert!(ok && out.contains(&name), "{out}");
    eprintln!("push_rm_pull_round_trip: {:?}", t0.elapsed());
}

#[test]
fn run_pulls_a_missing_model() {
    let t0 = Instant::now();
    let fx = Fixture::new("reg-run-seed");
    let s = Server::start("reg-run", &[]);
    let name = fx.name();
    let bare = name.trim_end_matches(":latest");
    let (code, _) = s.post("/api/show", &json!({"model": bare}));
    assert_eq!(code, 404);

    let (ok, out, err) = s.cli(&["run", bare, "--insecure", "Say hello."]);
    assert!(ok, "run failed:\n{err}");
    assert!(err.starts_with("pulling manifest\n"), "{err}");
    assert!(err.contains("\nsuccess\n"), "{err}");
    assert!(!out.trim().is_empty(), "no answer; stderr:\n{err}");
    assert_eq!(s.manifest_bytes(&name).unwrap(), fx.manifest);

    // The server sees the pulled model for generation too.
    let (code, v) = s.post(
        "/api/generate",
        &json!({"model": bare, "prompt": "Hi", "stream": false}),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["done"], true);
    eprintln!("run_pulls_a_missing_model: {:?}", t0.elapsed());
}

#[test]
fn concurrent_pulls_share_one_download() {
    let t0 = Instant::now();
    let fx = Fixture::new("reg-conc-seed");
    let proxy = Proxy::start(fx.registry.addr);
    let (digest, size) = model_layer(&fx.manifest);
    proxy.watch(&digest);
    let name = format!("{}/library/smol:latest", proxy.host());
    let body = json!({"model": name, "insecure": true, "stream": false});

    // One pull alone: how many GETs of the model blob one download makes.
    let single = Server::start("reg-conc1", &[]);
    assert_eq!(
        single.post("/api/pull", &body),
        (200, json!({"status": "success"}))
    );
    let one = proxy.stats.gets.load(Ordering::SeqCst);
    assert!(one >= 1);
    assert!(proxy.stats.bytes.load(Ordering::SeqCst) >= size);

    // Eight at once on a fresh store, the blob slowed down so that they overlap.
    proxy.watch(&digest);
    proxy.stats.throttle.store(true, Ordering::SeqCst);
    let s = Arc::new(Server::start("reg-conc8", &[]));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (s, body) = (s.clone(), body.clone());
            std::thread::spawn(move || s.post("/api/pull", &body))
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), (200, json!({"status": "success"})));
    }
    let gets = proxy.stats.gets.load(Ordering::SeqCst);
    let bytes = proxy.stats.bytes.load(Ordering::SeqCst);
    eprintln!("blob GETs: one pull {one}, 8 concurrent pulls {gets} ({bytes} bytes)");
    assert_eq!(
        gets, one,
        "8 concurrent pulls made {gets} GETs, one pull {one}"
    );
    assert!(
        bytes < size + size / 2,
        "8 concurrent pulls fetched {bytes} bytes of a {size}-byte blob"
    );
    assert_eq!(format!("sha256:{}", sha256_file(&s.blob(&digest))), digest);
    assert_eq!(s.manifest_bytes(&name).unwrap(), fx.manifest);
    eprintln!("concurrent_pulls_share_one_download: {:?}", t0.elapsed());
}

#[test]
fn disconnect_stops_an_unshared_download() {
    let t0 = Instant::now();
    let fx = Fixture::new("reg-disc-seed");
    let proxy = Proxy::start(fx.registry.addr);
    let (digest, size) = model_layer(&fx.manifest);
    proxy.watch(&digest);
    proxy.stats.throttle.store(true, Ordering::SeqCst);
    let name = format!("{}/library/smol:latest", proxy.host());
    let s = Server::start("reg-disc", &[]);

    // Read the stream until the model blob is downloading, then hang up.
    let r = client()
        .post(format!("{}/api/pull", s.base()))
        .json(&json!({"model": name, "insecure": true}))
        .send()
        .unwrap();
    let mut lines = BufReader::new(r).lines();
    loop {
        let line: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        if line["digest"] == json!(digest) && line["completed"].as_u64() > Some(1_000_000) {
            break;
        }
    }
    drop(lines);

    // The server stops the download (no other pull waits for it): the registry connection
    // closes long before the throttled blob could have been served, and the part state stays.
    let waited = Instant::now();
    while proxy.stats.active.load(Ordering::SeqCst) > 0 {
        assert!(waited.elapsed() < TIMEOUT, "the download never stopped");
        std::thread::sleep(Duration::from_millis(20));
    }
    let blob = s.blob(&digest);
    let served = proxy.stats.bytes.load(Ordering::SeqCst);
    assert!(
        !blob.exists(),
        "the download ran to the end after the client left"
    );
    assert!(served < size, "{served} of {size} bytes served");
    assert!(PathBuf::from(format!("{}-partial", blob.display())).is_file());
    assert!(PathBuf::from(format!("{}-partial-0", blob.display())).is_file());

    // The next pull resumes and completes.
    proxy.watch(&digest);
    proxy.stats.throttle.store(false, Ordering::SeqCst);
    let (code, v) = s.post(
        "/api/pull",
        &json!({"model": name, "insecure": true, "stream": false}),
    );
    assert_eq!((code, v), (200, json!({"status": "success"})));
    assert!(proxy.stats.bytes.load(Ordering::SeqCst) < size);
    assert_eq!(format!("sha256:{}", sha256_file(&blob)), digest);
    eprintln!("disconnect_stops_an_unshared_download: {:?}", t0.elapsed());
}

/// The `Completed` of a part state file, if it exists and parses.
fn part_completed(path: &Path) -> Option<u64> {
    let v: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    v["Completed"].as_u64()
}

#[test]
fn killed_pull_resumes_after_restart() {
    let t0 = Instant::now();
    let fx = Fixture::new("reg-kill-seed");
    let proxy = Proxy::start(fx.registry.addr);
    let (digest, size) = model_layer(&fx.manifest);
    proxy.watch(&digest);
    proxy.stats.throttle.store(true, Ordering::SeqCst);
    let name = format!("{}/library/smol:latest", proxy.host());

    let mut first = Server::start("reg-kill1", &[]);
    let models = first.models();
    let base = first.base();
    let puller = std::thread::spawn(move || {
        // Ends with an error when the server dies; only the store matters.
        let _ = client()
            .post(format!("{base}/api/pull"))
            .json(&json!({"model": name, "insecure": true}))
            .send()
            .and_then(|r| r.text());
    });

    // Wait until the download has saved real progress, then SIGKILL the server.
    let blob = first.blob(&digest);
    let partial = PathBuf::from(format!("{}-partial", blob.display()));
    let state = PathBuf::from(format!("{}-partial-0", blob.display()));
    let waited = Instant::now();
    let saved = loop {
        if let Some(c) = part_completed(&state).filter(|c| *c >= 8_000_000) {
            break c;
        }
        assert!(
            waited.elapsed() < TIMEOUT,
            "the pull saved no progress in {TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    puller.join().unwrap();
    assert!(saved < size, "the pull finished before the kill");
    assert!(partial.is_file() && !blob.exists());
    let saved = part_completed(&state).unwrap();
    let served_first = proxy.stats.bytes.load(Ordering::SeqCst);

    // Restart on the same store; pull again at full speed: it resumes.
    proxy.watch(&digest);
    proxy.stats.throttle.store(false, Ordering::SeqCst);
    let second = Server::start("reg-kill2", &[("OLLAMA_MODELS", models.to_str().unwrap())]);
    let name = format!("{}/library/smol:latest", proxy.host());
    let (code, lines) = second.stream("/api/pull", &json!({"model": name, "insecure": true}));
    assert_eq!(code, 200);
    check_pull_sequence(&lines, &layers(&fx.manifest));
    let served_second = proxy.stats.bytes.load(Ordering::SeqCst);
    eprintln!(
        "blob of {size} bytes: {served_first} served before the kill, {saved} saved, {served_second} served after"
    );
    let headers = 16 << 10;
    assert!(
        served_second <= size - saved + headers,
        "the second pull fetched {served_second} bytes; {saved} of {size} were saved"
    );
    assert!(served_first + served_second >= size);

    // The blob is whole and verified; no partial files are left; the model is usable.
    assert_eq!(format!("sha256:{}", sha256_file(&blob)), digest);
    assert!(!partial.exists() && !state.exists());
    let (code, info) = second.post("/api/show", &json!({"model": name}));
    assert_eq!(code, 200, "{info}");
    drop(second);
    drop(first);
    eprintln!("killed_pull_resumes_after_restart: {:?}", t0.elapsed());
}

#[test]
fn bad_pulls_and_pushes() {
    let t0 = Instant::now();
    let registry = DockerRegistry::start();
    let s = Server::start("reg-bad", &[]);
    let host = registry.host();
    let missing = format!("{host}/library/nothing:nope");

    // Unknown model or tag: the first line, then the error line (status 200: it started).
    let (code, lines) = s.stream("/api/pull", &json!({"model": missing, "insecure": true}));
    assert_eq!(code, 200);
    assert_eq!(
        lines,
        [
            json!({"status": "pulling manifest"}),
            json!({"error": "pull model manifest: file does not exist"})
        ]
    );
    let (code, v) = s.post(
        "/api/pull",
        &json!({"model": missing, "insecure": true, "stream": false}),
    );
    assert_eq!(
        (code, v),
        (
            500,
            json!({"error": "pull model manifest: file does not exist"})
        )
    );
    let (ok, _, err) = s.cli(&["pull", &missing, "--insecure"]);
    assert!(!ok);
    assert_eq!(
        err.lines().last(),
        Some("Error: pull model manifest: file does not exist"),
        "{err}"
    );
    let (ok, _, err) = s.cli(&["run", &missing, "--insecure", "Hi"]);
    assert!(!ok);
    assert!(
        err.ends_with("Error: pull model manifest: file does not exist\n"),
        "{err}"
    );

    // An http:// name without insecure is refused before anything is sent.
    let http = format!("http://{host}/library/nothing:latest");
    for stream in [true, false] {
        let (code, v) = s.post("/api/pull", &json!({"model": http, "stream": stream}));
        assert_eq!((code, v), (400, json!({"error": "insecure protocol http"})));
    }
    let (ok, _, err) = s.cli(&["pull", &http]);
    assert!(!ok);
    assert_eq!(err.trim_end(), "Error: insecure protocol http");

    // Invalid names and bodies.
    for path in ["/api/pull", "/api/push"] {
        for bad in ["", "a/b/c/d/e", "a b", "../../etc/passwd", "ftp://h/n/m"] {
            let (code, v) = s.post(path, &json!({"model": bad}));
            assert_eq!(
                (code, v),
                (400, json!({"error": "invalid model name"})),
                "{bad:?}"
            );
        }
        let r = client().post(format!("{}{path}", s.base())).send().unwrap();
        assert_eq!(r.status().as_u16(), 400);
        assert_eq!(
            r.json::<Value>().unwrap(),
            json!({"error": "missing request body"})
        );
    }

    // Pushing a model that is not here.
    let none = format!("{host}/library/none:latest");
    let (code, lines) = s.stream("/api/push", &json!({"model": none, "insecure": true}));
    assert_eq!(code, 200);
    assert_eq!(lines[0], json!({"status": "retrieving manifest"}));
    assert_eq!(lines[1], json!({"status": "couldn't retrieve manifest"}));
    assert!(lines[2]["error"].is_string(), "{lines:?}");
    let (code, _) = s.post(
        "/api/push",
        &json!({"model": none, "insecure": true, "stream": false}),
    );
    assert_eq!(code, 404);
    let (ok, _, err) = s.cli(&["push", &none, "--insecure"]);
    assert!(
        !ok && err.contains("Error: couldn't retrieve manifest"),
        "{err}"
    );
    eprintln!("bad_pulls_and_pushes: {:?}", t0.elapsed());
}
