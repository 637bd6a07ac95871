//! End to end: the `ollamars` binary as a user runs it. `ollamars serve` on a free loopback
//! port over a fresh store, then `create` (from a Modelfile naming the real SmolLM2 GGUF),
//! `list`, `show` (every flag), `cp`, `rm`, and the errors a user sees.

use std::process::{Command, Output};

mod common;

use common::{BIN, Server};

fn start() -> Server {
    Server::start("cli", &[])
}

fn run(server: &Server, args: &[&str]) -> Output {
    server.command(args).output().unwrap()
}

fn ok(server: &Server, args: &[&str]) -> String {
    let out = run(server, args);
    assert!(
        out.status.success(),
        "ollamars {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn create_list_show_copy_remove() {
    let server = start();
    let gguf = testkit::model_path(testkit::SMOLLM2);
    std::fs::write(
        server.dir.join("Modelfile"),
        format!("FROM {}\nPARAMETER temperature 0.7\nPARAMETER stop \"<|im_end|>\"\nSYSTEM \"\"\"You are terse.\"\"\"\nLICENSE MIT\n", gguf.display()),
    )
    .unwrap();

    let out = run(&server, &["create", "smol"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "create failed: {stderr}");
    // The server shares this machine and store: the GGUF is linked in, not uploaded.
    assert!(
        stderr.contains("linked") && !stderr.contains("copying file"),
        "{stderr}"
    );
    for status in ["parsing GGUF", "writing manifest", "success"] {
        assert!(
            stderr.contains(status),
            "create progress lacks {status:?}: {stderr}"
        );
    }

    let list = ok(&server, &["list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert!(
        lines[0].starts_with("NAME")
            && lines[0].contains("ID")
            && lines[0].contains("SIZE")
            && lines[0].contains("MODIFIED")
    );
    assert!(
        lines[1].starts_with("smol:latest")
            && lines[1].contains("98 MB")
            && lines[1].contains("ago"),
        "{list}"
    );
    let id = lines[1].split_whitespace().nth(1).unwrap();
    assert_eq!(id.len(), 12);

    let show = ok(&server, &["show", "smol"]);
    for want in [
        "architecture",
        "llama",
        "134.52M",
        "Q4_1",
        "completion",
        "temperature",
        "You are terse.",
    ] {
        assert!(show.contains(want), "show lacks {want:?}:\n{show}");
    }
    assert_eq!(
        ok(&server, &["show", "smol", "--system"]).trim(),
        "You are terse."
    );
    assert_eq!(ok(&server, &["show", "smol", "--license"]).trim(), "MIT");
    let params = ok(&server, &["show", "smol", "--parameters"]);
    assert!(
        params.contains("stop                           \"<|im_end|>\"")
            && params.contains("temperature                    0.7"),
        "{params}"
    );
    let modelfile = ok(&server, &["show", "smol", "--modelfile"]);
    assert!(
        modelfile.contains("FROM ") && modelfile.contains("PARAMETER temperature 0.7"),
        "{modelfile}"
    );
    assert!(
        !ok(&server, &["show", "smol", "--template"])
            .trim()
            .is_empty()
    );

    assert_eq!(
        ok(&server, &["cp", "smol", "smol2:v1"]).trim(),
        "copied 'smol' to 'smol2:v1'"
    );
    assert!(ok(&server, &["ls", "smol2"]).contains("smol2:v1"));
    assert_eq!(
        ok(&server, &["rm", "smol", "smol2:v1"]).trim(),
        "deleted 'smol'\ndeleted 'smol2:v1'"
    );
    assert_eq!(ok(&server, &["list"]).lines().count(), 1);
}

/// Every Modelfile command reaches the server: RENDERER, PARSER and REQUIRES as well (the CLI
/// sends the same `CreateRequest` the server parses), and come back in `show --modelfile`.
#[test]
fn create_sends_renderer_parser_and_requires() {
    let server = start();
    let gguf = testkit::model_path(testkit::SMOLLM2);
    std::fs::write(
        server.dir.join("Modelfile"),
        format!(
            "FROM {}\nRENDERER qwen3-coder\nPARSER qwen3-coder\nREQUIRES 0.12.3\nMESSAGE user hi\n",
            gguf.display()
        ),
    )
    .unwrap();
    ok(&server, &["create", "smol-rp"]);
    let modelfile = ok(&server, &["show", "smol-rp", "--modelfile"]);
    for want in [
        "RENDERER qwen3-coder",
        "PARSER qwen3-coder",
        "REQUIRES 0.12.3",
        "MESSAGE user hi",
    ] {
        assert!(modelfile.contains(want), "lacks {want:?}:\n{modelfile}");
    }
}

#[test]
fn errors_a_user_sees() {
    let server = start();
    let out = run(&server, &["show", "nope"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "Error: model 'nope' not found"
    );

    let out = run(&server, &["create", "x", "-f", "missing.Modelfile"]);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("missing.Modelfile")
    );

    std::fs::write(
        server.dir.join("Bad"),
        "FROM x\nPARAMETER no_such_param 1\n",
    )
    .unwrap();
    let out = run(&server, &["create", "x", "-f", "Bad"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no_such_param"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // No server: says how to start one.
    let out = Command::new(BIN)
        .arg("list")
        .env("OLLAMA_HOST", "127.0.0.1:1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ollamars serve"));

    let v = Command::new(BIN)
        .arg("--version")
        .env("OLLAMA_HOST", &server.host)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(
        text.contains(&format!(
            "ollamars version is {}",
            env!("CARGO_PKG_VERSION")
        )) && text.contains("llama-cpp-sys-2 0.1.161"),
        "{text}"
    );
}

/// A variable whose value does not parse stops `serve` before it listens, with the variable,
/// the value and what is accepted; a client command does not read the server's variables.
#[test]
fn a_bad_variable_stops_serve_not_the_client() {
    let dir = std::env::temp_dir().join(format!("ollamars-cli-badvar-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let serve = |var: &str, value: &str| {
        Command::new(BIN)
            .arg("serve")
            // Never a real address: the server must stop before it binds.
            .env("OLLAMA_HOST", "127.0.0.1:1")
            .env("OLLAMA_MODELS", dir.join("models"))
            .env("HOME", &dir)
            .env(var, value)
            .output()
            .unwrap()
    };
    for (var, value, want) in [
        (
            "OLLAMA_NUM_PARALLEL",
            "abc",
            "Error: OLLAMA_NUM_PARALLEL=\"abc\" is not valid: expected a whole number\n",
        ),
        (
            "OLLAMA_KV_CACHE_TYPE",
            "bogus",
            "Error: OLLAMA_KV_CACHE_TYPE=\"bogus\" is not valid: expected f16, q8_0 or q4_0\n",
        ),
    ] {
        let out = serve(var, value);
        assert!(!out.status.success(), "{var}={value}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), want);
        assert!(!dir.join("models").exists(), "it stopped first");
    }

    let out = Command::new(BIN)
        .arg("list")
        .env("OLLAMA_HOST", "127.0.0.1:1")
        .env("OLLAMA_NUM_PARALLEL", "abc")
        .env("OLLAMA_KV_CACHE_TYPE", "bogus")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ollamars serve") && !err.contains("not valid"),
        "{err}"
    );
    // A shared variable is checked on both sides.
    let out = Command::new(BIN)
        .arg("list")
        .env("OLLAMA_HOST", "127.0.0.1:port")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("Error: OLLAMA_HOST=\"127.0.0.1:port\" is not valid"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
