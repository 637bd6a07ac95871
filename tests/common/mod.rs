//! The harness shared by the end-to-end tests: `ollamars serve` on a free loopback port over a
//! fresh store in a temporary directory, and the binary run against it.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `ollamars` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ollamars");

/// A running `ollamars serve`; killed, with its directory removed, on drop.
pub struct Server {
    pub child: Child,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// Holds `models/` (the store) and `home/` (HOME for client commands).
    pub dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Runners exit when the server's pipe closes; give them a moment.
        std::thread::sleep(Duration::from_millis(100));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Server {
    /// Starts `ollamars serve` with extra environment `env`; returns once it listens.
    pub fn start(tag: &str, env: &[(&str, &str)]) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let host = format!("127.0.0.1:{port}");
        let dir =
            std::env::temp_dir().join(format!("ollamars-{tag}-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("home")).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .env("OLLAMA_HOST", &host)
            .env("OLLAMA_MODELS", dir.join("models"))
            // `serve` writes its registry key to ~/.ollama: keep it in the test's directory.
            .env("HOME", dir.join("home"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let server = Server { child, host, dir };
        let t0 = Instant::now();
        while std::net::TcpStream::connect(&server.host).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "ollamars serve did not start listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://{}", self.host)
    }

    /// `ollamars ARGS` against this server (HOME in the server's directory, run from there).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env("OLLAMA_HOST", &self.host)
            .env("OLLAMA_MODELS", self.dir.join("models"))
            .env("HOME", self.dir.join("home"))
            .current_dir(&self.dir);
        c
    }

    /// The pids of this server's `ollamars runner` children whose command line (NUL-separated)
    /// satisfies `keep`.
    pub fn runners(&self, keep: impl Fn(&str) -> bool) -> Vec<i32> {
        let me = self.child.id().to_string();
        let mut pids = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let cmdline = std::fs::read_to_string(e.path().join("cmdline")).unwrap_or_default();
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().nth(1))
                .unwrap_or("");
            if ppid == me && cmdline.split('\0').nth(1) == Some("runner") && keep(&cmdline) {
                pids.push(pid);
            }
        }
        pids
    }

    /// Creates `name` from a Modelfile with `text` through `ollamars create`.
    pub fn create(&self, name: &str, text: &str) {
        let file = self
            .dir
            .join(format!("{}.Modelfile", name.replace(['/', ':'], "_")));
        std::fs::write(&file, text).unwrap();
        let out = self
            .command(&["create", name, "-f"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "create {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A blocking HTTP client for the tests (5-minute timeout: a debug runner on 2 cores is slow).
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap()
}

impl Server {
    /// POSTs JSON; returns the status and the body as JSON (or as a JSON string if it is not).
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = client()
            .post(format!("{}{path}", self.base()))
            .json(body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// POSTs JSON and reads the NDJSON lines of the answer.
    pub fn stream(&self, path: &str, body: &Value) -> (u16, Vec<Value>) {
        let r = client()
            .post(format!("{}{path}", self.base()))
            .json(body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let lines = BufReader::new(r)
            .lines()
            .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
            .collect();
        (status, lines)
    }
}
