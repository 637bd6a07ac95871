//! A real OCI registry for tests: Debian's `docker-registry` (the Docker distribution registry)
//! serving a temporary directory on a free loopback port, killed when dropped. A test that needs
//! it fails (never skips) when the binary is missing: `.ci/run` installs it.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `docker-registry`.
#[derive(Debug)]
pub struct DockerRegistry {
    /// `127.0.0.1:<port>`.
    pub addr: SocketAddr,
    /// The registry process.
    pub child: Child,
    /// Holds the config, the storage and the log.
    pub tempdir: tempfile::TempDir,
}

/// The `docker-registry` binary: `$OLLAMARS_DOCKER_REGISTRY`, else `docker-registry` on `PATH`.
fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("OLLAMARS_DOCKER_REGISTRY").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("docker-registry"))
        .find(|p| p.is_file())
}

/// Whether `GET /v2/` on `addr` gets an HTTP answer.
fn answers(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /v2/ HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

impl DockerRegistry {
    /// Starts a registry with storage in a fresh temporary directory on a free port of
    /// 127.0.0.1 and waits until `/v2/` answers. Panics, saying how to install it, when
    /// `docker-registry` is missing.
    pub fn start() -> DockerRegistry {
        let bin = binary().unwrap_or_else(|| {
            panic!(
                "docker-registry is not installed: run .ci/run (or `apt-get install docker-registry`), \
                 or point OLLAMARS_DOCKER_REGISTRY at the binary"
            )
        });
        let tempdir = tempfile::tempdir().expect("a temporary directory");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let storage = tempdir.path().join("storage");
        let config = tempdir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                storage.display()
            ),
        )
        .expect("write the registry config");
        let log = std::fs::File::create(tempdir.path().join("registry.log")).expect("a log file");
        let child = Command::new(&bin)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut reg = DockerRegistry {
            addr,
            child,
            tempdir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if answers(addr) {
                return reg;
            }
            if let Ok(Some(status)) = reg.child.try_wait() {
                panic!(
                    "docker-registry exited with {status} before answering:\n{}",
                    reg.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer on {addr} within 30 s:\n{}",
                reg.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:<port>`, the host part of model names.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The registry's storage directory.
    pub fn storage(&self) -> PathBuf {
        self.tempdir.path().join("storage")
    }

    /// What the registry logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.tempdir.path().join("registry.log")).unwrap_or_default()
    }

    /// The config file.
    pub fn config_path(&self) -> PathBuf {
        self.tempdir.path().join("config.yml")
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
