//! `ollamars create MODEL -f Modelfile [-q QUANT] [--copy]`: parses the Modelfile here, uploads
//! local files as blobs (only those the server lacks), then sends the JSON `/api/create` request
//! and prints its progress, as Ollama's CLI does.
//!
//! Beyond Ollama (#7254): when the server runs on this machine over the store this CLI sees
//! (`OLLAMA_MODELS`), a local GGUF is linked into the store (reflink, else hard link) instead of
//! being uploaded and copied; `--copy` forces a copy. A reflink is independent of the original.
//! A hard link shares the original's inode: deleting or renaming the original is harmless, but
//! writing into it in place changes the blob, which a digest check of the blob detects.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::CliError;
use crate::client::Client;
use crate::config::Config;
use crate::create::CreateRequest;
use crate::modelfile::Modelfile;
use crate::store::{Digest, ImportMode, Store};

pub async fn run(
    client: &Client,
    config: &Config,
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

    let mut req = CreateRequest {
        model: Some(model.to_string()),
        ..CreateRequest::default()
    };
    let mut files = BTreeMap::new();
    eprintln!("gathering model components");
    match mf.from.first() {
        None => return Err(CliError::Message("no FROM line in the Modelfile".into())),
        Some(from) => match local_file(&base, from) {
            Some(p) => {
                let digest = match link_into_local_store(client, config, &p, copy).await {
                    Some(d) => d,
                    None => upload(client, &p).await?,
                };
                files.insert(file_name(&p), digest);
            }
            None => req.from = Some(from.clone()),
        },
    }
    for projector in mf.from.iter().skip(1) {
        let p = local_file(&base, projector)
            .ok_or_else(|| CliError::Message(format!("{projector}: no such file")))?;
        let digest = upload(client, &p).await?;
        // Two FROM files of the same name (a/model.gguf, b/model.gguf) must not collapse.
        let mut name = file_name(&p);
        let mut n = 1;
        while files.contains_key(&name) {
            name = format!("{n}-{}", file_name(&p));
            n += 1;
        }
        files.insert(name, digest);
    }
    if !files.is_empty() {
        req.files = Some(files);
    }
    if !mf.adapters.is_empty() {
        let mut adapters = BTreeMap::new();
        for a in &mf.adapters {
            let p = local_file(&base, a)
                .ok_or_else(|| CliError::Message(format!("adapter {a}: no such file")))?;
            let digest = upload(client, &p).await?;
            adapters.insert(file_name(&p), digest);
        }
        req.adapters = Some(adapters);
    }
    req.set_modelfile_settings(&mf);
    req.quantize = quantize.map(str::to_string);
    req.stream = Some(true);

    let mut last = String::new();
    client
        .create(&req, |p| {
            if !p.status.is_empty() && p.status != last {
                eprintln!("{}", p.status);
                last.clone_from(&p.status);
            }
        })
        .await?;
    Ok(())
}

/// Imports `path` straight into the store of a server on this machine (linking unless `copy`),
/// if the server sees the same store; `None` means "upload it instead".
async fn link_into_local_store(
    client: &Client,
    config: &Config,
    path: &Path,
    copy: bool,
) -> Option<String> {
    let loopback = config
        .host
        .bind_addr()
        .is_ok_and(|a| a.ip().is_loopback() || a.ip().is_unspecified());
    if !loopback {
        return None;
    }
    let store = Store::new(crate::store::models_dir(config).ok()?);
    if !store.is_created() {
        return None;
    }
    let mode = if copy {
        ImportMode::Copy
    } else {
        ImportMode::Link
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
    let expanded = crate::config::expand_home(arg);
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
    let digest = tokio::task::spawn_blocking(move || Digest::of_file(&p))
        .await
        .map_err(|e| CliError::Message(e.to_string()))?
        .map_err(|e| CliError::Message(format!("cannot read {}: {e}", path.display())))?
        .0
        .to_string();
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
