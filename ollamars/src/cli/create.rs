//! `ollamars create MODEL -f Modelfile [-q QUANT] [--copy]`: parses the Modelfile here, uploads
//! local files as blobs (only those the server lacks), then sends the JSON `/api/create` request
//! and prints its progress, as Ollama's CLI does.
//!
//! Beyond Ollama (#7254): when the server runs on this machine over the store this CLI sees
//! (`OLLAMA_MODELS`), a local GGUF is linked into the store (reflink, else hard link) instead of
//! being uploaded and copied; `--copy` forces a copy. A reflink is independent of the original.
//! A hard link shares the original's inode: deleting or renaming the original is harmless, but
//! writing into it in place changes the blob, which a digest check of the blob detects.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use super::CliError;
use crate::client::Client;
use crate::modelfile::Modelfile;

pub async fn run(
    client: &Client,
    model: &str,
    file: &str,
    quantize: Option<&str>,
    copy: bool,
) -> Result<(), CliError> {
    let path = PathBuf::from(file);
    let bytes = std::fs::read(&path).map_err(|e| {
        CliError::Message(format!(
            "cannot read Modelfile {}: {e} (name another one with -f)",
            path.display()
        ))
    })?;
    let parsed = Modelfile::parse_bytes(&bytes).map_err(|e| CliError::Message(e.to_string()))?;
    for w in &parsed.warnings {
        eprintln!("Warning: line {}: {}", w.line, w.message);
    }
    let mf = parsed.modelfile;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();

    let mut req = Map::new();
    req.insert("model".into(), json!(model));
    let mut files = Map::new();
    eprintln!("gathering model components");
    match mf.from.first() {
        None => return Err(CliError::Message("no FROM line in the Modelfile".into())),
        Some(from) => match local_file(&base, from) {
            Some(p) => {
                let digest = match link_into_local_store(client, &p, copy).await {
                    Some(d) => d,
                    None => upload(client, &p).await?,
                };
                files.insert(file_name(&p), json!(digest));
            }
            None => {
                req.insert("from".into(), json!(from));
            }
        },
    }
    for projector in mf.from.iter().skip(1) {
        let p = local_file(&base, projector)
            .ok_or_else(|| CliError::Message(format!("{projector}: no such file")))?;
        let digest = upload(client, &p).await?;
        files.insert(file_name(&p), json!(digest));
    }
    if !files.is_empty() {
        req.insert("files".into(), Value::Object(files));
    }
    if !mf.adapters.is_empty() {
        let mut adapters = Map::new();
        for a in &mf.adapters {
            let p = local_file(&base, a)
                .ok_or_else(|| CliError::Message(format!("adapter {a}: no such file")))?;
            let digest = upload(client, &p).await?;
            adapters.insert(file_name(&p), json!(digest));
        }
        req.insert("adapters".into(), Value::Object(adapters));
    }
    if let Some(t) = &mf.template {
        req.insert("template".into(), json!(t));
    }
    if let Some(s) = &mf.system {
        req.insert("system".into(), json!(s));
    }
    if !mf.licenses.is_empty() {
        req.insert("license".into(), json!(mf.licenses));
    }
    let params = mf.parameters_json();
    if !params.is_empty() {
        req.insert("parameters".into(), Value::Object(params));
    }
    if !mf.messages.is_empty() {
        let msgs: Vec<Value> = mf
            .messages
            .iter()
            .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
            .collect();
        req.insert("messages".into(), Value::Array(msgs));
    }
    if let Some(q) = quantize {
        req.insert("quantize".into(), json!(q));
    }
    req.insert("stream".into(), json!(true));

    let mut last = String::new();
    client
        .stream("/api/create", &Value::Object(req), |line: &Value| {
            if let Some(status) = line.get("status").and_then(Value::as_str)
                && status != last
            {
                eprintln!("{status}");
                last = status.to_string();
            }
        })
        .await?;
    Ok(())
}

/// Imports `path` straight into the store of a server on this machine (linking unless `copy`),
/// if the server sees the same store; `None` means "upload it instead".
async fn link_into_local_store(client: &Client, path: &Path, copy: bool) -> Option<String> {
    let host = crate::env::Host::from_env();
    let loopback = host
        .bind_addr()
        .is_ok_and(|a| a.ip().is_loopback() || a.ip().is_unspecified());
    if !loopback {
        return None;
    }
    let root = crate::store::models_dir_from_env().ok()?;
    if !root.join("blobs").is_dir() {
        return None;
    }
    let store = crate::store::Store::new(root);
    let mode = if copy {
        crate::store::ImportMode::Copy
    } else {
        crate::store::ImportMode::Link
    };
    let p = path.to_path_buf();
    let imported = tokio::task::spawn_blocking(move || store.import_file(&p, mode))
        .await
        .ok()?
        .ok()?;
    let digest = imported.digest.to_string();
    // The server must see the blob; otherwise it uses another store and we upload.
    if client.has_blob(&digest).await.ok()? {
        eprintln!(
            "{} {} into the store ({digest})",
            format!("{:?}", imported.method).to_lowercase(),
            path.display()
        );
        Some(digest)
    } else {
        None
    }
}

/// A FROM/ADAPTER argument that names a local file: `~` expanded, relative to the Modelfile.
fn local_file(base: &Path, arg: &str) -> Option<PathBuf> {
    let expanded = match arg.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(rest))?,
        None => PathBuf::from(arg),
    };
    let p = if expanded.is_absolute() {
        expanded
    } else {
        base.join(expanded)
    };
    p.is_file().then_some(p)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map_or_else(|| "model.gguf".into(), |n| n.to_string_lossy().into_owned())
}

/// Hashes a local file and uploads it unless the server has it; returns `sha256:<hex>`.
async fn upload(client: &Client, path: &Path) -> Result<String, CliError> {
    let p = path.to_path_buf();
    let digest = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let mut f = std::fs::File::open(&p)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(format!(
            "sha256:{}",
            h.finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ))
    })
    .await
    .map_err(|e| CliError::Message(e.to_string()))?
    .map_err(|e| CliError::Message(format!("cannot read {}: {e}", path.display())))?;
    if !client.has_blob(&digest).await? {
        let f = tokio::fs::File::open(path)
            .await
            .map_err(|e| CliError::Message(format!("cannot read {}: {e}", path.display())))?;
        eprintln!("copying file {digest} 0%");
        client.upload_blob(&digest, f).await?;
    }
    eprintln!("copying file {digest} 100%");
    Ok(digest)
}
